//! Durability notification: callbacks registered on an lsn, fired once the shard's WAL is
//! durable through it.
//!
//! No thread waits: a callback is stored with its lsn and fired by whichever call next makes
//! the WAL durable past it (a committer leading or joining a group sync, `sync`, `tick`, a
//! checkpoint), after that call released the shard's lock, in lsn order and then registration
//! order, so under `SimEnv` the firing order is deterministic.
//!
//! Invariants:
//! - a callback fires exactly once: `Ok(durable_lsn)` only when the WAL's durable lsn covers
//!   its lsn, `Err` when the shard failed first (its outcome is then unknown);
//! - registering on an lsn that is already durable fires at once, in the caller;
//! - no callback runs while the shard's lock or the waiter list's lock is held, so a callback
//!   may call back into the kernel.

use std::sync::{Mutex, MutexGuard};

use super::{Inner, Shard, ShardError};
use crate::env::Env;
use crate::wal::Lsn;

/// What a durability callback is given: the durable lsn, or why the shard failed first.
pub type DurableCallback = Box<dyn FnOnce(Result<Lsn, ShardError>) + Send>;

/// Callbacks in registration order, each with the lsn it waits for.
pub(super) type Waiters = Vec<(Lsn, DurableCallback)>;

fn lock_waiters(waiters: &Mutex<Waiters>) -> MutexGuard<'_, Waiters> {
    // A callback never runs under this lock, so a poisoned one only held a push or a split.
    waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<E: Env + Clone> Shard<E> {
    /// Calls `callback` once `lsn` is durable (at once if it already is), or with the error
    /// if the shard fails first.
    pub fn on_durable(&self, lsn: Lsn, callback: DurableCallback) {
        lock_waiters(&self.waiters).push((lsn, callback));
        self.notify_durable();
    }

    /// Callbacks still waiting.
    pub fn durable_waiters(&self) -> usize {
        lock_waiters(&self.waiters).len()
    }

    /// Fires every callback whose lsn is durable now, or all of them with the error if the
    /// shard is failed. Called after every sync and checkpoint, with no lock held.
    pub(super) fn notify_durable(&self) {
        // Most commits register no callback: then neither the shard's lock nor the WAL's is
        // taken. A callback registered after this check fires from its own registration.
        if lock_waiters(&self.waiters).is_empty() {
            return;
        }
        let failure = match &*self.lock() {
            Inner::Failed { failure, .. } => Some(self.failed_error(failure)),
            Inner::Serving(_) => None,
        };
        let durable = self.wal.as_ref().and_then(|wal| wal.durable_lsn().ok()).unwrap_or(0);
        let ready: Waiters = {
            let mut waiters = lock_waiters(&self.waiters);
            if waiters.is_empty() {
                return;
            }
            let (mut ready, waiting): (Waiters, Waiters) =
                waiters.drain(..).partition(|(lsn, _)| failure.is_some() || *lsn <= durable);
            *waiters = waiting;
            // Stable: equal lsns keep registration order.
            ready.sort_by_key(|(lsn, _)| *lsn);
            ready
        };
        for (_, callback) in ready {
            callback(match &failure {
                Some(error) => Err(error.clone()),
                None => Ok(durable),
            });
        }
    }
}
