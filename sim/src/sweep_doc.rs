//! The machine-readable record of a sweep: what `sweep --json` writes and `merge` reads and
//! writes, and the human summary both print from it.
//!
//! The field names are a contract with scripts and batch pipelines: renaming one is a schema
//! change and bumps [`SCHEMA`]; the insta snapshot in `sim/tests/sweep_json.rs` pins them.
//! The README section "Sweeping on a cluster" describes each field.
//!
//! Invariants of a document that [`SweepDocument::load`] accepts: its schema is [`SCHEMA`];
//! every seed of `seeds_run` lies in `seeds` and in `shard`; `counters.seeds` is the number of
//! seeds in `seeds_run`; every failure's seed is one of them. `complete` says whether
//! `seeds_run` is the whole shard of the range.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::FaultClass;
use crate::cpu_time;
use crate::runner::ViolationKind;
use crate::seeds::{self, SeedSpan};
use crate::sweep::{SweepOptions, SweepSummary};

/// The schema name and version every document carries.
pub const SCHEMA: &str = "stormhold-sim/sweep/v1";

/// Exit code of a sweep that stopped early and skipped seeds (`EX_TEMPFAIL`: run it again).
pub const EXIT_SEEDS_SKIPPED: u8 = 75;

/// How many failing seeds the human summary prints (with their replay commands); the JSON
/// document lists every one.
pub const FAILURES_PRINTED: usize = 20;

/// What the two media-damage rows of the summary table mean, printed under the table.
pub const COUNTER_LEGEND: &str = concat!(
    "  undetectable damage: media damage no single-copy format can tell from a torn write (rot in\n",
    "    the very last record of a log), so recovery lost the last synced batch of commits without\n",
    "    an error; counted, not a violation (a better design drives it to zero)\n",
    "  data loss reported: recovery refused with a data-loss error after the simulator really\n",
    "    destroyed durable bytes (an honest error; the store was wiped and the run went on)\n",
    "  ops beside a checkpoint: operations begun while a checkpoint was frozen and not yet\n",
    "    published (its writing overlaps commits); restarts mid-checkpoint: crashes that struck then\n",
);

/// One sweep, or several merged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepDocument {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The build that ran the seeds.
    pub tool: ToolVersion,
    /// The workload's name, as `--workload` takes it.
    pub workload: String,
    /// The options that decide what each seed does.
    pub options: SweepFlags,
    /// The seed range asked for, end exclusive.
    pub seeds: SeedRange,
    /// The shard asked for (`0/1` for a merged document).
    pub shard: Shard,
    /// How many sweep pieces this document sums (1 for a sweep).
    pub pieces: u64,
    /// Exactly the seeds that ran.
    pub seeds_run: Vec<SeedSpan>,
    /// Whether every seed of the shard of the range ran (false when a time limit stopped it).
    pub complete: bool,
    /// The counters of the summary table, summed over the seeds that ran.
    pub counters: Counters,
    /// Seeds that ran with each fault class switched on, by `--faults` name.
    pub seeds_with_class: BTreeMap<String, u64>,
    /// Failing seeds counted by violation kind.
    pub violations_by_kind: BTreeMap<ViolationKind, u64>,
    /// Every failing seed, in seed order, with its first violation.
    pub failures: Vec<Failure>,
    /// The trace-hash determinism check (`--check-determinism-every`).
    pub determinism: Determinism,
    /// Real time (not reproducible; tools comparing documents ignore it).
    pub timing: Timing,
    /// The exit code the sweep (or merge) returned for this document.
    pub exit_code: u8,
}

/// Which build ran the seeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVersion {
    /// `stormhold-sim`.
    pub name: String,
    /// The crate version.
    pub version: String,
    /// The git commit built from, `-dirty` appended when the code differed from it; null when
    /// built outside a checkout.
    pub commit: Option<String>,
}

impl ToolVersion {
    /// This build.
    pub fn current() -> Self {
        ToolVersion {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: option_env!("STORMHOLD_SIM_COMMIT").map(str::to_owned),
        }
    }
}

