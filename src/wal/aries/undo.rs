//! Compensation: writing a CLR for each undone update and handing the undo to the page store
//! only once that CLR is durable. Shared by a live rollback ([`super::Transactions::abort`])
//! and by recovery's undo pass.
//!
//! Invariants: CLRs reach the handler in the order they were appended (so overlapping undos
//! land in reverse order of the updates); no undo reaches the handler before a sync covering
//! its CLR returned `Ok`; at most [`UNDO_BATCH_RECORDS_MAX`] undos and about
//! [`UNDO_BATCH_BYTES_MAX`] bytes of images wait at a time.

use super::records::{self, Clr};
use super::{
    AriesError, HandlerCall, PageId, RecoveryHandler, TxnId, UNDO_BATCH_BYTES_MAX, UNDO_BATCH_RECORDS_MAX,
};
use crate::env::Env;
use crate::wal::format::{Lsn, RecordKind};
use crate::wal::{Durability, Wal};

/// The update a CLR compensates, as undo needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct UndoEntry {
    pub page_id: PageId,
    pub offset: u32,
    pub before: Vec<u8>,
    /// The update's `prev_lsn`: where undo goes next.
    pub prev_lsn: Lsn,
}

struct Pending {
    page_id: PageId,
    offset: u32,
    image: Vec<u8>,
    clr_lsn: Lsn,
}

/// Writes CLRs and applies their undos in durable batches.
pub(super) struct Compensator<'h, H> {
    handler: &'h mut H,
    pending: Vec<Pending>,
    pending_bytes: usize,
    /// Undos the handler applied.
    pub undone: u64,
    /// CLRs appended.
    pub clrs_written: u64,
}

impl<'h, H: RecoveryHandler> Compensator<'h, H> {
    pub fn new(handler: &'h mut H) -> Self {
        Self { handler, pending: Vec::new(), pending_bytes: 0, undone: 0, clrs_written: 0 }
    }

    /// Appends the CLR compensating `entry` for `txn_id`, whose last record is `last_lsn`,
    /// and queues its undo. Returns the CLR's lsn (the transaction's new last record).
    pub fn compensate<E: Env>(
        &mut self,
        wal: &mut Wal<E>,
        txn_id: TxnId,
        last_lsn: Lsn,
        entry: UndoEntry,
    ) -> Result<Lsn, AriesError> {
        let clr = Clr {
            page_id: entry.page_id,
            offset: entry.offset,
            image: entry.before,
            undo_next_lsn: entry.prev_lsn,
        };
        let clr_lsn = wal.append(RecordKind::Clr, txn_id, last_lsn, &records::encode_clr(&clr))?;
        self.clrs_written += 1;
        self.pending_bytes += clr.image.len();
        self.pending.push(Pending { page_id: clr.page_id, offset: clr.offset, image: clr.image, clr_lsn });
        if self.pending_bytes >= UNDO_BATCH_BYTES_MAX || self.pending.len() >= UNDO_BATCH_RECORDS_MAX {
            self.flush(wal)?;
        }
        Ok(clr_lsn)
    }

    /// Makes every appended record durable, then applies the queued undos in order.
    pub fn flush<E: Env>(&mut self, wal: &mut Wal<E>) -> Result<(), AriesError> {
        if wal.durable_lsn() < wal.last_lsn() {
            wal.sync(Durability::Data)?;
        }
        debug_assert!(self.pending.iter().all(|p| p.clr_lsn <= wal.durable_lsn()));
        self.pending_bytes = 0;
        for pending in std::mem::take(&mut self.pending) {
            let Pending { page_id, offset, image, clr_lsn } = pending;
            self.handler
                .undo(page_id, offset, &image, clr_lsn)
                .map_err(|e| AriesError::handler(HandlerCall::Undo, page_id, clr_lsn, e))?;
            self.undone += 1;
        }
        Ok(())
    }
}
