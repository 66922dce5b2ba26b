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

/// A small deterministic generator (xorshift), so the comparison below covers many mixes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn changes(view: &FrozenView, after: Option<&[u8]>) -> Vec<(Bytes, Option<Bytes>)> {
    view.changes_after(after).map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect()
}

/// Replays the same random puts, deletes and range deletes into `replayed` (through
/// `set_in_replay`) and `reference` (through `set_in`, every change in the delta).
fn replay_both(rng: &mut Rng, replayed: &mut State, reference: &mut State, ops: usize) {
    for _ in 0..ops {
        let at = rng.below(300);
        let key = format!("k{at:03}").into_bytes();
        match rng.below(10) {
            0 => {
                replayed.set_in(0, &key, None);
                reference.set_in(0, &key, None);
            }
            1 => {
                // Short ranges (and an inverted one now and then), so base keys stay.
                let end = format!("k{:03}", (at + rng.below(12)).saturating_sub(2)).into_bytes();
                assert_eq!(
                    replayed.remove_range_in(&[0], &key, &end),
                    reference.remove_range_in(&[0], &key, &end)
                );
            }
            _ => {
                let value = vec![b'a' + rng.below(26) as u8; 1 + rng.below(3) as usize];
                replayed.set_in_replay(0, &key, Some(&value));
                reference.set_in(0, &key, Some(&value));
            }
        }
    }
}

#[test]
fn replay_overwrites_in_the_base_read_and_checkpoint_as_the_delta_would() {
    for seed in 1..40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let base: BTreeMap<Bytes, Bytes> = (0..300u64)
            .filter(|_| rng.below(3) != 0)
            .map(|i| ([&[0u8][..], format!("k{i:03}").as_bytes()].concat(), vec![b'0'; 1 + (i % 3) as usize]))
            .collect();
        let (mut replayed, mut reference) = (State::from_base(base.clone()), State::from_base(base.clone()));
        for round in 0..3 {
            replay_both(&mut rng, &mut replayed, &mut reference, 200);
            assert_eq!(all(&replayed), all(&reference), "seed {seed} round {round}");
            for i in 0..300 {
                let key = [&[0u8][..], format!("k{i:03}").as_bytes()].concat();
                assert_eq!(replayed.get(&key), reference.get(&key), "seed {seed} key {i}");
            }
            assert!(
                replayed.delta().len() < reference.delta().len(),
                "seed {seed} round {round}: some overwrites went in place ({} {})",
                replayed.delta().len(),
                reference.delta().len()
            );
            assert!(replayed.has_changes());
            let (view, reference_view) = (replayed.freeze(), reference.freeze());
            assert!(!replayed.has_changes(), "the freeze takes the in-place marks");
            assert_eq!(view.full(), reference_view.full(), "the full checkpoint");
            // The incremental checkpoint lists the same changes, from any key on.
            let listed = changes(&reference_view, None);
            assert_eq!(changes(&view, None), listed, "seed {seed} round {round}");
            for (key, _) in listed.iter().step_by(5) {
                assert_eq!(changes(&view, Some(key)), changes(&reference_view, Some(key)));
            }
            assert!(view.entries_max(false) >= listed.len() as u64);
            // After the freeze (a view held, a frozen layer): replay writes only the delta.
            replay_both(&mut rng, &mut replayed, &mut reference, 50);
            assert_eq!(replayed.delta().len(), reference.delta().len(), "no in-place write beside a view");
            drop((view, reference_view));
            while !replayed.merge_step(7) {}
            while !reference.merge_step(7) {}
            assert_eq!(all(&replayed), all(&reference), "seed {seed} round {round}, merged");
        }
    }
}

