//! The damage record of `SimEnv` (`SimEnv::damage_log`): every injected media fault names the
//! file, byte range, kind and call it hit, and the record survives crashes of both kinds, so a
//! checker can tell a legal data-loss report from an illegal one.

use std::path::Path;

use stormhold::env::sim::{CallKind, CrashKind, DamageKind, DamageRole, Fault, FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};

fn path(text: &str) -> &Path {
    Path::new(text)
}

fn options() -> FaultOptions {
    FaultOptions { media_faults_max: u32::MAX, ..FaultOptions::default() }
}

#[test]
fn each_media_fault_records_its_file_range_kind_and_call() {
    let env = SimEnv::new(1, options()).expect("valid");
    env.create_dir(path("/d")).expect("mkdir");
    env.sync_dir(path("/")).expect("sync /");
    let file = env.open(path("/d/f"), OpenOptions::create()).expect("create");
    file.write_all_at(&[7; 2048], 0).expect("write");
    file.sync_data().expect("sync");
    env.sync_dir(path("/d")).expect("sync dir");

    env.arm(CallKind::Exists, Fault::BitRot { pick: 5 });
    env.exists(path("/d")).expect("exists");
    let rot_call = env.trace_tail().last().expect("an event").call;
    env.arm(CallKind::Exists, Fault::BadSector { pick: 3 });
    env.exists(path("/d")).expect("exists");
    env.arm(CallKind::Write, Fault::Misdirect { shift_sectors: 2 });
    file.write_all_at(&[9; 100], 0).expect("write");

    let log = env.damage_log();
    assert_eq!(log.len(), 4, "{log:?}");
    let (rot, bad, intended, landed) = (&log[0], &log[1], &log[2], &log[3]);
    assert_eq!((rot.kind, rot.role, rot.offset, rot.len), (DamageKind::BitRot, DamageRole::Hit, 5, 1));
    assert_eq!(rot.at_call, rot_call);
    assert_eq!(rot.path, path("/d/f"));
    assert!(!rot.targeted);
    assert_eq!((bad.kind, bad.offset, bad.len), (DamageKind::BadSector, 3 * 512, 512));
    assert_eq!(bad.at_call, rot_call + 1);
    assert_eq!(
        (intended.kind, intended.role, intended.range()),
        (DamageKind::Misdirect, DamageRole::Intended, 0..100)
    );
    assert_eq!((landed.role, landed.range()), (DamageRole::Landed, 1024..1124));
    let mut durable = vec![7; 2048];
    durable[5] ^= 1;
    assert_eq!(
        env.durable_contents(path("/d/f")).expect("path"),
        Some(durable),
        "the rot is where the log says"
    );
}

#[test]
fn the_record_survives_crashes_restarts_and_renames() {
    let env = SimEnv::new(2, options()).expect("valid");
    env.create_dir(path("/d")).expect("mkdir");
    let file = env.open(path("/d/META.tmp"), OpenOptions::create()).expect("create");
    file.write_all_at(&[1; 512], 0).expect("write");
    file.sync_data().expect("sync");
    env.sync_dir(path("/d")).expect("sync dir");
    env.arm(CallKind::Exists, Fault::BitRot { pick: 0 });
    env.exists(path("/d")).expect("exists");
    env.rename(path("/d/META.tmp"), path("/d/META")).expect("rename");
    env.sync_dir(path("/d")).expect("sync dir");
    let before = env.damage_log();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].path, path("/d/META.tmp"), "the path when the damage was done");

    env.crash_with(CrashKind::Process);
    env.restart();
    assert_eq!(env.damage_log(), before);
    env.crash_with(CrashKind::Machine);
    env.restart();
    assert_eq!(env.damage_log(), before);
    let at_new_name = env.damage_at(path("/d/META")).expect("path");
    assert_eq!(at_new_name, vec![(DamageKind::BitRot, 0..1)], "damage_at follows the file");
    let fork = env.fork();
    assert_eq!(fork.damage_log(), before, "forks carry the record");
}
