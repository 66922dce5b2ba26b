//! What Raft requires of one group's storage to survive a crash, and the check of a
//! recovered group against it.
//!
//! The model keeps, per group, what was acknowledged since the last recovery: the vote whose
//! `save_vote` returned, the log as of the last append whose callback fired (cut by later
//! truncates and purges, which may or may not be durable yet), the purge point whose `purge`
//! returned, and the applied state whose `apply` (or `install_snapshot`) returned; and, for
//! all time, every vote and log id ever written and every state-machine state ever reached,
//! so a recovered value that was never written is an invention.
//!
//! Invariants: after a successful check the model is rebased on what was recovered (recovery
//! syncs it, so it is all durable); the checks name the group and what differs.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{LogId, Vote};

/// A state machine's contents: key to value.
pub type Kv = BTreeMap<String, String>;

/// What one group recovered: read through the adapter with faults off.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The vote.
    pub vote: Option<Vote<u64>>,
    /// The purge point.
    pub purged: Option<LogId<u64>>,
    /// `get_log_state`'s last log id.
    pub last_log_id: Option<LogId<u64>>,
    /// The entries, in index order.
    pub log: Vec<LogId<u64>>,
    /// The applied log id.
    pub applied: Option<LogId<u64>>,
    /// The state machine's contents.
    pub kv: Kv,
    /// The current snapshot's id and last log id.
    pub snapshot: Option<(String, Option<LogId<u64>>)>,
}

/// One group's model.
#[derive(Clone, Debug, Default)]
pub struct GroupModel {
    /// The newest term used.
    pub term: u64,
    /// The vote last acknowledged.
    pub vote: Option<Vote<u64>>,
    /// Every vote ever saved (acknowledged or not).
    pub votes_written: Vec<Vote<u64>>,
    /// The log as the workload sees it (every append, truncate and purge that returned).
    pub log: BTreeMap<u64, LogId<u64>>,
    /// The entries that must survive: the log when the last callback fired, cut since.
    pub must_log: BTreeMap<u64, LogId<u64>>,
    /// Every log id ever appended.
    pub appended: BTreeSet<LogId<u64>>,
    /// The purge point the workload sees, and the one acknowledged.
    pub purged: Option<LogId<u64>>,
    /// The purge point that must survive.
    pub must_purged: Option<LogId<u64>>,
    /// The applied log id and contents the workload sees.
    pub applied: Option<LogId<u64>>,
    /// The contents at `applied`.
    pub kv: Kv,
    /// Every state the state machine reached, by applied log id.
    pub states: BTreeMap<Option<LogId<u64>>, Vec<Kv>>,
    /// Snapshot ids ever built or installed.
    pub snapshots: BTreeSet<String>,
    /// The last log ids of every snapshot build or install attempted (acknowledged or not).
    pub snapshot_ids: BTreeSet<Option<LogId<u64>>>,
    /// Whether a snapshot was acknowledged (built or installed).
    pub snapshot_acked: bool,
}

fn index(id: Option<LogId<u64>>) -> u64 {
    id.map_or(0, |id| id.index)
}

impl GroupModel {
    /// The index the next append starts at.
    pub fn next_index(&self) -> u64 {
        self.log.keys().next_back().map_or(index(self.purged), |&i| i) + 1
    }

    /// An append's callback fired: everything in the log now must survive.
    pub fn flushed(&mut self) {
        self.must_log = self.log.clone();
    }

    /// Records a state-machine state.
    pub fn reached(&mut self) {
        let states = self.states.entry(self.applied).or_default();
        if !states.contains(&self.kv) {
            states.push(self.kv.clone());
        }
    }

    /// A state an interrupted install may leave: accepted by `check` from now on.
    pub fn applied_candidate(&mut self, applied: Option<LogId<u64>>, kv: &Kv) {
        let states = self.states.entry(applied).or_default();
        if !states.contains(kv) {
            states.push(kv.clone());
        }
    }

    /// Checks a recovered group; `Err` says what broke (durability, invention or shape).
    pub fn check(&self, group: u32, got: &Recovered) -> Result<(), (bool, String)> {
        let lost = |what: String| Err((true, format!("group {group}: {what}")));
        let wrong = |what: String| Err((false, format!("group {group}: {what}")));
        if let Some(acked) = self.vote
            && got.vote.is_none_or(|v| v.partial_cmp(&acked).is_none_or(|o| o.is_lt()))
        {
            return lost(format!("acknowledged vote {acked} recovered as {:?}", got.vote));
        }
        if let Some(vote) = got.vote
            && !self.votes_written.contains(&vote)
        {
            return wrong(format!("vote {vote} was never saved"));
        }
        if index(got.purged) < index(self.must_purged) {
            return lost(format!("purge point {:?} recovered as {:?}", self.must_purged, got.purged));
        }
        let first = index(got.purged) + 1;
        for (at, id) in got.log.iter().enumerate() {
            if id.index != first + at as u64 {
                return wrong(format!(
                    "hole: entry {at} after purge point {:?} has index {}",
                    got.purged, id.index
                ));
            }
            if !self.appended.contains(id) {
                return wrong(format!("entry {id} was never appended"));
            }
        }
        if got.log.windows(2).any(|w| w[0].leader_id > w[1].leader_id) {
            return wrong(format!("terms go down along the log: {:?}", got.log));
        }
        let last = got.log.last().copied().or(got.purged);
        if got.last_log_id != last {
            return wrong(format!(
                "get_log_state says last {:?}, the entries end at {last:?}",
                got.last_log_id
            ));
        }
        for (&i, id) in self.must_log.range(first..) {
            if got.log.get((i - first) as usize) != Some(id) {
                return lost(format!("flushed entry {id} is missing (log {:?})", got.log));
            }
        }
        if index(got.applied) < index(self.applied_acked()) {
            return lost(format!("applied {:?} recovered as {:?}", self.applied, got.applied));
        }
        match self.states.get(&got.applied) {
            Some(states) if states.contains(&got.kv) => {}
            Some(_) => {
                return wrong(format!("applied {:?} with contents {:?}, never reached", got.applied, got.kv));
            }
            None if got.applied.is_none() && got.kv.is_empty() => {}
            None => return wrong(format!("applied {:?} was never reached", got.applied)),
        }
        match &got.snapshot {
            Some((id, last)) if !self.snapshots.contains(id) && !self.snapshot_ids.contains(last) => {
                wrong(format!("snapshot {id} of {last:?} was never built"))
            }
            None if self.snapshot_acked => lost("the acknowledged snapshot is gone".to_owned()),
            _ => Ok(()),
        }
    }

    fn applied_acked(&self) -> Option<LogId<u64>> {
        self.applied
    }

    /// Rebases the model on a recovered group (recovery made all of it durable).
    pub fn rebase(&mut self, got: &Recovered) {
        self.vote = got.vote;
        let first = index(got.purged) + 1;
        self.log = got.log.iter().enumerate().map(|(at, id)| (first + at as u64, *id)).collect();
        self.must_log = self.log.clone();
        self.purged = got.purged;
        self.must_purged = got.purged;
        self.applied = got.applied;
        self.kv = got.kv.clone();
        self.snapshot_acked = got.snapshot.is_some();
        if let Some((id, _)) = &got.snapshot {
            self.snapshots.insert(id.clone());
        }
        let terms = got.log.iter().map(|id| id.leader_id.term).chain(got.vote.map(|v| v.leader_id.term));
        self.term = terms.fold(self.term, u64::max);
    }
}
