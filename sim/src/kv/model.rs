//! The reference model of a key-value store: the committed transactions in order, each
//! acknowledged durable, acknowledged unsynced, or indeterminate (its call returned an error).
//!
//! Deliberately dumb: a `BTreeMap` and a list. It imports no store logic, only key and value
//! types. After a crash the recovered state must equal the model after some prefix of the
//! transactions, at or past the last durable acknowledgement (which also gives durability,
//! atomicity and no invention); an indeterminate transaction may or may not be in it.
//!
//! Increments inside transactions ([`TxnWrite::Add`]) are kept as deltas and resolved when a
//! state is computed, in commit order, against that state (each candidate state of the
//! verdict resolves them on its own): a recovered state that applied a committed increment
//! twice, or not at all, equals no prefix.

use std::collections::BTreeMap;

use super::{Key, TxnWrite, Value, Write};

/// What the store said of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// `Ok` from a durable commit, or a later successful sync.
    Durable,
    /// `Ok` from a commit that did not promise durability.
    Unsynced,
    /// An error: it may or may not have happened.
    Indeterminate,
}

/// A committed transaction and what was acknowledged of it.
#[derive(Clone, Debug)]
pub struct Txn {
    /// Its writes, in order (increments as deltas).
    pub writes: Vec<TxnWrite>,
    /// The acknowledgement.
    pub ack: Ack,
}

/// Bound on the candidate states an indeterminate transaction can branch into.
const CANDIDATES_MAX: usize = 256;

/// The model of one store since its last verified recovery.
#[derive(Clone, Debug, Default)]
pub struct KvModel {
    /// The state verified at the last recovery.
    pub base: BTreeMap<Key, Value>,
    /// Transactions since then.
    pub txns: Vec<Txn>,
    /// Where the last group of transactions made durable together begins: losing exactly
    /// that group is what undetectable media damage can cause.
    pub last_durable_group_start: usize,
    /// Durable transactions before the base, for the watermark of reports.
    pub base_txns: u64,
    /// States the store may fall back to if media damage hits the last durable group from
    /// before the base (legal while nothing since the base is durable to vouch for it).
    pub base_group_states: Vec<BTreeMap<Key, Value>>,
}

/// How a recovered state relates to the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It equals a legal prefix: the first `k` transactions.
    Prefix {
        /// How many transactions it reflects.
        k: usize,
    },
    /// It equals a state inside the last group of transactions made durable together: legal
    /// only if media damage hit that group's records, which no single-copy format can tell
    /// from a torn write.
    LostLastDurable,
    /// It equals no legal state.
    Illegal,
}

fn apply(state: &mut BTreeMap<Key, Value>, writes: &[TxnWrite]) {
    for &write in writes {
        let key = write.key();
        match write.apply_to(state.get(&key).copied()) {
            Some(value) => state.insert(key, value),
            None => state.remove(&key),
        };
    }
}

impl KvModel {
    /// Records a commit and its acknowledgement. A durable one also makes every earlier
    /// acknowledged transaction durable (the sync covered them).
    pub fn commit(&mut self, writes: Vec<Write>, ack: Ack) {
        self.commit_txn(writes.into_iter().map(TxnWrite::Set).collect(), ack);
    }

    /// Records a commit whose writes may hold increments, as [`KvModel::commit`].
    pub fn commit_txn(&mut self, writes: Vec<TxnWrite>, ack: Ack) {
        let durable = ack == Ack::Durable;
        let ack = if durable { Ack::Unsynced } else { ack };
        self.txns.push(Txn { writes, ack });
        if durable {
            self.synced();
        }
    }

    /// Records a successful sync: every acknowledged transaction is durable now.
    pub fn synced(&mut self) {
        let before = self.durable_prefix();
        for txn in &mut self.txns {
            if txn.ack == Ack::Unsynced {
                txn.ack = Ack::Durable;
            }
        }
        if self.durable_prefix() > before {
            self.last_durable_group_start = before;
        }
    }

    /// The state after the first `k` transactions, indeterminate ones included.
    pub fn state_after(&self, k: usize) -> BTreeMap<Key, Value> {
        let mut state = self.base.clone();
        for txn in self.txns.iter().take(k) {
            apply(&mut state, &txn.writes);
        }
        state
    }

    /// How many leading transactions must survive a crash (through the last durable one).
    pub fn durable_prefix(&self) -> usize {
        self.txns.iter().rposition(|t| t.ack == Ack::Durable).map_or(0, |i| i + 1)
    }

