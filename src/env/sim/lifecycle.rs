//! Crashing and restarting the simulated process and machine, as a driver asks.
//!
//! Invariants: a process crash ([`CrashKind::Process`]) kills the process and keeps every
//! pending change; a machine crash ([`CrashKind::Machine`]) resolves every pending change once,
//! whether the process is alive or down after a process crash; a machine down after a machine
//! crash cannot crash again until [`SimEnv::restart`]; every crash asked for is recorded in the
//! fault schedule, so a replay makes the same image.

use super::SimEnv;
use super::options::CrashKind;

impl SimEnv {
    /// Crashes the machine now (between calls): a [`CrashKind::Machine`] crash. Does nothing
    /// if the process has crashed already, whatever the kind (see [`SimEnv::crash_with`] for
    /// a power loss while the process is down).
    pub fn crash(&self) {
        if !self.is_crashed() {
            self.crash_with(CrashKind::Machine);
        }
    }

    /// Crashes now (between calls), as `kind` says:
    /// - [`CrashKind::Process`]: if the process lives, it dies; every unsynced write and
    ///   pending directory operation stays in the page cache, readable after
    ///   [`SimEnv::restart`] and made durable by a later sync. Otherwise nothing.
    /// - [`CrashKind::Machine`]: if the process lives, or is dead after a process crash with
    ///   the page cache still there, the machine loses power: what was never synced resolves
    ///   under the fault model. Otherwise (down after a machine crash) nothing.
    ///
    /// Both are recorded in the schedule, so a replay makes the same image.
    pub fn crash_with(&self, kind: CrashKind) {
        let mut state = self.lock();
        let call = state.call;
        match kind {
            CrashKind::Process if !state.crashed => {
                state.faults.driver_process_crash(call);
                state.process_crash();
            }
            CrashKind::Machine if !state.crashed || state.cache_kept => {
                let image_seed = state.faults.driver_crash_seed(call);
                state.crash(image_seed);
            }
            _ => {}
        }
    }

    /// The kind of the latest crash (drawn or asked for), if any: a driver tells by it whether
    /// unsynced data must still be readable after the restart.
    pub fn last_crash_kind(&self) -> Option<CrashKind> {
        self.lock().last_crash
    }

    /// Whether the process has crashed and not restarted yet.
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Starts a new process on the crashed machine: calls work again, on the durable image
    /// after a machine crash, on the page cache after a process crash.
    pub fn restart(&self) {
        let mut state = self.lock();
        state.crashed = false;
        state.cache_kept = false;
        state.event("restart".into());
    }
}
