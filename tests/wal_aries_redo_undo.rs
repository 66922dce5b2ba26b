//! ARIES redo and undo of the seed's scenarios: a committed transaction is redone into a
//! page store that lost it, losers are undone newest first and ended by an abort, an aborted
//! transaction stays undone, a checkpoint bounds redo, a commit is durable when it returns,
//! and the recovery report of a pinned scenario.
//!
//! Together the `wal_aries_*.rs` files check ARIES recovery on the simulated disk: committed
//! transactions are redone, losers undone exactly once (also when a crash interrupts undo),
//! aborted ones stay undone, a checkpoint bounds redo, damage to the meaning of records is
//! reported, and a STEAL page store ends, after crashes at random points, equal to the
//! committed model.

mod wal_aries_support;

use stormhold::env::sim::{FaultOptions, SimEnv, TearFillWeights, WriteFateWeights};
use stormhold::wal::Durability;

use wal_aries_support::*;

// ---------------------------------------------------------------------------------------------
// Scenarios of the seed's recovery behaviours.

#[test]
fn committed_txn_is_redone_into_a_page_store_that_lost_it() {
    let env = perfect_disk(1);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut live = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    let a = write((&mut txns, &mut wal, &mut live), 1, 1, 0, &[1, 2, 3, 4]);
    let b = write((&mut txns, &mut wal, &mut live), 1, 2, 8, &[9, 9, 9]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    drop(wal);
    crash(&env);

    let mut lost = MemPages::default();
    let (_, stats) = recover(&env, &mut lost);
    assert_eq!((stats.redone, stats.undone, stats.active_txns, stats.dirty_pages), (2, 0, 0, 2));
    assert_eq!(lost.redos.iter().map(|r| r.1).collect::<Vec<_>>(), [a, b]);
    assert_eq!(lost.pages, live.pages, "bytes and page lsns as the live store had them");

    let (_, again) = recover(&env, &mut lost);
    assert_eq!(again.redone, 0, "page lsns show every change is there: redo is idempotent");
    assert_eq!(lost.pages, live.pages);
}

#[test]
fn uncommitted_txn_is_undone_and_ended_by_an_abort() {
    let env = perfect_disk(2);
    let (mut wal, mut txns) = fresh_log(&env);
    // The store writes every change at once: it holds the loser's changes (STEAL).
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[7; 8]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    let committed: Vec<Vec<u8>> = [1, 2].map(|page| store.bytes(page, 0, MEM_PAGE_BYTES)).to_vec();
    txns.begin(&mut wal, 2).expect("begin");
    write((&mut txns, &mut wal, &mut store), 2, 1, 0, &[8; 8]);
    write((&mut txns, &mut wal, &mut store), 2, 2, 4, &[5; 4]);
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    crash(&env);

    let (_, stats) = recover(&env, &mut store);
    assert_eq!((stats.active_txns, stats.undone, stats.clrs_written, stats.redone), (1, 2, 2, 0));
    assert_eq!(store.undos.iter().map(|u| u.0).collect::<Vec<_>>(), [2, 1], "newest first");
    assert_eq!([1, 2].map(|page| store.bytes(page, 0, MEM_PAGE_BYTES)).to_vec(), committed);

    crash(&env);
    let (_, again) = recover(&env, &mut store);
    assert_eq!((again.active_txns, again.undone, again.clrs_written), (0, 0, 0), "the Abort ended it");

    let mut forgetful = MemPages::default();
    let (_, history) = recover(&env, &mut forgetful);
    assert_eq!((history.redone, history.undone), (5, 0), "3 updates and 2 CLRs repeated");
    assert_eq!(forgetful.pages, store.pages, "repeating history ends where undo ended");
}

#[test]
fn losers_that_changed_the_same_bytes_are_undone_newest_first_across_transactions() {
    let env = perfect_disk(10);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    txns.begin(&mut wal, 2).expect("begin");
    // No locking at this layer: 1 writes A, 2 overwrites it with B, 1 again with C.
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[0xa; 4]);
    write((&mut txns, &mut wal, &mut store), 2, 1, 2, &[0xb; 4]);
    write((&mut txns, &mut wal, &mut store), 1, 1, 4, &[0xc; 4]);
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    crash(&env);
    let (_, stats) = recover(&env, &mut store);
    assert_eq!((stats.active_txns, stats.undone), (2, 3));
    assert_eq!(store.bytes(1, 0, 8), [0; 8], "undone in reverse lsn order over both transactions");
}

