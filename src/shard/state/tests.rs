//! Unit tests of the layered state: reads across layers, range deletes, merge slices.

use super::*;

fn b(s: &str) -> Bytes {
    s.as_bytes().to_vec()
}

#[test]
fn reads_take_the_newest_layer_and_merging_keeps_them() {
    let mut state = State::from_base([(b("a"), b("1")), (b("b"), b("1")), (b("c"), b("1"))].into());
    state.insert(b"b", b"2");
    state.remove(b"c");
    let view = state.freeze();
    state.insert(b"a", b"3");
    state.insert(b"d", b"3");
    state.remove(b"b");
    let all = |s: &State| {
        s.range::<std::ops::RangeFull>(..).map(|(k, v)| (k.to_vec(), v.to_vec())).collect::<Vec<_>>()
    };
    let expected = vec![(b("a"), b("3")), (b("d"), b("3"))];
    assert_eq!(all(&state), expected);
    assert_eq!(state.get(b"b"), None);
    // The view is the state at the freeze, whatever happened after.
    assert_eq!(view.full(), [(b("a"), b("1")), (b("b"), b("2"))].into());
    drop(view);
    // One key per step: a (base only), b and c (frozen over base) take three steps.
    assert!(!state.merge_step(1));
    assert_eq!(all(&state), expected);
    assert!(!state.merge_step(1));
    assert_eq!(all(&state), expected);
    assert!(state.merge_step(1));
    assert_eq!(all(&state), expected);
    assert_eq!(state.delta().len(), 3, "the changes since the freeze stay the delta");
}

#[test]
fn merging_frees_the_old_base_behind_the_cursor_so_memory_never_doubles() {
    // Ten blocks' worth of base, one change at each end.
    let value = vec![7u8; 1000];
    let entries = 10 * crate::checkpoint::run::BLOCK_BYTES / 1000;
    let base: BTreeMap<Bytes, Bytes> =
        (0..entries).map(|i| (format!("k{i:08}").into_bytes(), value.clone())).collect();
    let mut state = State::from_base(base);
    let before = state.base.allocated_bytes();
    state.remove(b"k00000000");
    state.insert(b"z", b"last");
    drop(state.freeze());
    let mut steps = 0;
    while !state.merge_step(entries / 20) {
        steps += 1;
        let held = state.base.allocated_bytes() + state.merged.as_ref().map_or(0, Run::allocated_bytes);
        // One block in flight on each side and the two indexes: far from twice the base.
        assert!(held <= before + 3 * crate::checkpoint::run::BLOCK_BYTES, "step {steps}: {held} > {before}");
        assert_eq!(state.get(b"k00000001").map(<[u8]>::len), Some(1000), "reads hold mid-merge");
        assert_eq!(state.get(b"z"), Some(&b"last"[..]));
    }
    assert!(steps >= 10, "bounded steps: {steps}");
    assert!(!state.has_frozen());
    assert_eq!(state.base.len(), entries);
    assert_eq!(state.get(b"k00000000"), None);
    assert_eq!(state.range_rev::<std::ops::RangeFull>(..).next(), Some((&b"z"[..], &b"last"[..])));
}

fn all(state: &State) -> Vec<(Bytes, Bytes)> {
    state.range::<std::ops::RangeFull>(..).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

fn all_rev(state: &State) -> Vec<(Bytes, Bytes)> {
    state.range_rev::<std::ops::RangeFull>(..).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

fn pairs(entries: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
    entries.iter().map(|(k, v)| (b(k), b(v))).collect()
}

#[test]
fn a_range_delete_in_the_delta_hides_keys_of_the_frozen_layer_and_the_base() {
    let mut state = State::from_base([(b("a"), b("1")), (b("c"), b("1")), (b("e"), b("1"))].into());
    state.insert(b"b", b"2");
    state.insert(b"d", b"2");
    let view = state.freeze();
    state.insert(b"bb", b"3");
    // b, d (frozen), bb (delta) and c (base) are in b..e; a and e are not.
    assert_eq!(state.remove_range(b("b")..b("e")), 4);
    assert_eq!(all(&state), pairs(&[("a", "1"), ("e", "1")]));
    assert_eq!(all_rev(&state), pairs(&[("e", "1"), ("a", "1")]), "reverse reads agree");
    assert_eq!(state.get(b"c"), None, "a base key is hidden");
    assert_eq!(state.get(b"d"), None, "a frozen key is hidden");
    // The checkpoint in flight still sees the state at its freeze.
    let at_freeze = pairs(&[("a", "1"), ("b", "2"), ("c", "1"), ("d", "2"), ("e", "1")]);
    assert_eq!(view.full().into_iter().collect::<Vec<_>>(), at_freeze);
    drop(view);
    while !state.merge_step(1) {
        assert_eq!(all(&state), pairs(&[("a", "1"), ("e", "1")]), "every merge slice keeps reads");
    }
    assert_eq!(all(&state), pairs(&[("a", "1"), ("e", "1")]));
    let tombstones: Vec<&[u8]> = state.delta().iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
    assert_eq!(tombstones, [&b"b"[..], b"bb", b"c", b"d"], "one tombstone per removed key");
}

#[test]
fn a_frozen_layer_with_range_deletes_checkpoints_exactly() {
    let mut state = State::from_base([(b("k1"), b("1")), (b("k2"), b("1")), (b("k3"), b("1"))].into());
    state.insert(b"k4", b"2");
    state.remove_range(b("k2")..b("k4"));
    state.insert(b"k3", b"again");
    assert_eq!(state.remove_range(b("z")..b("a")), 0, "an inverted range removes nothing");
    assert_eq!(state.remove_range(b("x")..b("y")), 0, "an empty one neither");
    let view = state.freeze();
    // A range delete after the freeze changes neither the frozen layer nor the view.
    state.remove_range(b("k")..b("l"));
    assert_eq!(all(&state), Vec::new());
    // The full checkpoint is the state at the freeze; the incremental one is the frozen
    // layer: the put-after-delete stays a put, the deleted base key is a tombstone.
    let expected = pairs(&[("k1", "1"), ("k3", "again"), ("k4", "2")]);
    assert_eq!(view.full().into_iter().collect::<Vec<_>>(), expected);
    let frozen: Vec<(Bytes, Option<Bytes>)> =
        view.frozen.iter().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect();
    let expected_frozen = vec![(b("k2"), None), (b("k3"), Some(b("again"))), (b("k4"), Some(b("2")))];
    assert_eq!(frozen, expected_frozen);
    // Applying the incremental to its parent (the base) gives the full checkpoint.
    let mut parent: BTreeMap<Bytes, Bytes> =
        view.base.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    for (key, value) in frozen {
        match value {
            Some(value) => drop(parent.insert(key, value)),
            None => drop(parent.remove(&key)),
        }
    }
    assert_eq!(parent, view.full());
}
