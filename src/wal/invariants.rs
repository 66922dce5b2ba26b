//! The WAL writer's invariant checker and the encode-side assertions that mirror what the
//! scan refuses. Owns no state: it reads a [`Wal`] and panics on a broken invariant. Compiled
//! in with debug assertions (tests and the `sweep` profile), a no-op in release.
//!
//! [`Wal::check_invariants`] runs after every state transition of the writer (append, sync,
//! rotation, truncation) and checks, each on its own line so a failure names one fact:
//!
//! - lsns are dense from 1: `next_lsn >= 1`, and the active segment's first lsn is at most
//!   `next_lsn`;
//! - `durable_lsn <= last_lsn`;
//! - the segments on disk are sorted by id with no gap, their first lsns never decrease, and
//!   the last one is the active segment;
//! - the active tail is past the header and on a record boundary;
//! - records made durable since open never outnumber records appended since open (open
//!   makes everything it recovered durable).
//!
//! [`Wal::check_append`] asserts, before a record is written, each property whose absence
//! makes the scan refuse the record (see `scan.rs`): the lsn the scan expects next, the
//! active segment's id, a `durable_lsn` below the record's own lsn, a payload within the
//! format's limit and an aligned offset.

use super::Wal;
use super::format::{RECORD_ALIGN_BYTES, RECORD_PAYLOAD_BYTES_MAX, Record, SEGMENT_HEADER_BYTES};
use crate::env::Env;

impl<E: Env> Wal<E> {
    /// Panics if an invariant of the writer is broken (see the module docs).
    pub(crate) fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert!(self.next_lsn >= 1, "lsns start at 1");
        assert!(
            self.durable_lsn <= self.last_lsn(),
            "durable {} > last {}",
            self.durable_lsn,
            self.last_lsn()
        );
        assert!(!self.segments.is_empty(), "the active segment is on disk");
        let &(last_id, last_first) = self.segments.last().expect("checked non-empty");
        assert_eq!(last_id, self.active.id, "the last segment is the active one");
        assert!(last_first <= self.next_lsn, "the active segment starts at or before next_lsn");
        for pair in self.segments.windows(2) {
            let ((id, first), (next_id, next_first)) = (pair[0], pair[1]);
            assert_eq!(next_id, id + 1, "segment ids are contiguous: {:?}", self.segments);
            assert!(first <= next_first, "first lsns never decrease: {:?}", self.segments);
        }
        assert!(self.active.tail >= SEGMENT_HEADER_BYTES, "the tail is past the header");
        assert!(self.active.tail.is_multiple_of(RECORD_ALIGN_BYTES), "the tail is on a record boundary");
        assert!(
            self.stats.records_synced <= self.stats.records,
            "more records synced than appended since open"
        );
    }

    /// Panics unless `record`, about to be written at the active tail, is one the scan
    /// accepts there (see the module docs).
    pub(crate) fn check_append(&self, record: &Record) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert_eq!(record.lsn, self.next_lsn, "the scan expects lsns dense");
        assert!(record.lsn >= 1, "lsn 0 means none");
        assert_eq!(record.segment_id, self.active.id, "the scan refuses a record of another segment");
        assert!(record.durable_lsn < record.lsn, "a record cannot vouch for itself");
        assert!(record.durable_lsn <= self.durable_lsn, "a record never claims more than is durable");
        assert!(record.payload.len() <= RECORD_PAYLOAD_BYTES_MAX, "the scan refuses a longer payload");
        assert!(self.active.tail.is_multiple_of(RECORD_ALIGN_BYTES), "the scan reads records aligned");
    }
}

#[cfg(all(test, feature = "sim", debug_assertions))]
mod tests {
    use std::path::Path;

    use crate::env::sim::{FaultOptions, SimEnv};
    use crate::wal::{Durability, RecordKind, Wal, WalOptions};

    fn wal() -> Wal<SimEnv> {
        let env = SimEnv::new(1, FaultOptions::default()).unwrap();
        let options = WalOptions { segment_size_bytes: 8192, ..WalOptions::default() };
        let (mut wal, _) = Wal::open(env, Path::new("/wal"), options, |_| {}).unwrap();
        for _ in 0..3 {
            wal.append(RecordKind::Data, 0, 0, &[7; 3000]).unwrap();
        }
        wal.sync(Durability::Data).unwrap();
        wal
    }

    #[test]
    fn a_consistent_writer_passes() {
        let wal = wal();
        assert!(wal.segments.len() > 1, "the appends rotated");
        wal.check_invariants();
    }

    #[test]
    #[should_panic(expected = "durable")]
    fn durable_past_last_is_caught() {
        let mut wal = wal();
        wal.durable_lsn = wal.last_lsn() + 1;
        wal.check_invariants();
    }

    #[test]
    #[should_panic(expected = "contiguous")]
    fn a_gap_in_the_segments_is_caught() {
        let mut wal = wal();
        wal.segments.remove(1);
        wal.check_invariants();
    }

    #[test]
    #[should_panic(expected = "never decrease")]
    fn unsorted_first_lsns_are_caught() {
        let mut wal = wal();
        wal.segments[0].1 = wal.next_lsn;
        wal.check_invariants();
    }

    #[test]
    #[should_panic(expected = "record boundary")]
    fn a_misaligned_tail_is_caught() {
        let mut wal = wal();
        wal.active.tail += 1;
        wal.check_invariants();
    }

    #[test]
    #[should_panic(expected = "dense")]
    fn appending_an_lsn_out_of_order_is_caught() {
        let mut wal = wal();
        wal.next_lsn += 1;
        let record = crate::wal::Record {
            kind: RecordKind::Data,
            lsn: wal.next_lsn - 1,
            durable_lsn: wal.durable_lsn,
            segment_id: wal.active.id,
            txn_id: 0,
            prev_lsn: 0,
            payload: Vec::new(),
        };
        wal.check_append(&record);
    }
}
