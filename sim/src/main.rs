//! The `stormhold-sim` command line: `run` one seed, `sweep` many, `merge` sweep pieces.
//!
//! Exit codes (a contract with batch schedulers' failure policies): 0 no violation; 1 a
//! correctness violation; 2 a liveness failure; 3 a panic (of the simulator or the code under
//! test) or a nondeterministic seed — 1 to 3 are findings, so a scheduler must not retry that
//! index; 64 bad input (command line, environment, or pieces that do not merge); 75 a sweep
//! that stopped at its time limit with seeds not run (retry it).

use clap::{Args, Parser, Subcommand};
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use stormhold::env::sim::{TRACE_EVENTS_MAX, TRACE_TAIL_EVENTS};
use stormhold_sim::config::{FaultList, OPS_DEFAULT, RunConfig, WORKLOAD_DEFAULT, WorkloadKind};
use stormhold_sim::corpus::{self, CorpusEntry};
use stormhold_sim::merge;
use stormhold_sim::progress::Progress;
use stormhold_sim::report;
use stormhold_sim::runner::{self, RunReport};
use stormhold_sim::sweep::{self, SweepOptions, SweepSummary};
use stormhold_sim::sweep_doc::SweepDocument;

#[derive(Parser)]
#[command(name = "stormhold-sim", about = "Deterministic fault-injection simulator for stormhold")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed and print its options, summary and trace hash.
    Run(RunArgs),
    /// Run a range of seeds on all cores and print a summary (and a JSON document).
    Sweep(SweepArgs),
    /// Check that sweep documents agree and cover their range, and sum them into one.
    Merge(MergeArgs),
    /// Shrink a failing seed to a minimal case and write it to the corpus.
    Shrink(ShrinkArgs),
    /// Replay corpus entries (a file or a directory) and compare each with its expectation.
    Replay(ReplayArgs),
}

