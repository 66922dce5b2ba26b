//! Group commit through the kernel on the real OS: concurrent durable puts on one shard share
//! syncs that only leaders record under the shard lock (followers return without it), and
//! the shard still ends `Clean`, every acknowledged put durable and recovered.

use std::sync::Arc;
use std::thread;

use stormhold::env::OsEnv;
use stormhold::{Config, Durability, Kernel, SyncState};

const THREADS: usize = 8;
const PUTS: usize = 40;

fn key(thread: usize, i: usize) -> Vec<u8> {
    format!("t{thread:02}-{i:04}").into_bytes()
}

#[test]
fn concurrent_durable_puts_on_one_shard_end_clean_durable_and_recovered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = || Config::builder().shards(1).build().expect("config");
    let kernel = Arc::new(Kernel::open(OsEnv::new(), tmp.path(), config()).expect("open"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let kernel = Arc::clone(&kernel);
            thread::spawn(move || {
                for i in 0..PUTS {
                    let lsn = kernel.put(&key(t, i), b"value", Durability::Data).expect("durable put");
                    let status = &kernel.shard_status()[0];
                    assert!(
                        status.durable_lsn >= lsn,
                        "lsn {lsn} acknowledged, durable {}",
                        status.durable_lsn
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("writer");
    }
    let status = &kernel.shard_status()[0];
    // The last leader recorded its sync, which left nothing pending: no follower had to.
    assert_eq!(status.sync, SyncState::Clean, "{status:?}");
    assert_eq!(status.durable_lsn, status.last_lsn);
    let stats = kernel.stats().total;
    assert_eq!(stats.commits, (THREADS * PUTS) as u64);
    assert!(stats.syncs >= 1 && stats.syncs <= stats.commits, "{} syncs counted", stats.syncs);
    drop(kernel);
    let kernel = Kernel::open(OsEnv::new(), tmp.path(), config()).expect("reopen");
    for t in 0..THREADS {
        for i in 0..PUTS {
            assert_eq!(kernel.get(&key(t, i)).expect("get").as_deref(), Some(&b"value"[..]), "t{t} {i}");
        }
    }
}
