//! ARIES undo interrupted by a crash at every Env call of the first recovery: the second
//! recovery undoes nothing twice.
//!
//! Together the `wal_aries_*.rs` files check ARIES recovery on the simulated disk: committed
//! transactions are redone, losers undone exactly once (also when a crash interrupts undo),
//! aborted ones stay undone, a checkpoint bounds redo, damage to the meaning of records is
//! reported, and a STEAL page store ends, after crashes at random points, equal to the
//! committed model.

mod wal_aries_support;

use std::collections::BTreeMap;

use stormhold::env::sim::{CrashMode, FaultOptions, SimEnv};
use stormhold::wal::aries::{self};
use stormhold::wal::{Durability, Lsn};

use wal_aries_support::*;

// ---------------------------------------------------------------------------------------------
// A crash in the middle of undo, at every Env call of the first recovery.

const LOSERS: u64 = 3;
const UPDATES_PER_LOSER: u64 = 50;
const COMMITTED_IMAGE: [u8; 4] = [1; 4];

fn loser_pages() -> impl Iterator<Item = (u64, u64)> {
    (0..UPDATES_PER_LOSER).flat_map(|i| (1..=LOSERS).map(move |txn| (txn, txn * 1000 + i)))
}

/// Three losers, each changing 50 pages a committed transaction wrote, interleaved; all
/// durable, the store holding every change, then a crash. Returns the store and the last lsn.
fn setup_losers(env: &SimEnv) -> (MemPages, Lsn) {
    let (mut wal, mut txns) = fresh_log(env);
    let mut store = MemPages::default();
    let log = &mut (&mut txns, &mut wal, &mut store);
    log.0.begin(log.1, 9).expect("begin");
    for (_, page) in loser_pages() {
        write((log.0, log.1, log.2), 9, page, 0, &COMMITTED_IMAGE);
    }
    log.0.commit(log.1, 9, Durability::Data).expect("commit");
    for txn in 1..=LOSERS {
        log.0.begin(log.1, txn).expect("begin");
    }
    for (txn, page) in loser_pages() {
        write((log.0, log.1, log.2), txn, page, 0, &[txn as u8 + 1; 4]);
    }
    wal.sync(Durability::Data).expect("sync");
    let last = wal.last_lsn();
    drop(wal);
    crash(env);
    (store, last)
}

#[test]
fn crash_during_undo_then_second_recovery_undoes_nothing_twice() {
    let measure = perfect_disk(0);
    setup_losers(&measure);
    let first_call = measure.stats().calls + 1;
    let (_, stats) = recover(&measure, &mut setup_losers(&perfect_disk(0)).0);
    assert_eq!(stats.undone, LOSERS * UPDATES_PER_LOSER);
    assert!(stats.undone as usize > aries::UNDO_BATCH_RECORDS_MAX, "undo takes several batches");
    let last_call = measure.stats().calls;
    let (mut partial_undos, mut clr_redos) = (0, 0);
    for call in first_call..=last_call {
        for after in [false, true] {
            let options =
                FaultOptions { crash: CrashMode::AtCall { call, after }, ..FaultOptions::default() };
            let env = SimEnv::new(call, options).expect("valid options");
            let (mut store, setup_last) = setup_losers(&env);
            assert_eq!(env.stats().crashes, 1, "call {call}: the setup ran whole");
            let first = try_recover(&env, &mut store);
            assert!(first.is_err() && env.is_crashed(), "call {call}: the first recovery crashed");
            let undone_first = store.undos.len() as u64;
            partial_undos += u64::from(undone_first > 0 && undone_first < stats.undone);
            env.restart();
            let redos_before = store.redos.len();
            let (_, second) = recover(&env, &mut store);
            assert!(second.active_txns <= LOSERS, "call {call}");
            // Each loser update is compensated exactly once overall: by an undo in either
            // recovery, or by the second one repeating a CLR the first made durable.
            let mut compensations: BTreeMap<u64, u64> = BTreeMap::new();
            for (page, _, image) in &store.undos {
                assert_eq!(image, &COMMITTED_IMAGE, "call {call}");
                *compensations.entry(*page).or_default() += 1;
            }
            for (page, lsn, image) in &store.redos[redos_before..] {
                assert!(
                    *lsn > setup_last && image == &COMMITTED_IMAGE,
                    "call {call}: only CLRs are repeated"
                );
                *compensations.entry(*page).or_default() += 1;
                clr_redos += 1;
            }
            let expected: BTreeMap<u64, u64> = loser_pages().map(|(_, page)| (page, 1)).collect();
            assert_eq!(compensations, expected, "call {call} after={after}");
            for (_, page) in loser_pages() {
                assert_eq!(store.bytes(page, 0, 4), COMMITTED_IMAGE, "call {call} page {page}");
            }
            let (_, third) = recover(&env, &mut store);
            assert_eq!((third.active_txns, third.undone, third.redone), (0, 0, 0), "call {call}");
        }
    }
    assert!(partial_undos > 0, "some crash fell between undo batches");
    assert!(clr_redos > 0, "some crash left durable CLRs whose undo had not reached the store");
}
