//! Real process crashes on the real OS: `crash_child` (`testkit/src/bin/crash_child.rs`) commits a seeded
//! mix on an `OsEnv` kernel and prints each commit before it starts (`W`) and once it is
//! acknowledged (`A`); this test kills it with SIGKILL at a random moment (after a random number
//! of acknowledgements, after a random short delay, or right after spawn so that recovery itself
//! is interrupted), reopens the directory in-process, checks the recovered state against a
//! model built from the printed commits, and restarts the child on the same directory for the
//! next round (it resumes its sequence numbers from the recovered values).
//!
//! **What this proves, and what it does not.** SIGKILL ends the process, not the machine: the OS
//! page cache survives it, so every byte the child wrote reaches the disk whether it was synced
//! or not. This test therefore proves *process-crash* safety (recovery from a process torn at
//! any instruction, recovery and checkpointing included, on the real file system), not
//! power-loss safety; lost and torn unsynced writes are the simulator's job (`SimEnv`). For the
//! same reason a kernel that acknowledges before syncing passes here (the child's
//! `--ack-before-sync` mode shows it), so the checker's power is proven on fabricated recovered
//! states instead (the `checker_*` tests).
//!
//! The checks after every kill (DESIGN.md section 4), per shard, with the commits printed since
//! the last check:
//! - **prefix**: the recovered state equals the state before the round plus the first *k* of
//!   the shard's commits, for some *k* at or past its last acknowledged commit (only the commit
//!   in flight when the child died may be present unacknowledged);
//! - hence **durability** (every acknowledged commit, so the latest acknowledged value of each
//!   key, deleted keys absent unless rewritten), **atomicity** (no transaction half-applied) and
//!   **no invention**, completed documents included;
//! - **consistency**: each counter value an acknowledged increment returned equals the model's;
//! - **resume**: the restarted child's first sequence number is above every recovered one.
//!
//! Rounds: 8 by default (CI); `STORMHOLD_OS_CRASH_ROUNDS=N` runs N, `STORMHOLD_OS_CRASH_SEED=S`
//! picks the seed (printed, with the kill plan, in any failure).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stormhold::env::OsEnv;
use stormhold::{Config, EpochConfig, Kernel, Router};

/// Rounds when `STORMHOLD_OS_CRASH_ROUNDS` is not set.
const ROUNDS_DEFAULT: u64 = 8;
/// Seed when `STORMHOLD_OS_CRASH_SEED` is not set.
const SEED_DEFAULT: u64 = 0x5eed_0c4a_5401;
/// The child's shard count (see [`config`]).
const SHARDS: usize = 4;
/// Most acknowledgements to wait for before a kill.
const KILL_AFTER_ACKS_MAX: u64 = 80;
/// Longest random delay before a kill.
const KILL_AFTER_DELAY_MS_MAX: u64 = 40;
/// A child silent this long is stuck: the test fails instead of hanging.
const CHILD_SILENCE_MAX: Duration = Duration::from_secs(20);

/// The config of `crash_child` (its `config()`); the shard count and the router must match, or
/// the reopen fails with a config mismatch.
fn config() -> Config {
    let epochs = EpochConfig {
        ops_max: 40,
        wal_bytes_max: 16 * 1024,
        duration_max_ms: 50,
        ..EpochConfig::low_latency()
    };
    Config::builder()
        .shards(SHARDS as u32)
        .router(Router::Prefix { len_bytes: 2 })
        .segment_size_bytes(64 * 1024)
        .epochs(epochs)
        .build()
        .expect("valid config")
}

// ---------------------------------------------------------------------------------------------
// The model and the checker: pure functions over the printed commits and a recovered state.

/// One shard's state: its entries and its completed documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ShardState {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    docs: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Del(Vec<u8>),
    Add(Vec<u8>, u64),
    Doc { id: String, complete: bool },
}

