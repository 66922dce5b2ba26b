//! A run's configuration, derived from its seed (swarm testing) and then overridden by flags.
//!
//! Invariants: everything a run does follows from its `RunConfig`; `RunConfig::from_seed` draws
//! from its own stream of the seed, so the options of a seed never depend on how many random
//! numbers the workload or the fault classes draw.

use crate::aries_workload::AriesBug;
use crate::kv::stores::ckpt_store::CkptBug;
use crate::kv::stores::kernel_store::{KernelBug, KernelStoreOptions};
use crate::kv::stores::toy::ToyBug;
use crate::raft_workload::RaftBug;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use stormhold::env::sim::{
    CrashMode, DirOrdering, FaultOptions, LatencyOptions, MediaTarget, SyncFailureProfile, TargetRegion,
    TargetedFaults, TargetedWeights, TearFillWeights, WriteFateWeights,
};

/// Stream numbers of the driver's own random streams (the fault classes use 1..=99).
pub mod stream {
    /// Swarm options of a seed.
    pub const SWARM: u64 = 100;
    /// The workload's operations.
    pub const WORKLOAD: u64 = 101;
    /// Which crash points enumerate their images.
    pub const IMAGES: u64 = 102;
    /// The options of the store under test (the kernel store's shards, epochs, ...).
    pub const STORE: u64 = 103;
    /// Swarm options of the classes added after the first ten (process crashes, targeted
    /// media faults): drawn apart so the older options of a seed stay what they were.
    pub const SWARM_SECOND_WAVE: u64 = 104;
    /// Which of the env workload's crashes are process crashes.
    pub const PROCESS_CRASHES: u64 = 105;
}

/// The workload of `run`, `sweep` and `shrink` when none is named.
pub const WORKLOAD_DEFAULT: WorkloadKind = WorkloadKind::Kernel(KernelBug::None);

/// Default number of workload operations in a run.
pub const OPS_DEFAULT: u64 = 400;

/// Default bound on the crash images enumerated at one crash point (beyond it: sampled).
pub const IMAGES_MAX_DEFAULT: usize = 256;

fn images_max_default() -> usize {
    IMAGES_MAX_DEFAULT
}

/// The workloads the simulator can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// Raw Env calls (create, write, sync, rename, remove, crash, reopen) checked against a
    /// model of what the crash-safety rules allow.
    Env,
    /// A toy key-value store, correct or with one planted crash-safety bug, checked by the
    /// key-value model (proves the checker can fail).
    Toy(ToyBug),
    /// A key-value store on the write-ahead log: several clients with interleaved
    /// transactions (aborts and long ones included), checked by the key-value model.
    Wal,
    /// The `wal` store plus checkpoints (full and incremental), retention and WAL truncation;
    /// recovery is the latest valid checkpoint plus WAL replay.
    Checkpoint,
    /// The `checkpoint` store with one planted mistake (proves the checker can fail).
    CheckpointPlanted(CkptBug),
    /// The sharded `Kernel`: transactions within one shard (interleaved clients included),
    /// increments, scans, documents, checkpoints and `tick`, failed-shard isolation, checked
    /// against one key-value model per shard; or with one planted mistake.
    Kernel(KernelBug),
    /// The `stormhold-raft` adapter driven through openraft's storage API, crashed, and
    /// checked against what Raft requires to survive; or with one planted mistake.
    Raft(RaftBug),
    /// ARIES recovery under a STEAL / NO-FORCE page store, crashed during recovery and undo
    /// too, checked against the committed transactions; or with one planted mistake.
    Aries(AriesBug),
}

impl WorkloadKind {
    /// Every workload, by name.
    pub fn all() -> Vec<WorkloadKind> {
        let mut all = vec![WorkloadKind::Env, WorkloadKind::Wal, WorkloadKind::Checkpoint];
        all.extend(CkptBug::ALL.iter().map(|&bug| WorkloadKind::CheckpointPlanted(bug)));
        all.extend(KernelBug::ALL.iter().map(|&bug| WorkloadKind::Kernel(bug)));
        all.extend(ToyBug::ALL.iter().map(|&bug| WorkloadKind::Toy(bug)));
        all.extend(RaftBug::ALL.iter().map(|&bug| WorkloadKind::Raft(bug)));
        all.extend(AriesBug::ALL.iter().map(|&bug| WorkloadKind::Aries(bug)));
        all
    }

