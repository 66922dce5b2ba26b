//! Replays every entry of `corpus/` and checks it ends as its entry expects.

use std::path::PathBuf;
use stormhold_sim::corpus::{self, CorpusEntry};
use stormhold_sim::runner::RunReport;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

/// What a replay of `entry` did, in words stable across unrelated code changes (no trace hash).
fn outcome_summary(entry: &CorpusEntry, report: &RunReport) -> String {
    let outcome = report.violation.as_ref().map_or("pass".to_owned(), |v| v.to_string());
    let config = &entry.config;
    [
        format!("note: {}", entry.note),
        format!(
            "workload: {} seed {} ops {} quiet_ops {}",
            config.workload, config.seed, config.ops, config.quiet_ops
        ),
        format!("scheduled faults: {}", entry.schedule.faults.len()),
        format!("expected: {:?}", entry.expect_violation),
        format!("outcome: {outcome}"),
        format!(
            "ops run: {}, recoveries: {}, crashes: {}",
            report.ops, report.recoveries, report.sim.crashes
        ),
    ]
    .join("\n")
}

#[test]
fn every_corpus_entry_replays_to_its_expected_outcome_and_snapshot() {
    let paths = corpus::entries(&corpus_dir()).expect("corpus directory");
    assert!(!paths.is_empty(), "the corpus holds the cases found so far");
    let mut failures = Vec::new();
    for path in &paths {
        let entry = CorpusEntry::load(path).expect("valid entry");
        assert!(!entry.note.trim().is_empty(), "{} must name the bug it pinned", path.display());
        let report = entry.replay();
        if !entry.outcome_matches(&report) {
            let expected = entry.expect_violation;
            failures.push(format!("{}: expected {expected:?}, got {:?}", path.display(), report.violation));
        }
        let name = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file name");
        insta::assert_snapshot!(name, outcome_summary(&entry, &report));
    }
    assert!(failures.is_empty(), "corpus replays diverged:\n{}", failures.join("\n"));
}

#[test]
fn corpus_entry_round_trips_and_a_bad_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").expect("write");
    let error = CorpusEntry::load(&bad).expect_err("bad entry must be refused");
    assert!(error.contains("bad.json"), "the error names the file: {error}");
    let first = corpus::entries(&corpus_dir()).expect("corpus")[0].clone();
    let entry = CorpusEntry::load(&first).expect("entry");
    let copy = dir.path().join("copy.json");
    entry.save(&copy).expect("save");
    assert_eq!(CorpusEntry::load(&copy).expect("reload"), entry);
}
