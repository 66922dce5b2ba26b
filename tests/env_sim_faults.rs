//! Pins the exact effect of each `SimEnv` fault on bytes, directory entries, handles and
//! clocks, so that a change to the fault model fails here instead of silently changing which
//! crash images the checker sees.
//!
//! Where an outcome is random, a test loops over many seeds, checks the invariant for every
//! one, and also checks that each interesting outcome occurred, so it cannot pass vacuously.

use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use stormhold::env::sim::{
    CallKind, CrashMode, DamageKind, DirOrdering, Fault, FaultOptions, SimEnv, SimFile, SyncFailureProfile,
    TearFillWeights, WriteFateWeights, is_crash,
};
use stormhold::env::{Env, EnvFile, OpenOptions};

const SEEDS: Range<u64> = 0..200;
const SECTOR: usize = 512;

fn sim(seed: u64, options: FaultOptions) -> SimEnv {
    SimEnv::new(seed, options).expect("valid fault options")
}

fn path(text: &str) -> &Path {
    Path::new(text)
}

fn fate(survive: u32, lose: u32, tear: u32) -> WriteFateWeights {
    WriteFateWeights { survive, lose, tear }
}

fn fill(old: u32, zero: u32, garbage: u32) -> TearFillWeights {
    TearFillWeights { old, zero, garbage }
}

fn with_fate(write_fate: WriteFateWeights) -> FaultOptions {
    FaultOptions { write_fate, ..FaultOptions::default() }
}

/// Bytes 0x80..=0xBF: never zero and never equal to [`new_bytes`] at the same index.
fn old_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0x80 | (i % 64) as u8).collect()
}

/// Bytes 0x40..=0x7F.
fn new_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0x40 | (i % 64) as u8).collect()
}

/// Creates the file `name` holding `bytes`, with its data and its directory entry durable.
fn durable_file(env: &SimEnv, name: &str, bytes: &[u8]) -> SimFile {
    let file = env.open(path(name), OpenOptions::create()).expect("open");
    file.write_all_at(bytes, 0).expect("write");
    file.sync_data().expect("sync_data");
    env.sync_dir(path(name).parent().expect("a parent")).expect("sync_dir");
    assert_eq!(env.durable_contents(path(name)).expect("path").as_deref(), Some(bytes));
    file
}

