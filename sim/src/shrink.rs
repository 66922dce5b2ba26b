//! Shrinking a failing run to a smaller one that fails the same way.
//!
//! The run is replayed from its recorded fault schedule (and, where the workload records them,
//! its recorded operations), so removing an entry removes exactly that fault or operation. The
//! shrinker cuts, greedily and until nothing more helps: operations (recorded ones in chunks
//! from halves down to single operations, delta-debugging style; otherwise the operations after
//! the violation, then the count by halves), then chunks of the schedule the same way, then the
//! quiet phase and the workload's own crash rate. A step is kept only if the replay still ends
//! with the same kind of violation.
//!
//! Invariant: the result replays (config + schedule) to a violation of the original kind, and
//! every step only removes work, so the shrinker terminates within its run budget.

use stormhold::env::sim::FaultSchedule;

use crate::config::RunConfig;
use crate::runner::{self, RecordedOps, RunReport, ViolationKind};

/// Replays the shrinker may spend.
pub const SHRINK_RUNS_MAX: usize = 2_000;

/// A failing case, as small as the shrinker could make it.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smaller run.
    pub config: RunConfig,
    /// Its fault schedule.
    pub schedule: FaultSchedule,
    /// Its operations, where the workload records them.
    pub ops: Option<RecordedOps>,
    /// Its replay.
    pub report: RunReport,
    /// Replays spent.
    pub runs: usize,
}

struct Shrinker {
    kind: ViolationKind,
    best: Shrunk,
}

impl Shrinker {
    /// Replays a candidate; keeps it if it still fails the same way.
    fn try_keep(&mut self, config: RunConfig, schedule: FaultSchedule) -> bool {
        let ops = self.best.ops.clone();
        self.try_keep_ops(config, schedule, ops)
    }

    fn try_keep_ops(&mut self, config: RunConfig, schedule: FaultSchedule, ops: Option<RecordedOps>) -> bool {
        if self.best.runs >= SHRINK_RUNS_MAX {
            return false;
        }
        self.best.runs += 1;
        let report = runner::run_recorded(&config, Some(schedule.clone()), ops.clone());
        let same = report.violation.as_ref().is_some_and(|v| v.kind == self.kind);
        if same {
            let runs = self.best.runs;
            // Keep what the replay executed: operations past the violation are gone.
            let ops = report.recorded.clone().or(ops);
            self.best = Shrunk { config, schedule, ops, report, runs };
        }
        same
    }

    /// Delta debugging over a list: removes chunks from halves down to single items, keeping
    /// each removal that `try_without` accepts; `len` reads the list's current length.
    fn cut_chunks(
        &mut self,
        len: impl Fn(&Shrunk) -> usize,
        mut try_without: impl FnMut(&mut Self, std::ops::Range<usize>) -> bool,
    ) -> bool {
        let mut progress = false;
        let mut chunk = len(&self.best).div_ceil(2).max(1);
        loop {
            let mut start = 0;
            while start < len(&self.best) {
                let end = (start + chunk).min(len(&self.best));
                if try_without(self, start..end) {
                    progress = true;
                } else {
                    start += chunk;
                }
            }
            if chunk == 1 {
                return progress;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    /// Removes recorded operations, in chunks from halves down to single ones.
    fn cut_recorded_ops(&mut self) -> bool {
        self.cut_chunks(
            |best| best.ops.as_ref().map_or(0, RecordedOps::len),
            |this, range| {
                let Some(ops) = this.best.ops.as_ref() else { return false };
                let fewer = ops.without(range);
                let ops_max = this.best.config.ops.min(fewer.len() as u64);
                let config = RunConfig { ops: ops_max, ..this.best.config.clone() };
                this.try_keep_ops(config, this.best.schedule.clone(), Some(fewer))
            },
        )
    }

    fn cut_ops(&mut self) -> bool {
        if self.best.ops.is_some() {
            return self.cut_recorded_ops();
        }
        let mut progress = false;
        let failing_op = self.best.report.violation.as_ref().map_or(0, |v| v.op_index);
        if failing_op > 0 && failing_op < self.best.config.ops {
            let config = RunConfig { ops: failing_op, ..self.best.config.clone() };
            progress |= self.try_keep(config, self.best.schedule.clone());
        }
        while self.best.config.ops > 1 {
            let config = RunConfig { ops: self.best.config.ops / 2, ..self.best.config.clone() };
            if !self.try_keep(config, self.best.schedule.clone()) {
                break;
            }
            progress = true;
        }
        progress
    }

    fn cut_faults(&mut self) -> bool {
        self.cut_chunks(
            |best| best.schedule.faults.len(),
            |this, range| {
                let mut faults = this.best.schedule.faults.clone();
                faults.drain(range);
                this.try_keep(this.best.config.clone(), FaultSchedule { faults })
            },
        )
    }

    fn cut_knobs(&mut self) -> bool {
        let mut progress = false;
        if self.best.config.quiet_ops > 1 {
            let config = RunConfig { quiet_ops: 1, ..self.best.config.clone() };
            progress |= self.try_keep(config, self.best.schedule.clone());
        }
        if self.best.config.driver_crash_probability > 0.0 {
            let config = RunConfig { driver_crash_probability: 0.0, ..self.best.config.clone() };
            progress |= self.try_keep(config, self.best.schedule.clone());
        }
        progress
    }
}

/// Shrinks a failing run of `config`. `None` if the run does not fail.
pub fn shrink(config: &RunConfig) -> Option<Shrunk> {
    let report = runner::run(config, None);
    let kind = report.violation.as_ref()?.kind;
    let schedule = report.schedule.clone();
    let ops = report.recorded.clone();
    let best = Shrunk { config: config.clone(), schedule, ops, report, runs: 1 };
    let mut shrinker = Shrinker { kind, best };
    // Recorded schedules replay exactly; make sure this one does before cutting it.
    if !shrinker.try_keep(config.clone(), shrinker.best.schedule.clone()) {
        return Some(shrinker.best);
    }
    while shrinker.best.runs < SHRINK_RUNS_MAX {
        let progress = shrinker.cut_ops() | shrinker.cut_faults() | shrinker.cut_knobs();
        if !progress {
            break;
        }
    }
    Some(shrinker.best)
}
