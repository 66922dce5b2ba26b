//! The batch-engine files of `deploy/`: piece I of K covers exactly its seeds and the merge
//! step takes them all (run through the real scripts and binary); the Slurm and Kubernetes
//! drivers ask their engine for one task per piece and a merge after them (against stand-in
//! `sbatch` and `kubectl`); the manifests agree with each other; the Dockerfile builds where
//! docker runs.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a deploy script with `sh`, the simulator binary as STORMHOLD_SIM and deploy/ on PATH.
fn script(path: &Path, env: &[(&str, &str)], path_prefix: Option<&Path>) -> Output {
    let mut search = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect::<Vec<_>>();
    search.insert(0, deploy());
    if let Some(prefix) = path_prefix {
        search.insert(0, prefix.to_owned());
    }
    let mut command = Command::new("sh");
    command.arg(path).env("STORMHOLD_SIM", env!("CARGO_BIN_EXE_stormhold-sim"));
    command.env("PATH", std::env::join_paths(search).expect("PATH"));
    for var in ["SEEDS", "PIECES", "INDEX_VAR", "OUT_DIR", "WORKLOAD", "SWEEP_ARGS", "CONTAINER_RUN", "IMAGE"]
    {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("run sh")
}

fn seeds_run(document: &Value) -> BTreeSet<u64> {
    let spans = document["seeds_run"].as_array().expect("seeds_run");
    spans
        .iter()
        .flat_map(|span| {
            let field = |name: &str| span[name].as_u64().expect("span field");
            (field("start")..field("end")).step_by(field("step") as usize)
        })
        .collect()
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

#[test]
fn piece_i_of_k_covers_exactly_its_seeds_and_the_merge_step_takes_them_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().to_str().expect("UTF-8");
    let (pieces, seeds) = (3u64, 3..11u64);
    for index in 0..pieces {
        let index_text = index.to_string();
        let env = [
            ("SEEDS", "3..11"),
            ("PIECES", "3"),
            ("INDEX_VAR", "MY_TASK"),
            ("MY_TASK", index_text.as_str()),
            ("OUT_DIR", out),
            ("WORKLOAD", "toy"),
            ("SWEEP_ARGS", "--ops 30 --jobs 1"),
        ];
        let run = script(&deploy().join("sweep-piece.sh"), &env, None);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
        let document = read(&dir.path().join(format!("piece-{index}-of-3.json")));
        let expected: BTreeSet<u64> = seeds.clone().filter(|seed| seed % pieces == index).collect();
        assert_eq!(seeds_run(&document), expected, "piece {index}");
        assert_eq!(
            (document["workload"].as_str(), document["options"]["ops"].as_u64()),
            (Some("toy"), Some(30))
        );
    }
    let merged = script(&deploy().join("merge-pieces.sh"), &[("PIECES", "3"), ("OUT_DIR", out)], None);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stderr));
    let document = read(&dir.path().join("merged.json"));
    assert_eq!(seeds_run(&document), seeds.collect());
    assert!(text(&merged.stdout).contains("seeds: 8 ops: "), "{}", text(&merged.stdout));

    std::fs::remove_file(dir.path().join("piece-1-of-3.json")).expect("remove a piece");
    let short = script(&deploy().join("merge-pieces.sh"), &[("PIECES", "3"), ("OUT_DIR", out)], None);
    assert_eq!(short.status.code(), Some(64));
    let message = text(&short.stderr);
    assert!(message.contains("no document from piece(s) 1 of 3"), "{message}");
    assert!(message.contains("3 seeds missing (gaps: 4..11 step 3 (3 seeds))"), "{message}");
}

#[test]
fn sweep_piece_refuses_a_missing_index_variable_with_exit_64() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [
        ("SEEDS", "0..4"),
        ("PIECES", "2"),
        ("INDEX_VAR", "NOT_SET_ANYWHERE"),
        ("OUT_DIR", dir.path().to_str().expect("UTF-8")),
    ];
    let run = script(&deploy().join("sweep-piece.sh"), &env, None);
    assert_eq!(run.status.code(), Some(64));
    assert!(text(&run.stderr).contains("NOT_SET_ANYWHERE is not set"), "{}", text(&run.stderr));
}

/// Writes an executable stand-in that logs its arguments to `log` and prints `answer`.
fn stand_in(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write stand-in");
    let chmod = Command::new("chmod").arg("+x").arg(&path).status().expect("chmod");
    assert!(chmod.success());
    path
}

#[test]
fn slurm_submit_asks_for_one_array_task_per_piece_then_a_merge_after_all_of_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("sbatch.log");
    let body = format!("echo \"$*\" >> '{}'\necho '4242;cluster'", log.display());
    let sbatch = stand_in(dir.path(), "sbatch", &body);
    let out = dir.path().join("results");
    let env = [
        ("SEEDS", "0..20000"),
        ("PIECES", "4"),
        ("OUT_DIR", out.to_str().expect("UTF-8")),
        ("SBATCH", sbatch.to_str().expect("UTF-8")),
    ];
    let run = script(&deploy().join("slurm/submit.sh"), &env, None);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let calls = std::fs::read_to_string(&log).expect("sbatch was called");
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].starts_with("--parsable --array=0-3 --export=ALL ")
            && calls[0].ends_with("sweep-piece.sbatch")
    );
    assert!(
        calls[1].starts_with("--parsable --dependency=afterany:4242 --export=ALL ")
            && calls[1].ends_with("merge.sbatch")
    );
    assert!(text(&run.stdout).contains("sweep array job: 4242 (4 tasks)"), "{}", text(&run.stdout));
}