/// One commit as the child printed it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Commit {
    seq: u64,
    shard: usize,
    ops: Vec<Op>,
    acked: bool,
    /// The counter value a single increment's acknowledgement reported.
    counter: Option<u64>,
}

/// What the child printed in one round.
#[derive(Clone, Debug, Default)]
struct Transcript {
    /// Whether the child got as far as opening the kernel (`OPEN`).
    opened: bool,
    /// `READY`'s next sequence number (`None`: killed before recovery finished).
    ready: Option<u64>,
    commits: Vec<Commit>,
}

fn parse_op(token: &str) -> Result<Op, String> {
    let bad = || format!("bad op {token:?}");
    let (kind, rest) = token.split_once(':').ok_or_else(bad)?;
    Ok(match kind {
        "put" => {
            let (key, value) = rest.split_once('=').ok_or_else(bad)?;
            Op::Put(key.into(), value.into())
        }
        "del" => Op::Del(rest.into()),
        "add" => {
            let (key, by) = rest.rsplit_once('+').ok_or_else(bad)?;
            Op::Add(key.into(), by.parse().map_err(|_| bad())?)
        }
        "doc" => {
            let (id, part) = rest.rsplit_once(':').ok_or_else(bad)?;
            let complete = match part {
                "chunk" => false,
                "complete" => true,
                _ => return Err(bad()),
            };
            Op::Doc { id: id.into(), complete }
        }
        _ => return Err(bad()),
    })
}

fn parse_commit(fields: &[&str]) -> Result<Commit, String> {
    let [seq, shard, ops @ ..] = fields else { return Err("a W line needs a seq and a shard".into()) };
    let seq = seq.parse().map_err(|_| format!("bad seq {seq:?}"))?;
    let shard = shard.parse().map_err(|_| format!("bad shard {shard:?}"))?;
    let ops = ops.iter().map(|t| parse_op(t)).collect::<Result<Vec<_>, _>>()?;
    Ok(Commit { seq, shard, ops, acked: false, counter: None })
}

/// Parses the child's complete lines; any deviation from its protocol is an error.
fn parse_transcript(lines: &[String]) -> Result<Transcript, String> {
    let mut transcript = Transcript::default();
    for (index, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        let at = |e: String| format!("line {}: {e}: {line:?}", index + 1);
        match fields[..] {
            ["OPEN"] if index == 0 => transcript.opened = true,
            ["READY", next] if index == 1 => {
                transcript.ready = Some(next.parse().map_err(|_| at("bad READY".into()))?);
            }
            ["W", ref rest @ ..] => {
                if transcript.commits.last().is_some_and(|c| !c.acked) {
                    return Err(at("a commit started before the previous one was acknowledged".into()));
                }
                transcript.commits.push(parse_commit(rest).map_err(at)?);
            }
            ["A", seq, ref counter @ ..] => {
                let commit = transcript.commits.last_mut().filter(|c| !c.acked && c.seq.to_string() == seq);
                let commit = commit.ok_or_else(|| at("an acknowledgement of no open commit".into()))?;
                commit.acked = true;
                if let [value] = counter {
                    commit.counter = Some(value.parse().map_err(|_| at("bad counter".into()))?);
                }
            }
            ["C", _] | ["DONE"] => {}
            _ => return Err(at("unknown line".into())),
        }
    }
    Ok(transcript)
}

fn counter(value: Option<&Vec<u8>>) -> Result<u64, String> {
    match value {
        None => Ok(0),
        Some(bytes) => Ok(u64::from_le_bytes(
            bytes.as_slice().try_into().map_err(|_| format!("not a counter: {bytes:?}"))?,
        )),
    }
}

