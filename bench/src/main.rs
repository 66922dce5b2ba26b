//! `stormhold-bench`: the performance harness of DESIGN.md section 7.
//!
//! ```text
//! cargo run --release -p stormhold-bench -- [--quick] [--dir PATH]
//! ```
//!
//! Every workload is printed next to a raw baseline measured in the same run, on the same
//! disk, with the ratio between them; the targets of DESIGN.md section 7 are ratios, so they
//! hold on any machine. Each measurement runs for a fixed count or a fixed time (2 s; 0.5 s
//! with `--quick`), whichever ends first, split into turns that alternate with its baseline's,
//! so that both see the same disk weather (a virtual disk's sync rate drifts by multiples
//! within a minute). Everything happens in a temporary directory (in `--dir`, default the
//! system's) that is removed at the end. No figure is ever asserted.
//!
//! Workloads (payload 128 bytes unless stated):
//! - durable commits, one writer: `append` + `sync(Data)` against baseline B (overwrite of
//!   zeroed, synced space + `fdatasync`) and baseline A (append + `fdatasync`), in many short
//!   paired rounds judged by the median of the per-round ratios (`paired.rs`; printed in the
//!   baseline column beside the ratio of totals);
//! - durable commits with 8 and 32 writers through `SharedWal` against a simple
//!   leader/follower group commit written directly on a file, with the same threads;
//! - bulk append (`Durability::None`, one sync at the end of each turn) in MiB/s of log bytes
//!   against a raw append loop that writes the same record size with one write call each;
//! - recovery: `Wal::open_borrowed` (the scan as recovery runs it) of a log of 256 MiB (64 MiB
//!   with `--quick`) against a sequential read of the same files. The page cache is warm (the
//!   log was just written), so this is not the cold-recovery figure of the targets;
//! - the same through the front door, [`stormhold::Kernel`] (see `kernel.rs`): durable puts
//!   from 1, 8 and 32 writers on 1 and 4 shards against baseline B and the group-commit ideal,
//!   a bulk load of 1,000 puts per commit against a raw append loop (puts/s), and
//!   `Kernel::open` of a WAL of the recovery size against a sequential read (warm cache);
//! - a realistic store (see `realistic.rs`): `Kernel::open` of a checkpoint plus a WAL tail
//!   (16 B keys, 100 B values) on 1 and 4 shards against a sequential read of the same bytes;
//!   printed after the table, the disk footprint of an empty 4-shard store and of one holding
//!   1 GiB of live data (64 MiB with `--quick`), and the peak RSS of recovery at two WAL
//!   lengths with the same live data (a child process's `VmHWM`);
//! - the peak RSS of a bulk load of 1M puts (100k with `--quick`) into a new kernel against
//!   its live data (see `bulk_rss.rs`), printed after the table;
//! - recovery against data size (see `ckpt_recovery.rs`), printed after the table: the time
//!   of `recovery::recover` for 1x, 2x, 4x and 8x a base volume (8 MiB; 4 MiB with
//!   `--quick`), with checkpoints and retention and without, and the 8x over 1x ratio of each;
//! - commit latency while checkpoints run (see `ckpt_latency.rs`), printed after the table: a
//!   steady durable writer alone and beside back-to-back full checkpoints of a state of the
//!   recovery size, and a bulk load across the WAL cap with a ticker thread and without.

mod bulk_rss;
mod child;
mod ckpt_latency;
mod ckpt_recovery;
mod counting;
mod harness;
mod kernel;
mod paired;
mod raft;
mod raw;
mod realistic;
mod wal;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use harness::{BenchError, Budget, Row, Scratch, interleave, table};
use stormhold::wal::WalOptions;

/// Payload of the commit workloads, in bytes.
const COMMIT_PAYLOAD_BYTES: usize = 128;
/// Payload of the records of the recovery log, in bytes.
const RECOVERY_PAYLOAD_BYTES: usize = 1024;
/// Writer counts of the concurrent commit workloads.
const WRITER_COUNTS: [usize; 2] = [8, 32];

