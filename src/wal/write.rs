//! Appending, syncing, rotating and truncating a log.

use std::path::PathBuf;

use super::format::{
    self, Lsn, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX, Record, RecordKind, SEGMENT_HEADER_BYTES,
    SYNC_ALIGN_BYTES,
};
use super::open::{create_segment, fill_zeros};
use super::{Durability, Wal, WalError};
use crate::env::{Env, EnvFile};

/// A sync begun by [`Wal::sync_begin`] and not yet finished.
#[derive(Clone, Copy, Debug)]
#[must_use = "a begun sync must be finished with Wal::sync_finish"]
pub(crate) struct SyncTicket {
    /// Every lsn up to this one is durable once the sync succeeds.
    pub(crate) target: Lsn,
    /// The segment whose handle the sync must use.
    pub(crate) segment_id: u64,
}

/// Syncs `file` as `durability` asks (`None` is not a sync and never reaches here).
pub(crate) fn sync_file<F: EnvFile>(file: &F, durability: Durability) -> std::io::Result<()> {
    match durability {
        Durability::All => file.sync_all(),
        _ => file.sync_data(),
    }
}

impl<E: Env> Wal<E> {
    pub(super) fn check_poisoned(&self) -> Result<(), WalError> {
        match &self.poisoned {
            Some(cause) => Err(WalError::Poisoned { cause: cause.clone() }),
            None => Ok(()),
        }
    }

    /// Poisons the log with `error` as the cause and returns it.
    fn poison(&mut self, error: WalError) -> WalError {
        self.poisoned.get_or_insert_with(|| error.to_string());
        error
    }

    /// Appends a record and returns its lsn. Not durable until [`Wal::sync`].
    pub fn append(
        &mut self,
        kind: RecordKind,
        txn_id: u64,
        prev_lsn: Lsn,
        payload: &[u8],
    ) -> Result<Lsn, WalError> {
        let mut frame = vec![0; RECORD_HEADER_BYTES + payload.len()];
        frame[RECORD_HEADER_BYTES..].copy_from_slice(payload);
        self.append_frame(kind, txn_id, prev_lsn, &mut frame)
    }

    /// [`Wal::append`] of a record whose payload the caller built in place, behind
    /// [`RECORD_HEADER_BYTES`] bytes of room that this fills with the header: the frame is
    /// written as it is, with one write call, and never copied.
    pub fn append_frame(
        &mut self,
        kind: RecordKind,
        txn_id: u64,
        prev_lsn: Lsn,
        frame: &mut [u8],
    ) -> Result<Lsn, WalError> {
        self.check_poisoned()?;
        let last_before = self.last_lsn();
        let payload_len = frame.len().saturating_sub(RECORD_HEADER_BYTES);
        assert!(frame.len() >= RECORD_HEADER_BYTES, "a frame starts with the header's room");
        if payload_len > RECORD_PAYLOAD_BYTES_MAX {
            return Err(WalError::RecordTooLarge { len: payload_len, max: RECORD_PAYLOAD_BYTES_MAX });
        }
        let slot = format::record_slot_bytes(payload_len);
        if self.append_rotates(payload_len) {
            self.rotate()?;
        }
        // The header's fields; the payload is the frame's, so this holds none.
        let record = Record {
            kind,
            lsn: self.next_lsn,
            durable_lsn: self.durable_lsn,
            segment_id: self.active.id,
            txn_id,
            prev_lsn,
            payload: Vec::new(),
        };
        self.check_append(&record);
        format::frame_record(frame, &record);
        // Past the preallocated end: a step of zeros first, unless the log is in a bulk phase
        // (more than a step appended since the last sync). Then the zeros would be
        // overwritten before any sync could profit from them, so the record grows the file
        // itself (a load that never syncs no longer writes every byte twice).
        let grows_file = self.active.tail + slot > self.active.preallocated;
        let bulk_phase =
            self.active.tail + slot - self.active.synced_tail > self.options.preallocate_step_bytes();
        if self.options.preallocate && grows_file && !bulk_phase {
            self.preallocate_step(self.active.tail + slot)?;
        }
        if let Err(error) = self.active.file.write_all_at(frame, self.active.tail) {
            return Err(self.poison(WalError::io("append", &self.active.path, error)));
        }
        self.active.tail += slot;
        if self.active.tail > self.active.preallocated {
            // The write grew the file to the record's end (its padding unwritten, so the
            // file may end up to `RECORD_ALIGN_BYTES` short of the tail: no zeros past it).
            self.active.preallocated = self.active.tail;
        }
        self.next_lsn += 1;
        self.stats.records += 1;
        self.stats.bytes += slot;
        // Postconditions: the record is the next lsn, and the writer is consistent.
        debug_assert_eq!(record.lsn, last_before + 1, "appends are dense");
        debug_assert_eq!(self.last_lsn(), record.lsn, "the record is the last appended");
        self.check_invariants();
        Ok(record.lsn)
    }

