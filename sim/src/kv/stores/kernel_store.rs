//! The kernel under test: a [`KvStore`] over [`stormhold::Kernel`] on the simulated disk, what
//! the `kernel` workload checks.
//!
//! The kernel lives in `/kernel` with 1 to 4 shards (drawn per seed, with the other options
//! below), a prefix router of one byte, and one key group per shard: workload key `k` is in
//! group `g = k % shards` and is stored as `[p(g), k as u16 BE]`, where `p(g)` is the
//! smallest byte the router sends to shard `g`. Values are stored as 8-byte little-endian
//! counters, so every key can be incremented; the workload's 32-bit value is the counter's low
//! half (an increment wraps at `u32::MAX` in the model, as the low half of a u64 does).
//!
//! Per seed ([`KernelStoreOptions::from_seed`], its own random stream, recorded in the run's
//! configuration so a corpus entry replays on its own options): the shard count, small
//! WAL segments with or without preallocation, short epochs (operations, WAL bytes, time) so
//! that `tick` and the WAL-bytes cap checkpoint often, checkpoint retention and the full
//! checkpoint cadence, and whether `tick` syncs unsynced commits. Recovery runs on one thread,
//! so the simulator stays deterministic.
//!
//! Checkpoints overlap commits: the workload's `BeginCheckpoint` freezes one on every shard
//! ([`stormhold::Kernel::begin_checkpoint`]), and so does a commit past half the WAL-bytes
//! cap; commits, syncs and crashes land while it is frozen, until a later `tick` or
//! `checkpoint` writes and publishes it (itself crashable at every call).
//!
//! Transactions stay within one shard: the workload draws each transaction's keys from one
//! group. Interleaved client transactions are buffered here and committed as one kernel
//! transaction (a kernel transaction is itself a buffer until commit); their increments are
//! `Transaction::increment`, a delta the kernel resolves at commit and logs as a delta
//! (`Intent::Add`, not idempotent on replay: DESIGN.md rule 9). A read inside an open
//! transaction is a kernel transaction holding its buffered writes, asked with
//! `Transaction::get` (own writes, increments resolved, over the committed state) and dropped. Documents are imported
//! with the kernel's document API: each chunk a fresh [`stormhold::Document`] handle over the
//! same id, the last one committed complete; a handle learns whether its document is complete
//! from its first insert, reading the document's shard only. The state reports a complete
//! document's mark key (see [`crate::kv::groups`]).
//!
//! Audit after each recovery ([`KvStore::audit`], per shard, from its recovery report and its
//! checkpoint directory): no partial checkpoint is left, fallbacks and damaged checkpoint
//! metadata happen only after media damage to that checkpoint or an older one, recovery used at
//! least the newest checkpoint the simulator left intact ([`crate::kv::damage_audit`]), and
//! without fallbacks the newest checkpoint on disk. A data-loss report at open must be
//! explained by damage to a file the failed shard's recovery needed
//! ([`KvStore::loss_is_explained`]).
//!
//! Errors: an open that leaves a shard failed with data loss is [`StoreError::DataLoss`]; an
//! open that leaves shards failed without data loss (an I/O error during their recovery)
//! opens with them failed and serving nothing ([`KvStore::failed_at_open`]) while the others
//! serve; any other failed open is an I/O error (the workload restarts and retries). An operation on a
//! shard that was failed before it is [`StoreError::Poisoned`] (it did nothing); an operation
//! that fails its shard is an I/O error (its outcome is unknown). A whole-kernel sync or
//! checkpoint is tried on every shard, so each shard still serving after it completed it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use stormhold::env::sim::SimEnv;
use stormhold::kernel::layout;
use stormhold::recovery::RecoveryReport;
use stormhold::{CommitInfo, Durability, Kernel, KernelError, Router, SyncState, Transaction};

use super::ckpt_store::audit::{checkpoint_dirs_are_whole, fallbacks_need_media_damage};
use crate::kv::groups::{
    DOCUMENT_MARK_VALUE, DOCUMENTS, document_group, document_mark_key, document_writes, group_of,
};
use crate::kv::{AuditFacts, Key, KvStore, StoreError, TxnWrite, Value, Write, damage_audit};

