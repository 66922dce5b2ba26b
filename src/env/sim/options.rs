//! `FaultOptions`: every knob of the simulated disk and clock, with unit, range and effect.
//!
//! Each fault class is switched by its own probability (0.0 disables it), and each draws from
//! its own random stream (see `faults.rs`), so switching one class on or off never changes the
//! decisions of another. `FaultOptions::default()` is a perfect disk: no faults at all.
//!
//! Fields added after the first wave (`process_crash_probability`, `targeted`) default when
//! missing from a serialized configuration, and draw from streams of their own, so older
//! recorded configurations and seeds keep their meaning.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Sector sizes the simulated disk supports, in bytes.
pub const SECTOR_SIZES_BYTES: [u32; 2] = [512, 4096];

/// When the simulated process crashes on its own (the driver can always crash it explicitly
/// with `SimEnv::crash`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum CrashMode {
    /// Never, except when the driver asks.
    Off,
    /// At each Env call with this probability (0.0..=1.0), before or after the call takes
    /// effect (even odds).
    Random {
        /// Chance per Env call.
        probability: f64,
    },
    /// Exactly at the Nth fault-eligible Env call (1-based, counted across restarts), for
    /// systematic enumeration of crash points.
    AtCall {
        /// The call index.
        call: u64,
        /// Crash after the call took effect (`true`) or before (`false`).
        after: bool,
    },
}

/// What a failed sync does to the file's pending writes. In every profile the pending writes
/// are marked clean, so a later sync returns `Ok` without writing them ("fsyncgate"). The
/// file's length is metadata, not a page: a later successful sync persists the length the file
/// has then, whatever the failed one left on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncFailureProfile {
    /// ext4 (data=ordered) and XFS: the page cache keeps the new bytes (reads still see them);
    /// on disk each pending write may or may not have landed.
    Keep,
    /// The dirty pages are dropped: reads see what is on disk, where each pending write may or
    /// may not have landed.
    Drop,
    /// btrfs: the file reverts to its last synced state, on disk and in the cache.
    Revert,
}

/// How pending directory operations survive a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirOrdering {
    /// Pessimistic POSIX: each pending create, rename or remove survives or vanishes
    /// independently.
    Independent,
    /// ext4-like: the pending operations of a directory survive as a prefix, in order.
    Ordered,
}

/// Relative weights of the fate of one pending write at a crash (or a failed sync).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFateWeights {
    /// The whole write reached the disk.
    pub survive: u32,
    /// None of it did.
    pub lose: u32,
    /// Torn: each sector it touches independently reached the disk or not.
    pub tear: u32,
}

/// Relative weights of what a sector of a torn write holds when its new bytes did not land.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TearFillWeights {
    /// The bytes it held before the write.
    pub old: u32,
    /// Zeros.
    pub zero: u32,
    /// Random bytes.
    pub garbage: u32,
}

/// Which crash a simulated process suffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrashKind {
    /// The process dies (`kill -9`) but the machine stays up: the page cache keeps every
    /// unsynced write and pending directory operation, the next process reads them, and a
    /// later sync makes them durable. A later machine crash drops whatever was still unsynced.
    Process,
    /// The machine loses power: every unsynced change resolves under the fault model (kept,
    /// lost or torn; see `crash.rs`) and the page cache is gone.
    Machine,
}

/// Where a targeted media fault may hit, in one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetRegion {
    /// The whole durable file.
    Whole,
    /// Bytes `start..end` of the durable file, cut at its durable length (past the end the
    /// region is empty). `start < end`.
    Bytes {
        /// First byte, inclusive.
        start: u64,
        /// Last byte, exclusive.
        end: u64,
    },
    /// The bytes of the last write before the file's last successful `sync_data`/`sync_all`
    /// (for a log, the last durable record), cut at the durable length; empty until a sync
    /// has made a write durable.
    LastSyncedWrite,
}

/// A critical region: files chosen by name, and the bytes of each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaTarget {
    /// The file's name (its last path component) starts with this; `""` matches every name.
    #[serde(default)]
    pub name_prefix: String,
    /// The file's name ends with this; `""` matches every name.
    #[serde(default)]
    pub name_suffix: String,
    /// The bytes of each matching file.
    pub region: TargetRegion,
}

impl MediaTarget {
    /// Whether the file name `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        name.starts_with(&self.name_prefix) && name.ends_with(&self.name_suffix)
    }
}

/// Relative weights of the kind of a targeted media fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetedWeights {
    /// One bit of a target region flips.
    pub bit_rot: u32,
    /// A write into a target region lands elsewhere (drawn only at writes).
    pub misdirect: u32,
    /// A sector of a target region goes bad.
    pub bad_sector: u32,
}

