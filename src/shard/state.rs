//! The shard's in-memory state as layers, so a checkpoint can freeze it in O(1) and write it
//! outside the shard's lock while commits go on.
//!
//! # Representation (decided: a packed base run plus arena memtables, not a persistent map)
//!
//! ```text
//!   delta   Memtable                 changes since the freeze (None: deleted)         newest
//!   frozen  Arc<Memtable>            changes the in-flight checkpoint covers
//!   base    Arc<Run>                 the state at the last published checkpoint      oldest
//! ```
//!
//! The base is a packed, sorted, immutable [`Run`] (`crate::checkpoint::run`): entries back
//! to back in 1 MiB arena blocks, an 8-byte index slot each, searched by binary search; no
//! allocation per entry, about 16 bytes of overhead per entry. Recovery builds it straight
//! from the checkpoint's sorted stream. The delta and the frozen layer (bounded by the WAL
//! cap) are arena memtables ([`super::memtable`]): an entry appended to an arena in commit
//! order, a hash table (keyed by the shard's seed, which each new delta takes over from the
//! one it replaces) from key to its newest entry for O(1) inserts and point reads,
//! and a key order built on demand (for range reads, range deletes, the checkpoint writer
//! and the merge). Commits and WAL replay write a state key from its namespace byte and the
//! user key ([`State::set_in`]), so no key is built on their path. Measured against the
//! `BTreeMap` layers it replaced: see issues 11 and 12 (bulk load, recovery memory).
//!
//! A read looks in `delta`, then `frozen`, then the base; the first layer holding the key
//! wins, and a `None` there means the key is absent. Commits write only `delta`.
//!
//! - [`State::freeze`] moves `delta` into a new `frozen` layer (a pointer move) and hands out
//!   a [`FrozenView`] (clones of the two `Arc`s) that the checkpoint writer reads without
//!   the lock: nothing mutates `base` or `frozen` while a view may exist. The checkpoint
//!   writer's first step packs the frozen layer in key order outside the shard's lock
//!   ([`FrozenView::packed`], [`Memtable::packed`]) and the state takes the copy in its place
//!   ([`State::adopt_packed`]): the writer and then the merge read it front to back, not at
//!   a cache miss per entry (on random keys the layer's entries sit in commit order). A
//!   range read or range delete under the lock between the freeze and that step builds the
//!   original's key order there.
//! - Once the checkpoint is published and the writer dropped its view, [`State::merge_step`]
//!   folds `frozen` and the base into a new run in bounded slices, each under the lock for a
//!   short time: a **merge cursor**. Each slice takes the smallest keys left of `frozen` and
//!   of the old base (walking `frozen`'s key order from the cursor key `merge_after`,
//!   consuming them from the front of the old run; `frozen` wins a tie, a tombstone drops
//!   the key) and appends the result to the new run, `merged`. The frozen layer stays whole
//!   until the merge ends: a frozen key behind the cursor holds what `merged` holds (or a
//!   tombstone where it holds nothing), so reads that still consult it are unchanged. So
//!   at every moment every key of `merged` sorts below every key of `frozen` after the
//!   cursor and every key left in the old base: reads take keys below the cursor from
//!   `merged` and keys above it from `frozen` and the old base, and every read is unchanged
//!   by a slice.
//!   The old base's blocks wholly behind the cursor are freed as it goes (`Run::consume`;
//!   the `Arc` is unique then, the merge's precondition), so a merge holds about one copy of
//!   the state, not two. When both are empty, `merged` becomes the base.
//! - `delta` is the set of keys changed since the last checkpoint (the incremental
//!   checkpoint's content moves with the freeze), together with `touched`: the base entries
//!   that WAL replay overwrote in place ([`State::set_in_replay`], see [`touched`]). A
//!   same-length overwrite of a base key during replay is written into the base run itself
//!   (the `Arc` is unique then: no frozen layer, no merge, no view), marked in `touched`,
//!   and not copied into `delta`: a replayed WAL tail of overwrites costs no memory beyond
//!   the base. The freeze moves `touched` into the view with the base it indexes, and an
//!   incremental checkpoint lists those entries beside the frozen layer's.
//! - A range delete ([`State::remove_range`]) writes one tombstone into `delta` for every key
//!   present in `start..end` in the merged view (delta, frozen, base), so it hides the keys of
//!   the frozen layer and the base at once, and the frozen layer it ends up in holds exactly
//!   the keys it removed. Decided against a range tombstone: the checkpoint's `DATA` format
//!   lists deleted keys, so a range tombstone would have to be expanded against the base when
//!   the checkpoint is written, and every read would have to search the range tombstones; a
//!   per-key tombstone costs what main's range delete already cost (a visit of each key).
//!
//! A merge rewrites the whole base (the run is immutable), a memory-speed copy per checkpoint in
//! bounded slices, off the commit path: the old base's entries between two frozen keys move with
//! `Run::move_front_into` (a byte-range copy per block and an index slot per entry, or a whole
//! block handed over; no per-entry decode and re-encode); in exchange reads and recovery work over
//! one compact sorted array. The append fast path: when nothing is merged yet and every frozen key
//! sorts after the old base's last key (a sequential load), the old base becomes `merged` whole in
//! O(1) and only the frozen keys are pushed after it, so such a merge costs the delta, not the
//! state (a load of N bytes under a cap C: O(N), not O(N^2 / C)).
//!
//! # Invariants
//!
//! - at most one frozen layer; `freeze` first finishes any merge left;
//! - `merged` exists only while a frozen layer does (a merge is under way), and every key of
//!   `merged` sorts below every key of `frozen` after `merge_after` and every key left in
//!   the old base; `merged_frozen_keys` counts the frozen keys up to `merge_after`;
//! - the base holds no tombstones, and every key of every layer is a state key (namespaced);
//! - `touched` is empty unless the base holds exactly the last checkpoint's entries with the
//!   marked values overwritten, and marks are set only with no frozen layer, no `merged`
//!   and a uniquely owned base.

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::{Bound, Range, RangeBounds};
use std::sync::Arc;