mod bug;
mod options;
pub use bug::KernelBug;
pub use options::{KernelStoreConfig, KernelStoreOptions};

/// The kernel's directory on the simulated disk.
const ROOT: &str = "/kernel";

/// The kernel store (see the module docs).
pub struct KernelStore {
    kernel: Kernel<SimEnv>,
    config: KernelStoreConfig,
    /// The key prefix of each group: a byte the router sends to the group's shard.
    prefixes: Vec<u8>,
    /// Open interleaved transactions and their writes.
    open: BTreeMap<u64, Vec<TxnWrite>>,
    /// The shards that failed at open (without data loss), and why the first one did.
    failed_at_open: (BTreeSet<usize>, Option<String>),
}

/// The smallest one-byte prefix routed to each shard.
fn prefixes(shards: u32) -> Vec<u8> {
    let router = Router::Prefix { len_bytes: 1 };
    (0..shards)
        .map(|shard| {
            (0..=u8::MAX)
                .find(|&byte| router.route(&[byte], shards) == shard)
                .unwrap_or_else(|| panic!("no one-byte prefix reaches shard {shard} of {shards}"))
        })
        .collect()
}

fn other(what: impl std::fmt::Display) -> StoreError {
    StoreError::Io(io::Error::other(what.to_string()))
}

fn document_id(doc: u8) -> String {
    format!("doc-{doc}")
}

fn durability(durable: bool, bug: KernelBug) -> Durability {
    if durable && bug != KernelBug::AckUnsynced { Durability::Data } else { Durability::None }
}

impl KernelStore {
    fn groups(&self) -> usize {
        self.config.groups()
    }

    fn encode_key(&self, key: Key) -> Vec<u8> {
        let [high, low] = key.to_be_bytes();
        vec![self.prefixes[group_of(key, self.groups())], high, low]
    }

    fn decode_key(&self, bytes: &[u8]) -> Result<Key, StoreError> {
        match *bytes {
            [prefix, high, low]
                if self.prefixes[group_of(Key::from_be_bytes([high, low]), self.groups())] == prefix =>
            {
                Ok(Key::from_be_bytes([high, low]))
            }
            _ => Err(other(format!("the kernel holds key {bytes:?}, which the store never wrote"))),
        }
    }

    fn decode_value(key: Key, bytes: &[u8]) -> Result<Value, StoreError> {
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| other(format!("key {key} holds {} bytes, not an 8-byte counter", bytes.len())))?;
        Ok(u64::from_le_bytes(bytes) as Value)
    }

    fn encode_value(value: Value) -> [u8; 8] {
        u64::from(value).to_le_bytes()
    }

    fn decode_entries(
        &self,
        entries: stormhold::kernel::Entries,
    ) -> Result<BTreeMap<Key, Value>, StoreError> {
        entries
            .into_iter()
            .map(|(k, v)| {
                let key = self.decode_key(&k)?;
                Ok((key, Self::decode_value(key, &v)?))
            })
            .collect()
    }

    fn failed(&self) -> BTreeSet<usize> {
        self.kernel.shard_status().iter().filter(|s| s.failed.is_some()).map(|s| s.shard as usize).collect()
    }

    fn is_failed(&self, group: usize) -> bool {
        self.kernel.shard_status().get(group).is_some_and(|s| s.failed.is_some())
    }

    /// Whether the planted [`KernelBug::FailedShardServedEmpty`] serves `group` as empty.
    fn served_empty(&self, group: usize) -> bool {
        self.config.bug == KernelBug::FailedShardServedEmpty
            && self.failed_at_open.0.contains(&group)
            && self.is_failed(group)
    }

    /// Whether document `doc` is complete, reading its shard only: a document handle learns it
    /// when its first insert binds it to a shard (the probe is dropped, uncommitted).
    fn document_complete(&self, doc: u8) -> Result<bool, KernelError> {
        let (key, value) = document_writes(doc, self.groups())[0];
        let mut probe = self.kernel.begin_document(&document_id(doc))?;
        probe.insert(&self.encode_key(key), &value.map_or([0; 8], Self::encode_value))?;
        Ok(probe.already_complete())
    }

    /// The error of an operation on `group`: `Poisoned` if the group was failed before it.
    fn op_error(&self, failed_before: bool, error: KernelError) -> StoreError {
        if let KernelError::CrossShard { .. } = error {
            panic!("the workload sent a transaction across shards: {error}");
        }
        if failed_before { StoreError::Poisoned } else { other(error) }
    }

    /// The error of a whole-kernel operation: `Poisoned` if it failed no shard that was serving.
    fn whole_error(&self, failed_before: &BTreeSet<usize>, error: KernelError) -> StoreError {
        if self.failed().is_subset(failed_before) { StoreError::Poisoned } else { other(error) }
    }

    fn commit_in(&mut self, writes: &[TxnWrite], durable: bool) -> Result<(), StoreError> {
        let Some(first) = writes.first() else {
            return if durable { self.sync() } else { Ok(()) };
        };
        let failed_before = self.is_failed(group_of(first.key(), self.groups()));
        let mut txn = self.kernel.begin();
        self.buffer(&mut txn, writes).map_err(|e| self.op_error(failed_before, e))?;
        txn.commit(durability(durable, self.config.bug))
            .map(drop)
            .map_err(|e| self.op_error(failed_before, e))
    }

    /// Writes `writes` into the kernel transaction `txn`: puts, deletes and increments.
    fn buffer(&self, txn: &mut Transaction<'_, SimEnv>, writes: &[TxnWrite]) -> Result<(), KernelError> {
        for &write in writes {
            let key = self.encode_key(write.key());
            match write {
                TxnWrite::Set((_, Some(value))) => txn.put(&key, &Self::encode_value(value))?,
                TxnWrite::Set((_, None)) => txn.delete(&key)?,
                TxnWrite::Add { by, .. } => txn.increment(&key, u64::from(by))?,
            }
        }
        Ok(())
    }
}

