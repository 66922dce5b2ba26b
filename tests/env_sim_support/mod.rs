//! Helpers shared by the `SimEnv` fault tests (`tests/env_sim_*.rs`): a seeded disk, write-fate
//! and tear-fill weights, recognisable old and new bytes, a durable file to damage, reads that
//! bypass a handle, and assertions on the kind of an error.
//!
//! Each test file uses a subset of these.
#![allow(dead_code)]

use std::io;
use std::ops::Range;
use std::path::Path;

use stormhold::env::sim::{FaultOptions, SimEnv, SimFile, TearFillWeights, WriteFateWeights, is_crash};
use stormhold::env::{Env, EnvFile, OpenOptions};

pub const SEEDS: Range<u64> = 0..200;
pub const SECTOR: usize = 512;

pub fn sim(seed: u64, options: FaultOptions) -> SimEnv {
    SimEnv::new(seed, options).expect("valid fault options")
}

pub fn path(text: &str) -> &Path {
    Path::new(text)
}

pub fn fate(survive: u32, lose: u32, tear: u32) -> WriteFateWeights {
    WriteFateWeights { survive, lose, tear }
}

pub fn fill(old: u32, zero: u32, garbage: u32) -> TearFillWeights {
    TearFillWeights { old, zero, garbage }
}

pub fn with_fate(write_fate: WriteFateWeights) -> FaultOptions {
    FaultOptions { write_fate, ..FaultOptions::default() }
}

/// Bytes 0x80..=0xBF: never zero and never equal to [`new_bytes`] at the same index.
pub fn old_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0x80 | (i % 64) as u8).collect()
}

/// Bytes 0x40..=0x7F.
pub fn new_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0x40 | (i % 64) as u8).collect()
}

/// Creates the file `name` holding `bytes`, with its data and its directory entry durable.
pub fn durable_file(env: &SimEnv, name: &str, bytes: &[u8]) -> SimFile {
    let file = env.open(path(name), OpenOptions::create()).expect("open");
    file.write_all_at(bytes, 0).expect("write");
    file.sync_data().expect("sync_data");
    env.sync_dir(path(name).parent().expect("a parent")).expect("sync_dir");
    assert_eq!(env.durable_contents(path(name)).expect("path").as_deref(), Some(bytes));
    file
}

/// The whole file, as a new handle reads it.
pub fn read_file(env: &SimEnv, name: &str) -> io::Result<Vec<u8>> {
    let file = env.open(path(name), OpenOptions::read_only())?;
    let mut buf = vec![0; file.len()? as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

pub fn read_via(file: &SimFile) -> Vec<u8> {
    let mut buf = vec![0; file.len().expect("len") as usize];
    file.read_exact_at(&mut buf, 0).expect("read");
    buf
}

pub fn crash_and_restart(env: &SimEnv) {
    env.crash();
    assert!(env.is_crashed());
    env.restart();
    assert!(!env.is_crashed());
}

pub fn assert_eio(result: io::Result<impl std::fmt::Debug>) {
    let error = result.expect_err("the call must fail");
    assert!(!is_crash(&error), "an injected I/O error is not a crash: {error}");
}

pub fn assert_crash(result: io::Result<impl std::fmt::Debug>) {
    let error = result.expect_err("the call must fail");
    assert!(is_crash(&error), "expected a crash error, got {error}");
}

/// Creates the directory `/d`, its entry durable.
pub fn setup_dir(env: &SimEnv) {
    env.create_dir(path("/d")).expect("create_dir");
    env.sync_dir(path("/")).expect("sync_dir /");
}
