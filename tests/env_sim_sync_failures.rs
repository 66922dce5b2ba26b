//! `SimEnv` failed syncs: what each sync-failure profile (keep, drop, revert) leaves readable
//! and durable, what a later sync persists, and a failed directory sync.
//!
//! Where an outcome is random, a test loops over many seeds, checks the invariant for every
//! one, and also checks that each interesting outcome occurred, so it cannot pass vacuously.
//! Together the `env_sim_*.rs` files pin the exact effect of each `SimEnv` fault on bytes,
//! directory entries, handles and clocks, so that a change to the fault model fails there
//! instead of silently changing which crash images the checker sees.

mod env_sim_support;

use stormhold::env::sim::{CallKind, Fault, FaultOptions, SimEnv, SimFile, SyncFailureProfile};
use stormhold::env::{Env, EnvFile, OpenOptions};

use env_sim_support::*;

// ---------------------------------------------------------------------------------------------
// Sync failures.

const SYNC_FILE_LEN: usize = 4 * SECTOR;

/// A durable file of old bytes overwritten by four pending sector writes, then a sync that
/// fails with the armed `image_seed`. Returns the env, the handle, and the durable image right
/// after the failure.
fn failed_sync(profile: SyncFailureProfile, image_seed: u64) -> (SimEnv, SimFile, Vec<u8>) {
    let env = sim(0, FaultOptions { sync_failure_profile: profile, ..FaultOptions::default() });
    let file = durable_file(&env, "/f", &old_bytes(SYNC_FILE_LEN));
    let new = new_bytes(SYNC_FILE_LEN);
    for start in (0..SYNC_FILE_LEN).step_by(SECTOR) {
        file.write_all_at(&new[start..start + SECTOR], start as u64).expect("write");
    }
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed });
    assert_eio(file.sync_data());
    assert_eq!(env.stats().sync_failures, 1);
    let durable = env.durable_contents(path("/f")).expect("path").expect("durable entry");
    (env, file, durable)
}

/// Checks what every profile shares: a second sync returns `Ok` without writing anything, and
/// a crash then keeps exactly the image the failed sync left. Returns that image.
fn second_sync_writes_nothing(env: &SimEnv, file: &SimFile, durable: Vec<u8>) -> Vec<u8> {
    file.sync_data().expect("a second sync returns Ok");
    assert_eq!(env.durable_contents(path("/f")).expect("path"), Some(durable.clone()));
    crash_and_restart(env);
    assert_eq!(read_file(env, "/f").expect("read"), durable);
    durable
}

#[test]
fn sync_failure_keep_profile_reads_new_bytes_but_loses_durability() {
    // Regression: the second sync's clean-sync assertion (durable == live) panicked whenever
    // the failed sync had kept new bytes in the cache that never reached the disk.
    let (mut lost_some, mut landed_all) = (0, 0);
    for image_seed in 0..64 {
        let (env, file, durable) = failed_sync(SyncFailureProfile::Keep, image_seed);
        assert_eq!(read_via(&file), new_bytes(SYNC_FILE_LEN), "the cache keeps the new bytes");
        let after_crash = second_sync_writes_nothing(&env, &file, durable);
        if after_crash == new_bytes(SYNC_FILE_LEN) {
            landed_all += 1;
        } else {
            lost_some += 1;
        }
    }
    assert!(lost_some > 0 && landed_all > 0, "lost some {lost_some}, landed all {landed_all}");
}

#[test]
fn sync_failure_drop_profile_reads_what_is_durable() {
    let (mut lost_some, mut landed_some) = (0, 0);
    for image_seed in 0..64 {
        let (env, file, durable) = failed_sync(SyncFailureProfile::Drop, image_seed);
        assert_eq!(read_via(&file), durable, "the dropped cache shows the disk");
        let after_crash = second_sync_writes_nothing(&env, &file, durable);
        lost_some += usize::from(after_crash != new_bytes(SYNC_FILE_LEN));
        landed_some += usize::from(after_crash != old_bytes(SYNC_FILE_LEN));
    }
    assert!(lost_some > 0 && landed_some > 0, "lost some {lost_some}, landed some {landed_some}");
}

#[test]
fn sync_failure_revert_profile_returns_to_last_synced_state() {
    for image_seed in 0..64 {
        let (env, file, durable) = failed_sync(SyncFailureProfile::Revert, image_seed);
        assert_eq!(durable, old_bytes(SYNC_FILE_LEN), "image seed {image_seed}");
        assert_eq!(read_via(&file), old_bytes(SYNC_FILE_LEN), "image seed {image_seed}");
        assert_eq!(env.stats().writes_lost, 4, "every pending write reverted");
        second_sync_writes_nothing(&env, &file, durable);
    }
}

#[test]
fn sync_after_failed_sync_persists_the_file_length() {
    // Regression: under `Keep`, a truncate covered by a failed sync was marked clean like a data
    // page, so a later good sync never persisted the new length and a crash brought the cut bytes
    // back. The length is inode metadata: the next good sync must persist it.
    let mut truncate_dropped_by_failure = 0;
    for image_seed in 0..64 {
        let env = sim(image_seed, with_fate(fate(1, 1, 0)));
        env.create_dir(path("/d")).expect("create_dir");
        env.sync_dir(path("/")).expect("sync_dir");
        let file = durable_file(&env, "/d/f", &old_bytes(4 * SECTOR));
        file.set_len(SECTOR as u64).expect("set_len");
        env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed });
        assert_eio(file.sync_data());
        let on_disk = env.durable_contents(path("/d/f")).expect("path").expect("durable");
        truncate_dropped_by_failure += usize::from(on_disk.len() == 4 * SECTOR);
        file.write_all_at(&new_bytes(16), 0).expect("write");
        file.sync_data().expect("the second sync succeeds");
        crash_and_restart(&env);
        let mut expected = old_bytes(SECTOR);
        expected[..16].copy_from_slice(&new_bytes(16));
        assert_eq!(read_file(&env, "/d/f").expect("read"), expected, "image seed {image_seed}");
    }
    assert!(truncate_dropped_by_failure > 0, "some failed syncs must leave the old length on disk");
}

#[test]
fn sync_dir_failure_returns_error() {
    let env = sim(0, FaultOptions::default());
    drop(env.open(path("/f"), OpenOptions::create()).expect("create"));
    env.arm(CallKind::SyncDir, Fault::SyncFailure { image_seed: 3 });
    assert_eio(env.sync_dir(path("/")));
    assert_eq!(env.stats().sync_failures, 1);
    env.sync_dir(path("/")).expect("a second sync_dir returns Ok");
}

#[test]
fn entry_dropped_by_a_failed_sync_dir_stays_lost_after_a_later_good_one() {
    // Regression (review finding 4): a successful sync_dir made every live entry durable, so it
    // silently undid what a failed one had dropped; a later sync must write nothing again.
    let (mut lost_for_good, mut kept) = (0, 0);
    for image_seed in 0..32 {
        let env = sim(image_seed, FaultOptions::default());
        drop(env.open(path("/f"), OpenOptions::create()).expect("create"));
        env.arm(CallKind::SyncDir, Fault::SyncFailure { image_seed });
        assert_eio(env.sync_dir(path("/")));
        env.sync_dir(path("/")).expect("a second sync_dir returns Ok");
        crash_and_restart(&env);
        match env.exists(path("/f")).expect("exists") {
            true => kept += 1,
            false => lost_for_good += 1,
        }
    }
    assert!(lost_for_good > 0 && kept > 0, "lost {lost_for_good}, kept {kept}");
}