impl KvStore for KernelStore {
    type Config = KernelStoreConfig;

    fn name(&self) -> String {
        self.config.bug.workload_name().to_owned()
    }

    fn open(env: &SimEnv, config: &KernelStoreConfig) -> Result<Self, StoreError> {
        if config.bug == KernelBug::ClobberNewestMeta {
            (0..config.shards).for_each(|shard| bug::clobber_newest_meta(env, Path::new(ROOT), shard));
        }
        let kernel =
            Kernel::open(env.clone(), Path::new(ROOT), config.kernel_config()).map_err(
                |error| match error {
                    KernelError::Io { source, .. } => StoreError::Io(source),
                    KernelError::Corrupt { .. } => StoreError::DataLoss(error.to_string()),
                    other => StoreError::Io(io::Error::other(other.to_string())),
                },
            )?;
        if env.is_crashed() {
            // The process died while shards recovered: whatever they said, the open failed.
            return Err(other("the process crashed during recovery"));
        }
        // A shard that failed without data loss stays failed while the others serve; a loss
        // is reported.
        let mut failed_at_open = (BTreeSet::new(), None);
        for status in kernel.shard_status() {
            if let Some(failure) = status.failed {
                let what = format!("shard {} did not recover: {failure}", status.shard);
                if failure.data_loss {
                    return Err(StoreError::DataLoss(what));
                }
                failed_at_open.0.insert(status.shard as usize);
                failed_at_open.1.get_or_insert(what);
            }
        }
        if config.bug == KernelBug::LossWithoutDamage {
            let reports = kernel.recovery_reports().into_iter().enumerate();
            let fell_back = |(_, report): &(usize, Option<RecoveryReport>)| {
                report.as_ref().is_some_and(|r| !r.fallbacks.is_empty() || !r.damaged.is_empty())
            };
            if let Some((shard, _)) = reports.into_iter().find(fell_back) {
                return Err(StoreError::DataLoss(format!(
                    "shard {shard} did not recover: a damaged checkpoint taken for lost data"
                )));
            }
        }
        let prefixes = prefixes(config.shards);
        Ok(Self { kernel, config: config.clone(), prefixes, open: BTreeMap::new(), failed_at_open })
    }

    fn destroy(env: &SimEnv) -> io::Result<()> {
        super::wal_store::remove_tree(env, Path::new(ROOT))
    }