/// Media faults aimed at small critical regions (checkpoint metadata, segment headers, the
/// last durable record, ...), so the paths that handle damage there are reached in a few
/// seeds rather than tens. They share the `media_faults_max` budget with the untargeted ones
/// and are counted in the same statistics (and in `SimStats::targeted_media`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetedFaults {
    /// Chance (0.0..=1.0) per eligible Env call that a targeted fault is drawn. Its kind is
    /// drawn by `weights` (at a write among all three, elsewhere between rot and bad
    /// sectors). Rot flips one bit of a region, a bad sector covers a sector overlapping one;
    /// both pick the region among those of every durable file that matches a target, and do
    /// nothing if there is none. A misdirect applies only if the write overlaps a region of
    /// its file (any write to a `LastSyncedWrite` file counts): it lands 1 to 4 sectors away.
    pub probability: f64,
    /// Kinds of the faults. At least one weight must be positive when `probability > 0`.
    pub weights: TargetedWeights,
    /// The regions. Empty: targeted faults never hit anything.
    pub targets: Vec<MediaTarget>,
}

impl Default for TargetedFaults {
    fn default() -> Self {
        Self {
            probability: 0.0,
            weights: TargetedWeights { bit_rot: 1, misdirect: 1, bad_sector: 1 },
            targets: Vec::new(),
        }
    }
}

/// Simulated latency of Env calls, which advances the virtual clock.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyOptions {
    /// Latency of a metadata call (open, list, rename, ...), in microseconds.
    pub metadata_us: u64,
    /// Latency of a read or write, in microseconds, before the per-byte cost.
    pub io_us: u64,
    /// Transfer rate of reads and writes, in bytes per microsecond (1000 = 1 GB/s). At least 1.
    pub bytes_per_us: u64,
    /// Latency of a file or directory sync, in microseconds.
    pub sync_us: u64,
    /// Chance (0.0..=1.0) that a call is slow.
    pub slow_probability: f64,
    /// How many times slower a slow call is (at least 1).
    pub slow_factor: u64,
}

impl Default for LatencyOptions {
    fn default() -> Self {
        Self {
            metadata_us: 5,
            io_us: 10,
            bytes_per_us: 1000,
            sync_us: 500,
            slow_probability: 0.0,
            slow_factor: 50,
        }
    }
}

/// Every fault knob of `SimEnv`. Probabilities are per eligible Env call, in `0.0..=1.0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultOptions {
    /// Sector size for tears, misdirected writes and bad sectors: 512 or 4096 bytes.
    pub sector_size_bytes: u32,
    /// Spontaneous crashes (machine crashes: `CrashKind::Machine`).
    pub crash: CrashMode,
    /// Chance (0.0..=1.0) per eligible Env call that the process crashes and the machine
    /// stays up (`CrashKind::Process`), before or after the call takes effect (even odds).
    /// A machine crash drawn for the same call wins. 0.0 disables it.
    #[serde(default)]
    pub process_crash_probability: f64,
    /// `true` (the default, and the truth on every real OS): a process crash keeps the page
    /// cache. `false` breaks that promise on purpose, for tests of a checker's power only: a
    /// process crash then resolves the pending changes as a machine crash does (while still
    /// reporting `CrashKind::Process`).
    #[serde(default = "keeps_cache")]
    pub process_crash_keeps_cache: bool,
    /// Fate of each pending write at a crash or failed sync.
    pub write_fate: WriteFateWeights,
    /// Contents of a torn sector whose new bytes did not land.
    pub tear_fill: TearFillWeights,
    /// `true`: a torn write changes only the bytes it wrote. `false`: a torn sector may also
    /// lose the bytes of that sector outside the written range (they get zeros or garbage).
    pub powersafe_overwrite: bool,
    /// How pending directory operations survive a crash.
    pub dir_ordering: DirOrdering,
    /// Chance that a `sync_data`, `sync_all` or `sync_dir` fails with EIO.
    pub sync_failure_probability: f64,
    /// What a failed sync does to the pending writes.
    pub sync_failure_profile: SyncFailureProfile,
    /// Chance that any other call (open, read, write, set_len, len, rename, remove, create,
    /// list, lock) fails with EIO and no effect.
    pub io_error_probability: f64,
    /// Of those errors, the fraction that are persistent: every later call through the same
    /// file handle fails too, until the handle is dropped.
    pub io_error_persistent_fraction: f64,
    /// Chance that a read or write transfers fewer bytes than asked (at least one).
    pub short_io_probability: f64,
    /// Disk capacity: a write or `set_len` that would make the live files larger than this
    /// fails with `StorageFull` and no effect. `None`: unlimited.
    pub disk_bytes_max: Option<u64>,
    /// Chance per call that one random durable bit flips (bit rot).
    pub bit_rot_probability: f64,
    /// Chance per write that its bytes will reach the disk at a wrong, sector-aligned offset
    /// (the cache still shows them at the right one).
    pub misdirect_probability: f64,
    /// Chance per call that a random sector of a durable file goes bad: reads overlapping it
    /// fail with EIO forever after.
    pub bad_sector_probability: f64,
    /// Budget: at most this many media faults (bit rot, misdirected writes, bad sectors,
    /// targeted ones included) in a run. `u32::MAX` is the "unbounded" mode.
    pub media_faults_max: u32,
    /// Media faults aimed at critical regions. Off by default.
    #[serde(default)]
    pub targeted: TargetedFaults,
    /// Chance per clock reading that the wall clock jumps.
    pub clock_jump_probability: f64,
    /// Largest wall-clock jump, forwards or backwards, in milliseconds.
    pub clock_jump_max_ms: u64,
    /// Simulated latency.
    pub latency: LatencyOptions,
}