/// Applies `commit` to `state`, as the kernel's documented semantics say it must.
fn apply(state: &mut ShardState, commit: &Commit) -> Result<(), String> {
    for op in &commit.ops {
        match op {
            Op::Put(key, value) => {
                state.entries.insert(key.clone(), value.clone());
            }
            Op::Del(key) => {
                state.entries.remove(key);
            }
            Op::Add(key, by) => {
                let value = counter(state.entries.get(key))? + by;
                state.entries.insert(key.clone(), value.to_le_bytes().to_vec());
                if commit.counter.is_some_and(|reported| reported != value) {
                    return Err(format!(
                        "seq {}: the increment of {} returned {:?}, the model says {value}",
                        commit.seq,
                        show(key),
                        commit.counter
                    ));
                }
            }
            Op::Doc { id, complete: true } => {
                state.docs.insert(id.clone());
            }
            Op::Doc { complete: false, .. } => {}
        }
    }
    Ok(())
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a successful check saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Checked {
    acked: u64,
    /// Commits present though the child died before acknowledging them.
    unacked_present: u64,
    /// Commits started but neither acknowledged nor present.
    unacked_absent: u64,
}

/// Checks `recovered` against `baseline` (the state checked before the round) and the round's
/// `commits`: see the module docs. The error names the shard, the first divergence from the
/// state at its last acknowledged commit, and the commits involved.
fn check_round(
    baseline: &[ShardState],
    commits: &[Commit],
    recovered: &[ShardState],
) -> Result<Checked, String> {
    let mut checked = Checked::default();
    if let Some(stray) = commits.iter().find(|c| c.shard >= baseline.len()) {
        return Err(format!("seq {} names shard {}, of {}", stray.seq, stray.shard, baseline.len()));
    }
    for (shard, (before, after)) in baseline.iter().zip(recovered).enumerate() {
        let mine: Vec<&Commit> = commits.iter().filter(|c| c.shard == shard).collect();
        let last_ack = mine.iter().rposition(|c| c.acked).map_or(0, |i| i + 1);
        let mut state = before.clone();
        let mut at_ack = (last_ack == 0).then(|| state.clone());
        let mut matched = (last_ack == 0 && state == *after).then_some(0);
        for (k, commit) in mine.iter().enumerate().map(|(i, c)| (i + 1, c)) {
            apply(&mut state, commit).map_err(|e| format!("shard {shard}: {e}"))?;
            if k == last_ack {
                at_ack = Some(state.clone());
            }
            if k >= last_ack && matched.is_none() && state == *after {
                matched = Some(k);
            }
        }
        let at_ack = at_ack.expect("the acknowledged prefix is reached");
        let Some(k) = matched else { return Err(describe(shard, &mine, last_ack, &at_ack, after)) };
        checked.acked += last_ack as u64;
        checked.unacked_present += (k - last_ack) as u64;
        checked.unacked_absent += (mine.len() - k) as u64;
    }
    Ok(checked)
}

fn describe(
    shard: usize,
    mine: &[&Commit],
    last_ack: usize,
    expected: &ShardState,
    got: &ShardState,
) -> String {
    let keys: BTreeSet<&Vec<u8>> = expected.entries.keys().chain(got.entries.keys()).collect();
    let first = keys.into_iter().find(|k| expected.entries.get(*k) != got.entries.get(*k));
    let divergence = match first {
        Some(key) => format!(
            "key {}: expected {:?}, got {:?}",
            show(key),
            expected.entries.get(key).map(|v| show(v)),
            got.entries.get(key).map(|v| show(v))
        ),
        None => format!("completed documents: expected {:?}, got {:?}", expected.docs, got.docs),
    };
    let acked = last_ack.checked_sub(1).map(|i| mine[i].seq);
    let pending: Vec<u64> = mine[last_ack..].iter().map(|c| c.seq).collect();
    format!(
        "shard {shard}: the recovered state is no prefix of its commits at or past the last acknowledged \
         one (seq {acked:?}; unacknowledged after it: {pending:?}); first divergence from the state at \
         the last acknowledgement: {divergence}"
    )
}

/// Each commit's printed shard is the one its first key routes to under the child's config.
fn check_routing(commits: &[Commit]) -> Result<(), String> {
    let router = config().router();
    for commit in commits {
        let key = match &commit.ops[0] {
            Op::Put(key, _) | Op::Del(key) | Op::Add(key, _) => key,
            Op::Doc { .. } => return Err(format!("seq {} writes no key", commit.seq)),
        };
        let routed = router.route(key, SHARDS as u32) as usize;
        if routed != commit.shard {
            return Err(format!(
                "seq {} printed shard {}; {} routes to {routed}",
                commit.seq,
                commit.shard,
                show(key)
            ));
        }
    }
    Ok(())
}

/// The highest `s<seq>` value in `state`.
fn highest_seq(state: &[ShardState]) -> u64 {
    let values = state.iter().flat_map(|s| s.entries.values());
    let seqs = values.filter_map(|v| std::str::from_utf8(v.strip_prefix(b"s")?).ok()?.parse::<u64>().ok());
    seqs.max().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Driving the child.

/// When a round's child is killed.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This long after `OPEN`: while it creates or recovers the kernel.
    InRecovery(Duration),
    /// This long after `READY`.
    AfterReady(Duration),
    /// Once it printed this many acknowledgements.
    AfterAcks(u64),
}

/// What a killed child left: its complete stdout lines, stderr and exit status.
struct Run {
    lines: Vec<String>,
    stderr: String,
    status: ExitStatus,
    /// From `OPEN` to `READY`, if both came.
    recovery: Option<Duration>,
}

/// Sends each complete line (a line cut by the kill carries no information) until EOF.
fn forward_lines(stdout: impl Read, sink: mpsc::Sender<(Instant, String)>) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if let Some(complete) = line.strip_suffix('\n') {
            let _ = sink.send((Instant::now(), complete.to_owned()));
        }
        line.clear();
    }
}

