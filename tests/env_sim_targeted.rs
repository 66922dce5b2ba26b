//! Targeted media faults of `SimEnv` (`FaultOptions::targeted`): rot, bad sectors and
//! misdirected writes aimed at regions chosen by file name and by the simulator's own record
//! of writes and syncs. Each test would fail if the faults hit untargeted places (which the
//! untargeted classes do about half the time with two files).

use std::path::Path;

use stormhold::env::sim::{
    DamageKind, DamageRole, Fault, FaultOptions, MediaTarget, SimEnv, TargetRegion, TargetedFaults,
    TargetedWeights,
};
use stormhold::env::{Env, EnvFile, OpenOptions};

fn path(text: &str) -> &Path {
    Path::new(text)
}

fn target(prefix: &str, suffix: &str, region: TargetRegion) -> MediaTarget {
    MediaTarget { name_prefix: prefix.to_owned(), name_suffix: suffix.to_owned(), region }
}

fn targeted(weights: TargetedWeights, targets: Vec<MediaTarget>) -> FaultOptions {
    FaultOptions {
        media_faults_max: u32::MAX,
        targeted: TargetedFaults { probability: 1.0, weights, targets },
        ..FaultOptions::default()
    }
}

const ROT: TargetedWeights = TargetedWeights { bit_rot: 1, misdirect: 0, bad_sector: 0 };
const BAD: TargetedWeights = TargetedWeights { bit_rot: 0, misdirect: 0, bad_sector: 1 };
const MISDIRECT: TargetedWeights = TargetedWeights { bit_rot: 0, misdirect: 1, bad_sector: 0 };

/// `/d/name` holding `len` bytes durably, with faults off while it is made.
fn durable(env: &SimEnv, name: &str, len: usize) {
    env.set_faults_enabled(false);
    if !env.exists(path("/d")).expect("exists") {
        env.create_dir(path("/d")).expect("mkdir");
        env.sync_dir(path("/")).expect("sync /");
    }
    let file = env.open(path(&format!("/d/{name}")), OpenOptions::create()).expect("create");
    file.write_all_at(&vec![0x55; len], 0).expect("write");
    file.sync_data().expect("sync");
    env.sync_dir(path("/d")).expect("sync dir");
    env.set_faults_enabled(true);
}

/// Makes `calls` harmless calls, each of which draws faults.
fn tick(env: &SimEnv, calls: usize) {
    for _ in 0..calls {
        env.exists(path("/d")).expect("exists");
    }
}

#[test]
fn targeted_rot_hits_only_files_the_targets_name() {
    let env = SimEnv::new(1, targeted(ROT, vec![target("", "META", TargetRegion::Whole)])).expect("valid");
    durable(&env, "META", 300);
    durable(&env, "DATA", 8000);
    tick(&env, 50);
    let log = env.damage_log();
    assert!(log.len() >= 50, "every call rotted a bit: {}", log.len());
    for damage in &log {
        assert_eq!((damage.kind, damage.role, damage.targeted), (DamageKind::BitRot, DamageRole::Hit, true));
        assert_eq!(damage.path, path("/d/META"));
        assert!(damage.offset < 300 && damage.len == 1, "{damage:?}");
    }
    assert_eq!(env.durable_contents(path("/d/DATA")).expect("path"), Some(vec![0x55; 8000]));
    let stats = env.stats();
    assert_eq!((stats.bit_rot, stats.targeted_media), (log.len() as u64, log.len() as u64));
}

#[test]
fn a_byte_range_target_is_hit_inside_the_range_only() {
    let header = target("wal-", ".log", TargetRegion::Bytes { start: 0, end: 32 });
    let env = SimEnv::new(2, targeted(ROT, vec![header])).expect("valid");
    durable(&env, "wal-1.log", 8192);
    durable(&env, "wal-1.tmp", 8192);
    tick(&env, 40);
    let log = env.damage_log();
    assert!(!log.is_empty());
    assert!(log.iter().all(|d| d.path == path("/d/wal-1.log") && d.offset < 32), "{log:?}");
}

#[test]
fn last_synced_write_is_the_last_write_before_the_last_successful_sync() {
    let env =
        SimEnv::new(3, targeted(ROT, vec![target("", "", TargetRegion::LastSyncedWrite)])).expect("valid");
    env.set_faults_enabled(false);
    env.create_dir(path("/d")).expect("mkdir");
    let log_file = env.open(path("/d/log"), OpenOptions::create()).expect("create");
    tick(&env, 0);
    for record in 0..3u64 {
        log_file.write_all_at(&[record as u8 + 1; 100], record * 100).expect("write");
    }
    log_file.sync_data().expect("sync");
    log_file.write_all_at(&[9; 100], 300).expect("an unsynced write is not the last durable one");
    env.set_faults_enabled(true);
    tick(&env, 30);
    let first = env.damage_log();
    assert!(!first.is_empty());
    assert!(first.iter().all(|d| (200..300).contains(&d.offset)), "{first:?}");

    env.set_faults_enabled(false);
    log_file.sync_data().expect("sync the fourth record");
    env.set_faults_enabled(true);
    tick(&env, 30);
    let second = &env.damage_log()[first.len()..];
    assert!(!second.is_empty());
    assert!(second.iter().all(|d| (300..400).contains(&d.offset)), "{second:?}");
}

