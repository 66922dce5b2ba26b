//! Running one seed: build the simulated machine from the config, drive the workload, and
//! report what happened.
//!
//! Invariants: a run touches no real time, thread or OS randomness, so its report (the trace
//! hash included) is a pure function of its config and, when replaying, the fault schedule.
//! A panic anywhere in the run is caught and reported as a violation of its own kind.

use serde::{Deserialize, Serialize};
use std::panic::{self, AssertUnwindSafe};
use stormhold::env::sim::{FaultSchedule, SimEnv, SimStats, TRACE_EVENTS_MAX, TraceEvent};

use crate::aries_workload::AriesWorkload;
use crate::config::{RunConfig, WorkloadKind};
use crate::env_workload::EnvWorkload;
use crate::env_workload::ops::EnvOp;
use crate::kv::KvStore;
use crate::kv::stores::ckpt_store::{CkptBug, CkptStore};
use crate::kv::stores::kernel_store::{KernelStore, KernelStoreConfig, KernelStoreOptions};
use crate::kv::stores::toy::ToyStore;
use crate::kv::stores::wal_store::{WalStore, WalStoreConfig};
use crate::kv::workload::KvWorkload;
use crate::kv::workload::ops::KvOp;
use crate::raft_workload::RaftWorkload;
// The verdict types' old paths, kept for the sweep, the command line and the tests.
pub use crate::verdict::{Violation, ViolationKind};

/// The operations a run executed, per workload, so a replay does not depend on the code that
/// draws them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordedOps {
    /// Env workload operations.
    Env(Vec<EnvOp>),
    /// Key-value workload operations.
    Kv(Vec<KvOp>),
}