/// Receives lines into `seen` until `count` of them satisfy `wanted`; false if the child
/// closed its stdout first (it exited: its status tells why).
fn wait_for(
    lines: &mpsc::Receiver<(Instant, String)>,
    seen: &mut Vec<(Instant, String)>,
    count: u64,
    wanted: impl Fn(&str) -> bool,
) -> bool {
    let mut found = 0;
    while found < count {
        match lines.recv_timeout(CHILD_SILENCE_MAX) {
            Ok(line) => {
                found += u64::from(wanted(&line.1));
                seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("crash_child is silent"),
        }
    }
    true
}

fn run_child(dir: &Path, seed: u64, flags: &[&str], kill: Kill) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_child"))
        .arg(dir)
        .arg(seed.to_string())
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crash_child");
    let (sink, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || forward_lines(stdout, sink));
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut seen = Vec::new();
    let (delay, alive) = match kill {
        Kill::InRecovery(delay) => (delay, wait_for(&lines, &mut seen, 1, |l| l == "OPEN")),
        Kill::AfterReady(delay) => (delay, wait_for(&lines, &mut seen, 1, |l| l.starts_with("READY"))),
        Kill::AfterAcks(acks) => (Duration::ZERO, wait_for(&lines, &mut seen, acks, |l| l.starts_with("A "))),
    };
    if alive {
        std::thread::sleep(delay);
    }
    // SIGKILL on Unix; the child may already have exited, and then its status tells why.
    let _ = child.kill();
    let status = child.wait().expect("wait for crash_child");
    reader.join().expect("stdout reader");
    seen.extend(lines.try_iter());
    let at = |prefix: &str| seen.iter().find(|(_, l)| l.starts_with(prefix)).map(|(at, _)| *at);
    let recovery = at("READY").zip(at("OPEN")).map(|(ready, open)| ready - open);
    let stderr = errors.join().expect("stderr reader");
    Run { lines: seen.into_iter().map(|(_, l)| l).collect(), stderr, status, recovery }
}

