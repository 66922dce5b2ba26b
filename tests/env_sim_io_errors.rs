//! `SimEnv` I/O errors that are not crashes: a full disk, transient and persistent errors,
//! short reads and writes.
//!
//! Where an outcome is random, a test loops over many seeds, checks the invariant for every
//! one, and also checks that each interesting outcome occurred, so it cannot pass vacuously.
//! Together the `env_sim_*.rs` files pin the exact effect of each `SimEnv` fault on bytes,
//! directory entries, handles and clocks, so that a change to the fault model fails there
//! instead of silently changing which crash images the checker sees.

mod env_sim_support;

use std::io;

use stormhold::env::sim::{CallKind, Fault, FaultOptions};
use stormhold::env::{Env, EnvFile, OpenOptions};

use env_sim_support::*;

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