/// The whole file, as a new handle reads it.
fn read_file(env: &SimEnv, name: &str) -> io::Result<Vec<u8>> {
    let file = env.open(path(name), OpenOptions::read_only())?;
    let mut buf = vec![0; file.len()? as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

fn read_via(file: &SimFile) -> Vec<u8> {
    let mut buf = vec![0; file.len().expect("len") as usize];
    file.read_exact_at(&mut buf, 0).expect("read");
    buf
}

fn crash_and_restart(env: &SimEnv) {
    env.crash();
    assert!(env.is_crashed());
    env.restart();
    assert!(!env.is_crashed());
}

fn assert_eio(result: io::Result<impl std::fmt::Debug>) {
    let error = result.expect_err("the call must fail");
    assert!(!is_crash(&error), "an injected I/O error is not a crash: {error}");
}

fn assert_crash(result: io::Result<impl std::fmt::Debug>) {
    let error = result.expect_err("the call must fail");
    assert!(is_crash(&error), "expected a crash error, got {error}");
}

// ---------------------------------------------------------------------------------------------
// Crash and pending writes.

#[test]
fn crash_drops_unsynced_write_when_every_write_is_lost() {
    for seed in 0..50 {
        let env = sim(seed, with_fate(fate(0, 1, 0)));
        let file = durable_file(&env, "/f", &old_bytes(1024));
        file.write_all_at(&new_bytes(600), 100).expect("overwrite");
        file.append(&new_bytes(700)).expect("append");
        crash_and_restart(&env);
        assert_eq!(read_file(&env, "/f").expect("read"), old_bytes(1024), "seed {seed}");
        assert_eq!(env.stats().writes_lost, 2, "seed {seed}");
    }
}

#[test]
fn crash_keeps_synced_write_under_any_fate() {
    let fates = [fate(1, 0, 0), fate(0, 1, 0), fate(0, 0, 1), fate(1, 1, 1)];
    for write_fate in fates {
        for seed in 0..50 {
            let env = sim(seed, with_fate(write_fate));
            let file = durable_file(&env, "/f", &old_bytes(1024));
            file.write_all_at(&new_bytes(1500), 300).expect("write");
            file.set_len(1700).expect("set_len");
            file.sync_data().expect("sync_data");
            let mut expected = old_bytes(1024);
            expected.resize(1800, 0);
            expected[300..1800].copy_from_slice(&new_bytes(1500));
            expected.truncate(1700);
            crash_and_restart(&env);
            assert_eq!(read_file(&env, "/f").expect("read"), expected, "{write_fate:?} seed {seed}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Torn writes.

fn tear_options(
    tear_fill: TearFillWeights,
    sector_size_bytes: u32,
    powersafe_overwrite: bool,
) -> FaultOptions {
    FaultOptions {
        sector_size_bytes,
        write_fate: fate(0, 0, 1),
        tear_fill,
        powersafe_overwrite,
        ..FaultOptions::default()
    }
}

/// Writes `new` at `offset` over a durable file of `old`, crashes with that write torn, and
/// returns the file as the next process reads it.
fn torn_write(seed: u64, options: FaultOptions, old: &[u8], offset: usize, new: &[u8]) -> Vec<u8> {
    let env = sim(seed, options);
    let file = durable_file(&env, "/f", old);
    assert_eq!(file.write_at(new, offset as u64).expect("write"), new.len());
    crash_and_restart(&env);
    assert_eq!(env.stats().writes_torn, 1);
    read_file(&env, "/f").expect("read")
}

/// Checks a torn write under powersafe overwrite: bytes outside the written range are `old`,
/// and in each sector the written part is entirely new or satisfies `is_fill(got, old_part)`.
/// Returns, per touched sector, whether its new bytes landed.
fn landed_sectors(
    after: &[u8],
    old: &[u8],
    (offset, new): (usize, &[u8]),
    sector: usize,
    is_fill: impl Fn(&[u8], &[u8]) -> bool,
) -> Vec<bool> {
    let end = offset + new.len();
    assert_eq!(after.len(), old.len(), "the write stayed inside the file");
    assert_eq!(after[..offset], old[..offset], "bytes before the write changed");
    assert_eq!(after[end..], old[end..], "bytes after the write changed");
    let mut landed = Vec::new();
    let mut start = offset - offset % sector;
    while start < end {
        let part = start.max(offset)..(start + sector).min(end);
        let got = &after[part.clone()];
        if got == &new[part.start - offset..part.end - offset] {
            landed.push(true);
        } else {
            assert!(
                is_fill(got, &old[part.clone()]),
                "sector at {start} holds neither new bytes nor the fill"
            );
            landed.push(false);
        }
        start += sector;
    }
    landed
}

/// Both outcomes occurred, and at least once a later sector landed without an earlier one
/// (a tear keeps any subset of sectors, not only a prefix).
fn assert_tears_vary(outcomes: &[Vec<bool>]) {
    let all = || outcomes.iter().flatten();
    assert!(all().any(|&landed| landed), "no sector ever landed");
    assert!(all().any(|&landed| !landed), "every sector always landed");
    let non_prefix = outcomes.iter().any(|sectors| {
        sectors.iter().position(|&landed| !landed).is_some_and(|hole| sectors[hole..].contains(&true))
    });
    assert!(non_prefix, "the landed sectors were always a prefix");
}

/// A write that starts and ends inside sectors and covers four whole ones: sectors 0..=5 of
/// a 4 KiB file are touched, 6 and 7 are not.
const TORN_OFFSET: usize = 300;
const TORN_LEN: usize = 4 * SECTOR + 212 + 400;
const TORN_FILE_LEN: usize = 8 * SECTOR;

fn torn_outcomes(options: &FaultOptions, is_fill: impl Fn(&[u8], &[u8]) -> bool) -> Vec<Vec<bool>> {
    let (old, new) = (old_bytes(TORN_FILE_LEN), new_bytes(TORN_LEN));
    SEEDS
        .map(|seed| {
            let after = torn_write(seed, options.clone(), &old, TORN_OFFSET, &new);
            let landed = landed_sectors(&after, &old, (TORN_OFFSET, &new), SECTOR, &is_fill);
            assert_eq!(landed.len(), 6, "seed {seed}");
            landed
        })
        .collect()
}

#[test]
fn torn_write_sectors_hold_new_or_old_bytes() {
    let outcomes = torn_outcomes(&tear_options(fill(1, 0, 0), 512, true), |got, old| got == old);
    assert_tears_vary(&outcomes);
}

#[test]
fn torn_write_sectors_hold_new_or_zero_bytes() {
    let outcomes =
        torn_outcomes(&tear_options(fill(0, 1, 0), 512, true), |got, _| got.iter().all(|&b| b == 0));
    assert_tears_vary(&outcomes);
}

#[test]
fn torn_write_sectors_hold_new_or_garbage_bytes() {
    // Garbage is random: for parts of 212 bytes and more it equals neither the old bytes nor
    // zeros except with negligible odds.
    let is_garbage = |got: &[u8], old: &[u8]| got != old && got.iter().any(|&b| b != 0);
    let outcomes = torn_outcomes(&tear_options(fill(0, 0, 1), 512, true), is_garbage);
    assert_tears_vary(&outcomes);
}

#[test]
fn torn_write_without_powersafe_overwrite_zeroes_whole_touched_sectors_only() {
    let options = tear_options(fill(0, 1, 0), 512, false);
    let (old, new) = (old_bytes(TORN_FILE_LEN), new_bytes(TORN_LEN));
    let (end, touched_end) = (TORN_OFFSET + TORN_LEN, 6 * SECTOR);
    let (mut landed, mut zeroed) = (0, 0);
    for seed in SEEDS {
        let after = torn_write(seed, options.clone(), &old, TORN_OFFSET, &new);
        assert_eq!(after.len(), old.len(), "seed {seed}");
        assert_eq!(after[touched_end..], old[touched_end..], "untouched sectors changed, seed {seed}");
        for start in (0..touched_end).step_by(SECTOR) {
            let sector = start..start + SECTOR;
            let written = sector.start.max(TORN_OFFSET)..sector.end.min(end);
            let mut expected_new = old[sector.clone()].to_vec();
            expected_new[written.start - start..written.end - start]
                .copy_from_slice(&new[written.start - TORN_OFFSET..written.end - TORN_OFFSET]);
            if after[sector.clone()] == expected_new[..] {
                landed += 1;
            } else {
                assert!(
                    after[sector].iter().all(|&b| b == 0),
                    "sector at {start} neither landed nor zero, seed {seed}"
                );
                zeroed += 1;
            }
        }
    }
    // Sectors 0 and 5 have bytes outside the written range: a zeroed one lost them too.
    assert!(landed > 0 && zeroed > 0, "landed {landed}, zeroed {zeroed}");
}

#[test]
fn torn_write_tears_whole_4096_byte_sectors() {
    let sector = 4096;
    let options = tear_options(fill(1, 0, 0), 4096, true);
    let (old, new) = (old_bytes(3 * sector), new_bytes(sector + 3000));
    let offset = 1000;
    let outcomes: Vec<Vec<bool>> = SEEDS
        .map(|seed| {
            let after = torn_write(seed, options.clone(), &old, offset, &new);
            // A 512-byte tear would mix new and old inside a 4096-byte sector and fail here.
            landed_sectors(&after, &old, (offset, &new), sector, |got, old| got == old)
        })
        .collect();
    let all = || outcomes.iter().flatten();
    assert!(all().any(|&landed| landed) && all().any(|&landed| !landed));
    assert!(outcomes.iter().all(|sectors| sectors.len() == 2));
}

// ---------------------------------------------------------------------------------------------
// Directory operations.

fn setup_dir(env: &SimEnv) {
    env.create_dir(path("/d")).expect("create_dir");
    env.sync_dir(path("/")).expect("sync_dir /");
}

#[test]
fn unsynced_create_may_vanish_after_crash() {
    let (mut kept, mut vanished) = (0, 0);
    for seed in SEEDS {
        let env = sim(seed, FaultOptions::default());
        setup_dir(&env);
        let file = env.open(path("/d/new"), OpenOptions::create_new()).expect("create");
        file.write_all_at(b"synced data", 0).expect("write");
        file.sync_data().expect("sync_data");
        drop(file);
        crash_and_restart(&env);
        if env.exists(path("/d/new")).expect("exists") {
            assert_eq!(read_file(&env, "/d/new").expect("read"), b"synced data", "seed {seed}");
            kept += 1;
        } else {
            vanished += 1;
        }
    }
    assert!(kept > 0 && vanished > 0, "kept {kept}, vanished {vanished}");
}

#[test]
fn unsynced_rename_keeps_exactly_one_name_after_crash() {
    // Regression: a rename inside one directory used to resolve as an unlink and a link that
    // survived independently, so a durable file could vanish under both names.
    let (mut old_name, mut new_name) = (0, 0);
    for seed in SEEDS {
        let env = sim(seed, FaultOptions::default());
        setup_dir(&env);
        drop(durable_file(&env, "/d/a", b"aaa"));
        env.rename(path("/d/a"), path("/d/b")).expect("rename");
        crash_and_restart(&env);
        match env.list_dir(path("/d")).expect("list").as_slice() {
            [name] if name == "a" => old_name += 1,
            [name] if name == "b" => new_name += 1,
            other => panic!("seed {seed}: rename left {other:?}"),
        }
        let name = if env.exists(path("/d/a")).expect("exists") { "/d/a" } else { "/d/b" };
        assert_eq!(read_file(&env, name).expect("read"), b"aaa", "seed {seed}");
    }
    assert!(old_name > 0 && new_name > 0, "old name {old_name}, new name {new_name}");
}

#[test]
fn unsynced_rename_over_a_file_keeps_old_or_new_target_after_crash() {
    let (mut undone, mut done) = (0, 0);
    for seed in SEEDS {
        let env = sim(seed, FaultOptions::default());
        setup_dir(&env);
        drop(durable_file(&env, "/d/tmp", b"new"));
        drop(durable_file(&env, "/d/current", b"old"));
        env.rename(path("/d/tmp"), path("/d/current")).expect("rename");
        crash_and_restart(&env);
        let current = read_file(&env, "/d/current").expect("the target always exists");
        if current == b"old" {
            assert_eq!(read_file(&env, "/d/tmp").expect("tmp stays"), b"new", "seed {seed}");
            undone += 1;
        } else {
            assert_eq!(current, b"new", "seed {seed}");
            assert!(!env.exists(path("/d/tmp")).expect("exists"), "seed {seed}");
            done += 1;
        }
    }
    assert!(undone > 0 && done > 0, "undone {undone}, done {done}");
}

#[test]
fn unsynced_remove_may_be_undone_after_crash() {
    let (mut back, mut gone) = (0, 0);
    for seed in SEEDS {
        let env = sim(seed, FaultOptions::default());
        setup_dir(&env);
        drop(durable_file(&env, "/d/a", b"aaa"));
        env.remove_file(path("/d/a")).expect("remove");
        assert!(!env.exists(path("/d/a")).expect("exists"));
        crash_and_restart(&env);
        if env.exists(path("/d/a")).expect("exists") {
            assert_eq!(read_file(&env, "/d/a").expect("read"), b"aaa", "seed {seed}");
            back += 1;
        } else {
            gone += 1;
        }
    }
    assert!(back > 0 && gone > 0, "back {back}, gone {gone}");
}

#[test]
fn dir_ops_survive_crash_after_sync_dir() {
    for ordering in [DirOrdering::Independent, DirOrdering::Ordered] {
        for seed in 0..50 {
            let env = sim(seed, FaultOptions { dir_ordering: ordering, ..with_fate(fate(0, 1, 1)) });
            setup_dir(&env);
            drop(durable_file(&env, "/d/a", b"aaa"));
            drop(durable_file(&env, "/d/b", b"bbb"));
            let created = env.open(path("/d/c"), OpenOptions::create_new()).expect("create");
            created.write_all_at(b"ccc", 0).expect("write");
            created.sync_data().expect("sync_data");
            env.rename(path("/d/a"), path("/d/a2")).expect("rename");
            env.remove_file(path("/d/b")).expect("remove");
            env.sync_dir(path("/d")).expect("sync_dir");
            crash_and_restart(&env);
            assert_eq!(env.list_dir(path("/d")).expect("list"), ["a2", "c"], "{ordering:?} seed {seed}");
            assert_eq!(read_file(&env, "/d/a2").expect("read"), b"aaa");
            assert_eq!(read_file(&env, "/d/c").expect("read"), b"ccc");
        }
    }
}

/// Creates files in a non-sorted order without syncing the directory, crashes, and returns
/// how many of them (in creation order) survived and whether they were a prefix.
const CREATION_ORDER: [&str; 8] = ["m", "c", "x", "a", "q", "b", "z", "k"];

fn surviving_creations(seed: u64, dir_ordering: DirOrdering) -> (usize, bool) {
    let env = sim(seed, FaultOptions { dir_ordering, ..FaultOptions::default() });
    setup_dir(&env);
    for name in CREATION_ORDER {
        drop(env.open(&path("/d").join(name), OpenOptions::create_new()).expect("create"));
    }
    crash_and_restart(&env);
    let mut listed = env.list_dir(path("/d")).expect("list");
    let mut prefix: Vec<String> =
        CREATION_ORDER[..listed.len()].iter().map(|name| name.to_string()).collect();
    prefix.sort();
    listed.sort();
    let count = listed.len();
    (count, listed == prefix)
}

#[test]
fn ordered_dir_ops_survive_as_a_prefix() {
    let mut counts = std::collections::BTreeSet::new();
    for seed in SEEDS {
        let (count, is_prefix) = surviving_creations(seed, DirOrdering::Ordered);
        assert!(is_prefix, "seed {seed}: {count} creations survived, not as a prefix");
        counts.insert(count);
    }
    assert!(counts.contains(&0) && counts.contains(&CREATION_ORDER.len()), "counts {counts:?}");
    assert!(counts.iter().any(|&count| count > 0 && count < CREATION_ORDER.len()), "counts {counts:?}");
}

#[test]
fn independent_dir_ops_may_survive_out_of_order() {
    let out_of_order = SEEDS.filter(|&seed| !surviving_creations(seed, DirOrdering::Independent).1).count();
    assert!(out_of_order > 0, "independent mode always kept a prefix");
}

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

// ---------------------------------------------------------------------------------------------
// Other I/O errors.

#[test]
fn write_past_disk_budget_fails_with_storage_full_until_space_is_freed() {
    let env = sim(0, FaultOptions { disk_bytes_max: Some(4096), ..FaultOptions::default() });
    let a = env.open(path("/a"), OpenOptions::create()).expect("open a");
    a.write_all_at(&old_bytes(3000), 0).expect("write a");
    let b = env.open(path("/b"), OpenOptions::create()).expect("open b");
    let full =
        |result: io::Result<usize>| assert_eq!(result.expect_err("full").kind(), io::ErrorKind::StorageFull);
    full(b.write_at(&new_bytes(2000), 0));
    assert_eq!(b.len().expect("len"), 0, "a refused write has no effect");
    assert_eq!(b.set_len(1097).expect_err("full").kind(), io::ErrorKind::StorageFull);
    assert_eq!(read_file(&env, "/a").expect("read a"), old_bytes(3000), "earlier data intact");
    // Exactly filling the budget works; one byte more does not.
    assert_eq!(b.write_at(&new_bytes(1096), 0).expect("fits"), 1096);
    full(b.write_at(b"x", 1096));
    // An unlinked file holds its space while a handle keeps it open.
    env.remove_file(path("/a")).expect("remove a");
    full(b.write_at(b"x", 1096));
    drop(a);
    b.write_all_at(&new_bytes(2000), 1096).expect("space was freed");
    assert_eq!(env.used_bytes(), 3096);
    assert_eq!(env.stats().storage_full, 4);
}

#[test]
fn transient_io_error_fails_exactly_one_call() {
    let env = sim(0, FaultOptions::default());
    let file = durable_file(&env, "/f", &old_bytes(1024));
    let mut buf = vec![0; 1024];
    env.arm(CallKind::Read, Fault::IoError { persistent: false });
    assert_eio(file.read_at(&mut buf, 0));
    file.read_exact_at(&mut buf, 0).expect("the next read works");
    assert_eq!(buf, old_bytes(1024));
    env.arm(CallKind::Write, Fault::IoError { persistent: false });
    assert_eio(file.write_at(&new_bytes(10), 0));
    assert_eq!(read_via(&file), old_bytes(1024), "the failed write had no effect");
    assert_eq!(file.write_at(&new_bytes(10), 0).expect("the next write works"), 10);
    env.arm(CallKind::Open, Fault::IoError { persistent: false });
    assert_eio(env.open(path("/f"), OpenOptions::read_only()));
    assert_eq!(env.stats().io_errors, 3);
}

#[test]
fn persistent_io_error_fails_every_later_call_on_the_handle() {
    let env = sim(0, FaultOptions::default());
    let file = durable_file(&env, "/f", &old_bytes(1024));
    env.arm(CallKind::Write, Fault::IoError { persistent: true });
    assert_eio(file.write_at(&new_bytes(10), 0));
    let mut buf = vec![0; 1024];
    for _ in 0..3 {
        assert_eio(file.read_at(&mut buf, 0));
        assert_eio(file.write_at(&new_bytes(10), 0));
        assert_eio(file.len());
        assert_eio(file.set_len(10));
        assert_eio(file.sync_data());
    }
    assert_eq!(env.stats().io_errors, 16);
    let fresh = env.open(path("/f"), OpenOptions::read_write()).expect("a fresh handle opens");
    assert_eq!(read_via(&fresh), old_bytes(1024), "the failed write had no effect");
    fresh.write_all_at(&new_bytes(10), 0).expect("write");
    fresh.sync_data().expect("sync");
    assert_eq!(env.stats().io_errors, 16);
}

#[test]
fn short_read_returns_fewer_bytes_and_read_exact_at_completes() {
    let env = sim(0, FaultOptions::default());
    let file = durable_file(&env, "/f", &old_bytes(1000));
    let mut buf = vec![0; 1000];
    env.arm(CallKind::Read, Fault::ShortIo { kept_per_mille: 500 });
    assert_eq!(file.read_at(&mut buf, 0).expect("read"), 500);
    assert_eq!(buf[..500], old_bytes(1000)[..500]);
    env.arm(CallKind::Read, Fault::ShortIo { kept_per_mille: 0 });
    assert_eq!(file.read_at(&mut buf, 0).expect("read"), 1, "a short read moves at least one byte");
    buf.fill(0);
    env.arm(CallKind::Read, Fault::ShortIo { kept_per_mille: 500 });
    file.read_exact_at(&mut buf, 0).expect("read_exact_at");
    assert_eq!(buf, old_bytes(1000));
    assert_eq!(env.stats().short_ios, 3);
}

#[test]
fn short_write_writes_fewer_bytes_and_write_all_at_completes() {
    let env = sim(0, FaultOptions::default());
    let file = env.open(path("/f"), OpenOptions::create()).expect("open");
    let data = new_bytes(1000);
    env.arm(CallKind::Write, Fault::ShortIo { kept_per_mille: 500 });
    assert_eq!(file.write_at(&data, 0).expect("write"), 500);
    assert_eq!(read_via(&file), data[..500], "only the reported prefix was written");
    env.arm(CallKind::Write, Fault::ShortIo { kept_per_mille: 0 });
    assert_eq!(file.write_at(&data[500..], 500).expect("write"), 1, "a short write moves at least one byte");
    assert_eq!(file.len().expect("len"), 501);
    env.arm(CallKind::Write, Fault::ShortIo { kept_per_mille: 500 });
    file.write_all_at(&data, 0).expect("write_all_at");
    assert_eq!(read_via(&file), data);
    assert_eq!(env.stats().short_ios, 3);
}

// ---------------------------------------------------------------------------------------------
// Media damage.

#[test]
fn bad_sector_fails_overlapping_reads_forever() {
    let env = sim(0, FaultOptions::default());
    let file = durable_file(&env, "/f", &old_bytes(8 * SECTOR));
    env.arm(CallKind::Len, Fault::BadSector { pick: 0x9e37_79b9_7f4a_7c15 });
    file.len().expect("len");
    assert_eq!(env.stats().bad_sectors, 1);
    let damage = env.damage_at(path("/f")).expect("damage");
    let [(DamageKind::BadSector, bad)] = damage.as_slice() else { panic!("damage {damage:?}") };
    let bad = bad.start as usize..bad.end as usize;
    assert!(bad.start % SECTOR == 0 && bad.len() == SECTOR && bad.end <= 8 * SECTOR, "{bad:?}");
    let check = |file: &SimFile| {
        let read = |range: Range<usize>| {
            let mut buf = vec![0; range.len()];
            file.read_exact_at(&mut buf, range.start as u64).map(|()| buf)
        };
        for _ in 0..3 {
            assert_eio(read(bad.clone()));
            assert_eio(read(bad.end - 1..bad.end));
            assert_eio(read(bad.start.saturating_sub(10)..bad.start + 1));
        }
        for start in (0..8 * SECTOR).step_by(SECTOR).filter(|&start| start != bad.start) {
            assert_eq!(
                read(start..start + SECTOR).expect("a good sector reads"),
                old_bytes(8 * SECTOR)[start..start + SECTOR]
            );
        }
    };
    check(&file);
    drop(file);
    crash_and_restart(&env);
    check(&env.open(path("/f"), OpenOptions::read_only()).expect("reopen"));
    assert_eq!(env.damage_at(path("/f")).expect("damage"), damage, "the sector stays bad");
    assert_eq!(env.stats().bad_sector_reads, 6 * 3);
}

#[test]
fn bit_rot_flips_exactly_one_durable_bit() {
    let env = sim(0, FaultOptions::default());
    let file = durable_file(&env, "/f", &old_bytes(2048));
    let mut before = old_bytes(2048);
    let mut rotted = std::collections::BTreeSet::new();
    for round in 0..100u64 {
        let pick = round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        env.arm(CallKind::Len, Fault::BitRot { pick });
        file.len().expect("len");
        let after = env.durable_contents(path("/f")).expect("path").expect("durable");
        let flipped: Vec<usize> = (0..before.len()).filter(|&i| before[i] != after[i]).collect();
        let [byte] = flipped.as_slice() else { panic!("pick {pick:#x} changed bytes {flipped:?}") };
        assert_eq!((before[*byte] ^ after[*byte]).count_ones(), 1, "pick {pick:#x}");
        let damage = env.damage_at(path("/f")).expect("damage");
        let range = *byte as u64..*byte as u64 + 1;
        assert_eq!(damage.last(), Some(&(DamageKind::BitRot, range)), "pick {pick:#x}");
        rotted.insert(*byte);
        before = after;
    }
    assert!(rotted.len() > 50, "picks spread over the file: {} bytes", rotted.len());
    assert_eq!(env.stats().bit_rot, 100);
    drop(file);
    crash_and_restart(&env);
    assert_eq!(read_file(&env, "/f").expect("read"), before, "the next process reads the rotten bytes");
}

#[test]
fn misdirected_write_lands_one_sector_away_after_crash() {
    let env = sim(0, FaultOptions::default());
    let old = old_bytes(4 * SECTOR);
    let file = durable_file(&env, "/f", &old);
    let new = new_bytes(SECTOR);
    env.arm(CallKind::Write, Fault::Misdirect { shift_sectors: 1 });
    file.write_all_at(&new, 0).expect("write");
    let mut live = old.clone();
    live[..SECTOR].copy_from_slice(&new);
    assert_eq!(read_via(&file), live, "the cache shows the data where it was written");
    file.sync_data().expect("sync");
    let mut landed = old.clone();
    landed[SECTOR..2 * SECTOR].copy_from_slice(&new);
    assert_eq!(env.durable_contents(path("/f")).expect("path"), Some(landed.clone()));
    drop(file);
    crash_and_restart(&env);
    assert_eq!(read_file(&env, "/f").expect("read"), landed, "the next process sees where it landed");
    let damage = env.damage_at(path("/f")).expect("damage");
    let expected = [(DamageKind::Misdirect, 0..512), (DamageKind::Misdirect, 512..1024)];
    assert_eq!(damage, expected);
    assert_eq!(env.stats().misdirected_writes, 1);
}

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

// ---------------------------------------------------------------------------------------------
// Clocks and listing.

#[test]
fn wall_clock_jumps_backwards_while_monotonic_never_decreases() {
    let options =
        FaultOptions { clock_jump_probability: 1.0, clock_jump_max_ms: 10_000, ..FaultOptions::default() };
    let env = sim(0, options);
    let (mut backwards, mut forwards) = (0, 0);
    let mut monotonic = env.now_monotonic();
    for _ in 0..500 {
        // Clock readings take no virtual time, so two readings in a row differ by one jump.
        let (wall, next_wall) = (env.now_wall(), env.now_wall());
        let jump = match next_wall.duration_since(wall) {
            Ok(forward) => {
                forwards += usize::from(!forward.is_zero());
                forward
            }
            Err(backward) => {
                backwards += 1;
                backward.duration()
            }
        };
        assert!(jump <= Duration::from_millis(10_000), "one reading jumped {jump:?}");
        let next_monotonic = env.now_monotonic();
        assert!(next_monotonic >= monotonic, "the monotonic clock went back");
        monotonic = next_monotonic;
        env.sleep(Duration::from_millis(1));
    }
    assert!(backwards > 0 && forwards > 0, "backwards {backwards}, forwards {forwards}");
    assert!(env.stats().clock_jumps >= 1000);
}

#[test]
fn sleep_advances_monotonic_clock_by_at_least_the_duration() {
    let env = sim(0, FaultOptions::default());
    for duration in
        [Duration::ZERO, Duration::from_nanos(1), Duration::from_millis(1500), Duration::from_secs(3600)]
    {
        let before = env.now_monotonic();
        env.sleep(duration);
        assert!(env.now_monotonic() >= before + duration, "slept {duration:?}");
    }
}

#[test]
fn wall_clock_keeps_running_while_crashed() {
    // Regression: reading the wall clock of a crashed machine returned the Unix epoch.
    let env = sim(0, FaultOptions::default());
    env.sleep(Duration::from_secs(5));
    let before = env.now_wall();
    env.crash();
    assert_eq!(env.now_wall(), before);
    assert!(env.now_monotonic() >= Duration::from_secs(5));
}

#[test]
fn list_dir_is_sorted() {
    let env = sim(0, FaultOptions::default());
    setup_dir(&env);
    for name in ["zeta", "alpha", "Mid", "beta10", "beta2", "_x"] {
        drop(env.open(&path("/d").join(name), OpenOptions::create_new()).expect("create"));
    }
    env.create_dir(path("/d/dir")).expect("create_dir");
    let listed = env.list_dir(path("/d")).expect("list");
    assert_eq!(listed, ["Mid", "_x", "alpha", "beta10", "beta2", "dir", "zeta"]);
}
