//! `SimEnv`: a deterministic, seeded, fault-injecting in-memory disk and virtual clock.
//!
//! Owns the simulated [`Env`]. One `u64` seed and one [`FaultOptions`] determine every event of
//! a run: the same seed, options and sequence of calls give the same trace and the same
//! [`SimEnv::trace_hash`] on every machine. It is single-threaded in spirit: the state sits
//! behind a mutex only so the type is `Send + Sync` like [`OsEnv`](crate::env::OsEnv); the
//! simulator drives it from one thread.
//!
//! For every file it keeps the durable image and the pending writes since the last sync; for
//! every directory the durable entries and the pending entry operations. A crash (drawn at any
//! call, scheduled at the Nth call, or asked for with [`SimEnv::crash`]) resolves the pending
//! state under the fault model of `DESIGN.md` section 2 (see `crash.rs`), after which every call
//! fails with a [`SimCrash`] error until [`SimEnv::restart`]; handles and locks of the dead
//! process stay dead.
//!
//! Instead of drawing one post-crash image, [`SimEnv::crash_images`] enumerates every image the
//! fault model allows at the current point, each in a [`SimEnv::fork`] of the machine (see
//! `images.rs`).
//!
//! Fault decisions are recorded as a [`FaultSchedule`]; [`SimEnv::replaying`] replays one
//! without drawing any random number, so a recorded run survives code changes elsewhere.

mod crash;
mod faults;
mod fs;
mod images;
mod lifecycle;
mod lock;
mod media;
mod options;
mod state;
mod trace;

use serde::{Deserialize, Serialize};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use faults::{CallKind, Fault, FaultSchedule, ScheduledFault};
pub use fs::FILE_SIZE_MAX_BYTES;
pub use images::CrashImages;
pub use lock::SimDirLock;
pub use options::{
    CrashKind, CrashMode, DirOrdering, FaultOptions, InvalidFaultOptions, LatencyOptions, MediaTarget,
    SECTOR_SIZES_BYTES, SyncFailureProfile, TargetRegion, TargetedFaults, TargetedWeights, TearFillWeights,
    WriteFateWeights,
};
pub use state::{Damage, DamageKind, DamageRole, SimCrash, is_crash};
pub use trace::{StableHasher, TRACE_EVENTS_MAX, TRACE_TAIL_EVENTS, TraceEvent};

use super::{Env, EnvFile, OpenOptions};
use faults::FaultSource;
use fs::{Node, NodeId, components};
use state::{HandleState, Plan, State};

/// Counters of what the simulator did to a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Env calls that could fail (clock readings excluded).
    pub calls: u64,
    /// Crashes of the process: machine crashes, and process crashes that kept the page cache
    /// (those are also counted in `process_crashes`).
    pub crashes: u64,
    /// Process crashes that kept the page cache (`CrashKind::Process`).
    #[serde(default)]
    pub process_crashes: u64,
    /// Media faults aimed at a critical region (`FaultOptions::targeted`); also counted in
    /// `bit_rot`, `misdirected_writes` or `bad_sectors`.
    #[serde(default)]
    pub targeted_media: u64,
    /// Injected EIO errors (persistent ones counted at each failing call).
    pub io_errors: u64,
    /// Short reads and writes.
    pub short_ios: u64,
    /// Failed file and directory syncs.
    pub sync_failures: u64,
    /// Calls refused with `StorageFull`.
    pub storage_full: u64,
    /// Flipped durable bits.
    pub bit_rot: u64,
    /// Writes that will land at a wrong offset.
    pub misdirected_writes: u64,
    /// Sectors gone bad.
    pub bad_sectors: u64,
    /// Reads that failed on a bad sector.
    pub bad_sector_reads: u64,
    /// Wall-clock jumps.
    pub clock_jumps: u64,
    /// Slow calls.
    pub slow_ios: u64,
    /// Pending writes lost whole at a crash or failed sync.
    pub writes_lost: u64,
    /// Pending writes torn at a crash or failed sync.
    pub writes_torn: u64,
    /// Pending directory operations lost at a crash or failed directory sync.
    pub dir_ops_lost: u64,
    /// Crashes into one of the images of [`SimEnv::crash_images`] (also counted in `crashes`):
    /// each image counts its own, so a driver sums this over the images it checked.
    #[serde(default)]
    pub crash_images: u64,
}

