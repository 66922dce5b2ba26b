//! An opt-in thread that runs [`Kernel::tick`] for real-OS users. The kernel itself starts no
//! thread; the simulator calls `tick` at chosen times instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Kernel;
use crate::env::Env;

/// A running ticker thread; dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<E: Env + Clone + 'static> Kernel<E> {
    /// Starts a thread that calls [`Kernel::tick`] every `interval` (on the `Env`'s clock)
    /// until the returned [`Ticker`] is dropped.
    pub fn spawn_ticker(kernel: Arc<Self>, interval: Duration) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Acquire) {
                kernel.tick();
                kernel.env().sleep(interval);
            }
        });
        Ticker { stop, thread: Some(thread) }
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
