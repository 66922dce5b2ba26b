//! The shard's in-memory state as layers, so a checkpoint can freeze it in O(1) and write it
//! outside the shard's lock while commits go on.
//!
//! # Representation (decided: an `Arc` base plus delta layers, not a persistent map)
//!
//! ```text
//!   delta   BTreeMap<key, Option<value>>   changes since the freeze (None: deleted)   newest
//!   frozen  Arc<BTreeMap<key, Option<..>>> changes the in-flight checkpoint covers
//!   base    Arc<BTreeMap<key, value>>      the state at the last published checkpoint  oldest
//! ```
//!
//! A read looks in `delta`, then `frozen`, then `base`; the first layer holding the key wins,
//! and a `None` there means the key is absent. Commits write only `delta`.
//!
//! - [`State::freeze`] moves `delta` into a new `frozen` layer (a pointer move) and hands out
//!   a [`FrozenView`] (clones of the two `Arc`s) that the checkpoint writer reads without
//!   the lock: nothing mutates `base` or `frozen` while a view may exist.
//! - Once the checkpoint is published and the writer dropped its view, [`State::merge_step`]
//!   folds `frozen` into `base` in bounded slices (`Arc::get_mut`/`make_mut` mutate both in
//!   place, since no other holder is left), each slice under the lock for a short time.
//!   Popping a key from `frozen` and writing it to `base` in the same step keeps every read
//!   unchanged.
//! - `delta` is exactly the set of keys changed since the last checkpoint (the incremental
//!   checkpoint's content moves with the freeze), so no separate changed-key set is kept.
//! - A range delete ([`State::remove_range`]) writes one tombstone into `delta` for every key
//!   present in `start..end` in the merged view (delta, frozen, base), so it hides the keys of
//!   the frozen layer and the base at once, and the frozen layer it ends up in holds exactly
//!   the keys it removed. Decided against a range tombstone: the checkpoint's `DATA` format
//!   lists deleted keys, so a range tombstone would have to be expanded against the base when
//!   the checkpoint is written, and every read would have to search the range tombstones; a
//!   per-key tombstone costs what main's range delete already cost (a visit of each key).
//!
//! A persistent map would make freezing and merging free but costs every read and write a
//! path copy and a heap allocation per node; the layers keep the plain `BTreeMap` fast path.
//!
//! # Invariants
//!
//! - at most one frozen layer; `freeze` first finishes any merge left;
//! - `base` holds no tombstones, and every key of every layer is a state key (namespaced).

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::{Bound, Range, RangeBounds};
use std::sync::Arc;

use super::Bytes;

/// A layer of changes: `None` marks a deleted key.
pub type Layer = BTreeMap<Bytes, Option<Bytes>>;

/// The layered state (see the module docs).
#[derive(Debug, Default)]
pub struct State {
    base: Arc<BTreeMap<Bytes, Bytes>>,
    frozen: Option<Arc<Layer>>,
    delta: Layer,
}

/// What a checkpoint writer reads outside the lock: the base and the frozen changes.
#[derive(Clone, Debug)]
pub struct FrozenView {
    /// The state at the last published checkpoint.
    pub base: Arc<BTreeMap<Bytes, Bytes>>,
    /// The changes since then, up to the freeze.
    pub frozen: Arc<Layer>,
}

impl FrozenView {
    /// The whole state at the freeze (for a full checkpoint).
    pub fn full(&self) -> BTreeMap<Bytes, Bytes> {
        let mut state = (*self.base).clone();
        for (key, value) in self.frozen.iter() {
            match value {
                Some(value) => state.insert(key.clone(), value.clone()),
                None => state.remove(key),
            };
        }
        state
    }

    /// The entries of the state at the freeze with keys after `after` (all of them with
    /// `None`), in key order: what a full checkpoint streams, without copying the base.
    pub fn full_after<'a>(
        &'a self,
        after: Option<&Bytes>,
    ) -> impl Iterator<Item = (&'a Bytes, &'a Bytes)> + use<'a> {
        let range = (after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.clone())), Bound::Unbounded);
        let frozen: LayerIter<'a> = Box::new(self.frozen.range(range.clone()).map(|(k, v)| (k, v.as_ref())));
        let base: LayerIter<'a> = Box::new(self.base.range(range).map(|(k, v)| (k, Some(v))));
        let none: LayerIter<'a> = Box::new(std::iter::empty());
        Merge { layers: [frozen, base, none].map(Iterator::peekable), reverse: false }
    }

    /// The frozen changes with keys after `after`, in key order (`None`: deleted): what an
    /// incremental checkpoint streams.
    pub fn changes_after<'a>(
        &'a self,
        after: Option<&Bytes>,
    ) -> impl Iterator<Item = (&'a Bytes, Option<&'a Bytes>)> + use<'a> {
        let range = (after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.clone())), Bound::Unbounded);
        self.frozen.range(range).map(|(k, v)| (k, v.as_ref()))
    }

    /// An upper bound of the entries a checkpoint of this view holds (full: the base's keys
    /// and the frozen ones; incremental: the frozen ones), for pacing its writing.
    pub fn entries_max(&self, full: bool) -> u64 {
        (self.frozen.len() + if full { self.base.len() } else { 0 }) as u64
    }
}