impl fmt::Display for ToolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let commit = self.commit.as_deref().unwrap_or("unknown");
        write!(f, "{} {} (commit {commit})", self.name, self.version)
    }
}

/// The sweep options that decide what each seed does (thread count and time limit do not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepFlags {
    /// `--ops`: chaos-phase operations per seed.
    pub ops: u64,
    /// `--faults` as class names, or null for each seed's swarm mix.
    pub faults: Option<Vec<String>>,
    /// `--set` overrides in order (`--images-max N` appears as `images_max=N`).
    pub sets: Vec<String>,
    /// `--check-determinism-every`, if given.
    pub check_determinism_every: Option<u64>,
}

/// A seed range, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    /// The first seed.
    pub start: u64,
    /// One past the last seed.
    pub end: u64,
}

impl SeedRange {
    /// As a `Range`.
    pub fn range(&self) -> Range<u64> {
        self.start..self.end
    }
}

/// Shard `index` of `count`: the seeds with `seed % count == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The index, below `count`.
    pub index: u64,
    /// The number of shards (at least 1).
    pub count: u64,
}

/// The counters of the summary table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // Each field is the table row of the same name.
pub struct Counters {
    pub seeds: u64,
    pub ops: u64,
    /// Faults injected, crashes apart.
    pub faults: u64,
    pub crashes: u64,
    /// Crashes of the process alone, which keep the page cache (also in `crashes`).
    #[serde(default)]
    pub process_crashes: u64,
    pub recoveries_checked: u64,
    pub env_calls: u64,
    pub eio: u64,
    pub short_io: u64,
    pub sync_failures: u64,
    pub enospc: u64,
    pub bit_rot: u64,
    pub misdirected_writes: u64,
    pub bad_sectors: u64,
    pub bad_sector_reads: u64,
    /// Media faults aimed at a critical region (also in their own kind's row).
    #[serde(default)]
    pub targeted_media: u64,
    pub clock_jumps: u64,
    pub slow_io: u64,
    pub torn_writes: u64,
    pub lost_writes: u64,
    pub lost_dir_ops: u64,
    /// Crashes into an enumerated crash image (also in `crashes`).
    pub crash_image_crashes: u64,
    pub crash_images_checked: u64,
    pub undetectable_damage: u64,
    pub data_loss_reported: u64,
    /// Operations begun while a checkpoint was in flight (frozen, not yet published).
    #[serde(default)]
    pub ops_beside_checkpoint: u64,
    /// Restarts that struck while a checkpoint was in flight.
    #[serde(default)]
    pub restarts_mid_checkpoint: u64,
    /// Virtual time covered, nanoseconds.
    pub simulated_ns: u64,
}

/// One failing seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The kind of its first violation.
    pub kind: ViolationKind,
    /// The workload operation it was seen at (1-based).
    pub op_index: u64,
    /// Expected versus got, in words.
    pub detail: String,
    /// The command that replays it (at the commit of `tool`).
    pub replay: String,
}

/// The trace-hash determinism check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Determinism {
    /// Seeds run twice.
    pub checked: u64,
    /// Seeds whose two runs gave different trace hashes.
    pub diverged: Vec<u64>,
}

/// Real time, CPU time and the speed figures made of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds the sweep took; for a merged document, the sum over its pieces.
    pub elapsed_seconds: f64,
    /// CPU seconds the sweep used, all cores together; for a merged document, the sum over
    /// its pieces (0: not measured, or a document older than the field).
    #[serde(default)]
    pub cpu_seconds: f64,
    /// Crash-and-recover cycles (recoveries checked against the model) per CPU minute.
    #[serde(default)]
    pub cycles_per_core_minute: f64,
    /// Seeds per CPU second.
    #[serde(default)]
    pub seeds_per_core_second: f64,
}

impl Timing {
    /// The timing of a sweep of `counters` that took `elapsed_seconds` and `cpu_seconds`,
    /// with its speed figures.
    pub fn new(counters: &Counters, elapsed_seconds: f64, cpu_seconds: f64) -> Self {
        Self {
            elapsed_seconds,
            cpu_seconds,
            cycles_per_core_minute: cpu_time::rate(counters.recoveries_checked, cpu_seconds, 60.0),
            seeds_per_core_second: cpu_time::rate(counters.seeds, cpu_seconds, 1.0),
        }
    }
}

