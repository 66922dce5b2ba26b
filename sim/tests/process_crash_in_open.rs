//! A process crash added at each call of a corpus run in turn, one run per call, fails no
//! check. Among them are crashes at a call that cannot fail (a clock reading) during a store's
//! open: the call answers and the process is dead after it, so the open goes on and returns
//! `Ok` on a dead process. The workload must take that open for a crash during recovery and
//! open again: before it did, 41 of this run's 996 calls failed the checkpoint audit that
//! followed such an open at its first call, a false violation (found when the checkpoint
//! `DATA` layout changed the call numbering of a corpus entry).

use std::path::PathBuf;

use stormhold::env::sim::{Fault, ScheduledFault};
use stormhold_sim::corpus::CorpusEntry;

#[test]
fn a_process_crash_at_any_call_of_a_checkpoint_run_fails_no_check() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/checkpoint-parent-meta-rename-in-page-cache.json");
    let entry = CorpusEntry::load(&path).expect("corpus entry");
    let base = entry.replay();
    assert!(base.violation.is_none(), "the entry passes: {:?}", base.violation);
    let calls = base.trace_tail.last().map_or(0, |e| e.call);
    let mut failed = Vec::new();
    for call in 1..=calls {
        if entry.schedule.faults.iter().any(|f| f.call == call) {
            continue;
        }
        let mut crashed = entry.clone();
        let faults = &mut crashed.schedule.faults;
        faults.push(ScheduledFault { call, fault: Fault::ProcessCrash { after: true } });
        faults.sort_by_key(|f| f.call);
        if let Some(violation) = crashed.replay().violation {
            failed.push(format!("call {call}: {violation}"));
        }
    }
    assert!(failed.is_empty(), "{} of {calls} calls:\n{}", failed.len(), failed.join("\n"));
}