    /// Whether more than one preallocation step was appended to the active segment since
    /// its last sync: a bulk load that syncs rarely (or only at its end), for which zeros
    /// ahead of the tail are pure cost. A writer that syncs at least once a step (every
    /// durable commit, every group commit) is never in one, so its syncs keep finding the
    /// file's length already written.
    pub(crate) fn in_bulk_phase(&self) -> bool {
        self.active.tail - self.active.synced_tail > self.options.preallocate_step_bytes()
    }

    /// Writes zeros past the preallocated end, one step (or up to `needed`, if more), never
    /// past the segment size unless `needed` is (a record larger than the rest of a fresh
    /// segment). The zeros start on a sector boundary past every written record, so a torn
    /// fill never reaches one. A failed write poisons the log.
    fn preallocate_step(&mut self, needed: u64) -> Result<(), WalError> {
        let from = self.active.preallocated;
        if from >= self.options.segment_size_bytes {
            return Ok(());
        }
        let start = from.max(self.active.tail).next_multiple_of(SYNC_ALIGN_BYTES);
        let to = needed
            .next_multiple_of(SYNC_ALIGN_BYTES)
            .max(start + self.options.preallocate_step_bytes())
            .min(self.options.segment_size_bytes);
        self.fill_ahead(to).map(|_| ())
    }

    /// Zeros from the preallocated end (or the tail, if a sync moved it past the end) to
    /// `to`, starting on a sector boundary, and returns that start. A file a bulk phase grew
    /// to a record's end is first extended to the boundary by `set_len`: nothing is written
    /// into the sector that holds the last record's end, so a torn fill cannot reach it. A
    /// failed call poisons the log.
    fn fill_ahead(&mut self, to: u64) -> Result<u64, WalError> {
        let end = self.active.preallocated;
        let from = end.max(self.active.tail).next_multiple_of(SYNC_ALIGN_BYTES);
        if to <= from {
            return Ok(from);
        }
        if from > end
            && let Err(error) = self.active.file.set_len(from)
        {
            return Err(self.poison(WalError::io("extend segment to a sector", &self.active.path, error)));
        }
        if let Err(error) = fill_zeros(&self.active.file, &self.active.path, from, to) {
            return Err(self.poison(error));
        }
        self.active.preallocated = to;
        Ok(from)
    }

    /// Whether the next preallocation step is due ahead of need: preallocating, not in a bulk
    /// phase ([`Wal::in_bulk_phase`]: no sync would profit), the segment not preallocated to
    /// its end, and the tail past the middle of the last step (at most half a step of zeros
    /// left before it).
    pub fn prepare_due(&self) -> bool {
        let step = self.options.preallocate_step_bytes();
        self.options.preallocate
            && !self.in_bulk_phase()
            && self.active.preallocated < self.options.segment_size_bytes
            && self.active.preallocated.saturating_sub(self.active.tail) <= step / 2
    }