use super::Bytes;
use super::memtable::Memtable;
use crate::checkpoint::run::{Fences, Run, RunIter};
use touched::{Changes, Touched};

mod touched;

/// A layer of changes: an arena memtable whose `None` values mark deleted keys.
pub type Layer = Memtable;

/// The layered state (see the module docs).
#[derive(Debug, Default)]
pub struct State {
    base: Arc<Run>,
    frozen: Option<Arc<Layer>>,
    /// The new base a merge under way builds: every key below the merge cursor.
    merged: Option<Run>,
    /// The merge cursor: the largest frozen key merged so far (`None`: none yet).
    merge_after: Option<Bytes>,
    /// Frozen keys merged so far.
    merged_frozen_keys: usize,
    delta: Layer,
    /// Base positions WAL replay overwrote in place since the base's checkpoint.
    touched: Touched,
    /// The state key being replayed, built here to look it up (reused: no allocation a record).
    replay_key: Bytes,
    /// The base's search aid for replay, sampled at the first replayed put (the base's keys
    /// never change in place, and the freeze drops it before a merge replaces the base).
    replay_fences: Option<Fences>,
}

/// What a checkpoint writer reads outside the lock: the base and the frozen changes.
#[derive(Clone, Debug)]
pub struct FrozenView {
    /// The state at the last published checkpoint.
    pub base: Arc<Run>,
    /// The changes since then, up to the freeze.
    pub frozen: Arc<Layer>,
    /// The base entries overwritten in place since then (changes too).
    touched: Arc<Touched>,
}

/// `Bound<&Vec<u8>>` as `Bound<&[u8]>`.
fn as_slice(bound: Bound<&Bytes>) -> Bound<&[u8]> {
    bound.map(Vec::as_slice)
}

fn after_bound(after: Option<&[u8]>) -> Bound<&[u8]> {
    after.map_or(Bound::Unbounded, Bound::Excluded)
}

