//! The regression corpus: one JSON file per failing case ever found, replayed by `cargo test`.
//!
//! An entry keeps the whole run configuration, the recorded fault schedule and (for workloads
//! that record them) the recorded operations, so its replay does not depend on how the options
//! of a seed are derived, on how many random numbers the fault classes draw, or on the code that
//! draws the operations.
//!
//! Invariants: an entry names the bug it pinned, and states the outcome expected since the fix.
//! An entry, or a schedule, is validated before it runs ([`CorpusEntry::validate`],
//! [`validate_schedule`]): every field within the bounds documented next to it, the recorded
//! operations of the kind its workload replays, so a hand-edited or damaged entry is refused
//! with a message naming the file and the field, never a panic, an overflow or a huge allocation.

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use stormhold::env::sim::FaultSchedule;

use stormhold::env::sim::Fault;

use crate::config::bounds::{CLOCK_JUMP_MS_MAX, OPS_MAX};
use crate::config::{InvalidInput, RunConfig, WorkloadKind, check_at_most};
use crate::env_workload::ops::EnvOp;
use crate::kv::groups::DOCUMENTS;
use crate::kv::kernel_store::KernelStoreOptions;
use crate::kv::workload::KvOp;
use crate::runner::{self, RecordedOps, RunReport, ViolationKind};

/// Bounds on what a replayed schedule or recording may hold (beyond what the types allow).
pub mod bounds {
    /// Most scheduled faults in one schedule.
    pub const SCHEDULE_FAULTS_MAX: usize = 1_000_000;
    /// Largest misdirection of a scheduled write, in sectors either way.
    pub const MISDIRECT_SECTORS_MAX: u64 = 1 << 20;
    /// Largest end (offset + length) of a recorded env read, write or set_len, in bytes: the
    /// simulated files hold every byte, so this bounds the replay's memory.
    pub const ENV_FILE_BYTES_MAX: u64 = 1 << 20;
    /// Longest recorded env sleep, in microseconds (one hour).
    pub const ENV_SLEEP_US_MAX: u64 = 3_600_000_000;
    /// Most writes in one recorded commit.
    pub const COMMIT_WRITES_MAX: usize = 4096;
}

/// One pinned case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusEntry {
    /// One line: the bug this case found.
    pub note: String,
    /// The run, exactly.
    pub config: RunConfig,
    /// The fault decisions of the run, replayed instead of drawn.
    pub schedule: FaultSchedule,
    /// The operations of the run, replayed instead of drawn (where the workload records them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<RecordedOps>,
    /// The violation expected now (`None`: the run must pass).
    pub expect_violation: Option<ViolationKind>,
}

impl CorpusEntry {
    /// Reads and validates an entry, naming the file (and the field) in any error.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let entry: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a corpus entry: {e}", path.display()))?;
        entry
            .validate()
            .map_err(|invalid| format!("{} is not a valid corpus entry: {invalid}", path.display()))?;
        Ok(entry)
    }

    /// Checks the configuration, the schedule and the recorded operations against their
    /// bounds, and that the operations are of the kind the workload replays.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.config.validate().map_err(|invalid| invalid.under("config"))?;
        validate_schedule(&self.schedule).map_err(|invalid| invalid.under("schedule"))?;
        if let Some(ops) = &self.ops {
            validate_ops(self.config.workload, ops).map_err(|invalid| invalid.under("ops"))?;
            if let (WorkloadKind::Kernel(_), RecordedOps::Kv(ops)) = (self.config.workload, ops) {
                let store = self.config.store.clone();
                let shards = store.unwrap_or_else(|| KernelStoreOptions::from_seed(self.config.seed)).shards;
                validate_kernel_groups(ops, shards as usize).map_err(|invalid| invalid.under("ops"))?;
            }
        }
        Ok(())
    }

    /// Writes the entry as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Replays the entry.
    pub fn replay(&self) -> RunReport {
        runner::run_recorded(&self.config, Some(self.schedule.clone()), self.ops.clone())
    }

    /// Whether a replay ended as expected.
    pub fn outcome_matches(&self, report: &RunReport) -> bool {
        report.violation.as_ref().map(|v| v.kind) == self.expect_violation
    }
}

/// The `.json` files of `dir`, sorted by name.
pub fn entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Reads and validates a fault schedule (`run --replay-schedule`), naming the file in any error.
pub fn load_schedule(path: &Path) -> Result<FaultSchedule, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let schedule: FaultSchedule = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a fault schedule: {e}", path.display()))?;
    validate_schedule(&schedule)
        .map_err(|invalid| format!("{} is not a valid fault schedule: {invalid}", path.display()))?;
    Ok(schedule)
}

