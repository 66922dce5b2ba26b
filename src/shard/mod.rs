//! One shard: a WAL, a checkpoint store, an epoch tracker and the in-memory state, recovering
//! independently of every other shard.
//!
//! # Layout
//!
//! ```text
//! <shard dir>/wal/    the shard's WAL (crate::wal); one record per committed batch (record.rs)
//! <shard dir>/ckpt/   its checkpoint store (crate::checkpoint)
//! ```
//!
//! # State and keys
//!
//! The state is one ordered map. Its keys carry a one-byte namespace: [`NS_USER`] for the
//! user's keys, [`NS_DOC`] for the ids of completed documents, so both are checkpointed and
//! replayed by the same code and a user key can never be taken for a document id.
//!
//! # Sync state machine
//!
//! ```text
//!   Clean --commit--> Dirty --sync--> Syncing --ok--> Clean (or Dirty if more was committed)
//!                                        \--error--> SyncFailed  (the shard is failed)
//! ```
//!
//! A durable commit goes to `Syncing` at once, under the lock it holds for its append, and
//! waits for the WAL's group sync without the lock; only the leader of that sync retakes the
//! lock to record it (`Clean`, or `Dirty` if more was committed meanwhile), so the followers
//! it covered return without the lock. A segment seal that made a follower durable with no
//! leader leaves `Syncing` until the next sync records it (`tick` syncs such a shard).
//!
//! A failed sync is never retried in place (DESIGN.md rule 8, "fsyncgate"): the pages it
//! covered may be gone while the OS reports them clean. The shard fails: every operation on it
//! returns [`ShardError::Failed`] naming it, while other shards keep serving.
//!
//! # Failed but serving reads (DESIGN.md rule 16)
//!
//! A shard failed by a *write* (a WAL append, or a checkpoint's own files, that hit ENOSPC or
//! EIO) keeps the state it held and serves reads of it (`get`, `scan`, documents): the failed
//! batch was never applied, so the state is what was committed before, exactly what a
//! serving shard would return. Writes, syncs and checkpoints are refused with
//! [`ShardError::Failed`] as for any failed shard, and [`ShardStatus::serves_reads`] says so.
//! A failed *sync* call (the shard's sync, the WAL sync a checkpoint starts with, the floor
//! marker at close) and a failure at open serve nothing: after fsyncgate what the shard holds
//! and what the disk holds have parted.
//!
//! The retry is a restart: reopening the kernel recovers the shard from what is on disk, and it
//! starts Clean, since recovery syncs what it recovered. A shard that failed at open (it never
//! served in this process) may be recovered again in place (`Kernel::reopen_shard`) unless a sync
//! failed in it ([`Failure::after_failed_sync`]). After a failed *sync* (not after an I/O error at
//! open), reopen only in a new process, and on the real OS preferably after the machine restarted:
//! the WAL's known limit (see [`crate::wal`]) applies, since a reopen in the same process may read
//! pages that exist only in the page cache, acknowledge new writes on top of them, and then find
//! the log corrupt after a power loss. The simulator models every restart as a machine restart.
//!
//! # Invariants
//!
//! - the state equals the checkpoint plus every appended record, in lsn order: a batch is
//!   appended and applied under the same lock, so concurrent commits apply in log order;
//! - a commit is acknowledged durable only after the WAL's group sync covers its lsn;
//! - a checkpoint is *frozen* under the lock at the WAL's last lsn (an O(1) move of the
//!   changes since the last checkpoint, see [`state`]), so its state is exactly the records up
//!   to that lsn; it is written and published later, outside the lock, while commits go on
//!   (see [`checkpointing`]), and only after the WAL is synced through that lsn, so every one
//!   of its records is durable before it is (nothing durable points at something that is
//!   not: rule 11);
//! - the WAL is truncated only after the covering checkpoint is durably published, and only
//!   back to the oldest retained checkpoint, so a damaged latest checkpoint can be skipped
//!   (rule 13);
//! - the WAL to replay after a crash stays about the epoch config's `wal_bytes_max` (plus one
//!   record), whether or not anybody calls `tick`: a commit that brings the active epoch past
//!   half the cap freezes a checkpoint (no I/O); while it is pending, a commit that finds its
//!   writing behind schedule writes bounded steps of it (backpressure in steps, never a
//!   whole checkpoint; see [`checkpointing`]);
//! - any failed append, sync or checkpoint fails the shard; nothing is retried.