impl FrozenView {
    /// The whole state at the freeze (for a full checkpoint), copied out.
    pub fn full(&self) -> BTreeMap<Bytes, Bytes> {
        self.full_after(None).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    /// The entries of the state at the freeze with keys after `after` (all of them with
    /// `None`), in key order: what a full checkpoint streams, without copying the base. When
    /// every frozen key left sorts after the base's last (a sequential load), the base's
    /// entries and then the frozen puts, chained, with no per-entry merge of the two.
    pub fn full_after<'a>(
        &'a self,
        after: Option<&[u8]>,
    ) -> Box<dyn Iterator<Item = (&'a [u8], &'a [u8])> + 'a> {
        let start = after_bound(after);
        let frozen = self.frozen.range(start, Bound::Unbounded);
        let base = self.base.range(start, Bound::Unbounded);
        // Every frozen key left above the base's last (a sequential load): the base, then the
        // frozen puts, with no per-entry comparison of the two.
        let mut first_frozen = self.frozen.range(start, Bound::Unbounded).map(|(k, _)| k);
        if first_frozen.next().is_none_or(|first| self.base.last_key().is_none_or(|last| last < first)) {
            let puts = frozen.filter_map(|(k, v)| v.map(|v| (k, v)));
            return Box::new(base.chain(puts));
        }
        let frozen: LayerIter<'a> = Box::new(frozen);
        let base: LayerIter<'a> = Box::new(base.map(|(k, v)| (k, Some(v))));
        let none: LayerIter<'a> = Box::new(std::iter::empty());
        Box::new(Merge { layers: [frozen, base, none].map(Iterator::peekable), reverse: false })
    }

    /// The frozen changes with keys after `after`, in key order (`None`: deleted): what an
    /// incremental checkpoint streams.
    pub fn changes_after<'a>(
        &'a self,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let start = after_bound(after);
        let from = self.base.positions(start, Bound::Unbounded).start;
        let base = &self.base;
        let touched = self.touched.iter_from(from).map(move |n| {
            let (key, value) = base.entry(n);
            (key, Some(value))
        });
        Changes { newer: self.frozen.range(start, Bound::Unbounded).peekable(), older: touched.peekable() }
    }

    /// This view with its frozen layer packed in key order ([`Memtable::packed`]), so the
    /// checkpoint writer and the merge read it front to back; call outside the shard's lock
    /// and hand the result to [`State::adopt_packed`].
    pub fn packed(&self) -> FrozenView {
        FrozenView { frozen: Arc::new(self.frozen.packed()), ..self.clone() }
    }

    /// Whether a checkpoint of this view (`full` or not) holds exactly the frozen layer's
    /// entries, and that layer is a run already ([`Memtable::is_run`]): its puts, no
    /// tombstone, in key order and back to back, which the writer can frame a stretch of a
    /// block at a time. A pass over the frozen layer's key table.
    pub fn frozen_alone_is_run(&self, full: bool) -> bool {
        self.touched.is_empty() && (!full || self.base.is_empty()) && self.frozen.is_run()
    }

    /// The frozen layer's entries from key number `from` on, a stretch of one block at a
    /// time ([`Memtable::run_stretch`]); only for a view whose
    /// [`FrozenView::frozen_alone_is_run`].
    pub fn frozen_stretch(&self, from: usize, max_bytes: usize) -> Option<super::memtable::RunStretch<'_>> {
        self.frozen.run_stretch(from, max_bytes)
    }

    /// An upper bound of the entries a checkpoint of this view holds (full: the base's keys
    /// and the frozen ones; incremental: the frozen ones), for pacing its writing.
    pub fn entries_max(&self, full: bool) -> u64 {
        (self.frozen.len() + if full { self.base.len() } else { self.touched.len() }) as u64
    }
}

impl State {
    /// A state with `base` (a recovered checkpoint) and no changes.
    pub fn from_run(base: Run) -> Self {
        Self { base: Arc::new(base), ..Self::default() }
    }

    /// This state, its layers' hashes keyed by `seed` (see `super::memtable`); call before
    /// any change.
    pub fn with_hash_seed(mut self, seed: u64) -> Self {
        assert!(self.delta.is_empty() && self.frozen.is_none(), "the seed is set before any change");
        self.delta = Layer::with_seed(seed);
        self
    }

    /// The seed of the layers' hashes.
    pub fn hash_seed(&self) -> u64 {
        self.delta.seed()
    }

    /// A state with the entries of `base` and no changes.
    pub fn from_base(base: BTreeMap<Bytes, Bytes>) -> Self {
        Self::from_run(base.iter().collect())
    }

