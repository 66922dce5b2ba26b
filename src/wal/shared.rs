//! `SharedWal`: a thread-safe log for real threads, where concurrent committers share syncs
//! (leader/follower group commit).
//!
//! The core [`Wal`] stays single-threaded and deterministic; the simulator drives it directly.
//! This wrapper is for [`OsEnv`](crate::env::OsEnv) users who commit from many threads. It
//! starts no thread of its own: every sync runs on a committer's thread.
//!
//! # Protocol
//!
//! One mutex guards the core and four fields: `syncing` (a leader's sync is in flight),
//! `rotations_waiting`, `want_all` and `parked` (the followers waiting for an outcome).
//! [`SharedWal::commit`]:
//!
//! 1. appends under the mutex and gets its lsn (for `Durability::None` it returns here);
//! 2. loops under the mutex: if `durable_lsn >= lsn` it returns `Ok`; else if the log is
//!    poisoned it returns the error; else if a sync is in flight (or an appender waits to
//!    rotate) it **parks** as a follower (below); else it becomes the **leader**:
//!    [`Wal::sync_begin`] fixes the target (the last appended lsn, at least its own) and moves
//!    the tail to a new sector, the leader clones the handle of the active segment, sets
//!    `syncing` and releases the mutex;
//! 3. the leader syncs **outside** the mutex, so other committers keep appending into the next
//!    batch; then it retakes the mutex, clears `syncing`, records the outcome with
//!    [`Wal::sync_finish`], releases the parked followers and returns: its target covers its
//!    own record.
//!
//! # Parking
//!
//! A follower pushes `(lsn, its thread, outcome: PENDING)` onto `parked` under the mutex,
//! releases it and parks until its outcome is set. Whoever changes what decides an outcome
//! (a leader finishing, an appender's rotation, a panicking sync) settles the parked list
//! under the mutex: a follower whose lsn is durable is told that durable lsn and returns
//! without retaking the mutex; if the log failed, everyone is told to retry (retake the mutex
//! and find the error); and with no sync in flight and no rotation waiting, the first
//! uncovered follower alone is told to retry, to lead the next batch. Its sync covers every
//! parked record (each was appended before it parked), so one wake-up starts the next batch
//! and each follower is woken once, by the thread that decided its outcome: no herd on the
//! mutex, no follower waking the next in a chain. The unparks happen after the mutex is
//! released, so appenders never wait for them.
//!
//! # Why it is correct
//!
//! - **Acknowledgement.** `commit` returns `Ok` for a durable commit only when `durable_lsn >=
//!   lsn`, and `durable_lsn` moves only in `sync_finish` after a successful sync whose target
//!   was fixed after the record was written (the write happened under the mutex before
//!   `sync_begin`), or in a segment seal, which syncs under the mutex after every write it
//!   covers. A sync covers everything written to the file before it started.
//! - **Torn appends.** `sync_begin` moves the tail to the next 4096-byte boundary before the
//!   mutex is released, so records appended during the sync never share a sector with the
//!   records it covers, as the core's invariant demands.
//! - **Rotation.** The handle a leader syncs is the active segment's, and its target lives in
//!   that segment. An append that would rotate (which seals the segment with a sync of its own
//!   and then writes into a new file) waits until no sync is in flight, and no new leader
//!   starts while such an appender waits; so at most one sync of the log runs at any time, a
//!   leader's segment is still the active one when its sync finishes, and the seal runs only
//!   after the leader's outcome is known. Were seal and leader allowed to overlap, a leader's
//!   failed sync could mark pages clean and the seal then return `Ok` without writing them
//!   ("fsyncgate"), acknowledging records that are not durable. Holding back one appender for
//!   one sync per segment costs nothing measurable.
//! - **Sync failure.** A failed sync poisons the core (sticky, never retried). The leader gets
//!   the I/O error; every follower wakes, finds its lsn not durable and the log poisoned, and
//!   gets [`WalError::Poisoned`]; every later append or sync fails the same way. Nothing past
//!   the last good sync is acknowledged, because `durable_lsn` never moves again.
//! - **Liveness.** A follower parks only while a sync is in flight or an appender waits to
//!   rotate, and both end by settling the parked list (the leader's finish, or the rotating
//!   append), on every path out of a sync, a panicking `Env` included (a guard poisons the
//!   log and tells everyone to retry), so no follower waits for a sync nobody runs. A
//!   follower told to retry either leads (no sync in flight) or parks again behind a sync
//!   that some other leader began meanwhile. A panic while the mutex is held turns every
//!   later call into [`WalError::Poisoned`].
//!
//! `Durability::All`: a batch is synced with `sync_all` if any of its committers asked for
//! it, else with `sync_data`. As in the core, the record durability both give is the same
//! (`durable_lsn`); a segment seal uses `sync_data`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};