    /// Writes the next preallocation step ahead of need (see [`Wal::prepare_due`]) and starts
    /// its writeback, so the append that reaches it finds its zeros written, and a sync that
    /// is not a commit's (the caller's, see [`crate::wal::shared::SharedWal::prepare_ahead`])
    /// can carry the file's length change before a commit's sync has to. Returns whether it
    /// wrote. The zeros start on a sector boundary past every written record; at most one
    /// step and a half of zeros lie ahead of the tail afterwards. Nothing durable depends on
    /// the zeros (a crash may keep any part of them: recovery treats what lies past the last
    /// record as a torn tail), so the step needs no sync of its own; a failed write or
    /// writeback hint poisons the log.
    pub fn prepare_ahead(&mut self) -> Result<bool, WalError> {
        self.check_poisoned()?;
        if !self.prepare_due() {
            return Ok(false);
        }
        let start = self.active.preallocated.max(self.active.tail).next_multiple_of(SYNC_ALIGN_BYTES);
        let to = (start + self.options.preallocate_step_bytes()).min(self.options.segment_size_bytes);
        if to <= start {
            return Ok(false);
        }
        let from = self.fill_ahead(to)?;
        debug_assert_eq!(from, start, "the step starts on the sector past the tail and the end");
        if let Err(error) = self.active.file.start_writeback(from, to - from) {
            return Err(self.poison(WalError::io(
                "start writeback of preallocation",
                &self.active.path,
                error,
            )));
        }
        // Postcondition (the footprint rule): one step and a half ahead at most.
        debug_assert!(to - self.active.tail <= self.options.preallocate_step_bytes() * 3 / 2);
        self.check_invariants();
        Ok(true)
    }

    /// Makes every appended record durable with one sync (group commit) and returns the
    /// durable lsn. `Durability::None` syncs nothing. A failed sync poisons the log.
    pub fn sync(&mut self, durability: Durability) -> Result<Lsn, WalError> {
        let Some(ticket) = self.sync_begin(durability, false)? else {
            return Ok(self.durable_lsn);
        };
        let result = sync_file(&self.active.file, durability);
        self.sync_finish(ticket, result)
    }

    /// Whether appending a record with `payload_len` bytes of payload would rotate (and so
    /// seal the active segment with a sync of its own).
    pub(crate) fn append_rotates(&self, payload_len: usize) -> bool {
        let slot = format::record_slot_bytes(payload_len);
        self.active.tail + slot > self.options.segment_size_bytes && self.active.tail > SEGMENT_HEADER_BYTES
    }

    /// First half of [`Wal::sync`]: fixes the target (the last appended lsn) and makes the
    /// next append start on a new sector, so nothing appended while the sync runs shares a
    /// sector with what it covers. `None` if there is nothing to sync, unless `force` (a
    /// sync wanted for the file's own sake, such as its length after [`Wal::prepare_ahead`]):
    /// then a ticket whose target is what is already durable. The caller syncs
    /// [`Wal::active_file`] with [`sync_file`], then hands the outcome to [`Wal::sync_finish`].
    pub(crate) fn sync_begin(
        &mut self,
        durability: Durability,
        force: bool,
    ) -> Result<Option<SyncTicket>, WalError> {
        self.check_poisoned()?;
        let target = self.last_lsn();
        if durability == Durability::None || (target == self.durable_lsn && !force) {
            return Ok(None);
        }
        // The next append starts a new sector: a tear of it cannot reach the synced records.
        self.active.tail = self.active.tail.next_multiple_of(SYNC_ALIGN_BYTES);
        self.active.synced_tail = self.active.tail;
        Ok(Some(SyncTicket { target, segment_id: self.active.id }))
    }

    /// The handle of the active segment: the one a sync begun now must sync.
    pub(crate) fn active_file(&self) -> &E::File {
        &self.active.file
    }

    /// Second half of [`Wal::sync`]: records the outcome of syncing the segment of `ticket`.
    /// A failure poisons the log; success makes `ticket.target` durable. The active segment
    /// must still be the ticket's: callers keep rotation (whose seal is a sync of its own)
    /// out while a sync runs, so the synced handle holds every record up to the target and
    /// at most one sync of the log is ever in flight.
    pub(crate) fn sync_finish(
        &mut self,
        ticket: SyncTicket,
        result: std::io::Result<()>,
    ) -> Result<Lsn, WalError> {
        assert_eq!(ticket.segment_id, self.active.id, "a segment rotated while its sync ran");
        if let Err(error) = result {
            return Err(self.poison(WalError::io("sync", &self.active.path, error)));
        }
        if let Some(cause) = &self.poisoned {
            // Something else failed while this sync ran: its outcome is unknown too.
            return Err(WalError::Poisoned { cause: cause.clone() });
        }
        if ticket.target > self.durable_lsn {
            self.made_durable(ticket.target);
        }
        Ok(self.durable_lsn)
    }

