//! Recovery's analysis pass: from the records in lsn order, the transactions still open at the
//! end of the log (the losers, with their last lsn) and the dirty page table.
//!
//! A checkpoint record replaces the dirty page table (only the page store knew which pages
//! it had made durable) and adds its active transactions to the transaction table (needed
//! when the records before it were truncated; where the scan saw a transaction itself, the
//! scan's knowledge wins). Records after it then update both tables, so the result is the
//! analysis "from the last checkpoint" of ARIES while the log is read once, by the WAL's own
//! recovery scan.
//!
//! Checks on read-back: every Update, CLR, Commit and Abort of a transaction the table knows
//! chains to its last record (`prev_lsn`); a Begin never reopens an open transaction; payloads
//! decode as their kind says. A failed check is [`AriesError::BadRecord`].
//!
//! Memory: one entry per open transaction and per dirty page.

use std::collections::BTreeMap;

use super::records::{self, Checkpoint, Payload};
use super::{AriesError, PageId, TxnId};
use crate::wal::format::{Lsn, Record};

/// An open transaction, as analysis knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct OpenTxn {
    /// Its last record.
    pub last_lsn: Lsn,
    /// Its Begin, or 0 when the log no longer holds it (known from a checkpoint).
    pub begin_lsn: Lsn,
}

/// The state of the analysis pass.
#[derive(Debug, Default)]
pub(super) struct Analysis {
    /// Transactions open at the point reached.
    pub open: BTreeMap<TxnId, OpenTxn>,
    /// Dirty pages with their rec_lsn.
    pub dirty: BTreeMap<PageId, Lsn>,
    /// The first lsn the log holds (0: empty log).
    pub first_lsn: Lsn,
    /// The highest transaction id seen.
    pub txn_id_max: TxnId,
    error: Option<AriesError>,
}

impl Analysis {
    /// Feeds the next record (in lsn order). The first failure is kept for [`Analysis::finish`].
    pub fn visit(&mut self, record: Record) {
        if self.error.is_some() {
            return;
        }
        if self.first_lsn == 0 {
            self.first_lsn = record.lsn;
        }
        self.txn_id_max = self.txn_id_max.max(record.txn_id);
        if let Err(error) = self.apply(&record) {
            self.error = Some(error);
        }
    }

    /// The analysis, or the first failure it met.
    pub fn finish(self) -> Result<Self, AriesError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self),
        }
    }

    fn apply(&mut self, record: &Record) -> Result<(), AriesError> {
        let payload = records::decode(record.kind, &record.payload)
            .map_err(|e| AriesError::payload(record.lsn, record.kind, e))?;
        match payload {
            Payload::Data => {}
            Payload::Checkpoint(checkpoint) => self.checkpoint(checkpoint),
            Payload::Begin => self.begin(record)?,
            Payload::Update(update) => self.change(record, update.page_id)?,
            Payload::Clr(clr) => self.change(record, clr.page_id)?,
            Payload::Commit | Payload::Abort => {
                self.chain(record)?;
                self.open.remove(&record.txn_id);
            }
        }
        Ok(())
    }

    fn begin(&mut self, record: &Record) -> Result<(), AriesError> {
        if record.txn_id == 0 || record.prev_lsn != 0 {
            return Err(AriesError::bad_record(
                record.lsn,
                record.kind,
                "Begin without a transaction or with a prev_lsn",
            ));
        }
        if self.open.contains_key(&record.txn_id) {
            let detail = format!("transaction {} begins again while open", record.txn_id);
            return Err(AriesError::bad_record(record.lsn, record.kind, detail));
        }
        self.open.insert(record.txn_id, OpenTxn { last_lsn: record.lsn, begin_lsn: record.lsn });
        Ok(())
    }

    fn change(&mut self, record: &Record, page_id: PageId) -> Result<(), AriesError> {
        self.chain(record)?;
        self.dirty.entry(page_id).or_insert(record.lsn);
        Ok(())
    }

    /// Checks that `record` continues its transaction's chain and makes it the last record.
    fn chain(&mut self, record: &Record) -> Result<(), AriesError> {
        if record.txn_id == 0 {
            return Err(AriesError::bad_record(
                record.lsn,
                record.kind,
                "transaction record without a transaction",
            ));
        }
        let open =
            self.open.entry(record.txn_id).or_insert(OpenTxn { last_lsn: record.prev_lsn, begin_lsn: 0 });
        if open.last_lsn != record.prev_lsn || record.prev_lsn >= record.lsn {
            let detail = format!(
                "prev_lsn {} of transaction {} does not chain to its last record {}",
                record.prev_lsn, record.txn_id, open.last_lsn
            );
            return Err(AriesError::bad_record(record.lsn, record.kind, detail));
        }
        open.last_lsn = record.lsn;
        Ok(())
    }

    fn checkpoint(&mut self, checkpoint: Checkpoint) {
        self.dirty.clear();
        for (page_id, rec_lsn) in checkpoint.dirty_pages {
            let entry = self.dirty.entry(page_id).or_insert(rec_lsn);
            *entry = (*entry).min(rec_lsn);
        }
        for (txn_id, last_lsn) in checkpoint.active_txns {
            self.txn_id_max = self.txn_id_max.max(txn_id);
            self.open.entry(txn_id).or_insert(OpenTxn { last_lsn, begin_lsn: 0 });
        }
    }
}
