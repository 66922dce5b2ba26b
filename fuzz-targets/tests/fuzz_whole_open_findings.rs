//! Minimal reproductions of each failure class the whole-open target found with every damage
//! kind on (issue #13). Each failed on the kernel before issue #13 and passes now;
//! run them with `cargo test -p stormhold-fuzz-targets --test fuzz_whole_open_findings`.
//! Each builds a real store on a perfect `SimEnv`, damages exactly one thing at
//! rest, reopens, and asks `whole_open::check` for "exact, or a failed shard that reports loss".

use std::path::{Path, PathBuf};
use stormhold::env::Env;
use stormhold::{Config, Kernel, Router};
use stormhold_fuzz_targets::Choices;
use stormhold_fuzz_targets::store::{self, Built, STORE_DIR};
use stormhold_fuzz_targets::whole_open::{self, Verdict};

/// One shard (or two), 20 puts of distinct keys, no checkpoint (`checkpoint_at` 255), or a
/// checkpoint after the 5th commit.
fn built(shards: u8, checkpoint: bool) -> Built {
    let mut plan = vec![shards - 1, 16, if checkpoint { 4 } else { 255 }];
    for i in 0..20u8 {
        plan.extend([i % 12, 1, i]);
    }
    store::build(&mut Choices::new(&plan)).expect("build the store")
}

fn wal_segments(built: &Built, shard: u32) -> Vec<PathBuf> {
    let dir = Path::new(STORE_DIR).join(format!("shard-{shard:04}/wal"));
    store::files(&built.env, &dir)
}

fn reopen(built: &Built, config: Config) -> Result<Verdict, String> {
    let opened = Kernel::open(built.env.clone(), Path::new(STORE_DIR), config);
    whole_open::open_verdict(opened, &built.model).map_err(|(class, detail)| format!("{class}: {detail}"))
}

fn assert_within_contract(built: &Built) {
    let verdict = reopen(built, built.config.clone());
    assert!(verdict.is_ok(), "{verdict:?}");
}

#[test]
fn an_undamaged_store_recovers_exactly() {
    let built = built(2, true);
    assert_eq!(reopen(&built, built.config.clone()), Ok(Verdict::Exact));
}

#[test]
fn newest_wal_segment_truncated_is_reported() {
    let built = built(1, false);
    let newest = wal_segments(&built, 0).pop().expect("a segment");
    let file = built.env.open(&newest, stormhold::env::OpenOptions::read_write()).expect("open");
    stormhold::env::EnvFile::set_len(&file, 4096 + 200).expect("truncate");
    stormhold::env::EnvFile::sync_all(&file).expect("sync");
    assert_within_contract(&built);
}

#[test]
fn newest_wal_segment_deleted_is_reported() {
    let built = built(1, false);
    let newest = wal_segments(&built, 0).pop().expect("a segment");
    built.env.remove_file(&newest).expect("remove");
    built.env.sync_dir(newest.parent().expect("dir")).expect("sync");
    assert_within_contract(&built);
}

#[test]
fn zeroed_tail_of_the_newest_segment_is_reported() {
    let built = built(1, false);
    let newest = wal_segments(&built, 0).pop().expect("a segment");
    let len = store::read(&built.env, &newest).len() as u64;
    let file = built.env.open(&newest, stormhold::env::OpenOptions::read_write()).expect("open");
    stormhold::env::EnvFile::write_all_at(&file, &vec![0; 8192], len - 8192).expect("zero");
    stormhold::env::EnvFile::sync_all(&file).expect("sync");
    assert_within_contract(&built);
}

#[test]
fn wal_segments_swapped_between_shards_are_refused() {
    let built = built(2, false);
    let (a, b) = (wal_segments(&built, 0)[0].clone(), wal_segments(&built, 1)[0].clone());
    let (bytes_a, bytes_b) = (store::read(&built.env, &a), store::read(&built.env, &b));
    for (path, bytes) in [(&a, &bytes_b), (&b, &bytes_a)] {
        let file = built.env.open(path, stormhold::env::OpenOptions::read_write()).expect("open");
        stormhold::env::EnvFile::set_len(&file, 0).expect("truncate");
        stormhold::env::EnvFile::write_all_at(&file, bytes, 0).expect("write");
        stormhold::env::EnvFile::sync_all(&file).expect("sync");
    }
    assert_within_contract(&built);
}

#[test]
fn checkpoint_and_wal_deleted_is_reported() {
    let built = built(1, true);
    let shard = Path::new(STORE_DIR).join("shard-0000");
    for path in store::files(&built.env, &shard) {
        if path.file_name().is_some_and(|n| n != "HIGH_WATER") {
            built.env.remove_file(&path).expect("remove");
            built.env.sync_dir(path.parent().expect("dir")).expect("sync");
        }
    }
    assert_within_contract(&built);
}

#[test]
fn kernel_file_deleted_then_another_shard_count_is_refused() {
    let built = built(2, false);
    built.env.remove_file(&Path::new(STORE_DIR).join("KERNEL")).expect("remove");
    built.env.sync_dir(Path::new(STORE_DIR)).expect("sync");
    let other =
        Config::builder().shards(1).router(Router::Hash).segment_size_bytes(store::SEGMENT_SIZE_BYTES);
    let verdict = reopen(&built, other.build().expect("config"));
    // `KernelFileMissing`: the open refuses instead of re-creating the store.
    assert_eq!(verdict, Ok(Verdict::Refused));
}

#[test]
fn huge_checkpoint_directory_name_is_bounds_checked() {
    let built = built(1, true);
    let ckpt = Path::new(STORE_DIR).join("shard-0000/ckpt");
    built.env.create_dir(&ckpt.join("ckpt-ffffffffffffffff")).expect("mkdir");
    built.env.sync_dir(&ckpt).expect("sync");
    assert_within_contract(&built);
}

#[test]
fn bit_flip_in_the_last_record_is_reported() {
    let built = built(1, false);
    let newest = wal_segments(&built, 0).pop().expect("a segment");
    let bytes = store::read(&built.env, &newest);
    let last = (4096..bytes.len())
        .step_by(8)
        .rev()
        .find(|&at| stormhold::wal::format::decode_record(&bytes[at..]).is_ok())
        .expect("a record");
    let at = last + 60;
    let byte = bytes[at] ^ 0x10;
    let file = built.env.open(&newest, stormhold::env::OpenOptions::read_write()).expect("open");
    stormhold::env::EnvFile::write_all_at(&file, &[byte], at as u64).expect("flip");
    stormhold::env::EnvFile::sync_all(&file).expect("sync");
    assert_within_contract(&built);
}

#[test]
fn sparse_extension_of_the_newest_segment_recovers_exactly() {
    // A damage kind CI applies: the kernel reads the zeros as the end of the log.
    let built = built(1, false);
    let newest = wal_segments(&built, 0).pop().expect("a segment");
    let len = store::read(&built.env, &newest).len() as u64;
    let file = built.env.open(&newest, stormhold::env::OpenOptions::read_write()).expect("open");
    stormhold::env::EnvFile::set_len(&file, len + (1 << 20)).expect("extend");
    stormhold::env::EnvFile::sync_all(&file).expect("sync");
    assert_eq!(reopen(&built, built.config.clone()), Ok(Verdict::Exact));
}