/// The simulated environment. Cloning gives another handle to the same simulated machine.
#[derive(Clone)]
pub struct SimEnv {
    shared: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SimEnv").field("seed", &state.seed).field("call", &state.call).finish()
    }
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while the lock was held leaves the simulated machine as it was; keep going so
    // the simulator can report the panic instead of a poisoned lock.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimEnv {
    /// A new simulated machine with an empty disk, drawing faults from `seed`.
    pub fn new(seed: u64, options: FaultOptions) -> Result<Self, InvalidFaultOptions> {
        Self::with_source(seed, options, FaultSource::drawing(seed))
    }

    /// A new simulated machine that takes its faults from `schedule` instead of drawing them.
    pub fn replaying(
        seed: u64,
        options: FaultOptions,
        schedule: FaultSchedule,
    ) -> Result<Self, InvalidFaultOptions> {
        Self::with_source(seed, options, FaultSource::replaying(seed, schedule))
    }

    fn with_source(
        seed: u64,
        options: FaultOptions,
        source: FaultSource,
    ) -> Result<Self, InvalidFaultOptions> {
        options.validate()?;
        Ok(Self { shared: Arc::new(Mutex::new(State::new(seed, options, source))) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// Runs one Env call through the fault machinery (see `state.rs`).
    fn call<T: std::fmt::Debug>(
        &self,
        kind: CallKind,
        bytes: u64,
        handle: Option<u64>,
        what: impl FnOnce() -> String,
        op: impl FnOnce(&mut State, &Plan) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.lock();
        match state.begin(kind, bytes, handle) {
            Ok(plan) => {
                let result = op(&mut state, &plan);
                state.finish(plan, what(), result)
            }
            Err(error) => {
                if !state.crashed || !is_crash(&error) {
                    let text = format!("{} -> err {:?}", what(), error.kind());
                    state.event(text);
                }
                Err(error)
            }
        }
    }

    /// The seed this machine draws from.
    pub fn seed(&self) -> u64 {
        self.lock().seed
    }

    /// The fault options in force.
    pub fn options(&self) -> FaultOptions {
        self.lock().options.clone()
    }

    /// Switches the injection of new faults on or off (off for the quiet phase), whether drawn
    /// or replayed from a schedule. Armed faults still apply.
    pub fn set_faults_enabled(&self, enabled: bool) {
        let mut state = self.lock();
        state.faults.enabled = enabled;
        state.event(format!("faults enabled={enabled}"));
    }

    /// Changes the disk budget (`FaultOptions::disk_bytes_max`); `None` lifts it. A driver
    /// lifts it for the quiet phase: the operator has freed space.
    pub fn set_disk_bytes_max(&self, disk_bytes_max: Option<u64>) {
        let mut state = self.lock();
        state.options.disk_bytes_max = disk_bytes_max;
        state.event(format!("disk budget {disk_bytes_max:?}"));
    }

    /// Arms `fault` for the next call of `kind` (for tests that pin one fault's effect).
    pub fn arm(&self, kind: CallKind, fault: Fault) {
        self.lock().faults.arm(kind, fault);
    }

    /// The hash of every event so far.
    pub fn trace_hash(&self) -> u64 {
        self.lock().trace.hash()
    }

    /// How many events the trace holds.
    pub fn trace_len(&self) -> u64 {
        self.lock().trace.count()
    }

    /// The most recent events (at most [`TRACE_TAIL_EVENTS`]).
    pub fn trace_tail(&self) -> Vec<TraceEvent> {
        self.lock().trace.tail()
    }

    /// Keeps the last `events` events as text instead of [`TRACE_TAIL_EVENTS`] (clamped to
    /// 1..=[`TRACE_EVENTS_MAX`]), for reports that draw a whole run.
    pub fn keep_trace_events(&self, events: usize) {
        self.lock().trace.set_tail_max(events);
    }

    /// Starts keeping each event's hash, for event-by-event determinism checks.
    pub fn keep_event_hashes(&self) {
        self.lock().trace.event_hashes.get_or_insert_with(Vec::new);
    }

    /// Each event's hash since [`SimEnv::keep_event_hashes`].
    pub fn event_hashes(&self) -> Vec<u64> {
        self.lock().trace.event_hashes.clone().unwrap_or_default()
    }

    /// Adds a driver event (a workload operation, a check) to the trace.
    pub fn note(&self, text: impl Into<String>) {
        self.lock().event(text.into());
    }

    /// The fault decisions drawn so far.
    pub fn schedule(&self) -> FaultSchedule {
        self.lock().faults.recorded().clone()
    }

    /// The calls to [`EnvFile::start_writeback`] so far and the bytes they named. The hint
    /// does nothing in the simulator (no fault, no crash point, no trace event, so a seed's
    /// run is the same with or without it); this count lets a test see that it was given.
    pub fn writeback_hints(&self) -> (u64, u64) {
        let (calls, bytes) = self.lock().writeback_hints;
        (calls, bytes)
    }

    /// What the simulator has done so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    /// Virtual monotonic time.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.lock().monotonic_ns)
    }

    /// Bytes the live files take (what `disk_bytes_max` limits).
    pub fn used_bytes(&self) -> u64 {
        let state = self.lock();
        state.fs.used_bytes(&state.open_nodes())
    }

    /// Media damage the simulator did to the file at `path` (live tree): kind and byte range.
    /// A checker uses it to tell damage it must accept from a kernel bug.
    pub fn damage_at(&self, path: &Path) -> io::Result<Vec<(DamageKind, Range<u64>)>> {
        let state = self.lock();
        let node = state.fs.resolve(&components(path)?, path)?;
        Ok(state.damage.iter().filter(|d| d.node == node).map(|d| (d.kind, d.range())).collect())
    }

    /// Every byte range every injected media fault hit so far, in injection order, crashes and
    /// restarts included: a checker tells by it whether a reported data loss was legal.
    pub fn damage_log(&self) -> Vec<Damage> {
        self.lock().damage.clone()
    }

    /// The durable contents of the file at `path`, following durable directory entries only:
    /// what a crash right now would keep, if nothing pending survived. `None` if no durable
    /// entry leads there.
    pub fn durable_contents(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let state = self.lock();
        let mut at: NodeId = fs::ROOT;
        for name in components(path)? {
            match state.fs.nodes.get(&at) {
                Some(Node::Dir(dir)) => match dir.durable.get(&name) {
                    Some(&next) => at = next,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        match state.fs.nodes.get(&at) {
            Some(Node::File(file)) => Ok(Some(file.durable.clone())),
            _ => Ok(None),
        }
    }

    fn resolve_dir(state: &State, path: &Path) -> io::Result<NodeId> {
        let node = state.fs.resolve(&components(path)?, path)?;
        if !state.fs.is_dir(node) {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ));
        }
        Ok(node)
    }

    fn collect_garbage(state: &mut State) {
        let open = state.open_nodes();
        state.fs.collect_garbage(&open);
    }
}

/// An open file of [`SimEnv`].
pub struct SimFile {
    shared: Arc<Mutex<State>>,
    handle: u64,
    readable: bool,
    writable: bool,
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFile").field("handle", &self.handle).finish()
    }
}

impl SimFile {
    fn env(&self) -> SimEnv {
        SimEnv { shared: Arc::clone(&self.shared) }
    }

    fn node(state: &State, handle: u64) -> NodeId {
        // `begin` already failed the call if the handle died with a crash.
        state.handles.get(&handle).map(|h| h.node).unwrap_or_else(|| unreachable!("live handle"))
    }

    fn check(allowed: bool, what: &str) -> io::Result<()> {
        if allowed {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("handle was opened without {what} access"),
            ))
        }
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        if state.handles.remove(&self.handle).is_some() {
            SimEnv::collect_garbage(&mut state);
        }
    }
}