impl RecordedOps {
    /// How many operations.
    pub fn len(&self) -> usize {
        match self {
            RecordedOps::Env(ops) => ops.len(),
            RecordedOps::Kv(ops) => ops.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same recording without the operations in `range`.
    pub fn without(&self, range: std::ops::Range<usize>) -> RecordedOps {
        fn cut<T: Clone>(ops: &[T], range: std::ops::Range<usize>) -> Vec<T> {
            let mut ops = ops.to_vec();
            ops.drain(range);
            ops
        }
        match self {
            RecordedOps::Env(ops) => RecordedOps::Env(cut(ops, range)),
            RecordedOps::Kv(ops) => RecordedOps::Kv(cut(ops, range)),
        }
    }
}

/// What a workload reports back to the runner.
#[derive(Default)]
struct Outcome {
    ops: u64,
    recoveries: u64,
    undetectable: u64,
    data_loss_detected: u64,
    images_explored: u64,
    ops_beside_checkpoint: u64,
    restarts_mid_checkpoint: u64,
    recorded: Option<RecordedOps>,
    violation: Option<Violation>,
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The configuration it ran.
    pub config: RunConfig,
    /// Workload operations executed.
    pub ops: u64,
    /// Crash recoveries checked.
    pub recoveries: u64,
    /// Losses of the last durable group after media damage, which no single-copy format can
    /// detect (not violations).
    pub undetectable: u64,
    /// Times the store honestly reported data loss after real media damage (each time the
    /// workload wiped the store and went on).
    pub data_loss_detected: u64,
    /// Crash images recovered and checked at enumerated crash points.
    pub images_explored: u64,
    /// Operations begun while a checkpoint was in flight (stores with checkpoints).
    pub ops_beside_checkpoint: u64,
    /// Restarts that struck while a checkpoint was in flight.
    pub restarts_mid_checkpoint: u64,
    /// The operations executed, where the workload records them.
    pub recorded: Option<RecordedOps>,
    /// What the simulator did.
    pub sim: SimStats,
    /// The first broken promise, if any.
    pub violation: Option<Violation>,
    /// The hash of the whole event trace.
    pub trace_hash: u64,
    /// The last events, for a violation report.
    pub trace_tail: Vec<TraceEvent>,
    /// The fault decisions, for recording.
    pub schedule: FaultSchedule,
    /// Virtual time the run covered, in nanoseconds.
    pub simulated_ns: u64,
}

impl RunReport {
    /// 0 when no promise broke, else the violation's exit code.
    pub fn exit_code(&self) -> i32 {
        self.violation.as_ref().map_or(0, |v| v.kind.exit_code())
    }

    /// Faults injected, all classes together (crashes counted apart).
    pub fn faults(&self) -> u64 {
        let s = &self.sim;
        s.io_errors
            + s.short_ios
            + s.sync_failures
            + s.storage_full
            + s.bit_rot
            + s.misdirected_writes
            + s.bad_sectors
            + s.clock_jumps
            + s.slow_ios
            + s.writes_torn
            + s.writes_lost
            + s.dir_ops_lost
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

fn run_kv<S: KvStore>(mut workload: KvWorkload<S>, ops: Option<RecordedOps>) -> Outcome {
    if let Some(RecordedOps::Kv(ops)) = ops {
        workload = workload.replaying(ops);
    }
    let result = workload.run();
    Outcome {
        ops: workload.ops(),
        recoveries: workload.recoveries,
        undetectable: workload.undetectable,
        data_loss_detected: workload.data_loss_detected,
        images_explored: workload.images_explored,
        ops_beside_checkpoint: workload.ops_beside_checkpoint,
        restarts_mid_checkpoint: workload.restarts_mid_checkpoint,
        recorded: Some(RecordedOps::Kv(workload.recorded.clone())),
        violation: result.err(),
    }
}

/// Runs `config`, drawing faults from the seed, or taking them from `schedule` when given.
pub fn run(config: &RunConfig, schedule: Option<FaultSchedule>) -> RunReport {
    run_recorded(config, schedule, None)
}

/// Like [`run`], replaying the recorded operations `ops` when given (instead of drawing them).
pub fn run_recorded(
    config: &RunConfig,
    schedule: Option<FaultSchedule>,
    ops: Option<RecordedOps>,
) -> RunReport {
    run_with_env_recorded(config, machine(config, schedule), ops)
}

/// The simulated machine of `config`: drawing faults from the seed, or replaying `schedule`.
/// Panics on invalid fault options (a configuration is validated when it is built or `--set`).
pub fn machine(config: &RunConfig, schedule: Option<FaultSchedule>) -> SimEnv {
    let env = match schedule {
        Some(schedule) => SimEnv::replaying(config.seed, config.faults.clone(), schedule),
        None => SimEnv::new(config.seed, config.faults.clone()),
    };
    env.unwrap_or_else(|invalid| panic!("the configuration builds invalid fault options: {invalid}"))
}

/// Runs the workload of `config` on `env`. The model believes `config.faults`; a test of the
/// checker's power passes an `env` whose disk misbehaves beyond those options.
pub fn run_with_env(config: &RunConfig, env: SimEnv) -> RunReport {
    run_with_env_recorded(config, env, None)
}

fn run_with_env_recorded(config: &RunConfig, env: SimEnv, ops: Option<RecordedOps>) -> RunReport {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| match config.workload {
        WorkloadKind::Env => {
            let mut workload = EnvWorkload::new(env.clone(), config.clone());
            if let Some(RecordedOps::Env(ops)) = ops {
                workload = workload.replaying(ops);
            }
            let result = workload.run();
            Outcome {
                ops: workload.ops(),
                recoveries: workload.recoveries,
                images_explored: workload.images_explored,
                recorded: Some(RecordedOps::Env(workload.recorded.clone())),
                violation: result.err(),
                ..Outcome::default()
            }
        }
        WorkloadKind::Toy(bug) => run_kv(KvWorkload::<ToyStore>::new(env.clone(), config.clone(), bug), ops),
        WorkloadKind::Checkpoint => {
            run_kv(KvWorkload::<CkptStore>::new(env.clone(), config.clone(), CkptBug::None), ops)
        }
        WorkloadKind::CheckpointPlanted(bug) => {
            run_kv(KvWorkload::<CkptStore>::new(env.clone(), config.clone(), bug), ops)
        }
        WorkloadKind::Wal => {
            run_kv(KvWorkload::<WalStore>::new(env.clone(), config.clone(), WalStoreConfig::default()), ops)
        }
        WorkloadKind::Kernel(bug) => {
            let options = config.store.clone().unwrap_or_else(|| KernelStoreOptions::from_seed(config.seed));
            let store = KernelStoreConfig::from_options(&options, bug);
            run_kv(KvWorkload::<KernelStore>::new(env.clone(), config.clone(), store), ops)
        }
        WorkloadKind::Raft(bug) => {
            let mut workload = RaftWorkload::new(env.clone(), config.clone(), bug);
            let result = workload.run();
            let (ops, recoveries, undetectable, data_loss_detected) =
                (workload.ops, workload.recoveries, workload.undetectable, workload.data_loss_detected);
            let violation = result.err();
            Outcome { ops, recoveries, undetectable, data_loss_detected, violation, ..Outcome::default() }
        }
        WorkloadKind::Aries(bug) => {
            let mut workload = AriesWorkload::new(env.clone(), config.clone(), bug);
            let result = workload.run();
            let (ops, recoveries, undetectable, data_loss_detected) =
                (workload.ops, workload.recoveries, workload.undetectable, workload.data_loss_detected);
            let violation = result.err();
            Outcome { ops, recoveries, undetectable, data_loss_detected, violation, ..Outcome::default() }
        }
    }));
    let outcome = outcome.unwrap_or_else(|payload| {
        let detail = format!("panic: {}", panic_message(payload.as_ref()));
        Outcome {
            violation: Some(Violation { kind: ViolationKind::Panic, op_index: 0, detail }),
            ..Outcome::default()
        }
    });
    RunReport {
        config: config.clone(),
        ops: outcome.ops,
        recoveries: outcome.recoveries,
        undetectable: outcome.undetectable,
        data_loss_detected: outcome.data_loss_detected,
        images_explored: outcome.images_explored,
        ops_beside_checkpoint: outcome.ops_beside_checkpoint,
        restarts_mid_checkpoint: outcome.restarts_mid_checkpoint,
        recorded: outcome.recorded,
        sim: env.stats(),
        violation: outcome.violation,
        trace_hash: env.trace_hash(),
        trace_tail: env.trace_tail(),
        schedule: env.schedule(),
        simulated_ns: u64::try_from(env.now().as_nanos()).unwrap_or(u64::MAX),
    }
}

/// Where two runs of the same seed first differ.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// The index of the first differing event (0-based).
    pub index: usize,
    /// That event in the first run (`None`: the run had ended).
    pub first: Option<TraceEvent>,
    /// That event in the second run.
    pub second: Option<TraceEvent>,
}

/// Runs `config` twice, comparing every event's hash; `Ok` with the trace hash if they agree.
pub fn check_determinism(config: &RunConfig) -> Result<u64, Divergence> {
    let traced_run = || {
        let env = machine(config, None);
        env.keep_event_hashes();
        env.keep_trace_events(TRACE_EVENTS_MAX);
        let report = run_with_env(config, env.clone());
        (report, env.event_hashes())
    };
    let (first, first_hashes) = traced_run();
    let (second, second_hashes) = traced_run();
    match first_divergence(&first_hashes, &second_hashes) {
        None if first.trace_hash == second.trace_hash => Ok(first.trace_hash),
        index => {
            let index = index.unwrap_or(first_hashes.len());
            Err(Divergence {
                index,
                first: first.trace_tail.get(index).cloned(),
                second: second.trace_tail.get(index).cloned(),
            })
        }
    }
}

/// The index of the first event whose hash differs, or where one trace ends before the other.
pub fn first_divergence(first: &[u64], second: &[u64]) -> Option<usize> {
    first
        .iter()
        .zip(second)
        .position(|(a, b)| a != b)
        .or_else(|| (first.len() != second.len()).then(|| first.len().min(second.len())))
}

#[cfg(test)]
mod tests {
    use super::first_divergence;

    #[test]
    fn first_divergence_finds_the_first_differing_or_missing_event() {
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 9, 3]), Some(1));
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 2]), Some(2));
        assert_eq!(first_divergence(&[], &[7]), Some(0));
    }
}
