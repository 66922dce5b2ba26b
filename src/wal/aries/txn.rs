//! The transaction table of a live log: begin / update / commit / abort / checkpoint.
//!
//! [`Transactions`] owns no log: each call takes the `&mut Wal<E>` to write to, so other
//! layers can keep appending their own records to the same log. Use one table per log (a
//! checkpoint records this table as the log's whole set of active transactions); after
//! [`super::recover`] no transaction is active, so a fresh table is right, with ids above
//! [`super::RecoveryStats::txn_id_max`].
//!
//! Invariants: the table holds exactly the transactions begun and not yet committed or
//! aborted; each entry's `last_lsn` is the lsn of its latest record (the next record's
//! `prev_lsn`); its undo list holds its updates in lsn order.
//!
//! After an error the caller must not go on with the log: a failed append or sync poisons
//! the log, and a failed handler leaves pages in an unknown state. Reopen with
//! [`super::recover`], which resolves every transaction from what is durable.

use std::collections::BTreeMap;

use super::records::{self, Checkpoint, Update};
use super::undo::{Compensator, UndoEntry};
use super::{AriesError, PageId, RecoveryHandler, TxnId};
use crate::env::Env;
use crate::wal::format::{Lsn, RecordKind};
use crate::wal::{Durability, Wal};

#[derive(Debug)]
struct Active {
    first_lsn: Lsn,
    last_lsn: Lsn,
    undo: Vec<UndoEntry>,
}

/// The active transactions of one log.
#[derive(Debug, Default)]
pub struct Transactions {
    active: BTreeMap<TxnId, Active>,
}

impl Transactions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn active_mut(&mut self, txn_id: TxnId) -> Result<&mut Active, AriesError> {
        self.active.get_mut(&txn_id).ok_or(AriesError::UnknownTxn(txn_id))
    }

    /// Begins `txn_id` (not 0, not active) and returns the lsn of its Begin record.
    pub fn begin<E: Env>(&mut self, wal: &mut Wal<E>, txn_id: TxnId) -> Result<Lsn, AriesError> {
        if txn_id == 0 {
            return Err(AriesError::InvalidTxnId);
        }
        if self.active.contains_key(&txn_id) {
            return Err(AriesError::TxnActive(txn_id));
        }
        let lsn = wal.append(RecordKind::Begin, txn_id, 0, &[])?;
        self.active.insert(txn_id, Active { first_lsn: lsn, last_lsn: lsn, undo: Vec::new() });
        Ok(lsn)
    }

    /// Logs that `txn_id` changed bytes `offset..offset + after.len()` of `page_id` from
    /// `before` to `after` (equal lengths); returns the Update's lsn. The page store may write
    /// the changed page only once the log is durable up to that lsn (the write-ahead rule).
    pub fn update<E: Env>(
        &mut self,
        wal: &mut Wal<E>,
        txn_id: TxnId,
        page_id: PageId,
        offset: u32,
        before: &[u8],
        after: &[u8],
    ) -> Result<Lsn, AriesError> {
        if before.len() != after.len() {
            return Err(AriesError::ImageLengths { before: before.len(), after: after.len() });
        }
        let last_lsn = self.active_mut(txn_id)?.last_lsn;
        let update = Update { page_id, offset, before: before.to_vec(), after: after.to_vec() };
        let lsn = wal.append(RecordKind::Update, txn_id, last_lsn, &records::encode_update(&update))?;
        let active = self.active_mut(txn_id)?;
        active.undo.push(UndoEntry { page_id, offset, before: update.before, prev_lsn: last_lsn });
        active.last_lsn = lsn;
        Ok(lsn)
    }

    /// Commits `txn_id` and returns the Commit's lsn. Unless `durability` is
    /// [`Durability::None`], the commit is durable when this returns `Ok`. Once the Commit
    /// is appended the transaction leaves the table, even if the sync then fails (its fate
    /// is then for recovery to tell).
    pub fn commit<E: Env>(
        &mut self,
        wal: &mut Wal<E>,
        txn_id: TxnId,
        durability: Durability,
    ) -> Result<Lsn, AriesError> {
        let last_lsn = self.active_mut(txn_id)?.last_lsn;
        let lsn = wal.append(RecordKind::Commit, txn_id, last_lsn, &[])?;
        self.active.remove(&txn_id);
        let durable = wal.sync(durability)?;
        debug_assert!(durability == Durability::None || durable >= lsn);
        Ok(lsn)
    }

    /// Rolls `txn_id` back: undoes its updates newest first, each logged by a CLR and handed
    /// to `handler` once that CLR is durable, then writes the Abort. Returns the Abort's lsn.
    pub fn abort<E: Env, H: RecoveryHandler>(
        &mut self,
        wal: &mut Wal<E>,
        txn_id: TxnId,
        handler: &mut H,
    ) -> Result<Lsn, AriesError> {
        let active = self.active.remove(&txn_id).ok_or(AriesError::UnknownTxn(txn_id))?;
        if active.undo.is_empty() {
            return Ok(wal.append(RecordKind::Abort, txn_id, active.last_lsn, &[])?);
        }
        let mut compensator = Compensator::new(handler);
        let mut last_lsn = active.last_lsn;
        for entry in active.undo.into_iter().rev() {
            last_lsn = compensator.compensate(wal, txn_id, last_lsn, entry)?;
        }
        let lsn = wal.append(RecordKind::Abort, txn_id, last_lsn, &[])?;
        compensator.flush(wal)?;
        Ok(lsn)
    }

    /// Writes a fuzzy checkpoint: this table's active transactions and `dirty_pages`, the
    /// page store's pages that may lack logged changes, each with its `rec_lsn` (the lsn of
    /// the oldest change not yet durable in the page store). Returns its lsn; it is durable
    /// after the next sync. Recovery's redo starts at the smallest `rec_lsn` of its last
    /// checkpoint, so leaving a page out that still lacks a change loses that change.
    pub fn checkpoint<E: Env>(
        &self,
        wal: &mut Wal<E>,
        dirty_pages: &[(PageId, Lsn)],
    ) -> Result<Lsn, AriesError> {
        let checkpoint = Checkpoint {
            active_txns: self.active.iter().map(|(&id, active)| (id, active.last_lsn)).collect(),
            dirty_pages: dirty_pages.to_vec(),
        };
        Ok(wal.append(RecordKind::Checkpoint, 0, 0, &records::encode_checkpoint(&checkpoint))?)
    }

    /// Active transactions with the lsn of their last record, by id.
    pub fn active(&self) -> Vec<(TxnId, Lsn)> {
        self.active.iter().map(|(&id, active)| (id, active.last_lsn)).collect()
    }

    /// Whether `txn_id` is active.
    pub fn is_active(&self, txn_id: TxnId) -> bool {
        self.active.contains_key(&txn_id)
    }

    /// The first lsn of the oldest active transaction. The log must keep every record from
    /// here (and from the last checkpoint's smallest `rec_lsn`) for recovery to undo and redo:
    /// never `truncate_before` past it.
    pub fn oldest_first_lsn(&self) -> Option<Lsn> {
        self.active.values().map(|active| active.first_lsn).min()
    }
}