impl Counters {
    fn from_summary(summary: &SweepSummary) -> Self {
        let s = &summary.sim;
        Counters {
            seeds: summary.seeds,
            ops: summary.ops,
            faults: summary.faults,
            crashes: s.crashes,
            process_crashes: s.process_crashes,
            recoveries_checked: summary.recoveries,
            env_calls: s.calls,
            eio: s.io_errors,
            short_io: s.short_ios,
            sync_failures: s.sync_failures,
            enospc: s.storage_full,
            bit_rot: s.bit_rot,
            misdirected_writes: s.misdirected_writes,
            bad_sectors: s.bad_sectors,
            bad_sector_reads: s.bad_sector_reads,
            targeted_media: s.targeted_media,
            clock_jumps: s.clock_jumps,
            slow_io: s.slow_ios,
            torn_writes: s.writes_torn,
            lost_writes: s.writes_lost,
            lost_dir_ops: s.dir_ops_lost,
            crash_image_crashes: s.crash_images,
            crash_images_checked: summary.images_explored,
            undetectable_damage: summary.undetectable,
            data_loss_reported: summary.data_loss_detected,
            ops_beside_checkpoint: summary.ops_beside_checkpoint,
            restarts_mid_checkpoint: summary.restarts_mid_checkpoint,
            simulated_ns: summary.simulated_ns,
        }
    }

    /// The table rows, in print order.
    fn rows(&self) -> [(&'static str, u64); 22] {
        [
            ("crashes", self.crashes),
            ("  of the process only", self.process_crashes),
            ("recoveries checked", self.recoveries_checked),
            ("env calls", self.env_calls),
            ("eio", self.eio),
            ("short io", self.short_io),
            ("sync failures", self.sync_failures),
            ("enospc", self.enospc),
            ("bit rot", self.bit_rot),
            ("misdirected writes", self.misdirected_writes),
            ("bad sectors", self.bad_sectors),
            ("  targeted media", self.targeted_media),
            ("clock jumps", self.clock_jumps),
            ("slow io", self.slow_io),
            ("torn writes", self.torn_writes),
            ("lost writes", self.lost_writes),
            ("lost dir ops", self.lost_dir_ops),
            ("crash images checked", self.crash_images_checked),
            ("undetectable damage", self.undetectable_damage),
            ("data loss reported", self.data_loss_reported),
            ("ops beside a checkpoint", self.ops_beside_checkpoint),
            ("restarts mid-checkpoint", self.restarts_mid_checkpoint),
        ]
    }
}

impl SweepDocument {
    /// The document of a finished sweep of this build.
    pub fn from_sweep(summary: &SweepSummary, options: &SweepOptions) -> Self {
        let failures = summary
            .failures
            .iter()
            .map(|(seed, violation)| Failure {
                seed: *seed,
                kind: violation.kind,
                op_index: violation.op_index,
                detail: violation.detail.clone(),
                replay: options.replay_command(*seed),
            })
            .collect();
        let expected = seeds::shard_spans(&options.seeds, options.shard);
        let mut document = SweepDocument {
            schema: SCHEMA.to_owned(),
            tool: ToolVersion::current(),
            workload: options.workload.to_string(),
            options: SweepFlags {
                ops: options.ops,
                faults: options.faults.as_ref().map(|c| c.iter().map(|c| c.name().to_owned()).collect()),
                sets: options.sets.clone(),
                check_determinism_every: options.check_determinism_every,
            },
            seeds: SeedRange { start: options.seeds.start, end: options.seeds.end },
            shard: Shard { index: options.shard.0, count: options.shard.1 },
            pieces: 1,
            complete: summary.seeds == expected.iter().map(SeedSpan::len).sum::<u64>(),
            seeds_run: summary.seeds_run.clone(),
            counters: Counters::from_summary(summary),
            seeds_with_class: summary
                .seeds_with_class
                .iter()
                .map(|(c, n)| (c.name().to_owned(), *n))
                .collect(),
            violations_by_kind: summary.violations_by_kind().into_iter().collect(),
            failures,
            determinism: Determinism {
                checked: summary.determinism_checked,
                diverged: summary.nondeterministic.clone(),
            },
            timing: Timing::new(
                &Counters::from_summary(summary),
                summary.elapsed.as_secs_f64(),
                summary.cpu_seconds,
            ),
            exit_code: 0,
        };
        document.exit_code = document.computed_exit_code();
        document
    }

