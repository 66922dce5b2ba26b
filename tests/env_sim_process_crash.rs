//! Process crashes of `SimEnv` (`CrashKind::Process`): the process dies, the machine and its
//! page cache stay, so unsynced writes and pending directory operations stay readable; a later
//! machine crash drops only what was never synced, including by the restarted process.
//!
//! Every test runs on a disk whose machine crashes lose every pending change (`write_fate`
//! lose only, ordered directory operations kept as an empty prefix is one of the outcomes), so
//! a process crash that behaved like a machine crash fails it.

use std::path::Path;

use stormhold::env::sim::{
    CallKind, CrashKind, CrashMode, Fault, FaultOptions, SimEnv, SyncFailureProfile, WriteFateWeights,
    is_crash,
};
use stormhold::env::{Env, EnvFile, OpenOptions};

fn lossy() -> FaultOptions {
    FaultOptions { write_fate: WriteFateWeights { survive: 0, lose: 1, tear: 0 }, ..FaultOptions::default() }
}

fn sim(options: FaultOptions) -> SimEnv {
    SimEnv::new(7, options).expect("valid fault options")
}

fn path(text: &str) -> &Path {
    Path::new(text)
}

fn read(env: &SimEnv, name: &str) -> Vec<u8> {
    let file = env.open(path(name), OpenOptions::read_only()).expect("open");
    let mut bytes = vec![0; file.len().expect("len") as usize];
    file.read_exact_at(&mut bytes, 0).expect("read");
    bytes
}

/// `/d` durable with `/d/a` holding `old` durably.
fn durable_start(env: &SimEnv, old: &[u8]) {
    env.create_dir(path("/d")).expect("mkdir");
    env.sync_dir(path("/")).expect("sync /");
    let file = env.open(path("/d/a"), OpenOptions::create()).expect("create");
    file.write_all_at(old, 0).expect("write");
    file.sync_data().expect("sync");
    env.sync_dir(path("/d")).expect("sync /d");
}

#[test]
fn process_crash_keeps_unsynced_writes_and_directory_operations_readable() {
    let env = sim(lossy());
    durable_start(&env, b"old bytes");
    let a = env.open(path("/d/a"), OpenOptions::read_write()).expect("open");
    a.write_all_at(b"NEW", 0).expect("write");
    let b = env.open(path("/d/b"), OpenOptions::create()).expect("create b");
    b.write_all_at(b"only in the cache", 0).expect("write b");
    env.rename(path("/d/b"), path("/d/c")).expect("rename");

    env.crash_with(CrashKind::Process);
    assert!(env.is_crashed());
    assert_eq!(env.last_crash_kind(), Some(CrashKind::Process));
    assert!(is_crash(&a.write_at(b"x", 0).expect_err("the dead process's handle is dead")));
    env.restart();
    assert!(is_crash(&a.len().expect_err("handles do not come back with a restart")));

    assert_eq!(read(&env, "/d/a"), b"NEW bytes", "the unsynced write is still in the page cache");
    assert_eq!(env.list_dir(path("/d")).expect("list"), vec!["a".to_owned(), "c".to_owned()]);
    assert_eq!(read(&env, "/d/c"), b"only in the cache");
    assert_eq!(env.durable_contents(path("/d/a")).expect("path").as_deref(), Some(&b"old bytes"[..]));
    let stats = env.stats();
    assert_eq!((stats.crashes, stats.process_crashes, stats.writes_lost), (1, 1, 0));
}

