//! The serving shard's invariant checker. Owns no state: it reads a [`Serving`] under the
//! shard's lock, with the shard's WAL, and panics on a broken invariant. Compiled in with
//! debug assertions (tests and the `sweep` profile), a no-op in release.
//!
//! [`Shard::check_serving`] runs after every state transition of a serving shard (open,
//! commit, sync, checkpoint) and checks, each on its own line:
//!
//! - the WAL's `durable_lsn <= last_lsn`;
//! - `Clean` means everything appended is durable (`durable_lsn == last_lsn`);
//! - a serving shard is never `SyncFailed` (a failed sync fails the shard);
//! - the latest checkpoint's lsn is at most the WAL's last lsn (a checkpoint never covers
//!   records the WAL does not hold) and its epoch precedes the active epoch (that it is in
//!   the store is checked by the checkpoint writer, which holds the store's lock);
//! - a pending checkpoint is at or past the latest one and at most the WAL's last lsn;
//! - every key of the state is in a shard namespace: the smallest and the largest key of each
//!   layer (base, frozen, delta; O(1) each) are, and the namespace bytes are adjacent.
//!
//! The checks read the WAL through its own lock; a WAL whose lock was poisoned by a panic is
//! not checked (the shard fails on its next WAL call).

use super::{NS_DOC, NS_USER, Serving, Shard, SyncState};
use crate::env::Env;

// The namespace check of the state's key bounds needs adjacent namespace bytes.
const _: () = assert!(NS_DOC == NS_USER + 1, "namespaces are adjacent");

fn in_namespace(key: &[u8]) -> bool {
    matches!(key.first(), Some(&NS_USER | &NS_DOC))
}

impl<E: Env + Clone> Shard<E> {
    /// Panics if an invariant of the serving shard is broken (see the module docs). The
    /// caller holds the shard's lock, so nothing is appended meanwhile.
    pub(super) fn check_serving(&self, serving: &Serving) {
        if !cfg!(debug_assertions) {
            return;
        }
        let wal = self.wal.as_ref().expect("a serving shard has a WAL");
        let (Ok(last), Ok(durable)) = (wal.last_lsn(), wal.durable_lsn()) else {
            return;
        };
        assert!(durable <= last, "shard {}: durable {durable} > last {last}", self.id);
        if serving.sync == SyncState::Clean {
            assert_eq!(durable, last, "shard {}: Clean with records not durable", self.id);
        }
        assert_ne!(serving.sync, SyncState::SyncFailed, "shard {}: serving after a failed sync", self.id);
        if let Some(meta) = serving.last_checkpoint {
            let id = meta.id;
            assert!(meta.lsn <= last, "shard {}: checkpoint {id} at lsn {} > WAL {last}", self.id, meta.lsn);
            assert!(
                meta.epoch < serving.epochs.current().0,
                "shard {}: checkpoint epoch not closed",
                self.id
            );
        }
        if let Some(pending) = &serving.pending {
            let latest = serving.last_checkpoint.map_or(0, |p| p.lsn);
            assert!(
                latest <= pending.lsn && pending.lsn <= last,
                "shard {}: pending checkpoint at lsn {} outside {latest}..={last}",
                self.id,
                pending.lsn
            );
        }
        // Namespaces are adjacent bytes, so a layer whose smallest and largest keys are in
        // one holds only keys in one.
        for key in serving.state.layer_key_bounds() {
            assert!(in_namespace(key), "shard {}: state key {key:?} in no namespace", self.id);
        }
    }
}

#[cfg(all(test, feature = "sim", debug_assertions))]
mod tests {
    use std::path::Path;

    use super::super::{Inner, Intent, Shard, ShardOptions, SyncState};
    use crate::env::sim::{FaultOptions, SimEnv};
    use crate::wal::Durability;

    fn shard() -> Shard<SimEnv> {
        let env = SimEnv::new(3, FaultOptions::default()).unwrap();
        let options = ShardOptions {
            wal: Default::default(),
            checkpoint: Default::default(),
            epoch: Default::default(),
        };
        let shard = Shard::open(0, env, Path::new("/shard-0000"), &options, None);
        assert!(shard.status().failed.is_none(), "{:?}", shard.status());
        shard.commit(vec![(b"k".to_vec(), Intent::Put(b"v".to_vec()))], None, Durability::Data).unwrap();
        shard.checkpoint().unwrap();
        // Appended, not durable: the shard is Dirty.
        shard.commit(vec![(b"j".to_vec(), Intent::Put(b"w".to_vec()))], None, Durability::None).unwrap();
        shard
    }

    fn check_with(shard: &Shard<SimEnv>, change: impl FnOnce(&mut super::Serving)) {
        let mut inner = shard.lock();
        let Inner::Serving(serving) = &mut *inner else { panic!("the shard is serving") };
        change(serving);
        shard.check_serving(serving);
    }

    #[test]
    fn a_consistent_shard_passes() {
        check_with(&shard(), |serving| assert_eq!(serving.sync, SyncState::Dirty));
    }

    #[test]
    #[should_panic(expected = "Clean with records not durable")]
    fn clean_with_unsynced_records_is_caught() {
        check_with(&shard(), |serving| serving.sync = SyncState::Clean);
    }

    #[test]
    #[should_panic(expected = "serving after a failed sync")]
    fn serving_after_a_failed_sync_is_caught() {
        check_with(&shard(), |serving| serving.sync = SyncState::SyncFailed);
    }

    #[test]
    #[should_panic(expected = "> WAL")]
    fn a_latest_checkpoint_past_the_wal_is_caught() {
        check_with(&shard(), |serving| {
            serving.last_checkpoint.as_mut().expect("checkpointed").lsn = 99;
        });
    }

    #[test]
    #[should_panic(expected = "pending checkpoint at lsn")]
    fn a_pending_checkpoint_past_the_wal_is_caught() {
        let shard = shard();
        shard.begin_checkpoint().unwrap();
        check_with(&shard, |serving| serving.pending.as_mut().expect("frozen").lsn = 99);
    }

    #[test]
    #[should_panic(expected = "in no namespace")]
    fn a_key_outside_the_namespaces_is_caught() {
        check_with(&shard(), |serving| {
            serving.state.insert(&[9, 1], &[]);
        });
    }
}
