//! Rot in the last acknowledged record (issue 13, DESIGN.md rule 18): once an idle `tick` has
//! vouched for the newest durable record, damage to it is reported as data loss instead of
//! being truncated as a torn tail.

use std::fs;
use std::path::{Path, PathBuf};

use stormhold::env::OsEnv;
use stormhold::wal::format::{SEGMENT_HEADER_BYTES, SYNC_ALIGN_BYTES, decode_record_header};
use stormhold::{Config, Durability, Kernel};

/// Every open returns the kernel (`min_serving_shards(0)`), so a test reads a failed shard's
/// failure from `shard_status`.
fn config() -> Config {
    Config::builder().shards(1).sync_on_tick(true).min_serving_shards(0).build().expect("valid config")
}

fn open(dir: &Path) -> Kernel<OsEnv> {
    Kernel::open(OsEnv::new(), dir, config()).unwrap_or_else(|e| panic!("open: {e}"))
}

fn newest_segment(dir: &Path) -> PathBuf {
    let wal = dir.join("shard-0000").join("wal");
    fs::read_dir(wal).unwrap().map(|e| e.unwrap().path()).max().unwrap()
}

/// Offsets of the records of a segment whose every record was synced on its own (so each
/// starts on a sector boundary).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    (SEGMENT_HEADER_BYTES as usize..bytes.len())
        .step_by(SYNC_ALIGN_BYTES as usize)
        .filter(|&at| decode_record_header(&bytes[at..]).is_ok())
        .collect()
}

// Bug pinned: zeroing or flipping the last acknowledged record lost it silently (recovery took
// it for a torn write); the last two records zeroed lost both.
#[test]
fn rot_in_the_last_acknowledged_record_is_reported_after_an_idle_tick() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kernel = open(dir.path());
        for i in 0u32..10 {
            kernel.put(format!("k{i}").as_bytes(), &i.to_le_bytes(), Durability::Data).unwrap();
        }
        let report = kernel.tick();
        assert_eq!(report.vouched.len(), 1, "{report:?}");
        assert!(kernel.tick().vouched.is_empty(), "an idle shard vouches once");
        kernel.close().unwrap();
    }
    let path = newest_segment(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), 11, "ten commits and the vouching record");
    let last_commit = offsets[9];
    bytes[last_commit + 60] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let kernel = open(dir.path());
    let status = &kernel.shard_status()[0];
    let failure = status.failed.as_ref().expect("the damaged last commit is reported, not dropped");
    assert!(failure.data_loss, "{failure}");
}

// The vouching record carries nothing: losing it (a tear, rot) loses no commit.
#[test]
fn losing_the_vouching_record_itself_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kernel = open(dir.path());
        for i in 0u32..3 {
            kernel.put(format!("k{i}").as_bytes(), &i.to_le_bytes(), Durability::Data).unwrap();
        }
        assert_eq!(kernel.tick().vouched.len(), 1);
        kernel.close().unwrap();
    }
    let path = newest_segment(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let vouch = *record_offsets(&bytes).last().unwrap();
    bytes[vouch..vouch + 64].fill(0);
    fs::write(&path, &bytes).unwrap();
    let kernel = open(dir.path());
    assert!(kernel.shard_status()[0].failed.is_none(), "{:?}", kernel.shard_status());
    for i in 0u32..3 {
        assert_eq!(kernel.get(format!("k{i}").as_bytes()).unwrap(), Some(i.to_le_bytes().to_vec()));
    }
}