#[derive(Args)]
struct ShrinkArgs {
    /// The failing seed.
    #[arg(long)]
    seed: u64,
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Where to write the corpus entry (default: corpus/<workload>-seed-<seed>.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The entry's one-line note: the bug this case found.
    #[arg(long, default_value = "shrunk failing case")]
    note: String,
}

#[derive(Args)]
struct MergeArgs {
    /// The pieces' documents (`sweep --json`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write the merged document to this file (`-`: stdout, and the summary goes to stderr).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    /// A corpus entry, or a directory of them.
    path: PathBuf,
}

#[derive(Args, Clone)]
struct WorkloadArgs {
    /// Chaos-phase operations per seed.
    #[arg(long, default_value_t = OPS_DEFAULT)]
    ops: u64,
    /// Fault classes: `all`, `none`, or a comma list of crash, sync, eio, short, enospc, rot,
    /// misdirect, badsector, clock, slow, process (process crashes that keep the page cache),
    /// targeted (media faults aimed at critical regions). Default: each seed's swarm mix.
    #[arg(long)]
    faults: Option<FaultList>,
    /// The workload: kernel (the default), env, wal, checkpoint, toy, raft, aries, or a planted-bug
    /// variant (kernel-ack-unsynced, toy-ack-before-sync, ...).
    #[arg(long, default_value_t = WORKLOAD_DEFAULT)]
    workload: WorkloadKind,
    /// Bound on the crash images enumerated at a crash point (beyond it: sampled).
    #[arg(long)]
    images_max: Option<usize>,
    /// Override any option of the run by its dotted path, e.g. `--set faults.sector_size_bytes=4096`
    /// (repeatable; applied after --faults).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Args)]
struct RunArgs {
    /// The seed.
    #[arg(long)]
    seed: u64,
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Run the seed twice and compare the traces event by event.
    #[arg(long)]
    check_determinism: bool,
    /// Write the run's fault schedule to this file (JSON).
    #[arg(long)]
    record_schedule: Option<PathBuf>,
    /// Take faults from this recorded schedule instead of drawing them.
    #[arg(long)]
    replay_schedule: Option<PathBuf>,
    /// Save the run as a corpus entry (config, schedule, outcome) to this file.
    #[arg(long, requires = "note")]
    save_corpus: Option<PathBuf>,
    /// The corpus entry's one-line note: the bug this case found.
    #[arg(long)]
    note: Option<String>,
    /// Write a picture of the run (one self-contained HTML page) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Args)]
struct SweepArgs {
    /// Seeds as A..B (B exclusive).
    #[arg(long, value_parser = parse_seed_range)]
    seeds: Range<u64>,
    /// Worker threads, at least 1 (default: all cores).
    #[arg(long, value_parser = parse_jobs)]
    jobs: Option<usize>,
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Run only shard I of N (seeds with seed % N == I), for a batch scheduler.
    #[arg(long, value_parser = sweep::parse_shard, default_value = "0/1")]
    shard: (u64, u64),
    /// Take the shard index from an environment variable: VAR/N, e.g.
    /// JOB_COMPLETION_INDEX/8 (Kubernetes) or SLURM_ARRAY_TASK_ID/8 (Slurm).
    #[arg(long, value_name = "VAR/N", conflicts_with = "shard")]
    shard_from_env: Option<String>,
    /// Write the sweep's JSON document to this file (`-`: stdout, and the summary goes to
    /// stderr).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Stop starting new seeds after this many seconds.
    #[arg(long)]
    time_limit: Option<f64>,
    /// Run every Nth seed twice and compare trace hashes.
    #[arg(long)]
    check_determinism_every: Option<u64>,
    /// Write each failing case to corpus/ (as found, or shrunk with --shrink).
    #[arg(long)]
    save: bool,
    /// Shrink each failing case before saving it (implies --save).
    #[arg(long)]
    shrink: bool,
}

fn parse_seed_range(text: &str) -> Result<Range<u64>, String> {
    let (start, end) = text.split_once("..").ok_or_else(|| format!("{text:?} is not A..B"))?;
    let start: u64 = start.trim().parse().map_err(|e| format!("bad start {start:?}: {e}"))?;
    let end: u64 = end.trim().parse().map_err(|e| format!("bad end {end:?}: {e}"))?;
    if end <= start {
        return Err(format!("empty seed range {text}"));
    }
    Ok(start..end)
}

fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => {
            Err("0 worker threads run nothing: give 1 or more, or leave --jobs out for all cores".into())
        }
        Ok(jobs) => Ok(jobs),
        Err(e) => Err(format!("bad job count {text:?}: {e}")),
    }
}

/// Checks, before anything runs, that `path` can be written: not a directory, its parent
/// directory exists and a file can be created in it (a probe file, removed at once). The
/// message names the option and the path.
fn check_output_path(option: &str, path: &Path) -> Result<(), String> {
    let fail = |why: String| Err(format!("{option} {}: {why}", path.display()));
    if path.is_dir() {
        return fail("is a directory, not a file".into());
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return fail(format!("directory {} does not exist", parent.display()));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let probe = parent.join(format!(".{name}.stormhold-sim-probe"));
    match fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => fs::remove_file(&probe).or_else(|e| fail(format!("cannot remove probe file: {e}"))),
        Err(e) => fail(format!("directory {} is not writable: {e}", parent.display())),
    }
}

fn config_for(seed: u64, args: &WorkloadArgs) -> Result<RunConfig, String> {
    let mut config = RunConfig::from_seed(seed, args.workload, args.ops);
    if let Some(FaultList(classes)) = &args.faults {
        config.restrict_faults(classes);
    }
    if let Some(images_max) = args.images_max {
        config.images_max = images_max.max(1);
    }
    for assignment in &args.set {
        config.set(assignment)?;
    }
    config.validate().map_err(|invalid| format!("invalid run options: {invalid}"))?;
    Ok(config)
}

fn replay_command(config: &RunConfig, args: &WorkloadArgs) -> String {
    let faults = args.faults.as_ref().map(|FaultList(classes)| classes.as_slice());
    sweep::replay_command(config, faults, &sets_of(args))
}

/// The `--set` assignments of the options, `--images-max` first as `images_max=N`.
fn sets_of(args: &WorkloadArgs) -> Vec<String> {
    let images_max = args.images_max.map(|n| format!("images_max={}", n.max(1)));
    images_max.into_iter().chain(args.set.iter().cloned()).collect()
}

fn print_report(report: &RunReport, args: &WorkloadArgs) {
    let s = &report.sim;
    println!(
        "summary: ops={} recoveries={} crashes={} calls={} faults={} simulated={:.3}s",
        report.ops,
        report.recoveries,
        s.crashes,
        s.calls,
        report.faults(),
        report.simulated_ns as f64 / 1e9
    );
    println!(
        "faults: eio={} short={} sync={} enospc={} rot={} misdirect={} badsector={} (reads {}) clock={} slow={} torn={} lost={} dir-ops-lost={} process-crashes={} targeted-media={}",
        s.io_errors,
        s.short_ios,
        s.sync_failures,
        s.storage_full,
        s.bit_rot,
        s.misdirected_writes,
        s.bad_sectors,
        s.bad_sector_reads,
        s.clock_jumps,
        s.slow_ios,
        s.writes_torn,
        s.writes_lost,
        s.dir_ops_lost,
        s.process_crashes,
        s.targeted_media
    );
    match &report.violation {
        None => println!("result: ok (no violation)"),
        Some(violation) => {
            println!("result: VIOLATION (seed {})", report.config.seed);
            println!("  {violation}");
            println!("last events:");
            for event in &report.trace_tail {
                println!("  {event}");
            }
            println!("replay: {}", replay_command(&report.config, args));
        }
    }
    println!("trace-hash: {:016x}", report.trace_hash);
}

fn check_determinism(config: &RunConfig) -> ExitCode {
    match runner::check_determinism(config) {
        Ok(hash) => {
            println!("determinism: two runs agree on every event; trace-hash: {hash:016x}");
            ExitCode::from(0)
        }
        Err(divergence) => {
            println!("determinism: VIOLATED at event {}", divergence.index);
            let show = |event: &Option<stormhold::env::sim::TraceEvent>| {
                event.as_ref().map_or("(the run had ended)".to_owned(), |e| e.to_string())
            };
            println!("  first run:  {}", show(&divergence.first));
            println!("  second run: {}", show(&divergence.second));
            ExitCode::from(3)
        }
    }
}

fn run(args: RunArgs) -> Result<ExitCode, String> {
    let config = config_for(args.seed, &args.workload)?;
    if let Some(path) = &args.report {
        check_output_path("--report", path)?;
    }
    if let Some(path) = &args.record_schedule {
        check_output_path("--record-schedule", path)?;
    }
    if args.check_determinism {
        return Ok(check_determinism(&config));
    }
    let classes: Vec<&str> = config.enabled_classes().iter().map(|c| c.name()).collect();
    println!(
        "stormhold-sim run: seed={} workload={} ops={} quiet_ops={} driver_crash_probability={:.4}",
        config.seed, config.workload, config.ops, config.quiet_ops, config.driver_crash_probability
    );
    println!("fault classes on: {}", if classes.is_empty() { "none".into() } else { classes.join(", ") });
    println!("options: {:?}", config.faults);
    let schedule = match &args.replay_schedule {
        Some(path) => {
            let schedule = corpus::load_schedule(path)?;
            println!("replaying {} scheduled faults from {}", schedule.faults.len(), path.display());
            Some(schedule)
        }
        None => None,
    };
    let (report, page) = match &args.report {
        None => (runner::run(&config, schedule), None),
        Some(_) => {
            // The same machine `runner::run` builds, keeping every event so the page draws
            // the whole run.
            config.faults.validate().map_err(|invalid| format!("invalid fault options: {invalid}"))?;
            let env = runner::machine(&config, schedule);
            env.keep_trace_events(TRACE_EVENTS_MAX);
            let mut report = runner::run_with_env(&config, env);
            let page = report::render_html(&report, &replay_command(&config, &args.workload));
            let drawn = report.trace_tail.len();
            report.trace_tail.drain(..drawn.saturating_sub(TRACE_TAIL_EVENTS));
            (report, Some(page))
        }
    };
    print_report(&report, &args.workload);
    if let (Some(path), Some(page)) = (&args.report, page) {
        fs::write(path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("report: written to {}", path.display());
    }
    if let Some(path) = &args.record_schedule {
        let text = serde_json::to_string_pretty(&report.schedule).map_err(|e| e.to_string())?;
        fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("schedule: {} faults written to {}", report.schedule.faults.len(), path.display());
    }
    if let Some(path) = &args.save_corpus {
        let entry = CorpusEntry {
            note: args.note.clone().unwrap_or_default(),
            config: config.clone(),
            schedule: report.schedule.clone(),
            ops: report.recorded.clone(),
            expect_violation: report.violation.as_ref().map(|v| v.kind),
        };
        entry.save(path)?;
        println!("corpus: entry written to {}", path.display());
    }
    Ok(ExitCode::from(report.exit_code() as u8))
}

fn sweep(args: SweepArgs) -> Result<ExitCode, String> {
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let shard = match &args.shard_from_env {
        Some(spec) => sweep::shard_from_env(spec, |var| std::env::var(var).ok())?,
        None => args.shard,
    };
    let options = SweepOptions {
        seeds: args.seeds.clone(),
        jobs,
        workload: args.workload.workload,
        ops: args.workload.ops,
        faults: args.workload.faults.clone().map(|FaultList(classes)| classes),
        shard,
        time_limit: args.time_limit.map(std::time::Duration::from_secs_f64),
        check_determinism_every: args.check_determinism_every,
        sets: sets_of(&args.workload),
    };
    config_for(options.seeds.start, &args.workload)?;
    if let Some(path) = args.json.as_deref().filter(|path| path.as_os_str() != "-") {
        check_output_path("--json", path)?;
    }
    eprintln!(
        "[sweep] {} seeds {}..{} shard {}/{} workload={} ops={} jobs={}",
        stormhold_sim::sweep_doc::ToolVersion::current(),
        options.seeds.start,
        options.seeds.end,
        options.shard.0,
        options.shard.1,
        options.workload,
        options.ops,
        jobs
    );
    let mut progress = Progress::for_stderr(options.seed_count());
    let summary = sweep::sweep(&options, |summary, total| progress.update(summary, total));
    progress.finish(&summary, options.seed_count());
    let document = SweepDocument::from_sweep(&summary, &options);
    emit(&document, args.json.as_deref())?;
    if args.save || args.shrink {
        save_failures(&summary, &options, &args.workload, args.shrink)?;
    }
    Ok(ExitCode::from(document.exit_code))
}

/// Prints the human summary and writes the JSON document if asked (to stdout for `-`, which
/// moves the summary to stderr). A file is written whole or not at all (temporary + rename),
/// so a killed job never leaves half a document on the shared volume.
fn emit(document: &SweepDocument, json: Option<&Path>) -> Result<(), String> {
    match json {
        Some(path) if path.as_os_str() == "-" => {
            eprint!("{}", document.render_summary());
            print!("{}", document.to_json());
        }
        Some(path) => {
            print!("{}", document.render_summary());
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            fs::write(&partial, document.to_json())
                .and_then(|()| fs::rename(&partial, path))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("[sweep] json: written to {}", path.display());
        }
        None => print!("{}", document.render_summary()),
    }
    Ok(())
}

fn merge(args: MergeArgs) -> Result<ExitCode, String> {
    let mut pieces = Vec::new();
    for path in &args.files {
        let document = SweepDocument::load(path).map_err(|e| e.to_string())?;
        pieces.push((path.clone(), document));
    }
    let merged = merge::merge(&pieces).map_err(|e| e.to_string())?;
    emit(&merged, args.json.as_deref())?;
    Ok(ExitCode::from(merged.exit_code))
}

/// Writes each failing seed of a sweep to corpus/, shrunk first if asked.
fn save_failures(
    summary: &SweepSummary,
    options: &SweepOptions,
    args: &WorkloadArgs,
    shrink: bool,
) -> Result<(), String> {
    for (seed, violation) in &summary.failures {
        let config = options.config(*seed);
        let (config, schedule, ops, kind) =
            match shrink.then(|| stormhold_sim::shrink::shrink(&config)).flatten() {
                Some(shrunk) => {
                    let kind = shrunk.report.violation.as_ref().map_or(violation.kind, |v| v.kind);
                    (shrunk.config, shrunk.schedule, shrunk.ops, kind)
                }
                None => {
                    let report = runner::run(&config, None);
                    (config, report.schedule, report.recorded, violation.kind)
                }
            };
        let note = format!("found by sweep: {violation} (replace with the bug it pinned)");
        let entry = CorpusEntry { note, config, schedule, ops, expect_violation: Some(kind) };
        let out = PathBuf::from(format!("corpus/{}-seed-{seed}.json", args.workload));
        entry.save(&out)?;
        println!(
            "corpus: {} written; replay: cargo run --release -p stormhold-sim -- replay {}",
            out.display(),
            out.display()
        );
    }
    Ok(())
}

fn shrink(args: ShrinkArgs) -> Result<ExitCode, String> {
    let config = config_for(args.seed, &args.workload)?;
    let Some(shrunk) = stormhold_sim::shrink::shrink(&config) else {
        println!("seed {} of workload {} does not fail: nothing to shrink", args.seed, config.workload);
        return Ok(ExitCode::from(0));
    };
    let Some(violation) = shrunk.report.violation.clone() else {
        return Err("the shrunk case lost its violation".into());
    };
    println!(
        "shrunk seed {} ({}): ops {} -> {}, scheduled faults {} -> {}, in {} replays",
        args.seed,
        config.workload,
        config.ops,
        shrunk.config.ops,
        runner::run(&config, None).schedule.faults.len(),
        shrunk.schedule.faults.len(),
        shrunk.runs
    );
    println!("  {violation}");
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("corpus/{}-seed-{}.json", config.workload, args.seed)));
    let entry = CorpusEntry {
        note: args.note,
        config: shrunk.config,
        schedule: shrunk.schedule,
        ops: shrunk.ops,
        expect_violation: Some(violation.kind),
    };
    entry.save(&out)?;
    println!("corpus: entry written to {}", out.display());
    println!("replay: cargo run --release -p stormhold-sim -- replay {}", out.display());
    Ok(ExitCode::from(0))
}