mod checkpointing;
mod failure;
mod invariants;
pub mod memtable;
mod notify;
mod ops;
mod reclaim;
pub mod record;
mod recovery;
pub mod state;
mod tickers;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::checkpoint::CheckpointOptions;
use crate::checkpoint::epoch::{EpochConfig, EpochId, EpochTracker};
use crate::env::Env;
use crate::env::SharedEnv;
use crate::recovery::RecoveryReport;
use crate::wal::shared::SharedWal;
use crate::wal::{Lsn, WalOptions};

pub use failure::{Failure, FailureCause};
pub use notify::DurableCallback;
pub use ops::{Committed, Intent, Tick, counter_value};
pub use recovery::{ProgressFn, RecoveryProgress};

/// Bytes: keys and values.
pub type Bytes = Vec<u8>;

/// Namespace byte of user keys in the shard state.
pub const NS_USER: u8 = 0;
/// Namespace byte of completed document ids in the shard state.
pub const NS_DOC: u8 = 1;

/// Where a shard is in the sync state machine (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncState {
    /// Everything committed is durable.
    Clean,
    /// Commits since the last sync are not durable yet.
    Dirty,
    /// A sync is in flight.
    Syncing,
    /// A sync failed: the shard is failed until the kernel is reopened.
    SyncFailed,
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncState::Clean => "clean",
            SyncState::Dirty => "dirty",
            SyncState::Syncing => "syncing",
            SyncState::SyncFailed => "sync-failed",
        })
    }
}

/// Counters of one shard since the kernel was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// User keys present.
    pub entries: u64,
    /// Reads served (gets and scans).
    pub reads: u64,
    /// Writes committed (puts, deletes, increments).
    pub writes: u64,
    /// Batches committed.
    pub commits: u64,
    /// Syncs that succeeded.
    pub syncs: u64,
    /// Checkpoints published.
    pub checkpoints: u64,
    /// WAL bytes appended.
    pub wal_bytes: u64,
    /// Chunks of checkpoint data written (a checkpoint is written a bounded chunk at a time).
    pub checkpoint_chunks: u64,
    /// Steps of a pending checkpoint's writing that commits took as backpressure (behind
    /// schedule past the WAL cap; see `shard::checkpointing`).
    pub backpressure_steps: u64,
}

/// What `Shard::status` reports (and, per shard, `Kernel::shard_status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    /// The shard.
    pub shard: u32,
    /// Its sync state.
    pub sync: SyncState,
    /// Why it is failed (`None`: serving).
    pub failed: Option<Failure>,
    /// Whether it serves reads: always when serving; when failed, only if a write (not a
    /// sync) failed it and it keeps the state it held (see the module docs).
    pub serves_reads: bool,
    /// The last lsn appended (0: none).
    pub last_lsn: Lsn,
    /// The highest lsn known durable.
    pub durable_lsn: Lsn,
    /// The active epoch.
    pub epoch: u64,
    /// The latest checkpoint published or recovered from.
    pub last_checkpoint: Option<u64>,
    /// The checkpoint frozen and not yet published, if any: the lsn it covers and how many
    /// of its entries are written (0 before its writing began).
    pub pending_checkpoint: Option<(Lsn, u64)>,
    /// Keys the merge of the last published checkpoint into the in-memory base has still to
    /// visit (0: merged; the merge runs in steps after the publication, see
    /// `shard::checkpointing`).
    pub merge_keys_left: u64,
}

/// Why a shard refused or failed an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardError {
    /// The shard is failed (fail-stop); the failure says why. See the module docs for how
    /// to recover it (after a failed sync: restart the process first).
    Failed {
        /// The shard.
        shard: u32,
        /// Why.
        failure: Failure,
    },
    /// An increment found a value that is not an 8-byte counter.
    NotACounter {
        /// The user key.
        key: Bytes,
        /// The length of the value found.
        len_bytes: usize,
    },
    /// The batch does not fit in one WAL record.
    BatchTooLarge {
        /// Its encoded size.
        bytes: usize,
        /// The largest record payload.
        max: usize,
    },
    /// An increment would pass `u64::MAX`.
    CounterOverflow {
        /// The user key.
        key: Bytes,
    },
}

