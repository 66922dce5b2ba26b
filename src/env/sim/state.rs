//! The state behind a `SimEnv` and the machinery every simulated call goes through.
//!
//! Each call: (1) fails at once if the process has crashed; (2) gets the next call index and
//! its fault decisions; (3) advances the virtual clock by its latency; (4) applies global
//! faults (bit rot, bad sectors, clock jumps); (5) crashes before taking effect, or fails with
//! EIO, if so decided; (6) runs; (7) is traced; (8) crashes after taking effect (or after
//! failing, whatever the error) if so decided.
//!
//! Invariants: the virtual monotonic clock only moves forward; a crash resolves every pending
//! change exactly once, invalidates every handle and lock of the dead process, and leaves the
//! live view equal to the durable one; a fork shares no state with its original and holds no
//! handle or lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::ops::Range;
use std::time::Duration;

use super::SimStats;
use super::crash::{self, RandomChooser, Resolution};
use super::faults::{CallKind, Fault, FaultSource};
use super::fs::{Fs, NodeId, PendingWrite, write_into};
use super::options::{CrashKind, FaultOptions, SyncFailureProfile};
use super::trace::{Trace, TraceEvent};

/// The payload of the error every call returns once the simulated process has crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimCrash;

impl fmt::Display for SimCrash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("simulated crash: the process is dead until SimEnv::restart")
    }
}

impl std::error::Error for SimCrash {}

/// Whether `error` says the simulated process crashed (as opposed to an injected I/O error).
pub fn is_crash(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<SimCrash>())
}

pub(crate) fn crash_error() -> io::Error {
    io::Error::other(SimCrash)
}

pub(crate) fn eio(what: &str) -> io::Error {
    io::Error::other(format!("simulated EIO: {what}"))
}

/// Which kind of media damage the simulator did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DamageKind {
    /// A durable bit flipped.
    BitRot,
    /// A write landed at the wrong offset: both its intended and its actual range.
    Misdirect,
    /// A sector that fails every read.
    BadSector,
}

/// Which part a damaged byte range plays in its fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DamageRole {
    /// Bytes the fault changed or made unreadable (rot, a bad sector).
    Hit,
    /// Where a misdirected write lands: bytes it overwrites.
    Landed,
    /// Where a misdirected write should have gone: bytes that keep what they held.
    Intended,
}

/// One byte range of one injected media fault, as [`SimEnv::damage_log`](super::SimEnv::damage_log)
/// reports it. A misdirected write gives two: where it lands and where it should have gone.
/// The range is where the fault can have changed the durable file: a misdirected write does
/// its damage only if it reaches the disk (a sync, or surviving a crash), and without
/// powersafe overwrite its ranges are widened to whole sectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// What the simulator did.
    pub kind: DamageKind,
    /// Which part of the fault this range is.
    pub role: DamageRole,
    /// A path of the file when the fault was injected (a live name first, else a durable
    /// one; `"?"` for a file no entry names). Later renames do not change it.
    pub path: std::path::PathBuf,
    /// First damaged byte in the file.
    pub offset: u64,
    /// Damaged bytes.
    pub len: u64,
    /// The index of the Env call at which the fault was injected.
    pub at_call: u64,
    /// Whether a targeted fault (`FaultOptions::targeted`) chose the place.
    pub targeted: bool,
    pub(crate) node: NodeId,
}

impl Damage {
    /// The damaged byte range.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.len
    }
}

/// A crash planned for a call.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PlannedCrash {
    Machine { image_seed: u64 },
    Process,
}

/// The per-call fault decisions the call itself must act on.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Plan {
    pub crash_after: Option<PlannedCrash>,
    pub short_per_mille: Option<u32>,
    pub sync_failure: Option<u64>,
    pub misdirect_sectors: Option<i64>,
    pub targeted_misdirect_sectors: Option<i64>,
}

pub(crate) struct HandleState {
    pub node: NodeId,
    pub sticky_error: bool,
}

/// Virtual wall-clock origin: 2026-01-01T00:00:00Z, in seconds since the Unix epoch.
pub(crate) const WALL_ORIGIN_SECS: u64 = 1_767_225_600;

