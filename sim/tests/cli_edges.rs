//! The `stormhold-sim` command line's edges: the sweep's legend and capped failure list, output
//! paths checked before a run, and `--jobs 0` refused.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stormhold-sim")).args(args).output().expect("run stormhold-sim")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

#[test]
fn sweep_explains_undetectable_damage_and_data_loss_under_the_table() {
    let output = sim(&["sweep", "--seeds", "0..3", "--ops", "40", "--jobs", "1", "--workload", "toy"]);
    assert_eq!(output.status.code(), Some(0));
    let out = text(&output.stdout);
    let table_row = out.find("\ndata loss reported ").expect("the table row");
    let legend = out.find("  undetectable damage: ").expect("the legend of undetectable damage");
    assert!(legend > table_row, "the legend comes under the table: {out}");
    assert!(out.contains("not a violation"), "{out}");
    assert!(out.contains("  data loss reported: recovery refused with a data-loss error"), "{out}");
}

#[test]
fn sweep_prints_the_first_20_failing_seeds_and_the_json_lists_them_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("sweep.json");
    let json = json.to_str().expect("UTF-8 path");
    let args =
        ["sweep", "--seeds", "0..40", "--ops", "40", "--jobs", "2", "--workload", "toy-ack-before-sync"];
    let output = sim(&[&args[..], &["--json", json]].concat());
    assert_eq!(output.status.code(), Some(1), "the planted bug is caught");
    let out = text(&output.stdout);
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("the document")).expect("JSON");
    let failures = document["failures"].as_array().expect("a failure list").len();
    assert!(failures > 20, "enough failing seeds to cap: {failures}");
    assert_eq!(out.matches("FAILED seed ").count(), 20, "{out}");
    assert_eq!(out.matches("  replay: ").count(), 20, "{out}");
    let more = format!("... and {} more failing seeds; the --json document lists them all", failures - 20);
    assert!(out.contains(&more), "{out}");
    assert!(out.lines().last().expect("output").starts_with("seeds: 40 "), "the summary line ends it");
}

#[test]
fn report_and_json_paths_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().to_str().expect("UTF-8 path").to_owned();
    let missing = format!("{base}/no-such-dir/out.html");
    let cases = [
        (vec!["run", "--seed", "1", "--ops", "20", "--report", &base], "is a directory"),
        (vec!["run", "--seed", "1", "--ops", "20", "--report", &missing], "does not exist"),
        (vec!["run", "--seed", "1", "--ops", "20", "--record-schedule", &missing], "does not exist"),
        (vec!["sweep", "--seeds", "0..2", "--ops", "20", "--json", &missing], "does not exist"),
    ];
    for (args, why) in cases {
        let output = sim(&args);
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        let err = text(&output.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(text(&output.stdout).is_empty(), "nothing ran: {args:?}");
    }
    let fine = format!("{base}/out.html");
    assert_eq!(sim(&["run", "--seed", "1", "--ops", "20", "--report", &fine]).status.code(), Some(0));
    let names: Vec<_> =
        std::fs::read_dir(&base).expect("dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, ["out.html"], "the probe file is gone");
}

#[test]
fn report_in_a_directory_nobody_can_create_files_in_exits_64() {
    // /proc refuses new files even to root, so this holds whoever runs the test.
    let output = sim(&["run", "--seed", "1", "--ops", "20", "--report", "/proc/out.html"]);
    assert_eq!(output.status.code(), Some(64));
    let err = text(&output.stderr);
    assert!(err.contains("--report /proc/out.html: directory /proc is not writable"), "{err}");
    assert!(text(&output.stdout).is_empty(), "nothing ran");
}

#[test]
fn jobs_zero_is_refused() {
    let output = sim(&["sweep", "--seeds", "0..2", "--ops", "20", "--jobs", "0"]);
    assert_eq!(output.status.code(), Some(64));
    let err = text(&output.stderr);
    assert!(err.contains("0 worker threads run nothing"), "{err}");
    assert!(text(&output.stdout).is_empty(), "nothing ran");
}