impl EnvFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let (handle, len) = (self.handle, buf.len());
        self.env().call(
            CallKind::Read,
            len as u64,
            Some(handle),
            || format!("read fd{handle} @{offset}+{len}"),
            |state, plan| {
                Self::check(self.readable, "read")?;
                fs::check_range(offset, buf.len())?;
                let node = Self::node(state, handle);
                state.read(node, buf, offset, plan)
            },
        )
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let handle = self.handle;
        let mut hasher = StableHasher::default();
        hasher.write(buf);
        self.env().call(
            CallKind::Write,
            buf.len() as u64,
            Some(handle),
            || format!("write fd{handle} @{offset}+{} data={:016x}", buf.len(), hasher.finish()),
            |state, plan| {
                Self::check(self.writable, "write")?;
                let len = fs::writable_len(offset, buf.len())?;
                if len == 0 {
                    return Ok(0);
                }
                let node = Self::node(state, handle);
                state.write(node, &buf[..len], offset, plan)
            },
        )
    }

    fn len(&self) -> io::Result<u64> {
        let handle = self.handle;
        self.env().call(
            CallKind::Len,
            0,
            Some(handle),
            || format!("len fd{handle}"),
            |state, _| {
                let node = Self::node(state, handle);
                Ok(state.fs.file(node).live.len() as u64)
            },
        )
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        let handle = self.handle;
        self.env().call(
            CallKind::SetLen,
            0,
            Some(handle),
            || format!("set_len fd{handle} {len_bytes}"),
            |state, _| {
                Self::check(self.writable, "write")?;
                fs::check_len(len_bytes)?;
                let node = Self::node(state, handle);
                state.set_len(node, len_bytes)
            },
        )
    }

    fn sync_data(&self) -> io::Result<()> {
        let handle = self.handle;
        self.env().call(
            CallKind::SyncFile,
            0,
            Some(handle),
            || format!("sync_data fd{handle}"),
            |state, plan| {
                let node = Self::node(state, handle);
                state.sync_file(node, plan)
            },
        )
    }

    fn sync_all(&self) -> io::Result<()> {
        let handle = self.handle;
        self.env().call(
            CallKind::SyncFile,
            0,
            Some(handle),
            || format!("sync_all fd{handle}"),
            |state, plan| {
                let node = Self::node(state, handle);
                state.sync_file(node, plan)
            },
        )
    }

    fn start_writeback(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        crate::env::check_writeback_range(offset, len_bytes)?;
        let mut state = lock(&self.shared);
        let (calls, bytes) = state.writeback_hints;
        state.writeback_hints = (calls + 1, bytes + len_bytes);
        Ok(())
    }
}

