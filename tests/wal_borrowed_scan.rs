//! The borrowed recovery scan (`Wal::open_borrowed`, which `recovery::recover` and every shard
//! use) hands over exactly the records the copying `Wal::open` does: records that straddle the
//! scan's 1 MiB read window, records moved to a sector boundary by a sync, and a payload
//! larger than the window.

use std::path::Path;

use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::wal::{Durability, Record, RecordKind, Wal, WalOptions};

fn dir() -> &'static Path {
    Path::new("/wal")
}

fn options() -> WalOptions {
    WalOptions { segment_size_bytes: 4 << 20, ..WalOptions::default() }
}

#[test]
fn the_borrowed_scan_hands_over_the_records_the_copying_scan_does() {
    let env = SimEnv::new(7, FaultOptions::default()).expect("sim");
    let (mut wal, _) = Wal::open(env.clone(), dir(), options(), |_| {}).expect("create");
    let mut written = 0u64;
    for i in 0..9_000u32 {
        let len = if i == 4_000 { 1_500_000 } else { 100 + (i as usize * 37) % 900 };
        wal.append(RecordKind::Data, u64::from(i % 3), 0, &vec![(i % 251) as u8; len]).expect("append");
        written += 1;
        if i % 97 == 0 {
            wal.sync(Durability::Data).expect("sync");
        }
    }
    wal.sync(Durability::Data).expect("sync");
    assert!(wal.stats().segments_created > 1, "the log spans segments");
    drop(wal);
    let mut copied: Vec<Record> = Vec::new();
    let (_, copied_report) = Wal::open(env.fork(), dir(), options(), |r| copied.push(r)).expect("open");
    let mut borrowed: Vec<Record> = Vec::new();
    let (_, borrowed_report) =
        Wal::open_borrowed(env.fork(), dir(), options(), |r| borrowed.push(r.to_record())).expect("open");
    assert_eq!(copied.len() as u64, written);
    assert!(copied == borrowed, "both scans hand over the same records");
    assert_eq!(copied_report, borrowed_report);
    assert!(borrowed.iter().zip(1..).all(|(r, lsn)| r.lsn == lsn), "in lsn order");
}