/// What one run measures and for how long.
#[derive(Clone, Debug)]
struct Config {
    /// Parent of the temporary directory.
    dir: PathBuf,
    /// Each comparison alternates its contenders this many times, each turn getting this
    /// share of its budget (a recovery comparison: one scan and one read per turn).
    rounds: u32,
    /// Budget of each durable-commit measurement.
    commits: Budget,
    /// Budget of each bulk-append measurement (count in records).
    bulk: Budget,
    /// Size of the recovery log, in bytes.
    recovery_bytes: u64,
    /// Payload sizes of the bulk-append workload, in bytes.
    bulk_payloads: Vec<usize>,
    /// Options of every log (the defaults: 64 MiB preallocated segments).
    wal: WalOptions,
    /// Base volume of the recovery-against-size section, in bytes of values.
    size_base_bytes: u64,
    /// Recoveries timed per store in that section (the median is printed).
    size_runs: u32,
    /// Runs only the workloads and sections whose name contains this.
    only: Option<String>,
    /// Live data of the footprint and recovery-memory section, in bytes of keys and values.
    footprint_bytes: u64,
    /// Puts of the bulk-load memory section.
    bulk_rss_puts: u64,
}

impl Config {
    fn full(dir: PathBuf) -> Self {
        let seconds = Duration::from_secs(2);
        Self {
            dir,
            rounds: 10,
            commits: Budget { count_max: 1_000_000, duration: seconds },
            bulk: Budget { count_max: 2_000_000, duration: seconds },
            recovery_bytes: 256 << 20,
            bulk_payloads: vec![128, 4096],
            wal: WalOptions::default(),
            size_base_bytes: 8 << 20,
            size_runs: 15,
            footprint_bytes: 1 << 30,
            bulk_rss_puts: 1_000_000,
            only: None,
        }
    }

    fn quick(dir: PathBuf) -> Self {
        let seconds = Duration::from_millis(500);
        Self {
            rounds: 5,
            commits: Budget { count_max: 1_000_000, duration: seconds },
            bulk: Budget { count_max: 500_000, duration: seconds },
            recovery_bytes: 64 << 20,
            size_base_bytes: 4 << 20,
            size_runs: 9,
            footprint_bytes: 64 << 20,
            bulk_rss_puts: 100_000,
            ..Self::full(dir)
        }
    }
}

impl Config {
    /// Whether `--only` (if given) selects the workload or section `name`.
    fn selects(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| name.contains(only.as_str()))
    }
}