use super::write::{SyncTicket, sync_file};
use super::{Durability, Lsn, Record, RecordKind, ScanReport, Wal, WalError, WalOptions, WalStats};
use crate::env::Env;
#[cfg(not(feature = "internals"))]
use crate::env::SharedEnv;
/// `SharedEnv` lives beside `Env` now; these names stay here for code written before the move.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use crate::env::{SharedEnv, SharedFile};

/// A write-ahead log that many threads may commit to at once; see the module docs.
pub struct SharedWal<E: Env> {
    state: Mutex<State<E>>,
    /// Wakes appenders waiting to rotate when a sync ends (followers park instead).
    turn: Condvar,
}

struct State<E: Env> {
    wal: Wal<SharedEnv<E>>,
    /// A leader's sync is in flight, outside the mutex.
    syncing: bool,
    /// Appenders waiting for the in-flight sync to end so that they may rotate.
    rotations_waiting: usize,
    /// Followers parked until their outcome is decided (see "Parking" in the module docs);
    /// at most one per committing thread.
    parked: Vec<Arc<Parked>>,
    /// A committer of the next batch asked for `Durability::All`.
    want_all: bool,
}

type Guard<'a, E> = MutexGuard<'a, State<E>>;

impl<E: Env> std::fmt::Debug for SharedWal<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state.try_lock() {
            Ok(state) => f.debug_struct("SharedWal").field("wal", &state.wal).finish(),
            Err(_) => f.debug_struct("SharedWal").finish_non_exhaustive(),
        }
    }
}

fn panicked() -> WalError {
    WalError::Poisoned { cause: "a thread panicked while it held the log".into() }
}

impl<E: Env> SharedWal<E> {
    /// Opens (creating if needed) the log in `dir` like [`Wal::open`], calling `visit` for
    /// every recovered record in lsn order.
    pub fn open(
        env: E,
        dir: &Path,
        options: WalOptions,
        visit: impl FnMut(Record),
    ) -> Result<(Self, ScanReport), WalError> {
        let (wal, report) = Wal::open(SharedEnv(env), dir, options, visit)?;
        Ok((Self::from_wal(wal), report))
    }

    /// Shares a log opened on a [`SharedEnv`].
    pub fn from_wal(wal: Wal<SharedEnv<E>>) -> Self {
        // Postconditions of open: the writer is consistent, and what it recovered is durable.
        wal.check_invariants();
        debug_assert_eq!(wal.durable_lsn(), wal.last_lsn(), "open syncs what it recovered");
        let state = State { wal, syncing: false, rotations_waiting: 0, parked: Vec::new(), want_all: false };
        Self { state: Mutex::new(state), turn: Condvar::new() }
    }

    /// Appends a record and, unless `durability` is `None`, returns only once it is durable,
    /// sharing the sync with every concurrent committer. Returns the record's lsn. An error
    /// from a durable commit means the outcome is unknown: the record may or may not survive.
    pub fn commit(
        &self,
        kind: RecordKind,
        txn_id: u64,
        prev_lsn: Lsn,
        payload: &[u8],
        durability: Durability,
    ) -> Result<Lsn, WalError> {
        let mut frame = vec![0; super::format::RECORD_HEADER_BYTES + payload.len()];
        frame[super::format::RECORD_HEADER_BYTES..].copy_from_slice(payload);
        self.commit_frame(kind, txn_id, prev_lsn, &mut frame, durability)
    }

    /// [`SharedWal::commit`] of a payload built in place behind the header's room, as
    /// [`Wal::append_frame`] takes it: written without a copy.
    pub fn commit_frame(
        &self,
        kind: RecordKind,
        txn_id: u64,
        prev_lsn: Lsn,
        frame: &mut [u8],
        durability: Durability,
    ) -> Result<Lsn, WalError> {
        let state = self.lock()?;
        let (state, lsn) = self.append(state, kind, txn_id, prev_lsn, frame)?;
        if durability != Durability::None {
            let (durable, _) = self.wait_durable(state, lsn, durability)?;
            // Postcondition: a durable commit is acknowledged only once its lsn is durable.
            debug_assert!(durable >= lsn, "lsn {lsn} acknowledged with durable {durable}");
        }
        Ok(lsn)
    }

