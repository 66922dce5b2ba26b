//! `EnvFile::start_writeback`: a hint that gives no durability, on every `Env`.
//!
//! - `SimEnv` counts it and does nothing else: pending writes stay pending (a crash that
//!   loses every unsynced write loses them after the hint too), and the trace, the call
//!   count and the fault draws are the same as without it, so a seed replays the same;
//! - `OsEnv` (Linux: `sync_file_range(SYNC_FILE_RANGE_WRITE)`) accepts a range on a real
//!   file and changes no byte; both refuse a range past `i64::MAX` with `InvalidInput`.

mod env_sim_support;

use std::io::ErrorKind;

use stormhold::env::{Env, EnvFile, OpenOptions, OsEnv};

use env_sim_support::*;

#[test]
fn a_writeback_hint_makes_nothing_durable_in_the_simulator() {
    for seed in 0..20 {
        let env = sim(seed, with_fate(fate(0, 1, 0)));
        let file = durable_file(&env, "/f", &old_bytes(4096));
        file.write_all_at(&new_bytes(8192), 0).expect("write");
        file.start_writeback(0, 8192).expect("hint");
        assert_eq!(env.writeback_hints(), (1, 8192), "seed {seed}: the hint is counted");
        crash_and_restart(&env);
        assert_eq!(read_file(&env, "/f").expect("read"), old_bytes(4096), "seed {seed}: nothing durable");
    }
}

#[test]
fn a_writeback_hint_leaves_the_simulated_run_as_it_was() {
    let run = |hint: bool| {
        let env = sim(7, with_fate(fate(1, 1, 1)));
        let file = durable_file(&env, "/f", &old_bytes(1024));
        file.write_all_at(&new_bytes(3000), 512).expect("write");
        if hint {
            file.start_writeback(512, 3000).expect("hint");
            file.start_writeback(0, 0).expect("an empty range");
        }
        file.sync_data().expect("sync");
        (env.trace_hash(), env.stats(), read_via(&file))
    };
    assert_eq!(run(true), run(false), "same trace, same counters, same bytes");
}

#[test]
fn a_writeback_range_past_i64_max_is_invalid_input_on_both_envs() {
    let env = sim(1, with_fate(fate(1, 0, 0)));
    let file = durable_file(&env, "/f", &old_bytes(16));
    let past = i64::MAX as u64;
    assert_eq!(file.start_writeback(past, 1).map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
    assert_eq!(file.start_writeback(u64::MAX, 2).map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
    assert_eq!(env.writeback_hints(), (0, 0), "a refused hint is not counted");
    let dir = tempfile::tempdir().expect("tempdir");
    let os = OsEnv::new().open(&dir.path().join("f"), OpenOptions::create()).expect("open");
    assert_eq!(os.start_writeback(past, 1).map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
}

#[test]
fn a_writeback_hint_on_the_real_os_changes_no_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = OsEnv::new();
    let path = dir.path().join("f");
    let file = env.open(&path, OpenOptions::create()).expect("open");
    let bytes: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    file.write_all_at(&bytes, 0).expect("write");
    file.start_writeback(0, 1 << 20).expect("hint of the first MiB");
    file.start_writeback(1 << 20, 8 << 20).expect("a range past the end is fine");
    file.start_writeback(5, 0).expect("an empty range");
    file.sync_data().expect("sync");
    let mut back = vec![0; bytes.len()];
    file.read_exact_at(&mut back, 0).expect("read");
    assert!(back == bytes, "the hint wrote nothing of its own");
    let reader = env.open(&path, OpenOptions::read_only()).expect("open read-only");
    reader.start_writeback(0, 4096).expect("a read-only handle may hint too");
}