fn killed_by_us(status: &ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(9)
    }
    #[cfg(not(unix))]
    {
        !status.success()
    }
}

/// Reopens the kernel in-process (a full recovery) and reads every shard's state.
fn recover(dir: &Path) -> Result<Vec<ShardState>, String> {
    let kernel = Kernel::open(OsEnv::new(), dir, config()).map_err(|e| format!("reopen: {e}"))?;
    if let Some(status) = kernel.shard_status().into_iter().find(|s| s.failed.is_some()) {
        return Err(format!("shard {} failed at recovery: {:?}", status.shard, status.failed));
    }
    let mut state = vec![ShardState::default(); SHARDS];
    for (key, value) in kernel.scan::<&[u8]>(..).map_err(|e| format!("scan: {e}"))? {
        state[kernel.shard_of(&key) as usize].entries.insert(key, value);
    }
    // A document lives in the shard of its keys; the child's ids start with their group's prefix.
    for id in kernel.completed_documents().map_err(|e| format!("documents: {e}"))? {
        state[kernel.shard_of(id.as_bytes()) as usize].docs.insert(id);
    }
    kernel.close().map_err(|e| format!("close: {e}"))?;
    Ok(state)
}

/// A small deterministic generator for the kill plan.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every fourth round (the first included, so creation is interrupted too) is killed during
/// recovery: at once after `OPEN`, or within the time the last recovery took. The others after
/// some acknowledgements or a short delay.
fn plan(rng: &mut Rng, round: u64, recovery: Duration) -> Kill {
    if round.is_multiple_of(4) {
        let micros = recovery.as_micros() as u64;
        let delay = if rng.below(2) == 0 { 0 } else { rng.below(micros + 1) };
        return Kill::InRecovery(Duration::from_micros(delay));
    }
    match rng.below(2) {
        0 => Kill::AfterAcks(1 + rng.below(KILL_AFTER_ACKS_MAX)),
        _ => Kill::AfterReady(Duration::from_millis(rng.below(KILL_AFTER_DELAY_MS_MAX + 1))),
    }
}

#[derive(Debug, Default)]
struct Summary {
    kills: u64,
    /// Kills between `OPEN` and `READY`: while the kernel was created or recovered.
    killed_in_recovery: u64,
    checked: Checked,
}

/// Kills and restarts the child `rounds` times on one directory, checking after each kill.
fn crash_rounds(rounds: u64, seed: u64, flags: &[&str]) -> Summary {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel_dir = dir.path().join("kernel");
    let mut rng = Rng(seed | 1);
    let mut baseline = vec![ShardState::default(); SHARDS];
    let mut summary = Summary::default();
    let mut recovery = Duration::from_millis(2);
    for round in 0..rounds {
        let kill = plan(&mut rng, round, recovery);
        let child_seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(round);
        let run = run_child(&kernel_dir, child_seed, flags, kill);
        let context = format!(
            "round {round} (STORMHOLD_OS_CRASH_SEED={seed}, child seed {child_seed}, flags {flags:?}, {kill:?}, \
             exit {:?})\nstderr: {}\nlast lines: {:?}",
            run.status,
            run.stderr,
            &run.lines[run.lines.len().saturating_sub(6)..]
        );
        assert!(killed_by_us(&run.status) || run.status.success(), "the child failed: {context}");
        summary.kills += u64::from(killed_by_us(&run.status));
        recovery = run.recovery.unwrap_or(recovery);
        let transcript = parse_transcript(&run.lines).unwrap_or_else(|e| panic!("{e}: {context}"));
        check_routing(&transcript.commits).unwrap_or_else(|e| panic!("{e}: {context}"));
        match transcript.ready {
            None => summary.killed_in_recovery += u64::from(transcript.opened),
            Some(next) => assert!(next > highest_seq(&baseline), "the child did not resume: {context}"),
        }
        let recovered = recover(&kernel_dir).unwrap_or_else(|e| panic!("{e}: {context}"));
        let checked = check_round(&baseline, &transcript.commits, &recovered)
            .unwrap_or_else(|e| panic!("violation: {e}\n{context}"));
        summary.checked.acked += checked.acked;
        summary.checked.unacked_present += checked.unacked_present;
        summary.checked.unacked_absent += checked.unacked_absent;
        baseline = recovered;
    }
    summary
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
}

