//! The record format of the `wal` and `checkpoint` stores, and their replay: pure, no I/O.
//!
//! A transaction is `Begin`, one `Data` record per write, then `Commit` or `Abort`. A `Data`
//! payload is one write as a value (put or delete). A `Commit` payload is the transaction's
//! writes again, **as deltas**: a put is logged as `Add(key, new - old)` (wrapping) against the
//! committed state at the moment of the commit, a delete as a delete. Replay applies a
//! commit's deltas, so applying a committed transaction twice changes the state (replay is not
//! idempotent): rule 9 of DESIGN.md section 3 (records a checkpoint covers are never applied
//! again) becomes observable, and the key-value model, which knows only values, sees a
//! double application as a state no prefix of the committed transactions produces.
//!
//! ```text
//! one op, 7 bytes:  0 key u16 LE | 2 kind u8 (1 put, 2 delete, 3 add) | 3 value or delta u32 LE
//! Data payload:     one op (put or delete)
//! Commit payload:   n ops (add or delete), the transaction's writes in order
//! ```
//!
//! Which commits to apply is the kernel's decision, not this module's: [`Replay::visit`] takes
//! the `covered` flag that [`stormhold::checkpoint::recover`] hands its `Replayer` and applies a
//! commit only when it is not covered. A commit whose deltas do not line up with the `Data`
//! records replay saw of its transaction (its early records are missing: replay started too
//! late) applies the writes it has, as values, so the model sees exactly what is missing.
//!
//! The kernel's own shard record (`src/shard/record.rs`) keeps logging an increment as a put of
//! the new value, by decision: the shard resolves an increment under its commit lock against
//! the value it holds in memory anyway (it returns the new value to the caller), so a delta
//! would save no byte (both are 8-byte counters) and no work, and it would turn every replay
//! bug into silent counter drift, where a value record keeps replay idempotent on top of the
//! lsn rule (defence in depth). What a delta format buys is observability of rule 9, and that
//! is had here: the kernel's shards and this store share the one place that decides coverage,
//! [`stormhold::checkpoint::recover`] and its `covered` flag (`src/checkpoint/recovery.rs`), so
//! the `checkpoint` workload, whose commits log deltas, proves the kernel's decision; the
//! kernel's own use of it is one `if !covered` in `src/shard/recovery.rs`.
//!
//! Invariants: decoding never panics on any bytes; a counted `undecodable` record fails the
//! recovery that saw it (the store's caller turns it into a data-loss error).

use std::collections::BTreeMap;
use stormhold::wal::{Record, RecordKind};

use crate::kv::{Key, Value, Write};

/// Transaction ids of single-call commits, apart from the clients' ids.
pub(crate) const SINGLE_CALL_TXN_BASE: u64 = 1 << 62;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_ADD: u8 = 3;
const OP_BYTES: usize = 7;

/// One logged operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Sets the key to the value.
    Put(Key, Value),
    /// Removes the key.
    Delete(Key),
    /// Adds the delta to the key's value (absent counts as 0), wrapping.
    Add(Key, Value),
}

impl Op {
    fn key(self) -> Key {
        match self {
            Op::Put(key, _) | Op::Delete(key) | Op::Add(key, _) => key,
        }
    }

