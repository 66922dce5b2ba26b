//! Sweeping many seeds on all cores, with progress and a summary.
//!
//! Each seed runs single-threaded and deterministically on one worker thread; threads only
//! decide which seed runs where. The summary is a sum over seeds and so does not depend on the
//! thread count, except for the throughput figures.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use stormhold::env::sim::SimStats;

use crate::config::{FaultClass, RunConfig, WorkloadKind};
use crate::runner::{self, RunReport, Violation, ViolationKind};

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
}

impl SweepSummary {
    fn add(&mut self, report: &RunReport) {
        self.seeds += 1;
        self.ops += report.ops;
        self.recoveries += report.recoveries;
        self.images_explored += report.images_explored;
        self.undetectable += report.undetectable;
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

/// Runs every seed of `options`; `progress` is called now and then with the summary so far.
pub fn sweep(options: &SweepOptions, mut progress: impl FnMut(&SweepSummary, u64)) -> SweepSummary {
    let started = Instant::now();
    let next = AtomicU64::new(options.seeds.start);
    let total = options.seed_count();
    let mut summary = SweepSummary::default();
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
        let mut last_progress = Instant::now();
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
            if last_progress.elapsed() >= Duration::from_secs(2) {
                summary.elapsed = started.elapsed();
                progress(&summary, total);
                last_progress = Instant::now();
            }
        }
    });
    summary.failures.sort_by_key(|(seed, _)| *seed);
    summary.nondeterministic.sort();
    summary.seeds_with_class.sort();
    summary.elapsed = started.elapsed();
    summary
}