    fn loss_is_explained(
        env: &SimEnv,
        _: &KernelStoreConfig,
        what: &str,
        damage_from: usize,
    ) -> Result<(), String> {
        damage_audit::loss_is_explained(env, Path::new(ROOT), what, damage_from)
    }

    fn stuck_is_explained(env: &SimEnv, _: &KernelStoreConfig, last_error: &str, damage_from: usize) -> bool {
        damage_audit::stuck_is_explained(env, Path::new(ROOT), last_error, damage_from)
    }

    fn writes_per_commit_max(_: &KernelStoreConfig) -> usize {
        8
    }

    fn commit(&mut self, writes: &[Write], durable: bool) -> Result<(), StoreError> {
        let writes: Vec<TxnWrite> = writes.iter().copied().map(TxnWrite::Set).collect();
        self.commit_in(&writes, durable)
    }

    fn interleaved_transactions(_: &KernelStoreConfig) -> bool {
        true
    }

    fn txn_begin(&mut self, txn: u64) -> Result<(), StoreError> {
        self.open.insert(txn, Vec::new());
        Ok(())
    }

    fn txn_write(&mut self, txn: u64, write: Write) -> Result<(), StoreError> {
        self.open.entry(txn).or_default().push(TxnWrite::Set(write));
        Ok(())
    }

    fn txn_increment(&mut self, txn: u64, key: Key, by: Value) -> Result<(), StoreError> {
        let write = match self.config.bug {
            // The planted mistake: the sum of what the transaction reads now, as a put.
            KernelBug::TxnIncrementStaleRead => {
                let now = self.txn_get(txn, key)?;
                TxnWrite::Set((key, Some(now.unwrap_or(0).wrapping_add(by))))
            }
            _ => TxnWrite::Add { key, by },
        };
        self.open.entry(txn).or_default().push(write);
        Ok(())
    }

    fn txn_finish(
        &mut self,
        txn: u64,
        writes: &[TxnWrite],
        commit: bool,
        durable: bool,
    ) -> Result<(), StoreError> {
        let buffered = self.open.remove(&txn).unwrap_or_default();
        if self.config.bug != KernelBug::TxnIncrementStaleRead {
            debug_assert_eq!(buffered, writes, "the store buffered what the workload wrote");
        }
        if commit { self.commit_in(&buffered, durable) } else { Ok(()) }
    }

