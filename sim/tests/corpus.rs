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
    let mut unaccepted = Vec::new();
    // `INSTA_UPDATE=always` is how the message below pins a new entry: then insta writes its
    // snapshot instead of this test refusing it.
    let pinning = std::env::var("INSTA_UPDATE").is_ok_and(|mode| mode == "always");
    for path in &paths {
        let entry = CorpusEntry::load(path).expect("valid entry");
        assert!(!entry.note.trim().is_empty(), "{} must name the bug it pinned", path.display());
        let report = entry.replay();
        if !entry.outcome_matches(&report) {
            let expected = entry.expect_violation;
            failures.push(format!("{}: expected {expected:?}, got {:?}", path.display(), report.violation));
        }
        let name = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file name");
        if !snapshot_path(name).exists() && !pinning {
            // A new entry (from `shrink`, `sweep --save` or `run --save-corpus`): say exactly
            // how to pin it instead of insta's generic "missing snapshot".
            unaccepted.push(format!("{} ({})", path.display(), entry.note));
            continue;
        }
        insta::assert_snapshot!(name, outcome_summary(&entry, &report));
    }
    assert!(failures.is_empty(), "corpus replays diverged:\n{}", failures.join("\n"));
    assert!(unaccepted.is_empty(), "{}", unaccepted_message(&unaccepted));
}

fn snapshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("corpus__{name}.snap"))
}

/// What to do with new corpus entries, step by step.
fn unaccepted_message(entries: &[String]) -> String {
    format!(
        "{} corpus entries replay to their expected outcome but are not pinned yet (no snapshot):\n  {}\n\
         To pin them as regressions: check each entry's note names the bug, then run\n  \
         INSTA_UPDATE=always cargo test -p stormhold-sim --test corpus\n\
         (or `cargo insta test -p stormhold-sim --test corpus --accept`) and commit the entry with\n\
         its new sim/tests/snapshots/corpus__<name>.snap. To drop one instead, delete its .json.",
        entries.len(),
        entries.join("\n  ")
    )
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
