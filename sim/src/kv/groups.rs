//! Key groups: the reference model of a store whose keys fall into independent groups (the
//! kernel's shards), and the keys of the document imports.
//!
//! Key `k` belongs to group `k % groups` ([`group_of`]); a store with several groups
//! ([`super::KvStore::key_groups`]) keeps each group in its own log, so every transaction
//! stays within one group and, after a crash, one group may keep more unsynced commits than
//! another. `DESIGN.md` section 4 states the prefix property per shard: [`GroupedModel`] keeps
//! one [`KvModel`] per group, routes each transaction to its group's model, and judges the
//! recovered state restricted to each group's keys against that group's model. A durable
//! commit makes the earlier transactions of its own group durable; a whole-store sync makes
//! every group's durable.
//!
//! With one group, [`GroupedModel`] is exactly one [`KvModel`] (the same verdicts, the same
//! notes and the same violation texts), so single-log stores are checked as before.
//!
//! Documents: document `d` (of [`DOCUMENTS`]) lives in group `d % groups`; it has
//! [`DOCUMENT_DATA_KEYS`] data keys with fixed values ([`document_value`]), so re-importing it
//! writes the same values, and one *mark* key ([`document_mark_key`]) that a store reports as
//! [`DOCUMENT_MARK_VALUE`] in its state while the document is recorded complete. The workload
//! commits the mark atomically with the last chunk, so the prefix check also checks that a
//! document marked complete has all its chunks.

use std::collections::BTreeMap;

use super::model::{Ack, KvModel, Verdict};
use super::{Key, TxnWrite, Value, Write};

/// The group of `key` among `groups`.
pub fn group_of(key: Key, groups: usize) -> usize {
    usize::from(key) % groups.max(1)
}

/// Documents the workload imports.
pub const DOCUMENTS: u8 = 8;
/// Data keys of one document.
pub const DOCUMENT_DATA_KEYS: usize = 6;
/// The value a store reports at a document's mark key while the document is complete.
pub const DOCUMENT_MARK_VALUE: Value = 1;
/// Where document keys start, past the workload's ordinary keys.
const DOCUMENT_KEYS_BASE: Key = 0x1000;
/// Keys set aside for each document.
const DOCUMENT_KEYS_SPAN: Key = 0x100;

/// The group of document `doc`.
pub fn document_group(doc: u8, groups: usize) -> usize {
    usize::from(doc) % groups.max(1)
}

/// Slot `slot` of document `doc`: the slot-th key of its span in its group.
fn document_key(doc: u8, slot: usize, groups: usize) -> Key {
    let groups = groups.max(1);
    let start = usize::from(DOCUMENT_KEYS_BASE) + usize::from(doc) * usize::from(DOCUMENT_KEYS_SPAN);
    let group = document_group(doc, groups);
    let first = start + (group + groups - start % groups) % groups;
    Key::try_from(first + slot * groups).expect("document keys fit in a key")
}

/// The data keys of document `doc`, each with its value.
pub fn document_writes(doc: u8, groups: usize) -> Vec<Write> {
    (0..DOCUMENT_DATA_KEYS).map(|i| (document_key(doc, i, groups), Some(document_value(doc, i)))).collect()
}

/// The value of data key `index` of document `doc`.
pub fn document_value(doc: u8, index: usize) -> Value {
    0xd0c0_0000 | (Value::from(doc) << 8) | index as Value
}

/// The mark key of document `doc`.
pub fn document_mark_key(doc: u8, groups: usize) -> Key {
    document_key(doc, DOCUMENT_DATA_KEYS, groups)
}

/// The document whose mark key is `key`, if it is one.
pub fn document_of_mark(key: Key, groups: usize) -> Option<u8> {
    (0..DOCUMENTS).find(|&doc| document_mark_key(doc, groups) == key)
}

/// How a recovered state relates to a [`GroupedModel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// Each group's verdict (`None`: not judged, a group that failed at open).
    pub verdicts: Vec<Option<Verdict>>,
}

impl Judgement {
    /// The first group whose state is illegal (media damage does not excuse it).
    pub fn illegal(&self) -> Option<usize> {
        self.verdicts.iter().position(|v| *v == Some(Verdict::Illegal))
    }