impl fmt::Display for ShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardError::Failed { shard, failure } => write!(f, "shard {shard} is failed: {failure}"),
            ShardError::NotACounter { key, len_bytes } => {
                write!(f, "key \"{}\" holds {len_bytes} bytes, not an 8-byte counter", key.escape_ascii())
            }
            ShardError::BatchTooLarge { bytes, max } => {
                write!(f, "the transaction encodes to {bytes} bytes, more than the {max} of one WAL record")
            }
            ShardError::CounterOverflow { key } => {
                write!(f, "counter \"{}\" would overflow u64", key.escape_ascii())
            }
        }
    }
}

impl std::error::Error for ShardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShardError::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

impl ShardError {
    /// The failure behind this error, if the shard is failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ShardError::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

/// Options of one shard.
#[derive(Clone, Debug)]
pub struct ShardOptions {
    /// WAL options.
    pub wal: WalOptions,
    /// Checkpoint store options.
    pub checkpoint: CheckpointOptions,
    /// Epoch triggers: when one fires, `Shard::tick` (run by `Kernel::tick`) takes a checkpoint.
    pub epoch: EpochConfig,
}

type ShardEnv<E> = SharedEnv<E>;

/// The mutable part of a serving shard, behind the shard's lock.
struct Serving {
    /// The state; its delta layer is the set of keys changed since the last checkpoint.
    state: state::State,
    epochs: EpochTracker,
    /// The latest checkpoint published or recovered from.
    last_checkpoint: Option<Published>,
    /// The checkpoint frozen and not yet published.
    pending: Option<Pending>,
    sync: SyncState,
    stats: ShardStats,
    /// The highest lsn a durable record vouches for (its `durable_lsn` claims it) or that
    /// needs no vouching (an empty vouching record): rot at or below it is detectable.
    vouched_lsn: Lsn,
}

/// A published checkpoint, as the commit path needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Published {
    id: u64,
    lsn: Lsn,
    epoch: u64,
}

/// A checkpoint frozen under the lock, to be written outside it.
struct Pending {
    /// The WAL's last lsn at the freeze: the checkpoint covers exactly the records up to it.
    lsn: Lsn,
    /// The epoch the freeze sealed.
    sealed: EpochId,
    /// The state at the freeze.
    view: state::FrozenView,
    /// Entries the checkpoint holds at most, and those written so far (its schedule).
    entries_total: u64,
    entries_written: u64,
    /// The active epoch's WAL bytes when a commit last paced the writing.
    paced_bytes: u64,
}

enum Inner {
    Serving(Box<Serving>),
    /// `held`: the state of a shard failed by a write, still served to reads.
    Failed {
        failure: Failure,
        sync: SyncState,
        held: Option<Box<Serving>>,
    },
}

/// One shard. Shared by reference between threads; see the module docs.
pub struct Shard<E: Env> {
    id: u32,
    env: E,
    dir: PathBuf,
    wal: Option<SharedWal<E>>,
    inner: Mutex<Inner>,
    /// Threads waiting in [`Shard::lock`] now: long work in slices (the merge) hands the
    /// lock over to them between slices instead of taking it back at once.
    lock_waiting: AtomicUsize,
    /// The threads in [`Shard::tick`] now and their steps: a commit behind the checkpoint's
    /// schedule waits for a ticker's next step instead of writing steps itself (see
    /// `checkpointing`). None in the simulator, which runs one thread.
    tickers: tickers::Tickers,
    /// The checkpoint store, behind its own lock, held while a checkpoint is written (lock
    /// order: this one first, then `inner`; never the other way). `None`: failed at open.
    checkpoints: Mutex<Option<writer::Checkpointer<E>>>,
    reads: AtomicU64,
    /// Callbacks waiting for an lsn to become durable (see [`notify`]).
    waiters: Mutex<notify::Waiters>,
    recovery: Option<RecoveryReport>,
}

