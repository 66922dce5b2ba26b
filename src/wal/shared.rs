//! `SharedWal`: a thread-safe log for real threads, where concurrent committers share syncs
//! (leader/follower group commit).
//!
//! The core [`Wal`] stays single-threaded and deterministic; the simulator drives it directly.
//! This wrapper is for [`OsEnv`](crate::env::OsEnv) users who commit from many threads. It
//! starts no thread of its own: every sync runs on a committer's thread.
//!
//! # Protocol
//!
//! One mutex guards the core and three fields: `syncing` (a leader's sync is in flight),
//! `rotations_waiting` and `want_all`. One condvar announces every change of them and of the
//! durable lsn. [`SharedWal::commit`]:
//!
//! 1. appends under the mutex and gets its lsn (for `Durability::None` it returns here);
//! 2. loops under the mutex: if `durable_lsn >= lsn` it returns `Ok`; else if the log is
//!    poisoned it returns the error; else if a sync is in flight (or an appender waits to
//!    rotate) it waits on the condvar as a **follower**; else it becomes the **leader**:
//!    [`Wal::sync_begin`] fixes the target (the last appended lsn, at least its own) and moves
//!    the tail to a new sector, the leader clones the handle of the active segment, sets
//!    `syncing` and releases the mutex;
//! 3. the leader syncs **outside** the mutex, so other committers keep appending into the next
//!    batch; then it retakes the mutex, clears `syncing`, records the outcome with
//!    [`Wal::sync_finish`] and wakes everyone. Followers whose lsn is now durable return; the
//!    first of the rest to run leads the next batch, which covers all of them.
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
//! - **Liveness.** `syncing` is cleared and the condvar notified on every path out of a sync,
//!   a panicking `Env` included (a guard poisons the log and wakes everyone), so no follower
//!   waits for a sync nobody runs. A panic while the mutex is held turns every later call into
//!   [`WalError::Poisoned`].
//!
//! `Durability::All`: a batch is synced with `sync_all` if any of its committers asked for
//! it, else with `sync_data`. As in the core, the record durability both give is the same
//! (`durable_lsn`); a segment seal uses `sync_data`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

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
    /// Notified whenever `syncing`, `rotations_waiting`, the durable lsn or poisoning change.
    turn: Condvar,
}

struct State<E: Env> {
    wal: Wal<SharedEnv<E>>,
    /// A leader's sync is in flight, outside the mutex.
    syncing: bool,
    /// Appenders waiting for the in-flight sync to end so that they may rotate.
    rotations_waiting: usize,
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
        let state = State { wal, syncing: false, rotations_waiting: 0, want_all: false };
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

    /// Deletes every segment whose records all precede `lsn`, as [`Wal::truncate_before`].
    pub fn truncate_before(&self, lsn: Lsn) -> Result<(), WalError> {
        self.lock()?.wal.truncate_before(lsn)
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
        // Would-be leaders held back by this appender may go now.
        self.turn.notify_all();
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
        let mut led = false;
        loop {
            if state.wal.durable_lsn() >= lsn {
                return Ok((state.wal.durable_lsn(), led));
            }
            if let Some(cause) = state.wal.poisoned() {
                return Err(WalError::Poisoned { cause: cause.to_string() });
            }
            state = if state.syncing || state.rotations_waiting > 0 {
                self.wait(state)?
            } else {
                let (state, synced) = self.lead(state)?;
                led |= synced;
                state
            };
        }
    }

    /// Runs one group sync as the leader: begins it under the mutex, syncs outside it,
    /// finishes it under the mutex and wakes every follower. Says whether it synced (nothing
    /// to sync: no).
    fn lead<'a>(&'a self, mut state: Guard<'a, E>) -> Result<(Guard<'a, E>, bool), WalError> {
        debug_assert!(!state.syncing);
        let durability = if std::mem::take(&mut state.want_all) { Durability::All } else { Durability::Data };
        let Some(ticket) = state.wal.sync_begin(durability)? else {
            return Ok((state, false));
        };
        let file = state.wal.active_file().clone();
        state.syncing = true;
        drop(state);
        let leading = Leading { shared: self, ticket, finished: false };
        let result = sync_file(&file, durability);
        Ok((leading.finish(result)?, true))
    }
}

/// The leader's in-flight sync. Finishing it clears `syncing` and wakes everyone; dropping it
/// unfinished (the `Env` panicked) poisons the log and wakes everyone too, so no follower
/// waits for a sync that nobody runs.
struct Leading<'a, E: Env> {
    shared: &'a SharedWal<E>,
    ticket: SyncTicket,
    finished: bool,
}

impl<'a, E: Env> Leading<'a, E> {
    fn finish(mut self, result: io::Result<()>) -> Result<Guard<'a, E>, WalError> {
        self.finished = true;
        let mut state = self.shared.lock()?;
        state.syncing = false;
        let outcome = state.wal.sync_finish(self.ticket, result);
        outcome.map(|_| state)
    }
}

impl<E: Env> Drop for Leading<'_, E> {
    fn drop(&mut self) {
        if !self.finished
            && let Ok(mut state) = self.shared.state.lock()
        {
            state.syncing = false;
            let error = io::Error::other("the thread running this sync panicked");
            let _poisoned = state.wal.sync_finish(self.ticket, Err(error));
        }
        self.shared.turn.notify_all();
    }
}
