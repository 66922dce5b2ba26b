//! The WAL's footprint follows its data (issue 11): with the default 64 MiB segments, a new
//! log preallocates its header plus one step (1 MiB), appends extend the zeros a step at a
//! time and never more than one step past the tail, and reopening an empty or short log
//! neither grows it to a whole segment nor loses a record. The zero tail recovery scans is
//! therefore bounded by one step, whatever the segment size.

mod wal_support;

use stormhold::wal::format::{self, SEGMENT_HEADER_BYTES, SYNC_ALIGN_BYTES};
use stormhold::wal::{Durability, PREALLOCATE_STEP_BYTES_MAX, RecordKind, Wal, WalOptions};
use wal_support::{dir, quiet_env, segment_len};

#[test]
fn a_new_log_preallocates_one_step_not_a_segment() {
    let env = quiet_env(1);
    let options = WalOptions::default();
    assert_eq!(options.preallocate_step_bytes(), PREALLOCATE_STEP_BYTES_MAX);
    let (wal, _) = Wal::open(env.clone(), dir(), options.clone(), |_| {}).expect("create");
    drop(wal);
    assert_eq!(segment_len(&env, 1), SEGMENT_HEADER_BYTES + PREALLOCATE_STEP_BYTES_MAX);
    // Reopening the empty log keeps it as it is.
    for _ in 0..3 {
        let (wal, report) = Wal::open(env.clone(), dir(), options.clone(), |_| {}).expect("reopen");
        assert_eq!(report.records, 0);
        drop(wal);
        assert_eq!(segment_len(&env, 1), SEGMENT_HEADER_BYTES + PREALLOCATE_STEP_BYTES_MAX);
    }
}

#[test]
fn appends_extend_the_zeros_a_step_at_a_time_and_recovery_keeps_every_record() {
    let env = quiet_env(2);
    let options = WalOptions::default();
    let step = options.preallocate_step_bytes();
    let (mut wal, _) = Wal::open(env.clone(), dir(), options.clone(), |_| {}).expect("create");
    let payload = vec![0xa5; 3000];
    let mut lens = Vec::new();
    let mut written = SEGMENT_HEADER_BYTES;
    for n in 0..1500u64 {
        wal.append(RecordKind::Data, 0, 0, &payload).expect("append");
        written += format::record_slot_bytes(payload.len());
        if n % 3 == 0 {
            wal.sync(Durability::Data).expect("sync");
            written = written.next_multiple_of(SYNC_ALIGN_BYTES);
        }
        let len = segment_len(&env, 1);
        assert!(len.is_multiple_of(SYNC_ALIGN_BYTES), "length {len} on a sector boundary");
        assert!(len >= written, "record {n}: the file ({len}) holds every record ({written})");
        assert!(
            len <= written + step + SYNC_ALIGN_BYTES,
            "record {n}: {len} is at most a step past {written}"
        );
        if lens.last() != Some(&len) {
            lens.push(len);
        }
    }
    wal.sync(Durability::Data).expect("sync");
    assert!(lens.len() >= 4, "the zeros grew in several steps: {lens:?}");
    for pair in lens.windows(2) {
        assert_eq!(pair[1] - pair[0], step, "each growth is one step: {lens:?}");
    }
    drop(wal);
    let before = segment_len(&env, 1);
    let mut recovered = 0;
    let (wal, report) = Wal::open(env.clone(), dir(), options, |record| {
        assert_eq!(record.payload, payload);
        recovered += 1;
    })
    .expect("reopen");
    assert_eq!((recovered, report.torn_bytes), (1500, 0));
    drop(wal);
    let after = segment_len(&env, 1);
    assert!(
        after >= before && after <= before + step,
        "reopen tops up at most one step: {before} -> {after}"
    );
}

#[test]
fn small_segments_preallocate_a_quarter_and_never_past_the_segment() {
    let options = WalOptions { segment_size_bytes: 4 * SYNC_ALIGN_BYTES, ..WalOptions::default() };
    assert_eq!(options.preallocate_step_bytes(), SYNC_ALIGN_BYTES);
    let env = quiet_env(3);
    let (mut wal, _) = Wal::open(env.clone(), dir(), options.clone(), |_| {}).expect("create");
    assert_eq!(segment_len(&env, 1), SEGMENT_HEADER_BYTES + SYNC_ALIGN_BYTES);
    for _ in 0..20 {
        wal.append(RecordKind::Data, 0, 0, &[7; 900]).expect("append");
        wal.sync(Durability::Data).expect("sync");
    }
    drop(wal);
    for id in 1..=3 {
        assert!(segment_len(&env, id) <= options.segment_size_bytes, "segment {id} stays within its size");
    }
}
