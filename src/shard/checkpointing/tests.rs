//! How a ticker and the commits share a checkpoint's writing: `tick` says when work is left,
//! and a commit behind the schedule waits for a ticker's progress instead of writing steps
//! itself (threads, on `OsEnv`), except a commit made from within a tick on the ticker's own
//! thread (a durability callback), which must not wait for itself; `tick` reports work left
//! until the checkpoint is published and merged (`SimEnv`).

use std::path::Path;
use std::time::Duration;

use super::super::{Intent, Shard, ShardOptions};
use crate::checkpoint::epoch::EpochConfig;
use crate::env::Env;
use crate::wal::Durability;

/// Options with a WAL-bytes cap of 64 KiB (steps of 256 B) and no other epoch trigger.
fn options() -> ShardOptions {
    let epoch = EpochConfig {
        ops_max: 1_000_000_000,
        wal_bytes_max: 64 << 10,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    ShardOptions { wal: Default::default(), checkpoint: Default::default(), epoch }
}

fn open<E: Env + Clone>(env: E, dir: &Path) -> Shard<E> {
    let shard = Shard::open(0, env, dir, &options(), None);
    assert!(shard.status().failed.is_none(), "{:?}", shard.status());
    shard
}

/// Commits puts of keys `keys` (100-byte values), ten a commit.
fn load<E: Env + Clone>(shard: &Shard<E>, keys: std::ops::Range<u64>) {
    let keys: Vec<u64> = keys.collect();
    for chunk in keys.chunks(10) {
        let writes =
            chunk.iter().map(|k| (k.to_be_bytes().to_vec(), Intent::Put(vec![*k as u8; 100]))).collect();
        shard.commit(writes, None, Durability::None).expect("commit");
    }
}

#[test]
fn a_commit_behind_the_schedule_waits_for_a_ticker_and_writes_no_step_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = open(crate::env::OsEnv::new(), dir.path());
    // 200 puts (about 24 KiB of WAL, under half the cap: nothing frozen by the commits),
    // then a checkpoint frozen: about a hundred steps of 256 B to write.
    load(&shard, 0..200);
    shard.begin_checkpoint().expect("freeze").expect("something new to freeze");
    assert_eq!(shard.stats().checkpoint_chunks, 0);
    // A ticker is in `tick` (this thread stands in for it) and writes nothing yet.
    let ticking = shard.tickers.enter();
    std::thread::scope(|scope| {
        // About 12 KiB of commits: past the schedule's grace with nothing written, so
        // behind it, and under its deadline (24 KiB).
        let committer = scope.spawn(|| load(&shard, 200..300));
        crate::env::OsEnv::new().sleep(Duration::from_millis(200));
        assert_eq!(
            shard.stats().checkpoint_chunks,
            0,
            "a commit wrote steps of the checkpoint while a ticker was in tick"
        );
        assert!(!committer.is_finished(), "the commit behind the schedule waits for the ticker");
        // The ticker's progress: the whole checkpoint, then the ticker leaves `tick`.
        shard.write_pending().expect("write").expect("published");
        drop(ticking);
        committer.join().expect("the committer");
    });
    let stats = shard.stats();
    assert_eq!(stats.checkpoints, 1, "{stats:?}");
    assert_eq!(stats.commits, 30, "every commit landed: {stats:?}");
    for k in [0u64, 199, 200, 299] {
        assert_eq!(shard.get(&k.to_be_bytes()).expect("get"), Some(vec![k as u8; 100]));
    }
}

#[cfg(feature = "sim")]
#[test]
fn tick_reports_work_left_until_the_checkpoint_is_published_and_merged() {
    use crate::env::sim::{FaultOptions, SimEnv};

    let env = SimEnv::new(7, FaultOptions::default()).expect("sim");
    let shard = open(env, Path::new("/s"));
    load(&shard, 0..200);
    shard.begin_checkpoint().expect("freeze").expect("something new to freeze");
    let mut busy_ticks = 0;
    let published = loop {
        let tick = shard.tick(false).expect("tick");
        if !tick.busy {
            break tick.checkpoint.is_some() || shard.stats().checkpoints == 1;
        }
        busy_ticks += 1;
        assert!(busy_ticks < 10_000, "tick reports work left forever");
    };
    assert!(published, "work left until the checkpoint was published");
    // The checkpoint takes about a hundred steps and a tick at most a few: several ticks
    // reported work left.
    assert!(busy_ticks >= 2, "only {busy_ticks} busy ticks");
    {
        let mut inner = shard.lock();
        let serving = shard.serving(&mut inner).expect("serving");
        assert!(serving.pending.is_none() && !serving.state.has_frozen(), "nothing left once not busy");
    }
    // Nothing new: a tick has nothing to do.
    assert!(!shard.tick(false).expect("tick").busy);
}

/// A durability callback that commits, fired inside a tick (on the ticker's own thread), must
/// not wait for that tick's progress: it writes its steps itself, and the tick returns.
#[test]
fn a_commit_from_a_callback_inside_a_tick_does_not_wait_for_that_tick() {
    use std::sync::{Arc, mpsc};

    let dir = tempfile::tempdir().expect("tempdir");
    let shard = Arc::new(open(crate::env::OsEnv::new(), dir.path()));
    load(&shard, 0..200);
    shard.begin_checkpoint().expect("freeze").expect("something new to freeze");
    let lsn = shard
        .commit(vec![(b"first".to_vec(), Intent::Put(b"1".to_vec()))], None, Durability::None)
        .expect("commit")
        .lsn;
    // When that commit is durable (the tick's sync makes it so, with the checkpoint still
    // being written), the callback commits about 12 KiB: behind the checkpoint's schedule.
    let (done, finished) = mpsc::channel();
    let inner = Arc::clone(&shard);
    shard.on_durable(
        lsn,
        Box::new(move |result| {
            result.expect("durable");
            load(&inner, 200..300);
            done.send(()).expect("the test waits");
        }),
    );
    let ticker = Arc::clone(&shard);
    let (ticked, tick_done) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ticks = 0;
        // Ticks until the callback ran (the sync that fires it comes once steps are written).
        while ticker.durable_waiters() > 0 && ticks < 10_000 {
            ticker.tick(true).expect("tick");
            ticks += 1;
        }
        ticked.send(ticks).expect("the test waits");
    });
    let ticks =
        tick_done.recv_timeout(Duration::from_secs(60)).expect("the tick returned: no wait on itself");
    finished.recv_timeout(Duration::from_secs(1)).expect("the callback's commits landed");
    assert!(ticks < 10_000, "the callback fired");
    assert_eq!(shard.stats().commits, 20 + 1 + 10);
    assert_eq!(shard.get(&299u64.to_be_bytes()).expect("get"), Some(vec![299u64 as u8; 100]));
}
