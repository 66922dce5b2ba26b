//! The operations of a serving shard: reads, commits, syncs, checkpoints and the periodic
//! `tick`. See the module docs of [`super`] for the invariants they keep.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::Ordering;

use super::record::{Batch, BatchBuilder, BatchView, DocMark};
use super::recovery::{apply, user_key};
use super::state::State;
use super::{Bytes, Failure, Inner, NS_DOC, NS_USER, Serving, Shard, ShardError, ShardStats, SyncState};
use crate::env::Env;
use crate::wal::format::{RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX};
use crate::wal::{Durability, Lsn, RecordKind};

/// A write of a transaction, before the shard resolves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Set the key to the value.
    Put(Bytes),
    /// Remove the key.
    Delete,
    /// Add to the key's u64 counter (absent counts as 0), resolved at commit.
    Add(u64),
    /// Remove every user key from the write's key (inclusive) to this one (exclusive): one
    /// op in the WAL record however many keys it covers. Applied where it stands in the
    /// batch: writes before it in the range are removed, writes after it stay.
    DeleteRange(Bytes),
}

/// What a commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// The lsn of the batch's record (the last lsn, if there was nothing to write).
    pub lsn: Lsn,
    /// The new value of every counter the commit incremented.
    pub counters: BTreeMap<Bytes, u64>,
}

/// What one [`Shard::tick`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// The checkpoint the shard published (one frozen earlier, or one an epoch trigger made
    /// it take).
    pub checkpoint: Option<u64>,
    /// Whether it synced unsynced commits.
    pub synced: bool,
    /// The lsn of the empty record it appended and synced to vouch for the newest durable
    /// record (DESIGN.md rule 18).
    pub vouched: Option<Lsn>,
    /// Whether background work is left that the next tick goes on with: a checkpoint
    /// frozen and not yet published, or the merge of the last one not finished.
    pub busy: bool,
}

/// Bytes a sync may skip to reach the next sector (the WAL's sync alignment).
pub(super) const SYNC_PADDING_BYTES_MAX: u64 = 4096;

/// WAL bytes one record of `payload_bytes` takes: header plus payload, 8-byte aligned.
pub(super) fn record_slot_bytes(payload_bytes: usize) -> u64 {
    (crate::wal::format::RECORD_HEADER_BYTES as u64 + payload_bytes as u64).next_multiple_of(8)
}

/// Reads a u64 counter value.
pub fn counter_value(key: &[u8], value: Option<&[u8]>) -> Result<u64, ShardError> {
    match value {
        None => Ok(0),
        Some(bytes) => match <[u8; 8]>::try_from(bytes) {
            Ok(bytes) => Ok(u64::from_le_bytes(bytes)),
            Err(_) => Err(ShardError::NotACounter { key: key.to_vec(), len_bytes: bytes.len() }),
        },
    }
}

/// Whether a range holds no key (`BTreeMap::range` panics on an inverted one).
fn empty_range(range: &(Bound<Bytes>, Bound<Bytes>)) -> bool {
    match range {
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s > e || (s == e && !matches!(range, (Bound::Included(_), Bound::Included(_))))
        }
        _ => false,
    }
}

fn state_bound(bound: Bound<&[u8]>, unbounded: Bound<Bytes>) -> Bound<Bytes> {
    match bound {
        Bound::Included(key) => Bound::Included(user_key(key)),
        Bound::Excluded(key) => Bound::Excluded(user_key(key)),
        Bound::Unbounded => unbounded,
    }
}