    /// Whether an indeterminate transaction touched `key` (reads of it are uncertain).
    pub fn uncertain(&self, key: Key) -> bool {
        self.txns.iter().any(|t| t.ack == Ack::Indeterminate && t.writes.iter().any(|w| w.key() == key))
    }

    /// What a read of `key` must return, if no indeterminate transaction touched it.
    pub fn expected(&self, key: Key) -> Option<Value> {
        let mut value = self.base.get(&key).copied();
        for txn in &self.txns {
            for write in txn.writes.iter().filter(|w| w.key() == key) {
                value = write.apply_to(value);
            }
        }
        value
    }

    /// Checks a recovered state against every legal prefix.
    pub fn verdict(&self, recovered: &BTreeMap<Key, Value>) -> Verdict {
        let durable = self.durable_prefix();
        let mut candidates = vec![self.base.clone()];
        let mut lost_last_durable = false;
        for k in 0..=self.txns.len() {
            if k >= durable && candidates.iter().any(|c| c == recovered) {
                return Verdict::Prefix { k };
            }
            if k >= self.last_durable_group_start && k < durable && candidates.iter().any(|c| c == recovered)
            {
                lost_last_durable = true;
            }
            let Some(txn) = self.txns.get(k) else { break };
            let mut next: Vec<BTreeMap<Key, Value>> = Vec::new();
            for candidate in candidates {
                if txn.ack == Ack::Indeterminate && !next.contains(&candidate) {
                    next.push(candidate.clone());
                }
                let mut applied = candidate;
                apply(&mut applied, &txn.writes);
                if !next.contains(&applied) {
                    next.push(applied);
                }
            }
            next.truncate(CANDIDATES_MAX);
            candidates = next;
        }
        if durable == 0 && self.base_group_states.contains(recovered) {
            lost_last_durable = true;
        }
        if lost_last_durable { Verdict::LostLastDurable } else { Verdict::Illegal }
    }

    /// Starts over from a verified recovered state.
    pub fn rebase(&mut self, recovered: BTreeMap<Key, Value>) {
        self.rebase_at(recovered, None);
    }

