//! `SharedWal`: concurrent committers share syncs (leader/follower group commit) on the real OS,
//! and a failed group sync poisons the log for every waiter of its batch and everyone after.
//!
//! No test here depends on timing. Where a test needs committers to meet in one batch, a
//! [`GateEnv`] holds the first sync after it is armed until the test has seen every committer
//! append, so the batching is forced by construction rather than hoped for.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

use stormhold::env::sim::{CallKind, Fault, FaultOptions, SimEnv, SyncFailureProfile};
use stormhold::env::{Env, EnvFile, OpenOptions, OsEnv};
use stormhold::wal::shared::SharedWal;
use stormhold::wal::{Durability, Lsn, RecordKind, Wal, WalError, WalOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Syncs pass.
    Idle,
    /// The next sync completes, then blocks until the gate opens.
    Armed,
    /// A sync is blocked in the gate.
    Holding,
}

/// Holds one sync, after it took effect, until the test opens the gate; counts how many file
/// syncs ever ran at once.
#[derive(Default)]
struct Gate {
    phase: Mutex<Option<Phase>>,
    changed: Condvar,
    syncs_in_flight: AtomicUsize,
    syncs_in_flight_max: AtomicUsize,
    /// The held sync panics when the gate opens (a panicking `Env`).
    panic_on_open: AtomicBool,
}

impl Gate {
    fn sync(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let now = self.syncs_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.syncs_in_flight_max.fetch_max(now, Ordering::SeqCst);
        let result = sync();
        self.pass();
        self.syncs_in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Option<Phase>> {
        self.phase.lock().expect("gate lock")
    }

    fn arm(&self) {
        *self.phase() = Some(Phase::Armed);
    }

    fn pass(&self) {
        let mut phase = self.phase();
        if *phase == Some(Phase::Armed) {
            *phase = Some(Phase::Holding);
            self.changed.notify_all();
            while *phase == Some(Phase::Holding) {
                phase = self.changed.wait(phase).expect("gate wait");
            }
            drop(phase);
            assert!(!self.panic_on_open.load(Ordering::SeqCst), "the held sync panics, as asked");
        }
    }

    fn wait_until_holding(&self) {
        let mut phase = self.phase();
        while *phase != Some(Phase::Holding) {
            phase = self.changed.wait(phase).expect("gate wait");
        }
    }

    fn open(&self) {
        *self.phase() = Some(Phase::Idle);
        self.changed.notify_all();
    }
}

/// An `Env` that passes every call through, except that file syncs go through a [`Gate`].
#[derive(Clone)]
struct GateEnv<E> {
    inner: E,
    gate: Arc<Gate>,
}

struct GateFile<F> {
    inner: F,
    gate: Arc<Gate>,
}

impl<F: EnvFile> EnvFile for GateFile<F> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.inner.write_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.inner.set_len(len_bytes)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.gate.sync(|| self.inner.sync_data())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.gate.sync(|| self.inner.sync_all())
    }
}

impl<E: Env> Env for GateEnv<E> {
    type File = GateFile<E::File>;
    type DirLock = E::DirLock;

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<Self::File> {
        Ok(GateFile { inner: self.inner.open(path, options)?, gate: Arc::clone(&self.gate) })
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn lock_dir(&self, path: &Path) -> io::Result<Self::DirLock> {
        self.inner.lock_dir(path)
    }
    fn now_monotonic(&self) -> Duration {
        self.inner.now_monotonic()
    }
    fn now_wall(&self) -> SystemTime {
        self.inner.now_wall()
    }
    fn sleep(&self, duration: Duration) {
        self.inner.sleep(duration)
    }
}

fn gated<E>(inner: E) -> (GateEnv<E>, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    (GateEnv { inner, gate: Arc::clone(&gate) }, gate)
}

/// Spins (yielding) until `count` records are appended: a committer that has appended holds
/// no lock any more only once it waits as a follower, so after this they all wait.
fn wait_appended<E: Env>(wal: &SharedWal<E>, count: Lsn) {
    while wal.last_lsn().expect("last lsn") < count {
        thread::yield_now();
    }
}

fn payload(thread: usize, i: usize) -> Vec<u8> {
    format!("thread {thread} commit {i}").into_bytes().repeat(4)
}

#[test]
fn shared_wal_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SharedWal<OsEnv>>();
    check::<SharedWal<SimEnv>>();
}