pub(crate) struct State {
    pub seed: u64,
    pub fs: Fs,
    pub options: FaultOptions,
    pub faults: FaultSource,
    pub trace: Trace,
    pub stats: SimStats,
    pub monotonic_ns: u64,
    pub wall_offset_ns: i64,
    pub crashed: bool,
    /// The process is dead after a process crash and the machine still holds its page cache
    /// (pending changes are still there): a machine crash may still resolve them.
    pub cache_kept: bool,
    /// The kind of the latest crash.
    pub last_crash: Option<CrashKind>,
    pub generation: u64,
    pub call: u64,
    pub io_call: u64,
    pub handles: BTreeMap<u64, HandleState>,
    pub next_handle: u64,
    pub locks: BTreeMap<NodeId, u64>,
    /// Shared directory locks held (`Env::lock_dir_shared`), by directory: how many.
    pub shared_locks: BTreeMap<NodeId, u32>,
    pub damage: Vec<Damage>,
    pub media_faults_used: u32,
    /// Files whose cache still shows bytes that a failed sync (`SyncFailureProfile::Keep`)
    /// marked clean without writing: their live view may differ from the durable one until
    /// the next crash, even after a successful sync.
    pub stale_caches: BTreeSet<NodeId>,
    /// Calls to [`EnvFile::start_writeback`](crate::env::EnvFile::start_writeback) so far and
    /// the bytes they named: a hint the simulator only counts (see `SimEnv::writeback_hints`).
    pub writeback_hints: (u64, u64),
}

impl State {
    pub fn new(seed: u64, options: FaultOptions, faults: FaultSource) -> Self {
        Self {
            seed,
            fs: Fs::new(),
            options,
            faults,
            trace: Trace::default(),
            stats: SimStats::default(),
            monotonic_ns: 0,
            wall_offset_ns: 0,
            crashed: false,
            cache_kept: false,
            last_crash: None,
            generation: 0,
            call: 0,
            io_call: 0,
            handles: BTreeMap::new(),
            next_handle: 1,
            locks: BTreeMap::new(),
            shared_locks: BTreeMap::new(),
            damage: Vec::new(),
            media_faults_used: 0,
            stale_caches: BTreeSet::new(),
            writeback_hints: (0, 0),
        }
    }

    pub fn open_nodes(&self) -> BTreeSet<NodeId> {
        self.handles.values().map(|handle| handle.node).collect()
    }

    pub fn event(&mut self, text: String) {
        let event = TraceEvent { call: self.call, time_ns: self.monotonic_ns, text };
        self.trace.push(event);
    }

    fn latency_ns(&mut self, kind: CallKind, bytes: u64) -> u64 {
        use rand::Rng;
        let latency = self.options.latency;
        let base_us = match kind {
            CallKind::Clock => return 0,
            CallKind::Read | CallKind::Write => latency.io_us + bytes / latency.bytes_per_us,
            CallKind::SyncFile | CallKind::SyncDir => latency.sync_us,
            _ => latency.metadata_us,
        };
        base_us * 1000 * self.faults.latency.random_range(500..1500) / 1000
    }

