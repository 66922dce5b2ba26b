//! The threads in a shard's `tick` (tickers) and their progress, so a commit behind the
//! checkpoint's schedule can wait for a ticker's next step instead of writing steps itself
//! (see `super::checkpointing`).
//!
//! # Invariants
//!
//! - `count` is the number of [`Ticking`] guards alive for the shard: incremented when a
//!   thread enters `tick`, decremented when it leaves (also on an error or a panic);
//! - `steps` only grows: every step a ticker takes and every exit from `tick` adds one, under
//!   its mutex, after the change it reports is visible, and wakes every waiter; so a waiter
//!   that read `steps` before it looked at the schedule cannot miss the step that changed it;
//! - in the simulator (one thread) `count` is 0 whenever a commit runs outside `tick`, so no
//!   commit ever waits there, and no `Env` call depends on any of this.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

std::thread_local! {
    /// Ticks this thread is in (of any shard): a commit made from within a tick (a durability
    /// callback that commits) must not wait for that tick's own progress.
    static TICKS_ON_THIS_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// The tickers of one shard (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Tickers {
    count: AtomicUsize,
    steps: Mutex<u64>,
    stepped: Condvar,
}

impl Tickers {
    fn steps_locked(&self) -> MutexGuard<'_, u64> {
        // The counter is a plain number: a panic elsewhere leaves it valid.
        self.steps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a thread other than this one is in the shard's `tick`.
    pub(super) fn another_ticking(&self) -> bool {
        self.count.load(Ordering::Acquire) > TICKS_ON_THIS_THREAD.with(Cell::get)
    }

    /// Steps reported so far: read it before looking at the schedule, then
    /// [`Tickers::wait_past`] it.
    pub(super) fn steps(&self) -> u64 {
        *self.steps_locked()
    }

    /// A ticker's step is done (its progress visible to the schedule): wakes the waiters.
    pub(super) fn stepped(&self) {
        *self.steps_locked() += 1;
        self.stepped.notify_all();
    }

    /// Waits until a step past `seen` is reported or no other thread is in `tick`.
    pub(super) fn wait_past(&self, seen: u64) {
        let mut steps = self.steps_locked();
        while *steps == seen && self.another_ticking() {
            steps = self.stepped.wait(steps).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Counts this thread in `tick` until the guard drops.
    pub(super) fn enter(&self) -> Ticking<'_> {
        self.count.fetch_add(1, Ordering::AcqRel);
        TICKS_ON_THIS_THREAD.with(|ticks| ticks.set(ticks.get() + 1));
        Ticking(self)
    }
}

/// A thread in the shard's `tick`, counted while it lasts; leaving wakes the waiters (they
/// write their steps themselves from then on).
pub(super) struct Ticking<'a>(&'a Tickers);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        TICKS_ON_THIS_THREAD.with(|ticks| ticks.set(ticks.get() - 1));
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.stepped();
    }
}
