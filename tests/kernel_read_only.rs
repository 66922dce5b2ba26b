//! `Kernel::open_read_only`: reads a store without writing a byte, on the real OS (a
//! directory made read-only, and an `Env` that fails every mutating call) and on `SimEnv`
//! (the disk image and the calls that reach it); refuses writes with `KernelError::ReadOnly`;
//! shares the directory with other readers and not with a writer.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, OpenOptions, OsEnv};
use stormhold::wal::WalOptions;
use stormhold::{Config, Durability, Kernel, KernelError, Router};

/// An `Env` that fails every call that could change the disk with `PermissionDenied` (and
/// counts them): whatever runs on it provably writes nothing.
#[derive(Clone)]
struct DenyWrites<E> {
    inner: E,
    refused: Arc<AtomicU64>,
}

impl<E> DenyWrites<E> {
    fn new(inner: E) -> Self {
        Self { inner, refused: Arc::new(AtomicU64::new(0)) }
    }

    fn deny(&self, what: &str, path: &Path) -> io::Error {
        self.refused.fetch_add(1, Ordering::SeqCst);
        io::Error::new(io::ErrorKind::PermissionDenied, format!("{what} {} refused", path.display()))
    }
}

impl<E: Env> Env for DenyWrites<E> {
    type File = E::File;
    type DirLock = E::DirLock;

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<E::File> {
        if options.write || options.create || options.create_new || options.truncate {
            return Err(self.deny("open for writing", path));
        }
        // Handles opened read-only refuse writes themselves (`PermissionDenied`).
        self.inner.open(path, options)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        Err(self.deny("create_dir", path))
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        Err(self.deny("remove_dir", path))
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn rename(&self, from: &Path, _: &Path) -> io::Result<()> {
        Err(self.deny("rename", from))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        Err(self.deny("remove_file", path))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        Err(self.deny("sync_dir", path))
    }
    fn lock_dir(&self, path: &Path) -> io::Result<E::DirLock> {
        Err(self.deny("lock_dir (exclusive)", path))
    }
    fn lock_dir_shared(&self, path: &Path) -> io::Result<Option<E::DirLock>> {
        self.inner.lock_dir_shared(path)
    }
    fn now_monotonic(&self) -> Duration {
        self.inner.now_monotonic()
    }
    fn now_wall(&self) -> SystemTime {
        self.inner.now_wall()
    }
    fn sleep(&self, duration: Duration) {
        self.inner.sleep(duration)
    }
}

fn config() -> Config {
    let wal = WalOptions { segment_size_bytes: 64 * 1024, preallocate: false, ..WalOptions::default() };
    Config::builder().shards(3).router(Router::Prefix { len_bytes: 2 }).wal_options(wal).build().unwrap()
}

/// Every file under `dir` with its bytes, and every directory (as `None`).
fn image<E: Env>(env: &E, dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        match env.open(&path, OpenOptions::read_only()) {
            Err(error) if error.kind() == io::ErrorKind::IsADirectory => {
                out.insert(path.clone(), None);
                todo.extend(env.list_dir(&path).unwrap().into_iter().map(|name| path.join(name)));
            }
            result => {
                let file = result.unwrap();
                let mut bytes = vec![0; stormhold::env::EnvFile::len(&file).unwrap() as usize];
                stormhold::env::EnvFile::read_exact_at(&file, &mut bytes, 0).unwrap();
                out.insert(path, Some(bytes));
            }
        }
    }
    out
}

/// A store with a checkpoint, records after it, a torn WAL tail and a partial checkpoint
/// directory: everything a writable open would repair.
fn build_store<E: Env + Clone>(env: &E, dir: &Path) {
    let kernel = Kernel::open(env.clone(), dir, config()).unwrap();
    for i in 0..40u32 {
        kernel.put(format!("k{}:{i}", i % 3).as_bytes(), &i.to_le_bytes(), Durability::Data).unwrap();
    }
    kernel.increment(b"c0:count", 7, Durability::Data).unwrap();
    kernel.checkpoint().unwrap();
    for i in 40..60u32 {
        kernel.put(format!("k{}:{i}", i % 3).as_bytes(), b"after", Durability::Data).unwrap();
    }
    let shard = kernel.shard_of(b"k0:");
    kernel.close().unwrap();
    let shard_dir = dir.join(format!("shard-{shard:04}"));
    let wal_dir = shard_dir.join("wal");
    let last = env.list_dir(&wal_dir).unwrap().pop().unwrap();
    let segment = env.open(&wal_dir.join(last), OpenOptions::read_write()).unwrap();
    stormhold::env::EnvFile::append(&segment, &[0xab; 100]).unwrap();
    stormhold::env::EnvFile::sync_data(&segment).unwrap();
    env.create_dir(&shard_dir.join("ckpt").join("ckpt-00000000000000ff")).unwrap();
    env.sync_dir(&shard_dir.join("ckpt")).unwrap();
}