    /// The exit code this outcome calls for: the worst violation (1 correctness, 2 liveness,
    /// 3 panic or nondeterminism), else [`EXIT_SEEDS_SKIPPED`] if seeds were skipped, else 0.
    pub fn computed_exit_code(&self) -> u8 {
        let worst = self.failures.iter().map(|f| f.kind.exit_code()).max().unwrap_or(0) as u8;
        let worst = if self.determinism.diverged.is_empty() { worst } else { 3 };
        match worst {
            0 if !self.complete => EXIT_SEEDS_SKIPPED,
            code => code,
        }
    }

    /// Seeds of the shard of the range that did not run.
    pub fn seeds_skipped(&self) -> u64 {
        let expected: u64 = seeds::shard_spans(&self.seeds.range(), (self.shard.index, self.shard.count))
            .iter()
            .map(SeedSpan::len)
            .sum();
        expected.saturating_sub(self.counters.seeds)
    }

    /// The human summary `sweep` and `merge` print.
    pub fn render_summary(&self) -> String {
        let mut out = String::new();
        let c = &self.counters;
        let _ = writeln!(out, "{:<22} {:>12}", "fault / event", "count");
        for (name, count) in c.rows() {
            let _ = writeln!(out, "{name:<22} {count:>12}");
        }
        out.push_str(COUNTER_LEGEND);
        let mut classes: Vec<String> = FaultClass::ALL
            .iter()
            .filter_map(|class| {
                self.seeds_with_class.get(class.name()).map(|n| format!("{}={n}", class.name()))
            })
            .collect();
        let known = |name: &String| FaultClass::ALL.iter().any(|class| class.name() == name);
        classes.extend(
            self.seeds_with_class.iter().filter(|(name, _)| !known(name)).map(|(n, c)| format!("{n}={c}")),
        );
        let _ = writeln!(out, "seeds per fault class: {}", classes.join(" "));
        let speedup = c.simulated_ns as f64 / 1e9 / self.timing.elapsed_seconds.max(1e-9);
        let _ = writeln!(out, "simulated/real time: {speedup:.1}x");
        let kinds: Vec<String> =
            self.violations_by_kind.iter().map(|(kind, n)| format!("{kind:?}={n}")).collect();
        let kinds = if kinds.is_empty() { "none".to_owned() } else { kinds.join(" ") };
        let _ = writeln!(out, "violations by kind: {kinds}");
        if self.determinism.checked > 0 {
            let d = &self.determinism;
            let _ = writeln!(
                out,
                "determinism: {} seeds run twice, {} diverged {:?}",
                d.checked,
                d.diverged.len(),
                d.diverged
            );
        }
        self.render_coverage(&mut out);
        self.render_failures(&mut out);
        let _ = writeln!(
            out,
            "seeds: {} ops: {} crashes: {} faults: {} violations: {} seeds/s: {:.1} cycles/core-min: {:.0} seeds/core-s: {:.2}",
            c.seeds,
            c.ops,
            c.crashes,
            c.faults,
            self.failures.len(),
            c.seeds as f64 / self.timing.elapsed_seconds.max(1e-9),
            self.timing.cycles_per_core_minute,
            self.timing.seeds_per_core_second,
        );
        out
    }

    /// The first [`FAILURES_PRINTED`] failing seeds with their replay commands, then how many
    /// more there are (the JSON document lists every one).
    fn render_failures(&self, out: &mut String) {
        for failure in self.failures.iter().take(FAILURES_PRINTED) {
            let _ = writeln!(
                out,
                "FAILED seed {}: {:?} violation at op {}: {}",
                failure.seed, failure.kind, failure.op_index, failure.detail
            );
            let _ = writeln!(out, "  replay: {}", failure.replay);
        }
        let more = self.failures.len().saturating_sub(FAILURES_PRINTED);
        if more > 0 {
            let _ = writeln!(out, "... and {more} more failing seeds; the --json document lists them all");
        }
    }

