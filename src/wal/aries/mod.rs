//! ARIES on top of the write-ahead log: transaction records with before and after images,
//! compensation records, fuzzy checkpoints, and recovery by analysis → redo → undo.
//!
//! - [`records`]: the payload codec of Update, CLR and Checkpoint records (pure);
//! - [`Transactions`] (`txn.rs`): begin / update / commit / abort / checkpoint over a
//!   `&mut Wal<E>`;
//! - [`recover`] (`recovery.rs`, `analysis.rs`): opens the log and brings a page store,
//!   reached through a [`RecoveryHandler`], to the state of exactly the committed
//!   transactions.
//!
//! Invariants (the writer keeps them, recovery checks them when it reads them back):
//! - every record of a transaction carries `prev_lsn` = the lsn of the transaction's previous
//!   record (0 for its Begin), so the records of a transaction form one backward chain;
//! - a transaction ends with exactly one Commit or Abort, and an Abort is written only after
//!   every update of the transaction has been compensated by a CLR;
//! - a CLR's `undo_next_lsn` is the `prev_lsn` of the update it compensates; undo continues
//!   from there, so no update is ever undone twice, whatever crashes interrupt undo;
//! - a handler's `redo` and `undo` are called only for records that are already durable, so a
//!   page store may write a page at once (STEAL) without breaking the write-ahead rule, and
//!   after any crash the log holds every change a page store may hold;
//! - redo repeats history: every Update and CLR at or after its page's `rec_lsn`, skipped
//!   when the handler's `page_lsn` says the page already has it;
//! - after [`recover`] returns, no transaction of the log is left open (each loser ended by an
//!   Abort) and every record is durable;
//! - the page store's side of the bargain (checked by the STEAL test in `tests/wal_aries_steal.rs`):
//!   a page is written only once the log is durable up to its lsn; a checkpoint's dirty page
//!   table lists every page whose latest changes are not durable in the store (written but
//!   unsynced included); pages recovery changed are synced or listed before the next
//!   checkpoint; a page write is atomic (page lsn and bytes together).
//!
//! Memory: analysis keeps the transaction table and the dirty page table; redo streams the
//! log; undo keeps an index of the losers' records only (their not yet compensated updates,
//! bounded by the losers' size), never the whole log. A live [`Transactions`] keeps the
//! before images of its active transactions, for `abort`.
//!
//! Deliberate differences from the sochdb-storage seed: a CLR carries the image it restored,
//! so redo can repeat it; abort really undoes; undo follows `undo_next_lsn` instead of
//! re-undoing; analysis starts from the checkpoint's tables; undo ends each loser with an
//! Abort and syncs; a record is found by lsn through an index, not by rescanning the log.

pub mod error;
pub mod records;

mod analysis;
mod recovery;
mod txn;
mod undo;

pub use error::{AriesError, HandlerCall};
pub use recovery::{RecoveryStats, recover};
pub use txn::Transactions;

use crate::wal::format::Lsn;

/// A transaction id. 0 means "none" and is never a transaction.
pub type TxnId = u64;
/// A page id of the page store.
pub type PageId = u64;

/// Undo applies pending compensations (after one sync) once their images reach this many
/// bytes, so a long rollback costs one sync per batch, not one per update, in bounded memory.
pub const UNDO_BATCH_BYTES_MAX: usize = 1024 * 1024;
/// ... or once this many compensations wait, whichever comes first.
pub const UNDO_BATCH_RECORDS_MAX: usize = 128;

const _: () = assert!(UNDO_BATCH_RECORDS_MAX > 0 && UNDO_BATCH_BYTES_MAX > 0);

/// The page store, as recovery and rollback see it.
///
/// A page's lsn is the lsn of the last change applied to it; the page store keeps it with the
/// page's bytes, written together (atomically) when the page is written. Both `redo` and
/// `undo` are called only once the record they carry is durable in the log.
pub trait RecoveryHandler {
    /// The page store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The lsn of the last change the page holds (0: none). Redo skips a record whose lsn is
    /// at or below it.
    fn page_lsn(&mut self, page_id: PageId) -> Result<Lsn, Self::Error>;

    /// Writes `after_image` at `offset` of the page and sets its lsn to `lsn` (an Update or
    /// a CLR being repeated).
    fn redo(&mut self, page_id: PageId, offset: u32, after_image: &[u8], lsn: Lsn)
    -> Result<(), Self::Error>;

    /// Writes `before_image` at `offset` of the page and sets its lsn to `lsn`, the lsn of
    /// the CLR that logs this undo.
    fn undo(
        &mut self,
        page_id: PageId,
        offset: u32,
        before_image: &[u8],
        lsn: Lsn,
    ) -> Result<(), Self::Error>;
}