    /// The `--workload` name.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Env => "env",
            WorkloadKind::Wal => "wal",
            WorkloadKind::Checkpoint => "checkpoint",
            WorkloadKind::CheckpointPlanted(bug) => bug.workload_name(),
            WorkloadKind::Toy(bug) => bug.workload_name(),
            WorkloadKind::Kernel(bug) => bug.workload_name(),
            WorkloadKind::Raft(bug) => bug.workload_name(),
            WorkloadKind::Aries(bug) => bug.workload_name(),
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WorkloadKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let all = WorkloadKind::all();
        all.iter().copied().find(|w| w.name() == text).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|w| w.name()).collect();
            format!("unknown workload {text:?} (known: {})", names.join(", "))
        })
    }
}

/// Fault classes, as `--faults` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultClass {
    /// Spontaneous crashes at any Env call.
    Crash,
    /// Failed syncs.
    Sync,
    /// EIO on other calls.
    Eio,
    /// Short reads and writes.
    Short,
    /// A disk byte budget (ENOSPC).
    Enospc,
    /// Bit rot in durable bytes.
    Rot,
    /// Misdirected writes.
    Misdirect,
    /// Latent bad sectors.
    BadSector,
    /// Wall-clock jumps.
    Clock,
    /// Slow I/O.
    Slow,
    /// Process crashes that keep the page cache.
    ProcessCrash,
    /// Media faults aimed at critical regions.
    Targeted,
}

impl FaultClass {
    /// Every class, in a fixed order.
    pub const ALL: [FaultClass; 12] = [
        FaultClass::Crash,
        FaultClass::Sync,
        FaultClass::Eio,
        FaultClass::Short,
        FaultClass::Enospc,
        FaultClass::Rot,
        FaultClass::Misdirect,
        FaultClass::BadSector,
        FaultClass::Clock,
        FaultClass::Slow,
        FaultClass::ProcessCrash,
        FaultClass::Targeted,
    ];

    /// How many of [`FaultClass::ALL`] the swarm stream `stream::SWARM` switches (the rest:
    /// `stream::SWARM_SECOND_WAVE`).
    const FIRST_WAVE: usize = 10;

    /// The `--faults` name.
    pub fn name(self) -> &'static str {
        match self {
            FaultClass::Crash => "crash",
            FaultClass::Sync => "sync",
            FaultClass::Eio => "eio",
            FaultClass::Short => "short",
            FaultClass::Enospc => "enospc",
            FaultClass::Rot => "rot",
            FaultClass::Misdirect => "misdirect",
            FaultClass::BadSector => "badsector",
            FaultClass::Clock => "clock",
            FaultClass::Slow => "slow",
            FaultClass::ProcessCrash => "process",
            FaultClass::Targeted => "targeted",
        }
    }
}

/// Parses a `--faults` list: `all`, `none`, or comma-separated class names.
pub fn parse_fault_list(text: &str) -> Result<Vec<FaultClass>, String> {
    match text.trim() {
        "all" => return Ok(FaultClass::ALL.to_vec()),
        "none" | "" => return Ok(Vec::new()),
        _ => {}
    }
    text.split(',')
        .map(|name| {
            let name = name.trim();
            FaultClass::ALL.iter().copied().find(|class| class.name() == name).ok_or_else(|| {
                let known: Vec<&str> = FaultClass::ALL.iter().map(|c| c.name()).collect();
                format!("unknown fault class {name:?} (known: {}, all, none)", known.join(", "))
            })
        })
        .collect()
}

/// A `--faults` list, parsed as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultList(pub Vec<FaultClass>);

impl FromStr for FaultList {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        parse_fault_list(text).map(FaultList)
    }
}

/// Everything that determines a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The seed.
    pub seed: u64,
    /// Which workload.
    pub workload: WorkloadKind,
    /// Operations in the chaos phase.
    pub ops: u64,
    /// Operations in the quiet phase that follows (no new faults).
    pub quiet_ops: u64,
    /// Chance that the workload itself crashes the process between two operations.
    pub driver_crash_probability: f64,
    /// Chance that a crash point of the workload enumerates every legal post-crash image
    /// (up to `images_max`) and checks recovery on each, instead of one drawn image.
    #[serde(default)]
    pub image_check_probability: f64,
    /// Bound on the images enumerated at one crash point; beyond it they are sampled.
    #[serde(default = "images_max_default")]
    pub images_max: usize,
    /// The simulated disk and clock.
    pub faults: FaultOptions,
    /// The options of the kernel store (kernel workloads), drawn from the seed and recorded
    /// here so a corpus entry replays on its own; absent (entries older than the field): drawn
    /// from the seed at run time ([`KernelStoreOptions::from_seed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<KernelStoreOptions>,
}

