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
//! - the latest checkpoint is in the store, its lsn is at most the WAL's last lsn (a
//!   checkpoint never covers records the WAL does not hold) and its epoch precedes the
//!   active epoch;
//! - every key of the state (its first and last, since the map is ordered) and every key
//!   changed since the checkpoint is in a shard namespace.
//!
//! The checks read the WAL through its own lock; a WAL whose lock was poisoned by a panic is
//! not checked (the shard fails on its next WAL call).

use super::{NS_DOC, NS_USER, Serving, Shard, SyncState};
use crate::env::Env;

fn in_namespace(key: &[u8]) -> bool {
    matches!(key.first(), Some(&NS_USER | &NS_DOC))
}

impl<E: Env + Clone> Shard<E> {
    /// Panics if an invariant of the serving shard is broken (see the module docs). The
    /// caller holds the shard's lock, so nothing is appended meanwhile.
    pub(super) fn check_serving(&self, serving: &Serving<E>) {
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
        if let Some(id) = serving.last_checkpoint {
            let meta = serving.checkpoints.meta(id);
            assert!(meta.is_some(), "shard {}: the latest checkpoint {id} is not in the store", self.id);
            let meta = meta.expect("checked above");
            assert!(meta.lsn <= last, "shard {}: checkpoint {id} at lsn {} > WAL {last}", self.id, meta.lsn);
            assert!(
                meta.epoch < serving.epochs.current().0,
                "shard {}: checkpoint epoch not closed",
                self.id
            );
        }
        if let Some((first, _)) = serving.state.first_key_value() {
            assert!(in_namespace(first), "shard {}: state key {first:?} in no namespace", self.id);
        }
        if let Some((last_key, _)) = serving.state.last_key_value() {
            assert!(in_namespace(last_key), "shard {}: state key {last_key:?} in no namespace", self.id);
        }
        if let (Some(first), Some(last_key)) = (serving.dirty.first(), serving.dirty.last()) {
            assert!(in_namespace(first), "shard {}: dirty key {first:?} in no namespace", self.id);
            assert!(in_namespace(last_key), "shard {}: dirty key {last_key:?} in no namespace", self.id);
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

    fn check_with(shard: &Shard<SimEnv>, change: impl FnOnce(&mut super::Serving<SimEnv>)) {
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
    #[should_panic(expected = "is not in the store")]
    fn a_latest_checkpoint_missing_from_the_store_is_caught() {
        check_with(&shard(), |serving| serving.last_checkpoint = Some(99));
    }

    #[test]
    #[should_panic(expected = "in no namespace")]
    fn a_key_outside_the_namespaces_is_caught() {
        check_with(&shard(), |serving| {
            serving.state.insert(vec![9, 1], Vec::new());
        });
    }
}