    fn encode(self) -> [u8; OP_BYTES] {
        let (key, kind, value) = match self {
            Op::Put(key, value) => (key, OP_PUT, value),
            Op::Delete(key) => (key, OP_DELETE, 0),
            Op::Add(key, delta) => (key, OP_ADD, delta),
        };
        let mut bytes = [0; OP_BYTES];
        bytes[0..2].copy_from_slice(&key.to_le_bytes());
        bytes[2] = kind;
        bytes[3..7].copy_from_slice(&value.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Op> {
        let key = Key::from_le_bytes(bytes.get(0..2)?.try_into().ok()?);
        let value = Value::from_le_bytes(bytes.get(3..7)?.try_into().ok()?);
        match (*bytes.get(2)?, bytes.len()) {
            (OP_PUT, OP_BYTES) => Some(Op::Put(key, value)),
            (OP_DELETE, OP_BYTES) => Some(Op::Delete(key)),
            (OP_ADD, OP_BYTES) => Some(Op::Add(key, value)),
            _ => None,
        }
    }

    fn apply(self, state: &mut BTreeMap<Key, Value>) {
        match self {
            Op::Put(key, value) => state.insert(key, value),
            Op::Delete(key) => state.remove(&key),
            Op::Add(key, delta) => {
                state.insert(key, state.get(&key).copied().unwrap_or(0).wrapping_add(delta))
            }
        };
    }
}

/// Encodes one write as a `Data` record payload.
pub(crate) fn encode_write((key, value): Write) -> [u8; OP_BYTES] {
    match value {
        Some(value) => Op::Put(key, value),
        None => Op::Delete(key),
    }
    .encode()
}

/// Decodes a `Data` record payload.
pub(crate) fn decode_write(bytes: &[u8]) -> Option<Write> {
    match Op::decode(bytes)? {
        Op::Put(key, value) => Some((key, Some(value))),
        Op::Delete(key) => Some((key, None)),
        Op::Add(..) => None,
    }
}

/// The `Commit` payload of `writes` committed on top of `state`: each put as a delta against
/// the value the key holds just before it (earlier writes of the transaction included).
pub(crate) fn encode_commit(state: &BTreeMap<Key, Value>, writes: &[Write]) -> Vec<u8> {
    let mut running: BTreeMap<Key, Option<Value>> = BTreeMap::new();
    let mut bytes = Vec::with_capacity(writes.len() * OP_BYTES);
    for &(key, value) in writes {
        let old = running.get(&key).copied().unwrap_or_else(|| state.get(&key).copied()).unwrap_or(0);
        let op = match value {
            Some(new) => Op::Add(key, new.wrapping_sub(old)),
            None => Op::Delete(key),
        };
        bytes.extend_from_slice(&op.encode());
        running.insert(key, value);
    }
    bytes
}

/// Decodes a `Commit` payload: adds and deletes only.
pub(crate) fn decode_commit(bytes: &[u8]) -> Option<Vec<Op>> {
    if !bytes.len().is_multiple_of(OP_BYTES) {
        return None;
    }
    bytes.chunks(OP_BYTES).map(|chunk| Op::decode(chunk).filter(|op| !matches!(op, Op::Put(..)))).collect()
}

/// Applies writes (values) in order.
pub(crate) fn apply(state: &mut BTreeMap<Key, Value>, writes: &[Write]) {
    for &(key, value) in writes {
        match value {
            Some(value) => state.insert(key, value),
            None => state.remove(&key),
        };
    }
}

/// Whether a commit's deltas are the writes replay saw of its transaction (same keys, same
/// kinds, same order).
fn lines_up(writes: &[Write], ops: &[Op]) -> bool {
    writes.len() == ops.len()
        && writes
            .iter()
            .zip(ops)
            .all(|(&(key, value), &op)| key == op.key() && value.is_some() == matches!(op, Op::Add(..)))
}

/// Rebuilds the committed state from the log's records, applying a commit only when the
/// caller says the state does not cover it yet (see the module docs).
#[derive(Default)]
pub(crate) struct Replay {
    pub state: BTreeMap<Key, Value>,
    pending: BTreeMap<u64, Vec<Write>>,
    pub undecodable: u64,
    pub max_single_txn: u64,
    /// Commits applied.
    pub applied: u64,
}

impl Replay {
    /// Replays on top of `state` (a checkpoint's, or empty).
    pub fn on(state: BTreeMap<Key, Value>) -> Self {
        Self { state, ..Self::default() }
    }

    /// Visits one record; `covered`: the state already includes its effect.
    pub fn visit(&mut self, record: Record, covered: bool) {
        if record.txn_id >= SINGLE_CALL_TXN_BASE {
            self.max_single_txn = self.max_single_txn.max(record.txn_id);
        }
        match record.kind {
            RecordKind::Begin => {
                self.pending.insert(record.txn_id, Vec::new());
            }
            RecordKind::Data => match decode_write(&record.payload) {
                Some(write) => self.pending.entry(record.txn_id).or_default().push(write),
                None => self.undecodable += 1,
            },
            RecordKind::Commit => {
                let writes = self.pending.remove(&record.txn_id).unwrap_or_default();
                let Some(ops) = decode_commit(&record.payload) else {
                    self.undecodable += 1;
                    return;
                };
                if covered {
                    return;
                }
                self.applied += 1;
                if lines_up(&writes, &ops) {
                    ops.iter().for_each(|op| op.apply(&mut self.state));
                } else {
                    apply(&mut self.state, &writes);
                }
            }
            RecordKind::Abort => {
                self.pending.remove(&record.txn_id);
            }
            _ => self.undecodable += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordKind, lsn: u64, txn_id: u64, payload: Vec<u8>) -> Record {
        Record { lsn, txn_id, prev_lsn: 0, kind, payload, segment_id: 1, durable_lsn: 0 }
    }

    /// Replays one transaction whose commit was logged on top of `committed_on`.
    fn txn(
        replay: &mut Replay,
        committed_on: &BTreeMap<Key, Value>,
        at: (u64, u64),
        writes: &[Write],
        covered: bool,
    ) {
        let (lsn, txn_id) = at;
        replay.visit(record(RecordKind::Begin, lsn, txn_id, Vec::new()), covered);
        for &write in writes {
            replay.visit(record(RecordKind::Data, lsn + 1, txn_id, encode_write(write).to_vec()), covered);
        }
        replay
            .visit(record(RecordKind::Commit, lsn + 2, txn_id, encode_commit(committed_on, writes)), covered);
    }

    #[test]
    fn writes_and_commits_round_trip_and_garbage_is_refused() {
        for write in [(3, Some(7)), (0xffff, None), (0, Some(u32::MAX))] {
            assert_eq!(decode_write(&encode_write(write)), Some(write));
        }
        assert_eq!(decode_write(&[1, 2, 9, 0, 0, 0, 0]), None);
        assert_eq!(decode_write(&[1, 2]), None);
        assert_eq!(decode_write(&Op::Add(1, 2).encode()), None, "a delta is no Data record");
        let state = BTreeMap::from([(1, 10)]);
        let ops = decode_commit(&encode_commit(&state, &[(1, Some(15)), (1, Some(3)), (2, None)]));
        assert_eq!(ops, Some(vec![Op::Add(1, 5), Op::Add(1, 3u32.wrapping_sub(15)), Op::Delete(2)]));
        assert_eq!(decode_commit(&[1, 0, 3, 0, 0, 0]), None, "not a whole op");
        assert_eq!(decode_commit(&Op::Put(1, 1).encode()), None, "a commit logs deltas");
    }

    #[test]
    fn a_commit_applied_twice_changes_the_state_and_a_covered_one_is_not_applied() {
        let first = [(1, Some(10)), (2, Some(20))];
        let second = [(1, Some(11)), (2, None)];
        let mut once = Replay::on(BTreeMap::new());
        txn(&mut once, &BTreeMap::new(), (1, 7), &first, false);
        let after_first = once.state.clone();
        txn(&mut once, &after_first, (4, 8), &second, false);
        assert_eq!((once.state.clone(), once.applied), (BTreeMap::from([(1, 11)]), 2));
        let checkpoint = once.state.clone();
        let mut covered = Replay::on(checkpoint.clone());
        txn(&mut covered, &after_first, (4, 8), &second, true);
        assert_eq!((covered.state.clone(), covered.applied), (checkpoint.clone(), 0));
        let mut twice = Replay::on(checkpoint);
        txn(&mut twice, &after_first, (4, 8), &second, false);
        assert_eq!(twice.state, BTreeMap::from([(1, 12)]), "the delta of +1 applied again");
    }

    #[test]
    fn a_commit_missing_its_early_records_applies_the_writes_replay_saw() {
        let mut replay = Replay::on(BTreeMap::new());
        let writes = [(1, Some(10)), (2, Some(20))];
        let commit = encode_commit(&BTreeMap::new(), &writes);
        replay.visit(record(RecordKind::Data, 3, 7, encode_write(writes[1]).to_vec()), false);
        replay.visit(record(RecordKind::Commit, 4, 7, commit), false);
        assert_eq!(replay.state, BTreeMap::from([(2, 20)]), "key 1's write is missing, and shows");
    }
}