    /// Makes every record appended so far durable (joining or leading a group sync) and
    /// returns the durable lsn. `Durability::None` syncs nothing.
    pub fn sync(&self, durability: Durability) -> Result<Lsn, WalError> {
        self.sync_through(Lsn::MAX, durability)
    }

    /// Makes every record up to `lsn` durable (capped at the last appended one), joining a
    /// sync in flight that already covers it rather than waiting for the next, and returns
    /// the durable lsn. `Durability::None` syncs nothing.
    pub fn sync_through(&self, lsn: Lsn, durability: Durability) -> Result<Lsn, WalError> {
        Ok(self.sync_through_led(lsn, durability)?.0)
    }

    /// [`SharedWal::sync_through`], also saying whether this call led a group sync (ran a
    /// file sync that moved the durable lsn) rather than only joining or finding one.
    pub fn sync_through_led(&self, lsn: Lsn, durability: Durability) -> Result<(Lsn, bool), WalError> {
        let state = self.lock()?;
        if let Some(cause) = state.wal.poisoned() {
            return Err(WalError::Poisoned { cause: cause.to_string() });
        }
        if durability == Durability::None {
            return Ok((state.wal.durable_lsn(), false));
        }
        let target = lsn.min(state.wal.last_lsn());
        self.wait_durable(state, target, durability)
    }

    /// Background preparation of the log (for `tick`, never a commit): writes the next
    /// preallocation step ahead of need ([`Wal::prepare_ahead`]); if it wrote one, the caller
    /// leads a group sync at once with [`SharedWal::sync_ahead`], so the file's length change is made durable by this sync and not
    /// by the next commit's (on ext4 the first `fdatasync` after a file grows commits the
    /// journal: many times an overwrite's sync). That sync is an ordinary group sync: it
    /// covers whatever was appended before it began, commits arriving meanwhile park as
    /// followers, and a failure poisons the log. With a sync in flight or a rotation waiting
    /// it does not sync (the next commit's sync carries the length). Returns whether it
    /// wrote a step.
    ///
    /// The two halves are two calls so that a caller can tell a failed write (the zeros:
    /// [`SharedWal::prepare_ahead`]) from a failed sync ([`SharedWal::sync_ahead`]).
    pub fn prepare_ahead(&self) -> Result<bool, WalError> {
        self.lock()?.wal.prepare_ahead()
    }

    /// The sync half of the background preparation (see [`SharedWal::prepare_ahead`]): leads
    /// a group sync even if every appended record is durable, unless a sync is in flight or
    /// a rotation waits. Returns the durable lsn and whether it led a sync.
    pub fn sync_ahead(&self) -> Result<(Lsn, bool), WalError> {
        let state = self.lock()?;
        if let Some(cause) = state.wal.poisoned() {
            return Err(WalError::Poisoned { cause: cause.to_string() });
        }
        if state.syncing || state.rotations_waiting > 0 {
            return Ok((state.wal.durable_lsn(), false));
        }
        Ok((self.lead(state, true)?, true))
    }

    /// Deletes every segment whose records all precede `lsn`, as [`Wal::truncate_before`].
    pub fn truncate_before(&self, lsn: Lsn) -> Result<(), WalError> {
        self.lock()?.wal.truncate_before(lsn)
    }

    /// Retires the segments before `lsn`, as [`Wal::retire_before`].
    pub fn retire_before(&self, lsn: Lsn) -> Result<Vec<PathBuf>, WalError> {
        self.lock()?.wal.retire_before(lsn)
    }

    /// The retired segments left in the log's directory, as [`Wal::retired_files`].
    pub fn retired_files(&self) -> Result<Vec<PathBuf>, WalError> {
        self.lock()?.wal.retired_files()
    }

    /// Records the floor marker, as [`Wal::record_floor`].
    pub fn record_floor(&self, lsn: Lsn) -> Result<(), WalError> {
        self.lock()?.wal.record_floor(lsn)
    }

    /// The last appended lsn (0: none).
    pub fn last_lsn(&self) -> Result<Lsn, WalError> {
        Ok(self.lock()?.wal.last_lsn())
    }