#[test]
fn machine_crash_after_a_restart_keeps_what_the_new_process_synced_and_drops_the_rest() {
    let env = sim(lossy());
    durable_start(&env, b"old a");
    let a = env.open(path("/d/a"), OpenOptions::read_write()).expect("open");
    a.write_all_at(b"NEW", 0).expect("write a");
    let b = env.open(path("/d/b"), OpenOptions::create()).expect("create b");
    b.write_all_at(b"bee", 0).expect("write b");
    env.sync_dir(path("/d")).expect("b's entry is durable, its bytes are not");
    env.crash_with(CrashKind::Process);
    env.restart();

    // The new process syncs a write the dead one made: fsync flushes the inode's dirty pages,
    // whoever wrote them.
    let a = env.open(path("/d/a"), OpenOptions::read_write()).expect("reopen a");
    a.sync_data().expect("sync a");
    env.crash_with(CrashKind::Machine);
    assert_eq!(env.last_crash_kind(), Some(CrashKind::Machine));
    env.restart();

    assert_eq!(read(&env, "/d/a"), b"NEW a", "synced after the restart: durable");
    assert_eq!(read(&env, "/d/b"), b"", "never synced: dropped by the machine crash");
    let stats = env.stats();
    assert_eq!((stats.crashes, stats.process_crashes), (2, 1));
    assert!(stats.writes_lost >= 1, "the machine crash lost the unsynced write");
}

#[test]
fn machine_crash_while_the_process_is_down_drops_the_page_cache() {
    let env = sim(lossy());
    durable_start(&env, b"old");
    let a = env.open(path("/d/a"), OpenOptions::read_write()).expect("open");
    a.write_all_at(b"new", 0).expect("write");
    env.open(path("/d/fresh"), OpenOptions::create()).expect("create");
    env.crash_with(CrashKind::Process);
    // A plain `crash` of a dead process does nothing: the page cache stays.
    env.crash();
    assert_eq!(env.last_crash_kind(), Some(CrashKind::Process));
    env.crash_with(CrashKind::Machine);
    // Down after a machine crash: nothing more can happen.
    env.crash_with(CrashKind::Machine);
    env.crash_with(CrashKind::Process);
    env.restart();
    assert_eq!(read(&env, "/d/a"), b"old");
    assert_eq!(env.list_dir(path("/d")).expect("list"), vec!["a".to_owned()]);
    let stats = env.stats();
    assert_eq!((stats.crashes, stats.process_crashes), (1, 1), "one process died, once");
}

#[test]
fn locks_die_with_the_process_and_unlinked_open_files_go() {
    let env = sim(lossy());
    durable_start(&env, b"old");
    let lock = env.lock_dir(path("/d")).expect("lock");
    let tmp = env.open(path("/d/tmp"), OpenOptions::create()).expect("create tmp");
    env.remove_file(path("/d/tmp")).expect("unlink while open");
    tmp.write_all_at(b"orphan", 0).expect("write to the unlinked file");
    env.crash_with(CrashKind::Process);
    env.restart();
    let again = env.lock_dir(path("/d")).expect("the dead process's lock is released");
    drop(lock);
    assert!(env.lock_dir(path("/d")).is_err(), "dropping the dead lock does not release the new one");
    drop(again);
    assert_eq!(env.list_dir(path("/d")).expect("list"), vec!["LOCK".to_owned(), "a".to_owned()]);
}

#[test]
fn failed_sync_under_keep_survives_a_process_crash_as_a_stale_cache() {
    // fsyncgate across a restart: the cache still shows bytes a failed sync marked clean, a
    // later sync of the new process returns Ok without writing them, and a machine crash
    // shows they were never durable.
    let options = FaultOptions { sync_failure_profile: SyncFailureProfile::Keep, ..lossy() };
    let env = sim(options);
    durable_start(&env, b"old!");
    let a = env.open(path("/d/a"), OpenOptions::read_write()).expect("open");
    a.write_all_at(b"NEW!", 0).expect("write");
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 1 });
    assert!(a.sync_data().is_err(), "the armed sync failure");
    env.crash_with(CrashKind::Process);
    env.restart();
    assert_eq!(read(&env, "/d/a"), b"NEW!", "the cache kept the bytes");
    let a = env.open(path("/d/a"), OpenOptions::read_write()).expect("reopen");
    a.sync_data().expect("a clean page syncs without error");
    env.crash_with(CrashKind::Machine);
    env.restart();
    assert_eq!(read(&env, "/d/a"), b"old!", "the failed sync's bytes never reached the disk");
}