impl<E: Env> fmt::Debug for Shard<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard").field("id", &self.id).field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl<E: Env + Clone> Shard<E> {
    /// A shard that failed to open: every operation returns [`ShardError::Failed`] with
    /// `reason`.
    pub fn failed(id: u32, env: E, dir: &Path, failure: Failure) -> Self {
        Self {
            id,
            env,
            dir: dir.to_path_buf(),
            wal: None,
            inner: Mutex::new(Inner::Failed { failure, sync: SyncState::Clean, held: None }),
            lock_waiting: AtomicUsize::new(0),
            tickers: tickers::Tickers::default(),
            checkpoints: Mutex::new(None),
            reads: AtomicU64::new(0),
            waiters: Mutex::default(),
            recovery: None,
        }
    }

    /// The shard's number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The shard's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery found and did when the shard was opened (`None` if it failed to open).
    pub fn recovery_report(&self) -> Option<&RecoveryReport> {
        self.recovery.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.lock_waiting.fetch_add(1, Ordering::Relaxed);
        let locked = self.inner.lock();
        self.lock_waiting.fetch_sub(1, Ordering::Relaxed);
        // A panic while the lock was held leaves the state unknown: fail the shard.
        locked.unwrap_or_else(|poisoned| {
            let mut inner = poisoned.into_inner();
            if let Inner::Serving(_) = &*inner {
                let failure = Failure::panic("a thread holding the shard");
                *inner = Inner::Failed { failure, sync: SyncState::Clean, held: None };
            }
            inner
        })
    }

    fn failed_error(&self, failure: &Failure) -> ShardError {
        ShardError::Failed { shard: self.id, failure: failure.clone() }
    }

    /// Fails the shard (if it is not already) and returns the error naming it. A write
    /// failure (`sync` not [`SyncState::SyncFailed`]) keeps the state for reads.
    fn fail(&self, inner: &mut Inner, failure: Failure, sync: SyncState) -> ShardError {
        if let Inner::Serving(_) = inner {
            let placeholder = Inner::Failed { failure: failure.clone(), sync, held: None };
            if let Inner::Serving(serving) = std::mem::replace(inner, placeholder)
                && sync != SyncState::SyncFailed
                && serving.sync != SyncState::SyncFailed
            {
                *inner = Inner::Failed { failure, sync, held: Some(serving) };
            }
        }
        match inner {
            Inner::Failed { failure, .. } => self.failed_error(failure),
            Inner::Serving(_) => unreachable!("the shard was failed just above"),
        }
    }

    /// The shard's status.
    pub fn status(&self) -> ShardStatus {
        let inner = self.lock();
        let (last_lsn, durable_lsn) = match &self.wal {
            Some(wal) => (wal.last_lsn().unwrap_or(0), wal.durable_lsn().unwrap_or(0)),
            None => (0, 0),
        };
        match &*inner {
            Inner::Serving(s) => ShardStatus {
                shard: self.id,
                sync: s.sync,
                failed: None,
                serves_reads: true,
                last_lsn,
                durable_lsn,
                epoch: s.epochs.current().0,
                last_checkpoint: s.last_checkpoint.map(|p| p.id),
                pending_checkpoint: s.pending.as_ref().map(|p| (p.lsn, p.entries_written)),
                merge_keys_left: s.state.merge_keys_left() as u64,
            },
            Inner::Failed { failure, sync, held } => ShardStatus {
                shard: self.id,
                sync: *sync,
                failed: Some(failure.clone()),
                serves_reads: held.is_some(),
                last_lsn,
                durable_lsn,
                epoch: 0,
                last_checkpoint: None,
                pending_checkpoint: None,
                merge_keys_left: 0,
            },
        }
    }

    /// Background preparation of the shard's WAL (run by `Kernel::tick`, never by a
    /// commit): writes the next preallocation step ahead of need and syncs the file's new
    /// length at once, so no commit's sync has to carry a length change (see
    /// [`SharedWal::prepare_ahead`]). Returns whether it synced. A failed zero write fails the
    /// shard as a failed append does (it keeps serving reads); a failed sync fails it as any
    /// failed sync does (fsyncgate: never retried, nothing more acknowledged).
    pub fn prepare_wal_ahead(&self) -> Result<bool, ShardError> {
        let Some(wal) = self.wal.as_ref() else { return Ok(false) };
        let last_before = {
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            match wal.prepare_ahead() {
                Ok(false) => return Ok(false),
                Ok(true) => wal.last_lsn().unwrap_or(0),
                Err(error) => {
                    let sync = serving.sync;
                    return Err(self.fail(&mut inner, Failure::wal("preallocate", error), sync));
                }
            }
        };
        let result = wal.sync_ahead();
        let led = matches!(result, Ok((_, true)));
        if led || result.is_err() {
            self.record_sync(last_before, result)?;
            self.notify_durable();
        }
        Ok(led)
    }

    /// The shard's counters (zero for a shard that failed to open).
    pub fn stats(&self) -> ShardStats {
        let reads = self.reads.load(Ordering::Relaxed);
        match &*self.lock() {
            Inner::Serving(s) => ShardStats { reads, ..Self::serving_stats(s) },
            Inner::Failed { .. } => ShardStats { reads, ..ShardStats::default() },
        }
    }
}
