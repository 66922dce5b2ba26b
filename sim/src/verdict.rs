//! The verdict of a run: what kind of promise broke, and where the run was when it saw it.
//!
//! Owns [`Violation`] and [`ViolationKind`] and the exit code of each kind. It sits below both
//! the workloads (which find violations) and the runner (which reports them), so the arrows
//! point one way: workloads -> verdict <- runner, and runner -> workloads.
//!
//! Invariants: every kind maps to exactly one exit code (1 correctness, 2 liveness, 3 panic);
//! a violation names the (1-based) workload operation during or after which it was seen.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of promise a run found broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ViolationKind {
    /// Something durable was lost or changed.
    Durability,
    /// Something appeared that was never written.
    Invention,
    /// A read or listing during the run disagreed with the model.
    Read,
    /// After faults stopped, the system did not recover and accept durable writes.
    Liveness,
    /// A checkpoint invariant of DESIGN.md section 4 broke after a recovery: a partial
    /// checkpoint left on disk, a retained checkpoint that does not load, a fallback without
    /// media damage, or a recovery from a checkpoint older than an acknowledged one.
    Checkpoint,
    /// The simulator or the code under test panicked.
    Panic,
}

impl ViolationKind {
    /// The process exit code for a run that found this: 1 correctness, 2 liveness, 3 panic.
    pub fn exit_code(self) -> i32 {
        match self {
            ViolationKind::Durability
            | ViolationKind::Invention
            | ViolationKind::Read
            | ViolationKind::Checkpoint => 1,
            ViolationKind::Liveness => 2,
            ViolationKind::Panic => 3,
        }
    }
}

/// A broken promise, with where the run was when it saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// What kind.
    pub kind: ViolationKind,
    /// The workload operation during or after which it was seen (1-based).
    pub op_index: u64,
    /// Expected versus got, in words.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} violation at op {}: {}", self.kind, self.op_index, self.detail)
    }
}