impl State {
    /// A state with `base` (a recovered checkpoint) and no changes.
    pub fn from_base(base: BTreeMap<Bytes, Bytes>) -> Self {
        Self { base: Arc::new(base), frozen: None, delta: Layer::new() }
    }

    /// The value of state key `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        if let Some(value) = self.delta.get(key) {
            return value.as_ref();
        }
        if let Some(value) = self.frozen.as_ref().and_then(|f| f.get(key)) {
            return value.as_ref();
        }
        self.base.get(key)
    }

    /// Whether state key `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` (a change since the last checkpoint).
    pub fn insert(&mut self, key: Bytes, value: Bytes) {
        self.delta.insert(key, Some(value));
    }

    /// Removes `key` (a change since the last checkpoint).
    pub fn remove(&mut self, key: Bytes) {
        self.delta.insert(key, None);
    }

    /// The keys changed since the last published or frozen checkpoint, with their values.
    pub fn delta(&self) -> &Layer {
        &self.delta
    }

    /// Whether a frozen layer exists (a checkpoint is in flight or its merge is unfinished).
    pub fn has_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// The present entries with keys in `range`, in ascending key order, newest layer winning.
    pub fn range<'a, R: RangeBounds<Bytes> + Clone + 'a>(
        &'a self,
        range: R,
    ) -> impl Iterator<Item = (&'a Bytes, &'a Bytes)> + 'a {
        Merge {
            layers: self.layers(range).map(|l| (Box::new(l) as LayerIter<'a>).peekable()),
            reverse: false,
        }
    }

    /// [`State::range`] in descending key order.
    pub fn range_rev<'a, R: RangeBounds<Bytes> + Clone + 'a>(
        &'a self,
        range: R,
    ) -> impl Iterator<Item = (&'a Bytes, &'a Bytes)> + 'a {
        let layers = self.layers(range).map(|l| (Box::new(l.rev()) as LayerIter<'a>).peekable());
        Merge { layers, reverse: true }
    }

    /// Each layer's entries in `range`, newest layer first.
    fn layers<'a, R: RangeBounds<Bytes> + Clone + 'a>(&'a self, range: R) -> [LayerRange<'a>; 3] {
        let delta: LayerRange<'a> = Box::new(self.delta.range(range.clone()).map(|(k, v)| (k, v.as_ref())));
        let frozen: LayerRange<'a> = match &self.frozen {
            Some(frozen) => Box::new(frozen.range(range.clone()).map(|(k, v)| (k, v.as_ref()))),
            None => Box::new(std::iter::empty()),
        };
        let base: LayerRange<'a> = Box::new(self.base.range(range).map(|(k, v)| (k, Some(v))));
        [delta, frozen, base]
    }

    /// Removes every present key in `range` (a change since the last checkpoint): one
    /// tombstone in the delta per key, so the keys of the frozen layer and the base are hidden
    /// and an incremental checkpoint lists each of them as deleted. Returns how many keys it
    /// removed.
    pub fn remove_range(&mut self, range: Range<Bytes>) -> usize {
        if range.start >= range.end {
            return 0;
        }
        let doomed: Vec<Bytes> = self.range(range).map(|(key, _)| key.clone()).collect();
        let removed = doomed.len();
        for key in doomed {
            self.delta.insert(key, None);
        }
        removed
    }

    /// Freezes the changes since the last checkpoint into the frozen layer and returns the
    /// view a checkpoint writer reads. Finishes any merge left first.
    pub fn freeze(&mut self) -> FrozenView {
        while !self.merge_step(usize::MAX) {}
        let frozen = Arc::new(std::mem::take(&mut self.delta));
        self.frozen = Some(Arc::clone(&frozen));
        FrozenView { base: Arc::clone(&self.base), frozen }
    }

    /// Folds up to `max_keys` keys of the frozen layer into the base; returns whether the
    /// frozen layer is gone. Call only once no [`FrozenView`] is held (else the base would be
    /// copied whole).
    pub fn merge_step(&mut self, max_keys: usize) -> bool {
        let Some(frozen) = self.frozen.as_mut() else { return true };
        let frozen = Arc::make_mut(frozen);
        let base = Arc::make_mut(&mut self.base);
        for _ in 0..max_keys {
            let Some((key, value)) = frozen.pop_first() else { break };
            match value {
                Some(value) => base.insert(key, value),
                None => base.remove(&key),
            };
        }
        if frozen.is_empty() {
            self.frozen = None;
        }
        self.frozen.is_none()
    }
}