    /// Whether some group lost its last durable group (legal only after media damage).
    pub fn lost_last_durable(&self) -> Option<usize> {
        self.verdicts.iter().position(|v| *v == Some(Verdict::LostLastDurable))
    }

    /// Each group's prefix length, where its verdict is a prefix.
    pub fn prefixes(&self) -> Vec<Option<usize>> {
        let prefix = |v: &Option<Verdict>| if let Some(Verdict::Prefix { k }) = v { Some(*k) } else { None };
        self.verdicts.iter().map(prefix).collect()
    }
}

/// One [`KvModel`] per key group; see the module docs.
#[derive(Clone, Debug)]
pub struct GroupedModel {
    /// Each group's model.
    pub models: Vec<KvModel>,
}

impl GroupedModel {
    /// A model of `groups` empty groups (at least one).
    pub fn new(groups: usize) -> Self {
        Self { models: vec![KvModel::default(); groups.max(1)] }
    }

    /// The number of groups.
    pub fn groups(&self) -> usize {
        self.models.len()
    }

    /// The group of `key`.
    pub fn group_of(&self, key: Key) -> usize {
        group_of(key, self.groups())
    }

    /// The model of `key`'s group.
    pub fn model_of(&self, key: Key) -> &KvModel {
        &self.models[self.group_of(key)]
    }

    /// Records a commit in the model of its group (the group of its first write; every write
    /// must be in it). A durable commit makes its group's earlier transactions durable; a
    /// durable commit of nothing stands for a sync of every group.
    pub fn commit(&mut self, writes: Vec<Write>, ack: Ack) {
        self.commit_txn(writes.into_iter().map(TxnWrite::Set).collect(), ack);
    }

    /// Records a commit whose writes may hold increments, as [`GroupedModel::commit`].
    pub fn commit_txn(&mut self, writes: Vec<TxnWrite>, ack: Ack) {
        let group = writes.first().map_or(0, |write| self.group_of(write.key()));
        debug_assert!(
            writes.iter().all(|write| self.group_of(write.key()) == group),
            "a transaction spans shards: {writes:?}"
        );
        let sync_all = writes.is_empty() && ack == Ack::Durable;
        self.models[group].commit_txn(writes, ack);
        if sync_all {
            self.synced();
        }
    }

    /// Records a successful sync of every group.
    pub fn synced(&mut self) {
        for model in &mut self.models {
            model.synced();
        }
    }

    /// Records a successful sync of one group.
    pub fn synced_group(&mut self, group: usize) {
        if let Some(model) = self.models.get_mut(group) {
            model.synced();
        }
    }

    /// Whether an indeterminate transaction touched `key`.
    pub fn uncertain(&self, key: Key) -> bool {
        self.model_of(key).uncertain(key)
    }

    /// What a read of `key` must return, if no indeterminate transaction touched it.
    pub fn expected(&self, key: Key) -> Option<Value> {
        self.model_of(key).expected(key)
    }

    /// Durable transactions so far, all groups together (the watermark of reports).
    pub fn durable_txns(&self) -> u64 {
        self.models.iter().map(|m| m.base_txns + m.durable_prefix() as u64).sum()
    }

    /// `state` split by group.
    pub fn split(&self, state: &BTreeMap<Key, Value>) -> Vec<BTreeMap<Key, Value>> {
        let mut out = vec![BTreeMap::new(); self.groups()];
        for (&key, &value) in state {
            out[self.group_of(key)].insert(key, value);
        }
        out
    }

    /// Judges a recovered state, group by group.
    pub fn judge(&self, recovered: &BTreeMap<Key, Value>) -> Judgement {
        self.judge_except(recovered, &[])
    }

    /// Judges a recovered state, group by group, except the groups `unjudged` (failed at
    /// open: their keys are absent from `recovered`, and their models keep every pending
    /// commit until a later recovery of them is judged).
    pub fn judge_except(&self, recovered: &BTreeMap<Key, Value>, unjudged: &[usize]) -> Judgement {
        let parts = self.split(recovered);
        let verdicts = self.models.iter().zip(&parts).enumerate().map(|(group, (model, part))| {
            debug_assert!(
                !unjudged.contains(&group) || part.is_empty(),
                "a group failed at open has keys in the recovered state"
            );
            (!unjudged.contains(&group)).then(|| model.verdict(part))
        });
        Judgement { verdicts: verdicts.collect() }
    }

