//! The checker's power: each deliberately broken toy store must be caught by a bounded sweep,
//! and the reference toy store must pass the same sweep. Prints seeds-to-first-detection.

use stormhold_sim::config::{RunConfig, WorkloadKind};
use stormhold_sim::kv::toy::ToyBug;
use stormhold_sim::runner::{self, ViolationKind};

const SEEDS_MAX: u64 = 300;
const OPS: u64 = 200;

/// The first seed whose run reports a violation, with its kind.
fn first_detection(bug: ToyBug) -> Option<(u64, ViolationKind)> {
    (0..SEEDS_MAX).find_map(|seed| {
        let config = RunConfig::from_seed(seed, WorkloadKind::Toy(bug), OPS);
        runner::run(&config, None).violation.map(|v| (seed, v.kind))
    })
}

fn assert_caught(bug: ToyBug) {
    let (seed, kind) = first_detection(bug).unwrap_or_else(|| panic!("{bug:?} escaped {SEEDS_MAX} seeds"));
    println!("{}: caught after {} seeds ({kind:?})", bug.workload_name(), seed + 1);
    assert_eq!(kind, ViolationKind::Durability, "{bug:?} loses or invents data");
}

#[test]
fn reference_toy_store_passes_the_sweep() {
    let mut recoveries = 0;
    for seed in 0..SEEDS_MAX {
        let config = RunConfig::from_seed(seed, WorkloadKind::Toy(ToyBug::None), OPS);
        let report = runner::run(&config, None);
        assert_eq!(report.violation, None, "seed {seed}");
        recoveries += report.recoveries;
    }
    assert!(recoveries > SEEDS_MAX, "the sweep must exercise recovery: {recoveries}");
}

#[test]
fn acknowledging_before_sync_is_caught() {
    assert_caught(ToyBug::AckBeforeSync);
}

#[test]
fn skipping_the_directory_sync_after_a_rename_is_caught() {
    assert_caught(ToyBug::SkipDirSync);
}

#[test]
fn appending_behind_a_torn_tail_is_caught() {
    assert_caught(ToyBug::AppendBehindTornTail);
}

#[test]
fn truncating_on_mid_log_corruption_is_caught() {
    assert_caught(ToyBug::TruncateMidLogCorruption);
}

#[test]
fn retrying_a_failed_fsync_is_caught() {
    assert_caught(ToyBug::RetryFailedFsync);
}

#[test]
fn each_shrunk_toy_case_passes_on_the_reference_store() {
    // A corpus case pins its bug only if the same operations and faults leave the correct
    // store intact: otherwise it would pin a checker false positive.
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut checked = 0;
    for path in stormhold_sim::corpus::entries(&dir).expect("corpus") {
        let mut entry = stormhold_sim::corpus::CorpusEntry::load(&path).expect("entry");
        let WorkloadKind::Toy(bug) = entry.config.workload else { continue };
        if bug == ToyBug::None {
            continue;
        }
        assert!(entry.expect_violation.is_some(), "{} pins a violation", path.display());
        entry.config.workload = WorkloadKind::Toy(ToyBug::None);
        let report = entry.replay();
        assert_eq!(report.violation, None, "{} on the reference store", path.display());
        checked += 1;
    }
    assert_eq!(checked, ToyBug::ALL.len() - 1, "one shrunk case per toy bug");
}
