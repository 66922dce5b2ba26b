//! The sweep document (`sweep --json`): its field names are pinned by a snapshot, and a
//! document that is not one, or contradicts itself, is refused with the file and place named.

use std::time::Duration;
use stormhold::env::sim::SimStats;
use stormhold_sim::config::{FaultClass, WORKLOAD_DEFAULT};
use stormhold_sim::runner::{Violation, ViolationKind};
use stormhold_sim::seeds::SeedSpan;
use stormhold_sim::sweep::{SweepOptions, SweepSummary};
use stormhold_sim::sweep_doc::{Problem, SCHEMA, SweepDocument};

fn options() -> SweepOptions {
    SweepOptions {
        seeds: 100..120,
        jobs: 2,
        workload: WORKLOAD_DEFAULT,
        ops: 300,
        faults: Some(vec![FaultClass::Crash, FaultClass::Rot]),
        shard: (1, 4),
        time_limit: None,
        check_determinism_every: Some(10),
        sets: vec!["images_max=4".into()],
    }
}

/// A summary with every counter distinct, so a field mapped from the wrong one shows.
fn summary() -> SweepSummary {
    let sim = SimStats {
        calls: 1001,
        crashes: 1002,
        io_errors: 1003,
        short_ios: 1004,
        sync_failures: 1005,
        storage_full: 1006,
        bit_rot: 1007,
        misdirected_writes: 1008,
        bad_sectors: 1009,
        bad_sector_reads: 1010,
        clock_jumps: 1011,
        slow_ios: 1012,
        writes_lost: 1013,
        writes_torn: 1014,
        dir_ops_lost: 1015,
        crash_images: 1016,
        process_crashes: 1017,
        targeted_media: 1018,
    };
    let violation = Violation {
        kind: ViolationKind::Durability,
        op_index: 17,
        detail: "key k3: expected v2, got none".into(),
    };
    SweepSummary {
        seeds: 5,
        ops: 1500,
        recoveries: 21,
        faults: 22,
        sim,
        seeds_with_class: vec![(FaultClass::Crash, 5), (FaultClass::Rot, 3)],
        failures: vec![(105, violation)],
        nondeterministic: vec![],
        determinism_checked: 2,
        images_explored: 23,
        undetectable: 24,
        data_loss_detected: 25,
        ops_beside_checkpoint: 27,
        restarts_mid_checkpoint: 28,
        stopped_by_time_limit: false,
        simulated_ns: 26_000_000_000,
        elapsed: Duration::from_millis(2500),
        cpu_seconds: 4.0,
        seeds_run: vec![SeedSpan { start: 101, end: 118, step: 4 }],
    }
}

fn redacted(document: &SweepDocument) -> String {
    let mut value = serde_json::to_value(document).expect("serializes");
    value["tool"]["version"] = "[version]".into();
    value["tool"]["commit"] = "[commit]".into();
    value["timing"]["elapsed_seconds"] = "[elapsed]".into();
    serde_json::to_string_pretty(&value).expect("pretty")
}

#[test]
fn sweep_document_field_names_are_stable() {
    let document = SweepDocument::from_sweep(&summary(), &options());
    assert_eq!(document.exit_code, 1, "a durability failure exits 1");
    assert!(document.complete, "all 5 seeds of shard 1/4 of 100..120 ran");
    insta::assert_snapshot!("sweep_document", redacted(&document));
}

#[test]
fn sweep_document_round_trips_and_the_summary_names_version_coverage_and_replay() {
    let document = SweepDocument::from_sweep(&summary(), &options());
    let text = document.to_json();
    assert_eq!(SweepDocument::parse(&text), Ok(document.clone()));
    let human = document.render_summary();
    assert!(human.contains(&format!("code: {}", document.tool)), "{human}");
    assert!(human.contains("ran: 101..118 step 4 (5 seeds)"), "{human}");
    assert!(human.contains("FAILED seed 105: Durability violation at op 17: key k3"), "{human}");
    assert!(
        human.contains("  replay: cargo run --release -p stormhold-sim -- run --seed 105 --ops 300 --workload kernel --faults crash,rot --set images_max=4"),
        "{human}"
    );
    assert!(
        human.ends_with(
            "seeds: 5 ops: 1500 crashes: 1002 faults: 22 violations: 1 seeds/s: 2.0 cycles/core-min: 315 seeds/core-s: 1.25\n"
        ),
        "{human}"
    );
}