    /// What to note of a judgement that found every group a legal prefix.
    pub fn describe_prefixes(&self, judgement: &Judgement) -> String {
        let prefixes = judgement.prefixes();
        if let ([Some(k)], [model]) = (prefixes.as_slice(), self.models.as_slice()) {
            return format!("recovered a legal prefix: {k} of {} txns", model.txns.len());
        }
        let each: Vec<String> = prefixes
            .iter()
            .zip(&judgement.verdicts)
            .zip(&self.models)
            .map(|((k, verdict), m)| match (k, verdict) {
                (_, None) => format!("failed/{}", m.txns.len()),
                (Some(k), _) => format!("{k}/{}", m.txns.len()),
                (None, _) => format!("-/{}", m.txns.len()),
            })
            .collect();
        if judgement.verdicts.contains(&None) {
            return format!("recovered a legal prefix of every shard that opened: {}", each.join(" "));
        }
        format!("recovered a legal prefix of every shard: {}", each.join(" "))
    }

    /// Starts over from a verified recovered state; `prefixes` as [`Judgement::prefixes`].
    pub fn rebase_at(&mut self, recovered: &BTreeMap<Key, Value>, prefixes: &[Option<usize>]) {
        self.rebase_except(recovered, prefixes, &[]);
    }

    /// As [`GroupedModel::rebase_at`], except the groups `unjudged`, whose models keep their
    /// base and pending commits (see [`GroupedModel::judge_except`]).
    pub fn rebase_except(
        &mut self,
        recovered: &BTreeMap<Key, Value>,
        prefixes: &[Option<usize>],
        unjudged: &[usize],
    ) {
        let parts = self.split(recovered);
        for (group, (model, part)) in self.models.iter_mut().zip(parts).enumerate() {
            if !unjudged.contains(&group) {
                model.rebase_at(part, prefixes.get(group).copied().flatten());
            }
        }
    }

    /// Starts over from an empty store (after a wipe), keeping the watermark.
    pub fn wiped(&mut self) {
        for model in &mut self.models {
            *model = KvModel { base_txns: model.base_txns, ..KvModel::default() };
        }
    }

    /// Expected versus got for group `group`, against its state through its last durable
    /// transaction.
    pub fn describe_divergence(&self, group: usize, recovered: &BTreeMap<Key, Value>) -> String {
        let model = &self.models[group];
        let recovered = &self.split(recovered)[group];
        let durable = model.durable_prefix();
        let expected = model.state_after(durable);
        let mut differences = Vec::new();
        for key in expected.keys().chain(recovered.keys()) {
            let (want, got) = (expected.get(key), recovered.get(key));
            if want != got && !differences.iter().any(|(k, _, _)| k == key) {
                differences.push((*key, want.copied(), got.copied()));
            }
        }
        let shown: Vec<String> = differences
            .iter()
            .take(8)
            .map(|(key, want, got)| format!("key {key}: expected {want:?}, got {got:?}"))
            .collect();
        let which = if self.groups() > 1 { format!("shard {group}: ") } else { String::new() };
        format!(
            "{which}recovered state is no legal prefix of the {} committed txns ({durable} acknowledged durable); \
             against the durable prefix: {}",
            model.txns.len(),
            shown.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(Key, Value)]) -> BTreeMap<Key, Value> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn each_group_is_its_own_prefix() {
        let mut model = GroupedModel::new(2);
        model.commit(vec![(0, Some(1))], Ack::Unsynced);
        model.commit(vec![(1, Some(2))], Ack::Durable);
        model.commit(vec![(2, Some(3))], Ack::Unsynced);
        // Group 1's durable commit makes nothing of group 0 durable: group 0 may lose both
        // (one model of the whole store would refuse this state: txn 2 is durable, txn 1 is
        // before it and lost).
        let judged = model.judge(&state(&[(1, 2)]));
        assert_eq!(judged.prefixes(), vec![Some(0), Some(1)]);
        // Within a group the prefix rule holds: group 0 kept its second txn without its first.
        assert_eq!(model.judge(&state(&[(1, 2), (2, 3)])).illegal(), Some(0));
        assert_eq!(model.judge(&state(&[(0, 1), (1, 2), (2, 3)])).prefixes(), vec![Some(2), Some(1)]);
        let lost = model.judge(&state(&[(0, 1)]));
        assert_eq!(
            (lost.illegal(), lost.lost_last_durable()),
            (None, Some(1)),
            "only media damage excuses it"
        );
        model.commit(vec![(3, Some(4))], Ack::Durable);
        assert_eq!(model.judge(&state(&[(0, 1)])).illegal(), Some(1), "a newer durable txn vouches");
        model.commit(Vec::new(), Ack::Durable);
        let synced = model.judge(&state(&[(1, 2), (3, 4)]));
        assert_eq!(
            synced.prefixes(),
            vec![None, Some(2)],
            "a sync of every group: group 0 must keep its txns"
        );
    }

