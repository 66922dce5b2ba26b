//! [`CountingEnv`]: `OsEnv` with a count of file syncs and, per thread, the time spent in
//! them, so a benchmark can split a commit's latency into the sync it waited for and the
//! rest (locks, CPU, checkpoint steps the commit path took).
//!
//! - the count is one atomic add per file sync (directory syncs are not counted), nothing
//!   measurable next to the sync itself;
//! - the time is two clock reads per sync, added to a thread-local total of the syncs of WAL
//!   files (a path with a `wal` component) and one of every other file's: a thread reads its
//!   own totals before and after a call ([`thread_sync_ns`]), so the split of a commit is
//!   exact for the syncs its own thread ran (a follower of a group commit waits for another
//!   thread's sync: that wait counts as "the rest");
//! - per thread, the WAL syncs that carried a change of the file's length (a write past the
//!   largest end written through the handle, or a `set_len`, since its last sync: a
//!   preallocation step, whose `fdatasync` must commit the journal), so a benchmark can say
//!   how many of its slowest commits were those ([`thread_wal_resizing_syncs`]).

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use stormhold::env::{Env, EnvFile, OpenOptions, OsEnv};

thread_local! {
    /// Nanoseconds this thread spent in syncs of WAL files, and of other files.
    static SYNC_NS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// WAL syncs this thread ran that carried a change of the file's length.
    static WAL_RESIZING_SYNCS: Cell<u64> = const { Cell::new(0) };
}

/// How many syncs of WAL files the calling thread ran so far that carried a change of the
/// file's length (see the module docs).
pub fn thread_wal_resizing_syncs() -> u64 {
    WAL_RESIZING_SYNCS.with(Cell::get)
}

/// Nanoseconds the calling thread spent so far in syncs of WAL files and of other files
/// (through any [`CountingEnv`]).
pub fn thread_sync_ns() -> (u64, u64) {
    SYNC_NS.with(Cell::get)
}

/// [`OsEnv`] with a count of `sync_data` and `sync_all` calls on files (directory syncs are
/// not counted) and the per-thread time in them (see the module docs).
#[derive(Clone, Debug)]
pub struct CountingEnv {
    os: OsEnv,
    syncs: Arc<AtomicU64>,
}

/// A file of [`CountingEnv`].
pub struct CountingFile {
    file: <OsEnv as Env>::File,
    syncs: Arc<AtomicU64>,
    /// Whether the file is in a WAL directory.
    wal: bool,
    /// The largest end written through this handle, and whether the length changed since
    /// the last sync.
    end_max: AtomicU64,
    resized: AtomicBool,
}

impl CountingEnv {
    /// A counting `OsEnv`.
    pub fn new() -> Self {
        Self { os: OsEnv::new(), syncs: Arc::new(AtomicU64::new(0)) }
    }

    /// File syncs so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

impl CountingFile {
    fn timed_sync(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let began = Instant::now();
        let resized = self.resized.swap(false, Ordering::Relaxed);
        let result = sync();
        let ns = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if self.wal && resized {
            WAL_RESIZING_SYNCS.with(|cell| cell.set(cell.get() + 1));
        }
        SYNC_NS.with(|cell| {
            let (wal, other) = cell.get();
            cell.set(if self.wal { (wal + ns, other) } else { (wal, other + ns) });
        });
        result
    }
}

impl EnvFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let written = self.file.write_at(buf, offset)?;
        let end = offset + written as u64;
        if self.end_max.fetch_max(end, Ordering::Relaxed) < end {
            self.resized.store(true, Ordering::Relaxed);
        }
        Ok(written)
    }

    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.resized.store(true, Ordering::Relaxed);
        self.end_max.fetch_max(len_bytes, Ordering::Relaxed);
        self.file.set_len(len_bytes)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.timed_sync(|| self.file.sync_data())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.timed_sync(|| self.file.sync_all())
    }

    fn start_writeback(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        // A hint that does not wait: not timed as a sync.
        self.file.start_writeback(offset, len_bytes)
    }
}

impl Env for CountingEnv {
    type File = CountingFile;
    type DirLock = <OsEnv as Env>::DirLock;

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<CountingFile> {
        let wal = path.parent().and_then(Path::file_name).is_some_and(|dir| dir == "wal");
        let file = self.os.open(path, options)?;
        let end_max = AtomicU64::new(file.len()?);
        let (syncs, resized) = (Arc::clone(&self.syncs), AtomicBool::new(false));
        Ok(CountingFile { file, syncs, wal, end_max, resized })
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.os.create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.os.remove_dir(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.os.list_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.os.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.os.remove_file(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.os.exists(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.os.sync_dir(path)
    }

    fn lock_dir(&self, path: &Path) -> io::Result<Self::DirLock> {
        self.os.lock_dir(path)
    }

    fn now_monotonic(&self) -> Duration {
        self.os.now_monotonic()
    }

    fn now_wall(&self) -> SystemTime {
        self.os.now_wall()
    }

    fn sleep(&self, duration: Duration) {
        self.os.sleep(duration);
    }

    fn parallelism(&self) -> usize {
        self.os.parallelism()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_of_wal_files_and_other_files_are_timed_apart_on_the_calling_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = CountingEnv::new();
        std::fs::create_dir(dir.path().join("wal")).expect("mkdir");
        let wal = env.open(&dir.path().join("wal").join("seg"), OpenOptions::create()).expect("open");
        let other = env.open(&dir.path().join("DATA"), OpenOptions::create()).expect("open");
        let before = thread_sync_ns();
        wal.write_all_at(b"x", 0).expect("write");
        wal.sync_data().expect("sync");
        let after_wal = thread_sync_ns();
        assert!(after_wal.0 > before.0 && after_wal.1 == before.1, "{before:?} -> {after_wal:?}");
        other.sync_all().expect("sync");
        let after = thread_sync_ns();
        assert!(after.0 == after_wal.0 && after.1 > after_wal.1, "{after_wal:?} -> {after:?}");
        assert_eq!(env.syncs(), 2);
        let elsewhere = std::thread::spawn(thread_sync_ns).join().expect("thread");
        assert_eq!(elsewhere, (0, 0), "another thread's totals are its own");
    }

    #[test]
    fn a_wal_sync_is_counted_as_resizing_only_after_the_file_grew() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = CountingEnv::new();
        std::fs::create_dir(dir.path().join("wal")).expect("mkdir");
        let wal = env.open(&dir.path().join("wal").join("seg"), OpenOptions::create()).expect("open");
        let before = thread_wal_resizing_syncs();
        wal.write_all_at(&[1; 8192], 0).expect("write");
        wal.sync_data().expect("sync");
        assert_eq!(thread_wal_resizing_syncs(), before + 1, "the file grew");
        wal.write_all_at(&[2; 100], 4096).expect("overwrite");
        wal.sync_data().expect("sync");
        assert_eq!(thread_wal_resizing_syncs(), before + 1, "an overwrite inside is no resize");
        wal.set_len(4096).expect("truncate");
        wal.sync_data().expect("sync");
        assert_eq!(thread_wal_resizing_syncs(), before + 2, "set_len is one");
    }
}
