//! A sweep split into pieces and merged, as a batch engine runs it, on one machine: four
//! `sweep --shard i/4 --json` processes and a `merge` give the totals of one sweep over the same
//! range, and `merge` refuses pieces that are missing or come from another build.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const SEEDS: &str = "0..12";
const OPS: &str = "40";

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stormhold-sim")).args(args).output().expect("run stormhold-sim")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read document")).expect("JSON")
}

struct Pieces {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    whole: Output,
}

impl Pieces {
    fn piece(&self, index: usize) -> String {
        self.dir.join(format!("piece-{index}.json")).to_str().expect("UTF-8 path").to_owned()
    }
    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("UTF-8 path").to_owned()
    }
}

/// One sweep over the range and its four pieces, run once for all tests of this file.
fn pieces() -> &'static Pieces {
    static PIECES: OnceLock<Pieces> = OnceLock::new();
    PIECES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_owned();
        let whole_json = path.join("whole.json");
        let whole = sim(&[
            "sweep",
            "--seeds",
            SEEDS,
            "--ops",
            OPS,
            "--jobs",
            "2",
            "--json",
            whole_json.to_str().expect("path"),
        ]);
        assert_eq!(whole.status.code(), Some(0), "{}{}", text(&whole.stdout), text(&whole.stderr));
        let pieces = Pieces { _dir: dir, dir: path, whole };
        for index in 0..4 {
            let shard = format!("{index}/4");
            let out = pieces.piece(index);
            let run = sim(&[
                "sweep", "--seeds", SEEDS, "--ops", OPS, "--jobs", "1", "--shard", &shard, "--json", &out,
            ]);
            assert_eq!(run.status.code(), Some(0), "{}{}", text(&run.stdout), text(&run.stderr));
        }
        pieces
    })
}

/// The summary without its real-time figures.
fn reproducible(summary: &str) -> Vec<String> {
    summary
        .lines()
        .filter(|line| !line.starts_with("simulated/real time:") && !line.starts_with("code: "))
        .map(|line| line.split(" seeds/s:").next().unwrap_or(line).to_owned())
        .collect()
}

#[test]
fn four_merged_pieces_give_the_totals_of_one_sweep_over_the_range() {
    let pieces = pieces();
    let merged_path = pieces.path("merged.json");
    let files: Vec<String> = (0..4).map(|i| pieces.piece(i)).collect();
    let mut args = vec!["merge"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--json", &merged_path]);
    let merged = sim(&args);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stderr));
    assert_eq!(reproducible(&text(&merged.stdout)), reproducible(&text(&pieces.whole.stdout)));

    let (whole, merged) = (read(&pieces.dir.join("whole.json")), read(Path::new(&merged_path)));
    for field in [
        "tool",
        "workload",
        "options",
        "seeds",
        "seeds_run",
        "counters",
        "seeds_with_class",
        "violations_by_kind",
        "failures",
        "determinism",
        "complete",
        "exit_code",
    ] {
        assert_eq!(merged[field], whole[field], "{field}");
    }
    assert_eq!(merged["pieces"], 4);
    assert_eq!(whole["counters"]["seeds"], 12);
    assert!(whole["counters"]["crashes"].as_u64().unwrap_or(0) > 0, "the pieces did real work: {whole}");
    let piece = read(Path::new(&pieces.piece(1)));
    assert_eq!(piece["seeds_run"], serde_json::json!([{ "start": 1, "end": 10, "step": 4 }]));
}

#[test]
fn merge_refuses_a_missing_piece_and_lists_its_seeds() {
    let pieces = pieces();
    let (a, b, d) = (pieces.piece(0), pieces.piece(1), pieces.piece(3));
    let output = sim(&["merge", &a, &b, &d]);
    assert_eq!(output.status.code(), Some(64));
    let message = text(&output.stderr);
    assert!(message.contains("do not cover seeds 0..12 exactly once"), "{message}");
    assert!(message.contains("3 seeds missing (gaps: 2..11 step 4 (3 seeds))"), "{message}");
    let twice = sim(&["merge", &a, &b, &a, &pieces.piece(2), &d]);
    assert_eq!(twice.status.code(), Some(64));
    assert!(text(&twice.stderr).contains("3 seeds held by more than one piece"), "{}", text(&twice.stderr));
}

/// A piece's file name, the change made to it, and the words the refusal must say.
type Alteration = (&'static str, fn(&mut Value), &'static str);

fn altered(pieces: &Pieces, name: &str, change: impl Fn(&mut Value)) -> String {
    let mut value = read(Path::new(&pieces.piece(2)));
    change(&mut value);
    let path = pieces.path(name);
    std::fs::write(&path, value.to_string()).expect("write altered piece");
    path
}