    #[test]
    fn groups_failed_at_open_are_not_judged_and_keep_their_pending_commits() {
        let mut model = GroupedModel::new(2);
        model.commit(vec![(0, Some(1))], Ack::Durable);
        model.commit(vec![(2, Some(3))], Ack::Durable);
        model.commit(vec![(1, Some(2))], Ack::Durable);
        // Group 1 failed at open: only group 0 is judged, and judged for real.
        let recovered = state(&[(0, 1), (2, 3)]);
        let judged = model.judge_except(&recovered, &[1]);
        assert_eq!(judged.verdicts, vec![Some(Verdict::Prefix { k: 2 }), None]);
        assert_eq!(model.judge_except(&state(&[]), &[1]).illegal(), Some(0), "group 0 lost durable txns");
        assert!(model.describe_prefixes(&judged).ends_with("every shard that opened: 2/2 failed/1"));
        model.rebase_except(&recovered, &judged.prefixes(), &[1]);
        assert!(model.models[0].txns.is_empty());
        // A later recovery of group 1 is judged against every commit it had pending.
        assert_eq!(model.models[1].txns.len(), 1);
        assert_eq!(model.judge(&recovered).lost_last_durable(), Some(1), "group 1's durable txn is owed");
        assert_eq!(model.judge(&state(&[(0, 1), (1, 2), (2, 3)])).prefixes(), vec![Some(0), Some(1)]);
    }

    #[test]
    fn one_group_speaks_as_one_model() {
        let mut grouped = GroupedModel::new(1);
        let mut single = KvModel::default();
        for (writes, ack) in [(vec![(1, Some(10))], Ack::Durable), (vec![(2, Some(20))], Ack::Unsynced)] {
            grouped.commit(writes.clone(), ack);
            single.commit(writes, ack);
        }
        let recovered = state(&[(2, 20)]);
        assert_eq!(grouped.judge(&recovered).verdicts, vec![Some(single.verdict(&recovered))]);
        assert_eq!(
            grouped.describe_prefixes(&grouped.judge(&state(&[(1, 10)]))),
            "recovered a legal prefix: 1 of 2 txns"
        );
        assert!(
            grouped
                .describe_divergence(0, &recovered)
                .starts_with("recovered state is no legal prefix of the 2")
        );
    }

    #[test]
    fn document_keys_stay_in_their_group_and_apart() {
        for groups in 1..=4 {
            let mut seen = std::collections::BTreeSet::new();
            for doc in 0..DOCUMENTS {
                let group = document_group(doc, groups);
                let mark = document_mark_key(doc, groups);
                assert_eq!(document_of_mark(mark, groups), Some(doc));
                for (key, _) in document_writes(doc, groups).into_iter().chain([(mark, None)]) {
                    assert_eq!(group_of(key, groups), group);
                    assert!(key >= DOCUMENT_KEYS_BASE && key != 0xffff);
                    assert!(seen.insert(key), "key {key} used twice");
                }
            }
        }
    }
}
