//! Measuring: budgets (a count or a duration, whichever ends first), rates, the writer-thread
//! runner, scratch directories and the result table.

use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Errors of a measurement; the benchmark stops at the first one.
pub type BenchError = Box<dyn Error + Send + Sync>;

/// How long one measurement may run: until `count_max` operations or `duration`, whichever
/// comes first.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Stop after this many operations.
    pub count_max: u64,
    /// Stop once this much time has passed.
    pub duration: Duration,
}

/// Operations (or bytes) done in an elapsed time.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// What was counted (operations or bytes).
    pub amount: f64,
    /// How long it took.
    pub elapsed: Duration,
    /// The unit of the rate as printed.
    pub unit: Unit,
}

/// How a rate is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Operations per second.
    PerSecond,
    /// MiB per second (the amount is bytes).
    MibPerSecond,
}

impl Rate {
    /// `amount` per second.
    pub fn per_second(&self) -> f64 {
        self.amount / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn show(&self) -> String {
        match self.unit {
            Unit::PerSecond => format!("{}/s", thousands(self.per_second())),
            Unit::MibPerSecond => format!("{:.0} MiB/s", self.per_second() / (1024.0 * 1024.0)),
        }
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Rate {
    /// Nothing yet, in `unit`.
    pub fn zero(unit: Unit) -> Self {
        Rate { amount: 0.0, elapsed: Duration::ZERO, unit }
    }

    /// Adds the amount and the time of `other`.
    pub fn add(&mut self, other: Rate) {
        debug_assert_eq!(self.unit, other.unit);
        self.amount += other.amount;
        self.elapsed += other.elapsed;
    }
}

/// One side of a comparison, measured in slices.
pub trait Contender {
    /// Runs one slice of the measurement within `budget`.
    fn slice(&mut self, budget: Budget) -> Result<Rate, BenchError>;
}

impl<F: FnMut(Budget) -> Result<Rate, BenchError>> Contender for F {
    fn slice(&mut self, budget: Budget) -> Result<Rate, BenchError> {
        self(budget)
    }
}

/// Measures the contenders in turn, `rounds` times each, splitting `budget` (per contender)
/// over the rounds, and sums each one's slices. Interleaving makes a workload and its baseline
/// share whatever the disk does meanwhile (a virtual disk's throughput drifts by multiples).
pub fn interleave(
    rounds: u32,
    budget: Budget,
    contenders: &mut [&mut dyn Contender],
) -> Result<Vec<Rate>, BenchError> {
    let rounds = rounds.max(1);
    let slice = Budget {
        count_max: budget.count_max.div_ceil(u64::from(rounds)),
        duration: budget.duration / rounds,
    };
    let mut totals: Vec<Option<Rate>> = vec![None; contenders.len()];
    for _ in 0..rounds {
        for (contender, total) in contenders.iter_mut().zip(&mut totals) {
            let rate = contender.slice(slice)?;
            total.get_or_insert(Rate::zero(rate.unit)).add(rate);
        }
    }
    Ok(totals.into_iter().map(|t| t.unwrap_or(Rate::zero(Unit::PerSecond))).collect())
}

/// Runs `op` until the budget ends; returns how many times it ran and for how long.
pub fn timed(
    budget: Budget,
    unit: Unit,
    mut op: impl FnMut() -> Result<(), BenchError>,
) -> Result<Rate, BenchError> {
    let start = Instant::now();
    let mut count = 0;
    while count < budget.count_max && start.elapsed() < budget.duration {
        op()?;
        count += 1;
    }
    Ok(Rate { amount: count as f64, elapsed: start.elapsed(), unit })
}

/// Runs `commit` on `threads` threads at once until the budget ends (counted over all of
/// them) and returns the total rate.
pub fn run_writers(
    threads: usize,
    budget: Budget,
    commit: impl Fn() -> Result<(), BenchError> + Sync,
) -> Result<Rate, BenchError> {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let start = Instant::now();
    let writer = || -> Result<(), BenchError> {
        while !stop.load(Ordering::Relaxed) {
            commit()?;
            let done = count.fetch_add(1, Ordering::Relaxed) + 1;
            if done >= budget.count_max || start.elapsed() >= budget.duration {
                stop.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    };
    let results: Vec<Result<(), BenchError>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(writer)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a writer thread panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(Rate { amount: count.load(Ordering::Relaxed) as f64, elapsed, unit: Unit::PerSecond })
}

/// A directory for one measurement, removed (with everything in it) when dropped.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates `parent/name` (which must not exist).
    pub fn new(parent: &Path, name: &str) -> Result<Self, BenchError> {
        let path = parent.join(name);
        fs::create_dir(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: the enclosing temporary directory is removed at exit anyway.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One line of the result table: a workload and the raw baseline measured next to it.
#[derive(Clone, Debug)]
pub struct Row {
    /// What the kernel did.
    pub workload: String,
    /// Its rate.
    pub rate: Rate,
    /// The raw baseline's name.
    pub baseline: String,
    /// The baseline's rate, measured in the same run.
    pub baseline_rate: Rate,
}

impl Row {
    /// The workload's rate over the baseline's.
    pub fn ratio(&self) -> f64 {
        self.rate.per_second() / self.baseline_rate.per_second().max(1e-9)
    }
}

/// The table: workload | rate | baseline | ratio.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            [
                row.workload.clone(),
                row.rate.show(),
                format!("{}: {}", row.baseline, row.baseline_rate.show()),
                format!("{:.2}x", row.ratio()),
            ]
        })
        .collect();
    let header = ["workload", "rate", "baseline (same run)", "ratio"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String; 4]| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "| {} |", padded.join(" | ").trim_end());
    };
    line(&header);
    line(&widths.map(|w| "-".repeat(w)));
    for cells in &cells {
        line(cells);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