fn rate(rng: &mut ChaCha8Rng, on: bool, low: f64, high: f64) -> f64 {
    if on { rng.random_range(low..high) } else { 0.0 }
}

/// The critical regions targeted media faults aim at in `workload`'s files. The kernel's:
/// checkpoint `META`, `HIGH_WATER`, the `KERNEL` file, WAL segment headers (their 32 bytes of
/// fields) and the last durable record of each segment. The env workload's: the last synced
/// write of every file and the first sector of each file named `a`.
pub fn media_targets(workload: WorkloadKind) -> Vec<MediaTarget> {
    let named = |prefix: &str, suffix: &str, region| MediaTarget {
        name_prefix: prefix.to_owned(),
        name_suffix: suffix.to_owned(),
        region,
    };
    match workload {
        WorkloadKind::Env => vec![
            named("", "", TargetRegion::LastSyncedWrite),
            named("a", "a", TargetRegion::Bytes { start: 0, end: 512 }),
        ],
        _ => vec![
            named("META", "META", TargetRegion::Whole),
            named("HIGH_WATER", "HIGH_WATER", TargetRegion::Whole),
            named("KERNEL", "KERNEL", TargetRegion::Whole),
            named("wal-", ".log", TargetRegion::Bytes { start: 0, end: 32 }),
            named("wal-", ".log", TargetRegion::LastSyncedWrite),
        ],
    }
}

/// The process-crash probability and the targeted media faults of `seed`, from a stream of
/// their own. Swarmed (each on with even odds) for the workloads whose checker knows them:
/// `env`, and the kernel, wal and checkpoint workloads (planted mistakes included); the toy
/// stores get them through `--faults` or `--set`.
fn second_wave(seed: u64, workload: WorkloadKind) -> (f64, TargetedFaults) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream::SWARM_SECOND_WAVE);
    let swarmed = matches!(
        workload,
        WorkloadKind::Env
            | WorkloadKind::Kernel(_)
            | WorkloadKind::Wal
            | WorkloadKind::Checkpoint
            | WorkloadKind::CheckpointPlanted(_)
    );
    let process_on = rng.random_bool(0.5) && swarmed;
    let targeted_on = rng.random_bool(0.5) && swarmed;
    let process_crash_probability = rate(&mut rng, process_on, 0.001, 0.01);
    let targeted = TargetedFaults {
        probability: rate(&mut rng, targeted_on, 0.002, 0.02),
        weights: TargetedWeights {
            bit_rot: rng.random_range(1..4),
            misdirect: rng.random_range(0..4),
            bad_sector: rng.random_range(0..4),
        },
        targets: media_targets(workload),
    };
    (process_crash_probability, targeted)
}

