//! `SharedEnv`: the caller's [`Env`] with every file handle behind an `Arc`, so that clones
//! of one handle can be used from several threads at once.
//!
//! Owns only the wrapper: every call goes to the inner `Env` unchanged, so the contract of
//! [`Env`] and [`EnvFile`] holds as it is. The invariant it adds: every clone of a
//! [`SharedFile`] is the one handle the inner `Env` opened, so a sync through any clone covers
//! every write through every other. The WAL's leader/follower group commit
//! (`crate::wal::shared`) relies on it to sync the active segment outside its mutex.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Env, EnvFile, OpenOptions};

/// The caller's `Env`, with file handles behind an `Arc` so that a leader can sync the active
/// segment's own handle outside the mutex while the core keeps it. Open a log with it (for
/// example through `crate::recovery::recover`) and hand it to `SharedWal::from_wal`.
#[derive(Clone, Debug)]
pub struct SharedEnv<E>(pub E);

/// A file handle of [`SharedEnv`]; clones share the one handle of the inner `Env`.
pub struct SharedFile<F>(Arc<F>);

impl<F> Clone for SharedFile<F> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<F: EnvFile> EnvFile for SharedFile<F> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.0.set_len(len_bytes)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn start_writeback(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        self.0.start_writeback(offset, len_bytes)
    }

    fn advise_sequential_read(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        self.0.advise_sequential_read(offset, len_bytes)
    }
}

impl<E: Env> Env for SharedEnv<E> {
    type File = SharedFile<E::File>;
    type DirLock = E::DirLock;

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<Self::File> {
        Ok(SharedFile(Arc::new(self.0.open(path, options)?)))
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.0.create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.0.remove_dir(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.0.list_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.0.remove_file(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.0.exists(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.0.sync_dir(path)
    }

    fn lock_dir(&self, path: &Path) -> io::Result<Self::DirLock> {
        self.0.lock_dir(path)
    }

    fn lock_dir_shared(&self, path: &Path) -> io::Result<Option<Self::DirLock>> {
        self.0.lock_dir_shared(path)
    }

    fn now_monotonic(&self) -> Duration {
        self.0.now_monotonic()
    }

    fn now_wall(&self) -> SystemTime {
        self.0.now_wall()
    }

    fn sleep(&self, duration: Duration) {
        self.0.sleep(duration)
    }

    fn parallelism(&self) -> usize {
        self.0.parallelism()
    }
}
