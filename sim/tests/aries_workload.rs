//! The aries workload: ARIES recovery passes a bounded sweep, the workload reaches what it is
//! meant to check (uncommitted pages stolen, aborts, checkpoints, losers undone, crashes in
//! recovery and in its undo pass), and each planted mistake of the page store is caught within
//! a few seeds, so the committed-prefix checker can fail.

use stormhold_sim::aries_workload::{AriesBug, AriesWorkload, Seen};
use stormhold_sim::config::{RunConfig, WorkloadKind};
use stormhold_sim::runner::{self, ViolationKind};

const OPS: u64 = 300;

fn config(seed: u64, bug: AriesBug) -> RunConfig {
    RunConfig::from_seed(seed, WorkloadKind::Aries(bug), OPS)
}

#[test]
fn aries_passes_a_sweep_and_the_workload_reaches_what_it_checks() {
    let mut seen = Seen::default();
    let mut recoveries = 0;
    for seed in 0..40 {
        let config = config(seed, AriesBug::None);
        let mut workload = AriesWorkload::new(runner::machine(&config, None), config, AriesBug::None);
        assert_eq!(workload.run(), Ok(()), "seed {seed}");
        recoveries += workload.recoveries;
        let s = &workload.seen;
        seen.aborts += s.aborts;
        seen.checkpoints += s.checkpoints;
        seen.uncommitted_pages_stolen += s.uncommitted_pages_stolen;
        seen.undone += s.undone;
        seen.redone += s.redone;
        seen.crashes_in_recovery += s.crashes_in_recovery;
        seen.crashes_during_undo += s.crashes_during_undo;
    }
    println!("40 seeds: {recoveries} recoveries, {seen:?}");
    assert!(recoveries > 40, "{recoveries}");
    assert!(seen.aborts > 0 && seen.checkpoints > 0, "{seen:?}");
    assert!(seen.uncommitted_pages_stolen > 0 && seen.undone > 0 && seen.redone > 0, "{seen:?}");
    assert!(seen.crashes_in_recovery > 0 && seen.crashes_during_undo > 0, "{seen:?}");
}

fn assert_caught(bug: AriesBug, allowed: &[ViolationKind]) {
    let first = (0..100).find_map(|seed| runner::run(&config(seed, bug), None).violation.map(|v| (seed, v)));
    let (seed, violation) = first.unwrap_or_else(|| panic!("{bug:?} escaped 100 seeds"));
    println!("{}: caught after {} seeds: {violation}", bug.workload_name(), seed + 1);
    assert!(seed < 10, "{bug:?} took {} seeds to catch", seed + 1);
    assert!(allowed.contains(&violation.kind), "{bug:?}: {violation}");
}

#[test]
fn a_page_stolen_before_its_log_records_are_durable_is_caught() {
    assert_caught(AriesBug::StealBeforeLog, &[ViolationKind::Invention, ViolationKind::Durability]);
}

#[test]
fn a_checkpoint_that_forgets_dirty_pages_is_caught() {
    assert_caught(AriesBug::CheckpointForgetsDirty, &[ViolationKind::Invention, ViolationKind::Durability]);
}

#[test]
fn recovered_pages_left_unwritten_fail_the_idempotence_check() {
    let config = config(0, AriesBug::SkipRecoveryFlush);
    let violation = runner::run(&config, None).violation.expect("caught on the first seed");
    assert_eq!(violation.kind, ViolationKind::Durability, "{violation}");
    assert!(violation.detail.contains("not idempotent"), "{violation}");
}

#[test]
fn each_aries_corpus_case_passes_on_the_correct_page_store() {
    // A corpus case pins its planted mistake only if the same seed and faults leave the correct
    // page store intact: otherwise it would pin a checker false positive.
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut checked = 0;
    for path in stormhold_sim::corpus::entries(&dir).expect("corpus") {
        let mut entry = stormhold_sim::corpus::CorpusEntry::load(&path).expect("entry");
        let WorkloadKind::Aries(bug) = entry.config.workload else { continue };
        if bug == AriesBug::None {
            continue;
        }
        assert!(entry.expect_violation.is_some(), "{} pins a violation", path.display());
        assert!(entry.outcome_matches(&entry.replay()), "{} still fails as pinned", path.display());
        entry.config.workload = WorkloadKind::Aries(AriesBug::None);
        let report = entry.replay();
        assert_eq!(report.violation, None, "{} on the correct store", path.display());
        checked += 1;
    }
    assert_eq!(checked, AriesBug::ALL.len() - 1, "one shrunk case per planted mistake");
}