#[test]
fn slurm_array_task_runs_the_piece_of_its_task_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().to_str().expect("UTF-8");
    let env = [
        ("SEEDS", "0..10"),
        ("PIECES", "4"),
        ("OUT_DIR", out),
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("CONTAINER_RUN", ""),
        ("WORKLOAD", "toy"),
        ("SWEEP_ARGS", "--ops 30 --jobs 1"),
    ];
    let run = script(&deploy().join("slurm/sweep-piece.sbatch"), &env, None);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let document = read(&dir.path().join("piece-1-of-4.json"));
    assert_eq!(seeds_run(&document), BTreeSet::from([1, 5, 9]));
}

#[test]
fn kubernetes_run_applies_the_indexed_job_then_the_merge_and_prints_its_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("kubectl.log");
    let body = format!(
        "echo \"$*\" >> '{}'\ncase \"$1 $2\" in 'get job') echo 'Complete' ;; 'logs job/stormhold-sweep-merge') echo 'seeds: 8' ;; esac",
        log.display()
    );
    let kubectl = stand_in(dir.path(), "kubectl", &body);
    let run =
        script(&deploy().join("kubernetes/run.sh"), &[("KUBECTL", kubectl.to_str().expect("UTF-8"))], None);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let calls = std::fs::read_to_string(&log).expect("kubectl was called");
    let verbs: Vec<String> =
        calls.lines().map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        verbs,
        ["apply -f", "get job", "delete job", "apply -f", "get job", "logs job/stormhold-sweep-merge"]
    );
    assert!(calls.lines().next().is_some_and(|l| l.ends_with("sweep-job.yaml")), "{calls}");
    assert!(text(&run.stdout).contains("seeds: 8"));
}

/// The value of `key: value` lines of a manifest, in order.
fn values<'a>(manifest: &'a str, key: &str) -> Vec<&'a str> {
    manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix(key)?.strip_prefix(':'))
        .map(|value| value.trim().trim_matches('"'))
        .collect()
}

/// The value of the env variable `name` in a manifest.
fn env_value<'a>(manifest: &'a str, name: &str) -> Option<&'a str> {
    let lines: Vec<&str> = manifest.lines().map(str::trim).collect();
    let at = lines.iter().position(|line| *line == format!("- name: {name}"))?;
    Some(lines.get(at + 1)?.strip_prefix("value:")?.trim().trim_matches('"'))
}

#[test]
fn kubernetes_manifests_agree_on_pieces_volume_and_exit_codes() {
    let job = std::fs::read_to_string(deploy().join("kubernetes/sweep-job.yaml")).expect("sweep job");
    let merge = std::fs::read_to_string(deploy().join("kubernetes/merge-job.yaml")).expect("merge job");
    assert_eq!(values(&job, "completionMode"), ["Indexed"]);
    let completions = values(&job, "completions");
    assert_eq!(completions.len(), 1);
    assert_eq!(env_value(&job, "PIECES"), Some(completions[0]), "one pod per piece");
    assert_eq!(env_value(&merge, "PIECES"), Some(completions[0]), "the merge expects every piece");
    assert_eq!(env_value(&job, "INDEX_VAR"), Some("JOB_COMPLETION_INDEX"));
    assert_eq!(values(&job, "restartPolicy"), ["Never"], "podFailurePolicy needs Never");
    assert_eq!(values(&job, "values"), ["[1, 2, 3]", "[64]"]);
    assert_eq!(values(&job, "- action"), ["FailIndex", "FailJob", "Ignore"]);
    assert_eq!(values(&job, "claimName"), values(&merge, "claimName"));
    assert_eq!(env_value(&job, "OUT_DIR"), values(&job, "mountPath").first().copied());
    assert_eq!(env_value(&merge, "OUT_DIR"), values(&merge, "mountPath").first().copied());
    let seeds = env_value(&job, "SEEDS").expect("SEEDS");
    assert!(
        seeds.split_once("..").is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok())
    );
}

#[test]
fn dockerfile_builds_the_simulator_where_docker_runs() {
    let daemon = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    match daemon {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            eprintln!(
                "skipped: docker is installed but its daemon does not answer: {}",
                text(&output.stderr).trim()
            );
            return;
        }
        Err(error) => {
            eprintln!("skipped: no docker here ({error})");
            return;
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let build = Command::new("docker")
        .current_dir(&root)
        .args([
            "build",
            "-f",
            "deploy/Dockerfile",
            "--build-arg",
            "STORMHOLD_COMMIT=test",
            "-t",
            "stormhold-sim:test",
            ".",
        ])
        .output()
        .expect("docker build");
    assert!(build.status.success(), "{}", text(&build.stderr));
    let sweep = Command::new("docker")
        .args([
            "run",
            "--rm",
            "stormhold-sim:test",
            "stormhold-sim",
            "sweep",
            "--seeds",
            "0..2",
            "--ops",
            "30",
            "--json",
            "-",
        ])
        .output()
        .expect("docker run");
    assert_eq!(sweep.status.code(), Some(0), "{}", text(&sweep.stderr));
    let document: Value = serde_json::from_slice(&sweep.stdout).expect("document");
    assert_eq!(document["tool"]["commit"], "test");
}