    fn checkpoints(_: &KernelStoreConfig) -> bool {
        true
    }

    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let failed_before = self.failed();
        self.kernel.checkpoint().map(drop).map_err(|e| self.whole_error(&failed_before, e))
    }

    fn begin_checkpoint(&mut self) -> Result<(), StoreError> {
        let failed_before = self.failed();
        self.kernel.begin_checkpoint().map(drop).map_err(|e| self.whole_error(&failed_before, e))
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let failed_before = self.failed();
        let synced = match self.config.bug {
            KernelBug::SyncFirstShardOnly => {
                self.kernel.sync_handle(&CommitInfo { shard: Some(0), lsn: u64::MAX }).wait()
            }
            _ => self.kernel.sync(Durability::Data),
        };
        synced.map_err(|e| self.whole_error(&failed_before, e))
    }

    fn get(&self, key: Key) -> Result<Option<Value>, StoreError> {
        if self.served_empty(group_of(key, self.groups())) {
            return Ok(None);
        }
        let failed_before = self.is_failed(group_of(key, self.groups()));
        match self.kernel.get(&self.encode_key(key)) {
            Ok(value) => value.map(|v| Self::decode_value(key, &v)).transpose(),
            Err(error) => Err(self.op_error(failed_before, error)),
        }
    }

    /// A kernel transaction holding the buffered writes of `txn`, asked for `key`, then
    /// dropped: `Transaction::get` is the kernel's own-writes-over-committed read.
    fn txn_get(&self, txn: u64, key: Key) -> Result<Option<Value>, StoreError> {
        let failed_before = self.is_failed(group_of(key, self.groups()));
        let mut kernel_txn = self.kernel.begin();
        let buffered = match self.config.bug {
            KernelBug::TxnGetCommittedOnly => &[][..],
            _ => self.open.get(&txn).map_or(&[][..], Vec::as_slice),
        };
        self.buffer(&mut kernel_txn, buffered).map_err(|e| self.op_error(failed_before, e))?;
        let got = kernel_txn.get(&self.encode_key(key)).map_err(|e| self.op_error(failed_before, e))?;
        kernel_txn.abort();
        got.map(|v| Self::decode_value(key, &v)).transpose()
    }

    fn state(&self) -> Result<BTreeMap<Key, Value>, StoreError> {
        let entries = self.kernel.scan::<&[u8]>(..).map_err(other)?;
        let mut state = self.decode_entries(entries)?;
        for id in self.kernel.completed_documents().map_err(other)? {
            let doc = (0..DOCUMENTS).find(|&doc| document_id(doc) == id).ok_or_else(|| {
                other(format!("document {id:?} is complete, but the store never imported it"))
            })?;
            state.insert(document_mark_key(doc, self.groups()), DOCUMENT_MARK_VALUE);
        }
        Ok(state)
    }

    /// The groups that serve reads, each scanned, and the marks of their complete documents.
    fn readable_state(&self) -> Result<BTreeMap<Key, Value>, StoreError> {
        if self.failed().is_empty() {
            return self.state();
        }
        let unreadable = self.unreadable_groups();
        let groups = self.groups();
        let mut state = BTreeMap::new();
        for group in (0..groups).filter(|group| !unreadable.contains(group)) {
            state.extend(self.scan_group(group)?);
        }
        for doc in (0..DOCUMENTS).filter(|&doc| !unreadable.contains(&document_group(doc, groups))) {
            let served_empty = self.served_empty(document_group(doc, groups));
            if !served_empty && self.document_complete(doc).map_err(other)? {
                state.insert(document_mark_key(doc, groups), DOCUMENT_MARK_VALUE);
            }
        }
        Ok(state)
    }

    fn failed_at_open(&self) -> Option<String> {
        self.failed_at_open.1.clone()
    }

    /// `Kernel::reopen_shard`; its refusal (a sync failed in the shard) is `Poisoned`.
    fn reopen_group(&mut self, group: usize) -> Result<bool, StoreError> {
        let result = self.kernel.reopen_shard(group as u32);
        if self.kernel.env().is_crashed() {
            // The process died while the shard recovered: whatever it said, it failed.
            return Err(other("the process crashed during the shard's recovery"));
        }
        match result {
            Ok(()) => {
                self.failed_at_open.0.remove(&group);
                Ok(true)
            }
            Err(KernelError::ReopenRefused { .. }) => Err(StoreError::Poisoned),
            Err(error) => match error.shard_failure() {
                Some((shard, failure)) if failure.data_loss => {
                    Err(StoreError::DataLoss(format!("shard {shard} did not recover: {failure}")))
                }
                Some(_) => Ok(false),
                None => Err(other(error)),
            },
        }
    }

    fn audit(&self, env: &SimEnv, facts: &AuditFacts) -> Result<(), String> {
        for (shard, report) in self.kernel.recovery_reports().into_iter().enumerate() {
            if self.failed_at_open.0.contains(&shard) {
                continue;
            }
            let report = report.ok_or_else(|| format!("shard {shard} opened without a recovery report"))?;
            audit_shard(env, shard as u32, &report, facts).map_err(|e| format!("shard {shard}: {e}"))?;
        }
        Ok(())
    }

    fn key_groups(config: &KernelStoreConfig) -> usize {
        config.groups()
    }

    fn checkpoints_in_flight(&self) -> Option<String> {
        let in_flight: Vec<String> = self
            .kernel
            .shard_status()
            .into_iter()
            .filter_map(|status| {
                let (lsn, written) = status.pending_checkpoint?;
                let after = status.last_lsn - lsn;
                Some(format!(
                    "shard {} frozen at lsn {lsn}, {written} entries written, {after} records after it",
                    status.shard
                ))
            })
            .collect();
        (!in_flight.is_empty()).then(|| in_flight.join("; "))
    }

    fn failed_groups(&self) -> Vec<usize> {
        self.failed().into_iter().collect()
    }

    fn unreadable_groups(&self) -> Vec<usize> {
        let statuses = self.kernel.shard_status();
        let unreadable = statuses.iter().filter(|s| s.failed.is_some() && !s.serves_reads);
        unreadable.map(|s| s.shard as usize).filter(|&group| !self.served_empty(group)).collect()
    }

    fn extended_ops(_: &KernelStoreConfig) -> bool {
        true
    }

    fn tick(&mut self) -> Result<Vec<usize>, StoreError> {
        let report = self.kernel.tick();
        if let Some((shard, error)) = report.failed.first() {
            return Err(other(format!("tick failed shard {shard}: {error}")));
        }
        let statuses = self.kernel.shard_status();
        let clean = statuses.iter().filter(|s| s.failed.is_none() && s.sync == SyncState::Clean);
        let durable: BTreeSet<usize> = clean.map(|s| s.shard as usize).collect();
        Ok(durable.into_iter().collect())
    }

    fn scan_group(&self, group: usize) -> Result<BTreeMap<Key, Value>, StoreError> {
        if self.served_empty(group) {
            return Ok(BTreeMap::new());
        }
        let failed_before = self.is_failed(group);
        let entries =
            self.kernel.scan_prefix(&[self.prefixes[group]]).map_err(|e| self.op_error(failed_before, e))?;
        self.decode_entries(entries)
    }

    fn increment(&mut self, key: Key, by: Value, durable: bool) -> Result<Value, StoreError> {
        let failed_before = self.is_failed(group_of(key, self.groups()));
        let durability = durability(durable, self.config.bug);
        match self.kernel.increment(&self.encode_key(key), u64::from(by), durability) {
            Ok(value) => Ok(value as Value),
            Err(error) => Err(self.op_error(failed_before, error)),
        }
    }

    fn document_begin(&mut self, doc: u8) -> Result<bool, StoreError> {
        let failed_before = self.is_failed(document_group(doc, self.groups()));
        self.document_complete(doc).map_err(|e| self.op_error(failed_before, e))
    }

    fn document_commit(&mut self, doc: u8, writes: &[Write], complete: bool) -> Result<(), StoreError> {
        let failed_before = self.is_failed(document_group(doc, self.groups()));
        let mut document =
            self.kernel.begin_document(&document_id(doc)).map_err(|e| self.op_error(failed_before, e))?;
        for &(key, value) in writes {
            let value = value.map_or([0; 8], Self::encode_value);
            document.insert(&self.encode_key(key), &value).map_err(|e| self.op_error(failed_before, e))?;
        }
        if document.already_complete() {
            return Err(other(format!("document {doc} turned complete while it was being imported")));
        }
        let committed = if complete { document.commit() } else { document.commit_chunk() };
        committed.map(drop).map_err(|e| self.op_error(failed_before, e))
    }
}

