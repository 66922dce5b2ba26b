//! The env workload's checker must be able to fail: each test runs the workload on a disk
//! that breaks a promise the model was told it keeps, and a bounded sweep must catch it.

use stormhold::env::sim::{CrashMode, FaultOptions, SimEnv, SyncFailureProfile, TearFillWeights};
use stormhold_sim::config::{RunConfig, WorkloadKind};
use stormhold_sim::runner::{self, ViolationKind};

const SEEDS_MAX: u64 = 200;

/// A run config with crashes and torn writes, whose model believes `believed`.
fn config(seed: u64, believed: impl Fn(&mut FaultOptions)) -> RunConfig {
    let mut config = RunConfig::from_seed(seed, WorkloadKind::Env, 300);
    config.restrict_faults(&[]);
    config.faults.crash = CrashMode::Random { probability: 0.01 };
    believed(&mut config.faults);
    config
}

/// Sweeps seeds until one run reports a violation; returns the seed and its kind.
fn first_detection(
    believed: impl Fn(&mut FaultOptions),
    actual: impl Fn(&mut FaultOptions),
) -> Option<(u64, ViolationKind)> {
    (0..SEEDS_MAX).find_map(|seed| {
        let config = config(seed, &believed);
        let mut real = config.faults.clone();
        actual(&mut real);
        let env = SimEnv::new(seed, real).expect("valid options");
        let report = runner::run_with_env(&config, env);
        report.violation.map(|v| (seed, v.kind))
    })
}

#[test]
fn honest_disk_passes_the_same_sweep() {
    for seed in 0..50 {
        let config = config(seed, |_| {});
        let report = runner::run(&config, None);
        assert_eq!(report.violation, None, "seed {seed}");
        assert!(report.recoveries > 0, "seed {seed} must exercise recovery");
    }
}

#[test]
fn checker_catches_garbage_in_torn_sectors_the_model_rules_out() {
    let found = first_detection(
        |f| f.tear_fill = TearFillWeights { old: 1, zero: 1, garbage: 0 },
        |f| f.tear_fill = TearFillWeights { old: 0, zero: 0, garbage: 1 },
    );
    let (seed, kind) = found.expect("garbage tears must be caught");
    println!("garbage tears caught at seed {seed} as {kind:?}");
    assert_eq!(kind, ViolationKind::Durability);
}

#[test]
fn checker_catches_tears_outside_written_bytes_when_powersafe_was_promised() {
    let found = first_detection(
        |f| {
            f.powersafe_overwrite = true;
            f.tear_fill = TearFillWeights { old: 1, zero: 1, garbage: 0 };
        },
        |f| {
            f.powersafe_overwrite = false;
            f.tear_fill = TearFillWeights { old: 0, zero: 1, garbage: 0 };
        },
    );
    let (seed, kind) = found.expect("non-powersafe tears must be caught");
    println!("non-powersafe tears caught at seed {seed} as {kind:?}");
    assert_eq!(kind, ViolationKind::Durability);
}

#[test]
fn checker_catches_a_cache_that_drops_pages_after_a_failed_sync() {
    let found = first_detection(
        |f| {
            f.sync_failure_probability = 0.1;
            f.sync_failure_profile = SyncFailureProfile::Keep;
        },
        |f| f.sync_failure_profile = SyncFailureProfile::Revert,
    );
    let (seed, kind) = found.expect("a reverted cache must be caught by reads");
    println!("reverted cache caught at seed {seed} as {kind:?}");
    assert_eq!(kind, ViolationKind::Read);
}
