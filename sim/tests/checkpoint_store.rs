//! The checkpoint workload's power over rule 9 (records a checkpoint covers are never applied
//! again): a store that replays covered commits is caught, because commit records log deltas;
//! and the corpus case pinning it passes on the store as it is.

use stormhold_sim::config::{RunConfig, WorkloadKind};
use stormhold_sim::kv::ckpt_store::CkptBug;
use stormhold_sim::runner::{self, ViolationKind};

const SEEDS_MAX: u64 = 100;
const OPS: u64 = 200;

#[test]
fn replaying_records_a_checkpoint_covers_is_caught() {
    let workload = WorkloadKind::CheckpointPlanted(CkptBug::ReplayCovered);
    let caught = (0..SEEDS_MAX).find_map(|seed| {
        let report = runner::run(&RunConfig::from_seed(seed, workload, OPS), None);
        report.violation.map(|v| (seed, v.kind))
    });
    let (seed, kind) =
        caught.unwrap_or_else(|| panic!("replaying covered records escaped {SEEDS_MAX} seeds"));
    println!("{workload}: caught after {} seeds ({kind:?})", seed + 1);
    assert!(seed < 20, "took {} seeds to catch", seed + 1);
    assert!(
        matches!(kind, ViolationKind::Durability | ViolationKind::Invention),
        "a double application is a state no prefix explains: {kind:?}"
    );
}

#[test]
fn each_checkpoint_corpus_case_passes_on_the_store_as_it_is() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut checked = 0;
    for path in stormhold_sim::corpus::entries(&dir).expect("corpus") {
        let mut entry = stormhold_sim::corpus::CorpusEntry::load(&path).expect("entry");
        let WorkloadKind::CheckpointPlanted(_) = entry.config.workload else { continue };
        assert!(entry.expect_violation.is_some(), "{} pins a violation", path.display());
        entry.config.workload = WorkloadKind::Checkpoint;
        let report = entry.replay();
        assert_eq!(report.violation, None, "{} on the correct store", path.display());
        checked += 1;
    }
    assert_eq!(checked, CkptBug::ALL.len(), "one shrunk case per planted mistake");
}

/// Issue 11 item 2: the workload's checkpoints overlap commits, and restarts strike while
/// one is frozen and unwritten with commits landed in the WAL after its freeze (the store
/// notes what was in flight at each restart).
#[test]
fn restarts_strike_a_frozen_checkpoint_with_commits_after_its_freeze() {
    let mut in_flight = 0;
    for seed in 0..20 {
        let config = RunConfig::from_seed(seed, WorkloadKind::Checkpoint, OPS);
        let env = runner::machine(&config, None);
        env.keep_trace_events(stormhold::env::sim::TRACE_EVENTS_MAX);
        let report = runner::run_with_env(&config, env);
        assert_eq!(report.violation, None, "seed {seed}");
        in_flight += report
            .trace_tail
            .iter()
            .filter_map(|event| event.text.split_once("restart with a checkpoint in flight: "))
            .filter(|(_, what)| !what.contains(", 0 records after it"))
            .count();
    }
    println!("restarts with a frozen checkpoint and commits after it: {in_flight}");
    assert!(in_flight > 0, "no restart struck a frozen checkpoint with commits after its freeze");
}
