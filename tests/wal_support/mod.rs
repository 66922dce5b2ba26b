//! Helpers shared by the WAL recovery tests: build a log through the real `Wal` on a
//! fault-free `SimEnv`, find where each record landed (by decoding the files, independently of
//! the recovery scan), damage the files through the Env API, and recover.
//!
//! Each test file uses a subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::wal::format::{self, RECORD_ALIGN_BYTES, SEGMENT_HEADER_BYTES};
use stormhold::wal::{
    Durability, Lsn, Record, RecordKind, RecoveryMode, ScanReport, Wal, WalError, WalOptions,
};

/// Small segments, so a few dozen records span several of them.
pub const SEGMENT_SIZE_BYTES: u64 = 3 * 4096;

/// The directory every test log lives in.
pub fn dir() -> &'static Path {
    Path::new("/wal")
}

pub fn options(mode: RecoveryMode) -> WalOptions {
    WalOptions {
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        preallocate: true,
        recovery_mode: mode,
        ..WalOptions::default()
    }
}

/// A simulated disk that injects nothing on its own (tests arm or apply each fault).
pub fn quiet_env(seed: u64) -> SimEnv {
    SimEnv::new(seed, FaultOptions::default()).expect("default fault options are valid")
}

/// The length in bytes of segment `id` of the log in [`dir`], as the Env reports it.
pub fn segment_len(env: &impl Env, id: u64) -> u64 {
    let path = dir().join(format::segment_file_name(id));
    env.open(&path, OpenOptions::read_only()).expect("open").len().expect("len")
}

/// One append of a log plan: its payload, and whether a sync follows it.
pub type Step = (Vec<u8>, bool);

/// Plans of 1..40 records of 0..700 bytes, about one in four followed by a sync: with
/// [`SEGMENT_SIZE_BYTES`] they span one to four segments.
pub fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((prop::collection::vec(any::<u8>(), 0..700), prop::bool::weighted(0.25)), 1..40)
}

/// Writes `steps` through a fresh `Wal`, then syncs once more so the disk image is durable
/// (the records' `durable_lsn` claims stay what the plan made them). Returns the payloads.
pub fn build(env: &SimEnv, steps: &[Step]) -> Vec<Vec<u8>> {
    let (mut wal, report) = Wal::open(env.clone(), dir(), options(RecoveryMode::TolerateTornTail), |_| {})
        .expect("create the log");
    assert_eq!(report.records, 0, "a fresh log");
    for (payload, sync) in steps {
        wal.append(RecordKind::Data, 0, 0, payload).expect("append");
        if *sync {
            wal.sync(Durability::Data).expect("sync");
        }
    }
    wal.sync(Durability::Data).expect("final sync");
    steps.iter().map(|(payload, _)| payload.clone()).collect()
}

/// Where a record sits on disk.
#[derive(Clone, Debug)]
pub struct Placed {
    pub record: Record,
    pub path: PathBuf,
    pub offset: u64,
    /// Encoded bytes (header and payload, no padding).
    pub len: u64,
}