fn usage() -> &'static str {
    "usage: stormhold-bench [--quick] [--dir PATH] [--only NAME]\n\
     \x20 --quick     shorter measurements and a 64 MiB recovery log (about 30 s)\n\
     \x20 --dir PATH  where to create the temporary directory (default: the system's)\n\
     \x20 --only NAME only the workloads and sections whose name contains NAME (single, \n\
     \x20             concurrent, bulk, recovery, kernel-commits, kernel-bulk, kernel-recovery,\n\
     \x20             realistic-recovery, recovery-vs-size, footprint, checkpoint-latency)"
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<(Config, bool), String> {
    let mut quick = false;
    let mut dir = std::env::temp_dir();
    let mut only = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--dir" => dir = PathBuf::from(args.next().ok_or("--dir needs a path")?),
            "--only" => only = Some(args.next().ok_or("--only needs a name")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut config = if quick { Config::quick(dir) } else { Config::full(dir) };
    config.only = only;
    Ok((config, quick))
}

/// Notes `what` on stderr before measuring it, so a slow disk shows where the time goes.
fn step(what: &str) {
    eprintln!("  measuring {what} ...");
}

fn single_writer(config: &Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let bytes = COMMIT_PAYLOAD_BYTES;
    step("single-writer durable commits: WAL, baselines A and B, interleaved");
    let mut a = raw::append_fdatasync(scratch.path(), bytes)?;
    let mut b = raw::overwrite_fdatasync(scratch.path(), bytes)?;
    let mut wal = wal::single_writer(scratch.path(), &config.wal, bytes)?;
    // Judged by the median of per-round ratios (see `paired.rs`).
    let (rounds, budget) = paired::one_writer_rounds(config.rounds, config.commits);
    let paired = paired::paired_rounds(rounds, budget, &mut [&mut wal, &mut a, &mut b])?;
    let workload = format!("durable commits, 1 writer, {bytes} B (Wal)");
    Ok(vec![
        Row {
            workload: workload.clone(),
            rate: paired.total(0),
            baseline: format!("B: overwrite zeroed + fdatasync; {}", paired.ratio(0, 2)),
            baseline_rate: paired.total(2),
        },
        Row {
            workload,
            rate: paired.total(0),
            baseline: format!("A: append + fdatasync; {}", paired.ratio(0, 1)),
            baseline_rate: paired.total(1),
        },
    ])
}

fn concurrent_writers(config: &Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let bytes = COMMIT_PAYLOAD_BYTES;
    let mut rows = Vec::new();
    for threads in WRITER_COUNTS {
        step(&format!("{threads} writers: SharedWal and the group-commit ideal, interleaved"));
        let mut ideal = raw::GroupCommit::new(scratch.path(), threads, bytes)?;
        let mut shared = wal::SharedWriters::new(scratch.path(), &config.wal, threads, bytes)?;
        let rates = interleave(config.rounds, config.commits, &mut [&mut shared, &mut ideal])?;
        rows.push(Row {
            workload: format!(
                "durable commits, {threads} writers (SharedWal, {:.1}/sync)",
                shared.average_batch()?
            ),
            rate: rates[0],
            baseline: format!("group-commit ideal, {threads} writers, {:.1}/sync", ideal.average_batch()),
            baseline_rate: rates[1],
        });
    }
    Ok(rows)
}

fn bulk(config: &Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let mut rows = Vec::new();
    for &payload in &config.bulk_payloads {
        let slot = wal::record_slot_bytes(payload);
        step(&format!("bulk append of {payload} B records: WAL and a raw loop, interleaved"));
        let dir = Scratch::new(scratch.path(), &format!("bulk-{payload}"))?;
        let mut raw = raw::append_loop(dir.path(), slot)?;
        let mut wal = wal::bulk_append(dir.path(), &config.wal, payload)?;
        let rates = interleave(config.rounds, config.bulk, &mut [&mut wal, &mut raw])?;
        rows.push(Row {
            workload: format!("bulk append, {payload} B records, unsynced + 1 sync"),
            rate: rates[0],
            baseline: format!("raw append loop, {slot} B writes"),
            baseline_rate: rates[1],
        });
    }
    Ok(rows)
}

fn recovery(config: &Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let mib = config.recovery_bytes >> 20;
    step(&format!("building a {mib} MiB log"));
    let log = wal::build_log(scratch.path(), &config.wal, config.recovery_bytes, RECOVERY_PAYLOAD_BYTES)?;
    step("recovery scan (Wal::open_borrowed) and a sequential read of the same files, interleaved");
    let mut scan = wal::recover(&log);
    let mut read = raw::sequential_read(log.files.clone());
    let rates = interleave(config.rounds, config.commits, &mut [&mut scan, &mut read])?;
    Ok(vec![Row {
        workload: format!(
            "recovery, Wal::open_borrowed of {} MiB, {RECOVERY_PAYLOAD_BYTES} B records (warm cache)",
            log.bytes() >> 20
        ),
        rate: rates[0],
        baseline: "sequential read, same files (warm)".into(),
        baseline_rate: rates[1],
    }])
}

/// Runs every workload and returns the rows of the table.
fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    let root = tempfile::Builder::new().prefix("stormhold-bench-").tempdir_in(&config.dir)?;
    let mut rows = Vec::new();
    type Workload = fn(&Config, &Scratch) -> Result<Vec<Row>, BenchError>;
    let workloads: [(&str, Workload); 9] = [
        ("single", single_writer),
        ("concurrent", concurrent_writers),
        ("bulk", bulk),
        ("recovery", recovery),
        ("kernel-commits", kernel::commits),
        ("kernel-bulk", kernel::bulk),
        ("kernel-recovery", kernel::recovery),
        ("realistic-recovery", realistic::recovery),
        ("raft-appends", raft::appends),
    ];
    for (name, workload) in workloads {
        if !config.selects(name) {
            continue;
        }
        let scratch = Scratch::new(root.path(), name)?;
        rows.extend(workload(config, &scratch)?);
    }
    root.close()?;
    Ok(rows)
}