    /// Steps 1–5 of a call (see the module docs).
    pub fn begin(&mut self, kind: CallKind, bytes: u64, handle: Option<u64>) -> io::Result<Plan> {
        if self.crashed {
            return Err(crash_error());
        }
        self.call += 1;
        if kind.is_io() {
            self.io_call += 1;
            self.stats.calls += 1;
        }
        let media_left = self.media_faults_used < self.options.media_faults_max;
        let faults = self.faults.decide(self.call, self.io_call, kind, &self.options, media_left);
        let mut latency_ns = self.latency_ns(kind, bytes);
        let mut plan = Plan::default();
        let mut crash_before = None;
        let mut io_error = None;
        for fault in faults {
            self.event(format!("fault {fault:?}"));
            match fault {
                // A machine crash wins over a process crash of the same call.
                Fault::Crash { after: true, image_seed } => {
                    plan.crash_after = Some(PlannedCrash::Machine { image_seed });
                }
                Fault::Crash { after: false, image_seed } => {
                    crash_before = Some(PlannedCrash::Machine { image_seed });
                }
                Fault::ProcessCrash { after } => {
                    let slot = if after { &mut plan.crash_after } else { &mut crash_before };
                    slot.get_or_insert(PlannedCrash::Process);
                }
                Fault::DriverCrash { .. } | Fault::DriverProcessCrash => {}
                Fault::TargetedRot { pick } => self.rot_target(pick),
                Fault::TargetedBadSector { pick } => self.break_target_sector(pick),
                Fault::TargetedMisdirect { shift_sectors } => {
                    plan.targeted_misdirect_sectors = Some(shift_sectors);
                }
                Fault::IoError { persistent } => io_error = Some(persistent),
                Fault::ShortIo { kept_per_mille } => plan.short_per_mille = Some(kept_per_mille),
                Fault::SyncFailure { image_seed } => plan.sync_failure = Some(image_seed),
                Fault::Misdirect { shift_sectors } => plan.misdirect_sectors = Some(shift_sectors),
                Fault::BitRot { pick } => self.rot_bit(pick),
                Fault::BadSector { pick } => self.break_sector(pick),
                Fault::ClockJump { delta_ms } => {
                    self.wall_offset_ns =
                        self.wall_offset_ns.saturating_add(delta_ms.saturating_mul(1_000_000));
                    self.stats.clock_jumps += 1;
                }
                Fault::SlowIo => {
                    latency_ns = latency_ns.saturating_mul(self.options.latency.slow_factor);
                    self.stats.slow_ios += 1;
                }
            }
        }
        self.monotonic_ns = self.monotonic_ns.saturating_add(latency_ns);
        if let Some(planned) = crash_before {
            self.crash_planned(planned);
            return Err(crash_error());
        }
        if let Some(error) = self.refusal(handle, io_error) {
            // The call fails without effect, but a crash planned after it still happens:
            // otherwise `CrashMode::AtCall` would skip its crash point whenever that call
            // fails, and a recorded `Crash` would replay as no crash at all.
            if let Some(planned) = plan.crash_after {
                self.crash_planned(planned);
                return Err(crash_error());
            }
            return Err(error);
        }
        Ok(plan)
    }

    /// Why a call fails before it runs, if it does: its handle died with a crash, carries a
    /// persistent error, or the call drew an EIO (`io_error` says whether persistent).
    fn refusal(&mut self, handle: Option<u64>, io_error: Option<bool>) -> Option<io::Error> {
        let sticky = match handle {
            Some(id) => match self.handles.get(&id) {
                None => return Some(crash_error()),
                Some(state) => state.sticky_error,
            },
            None => false,
        };
        if sticky {
            self.stats.io_errors += 1;
            return Some(eio("persistent error on this handle"));
        }
        let persistent = io_error?;
        self.stats.io_errors += 1;
        if let (true, Some(id)) = (persistent, handle)
            && let Some(state) = self.handles.get_mut(&id)
        {
            state.sticky_error = true;
        }
        Some(eio("injected I/O error"))
    }

    /// Virtual wall-clock time in nanoseconds since the Unix epoch (never negative).
    pub fn wall_ns(&self) -> i128 {
        let origin_ns = (WALL_ORIGIN_SECS * 1_000_000_000) as i128;
        (origin_ns + i128::from(self.monotonic_ns) + i128::from(self.wall_offset_ns)).max(0)
    }

    /// Steps 7–8 of a call.
    pub fn finish<T: fmt::Debug>(
        &mut self,
        plan: Plan,
        what: String,
        result: io::Result<T>,
    ) -> io::Result<T> {
        let outcome = match &result {
            Ok(value) => format!("ok {value:?}"),
            Err(error) => format!("err {:?}", error.kind()),
        };
        self.event(format!("{what} -> {outcome}"));
        if let Some(planned) = plan.crash_after {
            self.crash_planned(planned);
            return Err(crash_error());
        }
        result
    }

    fn crash_planned(&mut self, planned: PlannedCrash) {
        match planned {
            PlannedCrash::Machine { image_seed } => self.crash(image_seed),
            PlannedCrash::Process => self.process_crash(),
        }
    }

    /// Kills the process and keeps the machine up: handles and locks die, files only they
    /// kept alive go, and every pending change stays pending, visible to the next process.
    pub fn process_crash(&mut self) {
        assert!(!self.crashed, "a dead process cannot crash again");
        if !self.options.process_crash_keeps_cache {
            // The broken promise of a checker-power test: the cache goes as in a power loss.
            let options = self.options.clone();
            let resolution = crash::crash(&mut self.fs, &options, &mut RandomChooser::new(self.call));
            self.count(resolution);
        }
        self.stats.crashes += 1;
        self.stats.process_crashes += 1;
        self.crashed = true;
        self.cache_kept = true;
        self.last_crash = Some(CrashKind::Process);
        self.generation += 1;
        self.handles.clear();
        self.locks.clear();
        self.shared_locks.clear();
        self.fs.collect_garbage(&BTreeSet::new());
        let fs = &self.fs;
        self.stale_caches.retain(|node| fs.nodes.contains_key(node));
        self.event("process crash: the page cache keeps every unsynced change".into());
    }

