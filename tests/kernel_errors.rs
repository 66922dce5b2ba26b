//! Typed failure causes through the kernel: a shard's failure carries the error of the layer
//! that raised it (WAL, checkpoint, recovery, epoch, I/O, missing directory, panic) up to
//! `KernelError::Shard`, reachable by `source()` and by typed accessors, never by parsing text.

use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};

use stormhold::checkpoint::RecoveryError;
use stormhold::env::OsEnv;
use stormhold::env::sim::{CallKind, Fault, FaultOptions, SimEnv};
use stormhold::shard::{Failure, FailureCause, ShardError};
use stormhold::wal::WalError;
use stormhold::{Config, Durability, Kernel, KernelError};

/// One shard, and every open returns the kernel (`min_serving_shards(0)`) even when that
/// shard fails, so the tests read its failure from the shard.
fn config() -> Config {
    Config::builder()
        .shards(1)
        .segment_size_bytes(64 * 1024)
        .min_serving_shards(0)
        .build()
        .expect("valid config")
}

/// Every error in `error`'s `source()` chain, itself first.
fn chain<'a>(error: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&e| e.source()).collect()
}

fn only_segment(wal_dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments.pop().unwrap()
}

#[test]
fn damage_to_a_vouched_for_wal_record_is_typed_corruption_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Kernel::open(OsEnv::new(), dir.path(), config()).unwrap();
    // Each Data commit syncs, so the second record's durable_lsn vouches for the first.
    kernel.put(b"first", b"1", Durability::Data).unwrap();
    kernel.put(b"second", b"2", Durability::Data).unwrap();
    drop(kernel);
    let segment = only_segment(&dir.path().join("shard-0000/wal"));
    let mut bytes = std::fs::read(&segment).unwrap();
    // The first record starts right after the segment header's sector; flip a payload byte.
    let (record, payload) = (4096_usize, 4096 + 56);
    bytes[payload] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();

    let kernel = Kernel::open(OsEnv::new(), dir.path(), config()).unwrap();
    let error = kernel.get(b"first").unwrap_err();

    // The typed accessor.
    let (shard, path, offset, lsn) = error.wal_corruption().expect("WAL corruption");
    assert_eq!((shard, path, offset, lsn), (0, segment.as_path(), record as u64, 1), "{error}");

    // The source chain: KernelError -> ShardError -> Failure -> RecoveryError -> WalError.
    let links = chain(&error);
    assert!(links[1].downcast_ref::<ShardError>().is_some(), "{links:?}");
    let failure = links[2].downcast_ref::<Failure>().expect("the shard's failure");
    assert!(failure.data_loss);
    assert!(matches!(&failure.cause, FailureCause::Recovery(_)), "{failure:?}");
    assert!(links[3].downcast_ref::<RecoveryError>().is_some(), "{links:?}");
    let wal = links[4].downcast_ref::<WalError>().expect("the WAL's own error");
    match wal {
        WalError::Corruption { path, offset, lsn, .. } => {
            assert_eq!((path, offset, lsn), (&segment, &(record as u64), &1));
        }
        other => panic!("not corruption: {other:?}"),
    }
    // The text still names the file and offset.
    let text = error.to_string();
    assert!(text.contains(&segment.display().to_string()) && text.contains("offset 4096"), "{text}");
}

#[test]
fn a_failed_sync_is_a_typed_wal_cause_down_to_the_os_error_and_stays_the_same() {
    let env = SimEnv::new(5, FaultOptions::default()).unwrap();
    let kernel = Kernel::open(env.clone(), Path::new("/k"), config()).unwrap();
    kernel.put(b"a", b"1", Durability::None).unwrap();
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 2 });
    let error = kernel.put(b"a", b"2", Durability::Data).unwrap_err();
    let (_, failure) = error.shard_failure().expect("a shard failure");
    assert_eq!(failure.context, "sync");
    assert!(!failure.data_loss);
    let wal = failure.cause.wal_error().expect("a WAL cause");
    assert!(matches!(wal, WalError::Io { .. }), "{wal:?}");
    assert!(error.wal_corruption().is_none(), "a failed sync is no corruption");
    let links = chain(&error);
    assert!(links.iter().any(|e| e.downcast_ref::<WalError>().is_some()), "{links:?}");
    assert!(links.last().unwrap().downcast_ref::<io::Error>().is_some(), "{links:?}");
    // Sticky: every later operation reports the same failure.
    let later = kernel.get(b"a").unwrap_err();
    assert_eq!(later.shard_failure().map(|(_, f)| f), Some(failure));
}

#[test]
fn a_missing_shard_directory_is_a_typed_data_loss_cause() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Kernel::open(OsEnv::new(), dir.path(), config()).unwrap();
    kernel.put(b"k", b"v", Durability::Data).unwrap();
    drop(kernel);
    let shard_dir = dir.path().join("shard-0000");
    std::fs::remove_dir_all(&shard_dir).unwrap();
    let kernel = Kernel::open(OsEnv::new(), dir.path(), config()).unwrap();
    let error = kernel.get(b"k").unwrap_err();
    let (shard, failure) = error.shard_failure().expect("a shard failure");
    assert_eq!(shard, 0);
    assert!(failure.data_loss);
    assert_eq!(failure.cause, FailureCause::MissingDirectory { path: shard_dir.clone() });
    assert!(failure.source().is_none(), "nothing below a missing directory");
    assert!(matches!(error, KernelError::Shard { error: ShardError::Failed { .. }, .. }));
    assert!(error.to_string().contains(&format!("{} is missing", shard_dir.display())), "{error}");
}
