//! The env workload's process-crash check must be able to fail: on a disk whose process
//! crashes drop the page cache (a broken promise the model was not told about) a bounded sweep
//! must report it, and on an honest disk the same sweep passes while process crashes happen.

use stormhold::env::sim::{CrashMode, SimEnv};
use stormhold_sim::config::{FaultClass, RunConfig, WorkloadKind};
use stormhold_sim::runner::{self, ViolationKind};

const SEEDS_MAX: u64 = 100;

/// Machine and process crashes, nothing else.
fn config(seed: u64) -> RunConfig {
    let mut config = RunConfig::from_seed(seed, WorkloadKind::Env, 300);
    config.restrict_faults(&[FaultClass::ProcessCrash]);
    config.faults.process_crash_probability = 0.01;
    config.faults.crash = CrashMode::Random { probability: 0.005 };
    config
}

#[test]
fn honest_page_cache_passes_and_process_crashes_are_checked() {
    let mut process_crashes = 0;
    for seed in 0..30 {
        let report = runner::run(&config(seed), None);
        assert_eq!(report.violation, None, "seed {seed}");
        process_crashes += report.sim.process_crashes;
    }
    assert!(process_crashes > 30, "the sweep crashed processes ({process_crashes})");
}

#[test]
fn checker_catches_a_process_crash_that_drops_the_page_cache() {
    let found = (0..SEEDS_MAX).find_map(|seed| {
        let config = config(seed);
        let mut real = config.faults.clone();
        real.process_crash_keeps_cache = false;
        let env = SimEnv::new(seed, real).expect("valid options");
        runner::run_with_env(&config, env).violation.map(|v| (seed, v))
    });
    let (seed, violation) = found.expect("a dropped page cache must be caught");
    println!("dropped page cache caught at seed {seed}: {violation}");
    assert!(matches!(violation.kind, ViolationKind::Durability | ViolationKind::Read), "{violation}");
}
