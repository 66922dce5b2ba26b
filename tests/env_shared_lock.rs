//! The contract of `Env::lock_dir_shared`, held identically by `OsEnv` and `SimEnv`: shared
//! holders coexist, an exclusive holder and a shared one exclude each other (`WouldBlock`),
//! nothing is created (no `LOCK` file: `Ok(None)`), a missing directory is `NotFound`, and on
//! `SimEnv` a crash releases shared locks as it does exclusive ones.

use std::io::ErrorKind;
use std::path::Path;

use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, LOCK_FILE_NAME, OsEnv};

fn contract<E: Env>(env: &E, dir: &Path) {
    env.create_dir(dir).unwrap();
    assert!(env.lock_dir_shared(dir).unwrap().is_none(), "no LOCK file: nothing to hold");
    assert!(!env.exists(&dir.join(LOCK_FILE_NAME)).unwrap(), "a shared lock creates nothing");
    let exclusive = env.lock_dir(dir).unwrap();
    assert_eq!(env.lock_dir_shared(dir).err().map(|e| e.kind()), Some(ErrorKind::WouldBlock));
    drop(exclusive);
    let first = env.lock_dir_shared(dir).unwrap().expect("LOCK exists now: a shared lock is held");
    let second = env.lock_dir_shared(dir).unwrap().expect("readers coexist");
    assert_eq!(env.lock_dir(dir).err().map(|e| e.kind()), Some(ErrorKind::WouldBlock));
    drop(first);
    assert_eq!(env.lock_dir(dir).err().map(|e| e.kind()), Some(ErrorKind::WouldBlock), "one reader is left");
    drop(second);
    drop(env.lock_dir(dir).expect("every reader is gone"));
    let missing = env.lock_dir_shared(&dir.join("missing"));
    assert_eq!(missing.err().map(|e| e.kind()), Some(ErrorKind::NotFound));
}

#[test]
fn os_env_keeps_the_shared_lock_contract() {
    let temp = tempfile::tempdir().unwrap();
    contract(&OsEnv::new(), &temp.path().join("d"));
}

#[test]
fn sim_env_keeps_the_shared_lock_contract_and_a_crash_releases_it() {
    let env = SimEnv::new(1, FaultOptions::default()).unwrap();
    let dir = Path::new("/d");
    contract(&env, dir);
    env.sync_dir(Path::new("/")).unwrap();
    env.sync_dir(dir).unwrap(); // `/d` and its LOCK survive the crash
    let held = env.lock_dir_shared(dir).unwrap().expect("held");
    env.crash();
    env.restart();
    drop(env.lock_dir(dir).expect("the crash released the shared lock"));
    drop(held); // a guard of the dead process releases nothing
    let reader = env.lock_dir_shared(dir).unwrap().expect("held");
    assert_eq!(env.lock_dir(dir).err().map(|e| e.kind()), Some(ErrorKind::WouldBlock));
    drop(reader);
}
