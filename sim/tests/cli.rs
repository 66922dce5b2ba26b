//! The `stormhold-sim` command line: what `run` and `sweep` print and how they exit.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stormhold-sim")).args(args).output().expect("run stormhold-sim")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn trace_hash(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("trace-hash: ")).expect("a trace-hash line");
    let hash = line.trim_start_matches("trace-hash: ").to_owned();
    assert_eq!(hash.len(), 16, "16 hex digits: {hash}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "hex: {hash}");
    hash
}

#[test]
fn run_prints_options_summary_and_the_same_trace_hash_twice() {
    let first = sim(&["run", "--seed", "7", "--ops", "120"]);
    let second = sim(&["run", "--seed", "7", "--ops", "120"]);
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    let text = stdout(&first);
    assert!(text.contains("stormhold-sim run: seed=7 workload=kernel ops=120"), "{text}");
    assert!(text.contains("fault classes on: "), "{text}");
    assert!(text.contains("options: FaultOptions {"), "{text}");
    assert!(text.contains("result: ok (no violation)"), "{text}");
    assert_eq!(text, stdout(&second), "the same seed prints the same report");
    let other = sim(&["run", "--seed", "8", "--ops", "120"]);
    assert_ne!(trace_hash(&text), trace_hash(&stdout(&other)));
}

#[test]
fn sweep_ends_with_the_summary_line() {
    let output = sim(&["sweep", "--seeds", "0..12", "--ops", "80", "--jobs", "2"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let last = text.lines().last().expect("output");
    let fields: Vec<&str> = last.split_whitespace().collect();
    let labels: Vec<&str> = fields.iter().step_by(2).copied().collect();
    assert_eq!(
        labels,
        [
            "seeds:",
            "ops:",
            "crashes:",
            "faults:",
            "violations:",
            "seeds/s:",
            "cycles/core-min:",
            "seeds/core-s:"
        ],
        "{last}"
    );
    let per_cpu: Vec<f64> = [fields[13], fields[15]].iter().map(|f| f.parse().expect("a number")).collect();
    assert!(per_cpu.iter().all(|&figure| figure > 0.0), "a sweep measures its CPU time: {last}");
    assert_eq!(fields[1], "12");
    assert_eq!(fields[9], "0", "no violations: {text}");
    assert!(text.contains("torn writes"), "faults by kind: {text}");
}

#[test]
fn fault_list_restricts_the_classes_and_bad_input_exits_64() {
    let text = stdout(&sim(&["run", "--seed", "3", "--ops", "50", "--faults", "crash,eio"]));
    assert!(text.contains("fault classes on: crash, eio\n"), "{text}");
    assert_eq!(sim(&["run", "--seed", "3", "--faults", "crash,bogus"]).status.code(), Some(64));
    assert_eq!(sim(&["sweep", "--seeds", "5..3"]).status.code(), Some(64));
    assert_eq!(sim(&["run", "--seed", "1", "--replay-schedule", "/nonexistent"]).status.code(), Some(64));
}

#[test]
fn recorded_schedule_replays_to_the_same_trace_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schedule = dir.path().join("schedule.json");
    let schedule = schedule.to_str().expect("UTF-8 path");
    let recorded = stdout(&sim(&["run", "--seed", "11", "--ops", "150", "--record-schedule", schedule]));
    let replayed = stdout(&sim(&["run", "--seed", "11", "--ops", "150", "--replay-schedule", schedule]));
    assert!(replayed.contains("replaying "), "{replayed}");
    assert_eq!(trace_hash(&recorded), trace_hash(&replayed));
}
