//! WAL round trip and torn-tail recovery on the simulated disk.

use std::path::Path;
use stormhold::env::sim::{FaultOptions, SimEnv, WriteFateWeights};
use stormhold::wal::{Durability, RecordKind, Wal, WalOptions};

fn options() -> WalOptions {
    WalOptions { segment_size_bytes: 3 * 4096, ..WalOptions::default() }
}

fn recovered(env: &SimEnv) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    let (_wal, _) =
        Wal::open(env.clone(), Path::new("/wal"), options(), |r| payloads.push(r.payload)).expect("open");
    payloads
}

#[test]
fn synced_records_survive_and_a_torn_tail_is_cut_then_appends_continue() {
    for seed in 0..64 {
        let faults = FaultOptions {
            write_fate: WriteFateWeights { survive: 1, lose: 1, tear: 2 },
            ..FaultOptions::default()
        };
        let env = SimEnv::new(seed, faults).expect("options");
        let (mut wal, report) = Wal::open(env.clone(), Path::new("/wal"), options(), |_| {}).expect("create");
        assert_eq!(report.records, 0);
        let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 100 + 37 * i as usize]).collect();
        for payload in &payloads[..30] {
            wal.append(RecordKind::Data, 0, 0, payload).expect("append");
        }
        assert_eq!(wal.sync(Durability::Data).expect("sync"), 30);
        for payload in &payloads[30..] {
            wal.append(RecordKind::Data, 0, 0, payload).expect("append");
        }
        assert!(wal.stats().segments_created > 1, "rotation happened");
        drop(wal);
        env.crash();
        env.restart();
        let got = recovered(&env);
        assert!(got.len() >= 30 && got.len() <= 40, "seed {seed}: {} records", got.len());
        assert_eq!(got[..], payloads[..got.len()], "seed {seed}: a prefix");
        let (mut wal, _) = Wal::open(env.clone(), Path::new("/wal"), options(), |_| {}).expect("reopen");
        let lsn = wal.append(RecordKind::Data, 0, 0, b"after").expect("append after recovery");
        assert_eq!(lsn, got.len() as u64 + 1);
        wal.sync(Durability::Data).expect("sync");
        drop(wal);
        env.crash();
        env.restart();
        let again = recovered(&env);
        assert_eq!(again.len(), got.len() + 1, "seed {seed}");
        assert_eq!(again.last().map(Vec::as_slice), Some(&b"after"[..]));
    }
}

#[test]
fn reopen_over_a_torn_tail_never_tears_the_last_acknowledged_record_without_powersafe_overwrite() {
    // Regression (review finding 1): recovery zero-filled the torn tail from the middle of the
    // sector holding the last acknowledged record; a crash tearing that fill on a disk without
    // powersafe overwrite destroyed the record, and the next recovery dropped it silently.
    use stormhold::env::sim::{CallKind, Fault, TearFillWeights};
    let mut reopen_crashes = 0;
    for seed in 0..64 {
        let faults = FaultOptions {
            powersafe_overwrite: false,
            write_fate: WriteFateWeights { survive: 0, lose: 0, tear: 1 },
            tear_fill: TearFillWeights { old: 0, zero: 1, garbage: 1 },
            ..FaultOptions::default()
        };
        let env = SimEnv::new(seed, faults).expect("options");
        let (mut wal, _) = Wal::open(env.clone(), Path::new("/wal"), options(), |_| {}).expect("create");
        for i in 0..3u8 {
            wal.append(RecordKind::Data, 0, 0, &[i; 40]).expect("append");
        }
        wal.sync(Durability::Data).expect("acknowledge records 1..=3");
        wal.append(RecordKind::Data, 0, 0, &[9; 40]).expect("unsynced record 4");
        drop(wal);
        env.crash();
        env.restart();
        env.arm(CallKind::Write, Fault::Crash { after: true, image_seed: seed });
        if Wal::open(env.clone(), Path::new("/wal"), options(), |_| {}).is_err() {
            reopen_crashes += 1;
        }
        env.crash();
        env.restart();
        let got = recovered(&env);
        assert!(got.len() >= 3, "seed {seed}: acknowledged records lost, {} recovered", got.len());
        assert_eq!(got[..3], [vec![0; 40], vec![1; 40], vec![2; 40]], "seed {seed}");
    }
    assert!(reopen_crashes > 0, "some reopens must crash on their first write");
}