    /// The value of state key `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        if let Some(value) = self.delta.get(key) {
            return value;
        }
        // A frozen key behind the merge cursor holds what `merged` holds (or a tombstone
        // where `merged` holds nothing): the frozen layer answers for it as well.
        if let Some(value) = self.frozen.as_ref().and_then(|f| f.get(key)) {
            return value;
        }
        match &self.merged {
            // Below the cursor only `merged` can hold the key, at or above it only the base.
            Some(merged) if merged.last_key().is_some_and(|last| key <= last) => merged.get(key),
            _ => self.base.get(key),
        }
    }

    /// Whether state key `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` (a change since the last checkpoint).
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.delta.insert(key, Some(value));
    }

    /// Removes `key` (a change since the last checkpoint).
    pub fn remove(&mut self, key: &[u8]) {
        self.delta.insert(key, None);
    }

    /// Sets the state key `[namespace] ++ key` without building it (the commit and replay
    /// path); `None` removes it.
    pub fn set_in(&mut self, namespace: u8, key: &[u8], value: Option<&[u8]>) {
        self.delta.insert_parts(&[namespace], key, value);
    }

    /// Loads the delta's hash slots of the state keys `[namespace] ++ key` ahead of their
    /// [`State::set_in`] (the commit path; see [`Memtable::warm_slots`]). Changes nothing.
    pub fn warm_in<'k>(&self, namespace: &'k [u8; 1], keys: impl IntoIterator<Item = &'k [u8]>) {
        self.delta.warm_slots(keys.into_iter().map(|key| (&namespace[..], key)));
    }

    /// Whether [`State::warm_in`] loads anything (the delta's slots are large).
    pub fn warms(&self) -> bool {
        self.delta.warms()
    }

    /// Sets the state key `[namespace] ++ key` during WAL replay: a same-length overwrite of
    /// a key only the base holds goes into the base in place (see the module docs), anything
    /// else into the delta as [`State::set_in`] does.
    pub fn set_in_replay(&mut self, namespace: u8, key: &[u8], value: Option<&[u8]>) {
        if let Some(value) = value
            && !self.base.is_empty()
            && self.frozen.is_none()
            && self.merged.is_none()
        {
            self.replay_key.clear();
            self.replay_key.push(namespace);
            self.replay_key.extend_from_slice(key);
            // A key the delta holds must change there (the delta wins over the base); during a
            // replay of same-length overwrites the delta stays empty, and the hash of every key
            // is skipped.
            if (self.delta.is_empty() || self.delta.get(&self.replay_key).is_none())
                && let Some(base) = Arc::get_mut(&mut self.base)
                && let Some(n) = base
                    .position_with(self.replay_fences.get_or_insert_with(|| base.fences()), &self.replay_key)
                && base.try_overwrite_value(n, value)
            {
                self.touched.mark(n, base.len());
                return;
            }
        }
        self.delta.insert_parts(&[namespace], key, value);
    }

    /// The keys changed since the last published or frozen checkpoint, with their values
    /// (beside them, base entries replay overwrote in place: see [`State::has_changes`]).
    pub fn delta(&self) -> &Layer {
        &self.delta
    }

    /// Whether anything changed since the last published or frozen checkpoint: the delta
    /// holds a key, or replay overwrote a base entry in place.
    pub fn has_changes(&self) -> bool {
        !self.delta.is_empty() || !self.touched.is_empty()
    }

    /// The smallest and largest key of each layer (the base's, the frozen layer's, the
    /// delta's; tombstones included): every key of the state sorts between two of them.
    pub fn layer_key_bounds(&self) -> impl Iterator<Item = &[u8]> {
        let base = [self.merged.as_ref(), Some(&*self.base)].into_iter().flatten();
        let base = base.flat_map(|run| [run.iter().next().map(|(k, _)| k), run.last_key()]);
        let layers = [self.frozen.as_deref(), Some(&self.delta)].into_iter().flatten();
        base.chain(layers.flat_map(|layer| [layer.first_key(), layer.last_key()])).flatten()
    }

    /// Whether a frozen layer exists (a checkpoint is in flight or its merge is unfinished).
    pub fn has_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Keys a merge of the frozen layer has still to visit (the old base's and the frozen
    /// layer's); 0 when no frozen layer exists.
    pub fn merge_keys_left(&self) -> usize {
        self.frozen.as_ref().map_or(0, |frozen| frozen.len() - self.merged_frozen_keys + self.base.len())
    }

    /// The present entries with keys in `range`, in ascending key order, newest layer winning.
    pub fn range<'a, R: RangeBounds<Bytes> + Clone + 'a>(
        &'a self,
        range: R,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        Merge {
            layers: self.layers(range).map(|l| (Box::new(l) as LayerIter<'a>).peekable()),
            reverse: false,
        }
    }

    /// [`State::range`] in descending key order.
    pub fn range_rev<'a, R: RangeBounds<Bytes> + Clone + 'a>(
        &'a self,
        range: R,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let layers = self.layers(range).map(|l| (Box::new(l.rev()) as LayerIter<'a>).peekable());
        Merge { layers, reverse: true }
    }

    /// Each layer's entries in `range`, newest layer first. The base is `merged` (below the
    /// cursor) chained with the old base (at or above it): a sorted sequence both ways.
    fn layers<'a, R: RangeBounds<Bytes> + Clone + 'a>(&'a self, range: R) -> [LayerRange<'a>; 3] {
        let (start, end) = (as_slice(range.start_bound()), as_slice(range.end_bound()));
        let delta: LayerRange<'a> = Box::new(self.delta.range(start, end));
        let frozen: LayerRange<'a> = match &self.frozen {
            Some(frozen) => Box::new(frozen.range(start, end)),
            None => Box::new(std::iter::empty()),
        };
        let below: RunIter<'a> = self.merged.as_ref().map_or_else(RunIter::empty, |m| m.range(start, end));
        let base = below.chain(self.base.range(start, end)).map(|(k, v)| (k, Some(v)));
        [delta, frozen, Box::new(base)]
    }

    /// Removes every present key in `range` (a change since the last checkpoint): one
    /// tombstone in the delta per key, so the keys of the frozen layer and the base are hidden
    /// and an incremental checkpoint lists each of them as deleted. Returns how many keys it
    /// removed.
    pub fn remove_range(&mut self, range: Range<Bytes>) -> usize {
        self.remove_range_in(&[], &range.start, &range.end)
    }

    /// [`State::remove_range`] of the state keys `[namespace] ++ start .. [namespace] ++ end`
    /// (an empty `namespace`: the keys as given), without building them.
    pub fn remove_range_in(&mut self, namespace: &[u8], start: &[u8], end: &[u8]) -> usize {
        let key = |k: &[u8]| [namespace, k].concat();
        let (start, end) = (key(start), key(end));
        if start >= end {
            return 0;
        }
        // The doomed keys back to back in one buffer: no allocation per key.
        let (mut doomed, mut ends) = (Vec::new(), Vec::new());
        for (key, _) in self.range(start..end) {
            doomed.extend_from_slice(key);
            ends.push(doomed.len());
        }
        let mut from = 0;
        for &to in &ends {
            self.delta.insert(&doomed[from..to], None);
            from = to;
        }
        ends.len()
    }

    /// Freezes the changes since the last checkpoint into the frozen layer and returns the
    /// view a checkpoint writer reads: O(1) once any merge left is finished (the frozen
    /// layer's key order is built by its first reader, the checkpoint writer, outside the
    /// shard's lock).
    pub fn freeze(&mut self) -> FrozenView {
        while !self.merge_step(usize::MAX) {}
        let next = Layer::with_seed(self.delta.seed());
        let frozen = Arc::new(std::mem::replace(&mut self.delta, next));
        self.frozen = Some(Arc::clone(&frozen));
        (self.merge_after, self.merged_frozen_keys) = (None, 0);
        let touched = Arc::new(std::mem::take(&mut self.touched));
        self.replay_fences = None;
        FrozenView { base: Arc::clone(&self.base), frozen, touched }
    }

    /// Takes `packed` (made by [`FrozenView::packed`] of `from`) as the frozen layer, if the
    /// frozen layer is still `from`'s: the same entries, so every read is unchanged. Returns
    /// whether it did.
    pub fn adopt_packed(&mut self, from: &FrozenView, packed: &FrozenView) -> bool {
        let same = self.frozen.as_ref().is_some_and(|frozen| Arc::ptr_eq(frozen, &from.frozen))
            && Arc::ptr_eq(&from.base, &packed.base);
        if same {
            debug_assert_eq!(from.frozen.len(), packed.frozen.len(), "a packed copy holds every key");
            self.frozen = Some(Arc::clone(&packed.frozen));
        }
        same
    }

    /// Moves up to `max_keys` keys (of the frozen layer and of the old base) behind the
    /// merge cursor (see the module docs); returns whether the merge is over (no frozen
    /// layer left). Call only once no [`FrozenView`] is held (else the base would be copied
    /// whole).
    pub fn merge_step(&mut self, max_keys: usize) -> bool {
        if self.merged.is_none() && self.adopt_frozen() {
            return true;
        }
        let Some(frozen) = self.frozen.as_ref() else { return true };
        let base = Arc::make_mut(&mut self.base);
        let merged = self.merged.get_or_insert_with(|| Run::with_capacity(base.len() + frozen.len()));
        let mut changes = frozen.range(after_bound(self.merge_after.as_deref()), Bound::Unbounded).peekable();
        // The append fast path: with nothing merged yet and every frozen key left above the
        // old base's last key (a sequential load), the whole old base goes behind the cursor
        // unchanged: it becomes `merged` as it is (O(1), no block or index slot rewritten)
        // and only the frozen keys are pushed after it.
        let appends = changes.peek().is_none_or(|&(key, _)| base.last_key().is_none_or(|last| last < key));
        if merged.is_empty() && appends {
            std::mem::swap(merged, base);
        }
        let mut budget = max_keys;
        let mut last = None;
        while budget > 0 {
            // The old base below the next frozen key, as far as the budget goes.
            let below = changes.peek().map_or(base.len(), |&(key, _)| base.lower_bound_from_front(key));
            let copied = below.min(budget);
            // Untouched base entries move by block or byte range, not one by one.
            base.move_front_into(copied, merged);
            budget -= copied;
            if budget == 0 {
                break;
            }
            let Some((key, value)) = changes.next() else { break };
            if base.iter().next().is_some_and(|(k, _)| k == key) {
                base.consume(1);
            }
            if let Some(value) = value {
                merged.push(key, value);
            }
            (last, budget) = (Some(key), budget - 1);
            self.merged_frozen_keys += 1;
        }
        let frozen_done = changes.peek().is_none();
        if let Some(key) = last {
            self.merge_after = Some(key.to_vec());
        }
        drop(changes);
        if frozen_done && base.is_empty() {
            self.base = Arc::new(self.merged.take().unwrap_or_default());
            (self.frozen, self.merge_after, self.merged_frozen_keys) = (None, None, 0);
        }
        self.frozen.is_none()
    }
}

impl State {
    /// The append fast path without a copy: a frozen layer that is a run already (its keys
    /// came ascending, no tombstone, no garbage: `Memtable::into_run_parts`), every key above
    /// the base's last, and owned by the state alone, has its blocks handed to the base in
    /// one step (an index slot per entry). Returns whether it did (the merge is then over).
    fn adopt_frozen(&mut self) -> bool {
        let Some(frozen) = self.frozen.take_if(|frozen| {
            Arc::strong_count(frozen) == 1
                && frozen.first_key().is_none_or(|first| self.base.last_key().is_none_or(|last| last < first))
                && frozen.is_run()
        }) else {
            return false;
        };
        let parts = Arc::try_unwrap(frozen).expect("the state holds the frozen layer alone").into_run_parts();
        Arc::make_mut(&mut self.base).adopt_blocks(parts.blocks, &parts.positions, parts.payload_bytes);
        (self.merge_after, self.merged_frozen_keys) = (None, 0);
        true
    }
}

type LayerRange<'a> = Box<dyn DoubleEndedIterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a>;
type LayerIter<'a> = Box<dyn Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a>;

/// A merge of sorted layers, newest first; a key takes the newest layer's value. With
/// `reverse`, the layers run in descending order and the merge takes the largest key first.
struct Merge<'a> {
    layers: [Peekable<LayerIter<'a>>; 3],
    reverse: bool,
}

impl<'a> Iterator for Merge<'a> {
    type Item = (&'a [u8], &'a [u8]);

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
mod tests;
