//! `EnvFile::advise_sequential_read`: a read-ahead hint that changes nothing a read returns.
//!
//! - `OsEnv` (Linux: `posix_fadvise(SEQUENTIAL)` then `posix_fadvise(WILLNEED)`) accepts a
//!   range on a real file, read-only handles included, and every byte reads back the same;
//!   a range past `i64::MAX` is refused with `InvalidInput` (it would not fit `off_t`);
//! - `SimEnv` does nothing: the trace and counters of a run are the same with the hint.

mod env_sim_support;

use std::io::ErrorKind;

use stormhold::env::{Env, EnvFile, OpenOptions, OsEnv};

use env_sim_support::*;

#[test]
fn a_readahead_hint_on_the_real_os_changes_no_byte_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = OsEnv::new();
    let path = dir.path().join("f");
    let file = env.open(&path, OpenOptions::create()).expect("open");
    let bytes: Vec<u8> = (0..3 << 20).map(|i| (i % 253) as u8).collect();
    file.write_all_at(&bytes, 0).expect("write");
    let reader = env.open(&path, OpenOptions::read_only()).expect("open read-only");
    reader.advise_sequential_read(0, 1 << 20).expect("hint of the first MiB");
    reader.advise_sequential_read(1 << 20, 64 << 20).expect("a range past the end is fine");
    reader.advise_sequential_read(7, 0).expect("an empty range");
    let mut back = vec![0; bytes.len()];
    reader.read_exact_at(&mut back, 0).expect("read");
    assert!(back == bytes, "the hint changed no byte");
}

#[test]
fn a_readahead_range_past_i64_max_is_invalid_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let os = OsEnv::new().open(&dir.path().join("f"), OpenOptions::create()).expect("open");
    let past = i64::MAX as u64;
    assert_eq!(os.advise_sequential_read(past, 1).map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
    assert_eq!(os.advise_sequential_read(1, past).map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
    let env = sim(1, with_fate(fate(1, 0, 0)));
    let file = durable_file(&env, "/f", &old_bytes(16));
    assert_eq!(file.advise_sequential_read(past, 1).map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
}

#[test]
fn a_readahead_hint_leaves_the_simulated_run_as_it_was() {
    let run = |hint: bool| {
        let env = sim(7, with_fate(fate(1, 1, 1)));
        let file = durable_file(&env, "/f", &old_bytes(1024));
        if hint {
            file.advise_sequential_read(0, 1024).expect("hint");
        }
        file.write_all_at(&new_bytes(3000), 512).expect("write");
        file.sync_data().expect("sync");
        (env.trace_hash(), env.stats(), read_via(&file))
    };
    assert_eq!(run(true), run(false), "same trace, same counters, same bytes");
}