/// The checkpoint invariants of one shard right after its recovery (faults off): no partial
/// checkpoint directory is left; fallbacks and damaged metadata only after media damage; and
/// without either, recovery used the newest checkpoint on disk.
fn audit_shard(env: &SimEnv, shard: u32, report: &RecoveryReport, facts: &AuditFacts) -> Result<(), String> {
    let dir = layout::shard_dir(Path::new(ROOT), shard).join("ckpt");
    let newest = checkpoint_dirs_are_whole(env, &dir)?;
    // The damage audit first: it names the checkpoint that no damage explains.
    damage_audit::recovery_used_the_newest_valid(env, Path::new(ROOT), shard, report, facts.damage_from)?;
    fallbacks_need_media_damage(report, facts)?;
    let used = report.checkpoint.as_ref().map(|c| c.id);
    if report.fallbacks.is_empty() && report.damaged.is_empty() && used != newest {
        return Err(format!(
            "recovery used checkpoint {used:?} without a fallback, but the newest on disk is {newest:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_has_a_prefix_routed_to_its_shard() {
        for shards in 1..=4 {
            let prefixes = prefixes(shards);
            let router = Router::Prefix { len_bytes: 1 };
            for (shard, &byte) in prefixes.iter().enumerate() {
                assert_eq!(router.route(&[byte, 0, 7], shards), shard as u32);
            }
        }
    }

    #[test]
    fn every_seed_draws_a_valid_config() {
        for seed in 0..200 {
            let config = KernelStoreConfig::from_seed(seed, KernelBug::None);
            let _ = config.kernel_config();
            assert!((1..=4).contains(&config.shards));
        }
    }
}