#[test]
fn a_replayed_tail_of_same_length_overwrites_adds_no_memory() {
    let value = vec![7u8; 100];
    let base: BTreeMap<Bytes, Bytes> =
        (0..20_000u32).map(|i| ([&[0u8][..], &i.to_be_bytes()].concat(), value.clone())).collect();
    let mut state = State::from_base(base);
    let base_bytes = state.base.allocated_bytes();
    for round in 0..4u8 {
        for i in 0..20_000u32 {
            state.set_in_replay(0, &i.to_be_bytes(), Some(&[round; 100]));
        }
    }
    assert!(state.delta().is_empty(), "every overwrite went into the base");
    assert_eq!(state.base.allocated_bytes(), base_bytes);
    assert_eq!(state.touched.len(), 20_000);
    assert_eq!(state.get(&[0, 0, 0, 0, 9]), Some(&[3u8; 100][..]));
    // Another length, a new key, a delete: the delta, as before.
    state.set_in_replay(0, &5u32.to_be_bytes(), Some(b"short"));
    state.set_in_replay(0, b"new", Some(&[3u8; 100]));
    state.set_in(0, &6u32.to_be_bytes(), None);
    assert_eq!(state.delta().len(), 3);
    assert_eq!(state.get(&[0, 0, 0, 0, 5]), Some(&b"short"[..]));
    assert_eq!(state.get(&[0, 0, 0, 0, 6]), None);
}

