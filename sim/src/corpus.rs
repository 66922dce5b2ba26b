//! The regression corpus: one JSON file per failing case ever found, replayed by `cargo test`.
//!
//! An entry keeps the whole run configuration, the recorded fault schedule and (for workloads
//! that record them) the recorded operations, so its replay does not depend on how the options
//! of a seed are derived, on how many random numbers the fault classes draw, or on the code that
//! draws the operations.
//!
//! Invariant: an entry names the bug it pinned, and states the outcome expected since the fix.

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use stormhold::env::sim::FaultSchedule;

use crate::config::RunConfig;
use crate::runner::{self, RecordedOps, RunReport, ViolationKind};

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
    /// Reads an entry, naming the file in any error.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not a corpus entry: {e}", path.display()))
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