#[test]
fn sweep_speed_figures_are_per_cpu_time_and_zero_when_it_was_not_measured() {
    // 21 recoveries and 5 seeds in 4 CPU seconds (2.5 s of real time).
    let timing = SweepDocument::from_sweep(&summary(), &options()).timing;
    assert_eq!(
        (timing.cpu_seconds, timing.cycles_per_core_minute, timing.seeds_per_core_second),
        (4.0, 315.0, 1.25)
    );
    let json: serde_json::Value =
        serde_json::from_str(&SweepDocument::from_sweep(&summary(), &options()).to_json()).expect("json");
    assert_eq!(json["timing"]["cycles_per_core_minute"], 315.0);
    assert_eq!(json["timing"]["seeds_per_core_second"], 1.25);
    let unmeasured = SweepSummary { cpu_seconds: 0.0, ..summary() };
    let document = SweepDocument::from_sweep(&unmeasured, &options());
    assert_eq!((document.timing.cycles_per_core_minute, document.timing.seeds_per_core_second), (0.0, 0.0));
    assert!(document.render_summary().ends_with("cycles/core-min: 0 seeds/core-s: 0.00\n"));
}

#[test]
fn a_sweep_that_skipped_seeds_is_incomplete_and_exits_75() {
    let mut partial = summary();
    partial.failures.clear();
    partial.seeds = 3;
    partial.seeds_run = vec![SeedSpan { start: 101, end: 110, step: 4 }];
    let document = SweepDocument::from_sweep(&partial, &options());
    assert!(!document.complete);
    assert_eq!((document.exit_code, document.seeds_skipped()), (75, 2));
    assert!(document.render_summary().contains("time limit reached: 2 seeds not started were skipped"));
}

#[test]
fn documents_that_are_not_sweeps_or_contradict_themselves_are_refused() {
    let document = SweepDocument::from_sweep(&summary(), &options());
    let mut value = serde_json::to_value(&document).expect("value");
    let parse = |value: &serde_json::Value| SweepDocument::parse(&value.to_string());

    let mut other = value.clone();
    other["schema"] = "stormhold-sim/sweep/v0".into();
    assert_eq!(parse(&other), Err(Problem::Schema("stormhold-sim/sweep/v0".into())));

    let mut counted = value.clone();
    counted["counters"]["seeds"] = 6.into();
    assert!(matches!(parse(&counted), Err(Problem::Inconsistent(d)) if d.contains("counters.seeds is 6")));

    let mut foreign = value.clone();
    foreign["seeds_run"][0]["start"] = 102.into();
    assert!(matches!(parse(&foreign), Err(Problem::Inconsistent(d)) if d.contains("shard 1/4")));

    value["failures"][0]["seed"] = 106.into();
    assert!(matches!(parse(&value), Err(Problem::Inconsistent(d)) if d.contains("seed 106")));

    let broken = format!("{{\n  \"schema\": \"{SCHEMA}\",\n  \"tool\": 7\n}}");
    assert!(matches!(SweepDocument::parse(&broken), Err(Problem::Json { line: 3, .. })));

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("piece-2.json");
    std::fs::write(&path, "{\"schema\": ").expect("write");
    let error = SweepDocument::load(&path).expect_err("truncated");
    assert!(error.to_string().starts_with(&format!("{}:1:", path.display())), "{error}");
}

#[test]
fn a_build_from_a_checkout_records_its_commit() {
    let head = std::process::Command::new("git")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    let Some(head) = head.filter(|_| option_env!("STORMHOLD_COMMIT").is_none()) else {
        eprintln!("skipped: not built from a git checkout (or the commit was given as STORMHOLD_COMMIT)");
        return;
    };
    let tool = stormhold_sim::sweep_doc::ToolVersion::current();
    let commit = tool.commit.expect("a build from a checkout records its commit");
    assert_eq!(commit.trim_end_matches("-dirty"), head);
    assert_eq!((tool.name.as_str(), tool.version.as_str()), ("stormhold-sim", env!("CARGO_PKG_VERSION")));
}