/// Entries of a run, copied out.
fn run_entries(run: &Run) -> Vec<(Bytes, Bytes)> {
    run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

#[test]
fn moving_a_runs_front_by_block_reads_and_counts_as_pushing_each_entry() {
    // Values from a byte to past a block, so moves hand blocks over whole, copy byte ranges
    // that fit the room and split those that do not, and copy oversized entries.
    let block = crate::checkpoint::run::BLOCK_BYTES as u64;
    for seed in 1..40u64 {
        let mut rng = Rng(seed * 0x9E37_79B9);
        let big = rng.below(4) == 0;
        let entries: Vec<(Bytes, Bytes)> = (0..300u64)
            .map(|i| {
                let len = if big && rng.below(50) == 0 { block + rng.below(1000) } else { rng.below(40_000) };
                (format!("k{i:05}").into_bytes(), vec![i as u8; len as usize])
            })
            .collect();
        let mut source: Run = entries.iter().cloned().collect();
        let mut into: Run = [(b("a"), vec![1u8; rng.below(block) as usize])].into_iter().collect();
        let mut expected = run_entries(&into);
        while !source.is_empty() {
            let most = if rng.below(3) == 0 { 200 } else { 12 };
            let n = (rng.below(most) as usize).min(source.len());
            let moved: Vec<_> = source.iter().take(n).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            source.move_front_into(n, &mut into);
            expected.extend(moved);
            assert_eq!(run_entries(&into), expected, "seed {seed}");
            let live: u64 = expected.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
            assert_eq!(into.live_bytes(), live, "seed {seed}: payload counted");
            let rest: u64 = source.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
            assert_eq!(source.live_bytes(), rest, "seed {seed}: payload left");
        }
        assert_eq!(source.allocated_bytes(), 0, "seed {seed}: every source block freed or handed over");
        // The moved run packs about as densely as one pushed entry by entry.
        let pushed: Run = expected.iter().cloned().collect();
        let (held, dense) = (into.allocated_bytes(), pushed.allocated_bytes());
        assert!(held <= dense + dense / 4 + block as usize, "seed {seed}: {held} against {dense}");
        for (key, value) in &expected {
            assert_eq!(into.get(key), Some(&value[..]), "seed {seed}: searchable");
        }
    }
}

#[test]
fn the_state_takes_a_packed_frozen_layer_only_from_its_own_freeze() {
    let mut state = State::from_base([(b("a"), b("1")), (b("c"), b("1"))].into());
    state.insert(b"b", b"2");
    state.remove(b"c");
    let view = state.freeze();
    let before = all(&state);
    let packed = view.packed();
    assert_eq!(packed.full(), view.full(), "the same state");
    assert_eq!(changes(&packed, None), changes(&view, None), "the same changes");
    assert!(state.adopt_packed(&view, &packed));
    assert!(Arc::ptr_eq(state.frozen.as_ref().expect("frozen"), &packed.frozen), "the copy is the layer now");
    assert_eq!(all(&state), before);
    assert_eq!(state.get(b"c"), None, "the tombstone is packed too");
    drop((view, packed));
    while !state.merge_step(1) {}
    state.insert(b"d", b"3");
    let stale = state.freeze();
    let old = FrozenView { frozen: Arc::new(Layer::default()), ..stale.clone() };
    assert!(!state.adopt_packed(&old, &old.packed()), "a view of another frozen layer is refused");
    assert_eq!(state.get(b"d"), Some(&b"3"[..]));
}

/// The state's present entries, both ways, against `model`, and point reads of `probes`.
fn check_against(state: &State, model: &BTreeMap<Bytes, Bytes>, probes: &[Bytes], at: &str) {
    let expected: Vec<(Bytes, Bytes)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(all(state), expected, "{at}: range");
    assert_eq!(all_rev(state), expected.iter().rev().cloned().collect::<Vec<_>>(), "{at}: range_rev");
    for key in probes {
        assert_eq!(state.get(key), model.get(key).map(Vec::as_slice), "{at}: get {key:?}");
    }
}

/// A full checkpoint's stream of `view`, whole and resumed after a random key, against `model`.
fn check_view(view: &FrozenView, model: &BTreeMap<Bytes, Bytes>, rng: &mut Rng, at: &str) {
    assert_eq!(&view.full(), model, "{at}: the view");
    let after = model.keys().nth(rng.below(model.len() as u64 + 1) as usize);
    let rest: Vec<(Bytes, Bytes)> =
        view.full_after(after.map(Vec::as_slice)).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let expected: Vec<(Bytes, Bytes)> =
        model.range::<Bytes, _>((start, Bound::Unbounded)).map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(rest, expected, "{at}: the view after {after:?}");
}

#[test]
fn merges_in_random_slices_keep_every_read_equal_to_a_model_on_random_and_appended_keys() {
    let mut appends_seen = 0;
    for seed in 1..60u64 {
        let mut rng = Rng(seed * 0x9E37_79B9 + 1);
        let (mut state, mut model) = (State::default(), BTreeMap::<Bytes, Bytes>::new());
        // Appended keys run above every random one ("k..." < "s..."), ascending.
        let mut next_append = 0u64;
        for op in 0..600 {
            let appending = (op / 100) % 2 == 1 || seed % 3 == 0;
            let pick = rng.below(10);
            let key = if appending && pick > 0 {
                // Now and then the largest key again: a frozen key equal to the base's last.
                next_append += if pick == 1 { 0 } else { 1 + rng.below(3) };
                format!("s{next_append:06}").into_bytes()
            } else {
                format!("k{:03}", rng.below(200)).into_bytes()
            };
            match rng.below(20) {
                0 => {
                    state.remove(&key);
                    model.remove(&key);
                }
                1 => {
                    let end = [&key[..], b"5"].concat();
                    let removed = model.range(key.clone()..end.clone()).count();
                    assert_eq!(state.remove_range(key.clone()..end.clone()), removed, "seed {seed} op {op}");
                    model.retain(|k, _| !(key <= *k && *k < end));
                }
                2 | 3 => {
                    if state.frozen.is_none() || state.merged.is_none() {
                        let frozen_keys_above = state
                            .delta
                            .first_key()
                            .is_none_or(|first| state.base.last_key().is_none_or(|last| last < first));
                        appends_seen += usize::from(frozen_keys_above && !state.base.is_empty());
                    }
                    let view = state.freeze();
                    check_view(&view, &model, &mut rng, &format!("seed {seed} op {op}"));
                }
                4..=6 if state.has_frozen() => {
                    let _ = state.merge_step(1 + rng.below(40) as usize);
                }
                _ => {
                    let value = vec![b'a' + rng.below(26) as u8; 1 + rng.below(4) as usize];
                    state.insert(&key, &value);
                    model.insert(key.clone(), value);
                }
            }
            if op % 7 == 0 {
                let probes = [key, b("k000"), format!("s{next_append:06}").into_bytes(), b("s000001")];
                check_against(&state, &model, &probes, &format!("seed {seed} op {op}"));
            }
        }
        while !state.merge_step(1 + rng.below(40) as usize) {
            check_against(&state, &model, &[], &format!("seed {seed}: the last merge"));
        }
        check_against(&state, &model, &[], &format!("seed {seed}: merged"));
    }
    assert!(appends_seen > 50, "the append fast path ran {appends_seen} times");
}

#[test]
fn an_appended_frozen_layer_that_is_a_run_already_is_handed_to_the_base_in_one_step() {
    let base: BTreeMap<Bytes, Bytes> =
        (0..10_000).map(|i| (format!("k{i:06}").into_bytes(), b("v"))).collect();
    let mut state = State::from_base(base);
    // Ascending keys, a same-length overwrite in place among them: no garbage, no tombstone.
    for i in 10_000..10_100 {
        state.insert(format!("k{i:06}").as_bytes(), b"w");
    }
    state.insert(b"k010050", b"x");
    let view = state.freeze();
    let frozen_blocks = view.frozen.block_addresses();
    let live_bytes = state.base.live_bytes() + 100 * 8;
    // Shared with a view, the layer is not taken: the first slice merges as before.
    let mut shared =
        State { base: Arc::clone(&state.base), frozen: state.frozen.clone(), ..State::default() };
    assert!(!shared.adopt_frozen(), "a layer a view holds stays where it is");
    drop((view, shared));
    assert!(state.merge_step(1), "one step, whatever the budget");
    assert!(state.frozen.is_none() && state.merged.is_none());
    assert_eq!(state.base.len(), 10_100);
    assert_eq!(state.base.live_bytes(), live_bytes, "the payload of every entry counted");
    let base_blocks = state.base.block_addresses();
    assert!(
        frozen_blocks.iter().all(|block| base_blocks.contains(block)),
        "the frozen layer's blocks are the base's now: no entry was copied"
    );
    assert_eq!(state.get(b"k009999"), Some(&b"v"[..]));
    assert_eq!(state.get(b"k010050"), Some(&b"x"[..]));
    assert_eq!(state.get(b"k010099"), Some(&b"w"[..]));
    let keys: Vec<Bytes> = all(&state).into_iter().map(|(k, _)| k).collect();
    let expected: Vec<Bytes> = (0..10_100).map(|i| format!("k{i:06}").into_bytes()).collect();
    assert_eq!(keys, expected);
    // The base goes on growing after the adopted blocks.
    state.insert(b"k010100", b"y");
    drop(state.freeze());
    assert!(state.merge_step(usize::MAX));
    assert_eq!(state.base.len(), 10_101);
    assert_eq!(state.get(b"k010100"), Some(&b"y"[..]));
}

#[test]
fn merging_an_appended_frozen_layer_takes_the_whole_base_in_its_first_slice() {
    let base: BTreeMap<Bytes, Bytes> =
        (0..10_000).map(|i| (format!("k{i:06}").into_bytes(), b("v"))).collect();
    let mut state = State::from_base(base);
    for i in 10_000..10_100 {
        state.insert(format!("k{i:06}").as_bytes(), b"w");
    }
    // A tombstone among them: the layer is no run, so it is merged slice by slice.
    state.remove(b"k010100");
    drop(state.freeze());
    // One key of budget: the whole old base goes behind the cursor at once, unchanged.
    assert!(!state.merge_step(1));
    assert!(state.base.is_empty(), "the old base went whole");
    assert_eq!(state.merged.as_ref().map(Run::len), Some(10_001));
    assert_eq!(state.get(b"k009999"), Some(&b"v"[..]));
    assert_eq!(state.get(b"k010050"), Some(&b"w"[..]));
    while !state.merge_step(7) {}
    assert_eq!(state.base.len(), 10_100);
    assert_eq!(all(&state).len(), 10_100);
}