fn replay(args: ReplayArgs) -> Result<ExitCode, String> {
    let paths = if args.path.is_dir() { corpus::entries(&args.path)? } else { vec![args.path.clone()] };
    let mut mismatches = 0;
    for path in &paths {
        let entry = CorpusEntry::load(path)?;
        let report = entry.replay();
        let outcome = report.violation.as_ref().map_or("pass".to_owned(), |v| format!("{v}"));
        let verdict = if entry.outcome_matches(&report) { "ok" } else { "MISMATCH" };
        mismatches += usize::from(!entry.outcome_matches(&report));
        println!(
            "{verdict:<8} {}: {} | expected {:?}, got {outcome}",
            path.display(),
            entry.note,
            entry.expect_violation
        );
    }
    println!("{} passed, {} failed", paths.len() - mismatches, mismatches);
    Ok(ExitCode::from(u8::from(mismatches > 0)))
}

/// Exits quietly when stdout's reader goes away (`stormhold-sim sweep ... | head`), as Unix
/// tools do, instead of panicking with a backtrace; other panics keep the default report.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or_default();
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    exit_quietly_on_broken_pipe();
    // clap exits with 2 on bad input, which is the liveness-failure code here: map it to 64.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 64 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Sweep(args) => sweep(args),
        Command::Merge(args) => merge(args),
        Command::Shrink(args) => shrink(args),
        Command::Replay(args) => replay(args),
    };
    result.unwrap_or_else(|message| {
        eprintln!("stormhold-sim: {message}");
        ExitCode::from(64)
    })
}