impl Placed {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The segment files, in id order.
pub fn segment_paths(env: &SimEnv) -> Vec<PathBuf> {
    let names = env.list_dir(dir()).expect("list the log directory");
    names
        .iter()
        .filter(|name| format::parse_segment_file_name(name).is_some())
        .map(|name| dir().join(name))
        .collect()
}

/// The live bytes of the file at `path`.
pub fn read_all(env: &SimEnv, path: &Path) -> Vec<u8> {
    let file = env.open(path, OpenOptions::read_only()).expect("open for reading");
    let mut bytes = vec![0; file.len().expect("len") as usize];
    file.read_exact_at(&mut bytes, 0).expect("read");
    bytes
}

/// Every record in the segment files, found by decoding at each aligned offset. Asserts they
/// are lsns 1..=n in order, so a test never starts from a log it misunderstands.
pub fn locate(env: &SimEnv) -> Vec<Placed> {
    let mut placed = Vec::new();
    for path in segment_paths(env) {
        let bytes = read_all(env, &path);
        let mut offset = SEGMENT_HEADER_BYTES;
        while offset < bytes.len() as u64 {
            match format::decode_record(&bytes[offset as usize..]) {
                Ok(record) => {
                    let len = format::record_bytes(record.payload.len());
                    placed.push(Placed { record, path: path.clone(), offset, len });
                    offset += len.next_multiple_of(RECORD_ALIGN_BYTES);
                }
                Err(_) => offset += RECORD_ALIGN_BYTES,
            }
        }
    }
    let lsns: Vec<Lsn> = placed.iter().map(|p| p.record.lsn).collect();
    assert_eq!(lsns, (1..=placed.len() as u64).collect::<Vec<_>>(), "the built log holds dense lsns");
    placed
}

/// Whether a record after `placed[index]` claims it was durable (rule 2's "vouches").
pub fn vouched(placed: &[Placed], index: usize) -> bool {
    let lsn = placed[index].record.lsn;
    placed[index + 1..].iter().any(|later| later.record.durable_lsn >= lsn)
}

/// Writes `bytes` at `offset` of the file at `path` (created if missing) and syncs it.
pub fn overwrite(env: &SimEnv, path: &Path, offset: u64, bytes: &[u8]) {
    let file = env.open(path, OpenOptions::create()).expect("open for writing");
    file.write_all_at(bytes, offset).expect("write");
    file.sync_data().expect("sync");
}

/// Flips bit `bit` (counted from the start of the file) of the file at `path`.
pub fn flip_bit(env: &SimEnv, path: &Path, bit: u64) {
    let file = env.open(path, OpenOptions::read_write()).expect("open for writing");
    let mut byte = [0];
    file.read_exact_at(&mut byte, bit / 8).expect("read");
    byte[0] ^= 1 << (bit % 8);
    file.write_all_at(&byte, bit / 8).expect("write");
    file.sync_data().expect("sync");
}

/// Cuts the file at `path` to `len` bytes, durably.
pub fn truncate(env: &SimEnv, path: &Path, len: u64) {
    let file = env.open(path, OpenOptions::read_write()).expect("open for writing");
    file.set_len(len).expect("set_len");
    file.sync_data().expect("sync");
}

/// Opens the log in `mode` and returns the recovered records with the report (the log is
/// closed again: a caller that wants to append opens it itself).
pub fn recover(env: &SimEnv, mode: RecoveryMode) -> Result<(Vec<Record>, ScanReport), WalError> {
    let mut records = Vec::new();
    let (_wal, report) = Wal::open(env.clone(), dir(), options(mode), |record| records.push(record))?;
    Ok((records, report))
}

pub fn payloads(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|record| record.payload.clone()).collect()
}

/// Appends `payload`, syncs, crashes and recovers: the log must hold `before` and then it,
/// at the next lsn.
pub fn append_after_recovery_continues_densely(env: &SimEnv, before: &[Vec<u8>], payload: &[u8]) {
    let (mut wal, _) = Wal::open(env.clone(), dir(), options(RecoveryMode::TolerateTornTail), |_| {})
        .expect("reopen for appending");
    let lsn = wal.append(RecordKind::Data, 0, 0, payload).expect("append after recovery");
    assert_eq!(lsn, before.len() as u64 + 1, "lsns continue densely after recovery");
    wal.sync(Durability::Data).expect("sync after recovery");
    drop(wal);
    env.crash();
    env.restart();
    let (records, _) = recover(env, RecoveryMode::AbsoluteConsistency).expect("recover the continued log");
    let mut expected = before.to_vec();
    expected.push(payload.to_vec());
    assert_eq!(payloads(&records), expected, "the recovered prefix, then the new record");
}

/// Asserts that the durable bytes of the file at `path` from `from` on are zero (rule 4: the
/// log never appends behind garbage).
pub fn assert_durable_zeros_from(env: &SimEnv, path: &Path, from: u64) {
    let durable = env.durable_contents(path).expect("path").expect("the file is durable");
    let from = from.min(durable.len() as u64) as usize;
    if let Some(at) = durable[from..].iter().position(|&b| b != 0) {
        panic!("{}: non-zero durable byte at {} past the valid end {from}", path.display(), from + at);
    }
}

/// A fixed plan: `count` records of `len` bytes (each filled with its index), a sync after
/// every `sync_every`-th.
pub fn fixed_steps(count: usize, len: usize, sync_every: usize) -> Vec<Step> {
    (0..count).map(|i| (vec![i as u8; len], (i + 1) % sync_every == 0)).collect()
}

/// The records of each segment, in segment order.
pub fn by_segment(placed: &[Placed]) -> Vec<Vec<Placed>> {
    let mut segments: Vec<Vec<Placed>> = Vec::new();
    for p in placed {
        match segments.last_mut() {
            Some(segment) if segment[0].path == p.path => segment.push(p.clone()),
            _ => segments.push(vec![p.clone()]),
        }
    }
    segments
}
