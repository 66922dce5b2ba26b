//! ARIES recovery reports what it cannot trust instead of guessing: a loser whose records were
//! truncated, a record whose payload does not match its kind, a record that breaks its
//! transaction's chain; and transactions refuse misuse without writing.
//!
//! Together the `wal_aries_*.rs` files check ARIES recovery on the simulated disk: committed
//! transactions are redone, losers undone exactly once (also when a crash interrupts undo),
//! aborted ones stay undone, a checkpoint bounds redo, damage to the meaning of records is
//! reported, and a STEAL page store ends, after crashes at random points, equal to the
//! committed model.

mod wal_aries_support;

use stormhold::wal::aries::AriesError;
use stormhold::wal::{Durability, RecordKind};

use wal_aries_support::*;

#[test]
fn loser_whose_records_were_truncated_is_reported_not_guessed() {
    let env = perfect_disk(5);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[1; 4]);
    txns.begin(&mut wal, 2).expect("begin");
    for i in 0..400 {
        write((&mut txns, &mut wal, &mut store), 2, 2, i % 60, &[i as u8; 4]);
    }
    txns.commit(&mut wal, 2, Durability::Data).expect("commit");
    let checkpoint = txns.checkpoint(&mut wal, &[]).expect("checkpoint");
    wal.sync(Durability::Data).expect("sync");
    assert_eq!(txns.oldest_first_lsn(), Some(1), "the documented bound, ignored on purpose below");
    wal.truncate_before(checkpoint).expect("truncate");
    assert!(wal.stats().segments_deleted > 0);
    drop(wal);
    crash(&env);

    match try_recover(&env, &mut MemPages::default()) {
        Err(AriesError::BrokenUndoChain { txn_id: 1, lsn: 2, .. }) => {}
        other => panic!("expected a broken undo chain of transaction 1, got {other:?}"),
    }
}

#[test]
fn record_whose_payload_does_not_match_its_kind_is_reported_not_skipped() {
    let env = perfect_disk(6);
    let (mut wal, mut txns) = fresh_log(&env);
    let begin = txns.begin(&mut wal, 1).expect("begin");
    let bad = wal.append(RecordKind::Update, 1, begin, b"not an update").expect("append");
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    crash(&env);
    match try_recover(&env, &mut MemPages::default()) {
        Err(AriesError::BadRecord { lsn, kind: RecordKind::Update, .. }) if lsn == bad => {}
        other => panic!("expected a bad Update at lsn {bad}, got {other:?}"),
    }
}

#[test]
fn record_that_breaks_its_transactions_chain_is_reported() {
    let env = perfect_disk(7);
    let (mut wal, mut txns) = fresh_log(&env);
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut MemPages::default()), 1, 1, 0, &[1]);
    let bad = wal.append(RecordKind::Commit, 1, 1, &[]).expect("append a Commit skipping the update");
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    crash(&env);
    match try_recover(&env, &mut MemPages::default()) {
        Err(AriesError::BadRecord { lsn, kind: RecordKind::Commit, .. }) if lsn == bad => {}
        other => panic!("expected a broken chain at lsn {bad}, got {other:?}"),
    }
}

#[test]
fn transactions_refuse_misuse_without_writing() {
    let env = perfect_disk(8);
    let (mut wal, mut txns) = fresh_log(&env);
    assert!(matches!(txns.begin(&mut wal, 0), Err(AriesError::InvalidTxnId)));
    txns.begin(&mut wal, 1).expect("begin");
    assert!(matches!(txns.begin(&mut wal, 1), Err(AriesError::TxnActive(1))));
    assert!(matches!(txns.update(&mut wal, 2, 1, 0, &[0], &[1]), Err(AriesError::UnknownTxn(2))));
    assert!(matches!(
        txns.update(&mut wal, 1, 1, 0, &[0], &[1, 2]),
        Err(AriesError::ImageLengths { before: 1, after: 2 })
    ));
    assert!(matches!(txns.commit(&mut wal, 2, Durability::Data), Err(AriesError::UnknownTxn(2))));
    assert!(matches!(txns.abort(&mut wal, 2, &mut MemPages::default()), Err(AriesError::UnknownTxn(2))));
    assert_eq!(wal.last_lsn(), 1, "only the Begin was written");
    assert_eq!(txns.active(), [(1, 1)]);
}
