//! The write-ahead log: segmented, checksummed records with group commit and crash recovery.
//!
//! Owns the segment files of one directory. [`Wal::open`] recovers (see [`scan`]), truncates a
//! torn tail and syncs what it recovered before anything new is appended; [`Wal::append`]
//! writes a record and returns its lsn; [`Wal::sync`] makes everything appended durable with
//! one sync (group commit).
//!
//! Invariants:
//! - lsns are dense and increasing across segments; `durable_lsn <= last_lsn`;
//! - a record is acknowledged durable (`sync` returned) only after the bytes holding it were
//!   written and synced; its `durable_lsn` field never claims more than was durable when it
//!   was written;
//! - a segment is synced before the next one receives records, and a new segment's header and
//!   directory entry are durable before its first record is written;
//! - after a sync, the next record starts on a new 4096-byte sector, so a torn append never
//!   damages a synced record, even without powersafe overwrite;
//! - the log never appends behind garbage: recovery truncates (and re-preallocates) the torn
//!   tail and syncs before the first new append;
//! - with preallocation, zeros are written ahead of the tail in steps of at most
//!   [`PREALLOCATE_STEP_BYTES_MAX`], each starting on a sector boundary past every written
//!   record, so a torn zero-fill never reaches a record and the zero tail recovery scans is at
//!   most a step and a half (an empty log opens without reading a segment's worth of zeros).
//!   A step is written by the append that needs it or, earlier, by [`Wal::prepare_ahead`]
//!   once the tail has passed the middle of the last step (the kernel's `tick` does this and
//!   syncs the new length itself, [`shared::SharedWal::sync_ahead`], so a commit's sync need
//!   not carry the file's growth); so at most one step plus one prepared half-step of zeros
//!   lies ahead of the tail. In a bulk phase (more than a step appended since the segment's
//!   last sync, [`Wal::in_bulk_phase`]) no zeros are written: the records grow the file
//!   themselves, since no sync would profit from zeros they overwrite, and the first step
//!   after it starts on the sector past the last record;
//! - any failed write or sync poisons the log: every later call fails with
//!   [`WalError::Poisoned`] until it is reopened; a failed sync is never retried.
//!
//! Which segments must exist, and how far the log reached (issue #13, rule 15): the floor
//! marker (`FLOOR`, see [`floor`]) names the newest segment and the highest durable lsn. It is
//! written when a segment is sealed (after its successor is durable) and when the log is closed
//! ([`Wal::record_floor`]), never per commit. A recovery whose log ends below the marker's lsn,
//! or lacks the segment it names, is corruption naming the file: the newest segment deleted,
//! truncated, replaced or zeroed is a reported loss, not a torn tail. What stays undetectable
//! (the `undetectable` class): single-copy damage to records appended since the marker was last
//! written (after the last seal, on a store not closed cleanly since) and not vouched for by a
//! later record or a vouching tick, since no durable fact contradicts a log cut there; and the
//! marker deleted together with the records it vouches for.
//!
//! On-disk footprint of a log: its segments, each a 4 KiB header plus its records, the last one
//! followed by up to one and a half preallocation steps of zeros (a step is 1 MiB for segments of 4
//! MiB or more). Segments rotate at `segment_size_bytes` (64 MiB by default) and are deleted by
//! [`Wal::truncate_before`] once a checkpoint covers them; an empty log takes 4 KiB + 1 MiB.
//!
//! Known limit (fsyncgate): a failed sync may mark pages clean without writing them, and no
//! later sync writes them. Reopening the log *in the same process* (or, on the real OS, after a
//! process restart, since the page cache outlives it) then reads those pages from the cache and
//! cannot tell they are not on disk. After a poisoned log, restart the process, and treat
//! records after the last successful sync as lost if the machine did not restart either. The
//! simulator models every process crash as a machine crash, which drops the cache.

pub mod aries;
pub mod error;
pub mod floor;
pub mod format;
pub mod scan;
pub mod shared;

use std::path::{Path, PathBuf};

use crate::env::Env;
pub use error::WalError;
pub use format::{Lsn, Record, RecordKind, RecordRef, StoreIdentity};
use format::{RECORD_PAYLOAD_BYTES_MAX, SEGMENT_HEADER_BYTES, SYNC_ALIGN_BYTES, SegmentHeader};
pub use scan::{CoveredDamage, Dropped, RecoveryMode, ScanReport};

/// Smallest segment size the options accept.
pub const SEGMENT_SIZE_BYTES_MIN: u64 = 2 * SEGMENT_HEADER_BYTES;
/// Largest segment size the options accept.
pub const SEGMENT_SIZE_BYTES_MAX: u64 = 1 << 30;
/// Default segment size.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Largest step of preallocation ahead of the tail (see [`WalOptions::preallocate_step_bytes`]).
pub const PREALLOCATE_STEP_BYTES_MAX: u64 = 1024 * 1024;

/// How durable a sync makes the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// No sync: the records survive a process crash only if the OS writes them back.
    None,
    /// `fdatasync`: the records and the file length are durable.
    Data,
    /// `fsync`: also every other metadata of the file.
    All,
}

