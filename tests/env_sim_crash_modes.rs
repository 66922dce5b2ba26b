//! `SimEnv` crash modes, handles and locks: a crash at the Nth I/O call, before or after it,
//! every call failing until restart, and directory locks.
//!
//! Where an outcome is random, a test loops over many seeds, checks the invariant for every
//! one, and also checks that each interesting outcome occurred, so it cannot pass vacuously.
//! Together the `env_sim_*.rs` files pin the exact effect of each `SimEnv` fault on bytes,
//! directory entries, handles and clocks, so that a change to the fault model fails there
//! instead of silently changing which crash images the checker sees.

mod env_sim_support;

use std::io;

use stormhold::env::sim::{CallKind, CrashMode, Fault, FaultOptions, SimEnv, WriteFateWeights, is_crash};
use stormhold::env::{Env, EnvFile, OpenOptions};

use env_sim_support::*;

// ---------------------------------------------------------------------------------------------
// Crash modes, handles and locks.

const A: [u8; SECTOR] = [0x11; SECTOR];
const B: [u8; SECTOR] = [0x22; SECTOR];

/// Six I/O calls: step N is the Nth I/O call of the run. Returns the step that failed.
fn crash_script(env: &SimEnv) -> Result<(), (u64, io::Error)> {
    let file = env.open(path("/f"), OpenOptions::create()).map_err(|e| (1, e))?;
    assert_eq!(file.write_at(&A, 0).map_err(|e| (2, e))?, SECTOR);
    file.sync_data().map_err(|e| (3, e))?;
    env.sync_dir(path("/")).map_err(|e| (4, e))?;
    assert_eq!(file.write_at(&B, SECTOR as u64).map_err(|e| (5, e))?, SECTOR);
    file.sync_data().map_err(|e| (6, e))?;
    Ok(())
}

/// Runs the script with a crash at call `call`, restarts, and returns the file's bytes.
fn crash_at(call: u64, after: bool, write_fate: WriteFateWeights) -> Option<Vec<u8>> {
    let env = sim(0, FaultOptions { crash: CrashMode::AtCall { call, after }, ..with_fate(write_fate) });
    // Clock readings are not I/O calls and must not move the crash point.
    env.now_monotonic();
    env.now_wall();
    let (step, error) = crash_script(&env).expect_err("the script crashes");
    assert_eq!(step, call, "crashed at the wrong call (after={after})");
    assert!(is_crash(&error) && env.is_crashed(), "{error}");
    assert_eq!(env.stats().crashes, 1);
    assert_eq!(env.stats().calls, call);
    env.restart();
    let bytes = read_file(&env, "/f").ok();
    assert_eq!(env.stats().crashes, 1, "AtCall crashes once");
    bytes
}

#[test]
fn crash_at_call_hits_exactly_the_nth_io_call() {
    for call in 1..=6 {
        for after in [false, true] {
            crash_at(call, after, fate(1, 1, 1));
        }
    }
}

#[test]
fn crash_at_call_before_a_write_drops_it_and_after_keeps_it() {
    let whole = [A, B].concat();
    // Every pending write survives a crash here, so only "before" can drop the write.
    assert_eq!(crash_at(5, false, fate(1, 0, 0)), Some(A.to_vec()));
    assert_eq!(crash_at(5, true, fate(1, 0, 0)), Some(whole));
}

#[test]
fn crash_at_call_after_a_sync_keeps_its_data() {
    // Every pending write is lost at a crash here, so only a sync that took effect keeps B.
    assert_eq!(crash_at(6, false, fate(0, 1, 0)), Some(A.to_vec()));
    assert_eq!(crash_at(6, true, fate(0, 1, 0)), Some([A, B].concat()));
}

#[test]
fn crash_at_call_happens_even_when_the_call_fails() {
    // Regression: an injected EIO at the crash call returned before the planned crash, so
    // the crash point was silently skipped.
    let env =
        sim(0, FaultOptions { crash: CrashMode::AtCall { call: 2, after: true }, ..FaultOptions::default() });
    env.arm(CallKind::Write, Fault::IoError { persistent: false });
    let (step, error) = crash_script(&env).expect_err("the script fails");
    assert_eq!(step, 2);
    assert!(is_crash(&error) && env.is_crashed(), "{error}");
    assert_eq!(env.stats().crashes, 1);
}

#[test]
fn random_crash_mode_crashes_before_or_after_the_call() {
    let mut after_count = 0;
    for seed in SEEDS {
        let env = sim(
            seed,
            FaultOptions { crash: CrashMode::Random { probability: 1.0 }, ..FaultOptions::default() },
        );
        assert_crash(env.create_dir(path("/d")));
        let faults = env.schedule().faults;
        let [entry] = faults.as_slice() else { panic!("seed {seed}: {faults:?}") };
        let Fault::Crash { after, .. } = entry.fault else { panic!("seed {seed}: {entry:?}") };
        assert_eq!(entry.call, 1);
        after_count += usize::from(after);
    }
    let count = SEEDS.count();
    assert!(after_count > count / 4 && after_count < count * 3 / 4, "after {after_count} of {count}");
}

#[test]
fn every_call_fails_with_crash_until_restart() {
    let env = sim(0, FaultOptions::default());
    setup_dir(&env);
    let file = durable_file(&env, "/d/f", &A);
    env.crash();
    let mut buf = [0; 8];
    assert_crash(env.open(path("/d/f"), OpenOptions::read_only()));
    assert_crash(env.exists(path("/d")));
    assert_crash(env.list_dir(path("/d")));
    assert_crash(env.create_dir(path("/e")));
    assert_crash(env.sync_dir(path("/d")));
    assert_crash(env.lock_dir(path("/d")));
    assert_crash(file.read_at(&mut buf, 0));
    assert_crash(file.write_at(&B, 0));
    assert_crash(file.sync_data());
    env.crash();
    assert_eq!(env.stats().crashes, 1, "crashing a dead process does nothing");
    env.restart();
    assert!(env.exists(path("/d/f")).expect("exists"));
    // A handle of the dead process stays dead.
    assert_crash(file.read_at(&mut buf, 0));
    assert_crash(file.write_at(&B, 0));
    assert_crash(file.len());
    let fresh = env.open(path("/d/f"), OpenOptions::read_write()).expect("open");
    assert_eq!(read_via(&fresh), A);
}

#[test]
fn crash_releases_directory_lock() {
    let env = sim(0, FaultOptions::default());
    setup_dir(&env);
    let stale = env.lock_dir(path("/d")).expect("lock");
    assert_eq!(env.lock_dir(path("/d")).expect_err("locked").kind(), io::ErrorKind::WouldBlock);
    crash_and_restart(&env);
    let held = env.lock_dir(path("/d")).expect("a crash released the lock");
    drop(stale);
    let error = env.lock_dir(path("/d")).expect_err("a dead process's guard releases nothing");
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    drop(held);
    env.lock_dir(path("/d")).expect("lock again");
}

#[test]
fn lock_dir_twice_fails_with_would_block_until_guard_drops() {
    let env = sim(0, FaultOptions::default());
    setup_dir(&env);
    let guard = env.lock_dir(path("/d")).expect("lock");
    for _ in 0..2 {
        assert_eq!(env.lock_dir(path("/d")).expect_err("locked").kind(), io::ErrorKind::WouldBlock);
    }
    drop(guard);
    let again = env.lock_dir(path("/d")).expect("lock after drop");
    assert_eq!(env.lock_dir(path("/d")).expect_err("locked").kind(), io::ErrorKind::WouldBlock);
    drop(again);
}
