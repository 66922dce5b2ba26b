//! Issue #13 item 8: `stormhold-sim replay` of a hand-edited or damaged corpus entry panicked
//! (unvalidated fault options), overflowed (huge latencies) or allocated a recorded length of
//! 4 GiB and aborted. Each class of damage is now refused with exit 64 and a message naming the
//! file and the field; and a seeded mutation of real entries' JSON values never makes replay
//! panic (exit codes 0, 1, 2 or 64 only).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stormhold-sim")).args(args).output().expect("run stormhold-sim")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

fn entry(name: &str) -> Value {
    let text = std::fs::read_to_string(corpus_dir().join(name)).expect("read corpus entry");
    serde_json::from_str(&text).expect("a JSON corpus entry")
}

/// Writes `text` to a file in `dir` and replays it.
fn replay_text(dir: &Path, text: &str) -> (Option<i32>, String, String) {
    let path = dir.join("entry.json");
    std::fs::write(&path, text).expect("write entry");
    let output = sim(&["replay", path.to_str().expect("UTF-8 path")]);
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), out, err)
}

/// Replays `value` and asserts exit 64 with a message naming the file and `field`.
fn assert_refused(value: &Value, field: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = replay_text(dir.path(), &value.to_string());
    assert_eq!(code, Some(64), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("entry.json"), "names the file: {err}");
    assert!(err.contains(field), "names the field {field}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn replay_refuses_an_invalid_fault_option() {
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["config"]["faults"]["sector_size_bytes"] = json!(1000);
    assert_refused(&value, "config.faults.sector_size_bytes");
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["config"]["faults"]["sync_failure_probability"] = json!(7.0);
    assert_refused(&value, "config.faults.sync_failure_probability");
    // Found by the mutation test below: weights whose sum overflows a u32.
    let mut value = entry("kernel-sync-first-shard-only.json");
    value["config"]["faults"]["write_fate"]["lose"] = json!(u32::MAX);
    assert_refused(&value, "config.faults.write_fate.lose");
    let mut value = entry("kernel-ack-unsynced.json");
    value["config"]["images_max"] = json!(0);
    assert_refused(&value, "config.images_max");
}

#[test]
fn replay_refuses_a_huge_latency_or_clock_jump() {
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["config"]["faults"]["latency"]["sync_us"] = json!(u64::MAX);
    assert_refused(&value, "config.faults.latency.sync_us");
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["config"]["faults"]["latency"]["slow_factor"] = json!(u64::MAX);
    assert_refused(&value, "config.faults.latency.slow_factor");
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["config"]["faults"]["clock_jump_max_ms"] = json!(u64::MAX);
    assert_refused(&value, "config.faults.clock_jump_max_ms");
}

fn first_env_write(value: &mut Value) -> &mut Value {
    let ops = value["ops"]["Env"].as_array_mut().expect("env ops");
    let write = ops.iter_mut().find(|op| op.get("Write").is_some()).expect("a recorded write");
    &mut write["Write"]
}

#[test]
fn replay_refuses_a_huge_recorded_length_or_count() {
    let mut value = entry("env-ambiguous-inode-identity-after-crash.json");
    first_env_write(&mut value)["len"] = json!(1u64 << 32);
    assert_refused(&value, "ops.Env[");
    let mut value = entry("env-ambiguous-inode-identity-after-crash.json");
    first_env_write(&mut value)["offset"] = json!(u64::MAX);
    assert_refused(&value, "Write.offset+len");
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["config"]["ops"] = json!(u64::MAX);
    assert_refused(&value, "config.ops");
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["schedule"]["faults"][0]["fault"] = json!({"Misdirect": {"shift_sectors": i64::MIN}});
    assert_refused(&value, "schedule.faults[0].fault.Misdirect.shift_sectors");
}

#[test]
fn replay_refuses_inconsistent_operations_or_schedule() {
    // Env operations recorded for a key-value workload.
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["ops"] = entry("env-ambiguous-inode-identity-after-crash.json")["ops"].clone();
    assert_refused(&value, "ops.Env");
    // Key-value operations for the env workload.
    let mut value = entry("env-ambiguous-inode-identity-after-crash.json");
    value["ops"] = entry("wal-damaged-last-segment-header.json")["ops"].clone();
    assert_refused(&value, "ops.Kv");
    // A schedule out of call order.
    let mut value = entry("wal-damaged-last-segment-header.json");
    let fault = value["schedule"]["faults"][0].clone();
    let mut earlier = fault.clone();
    earlier["call"] = json!(1);
    value["schedule"]["faults"] = json!([fault, earlier]);
    assert_refused(&value, "schedule.faults[1].call");
    // A short read that keeps more than it asked for.
    let mut value = entry("wal-damaged-last-segment-header.json");
    value["schedule"]["faults"][0]["fault"] = json!({"ShortIo": {"kept_per_mille": 5000}});
    assert_refused(&value, "schedule.faults[0].fault.ShortIo.kept_per_mille");
    // A kernel commit across key groups (the kernel store of this entry has several shards).
    let mut value = entry("kernel-clobber-newest-meta.json");
    assert!(value["config"]["store"]["shards"].as_u64().expect("shards") > 1);
    let ops = value["ops"]["Kv"].as_array_mut().expect("Kv ops");
    let (index, commit) = ops
        .iter_mut()
        .enumerate()
        .find_map(|(i, op)| op.get_mut("Commit").map(|c| (i, c)))
        .expect("a commit");
    let writes = commit["writes"].as_array_mut().expect("writes");
    let key = writes[0][0].as_u64().expect("key");
    writes.push(json!([key + 1, 7]));
    assert_refused(&value, &format!("ops.Kv[{index}].Commit.writes"));
}

#[test]
fn replay_refuses_truncated_json() {
    let text = entry("kernel-ack-unsynced.json").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    for cut in [0, 1, text.len() / 3, text.len() - 1] {
        let (code, out, err) = replay_text(dir.path(), &text[..cut]);
        assert_eq!(code, Some(64), "cut at {cut}: {out} {err}");
        assert!(err.contains("entry.json is not a corpus entry"), "{err}");
    }
}

#[test]
fn run_refuses_a_damaged_schedule_and_a_bad_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("schedule.json");
    let schedule = json!({"faults": [{"call": 3, "fault": {"ClockJump": {"delta_ms": i64::MAX}}}]});
    std::fs::write(&path, schedule.to_string()).expect("write schedule");
    let output =
        sim(&["run", "--seed", "1", "--ops", "5", "--replay-schedule", path.to_str().expect("path")]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{err}");
    assert!(err.contains("schedule.json") && err.contains("faults[0].fault.ClockJump.delta_ms"), "{err}");
    let output = sim(&["run", "--seed", "1", "--ops", "5", "--set", "faults.latency.io_us=99999999999"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{err}");
    assert!(err.contains("faults.latency.io_us"), "{err}");
}

/// Values a mutation puts in place of a number, string or flag.
fn interesting(rng: &mut ChaCha8Rng, old: &Value) -> Value {
    let picks = [
        json!(0),
        json!(1),
        json!(-1),
        json!(255),
        json!(65_536),
        json!(u32::MAX),
        json!(1u64 << 32),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(0.5),
        json!(-0.5),
        json!(1e300),
        json!("x"),
        Value::Null,
        json!(true),
        json!([]),
        json!({}),
    ];
    match (rng.random_range(0..4), old.as_u64()) {
        (0, Some(n)) => json!(n.saturating_mul(2).saturating_add(1)),
        (1, Some(n)) => json!(n ^ (1 << rng.random_range(0..8))),
        _ => picks[rng.random_range(0..picks.len())].clone(),
    }
}

/// Every scalar leaf of `value`, as JSON pointers.
fn leaves(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(key, v)| leaves(v, format!("{at}/{key}"), out)),
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{at}/{i}"), out))
        }
        _ => out.push(at),
    }
}