    fn made_durable(&mut self, target: Lsn) {
        debug_assert!(target >= self.durable_lsn, "durability never moves back");
        debug_assert!(target <= self.last_lsn(), "only appended records become durable");
        self.stats.syncs += 1;
        self.stats.records_synced += target - self.durable_lsn;
        self.durable_lsn = target;
        self.check_invariants();
    }

    /// Seals the active segment (synced before the next one receives records) and starts the
    /// next one.
    fn rotate(&mut self) -> Result<(), WalError> {
        let target = self.last_lsn();
        if let Err(error) = self.active.file.sync_data() {
            return Err(self.poison(WalError::io("sync segment to seal it", &self.active.path, error)));
        }
        if target > self.durable_lsn {
            self.made_durable(target);
        }
        let id = self.active.id + 1;
        let segment = match create_segment(&self.env, &self.dir, &self.options, id, self.next_lsn) {
            Ok(segment) => segment,
            Err(error) => return Err(self.poison(error)),
        };
        self.active = segment;
        self.segments.push((id, self.next_lsn));
        self.stats.segments_created += 1;
        // The sealed segment is synced and its successor durable: the floor marker may name
        // both, so losing the successor (or the sealed records) is detected at recovery.
        if let Err(error) = super::floor::write_floor(&self.env, &self.dir, &self.floor(self.durable_lsn)) {
            return Err(self.poison(error));
        }
        self.check_invariants();
        Ok(())
    }

    /// Deletes every segment whose records all precede `lsn` (never the active one). Callers
    /// must have made the state those records describe durable elsewhere first.
    pub fn truncate_before(&mut self, lsn: Lsn) -> Result<(), WalError> {
        self.retire_before(lsn)?;
        // Those retired now, and any an earlier process retired and never removed.
        for path in self.retired_files()? {
            match self.env.remove_file(&path) {
                // Removed by an earlier call.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(WalError::io("remove retired segment", &path, error)),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    /// The retired segments in the log's directory (see [`Wal::retire_before`]), oldest
    /// first: garbage no scan reads, until someone removes it.
    pub fn retired_files(&self) -> Result<Vec<PathBuf>, WalError> {
        let names = self.env.list_dir(&self.dir).map_err(|e| WalError::io("list", &self.dir, e))?;
        let mut ids: Vec<u64> =
            names.iter().filter_map(|name| format::parse_retired_segment_file_name(name)).collect();
        ids.sort_unstable();
        Ok(ids.into_iter().map(|id| self.dir.join(format::retired_segment_file_name(id))).collect())
    }

    /// Takes every segment whose records all precede `lsn` (never the active one) out of the
    /// log without deleting it: each is renamed to its retired name
    /// ([`format::retired_segment_file_name`], which no scan reads), durably, oldest first.
    /// Returns the retired files, for the caller to remove (a large file takes tens of ms to
    /// unlink). Callers must have made the state those records describe durable elsewhere
    /// first.
    pub fn retire_before(&mut self, lsn: Lsn) -> Result<Vec<PathBuf>, WalError> {
        self.check_poisoned()?;
        let mut retired = Vec::new();
        while self.segments.len() > 1 && self.segments[1].1 <= lsn {
            let (id, _) = self.segments[0];
            let path = self.dir.join(format::segment_file_name(id));
            let to = self.dir.join(format::retired_segment_file_name(id));
            match self.env.rename(&path, &to) {
                // Retired by an earlier call whose directory sync failed.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(WalError::io("retire segment", &path, error)),
                Ok(()) => {}
            }
            // Oldest first, each retirement durable before the next: a crash must never keep
            // an older segment while a newer one is gone (recovery would see a gap). A failed
            // directory sync poisons, like any failed sync.
            if let Err(error) = self.env.sync_dir(&self.dir) {
                return Err(self.poison(WalError::io("sync directory", &self.dir, error)));
            }
            self.segments.remove(0);
            self.stats.segments_deleted += 1;
            retired.push(to);
        }
        self.check_invariants();
        Ok(retired)
    }
}
