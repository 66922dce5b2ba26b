//! A bulk phase writes no zeros ahead (issue 12): once more than a preallocation step has been
//! appended to the active segment since its last sync, appends past the preallocated end let
//! the record grow the file instead of writing a step of zeros that the next records would
//! overwrite before any sync profits from them (a load that syncs only at its end wrote every
//! byte twice). A writer that syncs at least once a step keeps its zeros ahead, so its syncs
//! still find the file's length written; the first preallocation after a bulk phase starts on
//! the sector past the last record (the sector holding the record's end is never written by
//! a fill); and what was appended reads back after a reopen, with no torn bytes.

mod wal_support;

use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::wal::format::{self, RECORD_ALIGN_BYTES, SEGMENT_HEADER_BYTES, SYNC_ALIGN_BYTES};
use stormhold::wal::{Durability, RecordKind, Wal, WalOptions};
use wal_support::{dir, quiet_env, segment_len};

/// Whether a file of `len` bytes ends at the record whose slot ends at `tail` (a record's
/// padding to `RECORD_ALIGN_BYTES` is not written): no zeros lie past it.
fn ends_at_record(len: u64, tail: u64) -> bool {
    len <= tail && tail - len < RECORD_ALIGN_BYTES
}

#[test]
fn a_load_that_never_syncs_writes_no_zeros_past_the_first_step() {
    let env = quiet_env(21);
    let options = WalOptions::default();
    let step = options.preallocate_step_bytes();
    let (mut wal, _) = Wal::open(env.clone(), dir(), options.clone(), |_| {}).expect("create");
    let created_len = segment_len(&env, 1);
    assert_eq!(created_len, SEGMENT_HEADER_BYTES + step, "a new segment holds one step");
    // 116-byte records, the peers' bulk size: several steps' worth, never synced.
    let payload = vec![0x5a; 116];
    let slot = format::record_slot_bytes(payload.len());
    let mut tail = SEGMENT_HEADER_BYTES;
    let records = (4 * step / slot) as usize;
    for n in 0..records {
        wal.append(RecordKind::Data, 0, 0, &payload).expect("append");
        tail += slot;
        let len = segment_len(&env, 1);
        if tail <= created_len {
            assert_eq!(len, created_len, "record {n}: inside the first step the file keeps its length");
        } else {
            assert!(
                ends_at_record(len, tail),
                "record {n}: past the first step the records alone grow the file ({len}, tail {tail})"
            );
        }
        assert!(
            !wal.prepare_due() || tail - SEGMENT_HEADER_BYTES <= step,
            "record {n}: no step is due in bulk"
        );
    }
    assert!(tail > created_len + 2 * step, "the load went well past the first step");
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    let mut recovered = 0;
    let (_, report) = Wal::open(env.clone(), dir(), options, |record| {
        assert_eq!(record.payload, payload);
        recovered += 1;
    })
    .expect("reopen");
    assert_eq!((recovered, report.torn_bytes), (records, 0));
}

#[test]
fn after_a_bulk_phase_a_syncing_writer_gets_its_zeros_back_from_the_next_sector() {
    let env = quiet_env(22);
    let options = WalOptions::default();
    let step = options.preallocate_step_bytes();
    let (mut wal, _) = Wal::open(env.clone(), dir(), options.clone(), |_| {}).expect("create");
    let payload = vec![0x11; 300];
    let slot = format::record_slot_bytes(payload.len());
    let mut tail = SEGMENT_HEADER_BYTES;
    let bulk = (2 * step / slot + 7) as usize;
    for _ in 0..bulk {
        wal.append(RecordKind::Data, 0, 0, &payload).expect("append");
        tail += slot;
    }
    assert!(ends_at_record(segment_len(&env, 1), tail), "the bulk phase left no zeros");
    assert!(!tail.is_multiple_of(SYNC_ALIGN_BYTES), "the test wants the last record to end mid-sector");
    // The bulk phase ends with a sync; from then on every commit syncs.
    wal.sync(Durability::Data).expect("sync");
    tail = tail.next_multiple_of(SYNC_ALIGN_BYTES);
    let last_record_sector = (tail - SYNC_ALIGN_BYTES, tail);
    wal.append(RecordKind::Data, 0, 0, &payload).expect("append past the end");
    let filled = segment_len(&env, 1);
    assert!(filled.is_multiple_of(SYNC_ALIGN_BYTES), "zeros end on a sector: {filled}");
    assert!(filled >= tail + step, "a whole step of zeros follows: {filled} after {tail}");
    tail += slot;
    wal.sync(Durability::Data).expect("sync");
    tail = tail.next_multiple_of(SYNC_ALIGN_BYTES);
    // A durable writer: no append grows the file while the step lasts.
    while tail + slot <= filled {
        wal.append(RecordKind::Data, 0, 0, &payload).expect("append");
        assert_eq!(segment_len(&env, 1), filled, "an append of a syncing writer grew the file");
        wal.sync(Durability::Data).expect("sync");
        tail = (tail + slot).next_multiple_of(SYNC_ALIGN_BYTES);
    }
    drop(wal);
    // The sector that held the bulk phase's last record end still holds it (a fill never
    // wrote into it): every record reads back.
    let file = env.open(&dir().join(format::segment_file_name(1)), OpenOptions::read_only()).expect("open");
    let mut sector = vec![0; SYNC_ALIGN_BYTES as usize];
    file.read_exact_at(&mut sector, last_record_sector.0).expect("read");
    assert!(sector.contains(&0x11), "the last bulk record's sector kept its bytes");
    let mut recovered = 0;
    let (_, report) = Wal::open(env.clone(), dir(), options, |record| {
        assert_eq!(record.payload, payload);
        recovered += 1;
    })
    .expect("reopen");
    assert_eq!(report.torn_bytes, 0);
    assert!(recovered > bulk + 1, "the bulk records and the durable ones: {recovered}");
}

#[test]
fn a_writer_that_syncs_each_step_keeps_preallocating() {
    let env = quiet_env(23);
    let options = WalOptions::default();
    let step = options.preallocate_step_bytes();
    let (mut wal, _) = Wal::open(env.clone(), dir(), options, |_| {}).expect("create");
    // Batches of a little under a step each, one sync per batch: never a bulk phase.
    let payload = vec![0x22; 1000];
    let slot = format::record_slot_bytes(payload.len());
    let per_batch = (step / slot) as usize - 2;
    for batch in 0..5 {
        for _ in 0..per_batch {
            wal.append(RecordKind::Data, 0, 0, &payload).expect("append");
            let len = segment_len(&env, 1);
            assert!(
                len.is_multiple_of(SYNC_ALIGN_BYTES),
                "batch {batch}: zeros ahead end on a sector ({len})"
            );
        }
        wal.sync(Durability::Data).expect("sync");
    }
}