/// Mutation cases in the test (`STORMHOLD_SIM_MUTATIONS` for more).
fn mutation_cases() -> u64 {
    std::env::var("STORMHOLD_SIM_MUTATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(40)
}

#[test]
fn replay_of_mutated_entries_never_panics() {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("list corpus")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut refused = 0;
    for case in 0..mutation_cases() {
        let name = &names[rng.random_range(0..names.len())];
        let mut value = entry(name);
        let mut points = Vec::new();
        leaves(&value, String::new(), &mut points);
        let mut changed = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            let point = &points[rng.random_range(0..points.len())];
            let slot = value.pointer_mut(point).expect("a leaf");
            *slot = interesting(&mut rng, slot);
            changed.push(format!("{point}={slot}"));
        }
        let (code, out, err) = replay_text(dir.path(), &value.to_string());
        let what = format!("case {case}: {name} with {changed:?}\nstdout: {out}\nstderr: {err}");
        assert!(matches!(code, Some(0 | 1 | 2 | 64)), "exit {code:?}: {what}");
        assert!(!err.contains("panicked") && !out.contains("got Panic"), "a panic: {what}");
        refused += u32::from(code == Some(64));
    }
    assert!(refused > 0, "some mutations must be refused, or the test mutates nothing that matters");
}