impl Default for FaultOptions {
    fn default() -> Self {
        Self {
            sector_size_bytes: 512,
            crash: CrashMode::Off,
            process_crash_probability: 0.0,
            process_crash_keeps_cache: true,
            write_fate: WriteFateWeights { survive: 1, lose: 1, tear: 1 },
            tear_fill: TearFillWeights { old: 1, zero: 1, garbage: 1 },
            powersafe_overwrite: true,
            dir_ordering: DirOrdering::Independent,
            sync_failure_probability: 0.0,
            sync_failure_profile: SyncFailureProfile::Keep,
            io_error_probability: 0.0,
            io_error_persistent_fraction: 0.0,
            short_io_probability: 0.0,
            disk_bytes_max: None,
            bit_rot_probability: 0.0,
            misdirect_probability: 0.0,
            bad_sector_probability: 0.0,
            media_faults_max: 0,
            targeted: TargetedFaults::default(),
            clock_jump_probability: 0.0,
            clock_jump_max_ms: 0,
            latency: LatencyOptions::default(),
        }
    }
}

fn keeps_cache() -> bool {
    true
}

/// A `FaultOptions` field out of its range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidFaultOptions {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidFaultOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid fault option {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidFaultOptions {}

fn check_probability(field: &'static str, value: f64) -> Result<(), InvalidFaultOptions> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(InvalidFaultOptions { field, reason: format!("{value} is not in 0.0..=1.0") })
    }
}

impl FaultOptions {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), InvalidFaultOptions> {
        if !SECTOR_SIZES_BYTES.contains(&self.sector_size_bytes) {
            return Err(InvalidFaultOptions {
                field: "sector_size_bytes",
                reason: format!("{} is not 512 or 4096", self.sector_size_bytes),
            });
        }
        if let CrashMode::Random { probability } = self.crash {
            check_probability("crash.probability", probability)?;
        }
        if let CrashMode::AtCall { call: 0, .. } = self.crash {
            return Err(InvalidFaultOptions { field: "crash.call", reason: "calls count from 1".into() });
        }
        let fate = self.write_fate;
        if fate.survive + fate.lose + fate.tear == 0 {
            return Err(InvalidFaultOptions { field: "write_fate", reason: "all weights are 0".into() });
        }
        let fill = self.tear_fill;
        if fill.old + fill.zero + fill.garbage == 0 {
            return Err(InvalidFaultOptions { field: "tear_fill", reason: "all weights are 0".into() });
        }
        check_probability("process_crash_probability", self.process_crash_probability)?;
        self.validate_targeted()?;
        check_probability("sync_failure_probability", self.sync_failure_probability)?;
        check_probability("io_error_probability", self.io_error_probability)?;
        check_probability("io_error_persistent_fraction", self.io_error_persistent_fraction)?;
        check_probability("short_io_probability", self.short_io_probability)?;
        check_probability("bit_rot_probability", self.bit_rot_probability)?;
        check_probability("misdirect_probability", self.misdirect_probability)?;
        check_probability("bad_sector_probability", self.bad_sector_probability)?;
        check_probability("clock_jump_probability", self.clock_jump_probability)?;
        check_probability("latency.slow_probability", self.latency.slow_probability)?;
        if self.latency.bytes_per_us == 0 || self.latency.slow_factor == 0 {
            return Err(InvalidFaultOptions {
                field: "latency",
                reason: "bytes_per_us and slow_factor must be at least 1".into(),
            });
        }
        Ok(())
    }

    fn validate_targeted(&self) -> Result<(), InvalidFaultOptions> {
        let targeted = &self.targeted;
        check_probability("targeted.probability", targeted.probability)?;
        let weights = targeted.weights;
        if targeted.probability > 0.0 && weights.bit_rot + weights.misdirect + weights.bad_sector == 0 {
            return Err(InvalidFaultOptions {
                field: "targeted.weights",
                reason: "all weights are 0".into(),
            });
        }
        for target in &targeted.targets {
            if let TargetRegion::Bytes { start, end } = target.region
                && start >= end
            {
                return Err(InvalidFaultOptions {
                    field: "targeted.targets",
                    reason: format!("empty byte range {start}..{end}"),
                });
            }
        }
        Ok(())
    }
}