#[test]
fn sigkilled_child_recovers_every_acknowledged_commit_as_a_prefix() {
    let rounds = env_u64("STORMHOLD_OS_CRASH_ROUNDS", ROUNDS_DEFAULT);
    let seed = env_u64("STORMHOLD_OS_CRASH_SEED", SEED_DEFAULT);
    let summary = crash_rounds(rounds, seed, &[]);
    println!("os crash (seed {seed}): {summary:?}");
    assert_eq!(summary.kills, rounds, "every round ends in a SIGKILL: {summary:?}");
    assert!(summary.checked.acked > 0, "acknowledged commits were checked: {summary:?}");
    assert!(summary.killed_in_recovery > 0, "some kill interrupted recovery: {summary:?}");
}

/// `--ack-before-sync` acknowledges `Durability::None` commits before any sync: a durability
/// lie. It passes here because a killed process's writes stay in the OS page cache; this pins
/// that limit of the test (the checker's power is proven by the `checker_*` tests) and that
/// unsynced commits survive a process crash, as `Durability::None` promises.
#[test]
fn unsynced_commits_survive_a_process_kill() {
    let seed = env_u64("STORMHOLD_OS_CRASH_SEED", SEED_DEFAULT) ^ 0xacc;
    let summary = crash_rounds(4, seed, &["--ack-before-sync"]);
    assert!(summary.checked.acked > 0, "{summary:?}");
}

// ---------------------------------------------------------------------------------------------
// The checker can fail: fabricated recovered states.

fn put(seq: u64, shard: usize, pairs: &[(&str, &str)], acked: bool) -> Commit {
    let ops = pairs.iter().map(|(k, v)| Op::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
    Commit { seq, shard, ops, acked, counter: None }
}

fn state(pairs: &[(&str, &[u8])]) -> ShardState {
    ShardState {
        entries: pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec())).collect(),
        docs: BTreeSet::new(),
    }
}

/// Shard 0: two acknowledged commits, then one in flight; shard 1: one acknowledged commit.
fn sample_commits() -> Vec<Commit> {
    vec![
        put(1, 0, &[("a:x", "s1"), ("a:y", "s1")], true),
        put(2, 1, &[("b:x", "s2")], true),
        Commit {
            seq: 3,
            shard: 0,
            ops: vec![Op::Del(b"a:y".to_vec()), Op::Add(b"a:n".to_vec(), 5)],
            acked: true,
            counter: Some(5),
        },
        put(4, 0, &[("a:x", "s4"), ("a:z", "s4")], false),
    ]
}

fn five() -> Vec<u8> {
    5u64.to_le_bytes().to_vec()
}

#[test]
fn checker_accepts_the_acknowledged_prefix_with_or_without_the_commit_in_flight() {
    let baseline = vec![ShardState::default(); 2];
    let without = vec![state(&[("a:n", &five()), ("a:x", b"s1")]), state(&[("b:x", b"s2")])];
    let checked = check_round(&baseline, &sample_commits(), &without).unwrap();
    assert_eq!(checked, Checked { acked: 3, unacked_present: 0, unacked_absent: 1 });
    let with = vec![state(&[("a:n", &five()), ("a:x", b"s4"), ("a:z", b"s4")]), state(&[("b:x", b"s2")])];
    let checked = check_round(&baseline, &sample_commits(), &with).unwrap();
    assert_eq!(checked, Checked { acked: 3, unacked_present: 1, unacked_absent: 0 });
}

