//! Sweeping many seeds on all cores, with progress and a summary; which seeds a shard holds
//! (`--shard`, `--shard-from-env`) and the command that replays one of them.
//!
//! Each seed runs single-threaded and deterministically on one worker thread; threads only
//! decide which seed runs where. The summary is a sum over seeds and so does not depend on the
//! thread count, except for the throughput figures; `seeds_run` is exactly the seeds whose
//! reports were summed, whatever order they finished in.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use stormhold::env::sim::SimStats;

use crate::config::{FaultClass, RunConfig, WorkloadKind};
use crate::cpu_time;
use crate::runner::{self, RunReport, Violation, ViolationKind};
use crate::seeds::{self, SeedSpan};

/// Parses a shard `I/N` (`0 <= I < N`).
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (index, count) = text.split_once('/').ok_or_else(|| format!("{text:?} is not I/N"))?;
    let index: u64 = index.trim().parse().map_err(|e| format!("bad shard index {index:?}: {e}"))?;
    let count: u64 = count.trim().parse().map_err(|e| format!("bad shard count {count:?}: {e}"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {index}/{count}: need 0 <= I < N"));
    }
    Ok((index, count))
}

/// The shard of `--shard-from-env VAR/N`: index from the variable `VAR` (as `lookup` reads
/// it), count `N`. Errors name the variable and what it held.
pub fn shard_from_env(spec: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<(u64, u64), String> {
    let (var, count) =
        spec.rsplit_once('/').ok_or_else(|| format!("--shard-from-env {spec:?}: expected VAR/N"))?;
    if var.is_empty() {
        return Err(format!("--shard-from-env {spec:?}: no variable name before '/'"));
    }
    let index = lookup(var).ok_or_else(|| format!("--shard-from-env {spec}: {var} is not set"))?;
    parse_shard(&format!("{}/{count}", index.trim()))
        .map_err(|e| format!("--shard-from-env {spec}: {var}={index:?}: {e}"))
}

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// The seeds, end exclusive.
    pub seeds: Range<u64>,
    /// Worker threads (at least 1).
    pub jobs: usize,
    /// The workload of every seed.
    pub workload: WorkloadKind,
    /// Chaos-phase operations per seed.
    pub ops: u64,
    /// If set, exactly these fault classes (else each seed's swarm mix).
    pub faults: Option<Vec<FaultClass>>,
    /// Run only the seeds of shard `index` of `count` (seed % count == index).
    pub shard: (u64, u64),
    /// Stop starting new seeds after this much real time.
    pub time_limit: Option<Duration>,
    /// Run every Nth seed twice and compare trace hashes.
    pub check_determinism_every: Option<u64>,
    /// `--set key=value` overrides for every seed. The CLI checks them on the first seed; one
    /// that does not fit some other seed's options is skipped for that seed.
    pub sets: Vec<String>,
}

impl SweepOptions {
    /// Whether `seed` belongs to this sweep's shard.
    pub fn in_shard(&self, seed: u64) -> bool {
        let (index, count) = self.shard;
        seed % count.max(1) == index
    }

    /// How many seeds of the range belong to the shard.
    pub fn seed_count(&self) -> u64 {
        self.seeds.clone().filter(|&seed| self.in_shard(seed)).count() as u64
    }

    /// The configuration of one seed of the sweep.
    pub fn config(&self, seed: u64) -> RunConfig {
        let mut config = RunConfig::from_seed(seed, self.workload, self.ops);
        if let Some(classes) = &self.faults {
            config.restrict_faults(classes);
        }
        for assignment in &self.sets {
            let _skipped_if_unfit = config.set(assignment);
        }
        config
    }

    /// The command that replays one seed of the sweep.
    pub fn replay_command(&self, seed: u64) -> String {
        replay_command(&self.config(seed), self.faults.as_deref(), &self.sets)
    }
}

/// The `stormhold-sim run` command that replays `config`, given the `--faults` and `--set`
/// options it was made with.
pub fn replay_command(config: &RunConfig, faults: Option<&[FaultClass]>, sets: &[String]) -> String {
    let mut command = format!(
        "cargo run --release -p stormhold-sim -- run --seed {} --ops {} --workload {}",
        config.seed, config.ops, config.workload
    );
    if let Some(classes) = faults {
        let names: Vec<&str> = classes.iter().map(|c| c.name()).collect();
        let names = if names.is_empty() { "none".to_owned() } else { names.join(",") };
        command.push_str(&format!(" --faults {names}"));
    }
    for assignment in sets {
        command.push_str(&format!(" --set {}", shell_word(assignment)));
    }
    command
}

