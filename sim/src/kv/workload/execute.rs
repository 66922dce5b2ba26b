//! Execution: each operation of the key-value workload run against the store, and what its
//! outcome tells the model.
//!
//! Invariants: the model learns every acknowledged commit (durable or unsynced), records a
//! commit whose call failed as indeterminate (its outcome is unknown), and learns nothing of
//! a call the store refused as poisoned; a read is compared with the model only where no
//! indeterminate commit left the key uncertain.

use std::collections::BTreeMap;
use stormhold::env::Env;

use super::{KvWorkload, ok};
use crate::kv::groups::{self, DOCUMENT_MARK_VALUE, DOCUMENTS};
use crate::kv::model::Ack;
use crate::kv::{Key, KvStore, StoreError, TxnWrite, Value, Write};
use crate::verdict::{Violation, ViolationKind};

impl<S: KvStore> KvWorkload<S> {
    pub(super) fn op_commit(&mut self, writes: Vec<Write>, durable: bool) -> Result<(), StoreError> {
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.commit(&writes, durable);
        self.env.note(format!(
            "op {}: commit {writes:?} durable={durable} -> {}",
            self.op_index,
            ok(&result)
        ));
        match &result {
            Ok(()) => self.model.commit(writes, if durable { Ack::Durable } else { Ack::Unsynced }),
            Err(StoreError::Poisoned) => {}
            Err(_) => self.model.commit(writes, Ack::Indeterminate),
        }
        if let (true, Ok(())) = (durable, &result) {
            self.note_watermark();
        }
        result
    }

    pub(super) fn op_sync(&mut self) -> Result<(), StoreError> {
        self.whole_store_sync("sync", S::sync)
    }

    pub(super) fn op_checkpoint(&mut self) -> Result<(), StoreError> {
        // A checkpoint syncs the log first: on success everything committed is durable.
        self.whole_store_sync("checkpoint", S::checkpoint)
    }

    pub(super) fn op_begin_checkpoint(&mut self) -> Result<(), StoreError> {
        // A freeze makes nothing durable: the model does not change.
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.begin_checkpoint();
        self.env.note(format!("op {}: begin checkpoint -> {}", self.op_index, ok(&result)));
        result
    }