impl RunConfig {
    /// The swarm configuration of `seed`: each fault class is on or off with even odds, and
    /// its rate, the sector size, the sync-failure profile and the directory ordering vary.
    pub fn from_seed(seed: u64, workload: WorkloadKind, ops: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream::SWARM);
        let mut on = [false; FaultClass::ALL.len()];
        for flag in &mut on[..FaultClass::FIRST_WAVE] {
            *flag = rng.random_bool(0.5);
        }
        let class_on = |class: FaultClass| on[FaultClass::ALL.iter().position(|&c| c == class).unwrap_or(0)];
        let sector_size_bytes = if rng.random_bool(0.75) { 512 } else { 4096 };
        let profiles = [SyncFailureProfile::Keep, SyncFailureProfile::Drop, SyncFailureProfile::Revert];
        let crash_probability = rate(&mut rng, class_on(FaultClass::Crash), 0.001, 0.02);
        let (process_crash_probability, targeted) = second_wave(seed, workload);
        let faults = FaultOptions {
            process_crash_probability,
            process_crash_keeps_cache: true,
            targeted,
            sector_size_bytes,
            crash: if crash_probability > 0.0 {
                CrashMode::Random { probability: crash_probability }
            } else {
                CrashMode::Off
            },
            write_fate: WriteFateWeights {
                survive: rng.random_range(0..4),
                lose: rng.random_range(0..4),
                tear: rng.random_range(1..4),
            },
            tear_fill: TearFillWeights {
                old: rng.random_range(0..3),
                zero: rng.random_range(1..3),
                garbage: if rng.random_bool(0.5) { rng.random_range(0..3) } else { 0 },
            },
            powersafe_overwrite: rng.random_bool(0.5),
            dir_ordering: if rng.random_bool(0.5) { DirOrdering::Independent } else { DirOrdering::Ordered },
            sync_failure_probability: rate(&mut rng, class_on(FaultClass::Sync), 0.005, 0.05),
            sync_failure_profile: profiles[rng.random_range(0..profiles.len())],
            io_error_probability: rate(&mut rng, class_on(FaultClass::Eio), 0.002, 0.03),
            io_error_persistent_fraction: rng.random_range(0.0..0.5),
            short_io_probability: rate(&mut rng, class_on(FaultClass::Short), 0.01, 0.2),
            disk_bytes_max: class_on(FaultClass::Enospc).then(|| rng.random_range(8_192..65_536)),
            bit_rot_probability: rate(&mut rng, class_on(FaultClass::Rot), 0.001, 0.01),
            misdirect_probability: rate(&mut rng, class_on(FaultClass::Misdirect), 0.001, 0.01),
            bad_sector_probability: rate(&mut rng, class_on(FaultClass::BadSector), 0.001, 0.01),
            media_faults_max: rng.random_range(1..8),
            clock_jump_probability: rate(&mut rng, class_on(FaultClass::Clock), 0.01, 0.2),
            clock_jump_max_ms: 3_600_000,
            latency: LatencyOptions {
                slow_probability: rate(&mut rng, class_on(FaultClass::Slow), 0.001, 0.05),
                ..LatencyOptions::default()
            },
        };
        Self {
            seed,
            workload,
            ops,
            quiet_ops: (ops / 10).max(10),
            driver_crash_probability: rng.random_range(0.005..0.03),
            image_check_probability: 0.01,
            images_max: IMAGES_MAX_DEFAULT,
            faults,
            store: matches!(workload, WorkloadKind::Kernel(_)).then(|| KernelStoreOptions::from_seed(seed)),
        }
    }

    /// Keeps exactly the fault classes in `classes`: the others are switched off, and a listed
    /// class the swarm left off gets a middle rate.
    pub fn restrict_faults(&mut self, classes: &[FaultClass]) {
        let f = &mut self.faults;
        let want = |class| classes.contains(&class);
        let pick = |current: f64, class, default: f64| match (want(class), current > 0.0) {
            (false, _) => 0.0,
            (true, true) => current,
            (true, false) => default,
        };
        f.crash = match (want(FaultClass::Crash), f.crash) {
            (false, _) => CrashMode::Off,
            (true, CrashMode::Off) => CrashMode::Random { probability: 0.01 },
            (true, mode) => mode,
        };
        f.sync_failure_probability = pick(f.sync_failure_probability, FaultClass::Sync, 0.02);
        f.io_error_probability = pick(f.io_error_probability, FaultClass::Eio, 0.01);
        f.short_io_probability = pick(f.short_io_probability, FaultClass::Short, 0.05);
        f.bit_rot_probability = pick(f.bit_rot_probability, FaultClass::Rot, 0.005);
        f.misdirect_probability = pick(f.misdirect_probability, FaultClass::Misdirect, 0.005);
        f.bad_sector_probability = pick(f.bad_sector_probability, FaultClass::BadSector, 0.005);
        f.clock_jump_probability = pick(f.clock_jump_probability, FaultClass::Clock, 0.05);
        f.latency.slow_probability = pick(f.latency.slow_probability, FaultClass::Slow, 0.01);
        f.process_crash_probability = pick(f.process_crash_probability, FaultClass::ProcessCrash, 0.005);
        f.targeted.probability = pick(f.targeted.probability, FaultClass::Targeted, 0.01);
        f.disk_bytes_max = match (want(FaultClass::Enospc), f.disk_bytes_max) {
            (false, _) => None,
            (true, None) => Some(32_768),
            (true, some) => some,
        };
        let media = [FaultClass::Rot, FaultClass::Misdirect, FaultClass::BadSector, FaultClass::Targeted];
        if media.iter().any(|&class| want(class)) && f.media_faults_max == 0 {
            f.media_faults_max = 4;
        }
    }

    /// The fault classes switched on.
    pub fn enabled_classes(&self) -> Vec<FaultClass> {
        let f = &self.faults;
        FaultClass::ALL
            .iter()
            .copied()
            .filter(|class| match class {
                FaultClass::Crash => f.crash != CrashMode::Off,
                FaultClass::Sync => f.sync_failure_probability > 0.0,
                FaultClass::Eio => f.io_error_probability > 0.0,
                FaultClass::Short => f.short_io_probability > 0.0,
                FaultClass::Enospc => f.disk_bytes_max.is_some(),
                FaultClass::Rot => f.bit_rot_probability > 0.0,
                FaultClass::Misdirect => f.misdirect_probability > 0.0,
                FaultClass::BadSector => f.bad_sector_probability > 0.0,
                FaultClass::Clock => f.clock_jump_probability > 0.0,
                FaultClass::Slow => f.latency.slow_probability > 0.0,
                FaultClass::ProcessCrash => f.process_crash_probability > 0.0,
                FaultClass::Targeted => f.targeted.probability > 0.0,
            })
            .collect()
    }
}