/// `text` as one POSIX shell word: bare when it holds only safe characters, else single-quoted.
fn shell_word(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_.=,:/+-@%".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The sums of a sweep.
#[derive(Clone, Debug, Default)]
pub struct SweepSummary {
    /// Seeds run.
    pub seeds: u64,
    /// Workload operations.
    pub ops: u64,
    /// Crash recoveries checked.
    pub recoveries: u64,
    /// Faults injected (crashes apart).
    pub faults: u64,
    /// Simulator counters, summed.
    pub sim: SimStats,
    /// Seeds with each fault class switched on.
    pub seeds_with_class: Vec<(FaultClass, u64)>,
    /// Failing seeds with their first violation, by seed.
    pub failures: Vec<(u64, Violation)>,
    /// Seeds whose second run gave another trace hash.
    pub nondeterministic: Vec<u64>,
    /// Seeds run twice for the determinism check.
    pub determinism_checked: u64,
    /// Crash images recovered and checked.
    pub images_explored: u64,
    /// Operations begun while a checkpoint was in flight.
    pub ops_beside_checkpoint: u64,
    /// Restarts that struck while a checkpoint was in flight.
    pub restarts_mid_checkpoint: u64,
    /// Undetectable losses after media damage (not violations).
    pub undetectable: u64,
    /// Honest data-loss reports after media damage (the store was wiped and the run went on).
    pub data_loss_detected: u64,
    /// Whether the time limit stopped the sweep early.
    pub stopped_by_time_limit: bool,
    /// Virtual time covered, in nanoseconds.
    pub simulated_ns: u64,
    /// Real time taken.
    pub elapsed: Duration,
    /// CPU time the process used during the sweep, all worker threads together, determinism
    /// re-runs included, in seconds (0 where the platform does not tell; see `cpu_time`).
    pub cpu_seconds: f64,
    /// Exactly the seeds that ran (filled in when the sweep ends).
    pub seeds_run: Vec<SeedSpan>,
}

fn add_stats(total: &mut SimStats, one: &SimStats) {
    total.calls += one.calls;
    total.crashes += one.crashes;
    total.process_crashes += one.process_crashes;
    total.targeted_media += one.targeted_media;
    total.io_errors += one.io_errors;
    total.short_ios += one.short_ios;
    total.sync_failures += one.sync_failures;
    total.storage_full += one.storage_full;
    total.bit_rot += one.bit_rot;
    total.misdirected_writes += one.misdirected_writes;
    total.bad_sectors += one.bad_sectors;
    total.bad_sector_reads += one.bad_sector_reads;
    total.clock_jumps += one.clock_jumps;
    total.slow_ios += one.slow_ios;
    total.writes_lost += one.writes_lost;
    total.writes_torn += one.writes_torn;
    total.dir_ops_lost += one.dir_ops_lost;
    total.crash_images += one.crash_images;
}

impl SweepSummary {
    fn add(&mut self, report: &RunReport) {
        self.seeds += 1;
        self.ops += report.ops;
        self.recoveries += report.recoveries;
        self.images_explored += report.images_explored;
        self.undetectable += report.undetectable;
        self.ops_beside_checkpoint += report.ops_beside_checkpoint;
        self.restarts_mid_checkpoint += report.restarts_mid_checkpoint;
        self.data_loss_detected += report.data_loss_detected;
        self.faults += report.faults();
        add_stats(&mut self.sim, &report.sim);
        self.simulated_ns = self.simulated_ns.saturating_add(report.simulated_ns);
        for class in report.config.enabled_classes() {
            match self.seeds_with_class.iter_mut().find(|(c, _)| *c == class) {
                Some((_, count)) => *count += 1,
                None => self.seeds_with_class.push((class, 1)),
            }
        }
        if let Some(violation) = &report.violation {
            self.failures.push((report.config.seed, violation.clone()));
        }
    }

    /// Violations counted by kind, in kind order.
    pub fn violations_by_kind(&self) -> Vec<(ViolationKind, u64)> {
        let mut counts: Vec<(ViolationKind, u64)> = Vec::new();
        for (_, violation) in &self.failures {
            match counts.iter_mut().find(|(kind, _)| *kind == violation.kind) {
                Some((_, count)) => *count += 1,
                None => counts.push((violation.kind, 1)),
            }
        }
        counts.sort();
        counts
    }

    /// Seeds per real second.
    pub fn seeds_per_second(&self) -> f64 {
        self.seeds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a worker sends back for one seed.
enum SeedResult {
    /// The time limit passed before the seed started.
    Skipped,
    /// The seed ran; `deterministic` is set when it ran twice.
    Ran { report: Box<RunReport>, deterministic: Option<bool> },
}

fn run_seed(options: &SweepOptions, seed: u64) -> SeedResult {
    let config = options.config(seed);
    let report = runner::run(&config, None);
    let check = options
        .check_determinism_every
        .is_some_and(|every| (seed - options.seeds.start).is_multiple_of(every.max(1)));
    let deterministic = check.then(|| runner::run(&config, None).trace_hash == report.trace_hash);
    SeedResult::Ran { report: Box::new(report), deterministic }
}

/// Runs every seed of `options`; `progress` is called after each seed with the summary so far
/// and the number of seeds in the shard (it decides itself how often to draw).
pub fn sweep(options: &SweepOptions, mut progress: impl FnMut(&SweepSummary, u64)) -> SweepSummary {
    let started = Instant::now();
    let cpu_started = cpu_time::process_cpu_seconds();
    let next = AtomicU64::new(options.seeds.start);
    let total = options.seed_count();
    let mut summary = SweepSummary::default();
    let mut ran: Vec<u64> = Vec::new();
    let (sender, receiver) = mpsc::channel::<SeedResult>();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= options.seeds.end {
                        break;
                    }
                    if !options.in_shard(seed) {
                        continue;
                    }
                    if options.time_limit.is_some_and(|limit| started.elapsed() >= limit) {
                        let _ = sender.send(SeedResult::Skipped);
                        continue;
                    }
                    if sender.send(run_seed(options, seed)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for result in receiver {
            let report = match result {
                SeedResult::Skipped => {
                    summary.stopped_by_time_limit = true;
                    continue;
                }
                SeedResult::Ran { report, deterministic } => {
                    if let Some(same) = deterministic {
                        summary.determinism_checked += 1;
                        if !same {
                            summary.nondeterministic.push(report.config.seed);
                        }
                    }
                    report
                }
            };
            summary.add(&report);
            ran.push(report.config.seed);
            summary.elapsed = started.elapsed();
            progress(&summary, total);
        }
    });
    ran.sort_unstable();
    summary.seeds_run = seeds::compress(&ran);
    summary.failures.sort_by_key(|(seed, _)| *seed);
    summary.nondeterministic.sort();
    summary.seeds_with_class.sort();
    summary.elapsed = started.elapsed();
    summary.cpu_seconds = match (cpu_started, cpu_time::process_cpu_seconds()) {
        (Some(start), Some(end)) => (end - start).max(0.0),
        _ => 0.0,
    };
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_from_env_reads_the_index_and_names_the_variable_when_it_cannot() {
        fn env(value: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
            move |name| (name == "JOB_COMPLETION_INDEX").then_some(value).flatten().map(str::to_owned)
        }
        assert_eq!(shard_from_env("JOB_COMPLETION_INDEX/4", env(Some("3"))), Ok((3, 4)));
        assert_eq!(shard_from_env("JOB_COMPLETION_INDEX/4", env(Some(" 0\n"))), Ok((0, 4)));
        let unset = shard_from_env("JOB_COMPLETION_INDEX/4", env(None)).unwrap_err();
        assert!(unset.contains("JOB_COMPLETION_INDEX is not set"), "{unset}");
        let too_big = shard_from_env("JOB_COMPLETION_INDEX/4", env(Some("4"))).unwrap_err();
        assert!(
            too_big.contains("JOB_COMPLETION_INDEX=\"4\"") && too_big.contains("0 <= I < N"),
            "{too_big}"
        );
        assert!(
            shard_from_env("JOB_COMPLETION_INDEX/4", env(Some("x"))).unwrap_err().contains("bad shard index")
        );
        assert!(shard_from_env("JOB_COMPLETION_INDEX", env(Some("1"))).unwrap_err().contains("VAR/N"));
        assert!(shard_from_env("/4", env(Some("1"))).unwrap_err().contains("no variable name"));
    }

    #[test]
    fn replay_command_carries_faults_and_sets_quoted_for_the_shell() {
        let options = SweepOptions {
            seeds: 0..10,
            jobs: 1,
            workload: "toy".parse().expect("the toy workload"),
            ops: 40,
            faults: Some(vec![FaultClass::Crash, FaultClass::Eio]),
            shard: (0, 1),
            time_limit: None,
            check_determinism_every: None,
            sets: vec!["images_max=3".into(), "note=a b's".into()],
        };
        assert_eq!(
            options.replay_command(7),
            "cargo run --release -p stormhold-sim -- run --seed 7 --ops 40 --workload toy --faults crash,eio \
             --set images_max=3 --set 'note=a b'\\''s'"
        );
    }
}