impl<E: Env + Clone> Shard<E> {
    pub(super) fn serving<'a>(&self, inner: &'a mut Inner) -> Result<&'a mut Serving, ShardError> {
        match inner {
            Inner::Serving(serving) => Ok(serving),
            Inner::Failed { failure, .. } => Err(self.failed_error(failure)),
        }
    }

    /// The state to read: a serving shard's, or the one a shard failed by a write still holds.
    fn readable<'a>(&self, inner: &'a mut Inner) -> Result<&'a Serving, ShardError> {
        match inner {
            Inner::Serving(serving) | Inner::Failed { held: Some(serving), .. } => Ok(serving),
            Inner::Failed { failure, .. } => Err(self.failed_error(failure)),
        }
    }

    /// The value of user key `key`, the shard's unsynced commits included.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, ShardError> {
        let mut inner = self.lock();
        let serving = self.readable(&mut inner)?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(serving.state.get(&user_key(key)).map(<[u8]>::to_vec))
    }

    /// The user entries with keys in `(start, end)`, in key order.
    pub fn scan(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>, ShardError> {
        self.scan_limited(start, end, usize::MAX, false)
    }

    /// At most `limit` user entries with keys in `(start, end)`: the first ones in key order,
    /// or with `reverse` the last ones in descending key order.
    pub fn scan_limited(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Bytes, Bytes)>, ShardError> {
        let mut inner = self.lock();
        let serving = self.readable(&mut inner)?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let range = (
            state_bound(start, Bound::Included(vec![NS_USER])),
            state_bound(end, Bound::Excluded(vec![NS_USER + 1])),
        );
        if empty_range(&range) {
            return Ok(Vec::new());
        }
        let entry = |(k, v): (&[u8], &[u8])| (k[1..].to_vec(), v.to_vec());
        Ok(if reverse {
            serving.state.range_rev(range).take(limit).map(entry).collect()
        } else {
            serving.state.range(range).take(limit).map(entry).collect()
        })
    }

    /// The ids of the documents this shard recorded as complete.
    pub fn completed_documents(&self) -> Result<BTreeSet<String>, ShardError> {
        let mut inner = self.lock();
        let serving = self.readable(&mut inner)?;
        let docs = serving.state.range(vec![NS_DOC]..vec![NS_DOC + 1]);
        Ok(docs.map(|(k, _)| String::from_utf8_lossy(&k[1..]).into_owned()).collect())
    }

    /// Whether document `id` is recorded complete in this shard.
    pub fn is_document_completed(&self, id: &str) -> Result<bool, ShardError> {
        let mut inner = self.lock();
        let serving = self.readable(&mut inner)?;
        Ok(serving.state.contains_key(&super::recovery::doc_key(id)))
    }

    /// Commits `writes` (and a document mark) as one WAL record, then, unless `durability` is
    /// `None`, waits for a group sync covering it. An error from the append or the sync fails
    /// the shard; the batch's outcome is then unknown.
    pub fn commit(
        &self,
        writes: Vec<(Bytes, Intent)>,
        doc: Option<DocMark>,
        durability: Durability,
    ) -> Result<Committed, ShardError> {
        let (mut batch, adds) = build_batch(&writes);
        self.commit_built(&mut batch, &adds, doc.as_ref(), durability)
    }

    /// An empty batch for [`Shard::commit_built`]: its head room is the WAL record header.
    pub fn batch_builder() -> BatchBuilder {
        BatchBuilder::new(RECORD_HEADER_BYTES)
    }

    /// Commits a batch encoded in place (from [`Shard::batch_builder`]) as [`Shard::commit`]
    /// does. `adds` are its increments, each an offset of a put of 8 placeholder bytes and
    /// the delta: under the shard lock, each is resolved against the committed value and
    /// written into the placeholder, so the record logs the new value. The record is written
    /// from the builder's buffer and applied from it, never copied or decoded into owned ops;
    /// the caller may [`BatchBuilder::reset`] and reuse the builder afterwards.
    pub fn commit_built(
        &self,
        batch: &mut BatchBuilder,
        adds: &[(u32, u64)],
        doc: Option<&DocMark>,
        durability: Durability,
    ) -> Result<Committed, ShardError> {
        let result = self.commit_locked(batch, adds, doc, durability);
        if result.is_err() {
            // A failed append fails the shard: tell the durability waiters.
            self.notify_durable();
        }
        result
    }

    fn commit_locked(
        &self,
        batch: &mut BatchBuilder,
        adds: &[(u32, u64)],
        doc: Option<&DocMark>,
        durability: Durability,
    ) -> Result<Committed, ShardError> {
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        // Precondition: the shard is consistent before the commit changes it.
        self.check_serving(serving);
        let mut committed = Committed::default();
        resolve_adds(batch, adds, &serving.state, &mut committed)?;
        let wal = self.wal.as_ref().expect("a serving shard has a WAL");
        if batch.op_count() == 0 && doc.is_none() {
            committed.lsn = wal.last_lsn().unwrap_or(0);
            return Ok(committed);
        }
        batch.finish(doc);
        let payload_bytes = batch.payload().len();
        if payload_bytes > RECORD_PAYLOAD_BYTES_MAX {
            return Err(ShardError::BatchTooLarge { bytes: payload_bytes, max: RECORD_PAYLOAD_BYTES_MAX });
        }
        let last_before = wal.last_lsn().unwrap_or(0);
        committed.lsn = match wal.commit_frame(RecordKind::Data, 0, 0, batch.frame_mut(), Durability::None) {
            Ok(lsn) => lsn,
            Err(error) => {
                let sync = serving.sync;
                return Err(self.fail(&mut inner, Failure::wal("append", error), sync));
            }
        };
        let view = batch.view().expect("the batch was closed");
        debug_assert!(BatchView::parse(batch.payload()).is_ok(), "a built batch decodes");
        apply(&mut serving.state, &view);
        serving.stats.commits += 1;
        serving.stats.writes += view.op_count() as u64;
        serving.stats.wal_bytes += payload_bytes as u64;
        if durability != Durability::None {
            // The group sync this commit waits for: marked here, under the lock it holds
            // already, so the wait needs the lock only to record a sync it runs.
            serving.sync = SyncState::Syncing;
        } else if serving.sync == SyncState::Clean {
            serving.sync = SyncState::Dirty;
        }
        let slot_bytes = record_slot_bytes(payload_bytes);
        serving.epochs.record(view.op_count().max(1) as u64, slot_bytes, self.env.now_monotonic());
        let cap_step = Self::past_half_the_cap(serving)
            || Self::behind_schedule(serving)
            || Self::merge_behind_schedule(serving);
        // Postconditions of the append: the batch got the next lsn, and the shard is consistent.
        debug_assert_eq!(committed.lsn, last_before + 1, "a batch is the next record");
        self.check_serving(serving);
        drop(inner);
        if cap_step {
            // The WAL-bytes cap bounds replay (rule 13) without `tick`: a freeze, and
            // backpressure in steps when the pending one is behind schedule (`checkpointing`).
            self.wal_cap_step(slot_bytes)?;
        }
        if durability != Durability::None {
            let result = self.sync_committed(committed.lsn, durability);
            self.notify_durable();
            result?;
            // Postcondition: a durable commit returns only once its record is durable.
            debug_assert!(self.is_durable(committed.lsn), "lsn {} acknowledged, not durable", committed.lsn);
        }
        Ok(committed)
    }

    /// Makes every commit so far durable (joining a group sync in flight) and returns the
    /// durable lsn. A failure fails the shard.
    pub fn sync(&self, durability: Durability) -> Result<Lsn, ShardError> {
        self.sync_through(Lsn::MAX, durability)
    }

    /// Makes every commit up to `lsn` durable: a committer joins a group sync in flight that
    /// already covers its record instead of waiting for one that covers the newest.
    pub(super) fn sync_through(&self, lsn: Lsn, durability: Durability) -> Result<Lsn, ShardError> {
        let result = self.sync_through_locked(lsn, durability);
        self.notify_durable();
        result
    }

    pub(super) fn sync_through_locked(&self, lsn: Lsn, durability: Durability) -> Result<Lsn, ShardError> {
        // Precondition: lsn 0 means "none"; nobody waits for it.
        debug_assert!(lsn >= 1, "sync through lsn 0");
        let (wal, last_before) = {
            let mut inner = self.lock();
            let serving = self.serving(&mut inner)?;
            let wal = self.wal.as_ref().expect("a serving shard has a WAL");
            if durability == Durability::None {
                return Ok(wal.durable_lsn().unwrap_or(0));
            }
            serving.sync = SyncState::Syncing;
            (wal, wal.last_lsn().unwrap_or(0))
        };
        let result = wal.sync_through_led(lsn, durability);
        self.record_sync(lsn.min(last_before), result)
    }

    /// The durable half of a commit of `lsn`, which marked the shard `Syncing` under its lock:
    /// leads or joins a group sync covering it without the shard lock, and retakes the lock
    /// only to record a sync this call ran. A follower returns without it: the leader whose
    /// sync covered the follower's record records that sync after it, so after the record of
    /// the sync that leaves nothing pending the shard is `Clean` (a segment seal, which
    /// syncs with no leader, leaves it `Syncing` until the next sync; `tick` syncs a shard
    /// in either state).
    fn sync_committed(&self, lsn: Lsn, durability: Durability) -> Result<Lsn, ShardError> {
        debug_assert!(lsn >= 1, "sync through lsn 0");
        let wal = self.wal.as_ref().expect("a serving shard has a WAL");
        match wal.sync_through_led(lsn, durability) {
            Ok((durable, false)) => {
                debug_assert!(durable >= lsn, "a follower returned short of its record");
                Ok(durable)
            }
            result => self.record_sync(lsn, result),
        }
    }

    /// Records the outcome of a sync call that made at least `covered` durable: a sync
    /// counted, the padding a sync may leave, the sync state. A failure fails the shard. (A
    /// call that found nothing to sync is counted with its padding too: an overestimate of
    /// the epoch's WAL bytes, which only brings a checkpoint forward.)
    pub(super) fn record_sync(
        &self,
        covered: Lsn,
        result: Result<(Lsn, bool), crate::wal::WalError>,
    ) -> Result<Lsn, ShardError> {
        let wal = self.wal.as_ref().expect("a serving shard has a WAL");
        let mut inner = self.lock();
        match result {
            Ok((durable, _)) => {
                let serving = self.serving(&mut inner)?;
                serving.stats.syncs += 1;
                // A sync moves the WAL's tail to a new sector: count the padding it may leave.
                serving.epochs.record(0, SYNC_PADDING_BYTES_MAX, self.env.now_monotonic());
                let last = wal.last_lsn().unwrap_or(0);
                serving.sync = if last <= durable { SyncState::Clean } else { SyncState::Dirty };
                // Postcondition: everything asked for that was appended when the sync began
                // is durable.
                debug_assert!(durable >= covered, "sync returned short of its target");
                self.check_serving(serving);
                Ok(durable)
            }
            Err(error) => Err(self.fail(&mut inner, Failure::wal("sync", error), SyncState::SyncFailed)),
        }
    }

    /// Records how far the durable WAL reached in its floor marker (at close, after a sync), so
    /// a WAL found shorter at the next open is a reported loss. A failure fails the shard.
    pub fn record_floor(&self) -> Result<(), ShardError> {
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        let wal = self.wal.as_ref().expect("a serving shard has a WAL");
        let durable = wal.durable_lsn().unwrap_or(0);
        // A vouching record last carries nothing: losing it loses no commit (see `vouch`).
        let floor = if durable > 0 && serving.vouched_lsn == durable { durable - 1 } else { durable };
        match wal.record_floor(floor) {
            Ok(()) => Ok(()),
            Err(error) => {
                Err(self.fail(&mut inner, Failure::wal("record floor", error), SyncState::SyncFailed))
            }
        }
    }

    /// Whether `lsn` is durable.
    pub fn is_durable(&self, lsn: Lsn) -> bool {
        self.wal.as_ref().and_then(|wal| wal.durable_lsn().ok()).is_some_and(|durable| durable >= lsn)
    }

    /// When every appended record is durable and no durable record vouches for the newest
    /// one, appends an empty batch (its `durable_lsn` claims the newest record) and syncs it:
    /// from then on, rot in that record is corruption a recovery reports, not a torn tail it
    /// truncates (DESIGN.md rule 18). The empty record carries nothing, so losing it to rot
    /// or a tear loses nothing; it needs no vouching in turn, and an idle shard appends no
    /// more. With unsynced commits pending it does nothing: syncing them is `tick`'s
    /// `sync_dirty` decision, and the sync that makes them durable comes first.
    pub(super) fn vouch(&self) -> Result<Option<Lsn>, ShardError> {
        let mut inner = self.lock();
        let serving = self.serving(&mut inner)?;
        let wal = self.wal.as_ref().expect("a serving shard has a WAL");
        let (Ok(last), Ok(durable)) = (wal.last_lsn(), wal.durable_lsn()) else {
            return Ok(None);
        };
        if last != durable || durable <= serving.vouched_lsn {
            return Ok(None);
        }
        let payload = Batch { ops: Vec::new(), doc: None }.encode();
        let lsn = match wal.commit(RecordKind::Data, 0, 0, &payload, Durability::None) {
            Ok(lsn) => lsn,
            Err(error) => {
                let sync = serving.sync;
                return Err(self.fail(&mut inner, Failure::wal("append vouching record", error), sync));
            }
        };
        serving.vouched_lsn = lsn;
        serving.sync = SyncState::Dirty;
        drop(inner);
        self.sync_through(lsn, Durability::Data)?;
        Ok(Some(lsn))
    }

    /// Counters, with `entries` counted now.
    pub(super) fn serving_stats(serving: &Serving) -> ShardStats {
        let entries = serving.state.range(vec![NS_USER]..vec![NS_USER + 1]).count() as u64;
        ShardStats { entries, ..serving.stats.clone() }
    }
}