/// Bounds on a run's options beyond the ranges `FaultOptions::validate` checks; a corpus
/// entry, a `--set` override or a command line outside them is refused (exit 64), so no replay
/// of a hand-edited entry overflows, allocates without bound or runs for ever.
pub mod bounds {
    /// Most operations in the chaos phase, and in the quiet phase, of one run.
    pub const OPS_MAX: u64 = 1_000_000;
    /// Largest `images_max` (crash images enumerated at one crash point).
    pub const IMAGES_MAX_MAX: usize = 1 << 16;
    /// Largest base latency of one call (`latency.metadata_us`, `io_us`, `sync_us`): 1 s.
    pub const LATENCY_US_MAX: u64 = 1_000_000;
    /// Fastest transfer rate, `latency.bytes_per_us` (1 TB/s).
    pub const BYTES_PER_US_MAX: u64 = 1_000_000;
    /// Largest `latency.slow_factor`.
    pub const SLOW_FACTOR_MAX: u64 = 1_000;
    /// Largest wall-clock jump, `clock_jump_max_ms` (and a scheduled jump): 30 days.
    pub const CLOCK_JUMP_MS_MAX: u64 = 30 * 24 * 3_600_000;
    /// Largest weight in `write_fate` and `tear_fill` (their sums must fit a u32).
    pub const WEIGHT_MAX: u32 = 1 << 16;
    /// Largest simulated disk, `disk_bytes_max`: 1 TiB.
    pub const DISK_BYTES_MAX_MAX: u64 = 1 << 40;
    // A call's latency is computed as `base_us * 1000 * jitter(<1500)`: it must fit a u64.
    const _: () = assert!(LATENCY_US_MAX.checked_mul(1000 * 1500 * SLOW_FACTOR_MAX).is_some());
    const _: () = assert!(CLOCK_JUMP_MS_MAX <= i64::MAX as u64 / 1_000_000);
}

/// A run input (corpus entry, schedule, `--set`) outside its documented bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidInput {
    /// The field, as a dotted path from the entry's root (`config.faults.latency.sync_us`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidInput {
    /// `field` is `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }

    /// The same error with `prefix.` in front of its field.
    pub fn under(self, prefix: &str) -> Self {
        Self { field: format!("{prefix}.{}", self.field), reason: self.reason }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {}: {}", self.field, self.reason)
    }
}

/// `value <= max`, or an error naming `field`.
pub fn check_at_most<T: PartialOrd + fmt::Display>(
    field: &str,
    value: T,
    max: T,
) -> Result<(), InvalidInput> {
    if value <= max {
        Ok(())
    } else {
        Err(InvalidInput::new(field, format!("{value} is above the bound {max}")))
    }
}

fn check_probability(field: &str, value: f64) -> Result<(), InvalidInput> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(InvalidInput::new(field, format!("{value} is not in 0.0..=1.0")))
    }
}

