//! `SimEnv` directory operations at a crash: unsynced creates, renames and removes may be
//! undone, synced ones survive, ordered directories keep a prefix and independent ones any
//! subset; a listing is sorted.
//!
//! Where an outcome is random, a test loops over many seeds, checks the invariant for every
//! one, and also checks that each interesting outcome occurred, so it cannot pass vacuously.
//! Together the `env_sim_*.rs` files pin the exact effect of each `SimEnv` fault on bytes,
//! directory entries, handles and clocks, so that a change to the fault model fails there
//! instead of silently changing which crash images the checker sees.

mod env_sim_support;

use stormhold::env::sim::{DirOrdering, FaultOptions};
use stormhold::env::{Env, EnvFile, OpenOptions};

use env_sim_support::*;

// ---------------------------------------------------------------------------------------------
// Directory operations.

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