type LayerRange<'a> = Box<dyn DoubleEndedIterator<Item = (&'a Bytes, Option<&'a Bytes>)> + 'a>;
type LayerIter<'a> = Box<dyn Iterator<Item = (&'a Bytes, Option<&'a Bytes>)> + 'a>;

/// A merge of sorted layers, newest first; a key takes the newest layer's value. With
/// `reverse`, the layers run in descending order and the merge takes the largest key first.
struct Merge<'a> {
    layers: [Peekable<LayerIter<'a>>; 3],
    reverse: bool,
}

impl<'a> Iterator for Merge<'a> {
    type Item = (&'a Bytes, &'a Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let heads = self.layers.iter_mut().filter_map(|l| l.peek().map(|(k, _)| *k));
            let key = if self.reverse { heads.max()? } else { heads.min()? };
            let mut newest = None;
            for layer in &mut self.layers {
                if let Some(&(k, value)) = layer.peek()
                    && k == key
                {
                    layer.next();
                    newest.get_or_insert(value);
                }
            }
            if let Some(Some(value)) = newest {
                return Some((key, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        s.as_bytes().to_vec()
    }

    #[test]
    fn reads_take_the_newest_layer_and_merging_keeps_them() {
        let mut state = State::from_base([(b("a"), b("1")), (b("b"), b("1")), (b("c"), b("1"))].into());
        state.insert(b("b"), b("2"));
        state.remove(b("c"));
        let view = state.freeze();
        state.insert(b("a"), b("3"));
        state.insert(b("d"), b("3"));
        state.remove(b("b"));
        let all = |s: &State| {
            s.range::<std::ops::RangeFull>(..).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
        };
        let expected = vec![(b("a"), b("3")), (b("d"), b("3"))];
        assert_eq!(all(&state), expected);
        assert_eq!(state.get(b"b"), None);
        // The view is the state at the freeze, whatever happened after.
        assert_eq!(view.full(), [(b("a"), b("1")), (b("b"), b("2"))].into());
        drop(view);
        assert!(!state.merge_step(1), "one key per step: two frozen keys take two steps");
        assert_eq!(all(&state), expected);
        assert!(state.merge_step(1));
        assert_eq!(all(&state), expected);
        assert_eq!(state.delta().len(), 3, "the changes since the freeze stay the delta");
    }

    #[test]
    fn merging_mutates_the_base_in_place_when_no_view_is_held() {
        let mut state = State::from_base([(b("a"), b("1"))].into());
        state.insert(b("b"), b("2"));
        let base_before = Arc::as_ptr(&state.base);
        drop(state.freeze());
        assert!(state.merge_step(16));
        assert_eq!(Arc::as_ptr(&state.base), base_before, "no copy of the base");
        assert!(!state.has_frozen());
    }

    fn all(state: &State) -> Vec<(Bytes, Bytes)> {
        state.range::<std::ops::RangeFull>(..).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn all_rev(state: &State) -> Vec<(Bytes, Bytes)> {
        state.range_rev::<std::ops::RangeFull>(..).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn pairs(entries: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        entries.iter().map(|(k, v)| (b(k), b(v))).collect()
    }

    #[test]
    fn a_range_delete_in_the_delta_hides_keys_of_the_frozen_layer_and_the_base() {
        let mut state = State::from_base([(b("a"), b("1")), (b("c"), b("1")), (b("e"), b("1"))].into());
        state.insert(b("b"), b("2"));
        state.insert(b("d"), b("2"));
        let view = state.freeze();
        state.insert(b("bb"), b("3"));
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
        let tombstones: Vec<&Bytes> =
            state.delta().iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
        assert_eq!(tombstones, [&b("b"), &b("bb"), &b("c"), &b("d")], "one tombstone per removed key");
    }

    #[test]
    fn a_frozen_layer_with_range_deletes_checkpoints_exactly() {
        let mut state = State::from_base([(b("k1"), b("1")), (b("k2"), b("1")), (b("k3"), b("1"))].into());
        state.insert(b("k4"), b("2"));
        state.remove_range(b("k2")..b("k4"));
        state.insert(b("k3"), b("again"));
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
            view.frozen.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let expected_frozen = vec![(b("k2"), None), (b("k3"), Some(b("again"))), (b("k4"), Some(b("2")))];
        assert_eq!(frozen, expected_frozen);
        // Applying the incremental to its parent (the base) gives the full checkpoint.
        let mut parent: BTreeMap<Bytes, Bytes> = (*view.base).clone();
        for (key, value) in frozen {
            match value {
                Some(value) => drop(parent.insert(key, value)),
                None => drop(parent.remove(&key)),
            }
        }
        assert_eq!(parent, view.full());
    }
}