impl RunConfig {
    /// Checks every field against its range: `FaultOptions::validate` and [`bounds`].
    /// Fields are named from the configuration's root (`faults.latency.io_us`).
    pub fn validate(&self) -> Result<(), InvalidInput> {
        use bounds::*;
        check_at_most("ops", self.ops, OPS_MAX)?;
        check_at_most("quiet_ops", self.quiet_ops, OPS_MAX)?;
        check_probability("driver_crash_probability", self.driver_crash_probability)?;
        check_probability("image_check_probability", self.image_check_probability)?;
        if self.images_max == 0 {
            return Err(InvalidInput::new("images_max", "must be at least 1"));
        }
        check_at_most("images_max", self.images_max, IMAGES_MAX_MAX)?;
        let f = &self.faults;
        // Before `FaultOptions::validate`, which sums the weights.
        let weights = [
            ("faults.write_fate.survive", f.write_fate.survive),
            ("faults.write_fate.lose", f.write_fate.lose),
            ("faults.write_fate.tear", f.write_fate.tear),
            ("faults.tear_fill.old", f.tear_fill.old),
            ("faults.tear_fill.zero", f.tear_fill.zero),
            ("faults.tear_fill.garbage", f.tear_fill.garbage),
        ];
        for (field, weight) in weights {
            check_at_most(field, weight, WEIGHT_MAX)?;
        }
        f.validate()
            .map_err(|invalid| InvalidInput::new(format!("faults.{}", invalid.field), invalid.reason))?;
        let latency = &f.latency;
        check_at_most("faults.latency.metadata_us", latency.metadata_us, LATENCY_US_MAX)?;
        check_at_most("faults.latency.io_us", latency.io_us, LATENCY_US_MAX)?;
        check_at_most("faults.latency.sync_us", latency.sync_us, LATENCY_US_MAX)?;
        check_at_most("faults.latency.bytes_per_us", latency.bytes_per_us, BYTES_PER_US_MAX)?;
        check_at_most("faults.latency.slow_factor", latency.slow_factor, SLOW_FACTOR_MAX)?;
        check_at_most("faults.clock_jump_max_ms", f.clock_jump_max_ms, CLOCK_JUMP_MS_MAX)?;
        if let Some(disk_bytes_max) = f.disk_bytes_max {
            check_at_most("faults.disk_bytes_max", disk_bytes_max, DISK_BYTES_MAX_MAX)?;
        }
        Ok(())
    }
}

impl RunConfig {
    /// Overrides one field by its dotted path, e.g. `ops=100` or
    /// `faults.sync_failure_probability=0.1`; the value is JSON (a bare word is a string).
    /// The result must still be a valid configuration.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (path, value) =
            assignment.split_once('=').ok_or_else(|| format!("--set {assignment:?}: expected key=value"))?;
        let value: serde_json::Value =
            serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        let mut tree = serde_json::to_value(&*self).map_err(|e| e.to_string())?;
        let mut slot = &mut tree;
        for key in path.split('.') {
            slot = slot
                .get_mut(key)
                .ok_or_else(|| format!("--set {path}: no field {key:?} (see the options printed by run)"))?;
        }
        *slot = value;
        let updated: RunConfig =
            serde_json::from_value(tree).map_err(|e| format!("--set {assignment}: {e}"))?;
        updated.validate().map_err(|e| format!("--set {assignment}: {e}"))?;
        *self = updated;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_overrides_nested_fields_and_refuses_bad_ones() {
        let mut config = RunConfig::from_seed(1, WorkloadKind::Env, 100);
        config.set("ops=7").expect("ops");
        config.set("faults.sync_failure_probability=0.25").expect("nested");
        config.set("faults.sync_failure_profile=Revert").expect("bare word");
        assert_eq!(config.ops, 7);
        assert_eq!(config.faults.sync_failure_probability, 0.25);
        assert_eq!(config.faults.sync_failure_profile, SyncFailureProfile::Revert);
        assert!(config.set("faults.nope=1").unwrap_err().contains("no field"));
        assert!(config.set("faults.sector_size_bytes=1000").unwrap_err().contains("512 or 4096"));
        assert!(config.set("ops").unwrap_err().contains("key=value"));
        assert_eq!(config.ops, 7, "a refused --set changes nothing");
    }

    #[test]
    fn swarm_switches_whole_classes_off_in_some_seeds() {
        let mut counts = [0u32; FaultClass::ALL.len()];
        for seed in 0..200 {
            let config = RunConfig::from_seed(seed, WorkloadKind::Env, 100);
            for class in config.enabled_classes() {
                counts[FaultClass::ALL.iter().position(|&c| c == class).unwrap_or(0)] += 1;
            }
        }
        for (class, count) in FaultClass::ALL.iter().zip(counts) {
            assert!((40..160).contains(&count), "{} on in {count} of 200 seeds", class.name());
        }
    }
}
