//! Toy stores: a tiny log-structured key-value store, correct by default, with switches that
//! plant the crash-safety mistakes real storage engines make. They exist only to prove that the
//! simulator's checker catches each mistake (`sim/tests/toy_stores.rs`, and the corpus).
//!
//! The log `/toy/log` is a sequence of fixed 32-byte records, so recovery can look past a bad
//! record:
//!
//! ```text
//! 0..4    crc32 of bytes 4..32
//! 4..12   lsn, u64 LE (0 for the header record; then 1, 2, 3, ... dense)
//! 12..20  durable_lsn, u64 LE: the highest lsn durable when this record was written
//! 20..22  key, u16 LE
//! 22      op: 1 put, 2 delete, 3 header
//! 23..27  value, u32 LE
//! 27..32  zero
//! ```
//!
//! Correct behaviour (each bug switch breaks exactly one rule): creation writes the header to
//! `log.tmp`, syncs it, renames it to `log` and syncs the directory; a durable commit returns
//! only after `sync_data`; a failed sync poisons the store; recovery stops at the first bad
//! record, reports data loss if a later valid record vouches for it (`durable_lsn` at or past
//! it), else truncates the torn tail and syncs before appending again.
//!
//! Without powersafe overwrite a torn write may damage the rest of its sector, so after every
//! sync the tail moves to the next [`ALIGN_BYTES`] boundary: a new append never shares a sector
//! with durable records. Recovery skips such padding: at a bad slot, a record with the expected
//! lsn at the next boundary means the gap was padding, not a lost record.

use std::collections::BTreeMap;
use std::path::Path;
use stormhold::env::sim::{SimEnv, SimFile, is_crash};
use stormhold::env::{Env, EnvFile, OpenOptions};

use crate::kv::{Key, KvStore, StoreError, Value, Write};

/// The mistake a toy store makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum ToyBug {
    /// None: the reference store, which must pass every sweep.
    None,
    /// A durable commit returns before its bytes are synced.
    AckBeforeSync,
    /// Creation renames the log into place but never syncs the directory.
    SkipDirSync,
    /// Recovery finds a torn tail and appends behind it instead of truncating it.
    AppendBehindTornTail,
    /// Recovery truncates at the first bad record even when later records vouch for it.
    TruncateMidLogCorruption,
    /// A failed sync is retried, and the retry's `Ok` is taken as durability.
    RetryFailedFsync,
}

impl ToyBug {
    /// Every bug, the reference store first.
    pub const ALL: [ToyBug; 6] = [
        ToyBug::None,
        ToyBug::AckBeforeSync,
        ToyBug::SkipDirSync,
        ToyBug::AppendBehindTornTail,
        ToyBug::TruncateMidLogCorruption,
        ToyBug::RetryFailedFsync,
    ];

    /// The workload name: `toy`, `toy-ack-before-sync`, ...
    pub fn workload_name(self) -> &'static str {
        match self {
            ToyBug::None => "toy",
            ToyBug::AckBeforeSync => "toy-ack-before-sync",
            ToyBug::SkipDirSync => "toy-skip-dir-sync",
            ToyBug::AppendBehindTornTail => "toy-append-behind-torn-tail",
            ToyBug::TruncateMidLogCorruption => "toy-truncate-mid-log-corruption",
            ToyBug::RetryFailedFsync => "toy-retry-failed-fsync",
        }
    }
}

const RECORD_BYTES: u64 = 32;
/// The largest sector size a disk may have: appends after a sync start on this boundary.
pub const ALIGN_BYTES: u64 = 4096;
const _: () = assert!(ALIGN_BYTES.is_multiple_of(RECORD_BYTES));

fn align_up(bytes: u64) -> u64 {
    bytes.div_ceil(ALIGN_BYTES) * ALIGN_BYTES
}
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_HEADER: u8 = 3;
const DIR: &str = "/toy";
const LOG: &str = "/toy/log";
const LOG_TMP: &str = "/toy/log.tmp";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    lsn: u64,
    durable_lsn: u64,
    key: Key,
    op: u8,
    value: Value,
}