/// The sections printed after the table (their figures are times, not rates).
fn run_sections(config: &Config) -> Result<String, BenchError> {
    let root = tempfile::Builder::new().prefix("stormhold-bench-").tempdir_in(&config.dir)?;
    let mut section = String::new();
    if config.selects("recovery-vs-size") {
        let scratch = Scratch::new(root.path(), "recovery-vs-size")?;
        section.push_str(&ckpt_recovery::run(&scratch, config.size_base_bytes, config.size_runs)?);
        section.push('\n');
    }
    if config.selects("footprint") {
        let scratch = Scratch::new(root.path(), "footprint")?;
        section.push_str(&realistic::section(&scratch, config.footprint_bytes)?);
    }
    if config.selects("checkpoint-latency") {
        let scratch = Scratch::new(root.path(), "checkpoint-latency")?;
        let (state, turns) = (config.recovery_bytes, config.rounds);
        section.push_str(&ckpt_latency::section(&scratch, state, config.commits.duration * 2, turns)?);
    }
    if config.selects("bulk-rss") {
        let scratch = Scratch::new(root.path(), "bulk-rss")?;
        section.push_str(&bulk_rss::section(&scratch, config.bulk_rss_puts)?);
    }
    root.close()?;
    Ok(section)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, dir, shards] = args.as_slice()
        && flag == "--rss-child"
    {
        // The child of the recovery-memory measurement (see realistic.rs).
        match shards.parse().map_err(BenchError::from).and_then(|s| realistic::rss_child(dir.as_ref(), s)) {
            Ok(line) => println!("{line}"),
            Err(error) => {
                eprintln!("stormhold-bench --rss-child: {error}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let [flag, dir, mib, rounds] = args.as_slice()
        && flag == "--scan-wal"
    {
        // For profiling the WAL scan alone (see wal.rs).
        let line = mib
            .parse()
            .map_err(BenchError::from)
            .and_then(|m| wal::scan_child(dir.as_ref(), m, rounds.parse().map_err(BenchError::from)?));
        match line {
            Ok(line) => println!("{line}"),
            Err(error) => {
                eprintln!("stormhold-bench --scan-wal: {error}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let [flag, dir, puts] = args.as_slice()
        && flag == "--bulk-rss-child"
    {
        // The child of the bulk-load memory measurement (see bulk_rss.rs).
        match puts.parse().map_err(BenchError::from).and_then(|p| bulk_rss::child(dir.as_ref(), p)) {
            Ok(line) => println!("{line}"),
            Err(error) => {
                eprintln!("stormhold-bench --bulk-rss-child: {error}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let [flag, dir, shards, keys] = args.as_slice()
        && flag == "--build-realistic"
    {
        // Builds a realistic store and leaves it, for profiling `--rss-child` on it.
        let built = shards.parse().map_err(BenchError::from).and_then(|s| {
            realistic::build(dir.as_ref(), "store", s, keys.parse().map_err(BenchError::from)?, 1)
        });
        if let Err(error) = built {
            eprintln!("stormhold-bench --build-realistic: {error}");
            std::process::exit(1);
        }
        return;
    }
    let (config, quick) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("stormhold-bench: {message}");
            }
            eprintln!("{}", usage());
            std::process::exit(if message.is_empty() { 0 } else { 2 });
        }
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "stormhold-bench ({}): {cores} cores, temporary directory in {}",
        if quick { "quick" } else { "full" },
        config.dir.display()
    );
    match run(&config).and_then(|rows| Ok((rows, run_sections(&config)?))) {
        Ok((rows, sections)) => {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", table(&rows));
            let _ = write!(out, "\n{sections}");
            let _ = writeln!(
                out,
                "\nrecovery: the page cache is warm (the log was just written and synced), so \
                 both the scan and the read come from memory; this is not a cold-recovery figure."
            );
        }
        Err(error) => {
            eprintln!("stormhold-bench: {error}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the whole quick path on tiny sizes so every line of the harness runs in
    /// `cargo test`. Nothing about speed is asserted.
    #[test]
    fn tiny_run_measures_every_workload_and_cleans_up() {
        let parent = tempfile::tempdir().expect("tempdir");
        let (mut config, quick) =
            parse(["--quick".to_string(), "--dir".to_string(), parent.path().display().to_string()])
                .expect("arguments");
        assert!(quick);
        config.commits = Budget { count_max: 20, duration: Duration::from_secs(5) };
        config.bulk = Budget { count_max: 200, duration: Duration::from_secs(5) };
        config.recovery_bytes = 256 * 1024;
        // Small segments: a debug build scans a preallocated segment tail slowly.
        config.wal.segment_size_bytes = 64 * 1024;
        let rows = run(&config).expect("run");
        // Commits (1, 8, 32 writers on 1 and 4 shards), three bulk shapes, recovery, realistic
        // (1 and 4 shards, and 4 shards on every core against one thread).
        let kernel_rows = 2 * (1 + WRITER_COUNTS.len()) + 3 + 2 + 3;
        let raft_rows = 2;
        assert_eq!(
            rows.len(),
            2 + WRITER_COUNTS.len() + config.bulk_payloads.len() + 1 + kernel_rows + raft_rows
        );
        let printed = table(&rows);
        assert!(printed.contains("SharedWal") && printed.contains("recovery"), "{printed}");
        assert!(printed.contains("Kernel::put") && printed.contains("Kernel::open"), "{printed}");
        let left: Vec<_> = std::fs::read_dir(parent.path()).expect("list").collect();
        assert!(left.is_empty(), "the scratch directory is removed");
    }

    #[test]
    fn recovery_against_size_prints_every_multiple_and_both_ratios() {
        let parent = tempfile::tempdir().expect("tempdir");
        let (mut config, _) =
            parse(["--dir".to_string(), parent.path().display().to_string()]).expect("arguments");
        config.size_base_bytes = 1 << 20;
        config.size_runs = 1;
        config.footprint_bytes = 1 << 20;
        let section = run_sections(&config).expect("run");
        for multiple in ["1x", "2x", "4x", "8x"] {
            assert!(section.contains(&format!("  {multiple} = ")), "{section}");
        }
        assert!(section.contains("8x / 1x recovery time: with checkpoints"), "{section}");
        assert!(section.contains("empty store on disk") && section.contains("live"), "{section}");
        assert!(section.contains("bulk-load memory") && section.contains("peak RSS"), "{section}");
        let left: Vec<_> = std::fs::read_dir(parent.path()).expect("list").collect();
        assert!(left.is_empty(), "the scratch directory is removed");
    }

    #[test]
    fn arguments_are_checked() {
        assert!(parse(["--bogus".to_string()]).is_err());
        assert!(parse(["--dir".to_string()]).is_err());
        let (config, quick) = parse(Vec::<String>::new()).expect("no arguments");
        assert!(!quick && config.recovery_bytes == 256 << 20);
    }
}