#[test]
fn shared_wal_concurrent_durable_commits_share_syncs_and_all_recover_after_reopen() {
    const THREADS: usize = 8;
    const COMMITS: usize = 60;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    // Small segments: each sync starts a new 4 KiB sector, so the log rotates every few
    // batches, often while a leader's sync is in flight.
    let options = WalOptions { segment_size_bytes: 64 * 1024, ..WalOptions::default() };
    let (env, gate) = gated(OsEnv::new());
    let (wal, _) = SharedWal::open(env, &dir, options.clone(), |_| {}).expect("open");
    let wal = Arc::new(wal);
    gate.arm();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                let durability = if t % 2 == 0 { Durability::Data } else { Durability::All };
                (0..COMMITS)
                    .map(|i| {
                        let lsn = wal.commit(RecordKind::Data, t as u64, 0, &payload(t, i), durability);
                        (lsn.expect("durable commit"), payload(t, i))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // The first leader is held inside its sync until every thread's first commit waits
    // behind it, so the next batch holds at least THREADS - 1 commits.
    gate.wait_until_holding();
    wait_appended(&wal, THREADS as Lsn);
    gate.open();
    let mut committed = BTreeMap::new();
    for handle in handles {
        for (lsn, bytes) in handle.join().expect("committer") {
            assert!(committed.insert(lsn, bytes).is_none(), "lsn {lsn} returned twice");
        }
    }
    let total = (THREADS * COMMITS) as Lsn;
    assert_eq!(committed.keys().copied().collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>(), "dense");
    let stats = wal.stats().expect("stats");
    assert_eq!(stats.records, total);
    assert!(stats.syncs < total, "group commit: {} syncs for {total} commits", stats.syncs);
    assert!(stats.segments_created > 1, "the log rotated");
    // A segment seal never overlaps a leader's sync (see the module docs of `shared`).
    assert_eq!(gate.syncs_in_flight_max.load(Ordering::SeqCst), 1, "file syncs never overlap");
    assert_eq!(wal.durable_lsn().expect("durable"), total);
    drop(wal);

    let mut recovered = BTreeMap::new();
    let (_wal, report) = Wal::open(OsEnv::new(), &dir, options, |r| {
        recovered.insert(r.lsn, r.payload);
    })
    .expect("reopen");
    assert_eq!(report.last_lsn, total);
    assert_eq!(recovered, committed, "every acknowledged commit is recovered");
}

#[test]
fn shared_wal_sync_makes_every_record_appended_before_it_durable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let (wal, _) = SharedWal::open(OsEnv::new(), &dir, WalOptions::default(), |_| {}).expect("open");
    let wal = Arc::new(wal);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                for i in 0..25 {
                    wal.commit(RecordKind::Data, t, 0, &payload(t as usize, i), Durability::None)
                        .expect("append");
                }
                wal.sync(Durability::Data).expect("sync")
            })
        })
        .collect();
    for handle in handles {
        // Each sync returns a durable lsn that covers at least that thread's own records.
        assert!(handle.join().expect("thread") >= 25);
    }
    assert_eq!(wal.durable_lsn().expect("durable"), 100);
    assert_eq!(wal.sync(Durability::All).expect("nothing new to sync"), 100);
}

#[test]
fn shared_wal_sync_through_led_says_who_ran_the_sync_and_a_covered_caller_only_joins() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (env, gate) = gated(OsEnv::new());
    let (wal, _) =
        SharedWal::open(env, &tmp.path().join("wal"), WalOptions::default(), |_| {}).expect("open");
    let wal = Arc::new(wal);
    wal.commit(RecordKind::Data, 1, 0, b"first", Durability::None).expect("append");
    gate.arm();
    let leader = {
        let wal = Arc::clone(&wal);
        thread::spawn(move || wal.sync_through_led(1, Durability::Data).expect("lead"))
    };
    // The leader's sync of lsn 1 took effect and is held: a second record is not in it.
    gate.wait_until_holding();
    wal.commit(RecordKind::Data, 2, 0, b"second", Durability::None).expect("append");
    let (joiner, next) = {
        let (a, b) = (Arc::clone(&wal), Arc::clone(&wal));
        (
            thread::spawn(move || a.sync_through_led(1, Durability::Data).expect("join")),
            thread::spawn(move || b.sync_through_led(2, Durability::Data).expect("next batch")),
        )
    };
    gate.open();
    assert_eq!(leader.join().expect("leader"), (1, true), "the leader ran the sync of lsn 1");
    let (durable, led) = joiner.join().expect("joiner");
    assert!(durable >= 1 && !led, "lsn 1 was covered by the leader's sync: joined, not led");
    assert_eq!(next.join().expect("next"), (2, true), "lsn 2 needed a sync of its own");
    assert_eq!(wal.sync_through_led(Lsn::MAX, Durability::Data).expect("idle"), (2, false));
    assert_eq!(wal.stats().expect("stats").syncs, 2, "two syncs ran, one per leader");
}

