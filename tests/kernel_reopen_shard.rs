//! `Kernel::reopen_shard` (issue 14 item 6): a shard whose recovery failed at open with an
//! I/O error is recovered again in the same process while the others serve, with everything
//! it held; a shard in which a sync failed, or that failed while serving, is refused with a
//! typed reason (fsyncgate: the retry is a new process).

use std::path::Path;

use stormhold::env::sim::{CallKind, Fault, FaultOptions, SimEnv};
use stormhold::{Config, Durability, Kernel, KernelError, ReopenRefusal};

const DIR: &str = "/store";

fn config() -> Config {
    let builder = Config::for_simulation().shards(2).router(stormhold::Router::Prefix { len_bytes: 1 });
    builder.min_serving_shards(1).build().expect("valid config")
}

/// A kernel of two shards holding `a1` (shard of `a`) and `b1`, durable, closed.
fn populated() -> SimEnv {
    let env = SimEnv::new(11, FaultOptions::default()).expect("valid options");
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("open");
    kernel.put(b"a1", b"one", Durability::Data).expect("put");
    kernel.put(b"b1", b"two", Durability::Data).expect("put");
    let a_shard = kernel.shard_of(b"a1");
    assert_ne!(a_shard, kernel.shard_of(b"b1"), "the keys live in different shards");
    kernel.close().expect("close");
    env
}

/// Opens with the next call of `kind` failing as `fault`; returns the kernel and the shard
/// that failed at open.
fn open_with(env: &SimEnv, kind: CallKind, fault: Fault) -> (Kernel<SimEnv>, u32) {
    env.arm(kind, fault);
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("one shard serves");
    let failed: Vec<u32> =
        kernel.shard_status().iter().filter(|s| s.failed.is_some()).map(|s| s.shard).collect();
    let [shard] = failed[..] else { panic!("exactly one shard failed at open: {failed:?}") };
    (kernel, shard)
}

fn key_of(kernel: &Kernel<SimEnv>, shard: u32) -> &'static [u8] {
    if kernel.shard_of(b"a1") == shard { b"a1" } else { b"b1" }
}

#[test]
fn a_shard_whose_recovery_failed_with_an_io_error_is_reopened_with_everything_it_held() {
    let env = populated();
    let (mut kernel, shard) = open_with(&env, CallKind::Exists, Fault::IoError { persistent: false });
    let failure = kernel.shard_status()[shard as usize].failed.clone().expect("failed");
    assert!(!failure.data_loss && !failure.after_failed_sync(), "{failure}");
    let key = key_of(&kernel, shard);
    assert!(kernel.get(key).is_err(), "the failed shard serves nothing");
    let other = if key == b"a1" { b"b1" } else { b"a1" };
    assert!(kernel.get(other).expect("the other shard serves").is_some());
    kernel.reopen_shard(shard).expect("the recovery is retried");
    assert!(kernel.shard_status().iter().all(|s| s.failed.is_none()), "every shard serves");
    assert!(kernel.recovery_reports()[shard as usize].is_some(), "it reports its new recovery");
    let expected = if key == b"a1" { b"one".to_vec() } else { b"two".to_vec() };
    assert_eq!(kernel.get(key).expect("get"), Some(expected), "it holds what it held");
    kernel.put(key, b"three", Durability::Data).expect("and takes writes");
    kernel.reopen_shard(shard).expect("a serving shard: nothing to do");
    kernel.close().expect("close");
    let kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("open");
    assert_eq!(
        kernel.get(key).expect("get"),
        Some(b"three".to_vec()),
        "the write after the reopen is durable"
    );
}

#[test]
fn a_shard_whose_recovery_hit_a_failed_sync_is_refused() {
    let env = populated();
    let (mut kernel, shard) = open_with(&env, CallKind::SyncFile, Fault::SyncFailure { image_seed: 3 });
    let error = kernel.reopen_shard(shard).expect_err("refused");
    match &error {
        KernelError::ReopenRefused { shard: refused, reason: ReopenRefusal::AfterFailedSync, failure } => {
            assert_eq!(*refused, shard);
            assert!(failure.after_failed_sync(), "{failure}");
        }
        other => panic!("expected a refusal after a failed sync, got {other}"),
    }
    assert!(error.to_string().contains("fsyncgate"), "{error}");
    assert!(kernel.shard_status()[shard as usize].failed.is_some(), "the shard stays failed");
}

#[test]
fn a_shard_that_failed_while_serving_is_refused() {
    let env = populated();
    let mut kernel = Kernel::open(env.clone(), Path::new(DIR), config()).expect("open");
    env.arm(CallKind::Write, Fault::IoError { persistent: false });
    assert!(kernel.put(b"a2", b"x", Durability::Data).is_err(), "the append fails");
    let shard = kernel.shard_of(b"a2");
    let error = kernel.reopen_shard(shard).expect_err("refused");
    assert!(
        matches!(error, KernelError::ReopenRefused { reason: ReopenRefusal::FailedWhileServing, .. }),
        "{error}"
    );
    assert!(matches!(kernel.reopen_shard(7), Err(KernelError::InvalidInput(_))), "no shard 7");
}
