//! The newest WAL segment deleted, truncated, replaced by an empty file or its last records
//! zeroed (issue 13, DESIGN.md rule 15): the floor marker written at seal and at close says how
//! far the durable log reached, so each is `data_loss` on the shard naming the file, never a
//! silent cut. Each test failed on the kernel before the marker (the shard served fewer
//! commits without a word).

use std::fs;
use std::path::{Path, PathBuf};

use stormhold::env::OsEnv;
use stormhold::{Config, Durability, Kernel};

const COMMITS: u32 = 30;

/// Every open returns the kernel (`min_serving_shards(0)`), so a test reads a failed shard's
/// failure from `shard_status`.
fn config() -> Config {
    Config::builder()
        .shards(1)
        .segment_size_bytes(32 * 1024)
        .min_serving_shards(0)
        .build()
        .expect("valid config")
}

fn open(dir: &Path) -> Kernel<OsEnv> {
    Kernel::open(OsEnv::new(), dir, config()).unwrap_or_else(|e| panic!("open: {e}"))
}

/// A store with `COMMITS` synced commits (each in its own sector: several segments), closed.
fn build(dir: &Path) {
    let kernel = open(dir);
    for i in 0..COMMITS {
        kernel.put(format!("k{i:02}").as_bytes(), &i.to_le_bytes(), Durability::Data).unwrap();
    }
    kernel.close().unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let wal = dir.join("shard-0000").join("wal");
    let mut paths: Vec<PathBuf> = fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
}

/// The shard is failed with data loss, and the failure names `what`.
fn assert_loss_reported(dir: &Path, what: &str) {
    let kernel = open(dir);
    let status = &kernel.shard_status()[0];
    let failure = status.failed.as_ref().expect("the lost commits are reported, not dropped");
    assert!(failure.data_loss, "{failure}");
    let text = failure.to_string();
    assert!(text.contains(what), "{text} should name {what}");
}

#[test]
fn a_store_closed_cleanly_or_crashed_reopens_exactly() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    assert!(segments(dir.path()).len() >= 3, "several segments");
    for _ in 0..2 {
        let kernel = open(dir.path());
        assert!(kernel.shard_status()[0].failed.is_none(), "{:?}", kernel.shard_status());
        for i in 0..COMMITS {
            assert_eq!(kernel.get(format!("k{i:02}").as_bytes()).unwrap(), Some(i.to_le_bytes().to_vec()));
        }
        // Dropped without close: no marker written, the next open still exact.
        kernel.put(b"k99", b"x", Durability::Data).unwrap();
    }
}

#[test]
fn the_newest_segment_deleted_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let newest = segments(dir.path()).pop().unwrap();
    fs::remove_file(&newest).unwrap();
    assert_loss_reported(dir.path(), "FLOOR");
}

#[test]
fn the_newest_segment_truncated_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let newest = segments(dir.path()).pop().unwrap();
    fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(4096 + 200).unwrap();
    assert_loss_reported(dir.path(), "lost");
}

#[test]
fn the_newest_segment_replaced_by_an_empty_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let newest = segments(dir.path()).pop().unwrap();
    fs::write(&newest, b"").unwrap();
    assert_loss_reported(dir.path(), "lost");
}

#[test]
fn the_last_two_records_zeroed_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let newest = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&newest).unwrap();
    let last = (4096..bytes.len())
        .step_by(4096)
        .filter(|&at| stormhold::wal::format::decode_record_header(&bytes[at..]).is_ok())
        .collect::<Vec<_>>();
    assert!(last.len() >= 2, "two records in the newest segment");
    for &at in &last[last.len() - 2..] {
        bytes[at..at + 4096].fill(0);
    }
    fs::write(&newest, &bytes).unwrap();
    assert_loss_reported(dir.path(), "lost");
}

#[test]
fn a_floor_marker_of_another_shard_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(a.path());
    build(b.path());
    let floor = |d: &Path| d.join("shard-0000").join("wal").join("FLOOR");
    fs::copy(floor(b.path()), floor(a.path())).unwrap();
    assert_loss_reported(a.path(), "floor marker belongs to");
}