/// Options of a log, validated by [`WalOptions::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Segments rotate when the next record would pass this size, in bytes
    /// ([`SEGMENT_SIZE_BYTES_MIN`]..=[`SEGMENT_SIZE_BYTES_MAX`]; default 64 MiB).
    pub segment_size_bytes: u64,
    /// Keep zeroed space written ahead of the tail, so most commits' syncs never change the
    /// file size (cheaper `fdatasync`). The space is written in steps of
    /// [`WalOptions::preallocate_step_bytes`], not whole segments, so a log's footprint follows
    /// its data. Default on.
    pub preallocate: bool,
    /// How recovery treats damage. Default [`RecoveryMode::TolerateTornTail`].
    pub recovery_mode: RecoveryMode,
    /// The store and shard this log belongs to: written into every segment header, and a
    /// segment naming another is refused at recovery. Default: a standalone log.
    pub identity: StoreIdentity,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            preallocate: true,
            recovery_mode: RecoveryMode::default(),
            identity: StoreIdentity::default(),
        }
    }
}

impl WalOptions {
    /// How far ahead of the tail preallocation writes zeros at a time: a quarter of the segment
    /// size, at least one sector and at most 1 MiB (`PREALLOCATE_STEP_BYTES_MAX`), a multiple of
    /// 4096. An empty segment holds its header plus one step.
    pub fn preallocate_step_bytes(&self) -> u64 {
        (self.segment_size_bytes / 4)
            .next_multiple_of(SYNC_ALIGN_BYTES)
            .clamp(SYNC_ALIGN_BYTES, PREALLOCATE_STEP_BYTES_MAX)
    }

    /// Checks every bound.
    pub fn validate(&self) -> Result<(), WalError> {
        if !(SEGMENT_SIZE_BYTES_MIN..=SEGMENT_SIZE_BYTES_MAX).contains(&self.segment_size_bytes) {
            return Err(WalError::InvalidOptions(format!(
                "segment_size_bytes {} is not in {SEGMENT_SIZE_BYTES_MIN}..={SEGMENT_SIZE_BYTES_MAX}",
                self.segment_size_bytes
            )));
        }
        if !self.segment_size_bytes.is_multiple_of(SYNC_ALIGN_BYTES) {
            return Err(WalError::InvalidOptions(format!(
                "segment_size_bytes {} is not a multiple of {SYNC_ALIGN_BYTES}",
                self.segment_size_bytes
            )));
        }
        Ok(())
    }
}

/// Counters of a log since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended.
    pub records: u64,
    /// Bytes appended (record slots, padding excluded).
    pub bytes: u64,
    /// Syncs that made records durable.
    pub syncs: u64,
    /// Records made durable by those syncs.
    pub records_synced: u64,
    /// Segments created.
    pub segments_created: u64,
    /// Segments deleted by `truncate_before`.
    pub segments_deleted: u64,
}

impl WalStats {
    /// Average records per sync (group commit batch size).
    pub fn average_batch(&self) -> f64 {
        self.records_synced as f64 / self.syncs.max(1) as f64
    }
}

struct Segment<F> {
    id: u64,
    file: F,
    path: PathBuf,
    tail: u64,
    /// The file's length when preallocating (zeros past the tail, ending on a multiple of
    /// 4096), or the end of the last record's slot if a bulk phase let records grow the file
    /// ([`Wal::in_bulk_phase`]; the file then ends at the record, before its padding): appends
    /// below it never change the file size beyond it.
    preallocated: u64,
    /// The tail when the segment was last synced (or opened): more than a preallocation step
    /// appended past it is a bulk phase, which writes no zeros ahead.
    synced_tail: u64,
}

/// An open write-ahead log.
pub struct Wal<E: Env> {
    env: E,
    dir: PathBuf,
    options: WalOptions,
    active: Segment<E::File>,
    /// Segments on disk, oldest first: (id, first lsn).
    segments: Vec<(u64, Lsn)>,
    next_lsn: Lsn,
    durable_lsn: Lsn,
    poisoned: Option<String>,
    stats: WalStats,
}

impl<E: Env> std::fmt::Debug for Wal<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("next_lsn", &self.next_lsn)
            .field("durable_lsn", &self.durable_lsn)
            .finish()
    }
}

fn io<T>(op: &'static str, path: &Path, result: std::io::Result<T>) -> Result<T, WalError> {
    result.map_err(|e| WalError::io(op, path, e))
}

mod invariants;
mod open;
pub(crate) mod window;
mod write;

impl<E: Env> Wal<E> {
    /// The lsn the next record gets.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// The last appended lsn (0: none).
    pub fn last_lsn(&self) -> Lsn {
        self.next_lsn - 1
    }

    /// The highest lsn known durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable_lsn
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        self.stats.clone()
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What a floor marker written now would say: the active segment, and `lsn` (at most the
    /// durable lsn).
    fn floor(&self, lsn: Lsn) -> floor::Floor {
        floor::Floor {
            identity: self.options.identity,
            segment_id: self.active.id,
            lsn: lsn.min(self.durable_lsn),
        }
    }

    /// Records in the floor marker (see [`floor`]) that the log reached its active segment and
    /// `lsn` (at most the durable lsn; a caller whose last records carry nothing, such as a
    /// vouching record, passes the last lsn that matters), so recovery reports a log found
    /// shorter as a loss. Called at close; rotation records it on its own. Costs one small
    /// file write, two syncs and a rename.
    pub fn record_floor(&mut self, lsn: Lsn) -> Result<(), WalError> {
        self.check_poisoned()?;
        floor::write_floor(&self.env, &self.dir, &self.floor(lsn))
    }

    /// The cause, if an earlier failure poisoned the log.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }
}

fn segment_header(id: u64, first_lsn: Lsn, identity: StoreIdentity) -> Vec<u8> {
    format::encode_segment_header(&SegmentHeader { segment_id: id, first_lsn, identity }).to_vec()
}

const _: () = assert!(RECORD_PAYLOAD_BYTES_MAX as u64 <= SEGMENT_SIZE_BYTES_MAX);