#[test]
fn aborted_txn_stays_undone_after_a_crash() {
    let env = perfect_disk(3);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[7; 8]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    txns.begin(&mut wal, 2).expect("begin");
    write((&mut txns, &mut wal, &mut store), 2, 1, 2, &[8; 4]);
    txns.abort(&mut wal, 2, &mut store).expect("abort");
    assert_eq!(store.undos.len(), 1, "abort undid the update");
    assert_eq!(store.bytes(1, 0, 8), [7; 8]);
    assert!(!txns.is_active(2));
    txns.begin(&mut wal, 3).expect("begin");
    write((&mut txns, &mut wal, &mut store), 3, 2, 0, &[3; 2]);
    txns.commit(&mut wal, 3, Durability::Data).expect("commit");
    drop(wal);
    crash(&env);

    let mut forgetful = MemPages::default();
    let (_, stats) = recover(&env, &mut forgetful);
    assert_eq!((stats.active_txns, stats.undone, stats.clrs_written), (0, 0, 0));
    assert_eq!(stats.redone, 4, "both updates, the CLR and the later commit");
    assert_eq!(forgetful.pages, store.pages);
}

#[test]
fn checkpoint_bounds_redo_to_its_dirty_page_table() {
    let env = perfect_disk(4);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[1; 4]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    // Page 1 is now durable in the page store; page 2 is not.
    txns.begin(&mut wal, 2).expect("begin");
    let dirty = write((&mut txns, &mut wal, &mut store), 2, 2, 0, &[2; 4]);
    txns.checkpoint(&mut wal, &[(2, dirty)]).expect("checkpoint");
    txns.begin(&mut wal, 3).expect("begin");
    let later = write((&mut txns, &mut wal, &mut store), 3, 3, 0, &[3; 4]);
    txns.commit(&mut wal, 3, Durability::Data).expect("commit");
    drop(wal);
    crash(&env);

    // A page store that claims to hold nothing: only the checkpoint keeps page 1 out of redo.
    let mut forgetful = MemPages::default();
    let (_, stats) = recover(&env, &mut forgetful);
    assert_eq!(forgetful.redos.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), [(2, dirty), (3, later)]);
    assert!(!forgetful.lsn_queries.contains(&1), "page 1 is not dirty: its lsn is not even asked");
    assert_eq!((stats.dirty_pages, stats.active_txns, stats.undone), (2, 1, 1));
    assert_eq!(forgetful.bytes(2, 0, 4), [0; 4], "the loser known from the checkpoint was undone");
}

#[test]
fn commit_is_durable_when_it_returns() {
    let env = perfect_disk(9);
    let (mut wal, mut txns) = fresh_log(&env);
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut MemPages::default()), 1, 1, 0, &[1]);
    let lsn = txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    assert_eq!(wal.durable_lsn(), lsn);
    txns.begin(&mut wal, 2).expect("begin");
    let lazy = txns.commit(&mut wal, 2, Durability::None).expect("commit");
    assert_eq!(wal.durable_lsn(), lsn, "Durability::None does not sync");
    assert!(lazy > lsn);
}

// ---------------------------------------------------------------------------------------------
// A pinned recovery report.

#[test]
fn recovery_stats_of_a_pinned_scenario_match_the_snapshot() {
    // Every unsynced write is torn, its lost sectors filled with garbage: a torn tail to cut.
    let options = FaultOptions {
        write_fate: WriteFateWeights { survive: 0, lose: 0, tear: 1 },
        tear_fill: TearFillWeights { old: 0, zero: 0, garbage: 1 },
        ..FaultOptions::default()
    };
    let env = SimEnv::new(42, options).expect("valid options");
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[1; 8]);
    write((&mut txns, &mut wal, &mut store), 1, 2, 0, &[2; 8]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    txns.begin(&mut wal, 2).expect("begin");
    write((&mut txns, &mut wal, &mut store), 2, 3, 0, &[3; 8]);
    txns.abort(&mut wal, 2, &mut store).expect("abort");
    txns.begin(&mut wal, 3).expect("begin");
    let p4 = write((&mut txns, &mut wal, &mut store), 3, 4, 0, &[4; 8]);
    let p5 = write((&mut txns, &mut wal, &mut store), 3, 5, 0, &[5; 8]);
    txns.checkpoint(&mut wal, &[(4, p4), (5, p5)]).expect("checkpoint");
    wal.sync(Durability::Data).expect("sync");
    txns.begin(&mut wal, 4).expect("begin");
    write((&mut txns, &mut wal, &mut store), 4, 6, 0, &[6; 40]);
    txns.commit(&mut wal, 4, Durability::None).expect("commit");
    drop(wal);
    crash(&env);
    let (_, stats) = recover(&env, &mut MemPages::default());
    insta::assert_debug_snapshot!(stats, @r"
    RecoveryStats {
        records_scanned: 12,
        bytes: 960,
        torn_bytes_truncated: 272,
        active_txns: 1,
        dirty_pages: 2,
        redone: 2,
        undone: 2,
        clrs_written: 2,
        txn_id_max: 3,
    }
    ");
}