#[test]
fn merge_refuses_a_piece_from_another_commit_workload_or_options() {
    let pieces = pieces();
    let cases: [Alteration; 3] = [
        (
            "commit.json",
            |v| v["tool"]["commit"] = "0123456789abcdef0123456789abcdef01234567".into(),
            "differs in code version",
        ),
        ("workload.json", |v| v["workload"] = "toy".into(), "differs in workload"),
        ("options.json", |v| v["options"]["ops"] = 41.into(), "differs in options"),
    ];
    for (name, change, expected) in cases {
        let other = altered(pieces, name, change);
        let output = sim(&["merge", &pieces.piece(0), &pieces.piece(1), &other, &pieces.piece(3)]);
        assert_eq!(output.status.code(), Some(64), "{name}");
        let message = text(&output.stderr);
        assert!(message.contains(expected) && message.contains(name), "{name}: {message}");
    }
    let garbage = pieces.path("garbage.json");
    std::fs::write(&garbage, "not json").expect("write");
    let output = sim(&["merge", &pieces.piece(0), &garbage]);
    assert_eq!(output.status.code(), Some(64));
    assert!(text(&output.stderr).contains(&format!("{garbage}:1:")), "{}", text(&output.stderr));
}

#[test]
fn a_time_limited_sweep_that_skipped_seeds_exits_75_and_does_not_merge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("late.json");
    let out = out.to_str().expect("path");
    let output = sim(&["sweep", "--seeds", "0..6", "--ops", OPS, "--time-limit", "0", "--json", out]);
    assert_eq!(output.status.code(), Some(75), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains("time limit reached: 6 seeds not started were skipped"));
    let document = read(Path::new(out));
    assert_eq!(
        (document["complete"].clone(), document["seeds_run"].clone()),
        (false.into(), serde_json::json!([]))
    );
    assert_eq!(sim(&["merge", out]).status.code(), Some(64));
}

#[test]
fn json_to_stdout_moves_the_summary_to_stderr_and_progress_stays_plain_off_a_terminal() {
    let output = sim(&["sweep", "--seeds", "3..5", "--ops", OPS, "--json", "-"]);
    assert_eq!(output.status.code(), Some(0));
    let document: Value = serde_json::from_slice(&output.stdout).expect("stdout is the document alone");
    assert_eq!(document["counters"]["seeds"], 2);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("seeds: 2 ops: "), "{stderr}");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("[sweep] [")).collect();
    assert_eq!(progress.len(), 1, "one closing line for a short sweep: {stderr}");
    assert!(progress[0].contains("2/2 seeds") && progress[0].contains("seeds/s"), "{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "no redraw off a terminal: {stderr:?}");
}

#[test]
fn shard_from_env_takes_the_index_from_the_variable_and_refuses_a_bad_one() {
    let run = |value: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stormhold-sim"));
        command.args([
            "sweep",
            "--seeds",
            "0..6",
            "--ops",
            OPS,
            "--shard-from-env",
            "PIECE_INDEX/3",
            "--json",
            "-",
        ]);
        command.env_remove("PIECE_INDEX");
        if let Some(value) = value {
            command.env("PIECE_INDEX", value);
        }
        command.output().expect("run")
    };
    let ok = run(Some("2"));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    let document: Value = serde_json::from_slice(&ok.stdout).expect("document");
    assert_eq!(document["shard"], serde_json::json!({ "index": 2, "count": 3 }));
    assert_eq!(document["seeds_run"], serde_json::json!([{ "start": 2, "end": 6, "step": 3 }]));
    for (value, expected) in
        [(None, "PIECE_INDEX is not set"), (Some("3"), "0 <= I < N"), (Some("two"), "bad shard index")]
    {
        let output = run(value);
        assert_eq!(output.status.code(), Some(64), "{value:?}");
        assert!(text(&output.stderr).contains(expected), "{value:?}: {}", text(&output.stderr));
    }
}

#[test]
fn progress_on_a_terminal_redraws_one_line_in_place_with_rate_and_eta() {
    // `script` (util-linux) gives the sweep a pseudo-terminal for stderr.
    let dir = tempfile::tempdir().expect("temp dir");
    let typescript = dir.path().join("typescript");
    let command = format!(
        "'{}' sweep --seeds 0..4 --ops {OPS} --jobs 1 > /dev/null",
        env!("CARGO_BIN_EXE_stormhold-sim")
    );
    let run = Command::new("script").arg("-qec").arg(&command).arg(&typescript).output();
    match run {
        Ok(output) if output.status.success() => {}
        other => {
            eprintln!("skipped: no working `script` to give the sweep a terminal: {other:?}");
            return;
        }
    }
    let screen = std::fs::read_to_string(&typescript).expect("typescript");
    let redraws = screen.matches("\r\u{1b}[2K[sweep] ").count();
    assert!(redraws >= 2, "the bar is redrawn in place: {screen:?}");
    assert!(screen.contains("4/4 seeds") && screen.contains(" seeds/s  ETA "), "{screen:?}");
}
