//! The next preallocation step prepared ahead of need, off the commit path (issues 11, 12):
//! `Wal::prepare_ahead` writes it once the tail passes the middle of the last step and never
//! before, so appends that follow never grow the file and at most a step and a half of zeros
//! lies ahead of the tail; `SharedWal::sync_ahead` makes the length durable with a sync of
//! its own that claims no more than what was appended before it began; a failed zero fill or
//! sync poisons the log (fsyncgate: nothing is acknowledged after it); and a crash at any
//! Env call of the preparation loses no synced record.

mod wal_support;

use stormhold::env::SharedEnv;
use stormhold::env::sim::{CallKind, Fault, SimEnv};
use stormhold::wal::format::{self, SEGMENT_HEADER_BYTES, SYNC_ALIGN_BYTES};
use stormhold::wal::shared::SharedWal;
use stormhold::wal::{Durability, RecordKind, Wal, WalError, WalOptions};
use wal_support::{dir, quiet_env, segment_len};

#[test]
fn prepare_ahead_writes_the_next_step_past_half_and_appends_never_grow_the_file() {
    let env = quiet_env(11);
    let options = WalOptions::default();
    let step = options.preallocate_step_bytes();
    let (mut wal, _) = Wal::open(env.clone(), dir(), options.clone(), |_| {}).expect("create");
    let payload = vec![0x3c; 2000];
    let mut tail = SEGMENT_HEADER_BYTES;
    let mut prepared = 0;
    for n in 0..3000u64 {
        let before = segment_len(&env, 1);
        wal.append(RecordKind::Data, 0, 0, &payload).expect("append");
        tail += format::record_slot_bytes(payload.len());
        if n % 2 == 0 {
            wal.sync(Durability::Data).expect("sync");
            tail = tail.next_multiple_of(SYNC_ALIGN_BYTES);
        }
        assert_eq!(segment_len(&env, 1), before, "record {n}: an append grew the file");
        let due = before - tail <= step / 2 && before < options.segment_size_bytes;
        assert_eq!(wal.prepare_due(), due, "record {n}: due at {tail} of {before}");
        let wrote = wal.prepare_ahead().expect("prepare");
        assert_eq!(wrote, due, "record {n}: prepared exactly when due");
        let len = segment_len(&env, 1);
        if wrote {
            prepared += 1;
            assert_eq!(len, (before + step).min(options.segment_size_bytes), "one step at a time");
        }
        assert!(
            len - tail <= step + step / 2,
            "record {n}: {len} is more than a step and a half past {tail}"
        );
        assert!(!wal.prepare_due(), "record {n}: nothing more is due right after a preparation");
    }
    assert!(prepared >= 4, "the zeros grew in several prepared steps: {prepared}");
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    let mut recovered = 0;
    let (_, report) = Wal::open(env.clone(), dir(), options, |record| {
        assert_eq!(record.payload, payload);
        recovered += 1;
    })
    .expect("reopen");
    assert_eq!((recovered, report.torn_bytes), (3000, 0));
}

#[test]
fn prepare_ahead_starts_writeback_of_the_step_it_writes() {
    let env = quiet_env(12);
    let (mut wal, _) = Wal::open(env.clone(), dir(), WalOptions::default(), |_| {}).expect("create");
    let step = WalOptions::default().preallocate_step_bytes();
    let payload = vec![1; 4000];
    while !wal.prepare_due() {
        wal.append(RecordKind::Data, 0, 0, &payload).expect("append");
    }
    let (calls, bytes) = env.writeback_hints();
    assert!(wal.prepare_ahead().expect("prepare"));
    assert_eq!(env.writeback_hints(), (calls + 1, bytes + step), "one hint over the step");
}

#[test]
fn a_failed_zero_fill_poisons_the_log() {
    let env = quiet_env(13);
    let (mut wal, _) = Wal::open(env.clone(), dir(), WalOptions::default(), |_| {}).expect("create");
    let payload = vec![2; 4000];
    while !wal.prepare_due() {
        wal.append(RecordKind::Data, 0, 0, &payload).expect("append");
    }
    env.arm(CallKind::Write, Fault::IoError { persistent: false });
    assert!(matches!(wal.prepare_ahead(), Err(WalError::Io { .. })));
    assert!(wal.poisoned().is_some(), "a failed fill poisons");
    assert!(matches!(wal.sync(Durability::Data), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.append(RecordKind::Data, 0, 0, &payload), Err(WalError::Poisoned { .. })));
}

fn shared(env: &SimEnv) -> SharedWal<SimEnv> {
    SharedWal::open(env.clone(), dir(), WalOptions::default(), |_| {}).expect("create").0
}