fn encode(record: &Record) -> [u8; RECORD_BYTES as usize] {
    let mut bytes = [0; RECORD_BYTES as usize];
    bytes[4..12].copy_from_slice(&record.lsn.to_le_bytes());
    bytes[12..20].copy_from_slice(&record.durable_lsn.to_le_bytes());
    bytes[20..22].copy_from_slice(&record.key.to_le_bytes());
    bytes[22] = record.op;
    bytes[23..27].copy_from_slice(&record.value.to_le_bytes());
    let crc = crc32fast::hash(&bytes[4..]);
    bytes[0..4].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes a record whose checksum holds; `None` for anything else.
fn decode(bytes: &[u8]) -> Option<Record> {
    let field = |range: std::ops::Range<usize>| bytes.get(range);
    let crc = u32::from_le_bytes(field(0..4)?.try_into().ok()?);
    if bytes.len() != RECORD_BYTES as usize || crc32fast::hash(&bytes[4..]) != crc {
        return None;
    }
    Some(Record {
        lsn: u64::from_le_bytes(field(4..12)?.try_into().ok()?),
        durable_lsn: u64::from_le_bytes(field(12..20)?.try_into().ok()?),
        key: u16::from_le_bytes(field(20..22)?.try_into().ok()?),
        op: bytes[22],
        value: u32::from_le_bytes(field(23..27)?.try_into().ok()?),
    })
}

/// A toy store (see the module docs).
pub struct ToyStore {
    bug: ToyBug,
    file: SimFile,
    tail_bytes: u64,
    next_lsn: u64,
    durable_lsn: u64,
    state: BTreeMap<Key, Value>,
    poisoned: bool,
}

fn path(text: &str) -> &Path {
    Path::new(text)
}

/// Creates `/toy/log` crash-safely: header to a temporary file, synced, renamed, dir synced.
fn create_log(env: &SimEnv, bug: ToyBug) -> Result<(), StoreError> {
    match env.create_dir(path(DIR)) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => return Err(error.into()),
        _ => {}
    }
    env.sync_dir(path("/"))?;
    let tmp = env.open(path(LOG_TMP), OpenOptions::create().truncate(true))?;
    let header = Record { lsn: 0, durable_lsn: 0, key: 0, op: OP_HEADER, value: 0 };
    tmp.write_all_at(&encode(&header), 0)?;
    tmp.sync_data()?;
    env.rename(path(LOG_TMP), path(LOG))?;
    if bug != ToyBug::SkipDirSync {
        env.sync_dir(path(DIR))?;
    }
    Ok(())
}

/// What a scan of the log found.
struct Scan {
    state: BTreeMap<Key, Value>,
    next_lsn: u64,
    valid_bytes: u64,
}

fn scan(bytes: &[u8], bug: ToyBug) -> Result<Scan, StoreError> {
    let records: Vec<&[u8]> = bytes.chunks(RECORD_BYTES as usize).collect();
    match records.first().and_then(|r| decode(r)) {
        Some(header) if header.op == OP_HEADER && header.lsn == 0 => {}
        _ => return Err(StoreError::DataLoss(format!("{LOG}: bad header record at offset 0"))),
    }
    let mut state = BTreeMap::new();
    let mut next_lsn = 1;
    let mut slot = 1;
    while slot < records.len() {
        let Some(record) = expected_record(&records, slot, next_lsn) else {
            let boundary = (align_up(slot as u64 * RECORD_BYTES) / RECORD_BYTES) as usize;
            if boundary > slot && expected_record(&records, boundary, next_lsn).is_some() {
                slot = boundary;
                continue;
            }
            if bug != ToyBug::TruncateMidLogCorruption {
                check_no_later_claim(&records[slot + 1..], next_lsn, slot)?;
            }
            return Ok(Scan { state, next_lsn, valid_bytes: slot as u64 * RECORD_BYTES });
        };
        match record.op {
            OP_PUT => state.insert(record.key, record.value),
            _ => state.remove(&record.key),
        };
        next_lsn += 1;
        slot += 1;
    }
    Ok(Scan { state, next_lsn, valid_bytes: records.len() as u64 * RECORD_BYTES })
}

/// The record in `slot` if it is the put or delete with lsn `next_lsn`.
fn expected_record(records: &[&[u8]], slot: usize, next_lsn: u64) -> Option<Record> {
    let record = decode(records.get(slot)?)?;
    (record.lsn == next_lsn && (record.op == OP_PUT || record.op == OP_DELETE)).then_some(record)
}

/// A bad record ends the log only if no later record says it was durable.
fn check_no_later_claim(later: &[&[u8]], bad_lsn: u64, bad_slot: usize) -> Result<(), StoreError> {
    for (index, bytes) in later.iter().enumerate() {
        if let Some(record) = decode(bytes)
            && record.op != OP_HEADER
            && record.durable_lsn >= bad_lsn
        {
            return Err(StoreError::DataLoss(format!(
                "{LOG}: record lsn {bad_lsn} at offset {} is damaged, but the record at offset {} says it was durable",
                bad_slot as u64 * RECORD_BYTES,
                (bad_slot + 1 + index) as u64 * RECORD_BYTES
            )));
        }
    }
    Ok(())
}

