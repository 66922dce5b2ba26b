//! An opt-in thread that runs [`Kernel::tick`] for real-OS users. The kernel itself starts no
//! thread; the simulator calls `tick` at chosen times instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Kernel;
use crate::env::Env;

/// A running ticker thread; dropping it stops the thread and waits for it (for the tick in
/// progress, not for the rest of an interval).
#[derive(Debug)]
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<E: Env + Clone + 'static> Kernel<E> {
    /// Starts a thread that calls [`Kernel::tick`] every `interval` (on the `Env`'s clock)
    /// until the returned [`Ticker`] is dropped; while a tick reports work left
    /// ([`TickReport::busy`](super::TickReport::busy)), it calls the next one at once.
    pub fn spawn_ticker(kernel: Arc<Self>, interval: Duration) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Acquire) {
                // Work left (a checkpoint being written or merged): the next tick at once,
                // so the checkpoint keeps pace with commits on this thread instead of
                // falling to them as backpressure; each tick's work stays bounded, so a
                // stop is seen within one tick.
                if kernel.tick().busy.is_empty() {
                    nap(kernel.env(), interval, &stopped);
                }
            }
        });
        Ticker { stop, thread: Some(thread) }
    }
}

/// The longest sleep between two looks at the stop flag: a dropped ticker stops within it,
/// however long its interval.
const NAP_MAX: Duration = Duration::from_millis(10);

/// Sleeps `interval` on `env`'s clock in naps of at most [`NAP_MAX`], until `stop` is set.
fn nap<E: Env>(env: &E, interval: Duration, stop: &AtomicBool) {
    let mut left = interval;
    while !left.is_zero() && !stop.load(Ordering::Acquire) {
        let nap = left.min(NAP_MAX);
        env.sleep(nap);
        left -= nap;
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            // A panic in `tick` already failed the shard it held; nothing more to report.
            let _ = thread.join();
        }
    }
}