    /// Crashes the process: every pending change resolves into the durable image.
    /// Also the power loss of a machine whose process is dead after a process crash.
    pub fn crash(&mut self, image_seed: u64) {
        assert!(!self.crashed || self.cache_kept, "a dead process cannot crash again");
        let options = self.options.clone();
        let resolution = crash::crash(&mut self.fs, &options, &mut RandomChooser::new(image_seed));
        self.die(resolution, format!("crash image_seed={image_seed:#x} {resolution:?}"));
    }

    /// The rest of a crash once `self.fs` holds the post-crash image that `resolution`
    /// describes: counts it, kills the process with its handles and locks, and traces `text`.
    /// If the process was dead already (after a process crash), only the machine's page
    /// cache goes: no process crash is counted.
    pub fn die(&mut self, resolution: Resolution, text: String) {
        assert!(!self.crashed || self.cache_kept, "a dead process cannot crash again");
        self.count(resolution);
        self.last_crash = Some(CrashKind::Machine);
        let was_dead = std::mem::replace(&mut self.cache_kept, false);
        // The crash made every live view equal to the durable one.
        self.stale_caches.clear();
        if was_dead {
            self.event(format!("machine crash while the process is down: {text}"));
            return;
        }
        self.stats.crashes += 1;
        self.crashed = true;
        self.generation += 1;
        self.handles.clear();
        self.locks.clear();
        self.shared_locks.clear();
        self.event(text);
    }

    /// A deep, independent copy of the machine with `fs` as its disk, and no handle or lock
    /// open: the nodes only the handles of `self` kept alive are gone from the copy.
    pub fn fork_with(&self, fs: Fs) -> State {
        let mut fork = State {
            seed: self.seed,
            fs,
            options: self.options.clone(),
            faults: self.faults.clone(),
            trace: self.trace.clone(),
            stats: self.stats.clone(),
            monotonic_ns: self.monotonic_ns,
            wall_offset_ns: self.wall_offset_ns,
            crashed: self.crashed,
            cache_kept: self.cache_kept,
            last_crash: self.last_crash,
            generation: self.generation,
            call: self.call,
            io_call: self.io_call,
            handles: BTreeMap::new(),
            next_handle: self.next_handle,
            locks: BTreeMap::new(),
            shared_locks: BTreeMap::new(),
            damage: self.damage.clone(),
            media_faults_used: self.media_faults_used,
            stale_caches: self.stale_caches.clone(),
            writeback_hints: self.writeback_hints,
        };
        fork.fs.collect_garbage(&BTreeSet::new());
        fork.stale_caches.retain(|node| fork.fs.nodes.contains_key(node));
        fork
    }

    fn count(&mut self, resolution: Resolution) {
        self.stats.writes_lost += resolution.writes_lost;
        self.stats.writes_torn += resolution.writes_torn;
        self.stats.dir_ops_lost += resolution.dir_ops_lost;
    }

    /// Whether growing the live files by `growth_bytes` stays within the disk budget.
    pub fn check_space(&mut self, growth_bytes: u64) -> io::Result<()> {
        let Some(max) = self.options.disk_bytes_max else { return Ok(()) };
        if growth_bytes > 0 && self.fs.used_bytes(&self.open_nodes()) + growth_bytes > max {
            self.stats.storage_full += 1;
            return Err(io::Error::new(io::ErrorKind::StorageFull, "simulated disk is full"));
        }
        Ok(())
    }

    pub fn write(&mut self, node: NodeId, data: &[u8], offset: u64, plan: &Plan) -> io::Result<usize> {
        let live_len = self.fs.file(node).live.len() as u64;
        let mut len = data.len() as u64;
        if let Some(kept) = plan.short_per_mille
            && len > 1
        {
            len = (len * u64::from(kept.min(1000)) / 1000).max(1);
            self.stats.short_ios += 1;
        }
        self.check_space((offset + len).saturating_sub(live_len))?;
        let disk_offset = self.misdirected_offset(node, offset..offset + len, plan);
        self.fs.write(node, offset, &data[..len as usize], disk_offset);
        Ok(len as usize)
    }