impl ToyStore {
    /// Opens the toy store with `bug` planted (see [`KvStore::open`]).
    pub fn open_with(env: &SimEnv, bug: ToyBug) -> Result<Self, StoreError> {
        if !env.exists(path(LOG))? {
            create_log(env, bug)?;
        }
        // An earlier open may have failed after the rename but before the directory sync
        // returned: the entry is durable only once a directory sync succeeds, so every open
        // syncs it again.
        if bug != ToyBug::SkipDirSync {
            env.sync_dir(path(DIR))?;
        }
        let file = env.open(path(LOG), OpenOptions::read_write())?;
        let mut bytes = vec![0; file.len()? as usize];
        file.read_exact_at(&mut bytes, 0)?;
        let scan = scan(&bytes, bug)?;
        let mut tail_bytes = scan.valid_bytes;
        if tail_bytes < bytes.len() as u64 {
            if bug == ToyBug::AppendBehindTornTail {
                tail_bytes = (bytes.len() as u64).div_ceil(RECORD_BYTES) * RECORD_BYTES;
            } else {
                file.set_len(tail_bytes)?;
            }
        }
        // What was recovered may sit only in the page cache: make it durable before any new
        // record can vouch for it.
        file.sync_data()?;
        let durable_lsn = scan.next_lsn - 1;
        let tail_bytes = align_up(tail_bytes);
        Ok(Self {
            bug,
            file,
            tail_bytes,
            next_lsn: scan.next_lsn,
            durable_lsn,
            state: scan.state,
            poisoned: false,
        })
    }

    fn fail<T>(&mut self, error: std::io::Error) -> Result<T, StoreError> {
        self.poisoned = true;
        Err(StoreError::Io(error))
    }
}

impl KvStore for ToyStore {
    type Config = ToyBug;

    fn name(&self) -> String {
        self.bug.workload_name().to_owned()
    }

    fn open(env: &SimEnv, bug: &ToyBug) -> Result<Self, StoreError> {
        Self::open_with(env, *bug)
    }

    fn destroy(env: &SimEnv) -> std::io::Result<()> {
        for file in [LOG, LOG_TMP] {
            if env.exists(path(file))? {
                env.remove_file(path(file))?;
            }
        }
        if env.exists(path(DIR))? { env.sync_dir(path(DIR)) } else { Ok(()) }
    }

    fn writes_per_commit_max(_: &ToyBug) -> usize {
        1
    }

    fn commit(&mut self, writes: &[Write], durable: bool) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let &[(key, value)] = writes else {
            panic!("the toy store commits one write at a time, got {}", writes.len());
        };
        let op = if value.is_some() { OP_PUT } else { OP_DELETE };
        let record =
            Record { lsn: self.next_lsn, durable_lsn: self.durable_lsn, key, op, value: value.unwrap_or(0) };
        if let Err(error) = self.file.write_all_at(&encode(&record), self.tail_bytes) {
            return self.fail(error);
        }
        self.tail_bytes += RECORD_BYTES;
        self.next_lsn += 1;
        match value {
            Some(value) => self.state.insert(key, value),
            None => self.state.remove(&key),
        };
        if durable && self.bug != ToyBug::AckBeforeSync { self.sync() } else { Ok(()) }
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let result = match self.file.sync_data() {
            Err(error) if self.bug == ToyBug::RetryFailedFsync && !is_crash(&error) => self.file.sync_data(),
            other => other,
        };
        match result {
            Ok(()) => {
                self.durable_lsn = self.next_lsn - 1;
                self.tail_bytes = align_up(self.tail_bytes);
                Ok(())
            }
            Err(error) => self.fail(error),
        }
    }

    fn get(&self, key: Key) -> Result<Option<Value>, StoreError> {
        Ok(self.state.get(&key).copied())
    }

    fn state(&self) -> Result<BTreeMap<Key, Value>, StoreError> {
        Ok(self.state.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_any_flipped_bit_is_refused() {
        let record = Record { lsn: 7, durable_lsn: 5, key: 3, op: OP_PUT, value: 0xdead_beef };
        let bytes = encode(&record);
        assert_eq!(decode(&bytes), Some(record));
        for bit in 0..(RECORD_BYTES * 8) as usize {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&damaged), None, "bit {bit}");
        }
        assert_eq!(decode(&[0; 32]), None, "zeros are not a record");
        assert_eq!(decode(&bytes[..31]), None, "a short slice is not a record");
    }

    #[test]
    fn scan_reports_damage_that_a_later_record_vouches_for() {
        let header = Record { lsn: 0, durable_lsn: 0, key: 0, op: OP_HEADER, value: 0 };
        let put = |lsn, durable_lsn| Record { lsn, durable_lsn, key: 1, op: OP_PUT, value: lsn as u32 };
        let mut log: Vec<u8> = [header, put(1, 0), put(2, 1), put(3, 2)].iter().flat_map(encode).collect();
        log[2 * 32 + 9] ^= 1;
        assert!(matches!(scan(&log, ToyBug::None), Err(StoreError::DataLoss(_))));
        let truncated = scan(&log, ToyBug::TruncateMidLogCorruption).map_err(|e| e.to_string());
        assert_eq!(truncated.map(|s| s.next_lsn).ok(), Some(2), "the buggy scan drops the vouched record");
        let torn: Vec<u8> = [header, put(1, 0), put(2, 0)].iter().flat_map(encode).chain([0xff; 7]).collect();
        let scanned = scan(&torn, ToyBug::None).map_err(|e| e.to_string());
        assert_eq!(
            scanned.map(|s| (s.next_lsn, s.valid_bytes)).ok(),
            Some((3, 96)),
            "a torn tail ends the log"
        );
    }
}