impl Env for SimEnv {
    type File = SimFile;
    type DirLock = SimDirLock;

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<SimFile> {
        let handle = self.call(
            CallKind::Open,
            0,
            None,
            || format!("open {} {options:?}", path.display()),
            |state, _| {
                options.validate()?;
                let node = state.fs.open(&components(path)?, path, options)?;
                let handle = state.next_handle;
                state.next_handle += 1;
                state.handles.insert(handle, HandleState { node, sticky_error: false });
                Ok(handle)
            },
        )?;
        Ok(SimFile {
            shared: Arc::clone(&self.shared),
            handle,
            readable: options.read,
            writable: options.write,
        })
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.call(
            CallKind::CreateDir,
            0,
            None,
            || format!("create_dir {}", path.display()),
            |state, _| state.fs.create_dir(&components(path)?, path),
        )
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.call(
            CallKind::RemoveDir,
            0,
            None,
            || format!("remove_dir {}", path.display()),
            |state, _| {
                state.fs.remove_dir(&components(path)?, path)?;
                Self::collect_garbage(state);
                Ok(())
            },
        )
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.call(
            CallKind::ListDir,
            0,
            None,
            || format!("list_dir {}", path.display()),
            |state, _| state.fs.list(&components(path)?, path),
        )
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let what = || format!("rename {} {}", from.display(), to.display());
        self.call(CallKind::Rename, 0, None, what, |state, _| {
            state.fs.rename((&components(from)?, from), (&components(to)?, to))?;
            Self::collect_garbage(state);
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.call(
            CallKind::RemoveFile,
            0,
            None,
            || format!("remove_file {}", path.display()),
            |state, _| {
                state.fs.remove_file(&components(path)?, path)?;
                Self::collect_garbage(state);
                Ok(())
            },
        )
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.call(
            CallKind::Exists,
            0,
            None,
            || format!("exists {}", path.display()),
            |state, _| match state.fs.resolve(&components(path)?, path) {
                Ok(_) => Ok(true),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(error) => Err(error),
            },
        )
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.call(
            CallKind::SyncDir,
            0,
            None,
            || format!("sync_dir {}", path.display()),
            |state, plan| {
                let node = Self::resolve_dir(state, path)?;
                state.sync_dir(node, plan)
            },
        )
    }

    fn lock_dir(&self, path: &Path) -> io::Result<SimDirLock> {
        self.lock_dir_with(path, false)?
            .ok_or_else(|| io::Error::other("an exclusive lock always holds its directory"))
    }

    fn lock_dir_shared(&self, path: &Path) -> io::Result<Option<SimDirLock>> {
        self.lock_dir_with(path, true)
    }

    fn now_monotonic(&self) -> Duration {
        self.call(CallKind::Clock, 0, None, || "now_monotonic".into(), |state, _| Ok(state.monotonic_ns))
            .map(Duration::from_nanos)
            .unwrap_or_else(|_| self.now())
    }

    fn now_wall(&self) -> SystemTime {
        // A crashed machine's clock keeps its time: fall back to reading it directly, not to
        // the epoch (which read as a jump of decades backwards).
        let wall_ns = self
            .call(CallKind::Clock, 0, None, || "now_wall".into(), |state, _| Ok(state.wall_ns()))
            .unwrap_or_else(|_| self.lock().wall_ns());
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(wall_ns).unwrap_or(u64::MAX))
    }

    fn sleep(&self, duration: Duration) {
        // A dead process does not sleep; the error is the crash the caller will see next call.
        let _ = self.call(
            CallKind::Clock,
            0,
            None,
            || format!("sleep {duration:?}"),
            |state, _| {
                state.advance(duration);
                Ok(())
            },
        );
    }
}
