//! The layered shard state (packed base run, frozen and delta arena memtables, merge cursor)
//! against plain `BTreeMap` models: random inserts and overwrites, removes (tombstones), range
//! removes, batches of inserts with no read between them (so reads find unsorted appends),
//! freezes (the frozen view checked against the model at the freeze, its changes against the
//! changes since the last freeze), merge steps of random sizes; after every operation point
//! reads, scans in both directions, and the delta's changes (tombstones included) and key
//! bounds.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use stormhold::checkpoint::run::Run;
use stormhold::shard::state::State;

type Bytes = Vec<u8>;

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, u8),
    /// Keys `k, k + step, ...` (mod 64), `n` of them, with no read in between.
    InsertMany(u8, u8, u8, u8),
    Remove(u8),
    RemoveRange(u8, u8),
    Freeze,
    DropView,
    Merge(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Insert(k % 64, v)),
        2 => (any::<u8>(), 1u8..12, 1u8..20, any::<u8>()).prop_map(|(k, s, n, v)| Op::InsertMany(k % 64, s, n, v)),
        2 => any::<u8>().prop_map(|k| Op::Remove(k % 64)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::RemoveRange(a % 64, b % 64)),
        1 => Just(Op::Freeze),
        1 => Just(Op::DropView),
        2 => (1usize..20).prop_map(Op::Merge),
    ]
}

/// A key of `k` with a length that varies, so keys of different lengths interleave.
fn key(k: u8) -> Bytes {
    let mut key = vec![1, k];
    key.extend(std::iter::repeat_n(b'x', usize::from(k % 3)));
    key
}

/// A value of `v`, now and then large enough to span block boundaries of the run.
fn value(v: u8) -> Bytes {
    let len = if v.is_multiple_of(37) { 300_000 + usize::from(v) } else { usize::from(v % 7) };
    vec![v; len]
}

fn check_reads(state: &State, model: &BTreeMap<Bytes, Bytes>, bounds: (u8, u8)) {
    for k in 0..64 {
        assert_eq!(state.get(&key(k)), model.get(&key(k)).map(Vec::as_slice), "get {k}");
    }
    let all: Vec<(&[u8], &[u8])> = state.range::<std::ops::RangeFull>(..).collect();
    let expected: Vec<(&[u8], &[u8])> = model.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    assert_eq!(all, expected, "forward scan");
    let mut backwards: Vec<(&[u8], &[u8])> = state.range_rev::<std::ops::RangeFull>(..).collect();
    backwards.reverse();
    assert_eq!(backwards, expected, "reverse scan");
    let (lo, hi) = (key(bounds.0.min(bounds.1) % 64), key(bounds.0.max(bounds.1) % 64));
    let range = (Bound::Excluded(lo.clone()), Bound::Included(hi.clone()));
    if lo < hi {
        let got: Vec<&[u8]> = state.range(range.clone()).map(|(k, _)| k).collect();
        let want: Vec<&[u8]> = model.range(range.clone()).map(|(k, _)| k.as_slice()).collect();
        assert_eq!(got, want, "bounded scan");
        let got_rev: Vec<&[u8]> = state.range_rev(range.clone()).map(|(k, _)| k).collect();
        let want_rev: Vec<&[u8]> = model.range(range).rev().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(got_rev, want_rev, "bounded reverse scan");
    }
}

type Changes = BTreeMap<Bytes, Option<Bytes>>;

/// The changes of a layer (tombstones as `None`), in key order.
fn changes<'a>(entries: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>) -> Changes {
    let mut out = Changes::new();
    let mut last: Option<Bytes> = None;
    for (key, value) in entries {
        assert!(last.as_deref().is_none_or(|l| l < key), "a layer's keys strictly increase");
        last = Some(key.to_vec());
        out.insert(key.to_vec(), value.map(<[u8]>::to_vec));
    }
    out
}

fn check_delta(state: &State, delta: &Changes) {
    assert_eq!(&changes(state.delta().iter()), delta, "the delta is the changes since the freeze");
    assert_eq!(&changes(state.delta().iter().rev().collect::<Vec<_>>().into_iter().rev()), delta, "reversed");
    assert_eq!(state.delta().first_key(), delta.keys().next().map(Vec::as_slice), "first changed key");
    assert_eq!(state.delta().last_key(), delta.keys().next_back().map(Vec::as_slice), "last changed key");
    for (key, value) in delta {
        assert_eq!(state.delta().get(key), Some(value.as_deref()), "delta get");
    }
}

fn initial() -> impl Strategy<Value = BTreeMap<Bytes, Bytes>> {
    prop::collection::btree_map(any::<u8>().prop_map(|k| key(k % 64)), any::<u8>().prop_map(value), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_layered_state_reads_like_a_plain_map_at_every_step(
        base in initial(),
        ops in prop::collection::vec(op(), 1..80),
        bounds in (any::<u8>(), any::<u8>()),
    ) {
        let mut model = base.clone();
        let mut delta = Changes::new();
        let mut state = State::from_run(base.iter().collect::<Run>());
        let mut view = None;
        check_reads(&state, &model, bounds);
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    state.insert(&key(k), &value(v));
                    model.insert(key(k), value(v));
                    delta.insert(key(k), Some(value(v)));
                }
                Op::InsertMany(k, step, n, v) => {
                    for i in 0..n {
                        let (k, v) = (k.wrapping_add(i.wrapping_mul(step)) % 64, v.wrapping_add(i));
                        // Through the parts, as commits and replay write.
                        state.set_in(key(k)[0], &key(k)[1..], Some(&value(v)));
                        model.insert(key(k), value(v));
                        delta.insert(key(k), Some(value(v)));
                    }
                }
                Op::Remove(k) => {
                    state.remove(&key(k));
                    model.remove(&key(k));
                    delta.insert(key(k), None);
                }
                Op::RemoveRange(a, b) => {
                    let (start, end) = (key(a), key(b));
                    let doomed: Vec<Bytes> = model.keys().filter(|k| **k >= start && **k < end).cloned().collect();
                    prop_assert_eq!(state.remove_range(start.clone()..end.clone()), doomed.len());
                    model.retain(|k, _| !(*k >= start && *k < end));
                    delta.extend(doomed.into_iter().map(|k| (k, None)));
                }
                // A freeze while a view is held is not what the shard does (one checkpoint
                // in flight at a time, the merge after its publication).
                Op::Freeze if view.is_none() => {
                    let frozen = state.freeze();
                    prop_assert_eq!(&frozen.full(), &model, "the view is the state at the freeze");
                    let frozen_changes = changes(frozen.changes_after(None));
                    prop_assert_eq!(&frozen_changes, &delta, "the frozen layer is the changes since the last freeze");
                    if let Some(after) = delta.keys().nth(delta.len() / 2) {
                        let tail: Changes = delta.range::<Bytes, _>((Bound::Excluded(after), Bound::Unbounded))
                            .map(|(k, v)| (k.clone(), v.clone())).collect();
                        prop_assert_eq!(changes(frozen.changes_after(Some(after))), tail, "changes after a key");
                    }
                    delta.clear();
                    view = Some(frozen);
                }
                Op::DropView => view = None,
                Op::Merge(keys) if view.is_none() => drop(state.merge_step(keys)),
                Op::Freeze | Op::Merge(_) => {}
            }
            check_reads(&state, &model, bounds);
            check_delta(&state, &delta);
        }
        while !state.merge_step(7) {
            check_reads(&state, &model, bounds);
        }
        check_reads(&state, &model, bounds);
    }
}