/// The batch of `writes`, encoded in place, and its increments (each the offset of its
/// 8-byte placeholder and the delta), for [`resolve_adds`].
fn build_batch(writes: &[(Bytes, Intent)]) -> (BatchBuilder, Vec<(u32, u64)>) {
    let mut batch = BatchBuilder::new(RECORD_HEADER_BYTES);
    let mut adds = Vec::new();
    for (key, intent) in writes {
        match intent {
            Intent::Put(value) => batch.put(key, value),
            Intent::Delete => batch.delete(key),
            Intent::DeleteRange(end) => batch.delete_range(key, end),
            &Intent::Add(delta) => {
                let at = batch.put(key, &[0; 8]);
                adds.push((at, delta));
                at
            }
        };
    }
    (batch, adds)
}

/// Resolves each increment of `batch` against `state` under the shard lock and writes the
/// new value into its placeholder (the new values are noted in `committed.counters`).
fn resolve_adds(
    batch: &mut BatchBuilder,
    adds: &[(u32, u64)],
    state: &State,
    committed: &mut Committed,
) -> Result<(), ShardError> {
    for &(at, delta) in adds {
        let key = batch.op_at(at).key();
        // A range delete earlier in this batch removed the counter: it counts as 0.
        let found = state.get(&user_key(key)).filter(|_| !batch.erased_before(at, key));
        let current = counter_value(key, found)?;
        let new = current.checked_add(delta).ok_or(ShardError::CounterOverflow { key: key.to_vec() })?;
        committed.counters.insert(key.to_vec(), new);
        batch.patch_value(at, &new.to_le_bytes());
    }
    Ok(())
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use std::path::Path;

    use super::super::memtable::seed_for_store;
    use super::super::{Inner, Intent, Shard, ShardOptions};
    use crate::StoreIdentity;
    use crate::env::sim::{FaultOptions, SimEnv};
    use crate::wal::Durability;

    /// The seed of the shard's state hash, read under its lock.
    fn hash_seed(shard: &Shard<SimEnv>) -> u64 {
        let inner = shard.lock();
        let Inner::Serving(serving) = &*inner else { panic!("the shard is serving") };
        serving.state.hash_seed()
    }

    fn open(env: &SimEnv, store_id: u64, id: u32) -> Shard<SimEnv> {
        let mut options = ShardOptions {
            wal: Default::default(),
            checkpoint: Default::default(),
            epoch: Default::default(),
        };
        options.wal.identity = StoreIdentity { store_id, shard: id, shards: 4 };
        options.checkpoint.identity = options.wal.identity;
        let shard = Shard::open(id, env.clone(), Path::new(&format!("/s{store_id:x}-{id}")), &options, None);
        assert!(shard.status().failed.is_none(), "{:?}", shard.status());
        shard
    }

    /// The commit path's `apply` with a delta large enough that it loads each group's hash
    /// slots first: every op applies, in order, exactly as the ops inserted one by one would.
    #[test]
    fn a_batch_applied_to_a_warmed_delta_applies_every_op_in_order() {
        use std::collections::BTreeMap;

        use super::super::recovery::apply;
        use super::super::state::State;
        use super::super::{NS_USER, record::BatchView};
        use super::{BatchBuilder, RECORD_HEADER_BYTES};

        let mut state = State::default();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut x = 7u64;
        let mut warmed = 0;
        for round in 0..200u64 {
            let mut batch = BatchBuilder::new(RECORD_HEADER_BYTES);
            let mut ops = Vec::new();
            for n in 0..1000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Some keys recur within a batch (one group or another) and across batches.
                let key = (x % 150_000).to_be_bytes().to_vec();
                let value = (round * 1000 + n).to_le_bytes().to_vec();
                if x.is_multiple_of(7) {
                    batch.delete(&key);
                    ops.push((key, None));
                } else {
                    batch.put(&key, &value);
                    ops.push((key, Some(value)));
                }
            }
            batch.finish(None);
            warmed += usize::from(state.warms());
            apply(&mut state, &BatchView::parse(batch.payload()).expect("a built batch decodes"));
            for (key, value) in ops {
                match value {
                    Some(value) => model.insert(key, value),
                    None => model.remove(&key),
                };
            }
        }
        assert!(warmed > 100, "most batches met a delta large enough to warm ({warmed})");
        for n in 0..150_000u64 {
            let key = n.to_be_bytes();
            let state_key = [&[NS_USER][..], &key].concat();
            assert_eq!(state.get(&state_key), model.get(&key[..]).map(Vec::as_slice), "key {n}");
        }
    }

    #[test]
    fn the_state_hash_is_keyed_by_the_store_identity_through_freezes_and_reopens() {
        // HashDoS guard: a shard whose layers used a fixed (or another store's) hash key
        // would let keys chosen once collide in every store.
        let env = SimEnv::new(5, FaultOptions::default()).unwrap();
        let (a, b) = (open(&env, 0xa11ce, 1), open(&env, 0xb0b, 1));
        assert_eq!(hash_seed(&a), seed_for_store(0xa11ce, 1));
        assert_ne!(hash_seed(&a), hash_seed(&b), "two stores");
        assert_ne!(hash_seed(&a), hash_seed(&open(&env, 0xa11ce, 2)), "two shards of one store");
        a.commit(vec![(b"k".to_vec(), Intent::Put(b"v".to_vec()))], None, Durability::Data).unwrap();
        a.checkpoint().unwrap();
        assert_eq!(hash_seed(&a), seed_for_store(0xa11ce, 1), "the delta after a freeze");
        a.commit(vec![(b"j".to_vec(), Intent::Put(b"w".to_vec()))], None, Durability::Data).unwrap();
        drop(a);
        // Recovery loads the checkpoint (a new base) and replays the WAL tail into the delta.
        assert_eq!(hash_seed(&open(&env, 0xa11ce, 1)), seed_for_store(0xa11ce, 1), "after a reopen");
    }
}