    fn render_coverage(&self, out: &mut String) {
        let spans: Vec<String> = self.seeds_run.iter().take(8).map(SeedSpan::to_string).collect();
        let more = self.seeds_run.len().saturating_sub(spans.len());
        let more = if more > 0 { format!(" and {more} more spans") } else { String::new() };
        let _ = writeln!(
            out,
            "code: {}; workload {}; seeds {}..{} shard {}/{} in {} piece(s); ran: {}{more}",
            self.tool,
            self.workload,
            self.seeds.start,
            self.seeds.end,
            self.shard.index,
            self.shard.count,
            self.pieces,
            if spans.is_empty() { "none".to_owned() } else { spans.join(", ") }
        );
        if !self.complete {
            let skipped = self.seeds_skipped();
            let _ = writeln!(out, "time limit reached: {skipped} seeds not started were skipped (exit 75)");
        }
    }

    /// The document as pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads and checks a document.
    pub fn load(path: &Path) -> Result<Self, DocumentError> {
        let fail = |problem| DocumentError { path: path.to_owned(), problem };
        let text = std::fs::read_to_string(path).map_err(|e| fail(Problem::Read(e.to_string())))?;
        Self::parse(&text).map_err(fail)
    }

    /// Parses and checks a document's text.
    pub fn parse(text: &str) -> Result<Self, Problem> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(Problem::json)?;
        let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("(none)");
        if schema != SCHEMA {
            return Err(Problem::Schema(schema.to_owned()));
        }
        let document: SweepDocument = serde_json::from_str(text).map_err(Problem::json)?;
        document.check().map_err(Problem::Inconsistent)?;
        Ok(document)
    }

    fn check(&self) -> Result<(), String> {
        let Shard { index, count } = self.shard;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= index < count"));
        }
        let range = self.seeds.range();
        for span in &self.seeds_run {
            let inside = span.step > 0 && span.start >= range.start && span.end <= range.end;
            let strided = span.len() <= 1 || span.step % count == 0;
            if !inside || span.start % count != index || !strided {
                return Err(format!("seeds_run span {span} is not in seeds {range:?} shard {index}/{count}"));
            }
        }
        let ran: u64 = self.seeds_run.iter().map(SeedSpan::len).sum();
        if ran != self.counters.seeds {
            return Err(format!("seeds_run holds {ran} seeds but counters.seeds is {}", self.counters.seeds));
        }
        let held = |seed: u64| {
            self.seeds_run
                .iter()
                .any(|s| seed >= s.start && seed < s.end && (seed - s.start).is_multiple_of(s.step))
        };
        match self.failures.iter().find(|failure| !held(failure.seed)) {
            Some(failure) => Err(format!("failure of seed {} is not among seeds_run", failure.seed)),
            None => Ok(()),
        }
    }
}

/// A document that could not be read.
#[derive(Debug)]
pub struct DocumentError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a document.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The file could not be read.
    Read(String),
    /// Not JSON, or not this schema's shape.
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        detail: String,
    },
    /// Another schema (or none).
    Schema(String),
    /// Fields that contradict each other.
    Inconsistent(String),
}

impl Problem {
    fn json(error: serde_json::Error) -> Self {
        Problem::Json { line: error.line(), column: error.column(), detail: error.to_string() }
    }
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::Read(detail) => write!(f, "cannot read {path}: {detail}"),
            Problem::Json { line, column, detail } => {
                write!(f, "{path}:{line}:{column}: not a sweep document: {detail}")
            }
            Problem::Schema(found) => write!(f, "{path}: schema {found:?}, expected {SCHEMA:?}"),
            Problem::Inconsistent(detail) => write!(f, "{path}: inconsistent sweep document: {detail}"),
        }
    }
}

impl std::error::Error for DocumentError {}