    /// Like [`KvModel::rebase`], knowing the recovered state reflects the first `k`
    /// transactions: those past the durable prefix were made durable by recovery itself (its
    /// sync) and form the newest durable group, the one undetectable damage can take.
    pub fn rebase_at(&mut self, recovered: BTreeMap<Key, Value>, k: Option<usize>) {
        let durable = self.durable_prefix();
        match k {
            Some(k) if k > durable => {
                self.base_group_states = (durable..k).map(|j| self.state_after(j)).collect()
            }
            _ if durable > 0 => {
                self.base_group_states =
                    (self.last_durable_group_start..durable).map(|j| self.state_after(j)).collect();
            }
            _ => {}
        }
        self.base_txns += durable as u64;
        self.base = recovered;
        self.txns.clear();
        self.last_durable_group_start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(Key, Value)]) -> BTreeMap<Key, Value> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn verdict_accepts_prefixes_at_or_past_the_durable_one_only() {
        let mut model = KvModel::default();
        model.commit(vec![(1, Some(10))], Ack::Durable);
        model.commit(vec![(2, Some(20))], Ack::Durable);
        model.commit(vec![(1, Some(11)), (3, Some(30))], Ack::Unsynced);
        assert_eq!(model.verdict(&state(&[(1, 10), (2, 20)])), Verdict::Prefix { k: 2 });
        assert_eq!(model.verdict(&state(&[(1, 11), (2, 20), (3, 30)])), Verdict::Prefix { k: 3 });
        assert_eq!(model.verdict(&state(&[(1, 10)])), Verdict::LostLastDurable);
        assert_eq!(model.verdict(&state(&[])), Verdict::Illegal, "two durable txns lost");
        assert_eq!(model.verdict(&state(&[(1, 11), (2, 20)])), Verdict::Illegal, "half a txn");
        assert_eq!(model.verdict(&state(&[(1, 10), (2, 20), (9, 9)])), Verdict::Illegal, "invented");
    }

    #[test]
    fn indeterminate_transactions_may_be_in_or_out() {
        let mut model = KvModel::default();
        model.commit(vec![(1, Some(10))], Ack::Durable);
        model.commit(vec![(2, Some(20))], Ack::Indeterminate);
        model.commit(vec![(3, Some(30))], Ack::Durable);
        assert_eq!(model.verdict(&state(&[(1, 10), (3, 30)])), Verdict::Prefix { k: 3 });
        assert_eq!(model.verdict(&state(&[(1, 10), (2, 20), (3, 30)])), Verdict::Prefix { k: 3 });
        assert!(model.uncertain(2) && !model.uncertain(1));
    }

    #[test]
    fn losing_the_last_durable_group_from_before_the_base_is_legal_only_while_nothing_newer_is_durable() {
        let mut model = KvModel::default();
        model.commit(vec![(1, Some(10))], Ack::Durable);
        model.commit(vec![(2, Some(20))], Ack::Durable);
        model.rebase(state(&[(1, 10), (2, 20)]));
        assert_eq!(model.verdict(&state(&[(1, 10)])), Verdict::LostLastDurable);
        assert_eq!(model.verdict(&state(&[])), Verdict::Illegal, "more than the last group");
        model.commit(vec![(3, Some(30))], Ack::Durable);
        assert_eq!(model.verdict(&state(&[(1, 10)])), Verdict::Illegal, "a newer durable txn vouches");
    }

    fn add(key: Key, by: Value) -> TxnWrite {
        TxnWrite::Add { key, by }
    }

    #[test]
    fn an_increment_applied_twice_or_never_is_no_prefix() {
        let mut model = KvModel::default();
        model.commit(vec![(1, Some(10))], Ack::Durable);
        model.commit_txn(vec![add(1, 5), TxnWrite::Set((2, Some(20)))], Ack::Durable);
        model.commit_txn(vec![add(1, 7), add(3, 1)], Ack::Unsynced);
        assert_eq!(model.expected(1), Some(22));
        assert_eq!(model.verdict(&state(&[(1, 15), (2, 20)])), Verdict::Prefix { k: 2 });
        assert_eq!(model.verdict(&state(&[(1, 22), (2, 20), (3, 1)])), Verdict::Prefix { k: 3 });
        assert_eq!(model.verdict(&state(&[(1, 20), (2, 20)])), Verdict::Illegal, "durable increment twice");
        assert_eq!(model.verdict(&state(&[(1, 10), (2, 20)])), Verdict::Illegal, "durable increment never");
        assert_eq!(model.verdict(&state(&[(1, 29), (2, 20), (3, 1)])), Verdict::Illegal, "unsynced twice");
        assert_eq!(model.verdict(&state(&[(1, 22), (2, 20), (3, 2)])), Verdict::Illegal, "unsynced twice");
    }

    #[test]
    fn an_increment_resolves_against_each_candidate_in_commit_order() {
        let mut model = KvModel::default();
        model.commit(vec![(1, Some(10))], Ack::Durable);
        model.commit(vec![(1, Some(100))], Ack::Indeterminate);
        model.commit_txn(vec![add(1, 1)], Ack::Durable);
        // With or without the indeterminate put, the increment lands on what was there.
        assert_eq!(model.verdict(&state(&[(1, 11)])), Verdict::Prefix { k: 3 });
        assert_eq!(model.verdict(&state(&[(1, 101)])), Verdict::Prefix { k: 3 });
        let lost = model.verdict(&state(&[(1, 100)]));
        assert_eq!(
            lost,
            Verdict::LostLastDurable,
            "the durable increment lost: only media damage excuses it"
        );
        assert_eq!(model.verdict(&state(&[(1, 1)])), Verdict::Illegal, "resolved against nothing");
        assert!(model.uncertain(1));
        // Within a transaction, writes apply in order: a put after an increment wins, an
        // increment after a delete counts from 0; deltas wrap.
        let mut model = KvModel::default();
        model.commit_txn(
            vec![add(1, 5), TxnWrite::Set((1, Some(3))), TxnWrite::Set((2, None)), add(2, 4)],
            Ack::Unsynced,
        );
        model.commit_txn(vec![TxnWrite::Set((3, Some(Value::MAX))), add(3, 2)], Ack::Unsynced);
        assert_eq!(model.state_after(2), state(&[(1, 3), (2, 4), (3, 1)]));
    }

    #[test]
    fn a_sync_makes_every_acknowledged_transaction_durable() {
        let mut model = KvModel::default();
        model.commit(vec![(1, Some(10))], Ack::Unsynced);
        model.commit(vec![(2, Some(20))], Ack::Indeterminate);
        assert_eq!(model.durable_prefix(), 0);
        model.synced();
        assert_eq!(model.durable_prefix(), 1);
        assert_eq!(model.expected(1), Some(10));
    }
}