#[test]
fn shared_wal_sync_that_panics_releases_its_parked_followers_with_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (env, gate) = gated(OsEnv::new());
    let (wal, _) =
        SharedWal::open(env, &tmp.path().join("wal"), WalOptions::default(), |_| {}).expect("open");
    let wal = Arc::new(wal);
    wal.commit(RecordKind::Data, 1, 0, b"first", Durability::None).expect("append");
    gate.arm();
    let leader = {
        let wal = Arc::clone(&wal);
        thread::spawn(move || wal.sync_through_led(1, Durability::Data))
    };
    gate.wait_until_holding();
    // Appended while the leader's sync runs: its committer parks (or, if it comes late,
    // finds the log poisoned); either way it must not wait for a sync nobody runs.
    wal.commit(RecordKind::Data, 2, 0, b"second", Durability::None).expect("append");
    let (sent, outcome) = std::sync::mpsc::channel();
    {
        let wal = Arc::clone(&wal);
        thread::spawn(move || sent.send(wal.sync_through_led(2, Durability::Data)));
    }
    gate.panic_on_open.store(true, Ordering::SeqCst);
    gate.open();
    assert!(leader.join().is_err(), "the leader's sync panicked");
    // A stranded follower never answers: fail instead of hanging.
    let outcome = outcome.recv_timeout(Duration::from_secs(30)).expect("the follower returns");
    assert!(matches!(outcome, Err(WalError::Poisoned { .. })), "{outcome:?}");
    let later = wal.commit(RecordKind::Data, 3, 0, b"third", Durability::Data);
    assert!(matches!(later, Err(WalError::Poisoned { .. })), "{later:?}");
    assert_eq!(wal.durable_lsn().expect("durable"), 0, "nothing past the panicked sync is durable");
}

#[test]
fn shared_wal_failed_group_sync_fails_every_waiter_of_its_batch_then_poisons() {
    let faults = FaultOptions { sync_failure_profile: SyncFailureProfile::Drop, ..FaultOptions::default() };
    let sim = SimEnv::new(7, faults).expect("fault options");
    let (env, gate) = gated(sim.clone());
    let dir = Path::new("/wal");
    // Small segments keep the in-memory disk small; no rotation happens in this test.
    let options = WalOptions { segment_size_bytes: 1024 * 1024, ..WalOptions::default() };
    let (wal, _) = SharedWal::open(env, dir, options.clone(), |_| {}).expect("open");
    let wal = Arc::new(wal);
    let commit = |t: u64| {
        let wal = Arc::clone(&wal);
        thread::spawn(move || wal.commit(RecordKind::Data, t, 0, &payload(t as usize, 0), Durability::Data))
    };

    // Thread 0 leads the first batch; its sync succeeds and is then held in the gate.
    gate.arm();
    let first = commit(0);
    gate.wait_until_holding();
    // The next file sync fails. Threads 1..=3 append and wait as followers of the batch that
    // the next leader (one of them) runs.
    sim.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 11 });
    let batch: Vec<_> = (1..=3).map(commit).collect();
    wait_appended(&wal, 4);
    gate.open();

    assert_eq!(first.join().expect("thread").expect("the first batch was synced"), 1);
    let errors: Vec<WalError> =
        batch.into_iter().map(|h| h.join().expect("thread").expect_err("batch failed")).collect();
    let io_errors = errors.iter().filter(|e| e.io_error().is_some()).count();
    let poisoned = errors.iter().filter(|e| matches!(e, WalError::Poisoned { .. })).count();
    assert_eq!(
        (io_errors, poisoned),
        (1, 2),
        "the leader sees the EIO, its followers the poison: {errors:?}"
    );
    assert_eq!(wal.durable_lsn().expect("durable"), 1, "nothing after the last good sync");

    let later = wal.commit(RecordKind::Data, 9, 0, b"later", Durability::Data);
    assert!(matches!(later, Err(WalError::Poisoned { .. })), "{later:?}");
    let unsynced = wal.commit(RecordKind::Data, 9, 0, b"later", Durability::None);
    assert!(matches!(unsynced, Err(WalError::Poisoned { .. })), "{unsynced:?}");
    assert!(matches!(wal.sync(Durability::Data), Err(WalError::Poisoned { .. })));
    assert!(wal.poisoned().expect("state").is_some());
    drop(wal);

    sim.crash();
    sim.restart();
    let mut recovered = Vec::new();
    let (_wal, _) = Wal::open(sim, dir, options, |r| recovered.push((r.lsn, r.payload))).expect("reopen");
    assert!(!recovered.is_empty() && recovered.len() <= 4, "{} records", recovered.len());
    assert_eq!(recovered[0], (1, payload(0, 0)), "the acknowledged commit survives");
}