/// Appends unsynced records until a preparation is due, then prepares.
fn prepared(wal: &SharedWal<SimEnv>) {
    let payload = vec![3; 4000];
    while !wal.prepare_ahead().expect("prepare") {
        wal.commit(RecordKind::Data, 0, 0, &payload, Durability::None).expect("append");
    }
}

#[test]
fn sync_ahead_makes_the_prepared_length_durable_and_claims_only_what_was_appended() {
    let env = quiet_env(14);
    let wal = shared(&env);
    prepared(&wal);
    let last = wal.last_lsn().expect("last");
    assert!(wal.durable_lsn().expect("durable") < last, "records wait for a sync");
    let (durable, led) = wal.sync_ahead().expect("sync ahead");
    assert!(led);
    assert_eq!(durable, last, "the sync covers what was appended before it began, no more");
    // The file's length is durable now: the durable image has the prepared zeros.
    let path = dir().join(format::segment_file_name(1));
    let image = env.durable_contents(&path).expect("read").expect("exists");
    assert_eq!(image.len() as u64, segment_len(&env, 1), "the prepared length is durable");
    // With nothing new appended it still syncs (the length's sake) and claims nothing more.
    let (again, led) = wal.sync_ahead().expect("sync ahead");
    assert!(led);
    assert_eq!(again, last);
    let payload = vec![4; 10];
    let lsn = wal.commit(RecordKind::Data, 0, 0, &payload, Durability::None).expect("append");
    assert_eq!(wal.durable_lsn().expect("durable"), last, "an unsynced append is not durable");
    assert_eq!(wal.sync(Durability::Data).expect("sync"), lsn);
}

#[test]
fn a_failed_sync_ahead_poisons_the_log_and_acknowledges_nothing() {
    let env = quiet_env(15);
    let wal = shared(&env);
    prepared(&wal);
    let durable = wal.durable_lsn().expect("durable");
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 7 });
    assert!(matches!(wal.sync_ahead(), Err(WalError::Io { .. })));
    assert_eq!(wal.durable_lsn().expect("durable"), durable, "a failed sync moves nothing");
    // Never retried as if it succeeded: every later sync fails.
    assert!(matches!(wal.sync(Durability::Data), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.sync_ahead(), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.prepare_ahead(), Err(WalError::Poisoned { .. })));
}

#[test]
fn a_failed_sync_ahead_with_nothing_new_to_claim_poisons_the_log_too() {
    let env = quiet_env(17);
    let wal = shared(&env);
    prepared(&wal);
    let durable = wal.sync(Durability::Data).expect("sync");
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 8 });
    assert!(matches!(wal.sync_ahead(), Err(WalError::Io { .. })));
    assert!(wal.poisoned().expect("poisoned").is_some(), "a failed sync poisons, whatever it covered");
    assert_eq!(wal.durable_lsn().expect("durable"), durable);
    let payload = vec![6; 10];
    assert!(matches!(
        wal.commit(RecordKind::Data, 0, 0, &payload, Durability::Data),
        Err(WalError::Poisoned { .. })
    ));
}

/// Crashes at every Env call of a preparation and its sync (and the appends between them):
/// every record acknowledged durable before the crash is recovered, and the log reopens.
#[test]
fn a_crash_at_any_call_of_a_preparation_keeps_every_synced_record() {
    let payload = vec![5; 3000];
    let mut crashed_inside = 0;
    for crash_at in 1..400u64 {
        let env = quiet_env(16);
        let wal = shared(&env);
        let mut synced = 0u64;
        let mut calls = 0u64;
        let mut crashed = false;
        for n in 0..700u64 {
            let lsn = match wal.commit(RecordKind::Data, 0, 0, &payload, Durability::None) {
                Ok(lsn) => lsn,
                Err(_) => break,
            };
            if n % 4 == 0 {
                if wal.sync(Durability::Data).is_err() {
                    break;
                }
                synced = lsn;
            }
            if wal.prepare_ahead().expect("prepare") {
                calls += 1;
                if calls == crash_at.div_ceil(2) {
                    // Crash right after the fill (before its sync) or after the sync.
                    if crash_at % 2 == 0 {
                        synced = wal.sync_ahead().expect("sync ahead").0;
                    }
                    env.crash();
                    crashed = true;
                    break;
                }
                synced = wal.sync_ahead().expect("sync ahead").0;
            }
        }
        if !crashed {
            break;
        }
        crashed_inside += 1;
        drop(wal);
        env.restart();
        let mut recovered = 0;
        let (_, _) = Wal::open(SharedEnv(env.clone()), dir(), WalOptions::default(), |_| recovered += 1)
            .expect("reopen after a crash in a preparation");
        assert!(recovered >= synced, "crash {crash_at}: {recovered} records recovered, {synced} synced");
    }
    assert!(crashed_inside >= 4, "crashed inside {crashed_inside} preparations");
}
