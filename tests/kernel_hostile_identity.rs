//! Every file knows its place (issue 13, DESIGN.md rule 14): WAL segments carry the store's
//! id, shard index and shard count, so a segment swapped in from another shard or store is
//! refused by name; `KERNEL` carries the store id, and an old format version is named.

use std::fs;
use std::path::{Path, PathBuf};

use stormhold::env::OsEnv;
use stormhold::{Config, Durability, Kernel, KernelError};

fn config() -> Config {
    Config::builder().shards(2).segment_size_bytes(64 * 1024).build().expect("valid config")
}

fn open(dir: &Path) -> Result<Kernel<OsEnv>, KernelError> {
    Kernel::open(OsEnv::new(), dir, config())
}

fn populated(dir: &Path) {
    let kernel = open(dir).expect("create");
    for i in 0u32..40 {
        kernel.put(format!("key-{i:04}").as_bytes(), &i.to_le_bytes(), Durability::Data).unwrap();
    }
    kernel.close().unwrap();
}

fn segment(dir: &Path, shard: u32) -> PathBuf {
    let wal = dir.join(format!("shard-{shard:04}")).join("wal");
    fs::read_dir(wal).unwrap().map(|e| e.unwrap().path()).max().unwrap()
}

// Bug pinned: WAL segments swapped between shards (same file names) were replayed, so a shard
// served keys that route elsewhere and `scan` returned one key twice.
#[test]
fn a_segment_swapped_between_shards_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    let (zero, one) = (segment(dir.path(), 0), segment(dir.path(), 1));
    assert_eq!(zero.file_name(), one.file_name(), "the same name in both shards");
    let (a, b) = (fs::read(&zero).unwrap(), fs::read(&one).unwrap());
    fs::write(&zero, b).unwrap();
    fs::write(&one, a).unwrap();
    let kernel = open(dir.path()).expect("open");
    for (shard, status) in kernel.shard_status().iter().enumerate() {
        let failure =
            status.failed.as_ref().unwrap_or_else(|| panic!("shard {shard} serves a foreign segment"));
        assert!(failure.data_loss, "{failure}");
        let (path, offset, _) = failure.wal_corruption().expect("a typed WAL corruption cause");
        assert_eq!(path, segment(dir.path(), shard as u32), "the error names the file: {failure}");
        assert_eq!(offset, 0, "the segment header is at offset 0: {failure}");
        assert!(failure.to_string().contains("belongs to store"), "{failure}");
        assert!(failure.to_string().contains(&format!("shard {}", 1 - shard)), "{failure}");
    }
}

// The same class: a segment from another store (same shard count and shard, another id).
#[test]
fn a_segment_from_another_store_is_refused_by_name() {
    let (mine, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    populated(mine.path());
    populated(theirs.path());
    fs::copy(segment(theirs.path(), 1), segment(mine.path(), 1)).unwrap();
    let kernel = open(mine.path()).expect("open");
    assert!(kernel.shard_status()[0].failed.is_none());
    let failure = kernel.shard_status()[1].failed.clone().expect("shard 1 refuses the foreign segment");
    assert!(failure.data_loss, "{failure}");
    assert!(failure.wal_corruption().is_some(), "a typed WAL corruption cause: {failure}");
    assert!(failure.to_string().contains("belongs to store"), "{failure}");
}

// A KERNEL file of format version 1 (no store id) is refused with its version named.
#[test]
fn a_kernel_file_of_format_version_one_is_refused_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    let mut v1 = [0u8; 25];
    v1[0..8].copy_from_slice(b"STRMHOLD");
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    v1[12..16].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&v1[..21]);
    v1[21..25].copy_from_slice(&crc.to_le_bytes());
    fs::write(dir.path().join("KERNEL"), v1).unwrap();
    match open(dir.path()) {
        Err(KernelError::Corrupt { offset: 8, detail, .. }) => {
            assert!(detail.contains("version 1"), "{detail}")
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a version 1 KERNEL opened"),
    }
}