    /// The highest lsn known durable.
    pub fn durable_lsn(&self) -> Result<Lsn, WalError> {
        Ok(self.lock()?.wal.durable_lsn())
    }

    /// Counters since open.
    pub fn stats(&self) -> Result<WalStats, WalError> {
        Ok(self.lock()?.wal.stats())
    }

    /// The cause, if an earlier failure poisoned the log.
    pub fn poisoned(&self) -> Result<Option<String>, WalError> {
        Ok(self.lock()?.wal.poisoned().map(str::to_string))
    }

    /// The directory of the log.
    pub fn dir(&self) -> Result<PathBuf, WalError> {
        Ok(self.lock()?.wal.dir().to_path_buf())
    }

    fn lock(&self) -> Result<Guard<'_, E>, WalError> {
        self.state.lock().map_err(|_| panicked())
    }

    fn wait<'a>(&'a self, state: Guard<'a, E>) -> Result<Guard<'a, E>, WalError> {
        self.turn.wait(state).map_err(|_| panicked())
    }

    /// Appends under the mutex. An append that would rotate waits until no sync is in flight
    /// (see "Rotation" in the module docs).
    fn append<'a>(
        &'a self,
        mut state: Guard<'a, E>,
        kind: RecordKind,
        txn_id: u64,
        prev_lsn: Lsn,
        frame: &mut [u8],
    ) -> Result<(Guard<'a, E>, Lsn), WalError> {
        let payload_len = frame.len().saturating_sub(super::format::RECORD_HEADER_BYTES);
        if !(state.syncing && state.wal.append_rotates(payload_len)) {
            let lsn = state.wal.append_frame(kind, txn_id, prev_lsn, frame)?;
            return Ok((state, lsn));
        }
        state.rotations_waiting += 1;
        while state.syncing {
            state = self.wait(state)?;
        }
        state.rotations_waiting -= 1;
        let result = state.wal.append_frame(kind, txn_id, prev_lsn, frame);
        // The seal may have made parked records durable, and would-be leaders held back by
        // this appender may go now (once per segment: unparked under the mutex).
        for parked in release_parked(&mut state, false) {
            parked.thread.unpark();
        }
        Ok((state, result?))
    }

    /// Waits, as a follower or the leader, until `lsn` is durable; returns the durable lsn
    /// and whether this call led a sync.
    fn wait_durable<'a>(
        &'a self,
        mut state: Guard<'a, E>,
        lsn: Lsn,
        durability: Durability,
    ) -> Result<(Lsn, bool), WalError> {
        debug_assert_ne!(durability, Durability::None, "waiting for no sync");
        debug_assert!(lsn <= state.wal.last_lsn(), "waiting for an lsn not appended");
        if durability == Durability::All {
            state.want_all = true;
        }
        loop {
            if state.wal.durable_lsn() >= lsn {
                return Ok((state.wal.durable_lsn(), false));
            }
            if let Some(cause) = state.wal.poisoned() {
                return Err(WalError::Poisoned { cause: cause.to_string() });
            }
            if !(state.syncing || state.rotations_waiting > 0) {
                let durable = self.lead(state, false)?;
                // The leader's target was the last appended lsn, at least its own.
                debug_assert!(durable >= lsn, "a leader's sync fell short of its own record");
                return Ok((durable, true));
            }
            match self.park(state, lsn)? {
                Woken::Durable(durable) => return Ok((durable, false)),
                Woken::Retry(guard) => state = guard,
            }
        }
    }

    /// Parks the calling follower until the outcome of `lsn` is decided (see "Parking" in
    /// the module docs): it returns covered without retaking the mutex, or retakes it to lead
    /// or to find the log failed.
    fn park<'a>(&'a self, mut state: Guard<'a, E>, lsn: Lsn) -> Result<Woken<'a, E>, WalError> {
        let parked = Arc::new(Parked { lsn, thread: thread::current(), outcome: AtomicU64::new(PENDING) });
        state.parked.push(Arc::clone(&parked));
        drop(state);
        loop {
            match parked.outcome.load(Ordering::Acquire) {
                // A spurious unpark, or none yet: the outcome is set before the unpark.
                PENDING => thread::park(),
                RETRY => return Ok(Woken::Retry(self.lock()?)),
                durable => return Ok(Woken::Durable(durable)),
            }
        }
    }

    /// Runs one group sync as the leader: begins it under the mutex, syncs outside it,
    /// finishes it under the mutex and releases the parked followers. Returns the durable
    /// lsn, which covers every record appended when it began.
    fn lead(&self, mut state: Guard<'_, E>, force: bool) -> Result<Lsn, WalError> {
        debug_assert!(!state.syncing);
        let durability = if std::mem::take(&mut state.want_all) { Durability::All } else { Durability::Data };
        let Some(ticket) = state.wal.sync_begin(durability, force)? else {
            unreachable!("a leader has a record to sync (durable < its lsn <= last) or forces one");
        };
        let file = state.wal.active_file().clone();
        state.syncing = true;
        drop(state);
        let leading = Leading { shared: self, ticket, finished: false };
        let result = sync_file(&file, durability);
        leading.finish(result)
    }

    /// Releases the parked followers whose outcome the change under `state` decided (all of
    /// them to retry with `everyone`), wakes appenders waiting to rotate, and unparks the
    /// released ones once the mutex is free.
    fn release(&self, mut state: Guard<'_, E>, everyone: bool) {
        let woken = release_parked(&mut state, everyone);
        let rotating = state.rotations_waiting > 0;
        drop(state);
        if rotating || everyone {
            self.turn.notify_all();
        }
        for parked in woken {
            parked.thread.unpark();
        }
    }
}

