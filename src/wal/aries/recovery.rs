//! Recovery: analysis → redo → undo.
//!
//! 1. **Analysis** runs inside [`Wal::open`]'s own recovery scan (which also cuts a torn tail
//!    and makes the recovered log durable): the losers and the dirty page table.
//! 2. **Redo** reads the log a second time, streaming, and repeats history: every Update and
//!    CLR whose page is in the dirty page table with `rec_lsn <= lsn` and whose `page_lsn` is
//!    below the record's lsn goes to [`RecoveryHandler::redo`]. Losers' changes are repeated
//!    too; undo then rolls them back. The same pass indexes the losers' records, keeping only
//!    updates no CLR has compensated yet. The pass must see exactly the log the first one saw,
//!    else [`AriesError::LogChanged`].
//! 3. **Undo** rolls all losers back together, newest record first: a CLR (whose
//!    `undo_next_lsn` is the compensated update's `prev_lsn`) for each update, the undo handed
//!    to the handler once the CLR is durable, an Abort when a loser's chain ends, and a final
//!    sync. A CLR met on the chain sends undo straight to its `undo_next_lsn`, so after a crash
//!    during undo, the next recovery undoes only what no CLR covers: nothing twice.
//!
//! Both reads are streaming and memory-bounded; the undo index holds only the losers'
//! uncompensated updates (their before images).

use std::collections::BTreeMap;
use std::path::Path;

use super::analysis::{Analysis, OpenTxn};
use super::records::{self, Clr, Payload, Update};
use super::undo::{Compensator, UndoEntry};
use super::{AriesError, HandlerCall, PageId, RecoveryHandler, TxnId};
use crate::env::Env;
use crate::wal::format::{Lsn, Record, RecordKind};
use crate::wal::scan::{self, ScanReport};
use crate::wal::{Wal, WalOptions};

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Valid records the log holds (before recovery appended any).
    pub records_scanned: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes of a torn tail cut off the log.
    pub torn_bytes_truncated: u64,
    /// Loser transactions: open at the end of the log, rolled back.
    pub active_txns: u64,
    /// Pages in the dirty page table after analysis.
    pub dirty_pages: u64,
    /// Updates and CLRs handed to [`RecoveryHandler::redo`].
    pub redone: u64,
    /// Updates handed to [`RecoveryHandler::undo`].
    pub undone: u64,
    /// CLRs recovery appended.
    pub clrs_written: u64,
    /// The highest transaction id in the log: new transactions should use higher ones.
    pub txn_id_max: TxnId,
}

/// Opens the log in `dir` and recovers the page store behind `handler`: committed
/// transactions' changes are redone, losers' undone. Returns the open log (durable, no
/// transaction left open) and what recovery did.
///
/// The pages recovery changed are the page store's to make durable: before its next
/// checkpoint, it must either sync them or list them as dirty (with `rec_lsn` at most the
/// lsn they got), or a crash after that checkpoint can lose them for good. A crash before
/// then is harmless: recovery is idempotent and simply runs again.
pub fn recover<E: Env + Clone, H: RecoveryHandler>(
    env: E,
    dir: &Path,
    options: WalOptions,
    handler: &mut H,
) -> Result<(Wal<E>, RecoveryStats), AriesError> {
    let mode = options.recovery_mode;
    let mut analysis = Analysis::default();
    let (mut wal, report) = Wal::open(env.clone(), dir, options, |record| analysis.visit(record))?;
    let analysis = analysis.finish()?;
    let mut stats = RecoveryStats {
        records_scanned: report.records,
        bytes: report.bytes,
        torn_bytes_truncated: report.torn_bytes,
        active_txns: analysis.open.len() as u64,
        dirty_pages: analysis.dirty.len() as u64,
        txn_id_max: analysis.txn_id_max,
        ..RecoveryStats::default()
    };
    let mut redo = Redo::new(&analysis, handler);
    let second = scan::scan(&env, dir, mode, |record| redo.visit(record))?;
    let (index, redone) = redo.finish(&report, &second)?;
    stats.redone = redone;
    let mut compensator = Compensator::new(handler);
    undo(&mut wal, &analysis, index, &mut compensator)?;
    stats.undone = compensator.undone;
    stats.clrs_written = compensator.clrs_written;
    debug_assert_eq!(wal.durable_lsn(), wal.last_lsn());
    Ok((wal, stats))
}

/// A loser's record, as undo needs it.
#[derive(Debug)]
enum Entry {
    Begin,
    Update(UndoEntry),
    Clr { undo_next_lsn: Lsn },
}

/// The losers' records by transaction and lsn.
type LoserIndex = BTreeMap<TxnId, BTreeMap<Lsn, Entry>>;

/// The redo pass, fed record by record by the scan.
struct Redo<'a, H> {
    handler: &'a mut H,
    dirty: &'a BTreeMap<PageId, Lsn>,
    losers: &'a BTreeMap<TxnId, OpenTxn>,
    index: LoserIndex,
    redone: u64,
    error: Option<AriesError>,
}

impl<'a, H: RecoveryHandler> Redo<'a, H> {
    fn new(analysis: &'a Analysis, handler: &'a mut H) -> Self {
        let index = analysis.open.keys().map(|&txn_id| (txn_id, BTreeMap::new())).collect();
        Self { handler, dirty: &analysis.dirty, losers: &analysis.open, index, redone: 0, error: None }
    }