    pub fn read(&mut self, node: NodeId, buf: &mut [u8], offset: u64, plan: &Plan) -> io::Result<usize> {
        let sector = u64::from(self.options.sector_size_bytes);
        let file = self.fs.file(node);
        let available = (file.live.len() as u64).saturating_sub(offset);
        let mut len = (buf.len() as u64).min(available);
        if len == 0 {
            return Ok(0);
        }
        if let Some(kept) = plan.short_per_mille
            && len > 1
        {
            len = (len * u64::from(kept.min(1000)) / 1000).max(1);
            self.stats.short_ios += 1;
        }
        let sectors = offset / sector..(offset + len).div_ceil(sector);
        if file.bad_sectors.range(sectors).next().is_some() {
            self.stats.bad_sector_reads += 1;
            return Err(eio("latent bad sector"));
        }
        let start = offset as usize;
        buf[..len as usize].copy_from_slice(&file.live[start..start + len as usize]);
        Ok(len as usize)
    }

    pub fn set_len(&mut self, node: NodeId, len_bytes: u64) -> io::Result<()> {
        let live_len = self.fs.file(node).live.len() as u64;
        self.check_space(len_bytes.saturating_sub(live_len))?;
        self.fs.set_len(node, len_bytes);
        Ok(())
    }

    pub fn sync_file(&mut self, node: NodeId, plan: &Plan) -> io::Result<()> {
        let options = self.options.clone();
        let file = self.fs.file_mut(node);
        if let Some(image_seed) = plan.sync_failure {
            let resolution = match options.sync_failure_profile {
                SyncFailureProfile::Revert => {
                    // Nothing of the failed sync lands: every pending write is lost. (Resolving
                    // them first and then reverting counted reverted writes as landed or torn.)
                    let pending = std::mem::take(&mut file.pending);
                    let writes = pending.iter().filter(|p| matches!(p, PendingWrite::Write { .. })).count();
                    file.live = file.durable.clone();
                    Resolution { writes_lost: writes as u64, ..Resolution::default() }
                }
                profile => {
                    let resolution = crash::resolve_file(file, &options, &mut RandomChooser::new(image_seed));
                    if profile == SyncFailureProfile::Drop {
                        file.live = file.durable.clone();
                    } else {
                        self.stale_caches.insert(node);
                    }
                    resolution
                }
            };
            self.count(resolution);
            self.stats.sync_failures += 1;
            return Err(eio("fsync failed"));
        }
        let mut misdirected = false;
        for pending in std::mem::take(&mut file.pending) {
            match pending {
                PendingWrite::Write { offset, disk_offset, data } => {
                    misdirected |= offset != disk_offset;
                    write_into(&mut file.durable, disk_offset, &data);
                    file.last_synced_write = Some(offset..offset + data.len() as u64);
                }
                PendingWrite::SetLen { len } => file.durable.resize(len as usize, 0),
            }
        }
        // The length is inode metadata, which a successful sync persists even when an earlier
        // failed sync marked the pages of a truncate or an extension clean.
        file.durable.resize(file.live.len(), 0);
        // A stale cache (see `stale_caches`) is not damage but breaks the equality too: the
        // assertion used to fire on the second sync after a failed one under `Keep`.
        let undamaged =
            !misdirected && !self.stale_caches.contains(&node) && !self.damage.iter().any(|d| d.node == node);
        debug_assert!(!undamaged || file.durable == file.live, "a clean sync makes durable equal live");
        Ok(())
    }

    pub fn sync_dir(&mut self, node: NodeId, plan: &Plan) -> io::Result<()> {
        let ordering = self.options.dir_ordering;
        let dir = self.fs.dir_mut(node);
        if let Some(image_seed) = plan.sync_failure {
            let resolution = crash::resolve_dir(dir, ordering, &mut RandomChooser::new(image_seed));
            self.count(resolution);
            self.stats.sync_failures += 1;
            return Err(eio("directory fsync failed"));
        }
        // Only what is pending reaches the disk: operations a failed sync dropped stay lost
        // (a later sync writes nothing again), just as for files.
        for op in std::mem::take(&mut dir.pending) {
            match op {
                super::fs::DirOp::Link { name, node } => {
                    dir.durable.insert(name, node);
                }
                super::fs::DirOp::Unlink { name } => {
                    dir.durable.remove(&name);
                }
            }
        }
        Ok(())
    }

    pub fn advance(&mut self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.monotonic_ns = self.monotonic_ns.saturating_add(ns);
    }
}
