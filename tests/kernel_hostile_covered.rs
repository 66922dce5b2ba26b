//! Only what is lost counts (issue 13 case 6, DESIGN.md rule 16): damage wholly inside WAL
//! records that a valid checkpoint already holds is reported in the recovery report, not
//! fatal; damage reaching past the checkpoint's lsn (a record after it, or a damaged range
//! straddling it) is still data loss.

use std::fs;
use std::path::{Path, PathBuf};

use stormhold::env::OsEnv;
use stormhold::wal::format::{
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SYNC_ALIGN_BYTES, decode_record_header,
};
use stormhold::{Config, Durability, Kernel, RecoveryReport};

/// Records committed (each synced on its own) before the checkpoint, and after it.
const BEFORE: u32 = 8;

fn open(dir: &Path) -> Kernel<OsEnv> {
    let config = Config::builder().shards(1).segment_size_bytes(1024 * 1024).min_serving_shards(0).build();
    Kernel::open(OsEnv::new(), dir, config.expect("valid config")).unwrap_or_else(|e| panic!("open: {e}"))
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// A store with `BEFORE` commits, a checkpoint at their lsn, then `after` more commits.
fn store(dir: &Path, after: u32) {
    let kernel = open(dir);
    for i in 0..BEFORE {
        kernel.put(&key(i), &i.to_le_bytes(), Durability::Data).unwrap();
    }
    kernel.checkpoint().unwrap();
    assert_eq!(kernel.shard_status()[0].last_lsn, u64::from(BEFORE), "the checkpoint is at lsn {BEFORE}");
    for i in BEFORE..BEFORE + after {
        kernel.put(&key(i), &i.to_le_bytes(), Durability::Data).unwrap();
    }
    kernel.close().unwrap();
}

fn segment(dir: &Path) -> PathBuf {
    let wal = dir.join("shard-0000").join("wal");
    let mut segments: Vec<PathBuf> = fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 1, "one segment: {segments:?}");
    segments.pop().unwrap()
}

/// The offset of the record with `lsn` (every record was synced on its own, so each starts on
/// a sector boundary).
fn record_offset(bytes: &[u8], lsn: u64) -> usize {
    (SEGMENT_HEADER_BYTES as usize..bytes.len())
        .step_by(SYNC_ALIGN_BYTES as usize)
        .find(|&at| decode_record_header(&bytes[at..]).is_ok_and(|h| h.lsn == lsn))
        .unwrap_or_else(|| panic!("no record of lsn {lsn}"))
}

/// Flips a payload byte of each record of `lsns`.
fn flip(dir: &Path, lsns: &[u64]) {
    let path = segment(dir);
    let mut bytes = fs::read(&path).unwrap();
    for &lsn in lsns {
        let at = record_offset(&bytes, lsn) + RECORD_HEADER_BYTES + 1;
        bytes[at] ^= 0x5a;
    }
    fs::write(&path, bytes).unwrap();
}

/// Cuts the segment just before the record with `lsn`.
fn cut_before(dir: &Path, lsn: u64) {
    let path = segment(dir);
    let at = record_offset(&fs::read(&path).unwrap(), lsn);
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(at as u64).unwrap();
}

/// The shard serves keys `0..count` (and `extra` other keys, no more), and returns its
/// recovery report.
fn serves_all(kernel: &Kernel<OsEnv>, count: u32, extra: usize) -> RecoveryReport {
    let status = &kernel.shard_status()[0];
    assert!(status.failed.is_none(), "the shard is failed: {:?}", status.failed);
    for i in 0..count {
        assert_eq!(kernel.get(&key(i)).unwrap(), Some(i.to_le_bytes().to_vec()), "key {i}");
    }
    assert_eq!(kernel.scan(b"".to_vec()..).unwrap().len(), count as usize + extra);
    kernel.recovery_reports()[0].clone().expect("a recovery report")
}

fn fails_with_data_loss(kernel: &Kernel<OsEnv>) {
    let failure = kernel.shard_status()[0].failed.clone().expect("the shard fails");
    assert!(failure.data_loss, "{failure}");
}

// Bug pinned: bytes flipped in a record the checkpoint already holds failed the shard.
#[test]
fn a_flipped_record_that_the_checkpoint_covers_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), 4);
    flip(dir.path(), &[3]);
    let kernel = open(dir.path());
    let report = serves_all(&kernel, BEFORE + 4, 0);
    let damage = report.covered_damage.first().unwrap_or_else(|| panic!("not reported: {report}"));
    assert_eq!((damage.from_lsn, damage.to_lsn), (3, 3), "{report}");
    assert_eq!(damage.path, segment(dir.path()));
    assert!(report.to_string().contains("skipped damaged lsns 3..=3"), "{report}");
    // The shard writes on, and the next open finds the same state.
    kernel.put(b"new", b"v", Durability::Data).unwrap();
    kernel.close().unwrap();
    let kernel = open(dir.path());
    assert_eq!(kernel.get(b"new").unwrap(), Some(b"v".to_vec()));
    serves_all(&kernel, BEFORE + 4, 1);
}

// The other side: a damaged record after the checkpoint's lsn is still data loss.
#[test]
fn a_flipped_record_after_the_checkpoint_is_still_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), 4);
    flip(dir.path(), &[u64::from(BEFORE) + 1]);
    fails_with_data_loss(&open(dir.path()));
}

// A damaged range straddling the checkpoint's lsn (its last covered record and the first
// after it) is not covered.
#[test]
fn damage_straddling_the_checkpoint_lsn_is_still_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), 4);
    let lsn = u64::from(BEFORE);
    flip(dir.path(), &[lsn, lsn + 1]);
    fails_with_data_loss(&open(dir.path()));
}

// Bug pinned: the WAL cut before the checkpoint's lsn failed the shard (WalBehindCheckpoint),
// though the checkpoint holds every record cut. The log now goes on at the lsn after the
// checkpoint's, so no covered lsn is handed out again.
#[test]
fn a_wal_cut_before_the_checkpoint_lsn_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), 0);
    cut_before(dir.path(), 5);
    let kernel = open(dir.path());
    let report = serves_all(&kernel, BEFORE, 0);
    let damage = report.covered_damage.first().unwrap_or_else(|| panic!("not reported: {report}"));
    assert_eq!((damage.from_lsn, damage.to_lsn), (5, u64::from(BEFORE)), "{report}");
    assert_eq!(report.next_lsn, u64::from(BEFORE) + 1, "{report}");
    kernel.put(b"new", b"v", Durability::Data).unwrap();
    kernel.close().unwrap();
    let kernel = open(dir.path());
    assert_eq!(kernel.get(b"new").unwrap(), Some(b"v".to_vec()), "the commit after the cut survives");
    serves_all(&kernel, BEFORE, 1);
}

// The other side: a cut that also loses records after the checkpoint is data loss.
#[test]
fn a_wal_cut_reaching_past_the_checkpoint_lsn_is_still_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), 4);
    cut_before(dir.path(), 5);
    fails_with_data_loss(&open(dir.path()));
}
