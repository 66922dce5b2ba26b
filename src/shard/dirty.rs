//! `DirtyKeys`: the state keys changed since the last checkpoint, for an incremental
//! checkpoint, or the knowledge that so many changed that the next checkpoint is full.
//!
//! An incremental checkpoint is worth its parent chain only while it is smaller than the
//! state. Once the changed keys number more than half the state (and at least
//! [`DIRTY_KEYS_EXACT_MIN`]), as in a bulk load into a new or small store, the set is
//! dropped and no key is noted any more: each write then costs one map insert instead of two
//! and one key allocation instead of two, and the next checkpoint is a full one, which writes
//! at most twice the entries the incremental would have (the state is under twice the
//! changed keys). `perf` put the set at a fifth of a bulk load's kernel time.
//!
//! Invariants:
//! - `all` or not, [`DirtyKeys::is_empty`] is true only when nothing changed since the last
//!   checkpoint (a shard with nothing new publishes nothing);
//! - while not `all`, `keys` holds every state key changed since the last checkpoint (its
//!   value is in the state; a key absent there was deleted); once `all`, `keys` is empty;
//! - [`DirtyKeys::clear`] (a published checkpoint) is the only way back from `all`.

use std::collections::BTreeSet;

use super::Bytes;

/// Changed keys below which the set is kept whatever the state's size (a small state's
/// incremental checkpoints are cheap either way).
pub(super) const DIRTY_KEYS_EXACT_MIN: usize = 1024;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct DirtyKeys {
    keys: BTreeSet<Bytes>,
    all: bool,
}

impl DirtyKeys {
    /// Whether nothing changed since the last checkpoint.
    pub(super) fn is_empty(&self) -> bool {
        !self.all && self.keys.is_empty()
    }

    /// Whether each changed key is still noted (else the next checkpoint is full).
    pub(super) fn tracking(&self) -> bool {
        !self.all
    }

    /// Notes that `key` changed, in a state now of `state_len` entries; gives the set up once
    /// it outgrows half the state.
    pub(super) fn insert(&mut self, key: Bytes, state_len: usize) {
        if self.all {
            return;
        }
        self.keys.insert(key);
        let changed = self.keys.len();
        if changed >= DIRTY_KEYS_EXACT_MIN && changed.saturating_mul(2) > state_len {
            self.keys = BTreeSet::new();
            self.all = true;
        }
    }

    /// The changed keys, or `None` when so many changed that the next checkpoint is full.
    pub(super) fn keys(&self) -> Option<&BTreeSet<Bytes>> {
        (!self.all).then_some(&self.keys)
    }

    /// Forgets every change: a checkpoint covering them was published.
    pub(super) fn clear(&mut self) {
        self.keys.clear();
        self.all = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> Bytes {
        n.to_be_bytes().to_vec()
    }

    #[test]
    fn a_small_change_set_is_kept_exactly() {
        let mut dirty = DirtyKeys::default();
        assert!(dirty.is_empty());
        // A big state, a few changes (one twice): every key is noted once.
        for n in [3, 1, 3, 2] {
            dirty.insert(key(n), 1_000_000);
        }
        assert!(!dirty.is_empty() && dirty.tracking());
        let keys: Vec<Bytes> = dirty.keys().unwrap().iter().cloned().collect();
        assert_eq!(keys, vec![key(1), key(2), key(3)]);
        dirty.clear();
        assert!(dirty.is_empty() && dirty.keys().unwrap().is_empty());
    }

    #[test]
    fn a_change_set_past_half_the_state_turns_into_a_full_checkpoint_until_cleared() {
        let mut dirty = DirtyKeys::default();
        // A bulk load into an empty store: the state grows with the changes.
        for n in 0..DIRTY_KEYS_EXACT_MIN - 1 {
            dirty.insert(key(n), n + 1);
            assert!(dirty.tracking(), "below the minimum the set is kept ({n})");
        }
        dirty.insert(key(DIRTY_KEYS_EXACT_MIN), DIRTY_KEYS_EXACT_MIN);
        assert!(!dirty.tracking() && dirty.keys().is_none());
        assert!(!dirty.is_empty(), "a shard that stopped noting keys still has changes");
        dirty.insert(key(0), 1);
        assert!(dirty.keys().is_none(), "no way back but a checkpoint");
        dirty.clear();
        assert!(dirty.is_empty() && dirty.tracking());
        // The same number of changes in a state more than twice as large stays exact.
        for n in 0..DIRTY_KEYS_EXACT_MIN * 2 {
            dirty.insert(key(n), DIRTY_KEYS_EXACT_MIN * 4 + 1);
        }
        assert_eq!(dirty.keys().map(BTreeSet::len), Some(DIRTY_KEYS_EXACT_MIN * 2));
    }
}

#[cfg(all(test, feature = "sim"))]
mod shard_tests {
    use std::ops::Bound;
    use std::path::Path;

    use super::super::{Inner, Intent, Shard, ShardOptions};
    use crate::env::sim::{FaultOptions, SimEnv};
    use crate::wal::Durability;

    fn open(env: &SimEnv) -> Shard<SimEnv> {
        let options = ShardOptions {
            wal: Default::default(),
            checkpoint: Default::default(),
            epoch: Default::default(),
        };
        let shard = Shard::open(0, env.clone(), Path::new("/shard-0000"), &options, None);
        assert!(shard.status().failed.is_none(), "{:?}", shard.status());
        shard
    }

    fn load(shard: &Shard<SimEnv>, keys: std::ops::Range<u32>) {
        let writes =
            keys.map(|n| (n.to_be_bytes().to_vec(), Intent::Put(n.to_le_bytes().to_vec()))).collect();
        shard.commit(writes, None, Durability::None).unwrap();
    }

    /// The parent of checkpoint `id` (`None`: a full checkpoint).
    fn parent(shard: &Shard<SimEnv>, id: u64) -> Option<u64> {
        let mut inner = shard.lock();
        let Inner::Serving(serving) = &mut *inner else { panic!("the shard is serving") };
        serving.checkpoints.meta(id).expect("a published checkpoint").parent
    }

    #[test]
    fn a_bulk_load_checkpoints_full_a_small_change_incremental_and_both_recover_exactly() {
        let env = SimEnv::new(5, FaultOptions::default()).unwrap();
        let shard = open(&env);
        load(&shard, 0..10);
        let first = shard.checkpoint().unwrap();
        // 5,000 new keys on a state of 10: the set was given up, the checkpoint is full.
        load(&shard, 10..5010);
        let bulk = shard.checkpoint().unwrap();
        assert_eq!(parent(&shard, bulk), None, "checkpoint {bulk} after the bulk load");
        // 3 changes (one a delete) on 5,010 entries: an incremental on the bulk checkpoint.
        load(&shard, 5010..5012);
        shard.commit(vec![(7u32.to_be_bytes().to_vec(), Intent::Delete)], None, Durability::None).unwrap();
        let small = shard.checkpoint().unwrap();
        assert_eq!(parent(&shard, small), Some(bulk), "checkpoint {small} after a small change");
        assert!(first < bulk && bulk < small);
        let all = |shard: &Shard<SimEnv>| shard.scan(Bound::Unbounded, Bound::Unbounded).unwrap();
        let expected = all(&shard);
        assert_eq!(expected.len(), 5011);
        drop(shard);
        let reopened = open(&env);
        assert_eq!(all(&reopened), expected);
        assert_eq!(reopened.get(&7u32.to_be_bytes()).unwrap(), None);
    }
}