#[test]
fn crash_images_after_a_process_crash_enumerate_the_pending_state() {
    let options = FaultOptions { write_fate: WriteFateWeights { survive: 1, lose: 1, tear: 0 }, ..lossy() };
    let env = sim(options);
    durable_start(&env, b"old");
    let a = env.open(path("/d/a"), OpenOptions::read_write()).expect("open");
    a.write_all_at(b"new", 0).expect("write");
    env.crash_with(CrashKind::Process);
    let images = env.crash_images(16);
    assert!(images.exhaustive);
    let mut contents: Vec<Vec<u8>> = images
        .images
        .iter()
        .map(|image| {
            image.restart();
            read(image, "/d/a")
        })
        .collect();
    contents.sort();
    assert_eq!(contents, vec![b"new".to_vec(), b"old".to_vec()], "both fates of the cached write");
    env.restart();
    assert_eq!(read(&env, "/d/a"), b"new", "enumerating left the machine alone");
}

/// Writes, syncs and restarts under drawn faults; returns the machine.
fn churn(env: &SimEnv) {
    env.create_dir(path("/d")).ok();
    for round in 0..400u64 {
        if env.is_crashed() {
            env.restart();
        }
        let name = format!("/d/f{}", round % 3);
        let Ok(file) = env.open(path(&name), OpenOptions::create()) else { continue };
        if file.write_all_at(&round.to_le_bytes(), round % 64).is_err() {
            continue;
        }
        if round % 4 == 0 {
            let _ = file.sync_data();
        }
    }
}

#[test]
fn drawn_process_crashes_are_recorded_counted_and_replayed_exactly() {
    let options = FaultOptions {
        process_crash_probability: 0.05,
        crash: CrashMode::Random { probability: 0.01 },
        ..FaultOptions::default()
    };
    let env = SimEnv::new(11, options.clone()).expect("valid");
    churn(&env);
    let stats = env.stats();
    assert!(stats.process_crashes > 3, "process crashes were drawn: {stats:?}");
    assert!(stats.crashes > stats.process_crashes, "machine crashes too: {stats:?}");
    let schedule = env.schedule();
    let drawn = schedule.faults.iter().filter(|f| matches!(f.fault, Fault::ProcessCrash { .. })).count();
    assert_eq!(drawn as u64, stats.process_crashes);
    let replay = SimEnv::replaying(11, options, schedule).expect("valid");
    churn(&replay);
    assert_eq!(replay.trace_hash(), env.trace_hash(), "the replay made the same crashes");
    assert_eq!(replay.stats(), stats);
}

#[test]
fn process_crashes_leave_the_decisions_of_other_classes_alone() {
    // The process-crash class draws from its own stream: switching it on changes no decision
    // of another class up to the first process crash (after it the calls differ).
    let machine_only =
        FaultOptions { crash: CrashMode::Random { probability: 0.03 }, ..FaultOptions::default() };
    let both = FaultOptions { process_crash_probability: 0.01, ..machine_only.clone() };
    let mut compared = 0;
    for seed in 0..20 {
        let schedule = |options: FaultOptions| {
            let env = SimEnv::new(seed, options).expect("valid");
            churn(&env);
            env.schedule().faults
        };
        let alone = schedule(machine_only.clone());
        let with = schedule(both.clone());
        let Some(first) = with.iter().find(|f| matches!(f.fault, Fault::ProcessCrash { .. })) else {
            continue;
        };
        let before = |faults: &[stormhold::env::sim::ScheduledFault]| {
            faults.iter().filter(|f| f.call < first.call).copied().collect::<Vec<_>>()
        };
        assert_eq!(
            before(&with),
            before(&alone),
            "seed {seed}: same machine crashes before call {}",
            first.call
        );
        compared += before(&alone).len();
    }
    assert!(compared > 5, "the comparison saw machine crashes ({compared})");
}