#[test]
fn checker_detects_a_lost_acknowledged_commit() {
    let baseline = vec![ShardState::default(); 2];
    // Seq 3 (acknowledged) is missing: a:y is still there and the counter is absent.
    let lost = vec![state(&[("a:x", b"s1"), ("a:y", b"s1")]), state(&[("b:x", b"s2")])];
    let error = check_round(&baseline, &sample_commits(), &lost).unwrap_err();
    assert!(
        error.contains("shard 0") && error.contains("seq Some(3)") && error.contains("key a:n"),
        "{error}"
    );
    // A whole shard rolled back to before the round.
    let empty = vec![state(&[("a:n", &five()), ("a:x", b"s1")]), ShardState::default()];
    let error = check_round(&baseline, &sample_commits(), &empty).unwrap_err();
    assert!(error.contains("shard 1") && error.contains("key b:x"), "{error}");
}

#[test]
fn checker_detects_a_torn_transaction_and_a_gap() {
    let baseline = vec![ShardState::default(); 2];
    // Half of the in-flight seq 4: a:x rewritten, a:z missing.
    let torn = vec![state(&[("a:n", &five()), ("a:x", b"s4")]), state(&[("b:x", b"s2")])];
    assert!(check_round(&baseline, &sample_commits(), &torn).is_err());
    // Seq 4 present but acknowledged seq 3 missing: not a prefix.
    let gap = vec![state(&[("a:x", b"s4"), ("a:y", b"s1"), ("a:z", b"s4")]), state(&[("b:x", b"s2")])];
    assert!(check_round(&baseline, &sample_commits(), &gap).is_err());
}

#[test]
fn checker_detects_invention_wrong_counters_and_documents() {
    let baseline = vec![ShardState::default(); 2];
    let good = || vec![state(&[("a:n", &five()), ("a:x", b"s1")]), state(&[("b:x", b"s2")])];
    let mut invented = good();
    invented[1].entries.insert(b"b:ghost".to_vec(), b"s9".to_vec());
    assert!(check_round(&baseline, &sample_commits(), &invented).unwrap_err().contains("b:ghost"));
    let mut wrong_counter = sample_commits();
    wrong_counter[2].counter = Some(6);
    assert!(check_round(&baseline, &wrong_counter, &good()).unwrap_err().contains("returned Some(6)"));
    let mut with_doc = sample_commits();
    with_doc[1].ops.push(Op::Doc { id: "b-doc-2".into(), complete: true });
    let error = check_round(&baseline, &with_doc, &good()).unwrap_err();
    assert!(error.contains("completed documents"), "{error}");
}

#[test]
fn transcript_parser_follows_the_childs_protocol() {
    let lines: Vec<String> = [
        "OPEN",
        "READY 7",
        "W 7 2 put:g4:k0=s7 del:g4:k1 add:g4:n+3",
        "A 7",
        "C tick",
        "W 8 1 put:g5:d0=s8 doc:g5-doc-8:complete",
        "A 8",
        "W 9 3 add:g7:n+2",
    ]
    .map(String::from)
    .to_vec();
    let transcript = parse_transcript(&lines).unwrap();
    assert!(transcript.opened);
    assert_eq!(transcript.ready, Some(7));
    assert_eq!(transcript.commits.len(), 3);
    assert_eq!(transcript.commits[0].ops[2], Op::Add(b"g4:n".to_vec(), 3));
    assert_eq!(transcript.commits[1].ops[1], Op::Doc { id: "g5-doc-8".into(), complete: true });
    assert!(!transcript.commits[2].acked);
    let ack_of_nothing = ["OPEN", "READY 1", "A 1"].map(String::from).to_vec();
    assert!(parse_transcript(&ack_of_nothing).is_err());
    let overlapping = ["W 1 0 del:a", "W 2 0 del:b"].map(String::from).to_vec();
    assert!(parse_transcript(&overlapping).is_err());
}