    fn visit(&mut self, record: Record) {
        if self.error.is_none()
            && let Err(error) = self.apply(record)
        {
            self.error = Some(error);
        }
    }

    fn apply(&mut self, record: Record) -> Result<(), AriesError> {
        let payload = records::decode(record.kind, &record.payload)
            .map_err(|e| AriesError::payload(record.lsn, record.kind, e))?;
        let entry = match payload {
            Payload::Update(Update { page_id, offset, before, after }) => {
                self.redo(page_id, offset, &after, record.lsn)?;
                Entry::Update(UndoEntry { page_id, offset, before, prev_lsn: record.prev_lsn })
            }
            Payload::Clr(Clr { page_id, offset, image, undo_next_lsn }) => {
                self.redo(page_id, offset, &image, record.lsn)?;
                Entry::Clr { undo_next_lsn }
            }
            Payload::Begin => Entry::Begin,
            _ => return Ok(()),
        };
        self.index(&record, entry);
        Ok(())
    }

    /// Repeats a change unless the dirty page table or the page's lsn says the page has it.
    fn redo(&mut self, page_id: PageId, offset: u32, image: &[u8], lsn: Lsn) -> Result<(), AriesError> {
        match self.dirty.get(&page_id) {
            Some(&rec_lsn) if rec_lsn <= lsn => {}
            _ => return Ok(()),
        }
        let page_lsn = self
            .handler
            .page_lsn(page_id)
            .map_err(|e| AriesError::handler(HandlerCall::PageLsn, page_id, lsn, e))?;
        if page_lsn >= lsn {
            return Ok(());
        }
        self.handler
            .redo(page_id, offset, image, lsn)
            .map_err(|e| AriesError::handler(HandlerCall::Redo, page_id, lsn, e))?;
        self.redone += 1;
        Ok(())
    }

    /// Keeps a loser's record for undo. A CLR compensates every later update of its
    /// transaction down to its `undo_next_lsn`, so those are dropped.
    fn index(&mut self, record: &Record, entry: Entry) {
        let Some(loser) = self.losers.get(&record.txn_id) else { return };
        if record.lsn < loser.begin_lsn || record.lsn > loser.last_lsn {
            return; // An earlier transaction with the same id.
        }
        let Some(records) = self.index.get_mut(&record.txn_id) else { return };
        if let Entry::Clr { undo_next_lsn } = entry {
            drop(records.split_off(&undo_next_lsn.saturating_add(1)));
        }
        records.insert(record.lsn, entry);
    }

    /// The index of the losers and the number of redone changes, once the second scan saw
    /// the same log as the first.
    fn finish(self, first: &ScanReport, second: &ScanReport) -> Result<(LoserIndex, u64), AriesError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if (second.records, second.last_lsn) != (first.records, first.last_lsn) {
            let detail = format!(
                "first pass: {} records up to lsn {}; second pass: {} records up to lsn {}",
                first.records, first.last_lsn, second.records, second.last_lsn
            );
            return Err(AriesError::LogChanged { detail });
        }
        Ok((self.index, self.redone))
    }
}

/// Rolls every loser back, newest record first across all of them, then syncs.
fn undo<E: Env, H: RecoveryHandler>(
    wal: &mut Wal<E>,
    analysis: &Analysis,
    mut index: LoserIndex,
    compensator: &mut Compensator<'_, H>,
) -> Result<(), AriesError> {
    let mut cursors: BTreeMap<Lsn, TxnId> =
        analysis.open.iter().map(|(&id, open)| (open.last_lsn, id)).collect();
    let mut last: BTreeMap<TxnId, Lsn> =
        analysis.open.iter().map(|(&id, open)| (id, open.last_lsn)).collect();
    while let Some((cursor, txn_id)) = cursors.pop_last() {
        let entry = index.get_mut(&txn_id).and_then(|records| records.remove(&cursor));
        let last_lsn = last.get(&txn_id).copied().unwrap_or_default();
        let next = match entry {
            Some(Entry::Update(update)) => {
                let next = update.prev_lsn;
                last.insert(txn_id, compensator.compensate(wal, txn_id, last_lsn, update)?);
                next
            }
            Some(Entry::Clr { undo_next_lsn }) => undo_next_lsn,
            Some(Entry::Begin) => 0,
            None if cursor < analysis.first_lsn => {
                let detail = "which precedes the log's first record (truncated too far)";
                return Err(AriesError::BrokenUndoChain { txn_id, lsn: cursor, detail });
            }
            None => {
                let detail = "which is not an uncompensated record of that transaction";
                return Err(AriesError::BrokenUndoChain { txn_id, lsn: cursor, detail });
            }
        };
        if next == 0 {
            let last_lsn = last.get(&txn_id).copied().unwrap_or_default();
            wal.append(RecordKind::Abort, txn_id, last_lsn, &[])?;
        } else if next >= cursor || cursors.contains_key(&next) {
            let detail = "which does not lead back to an earlier record of that transaction";
            return Err(AriesError::BrokenUndoChain { txn_id, lsn: next, detail });
        } else {
            cursors.insert(next, txn_id);
        }
    }
    compensator.flush(wal)
}