/// What a parked follower is told (see "Parking" in the module docs).
const PENDING: u64 = u64::MAX;
const RETRY: u64 = u64::MAX - 1;

/// A follower parked until its outcome is decided: `outcome` is [`PENDING`], [`RETRY`]
/// (retake the mutex and look again: lead the next batch, or find the log failed) or the
/// durable lsn that covers `lsn`. Set under the mutex, read after the unpark.
struct Parked {
    lsn: Lsn,
    thread: Thread,
    outcome: AtomicU64,
}

/// How a parked follower woke.
enum Woken<'a, E: Env> {
    /// Its record is durable through this lsn.
    Durable(Lsn),
    /// It holds the mutex again, to lead or to find the log failed.
    Retry(Guard<'a, E>),
}

/// Decides the outcome of every parked follower the state now settles: covered by the
/// durable lsn, or told to retry when the log failed (or `everyone`); and, with no sync in
/// flight and no appender waiting to rotate, the first uncovered one retries to lead the next
/// batch, whose sync covers every parked record (each was appended before it parked).
/// Returns the released followers, to unpark once the mutex is free.
fn release_parked<E: Env>(state: &mut State<E>, everyone: bool) -> Vec<Arc<Parked>> {
    let durable = state.wal.durable_lsn();
    debug_assert!(durable < RETRY, "an lsn never reaches the parking codes");
    let failed = everyone || state.wal.poisoned().is_some();
    let mut lead_free = !state.syncing && state.rotations_waiting == 0;
    let mut released = Vec::new();
    state.parked.retain(|parked| {
        let outcome = if parked.lsn <= durable {
            durable
        } else if failed || std::mem::take(&mut lead_free) {
            RETRY
        } else {
            return true;
        };
        parked.outcome.store(outcome, Ordering::Release);
        released.push(Arc::clone(parked));
        false
    });
    released
}

/// The leader's in-flight sync. Finishing it clears `syncing` and releases the parked
/// followers; dropping it unfinished (the `Env` panicked) poisons the log and releases
/// everyone too, so no follower waits for a sync that nobody runs.
struct Leading<'a, E: Env> {
    shared: &'a SharedWal<E>,
    ticket: SyncTicket,
    finished: bool,
}

impl<E: Env> Leading<'_, E> {
    fn finish(mut self, result: io::Result<()>) -> Result<Lsn, WalError> {
        self.finished = true;
        let mut state = match self.shared.state.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                // A panic under the mutex: release everyone (each finds the mutex poisoned).
                self.shared.release(poisoned.into_inner(), true);
                return Err(panicked());
            }
        };
        state.syncing = false;
        let outcome = state.wal.sync_finish(self.ticket, result);
        self.shared.release(state, false);
        outcome
    }
}

impl<E: Env> Drop for Leading<'_, E> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.syncing = false;
        let error = io::Error::other("the thread running this sync panicked");
        let _poisoned = state.wal.sync_finish(self.ticket, Err(error));
        self.shared.release(state, true);
    }
}