/// Reads everything through a read-only kernel and checks that writes are refused.
fn read_and_refuse<E: Env + Clone>(kernel: &Kernel<E>) -> Vec<String> {
    assert!(kernel.is_read_only());
    assert_eq!(kernel.config().shards(), 3, "the creation config is read from KERNEL");
    assert_eq!(kernel.get(b"k1:4").unwrap(), Some(4u32.to_le_bytes().to_vec()));
    assert_eq!(kernel.get(b"k0:42").unwrap(), Some(b"after".to_vec()));
    assert_eq!(kernel.get_counter(b"c0:count").unwrap(), Some(7));
    assert_eq!(kernel.scan_prefix(b"k").unwrap().len(), 60);
    let refused = [
        kernel.put(b"k0:x", b"y", Durability::None).map(drop),
        kernel.delete(b"k0:1", Durability::Data).map(drop),
        kernel.increment(b"c0:count", 1, Durability::Data).map(drop),
        kernel.checkpoint().map(drop),
        kernel.sync(Durability::Data),
        kernel.begin_document("d").unwrap().commit().map(drop),
    ];
    for result in refused {
        assert!(matches!(result, Err(KernelError::ReadOnly { .. })), "{result:?}");
    }
    let mut txn = kernel.begin();
    txn.put(b"k2:new", b"v").unwrap();
    assert!(matches!(txn.commit(Durability::Data), Err(KernelError::ReadOnly { .. })));
    assert!(kernel.tick().checkpoints.is_empty());
    assert_eq!(kernel.get(b"k0:x").unwrap(), None);
    let reports: Vec<String> =
        kernel.recovery_reports().into_iter().map(|r| r.expect("every shard recovers").to_string()).collect();
    assert!(reports.iter().any(|r| r.contains("truncated") && r.contains("partial")), "{reports:?}");
    reports
}

#[test]
fn a_read_only_open_on_an_env_that_refuses_every_write_reads_everything() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    build_store(&OsEnv::new(), &dir);
    let before = image(&OsEnv::new(), &dir);
    let env = DenyWrites::new(OsEnv::new());
    // A writable open cannot even start on it: that is what the wrapper proves.
    assert!(Kernel::open(env.clone(), &dir, config()).is_err());
    let refused_by_writable_open = env.refused.swap(0, Ordering::SeqCst);
    assert!(refused_by_writable_open > 0);
    let kernel = Kernel::open_read_only(env.clone(), &dir).unwrap();
    let reports = read_and_refuse(&kernel);
    kernel.close().unwrap();
    assert_eq!(env.refused.load(Ordering::SeqCst), 0, "the read-only open tried to change the disk");
    assert_eq!(image(&OsEnv::new(), &dir), before);
    // What the read-only open reported is what a writable open then does.
    let kernel = Kernel::open(OsEnv::new(), &dir, config()).unwrap();
    let writable: Vec<String> =
        kernel.recovery_reports().into_iter().map(|r| r.unwrap().to_string()).collect();
    let strip = |r: &String| r.split("; next lsn").next().unwrap().to_owned();
    assert_eq!(writable.iter().map(strip).collect::<Vec<_>>(), reports.iter().map(strip).collect::<Vec<_>>());
}

fn chmod_recursive(path: &Path, dir_mode: u32, file_mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { dir_mode } else { file_mode };
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chmod_recursive(&entry.unwrap().path(), dir_mode, file_mode);
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_read_only_open_works_on_a_read_only_directory_and_shares_it_with_readers_only() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    build_store(&OsEnv::new(), &dir);
    let before = image(&OsEnv::new(), &dir);
    chmod_recursive(&dir, 0o555, 0o444);
    let kernel = Kernel::open_read_only(OsEnv::new(), &dir).unwrap();
    read_and_refuse(&kernel);
    let second = Kernel::open_read_only(OsEnv::new(), &dir).expect("readers share the directory");
    let writer = Kernel::open(OsEnv::new(), &dir, config());
    assert!(matches!(writer, Err(KernelError::Locked { .. })), "{writer:?}");
    drop((kernel, second));
    assert_eq!(image(&OsEnv::new(), &dir), before);
    chmod_recursive(&dir, 0o755, 0o644);
    let writer = Kernel::open(OsEnv::new(), &dir, config()).unwrap();
    let reader = Kernel::open_read_only(OsEnv::new(), &dir);
    assert!(matches!(reader, Err(KernelError::Locked { .. })), "{reader:?}");
    drop(writer);
    let missing = Kernel::open_read_only(OsEnv::new(), temp.path());
    assert!(matches!(missing, Err(KernelError::NoStore { .. })), "{missing:?}");
}

#[test]
fn a_read_only_open_on_sim_env_leaves_the_disk_and_its_calls_untouched() {
    let env = SimEnv::new(11, FaultOptions::default()).unwrap();
    let dir = Path::new("/store");
    build_store(&env, dir);
    let before = image(&env, dir);
    let denying = DenyWrites::new(env.clone());
    let kernel = Kernel::open_read_only(denying.clone(), dir).unwrap();
    read_and_refuse(&kernel);
    drop(kernel);
    assert_eq!(denying.refused.load(Ordering::SeqCst), 0);
    // Nothing was pending either: a power cut now changes nothing.
    env.crash();
    env.restart();
    assert_eq!(image(&env, dir), before);
    // The shared lock of SimEnv excludes a writer while held, and dies with a crash.
    let reader = Kernel::open_read_only(env.clone(), dir).unwrap();
    assert!(matches!(Kernel::open(env.clone(), dir, config()), Err(KernelError::Locked { .. })));
    drop(reader);
    let writer = Kernel::open(env.clone(), dir, config()).unwrap();
    assert!(matches!(Kernel::open_read_only(env.clone(), dir), Err(KernelError::Locked { .. })));
    drop(writer);
}
