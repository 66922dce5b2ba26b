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

/// Opens even when every shard fails, to look at each shard's failure.
fn open_lenient(dir: &Path) -> Kernel<OsEnv> {
    let config = Config::builder().shards(2).segment_size_bytes(64 * 1024).min_serving_shards(0).build();
    Kernel::open(OsEnv::new(), dir, config.expect("valid config")).expect("open")
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
    let Err(refused) = open(dir.path()) else { panic!("with every shard failed the default open refuses") };
    assert!(matches!(refused, KernelError::TooFewShardsServing { serving: 0, .. }), "{refused}");
    let kernel = open_lenient(dir.path());
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

fn checkpointed(dir: &Path, checkpoints: u32) {
    let kernel = open(dir).expect("create");
    for round in 0..checkpoints {
        for i in 0u32..20 {
            let value = (round * 100 + i).to_le_bytes();
            kernel.put(format!("key-{i:04}").as_bytes(), &value, Durability::Data).unwrap();
        }
        kernel.checkpoint().unwrap();
    }
    kernel.close().unwrap();
}

fn ckpt_dir(dir: &Path, shard: u32) -> PathBuf {
    dir.join(format!("shard-{shard:04}")).join("ckpt")
}

fn swap_dirs(a: &Path, b: &Path) {
    let tmp = a.with_extension("swap");
    fs::rename(a, &tmp).unwrap();
    fs::rename(b, a).unwrap();
    fs::rename(&tmp, b).unwrap();
}

fn foreign_path(failure: &stormhold::Failure) -> PathBuf {
    use stormhold::checkpoint::CheckpointError;
    let cause =
        failure.cause.checkpoint_error().unwrap_or_else(|| panic!("not a checkpoint cause: {failure}"));
    match cause {
        CheckpointError::Foreign { path, found, expected, .. } => {
            assert_eq!(found.store_id, expected.store_id, "the same store: {failure}");
            assert_ne!(found.shard, expected.shard, "another shard: {failure}");
            path.clone()
        }
        other => panic!("not a foreign file: {other}"),
    }
}

/// Every read of shard `shard` is refused: nothing is served from the wrong shard.
fn serves_nothing(kernel: &Kernel<OsEnv>, shard: u32) {
    for i in 0u32..20 {
        let key = format!("key-{i:04}");
        if kernel.shard_of(key.as_bytes()) == shard {
            assert!(kernel.get(key.as_bytes()).is_err(), "{key} is served from shard {shard}");
        }
    }
    assert!(kernel.scan(b"".to_vec()..b"\xff".to_vec()).is_err(), "scan serves a failed shard");
}

// Bug pinned (issue 13 case 3): checkpoint directories swapped between shards (same names)
// were loaded, so a shard served keys that route elsewhere. META now carries the store and
// shard (format version 2) and a swapped one refuses the open, naming the file.
#[test]
fn a_checkpoint_directory_swapped_between_shards_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    checkpointed(dir.path(), 1);
    let name = "ckpt-0000000000000001";
    let (zero, one) = (ckpt_dir(dir.path(), 0).join(name), ckpt_dir(dir.path(), 1).join(name));
    swap_dirs(&zero, &one);
    let kernel = open_lenient(dir.path());
    for (shard, status) in kernel.shard_status().iter().enumerate() {
        let failure =
            status.failed.as_ref().unwrap_or_else(|| panic!("shard {shard} serves a foreign checkpoint"));
        assert!(failure.data_loss, "{failure}");
        let meta = ckpt_dir(dir.path(), shard as u32).join(name).join("META");
        assert_eq!(foreign_path(failure), meta, "the error names the file: {failure}");
        assert!(failure.to_string().contains(&format!("shard {}", 1 - shard)), "{failure}");
        serves_nothing(&kernel, shard as u32);
    }
}

// The same with the whole checkpoint store swapped: its HIGH_WATER (written when the open
// removed the newest, partial, checkpoint directory) is checked first and named.
#[test]
fn a_checkpoint_store_swapped_between_shards_is_refused_naming_its_high_water() {
    let dir = tempfile::tempdir().unwrap();
    checkpointed(dir.path(), 1);
    for shard in 0..2 {
        fs::create_dir(ckpt_dir(dir.path(), shard).join("ckpt-0000000000000002")).unwrap();
    }
    open(dir.path()).expect("open removes the partial directories").close().unwrap();
    assert!(ckpt_dir(dir.path(), 0).join("HIGH_WATER").exists(), "the open wrote HIGH_WATER");
    swap_dirs(&ckpt_dir(dir.path(), 0), &ckpt_dir(dir.path(), 1));
    let kernel = open_lenient(dir.path());
    for (shard, status) in kernel.shard_status().iter().enumerate() {
        let failure =
            status.failed.as_ref().unwrap_or_else(|| panic!("shard {shard} serves a foreign store"));
        let high_water = ckpt_dir(dir.path(), shard as u32).join("HIGH_WATER");
        assert_eq!(foreign_path(failure), high_water, "the error names the file: {failure}");
        serves_nothing(&kernel, shard as u32);
    }
}

// A META of format version 1 (no identity, as stores before rule 14 wrote it) still opens.
#[test]
fn a_checkpoint_meta_of_format_version_one_still_opens() {
    use stormhold::checkpoint::format;
    let dir = tempfile::tempdir().unwrap();
    checkpointed(dir.path(), 1);
    let meta_path = ckpt_dir(dir.path(), 1).join("ckpt-0000000000000001").join("META");
    let (meta, place) = format::decode_meta(&fs::read(&meta_path).unwrap()).unwrap();
    assert_eq!(place.map(|p| p.shard), Some(1), "version 2 names the shard");
    fs::write(&meta_path, format::encode_meta(&meta, None).unwrap()).unwrap();
    let kernel = open(dir.path()).expect("open");
    assert!(kernel.shard_status().iter().all(|s| s.failed.is_none()), "{:?}", kernel.shard_status());
    assert_eq!(kernel.shard_status()[1].last_checkpoint, Some(1));
    for i in 0u32..20 {
        assert_eq!(kernel.get(format!("key-{i:04}").as_bytes()).unwrap(), Some(i.to_le_bytes().to_vec()));
    }
}