    /// Runs a store-wide operation that makes every committed transaction durable on
    /// success (a sync or a checkpoint), and updates the model either way.
    fn whole_store_sync(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut S) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = op(store);
        self.env.note(format!("op {}: {what} -> {}", self.op_index, ok(&result)));
        if result.is_ok() {
            self.model.synced();
            self.note_watermark();
        } else {
            self.synced_where_serving();
        }
        result
    }

    /// After a whole-store sync or checkpoint failed in a store of several groups: every
    /// group still serving completed it.
    fn synced_where_serving(&mut self) {
        let Some(store) = self.store.as_ref().filter(|_| self.model.groups() > 1) else { return };
        let failed = store.failed_groups();
        for group in (0..self.model.groups()).filter(|g| !failed.contains(g)) {
            self.model.synced_group(group);
        }
        self.note_watermark();
    }

    pub(super) fn op_tick(&mut self) -> Result<(), StoreError> {
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.tick();
        self.env.note(format!("op {}: tick -> {}", self.op_index, ok(&result)));
        let durable = result?;
        for &group in &durable {
            self.model.synced_group(group);
        }
        if !durable.is_empty() {
            self.note_watermark();
        }
        Ok(())
    }

    pub(super) fn op_get(&mut self, key: Key) -> Result<(), Violation> {
        let Some(store) = self.store.as_ref() else { return Ok(()) };
        match store.get(key) {
            Ok(got) if !self.model.uncertain(key) && got != self.model.expected(key) => Err(self.violation(
                ViolationKind::Read,
                format!("get {key}: got {got:?}, the model expects {:?}", self.model.expected(key)),
            )),
            // A read of a serving group never fails because another group failed.
            Err(error)
                if self.model.groups() > 1 && !store.failed_groups().contains(&self.model.group_of(key)) =>
            {
                let detail = format!("get {key} failed while its shard serves: {error}");
                Err(self.violation(ViolationKind::Liveness, detail))
            }
            _ => Ok(()),
        }
    }

    /// Compares a read inside `client`'s open transaction with the model: the transaction's
    /// own last write to `key` if any, else the committed value (unless uncertain). As for
    /// [`Self::op_get`], a read of a serving group never fails because another group failed.
    pub(super) fn op_txn_get(&mut self, client: u8, key: Key) -> Result<(), Violation> {
        let (Some(store), Some((txn, writes))) = (self.store.as_ref(), self.open_txns.get(&client)) else {
            return Ok(());
        };
        let result = store.txn_get(*txn, key);
        self.env.note(format!("op {}: in-txn get {key} (txn {txn}) -> {}", self.op_index, ok(&result)));
        let expected = self.expected_in_txn(writes, key);
        match result {
            Ok(got) if expected.is_some_and(|expected| expected != got) => {
                let detail = format!(
                    "txn get {key} (own writes {writes:?}): got {got:?}, the model expects {:?}",
                    expected.flatten()
                );
                Err(self.violation(ViolationKind::Read, detail))
            }
            Err(error)
                if self.model.groups() > 1 && !store.failed_groups().contains(&self.model.group_of(key)) =>
            {
                let detail = format!("txn get {key} failed while its shard serves: {error}");
                Err(self.violation(ViolationKind::Liveness, detail))
            }
            _ => Ok(()),
        }
    }

    /// What a read of `key` inside a transaction of `writes` must return (`None`: unknown):
    /// its own writes resolved in order over the committed value, which an increment reads
    /// too (resolved now, as the store resolves it for the read) and a put or delete hides.
    fn expected_in_txn(&self, writes: &[TxnWrite], key: Key) -> Option<Option<Value>> {
        let own: Vec<TxnWrite> = writes.iter().copied().filter(|w| w.key() == key).collect();
        // From the last put or delete on: it hides the committed value.
        let from = own.iter().rposition(|w| matches!(w, TxnWrite::Set(_)));
        let before = match from {
            Some(_) => None,
            None if self.model.uncertain(key) => return None,
            None => self.model.expected(key),
        };
        Some(own[from.unwrap_or(0)..].iter().fold(before, |value, write| write.apply_to(value)))
    }

    /// Compares a scan of one group, or of the whole store, with the model. A group's scan
    /// may fail only if the group is failed; a whole-store scan must fail if any group serves
    /// no reads (a scan never silently skips one); one that succeeds is checked in full.
    pub(super) fn op_scan(&mut self, group: Option<u8>) -> Result<(), Violation> {
        let Some(store) = self.store.as_ref() else { return Ok(()) };
        let groups = self.model.groups();
        let failed = store.failed_groups();
        let unreadable = store.unreadable_groups();
        let group = group.map(|g| usize::from(g) % groups);
        let result = match group {
            Some(group) => store.scan_group(group),
            None => store.state(),
        };
        self.env.note(format!("op {}: scan {group:?} -> {}", self.op_index, ok(&result)));
        let got = match (result, group) {
            (Ok(_), None) if !unreadable.is_empty() => {
                let detail =
                    format!("a scan of every shard succeeded while shards {unreadable:?} serve no reads");
                return Err(self.violation(ViolationKind::Read, detail));
            }
            (Ok(got), _) => got,
            (Err(_), Some(group)) if failed.contains(&group) => return Ok(()),
            (Err(_), None) if !failed.is_empty() => return Ok(()),
            (Err(error), _) => {
                let detail = format!("a scan of shard {group:?} failed while it serves: {error}");
                return Err(self.violation(ViolationKind::Liveness, detail));
            }
        };
        let in_scope = |key: Key| group.is_none_or(|g| self.model.group_of(key) == g);
        // A group's scan reads its keys only; document marks come from every group.
        let is_mark = |key: Key| group.is_some() && groups::document_of_mark(key, groups).is_some();
        let mut expected = BTreeMap::new();
        for model in &self.model.models {
            expected.extend(model.state_after(model.txns.len()));
        }
        for key in expected.keys().chain(got.keys()).copied() {
            if !in_scope(key) || is_mark(key) || self.model.uncertain(key) {
                continue;
            }
            let (want, found) = (expected.get(&key), got.get(&key));
            if want != found {
                let detail = format!("scan {group:?}: key {key}: got {found:?}, the model expects {want:?}");
                return Err(self.violation(ViolationKind::Read, detail));
            }
        }
        Ok(())
    }

    /// An increment, unless an indeterminate transaction left the key's value unknown.
    pub(super) fn op_increment(
        &mut self,
        key: Key,
        by: Value,
        durable: bool,
    ) -> Result<Result<(), StoreError>, Violation> {
        if self.model.uncertain(key) {
            self.env.note(format!("op {}: increment of uncertain key {key} skipped", self.op_index));
            return Ok(Ok(()));
        }
        let expected = self.model.expected(key).unwrap_or(0).wrapping_add(by);
        let Some(store) = self.store.as_mut() else { return Ok(Err(StoreError::Poisoned)) };
        let result = store.increment(key, by, durable);
        self.env.note(format!(
            "op {}: increment {key} by {by} durable={durable} -> {}",
            self.op_index,
            result.as_ref().map_or_else(|e| format!("err {e}"), |v| format!("ok {v}"))
        ));
        match result {
            Ok(got) if got != expected => {
                let detail = format!("increment {key} by {by}: got {got}, the model expects {expected}");
                Err(self.violation(ViolationKind::Read, detail))
            }
            Ok(got) => {
                self.model.commit(vec![(key, Some(got))], if durable { Ack::Durable } else { Ack::Unsynced });
                if durable {
                    self.note_watermark();
                }
                Ok(Ok(()))
            }
            Err(StoreError::Poisoned) => Ok(Err(StoreError::Poisoned)),
            Err(error) => {
                self.model.commit(vec![(key, Some(expected))], Ack::Indeterminate);
                Ok(Err(error))
            }
        }
    }

    /// Imports document `doc` in `chunks` durable chunks, the last one marking it complete,
    /// unless the store says it is complete already (which must match the model).
    pub(super) fn op_document(&mut self, doc: u8, chunks: u8) -> Result<Result<(), StoreError>, Violation> {
        let groups = self.model.groups();
        let doc = doc % DOCUMENTS;
        let mark = groups::document_mark_key(doc, groups);
        let Some(store) = self.store.as_mut() else { return Ok(Err(StoreError::Poisoned)) };
        let begun = store.document_begin(doc);
        self.env.note(format!(
            "op {}: begin document {doc} -> {}",
            self.op_index,
            begun.as_ref().map_or_else(|e| format!("err {e}"), |c| format!("ok complete={c}"))
        ));
        let complete = match begun {
            Ok(complete) => complete,
            Err(error) => return Ok(Err(error)),
        };
        if !self.model.uncertain(mark) && complete != self.model.expected(mark).is_some() {
            let detail = format!(
                "document {doc}: the store says complete={complete}, the model expects complete={}",
                !complete
            );
            return Err(self.violation(ViolationKind::Read, detail));
        }
        if complete {
            return Ok(Ok(()));
        }
        let writes = groups::document_writes(doc, groups);
        let per_chunk = writes.len().div_ceil(usize::from(chunks.max(1)));
        let parts: Vec<&[Write]> = writes.chunks(per_chunk).collect();
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            let Some(store) = self.store.as_mut() else { return Ok(Err(StoreError::Poisoned)) };
            let result = store.document_commit(doc, part, last);
            self.env.note(format!(
                "op {}: document {doc} chunk {index} complete={last} -> {}",
                self.op_index,
                ok(&result)
            ));
            let mut modeled = part.to_vec();
            if last {
                modeled.push((mark, Some(DOCUMENT_MARK_VALUE)));
            }
            match &result {
                Ok(()) => {
                    self.model.commit(modeled, Ack::Durable);
                    self.note_watermark();
                }
                Err(StoreError::Poisoned) => {}
                Err(_) => self.model.commit(modeled, Ack::Indeterminate),
            }
            if result.is_err() {
                return Ok(result);
            }
        }
        Ok(Ok(()))
    }

    pub(super) fn op_clock(&mut self) -> Result<(), Violation> {
        let wall = self.env.now_wall();
        let now = self.env.now_monotonic();
        if now < self.monotonic_seen {
            let detail = format!("monotonic clock went back from {:?} to {now:?}", self.monotonic_seen);
            return Err(self.violation(ViolationKind::Read, detail));
        }
        self.monotonic_seen = now;
        self.env.note(format!("op {}: wall clock {wall:?}", self.op_index));
        Ok(())
    }

    pub(super) fn op_begin(&mut self, client: u8) -> Result<(), StoreError> {
        if self.open_txns.contains_key(&client) {
            return Ok(());
        }
        let txn = self.next_txn;
        self.next_txn += 1;
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.txn_begin(txn);
        self.env.note(format!("client {client}: op {} begin txn {txn} -> {}", self.op_index, ok(&result)));
        result.map(|()| {
            self.open_txns.insert(client, (txn, Vec::new()));
        })
    }

    /// A put, delete or increment into `client`'s open transaction.
    pub(super) fn op_put(&mut self, client: u8, write: TxnWrite) -> Result<(), StoreError> {
        let Some((txn, writes)) = self.open_txns.get(&client) else { return Ok(()) };
        let txn = *txn;
        if let Some(first) = writes.first()
            && self.model.group_of(first.key()) != self.model.group_of(write.key())
        {
            // Only a replay with operations cut out (a crash that ended the transaction, say)
            // can bring a write of another group here: a transaction stays in one group.
            self.env.note(format!(
                "client {client}: op {} write {write:?} of another shard skipped",
                self.op_index
            ));
            return Ok(());
        }
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = match write {
            TxnWrite::Set(write) => store.txn_write(txn, write),
            TxnWrite::Add { key, by } => store.txn_increment(txn, key, by),
        };
        self.env.note(format!(
            "client {client}: op {} txn {txn} write {write:?} -> {}",
            self.op_index,
            ok(&result)
        ));
        if result.is_ok()
            && let Some((_, writes)) = self.open_txns.get_mut(&client)
        {
            writes.push(write);
        }
        result
    }

    pub(super) fn op_finish(&mut self, client: u8, commit: bool, durable: bool) -> Result<(), StoreError> {
        let Some((txn, writes)) = self.open_txns.remove(&client) else { return Ok(()) };
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.txn_finish(txn, &writes, commit, durable);
        let what = if commit { "commit" } else { "abort" };
        self.env.note(format!(
            "client {client}: op {} {what} txn {txn} durable={durable} -> {}",
            self.op_index,
            ok(&result)
        ));
        match (&result, commit) {
            (Ok(()), true) => {
                self.model.commit_txn(writes, if durable { Ack::Durable } else { Ack::Unsynced })
            }
            (Err(StoreError::Poisoned), _) | (_, false) => {}
            (Err(_), true) => self.model.commit_txn(writes, Ack::Indeterminate),
        }
        if let (true, true, Ok(())) = (commit, durable, &result) {
            self.note_watermark();
        }
        result
    }
}