#[test]
fn a_file_never_synced_has_no_last_synced_write_to_hit() {
    let env =
        SimEnv::new(4, targeted(ROT, vec![target("", "", TargetRegion::LastSyncedWrite)])).expect("valid");
    env.create_dir(path("/d")).expect("mkdir");
    let file = env.open(path("/d/f"), OpenOptions::create()).expect("create");
    file.write_all_at(&[1; 64], 0).expect("write");
    tick(&env, 20);
    assert!(env.damage_log().is_empty());
    assert_eq!(env.stats().targeted_media, 0, "a fault that finds nothing is not counted");
}

#[test]
fn targeted_bad_sectors_cover_a_sector_of_the_region() {
    let env = SimEnv::new(
        5,
        targeted(BAD, vec![target("", "META", TargetRegion::Bytes { start: 4096, end: 4128 })]),
    )
    .expect("valid");
    durable(&env, "META", 16384);
    tick(&env, 5);
    let log = env.damage_log();
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|d| d.kind == DamageKind::BadSector && (d.offset, d.len) == (4096, 512)),
        "{log:?}"
    );
    env.set_faults_enabled(false);
    let file = env.open(path("/d/META"), OpenOptions::read_only()).expect("open");
    let mut buf = [0; 64];
    assert!(file.read_at(&mut buf, 4100).is_err(), "the bad sector fails reads");
    assert_eq!(file.read_at(&mut buf, 0).expect("other sectors read"), 64);
}

#[test]
fn targeted_misdirects_move_only_writes_into_a_target() {
    let env =
        SimEnv::new(6, targeted(MISDIRECT, vec![target("", "META", TargetRegion::Whole)])).expect("valid");
    env.create_dir(path("/d")).expect("mkdir");
    env.sync_dir(path("/")).expect("sync /");
    let meta = env.open(path("/d/META"), OpenOptions::create()).expect("meta");
    let data = env.open(path("/d/DATA"), OpenOptions::create()).expect("data");
    for round in 0..8u64 {
        meta.write_all_at(&[round as u8 + 1; 512], round * 512).expect("write meta");
        data.write_all_at(&[round as u8 + 1; 512], round * 512).expect("write data");
    }
    data.sync_data().expect("sync data");
    meta.sync_data().expect("sync meta");
    env.sync_dir(path("/d")).expect("sync dir");
    let log = env.damage_log();
    assert_eq!(log.len(), 16, "every META write misdirected, as an intended and a landed range");
    assert!(log.iter().all(|d| d.path == path("/d/META") && d.kind == DamageKind::Misdirect));
    assert_eq!(log.iter().filter(|d| d.role == DamageRole::Landed).count(), 8);
    let written: Vec<u8> = (0..8u8).flat_map(|round| vec![round + 1; 512]).collect();
    assert_eq!(env.durable_contents(path("/d/DATA")).expect("path"), Some(written.clone()));
    assert_ne!(env.durable_contents(path("/d/META")).expect("path"), Some(written));
    assert_eq!(env.stats().misdirected_writes, 8);
}

#[test]
fn targeted_faults_share_the_media_budget_and_replay_exactly() {
    let mut options = targeted(
        TargetedWeights { bit_rot: 1, misdirect: 1, bad_sector: 1 },
        vec![target("", "META", TargetRegion::Whole)],
    );
    options.media_faults_max = 3;
    options.targeted.probability = 0.3;
    let run = |env: &SimEnv| {
        durable(env, "META", 4096);
        let file = env.open(path("/d/META"), OpenOptions::read_write()).expect("open");
        for round in 0..40u64 {
            let _ = file.write_all_at(&[round as u8; 100], round * 50);
        }
        let _ = file.sync_data();
    };
    let env = SimEnv::new(8, options.clone()).expect("valid");
    run(&env);
    assert_eq!(env.stats().targeted_media, 3, "the budget bounds targeted faults too");
    let schedule = env.schedule();
    assert!(schedule.faults.iter().any(|f| matches!(
        f.fault,
        Fault::TargetedRot { .. } | Fault::TargetedBadSector { .. } | Fault::TargetedMisdirect { .. }
    )));
    let replay = SimEnv::replaying(8, options, schedule).expect("valid");
    run(&replay);
    assert_eq!(replay.trace_hash(), env.trace_hash());
    assert_eq!(replay.damage_log(), env.damage_log());
}

#[test]
fn invalid_targets_are_refused() {
    let empty = target("", "", TargetRegion::Bytes { start: 8, end: 8 });
    let error = SimEnv::new(0, targeted(ROT, vec![empty])).expect_err("an empty range");
    assert_eq!(error.field, "targeted.targets");
    let none = TargetedWeights { bit_rot: 0, misdirect: 0, bad_sector: 0 };
    let error = SimEnv::new(0, targeted(none, Vec::new())).expect_err("no kind can be drawn");
    assert_eq!(error.field, "targeted.weights");
}