/// Checks a schedule: at most [`bounds::SCHEDULE_FAULTS_MAX`] faults, call indices in order
/// (0 is a driver crash before the first call), and each fault's parameters in range. Fields are named from the schedule's root.
pub fn validate_schedule(schedule: &FaultSchedule) -> Result<(), InvalidInput> {
    check_at_most("faults.len", schedule.faults.len(), bounds::SCHEDULE_FAULTS_MAX)?;
    let mut previous = 0;
    for (index, scheduled) in schedule.faults.iter().enumerate() {
        let field = |name: &str| format!("faults[{index}].{name}");
        if scheduled.call < previous {
            let reason =
                format!("call {} comes after call {previous} (faults are in call order)", scheduled.call);
            return Err(InvalidInput::new(field("call"), reason));
        }
        previous = scheduled.call;
        match scheduled.fault {
            Fault::ShortIo { kept_per_mille } => {
                check_at_most(&field("fault.ShortIo.kept_per_mille"), kept_per_mille, 1000)?
            }
            Fault::Misdirect { shift_sectors: 0 } => {
                return Err(InvalidInput::new(field("fault.Misdirect.shift_sectors"), "is 0 (never 0)"));
            }
            Fault::Misdirect { shift_sectors } => check_at_most(
                &field("fault.Misdirect.shift_sectors"),
                shift_sectors.unsigned_abs(),
                bounds::MISDIRECT_SECTORS_MAX,
            )?,
            Fault::ClockJump { delta_ms } => {
                check_at_most(&field("fault.ClockJump.delta_ms"), delta_ms.unsigned_abs(), CLOCK_JUMP_MS_MAX)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks recorded operations: of the kind `workload` replays, at most two runs' worth
/// ([`OPS_MAX`] per phase), each within [`bounds`]. Fields are named from the recording's root.
pub fn validate_ops(workload: WorkloadKind, ops: &RecordedOps) -> Result<(), InvalidInput> {
    check_at_most("len", ops.len() as u64, 2 * OPS_MAX)?;
    match (workload, ops) {
        (WorkloadKind::Env, RecordedOps::Env(ops)) => ops
            .iter()
            .enumerate()
            .try_for_each(|(index, op)| validate_env_op(op).map_err(|e| e.under_index("Env", index))),
        (WorkloadKind::Env, RecordedOps::Kv(_)) => {
            Err(InvalidInput::new("Kv", "the env workload replays Env operations, not Kv"))
        }
        (_, RecordedOps::Kv(ops)) => ops
            .iter()
            .enumerate()
            .try_for_each(|(index, op)| validate_kv_op(op).map_err(|e| e.under_index("Kv", index))),
        (workload, RecordedOps::Env(_)) => {
            Err(InvalidInput::new("Env", format!("the {workload} workload replays Kv operations, not Env")))
        }
    }
}

/// Checks that every commit of a kernel recording stays in one key group (one shard): the
/// kernel refuses a transaction across shards and the workload never draws one (a write of
/// another group in an interleaved transaction the workload skips itself).
fn validate_kernel_groups(ops: &[KvOp], groups: usize) -> Result<(), InvalidInput> {
    if groups == 0 {
        return Err(InvalidInput::new("store.shards", "is 0"));
    }
    let group = |key: crate::kv::Key| crate::kv::groups::group_of(key, groups);
    for (index, op) in ops.iter().enumerate() {
        if let KvOp::Commit { writes, .. } = op
            && let Some(&(first, _)) = writes.first()
            && writes.iter().any(|&(key, _)| group(key) != group(first))
        {
            return Err(InvalidInput::new("Commit.writes", "a transaction across key groups")
                .under_index("Kv", index));
        }
    }
    Ok(())
}

trait UnderIndex {
    fn under_index(self, list: &str, index: usize) -> Self;
}

impl UnderIndex for InvalidInput {
    fn under_index(self, list: &str, index: usize) -> Self {
        self.under(&format!("{list}[{index}]"))
    }
}

fn check_end(field: &str, offset: u64, len: u64) -> Result<(), InvalidInput> {
    let end = offset.saturating_add(len);
    check_at_most(field, end, bounds::ENV_FILE_BYTES_MAX)
}

fn validate_env_op(op: &EnvOp) -> Result<(), InvalidInput> {
    match *op {
        EnvOp::Write { offset, len, .. } => check_end("Write.offset+len", offset, len),
        EnvOp::Read { offset, len, .. } => check_end("Read.offset+len", offset, len),
        EnvOp::SetLen { len, .. } => check_end("SetLen.len", 0, len),
        EnvOp::Clock { sleep_us: Some(sleep_us) } => {
            check_at_most("Clock.sleep_us", sleep_us, bounds::ENV_SLEEP_US_MAX)
        }
        _ => Ok(()),
    }
}

fn validate_kv_op(op: &KvOp) -> Result<(), InvalidInput> {
    match op {
        KvOp::Commit { writes, .. } => {
            check_at_most("Commit.writes.len", writes.len(), bounds::COMMIT_WRITES_MAX)
        }
        KvOp::Document { doc, chunks } => {
            if *doc >= DOCUMENTS {
                return Err(InvalidInput::new("Document.doc", format!("{doc} is not below {DOCUMENTS}")));
            }
            if *chunks == 0 {
                return Err(InvalidInput::new("Document.chunks", "is 0 (at least 1)"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
