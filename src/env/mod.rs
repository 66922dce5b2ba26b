//! The environment boundary: the one trait through which the kernel reaches files and clocks.
//!
//! Owns: the [`Env`] and [`EnvFile`] contracts, [`OpenOptions`], the real-OS
//! implementation [`OsEnv`], and [`OverlayEnv`], any `Env` seen read-only with its changes
//! kept in memory (what a read-only open of a kernel runs on). With the `sim` feature, `sim::SimEnv` is the simulated one.
//! `SharedEnv` (public with the `internals` feature) wraps any `Env` so one file handle can be
//! shared across threads.
//!
//! # The contract, in one place
//!
//! Durability is explicit. A write or a `set_len` is visible to later reads at once but is
//! durable only after [`EnvFile::sync_data`] or [`EnvFile::sync_all`] on that file returned
//! `Ok`. Creating, renaming or removing a directory entry is durable only after
//! [`Env::sync_dir`] on the directory holding the entry returned `Ok` (for a rename across
//! directories: both). A crash may keep any subset of what was not yet durable, and a write
//! that was not durable may be *torn*: some of its sectors new, the rest old, zero or garbage.
//! [`EnvFile::start_writeback`] is only a hint to write back early: it changes none of
//! this, and nothing is durable because of it. [`EnvFile::advise_sequential_read`] is only a
//! hint to read ahead: it changes nothing any read returns.
//!
//! A failed sync (`Err`) means the outcome is unknown: some, all or none of the pending data
//! may be durable, and the failure may have marked the pages clean, so a later sync can
//! return `Ok` without writing them again. Callers must treat a failed sync as fatal for the
//! data it covered and never retry it and assume durability.
//!
//! Errors are [`std::io::Error`] with the kind the real OS gives: `NotFound`,
//! `AlreadyExists`, `IsADirectory`, `NotADirectory`, `DirectoryNotEmpty`, `StorageFull`,
//! `FileTooLarge`, `WouldBlock` (directory locked), `PermissionDenied` (a handle used for
//! what it was not opened for), `Unsupported` (renaming a directory), `InvalidInput` (a path,
//! flag combination or offset `Env` does not accept). Where a call is wrong in several ways,
//! the error is the one Linux reports first: the directories leading to a path are resolved
//! (`NotFound`, `NotADirectory`) before its last name is looked at. The `SimEnv`-vs-`OsEnv`
//! property test (`tests/env_equivalence.rs`) holds both implementations to this.
//!
//! Paths are plain [`Path`]s; use absolute paths without `..` (`SimEnv` refuses `..` with
//! `InvalidInput`, `OsEnv` hands it to the OS). `Env` renames only regular files: renaming a
//! directory fails with `Unsupported` on every implementation, because a crash model of
//! directory renames adds nothing the kernel needs and much it could get wrong.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

mod os;
mod overlay;
mod shared;
#[cfg(feature = "sim")]
pub mod sim;

pub use os::{OsDirLock, OsEnv, OsFile};
pub use overlay::{OverlayEnv, OverlayFile};
#[cfg(not(feature = "internals"))]
pub(crate) use shared::SharedEnv;
#[cfg(feature = "internals")]
pub use shared::{SharedEnv, SharedFile};

/// How [`Env::open`] opens a file. Mirrors the subset of `std::fs::OpenOptions` the kernel
/// uses; every flag defaults to `false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Allow reads through the handle.
    pub read: bool,
    /// Allow writes, `set_len` and syncs that change data through the handle.
    pub write: bool,
    /// Create the file if it does not exist (needs `write`).
    pub create: bool,
    /// Create the file and fail with `AlreadyExists` if it exists (needs `write`).
    pub create_new: bool,
    /// Truncate an existing file to length 0 on open (needs `write`).
    pub truncate: bool,
}

impl OpenOptions {
    /// Open an existing file for reading only.
    pub fn read_only() -> Self {
        Self { read: true, ..Self::default() }
    }

    /// Open an existing file for reading and writing.
    pub fn read_write() -> Self {
        Self { read: true, write: true, ..Self::default() }
    }

    /// Open for reading and writing, creating the file if it is missing.
    pub fn create() -> Self {
        Self { create: true, ..Self::read_write() }
    }

    /// Create a new file for reading and writing; fail with `AlreadyExists` if it exists.
    pub fn create_new() -> Self {
        Self { create_new: true, ..Self::read_write() }
    }

    /// Returns these options with `truncate` set.
    pub fn truncate(self, truncate: bool) -> Self {
        Self { truncate, ..self }
    }

    /// Checks the flag combination the way the OS does: creating or truncating needs `write`,
    /// and a handle must allow reading or writing.
    pub fn validate(&self) -> io::Result<()> {
        if (self.create || self.create_new || self.truncate) && !self.write {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "create, create_new and truncate need write access",
            ));
        }
        if !self.read && !self.write {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a handle must read or write"));
        }
        Ok(())
    }
}

/// An open regular file.
///
/// All methods take `&self`: a handle may be shared between threads on [`OsEnv`]; the kernel
/// serializes writes to one file itself.
pub trait EnvFile: Send + Sync {
    /// Reads up to `buf.len()` bytes starting at `offset` and returns how many were read.
    ///
    /// A short read (fewer bytes than asked) is allowed anywhere, not only at end of file;
    /// `Ok(0)` with a non-empty `buf` means `offset` is at or past the end of the file.
    /// Use [`EnvFile::read_exact_at`] to read a whole range. `InvalidInput` if
    /// `offset + buf.len()` exceeds `i64::MAX` (Linux file offsets are signed).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes up to `buf.len()` bytes at `offset` and returns how many were written (at least
    /// one for a non-empty `buf`). Writing past the end extends the file, and any gap between
    /// the old end and `offset` reads as zeros. Nothing written is durable until a sync.
    ///
    /// `InvalidInput` if `offset + buf.len()` exceeds `i64::MAX`, even for an empty `buf`.
    /// Otherwise an empty `buf` writes nothing and returns `Ok(0)`. A write that would end
    /// past the largest file the implementation supports is short, and one that starts there
    /// fails with `FileTooLarge` (Linux: the file system's limit, 16 TiB on ext4; `SimEnv`,
    /// which keeps files in memory: `sim::FILE_SIZE_MAX_BYTES`).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

    /// The file's current length in bytes, including writes not yet durable.
    fn len(&self) -> io::Result<u64>;

    /// Truncates or extends the file to `len_bytes`; extending zero-fills. Not durable until
    /// a sync. `InvalidInput` past `i64::MAX`, `FileTooLarge` past the largest file the
    /// implementation supports (see [`EnvFile::write_at`]).
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;

    /// Makes the file's data and length durable (`fdatasync`). After `Ok`, every write and
    /// `set_len` that returned before this call survives a crash. After `Err`, see the module
    /// docs: the outcome is unknown and must not be retried as if nothing happened.
    fn sync_data(&self) -> io::Result<()>;

    /// Like [`EnvFile::sync_data`], and also the file's other metadata (`fsync`).
    fn sync_all(&self) -> io::Result<()>;

    /// A hint: asks the OS to start writing the bytes `offset..offset + len_bytes` of the
    /// file to the device now, without waiting, so that a later sync has less to flush at
    /// once (a large file written in one go and synced at the end makes that sync, and every
    /// other sync of the same disk meanwhile, wait for the whole of it).
    ///
    /// **It gives no durability at all.** After `Ok`, nothing is durable that was not
    /// durable before: a crash keeps exactly what it would keep without the call, and only
    /// [`EnvFile::sync_data`] or [`EnvFile::sync_all`] returning `Ok` makes the range
    /// durable. It never waits for earlier writeback and never consumes a writeback error,
    /// so the next sync still reports any failure of the pages it covers.
    ///
    /// An empty range does nothing. `InvalidInput` if `offset + len_bytes` exceeds
    /// `i64::MAX`. An `Err` otherwise is an I/O error of the file (Linux reports a failed
    /// writeback submission here): callers treat it like a failed sync of the range.
    ///
    /// Implementations: the default, `SimEnv` and [`OverlayEnv`] do nothing (`SimEnv`
    /// counts the call, nothing more: it draws no fault, takes no crash point and leaves
    /// the trace as it is); [`OsEnv`] on Linux calls `sync_file_range` with
    /// `SYNC_FILE_RANGE_WRITE` only, elsewhere it does nothing.
    fn start_writeback(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        check_writeback_range(offset, len_bytes)
    }

    /// Hints that `offset..offset + len_bytes` is about to be read once, front to back (the
    /// recovery scan of a WAL segment), so the platform may read ahead of the caller in large
    /// requests instead of one small read at a time on a cold cache.
    ///
    /// **It changes nothing a read returns** and no durability: it is only a hint, and a
    /// read after it behaves exactly as without it. An empty range does nothing. `Err` only
    /// for a range past `i64::MAX` (`InvalidInput`) or a platform that refuses the hint;
    /// callers may ignore it, since no byte of the file depends on it.
    ///
    /// Implementations: the default, `SimEnv` and [`OverlayEnv`] do nothing (`SimEnv` draws
    /// no fault, takes no crash point and leaves the trace as it is); [`OsEnv`] on Linux
    /// calls `posix_fadvise` with `POSIX_FADV_SEQUENTIAL` (a larger read-ahead window) and
    /// `POSIX_FADV_WILLNEED` (start reading the range now), elsewhere it does nothing.
    fn advise_sequential_read(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        check_writeback_range(offset, len_bytes)
    }

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads exactly `buf.len()` bytes at `offset`, looping over short reads. Fails with
    /// `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file ends before offset {offset}"),
                    ));
                }
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`, looping over short writes. On error, a prefix of `buf`
    /// may have been written.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset)? {
                0 => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
                n => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    /// Appends all of `buf` at the current end of the file and returns the offset it was
    /// written at. The caller must be the file's only writer.
    fn append(&self, buf: &[u8]) -> io::Result<u64> {
        let offset = self.len()?;
        self.write_all_at(buf, offset)?;
        Ok(offset)
    }
}

/// The environment: files, directories and clocks.
pub trait Env: Send + Sync {
    /// An open file.
    type File: EnvFile;
    /// Holds an exclusive lock on a directory until dropped.
    type DirLock: Send + Sync;

    /// Opens the regular file at `path`. `InvalidInput` if [`OpenOptions::validate`] refuses
    /// `options` (checked first); `NotFound` if the file is missing and `options` do not
    /// create it (or its parent directory is missing); `NotADirectory` if a component before
    /// the last is a file; `AlreadyExists` for `create_new` on any existing path, a directory
    /// included (as Linux `O_CREAT | O_EXCL`); otherwise `IsADirectory` if `path` names a
    /// directory (the root too), even read-only, where Linux would open it. A newly created
    /// entry is durable only after [`Env::sync_dir`] on the parent.
    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<Self::File>;

    /// Creates one directory (the parent must exist). `AlreadyExists` if `path` exists.
    /// Durable after [`Env::sync_dir`] on the parent.
    fn create_dir(&self, path: &Path) -> io::Result<()>;

    /// Removes an empty directory: `DirectoryNotEmpty` if it has entries, `NotADirectory`
    /// for a file. The root of the file system cannot be removed: `ResourceBusy`, as Linux
    /// answers `rmdir("/")`. Durable after [`Env::sync_dir`] on the parent.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;

    /// The names in a directory, sorted bytewise, without `.` and `..`.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// Renames the regular file `from` to `to`, atomically replacing a file at `to`; renaming
    /// a file onto itself does nothing. Durable after [`Env::sync_dir`] on both parents.
    ///
    /// Errors, in the order they are checked: `from`'s parent (`NotFound`, `NotADirectory`);
    /// `Unsupported` if `from` is a directory (whatever `to` is); `to`'s parent; `NotFound`
    /// if `from` is missing; `IsADirectory` if `to` is a directory, including one that holds
    /// `from` (where Linux says `ENOTEMPTY`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a regular file (`IsADirectory` for a directory). Durable after
    /// [`Env::sync_dir`] on the parent.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Whether `path` names an existing file or directory. `Ok(false)` only when something
    /// on the path is missing; `NotADirectory` if a component before the last is a file
    /// (as `std::fs::exists`).
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Makes every entry operation in the directory `path` durable (create, rename in or out,
    /// remove). Same failure semantics as [`EnvFile::sync_data`].
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on the directory `path`, held until the returned guard drops
    /// (or the process dies). Fails with `WouldBlock` while another holder has it, even a
    /// guard of the same process. Creates a file named [`LOCK_FILE_NAME`] in the directory
    /// (and leaves it there), so `NotADirectory` if `path` is a file and `IsADirectory` if
    /// `LOCK` is a directory.
    ///
    /// The caller must not remove, rename or replace the `LOCK` file: what the lock then
    /// guards is unspecified (`OsEnv` locks the file, so a new `LOCK` can be locked again;
    /// `SimEnv` locks the directory).
    fn lock_dir(&self, path: &Path) -> io::Result<Self::DirLock>;

    /// Takes a *shared* lock on the directory `path`, for a reader that writes nothing (a
    /// read-only open): any number of shared holders coexist, but none while an exclusive
    /// [`Env::lock_dir`] holder exists, and no exclusive holder while one is held (either
    /// call fails with `WouldBlock`). Creates and writes nothing, so it works on a read-only
    /// directory: without a `LOCK` file (no store ever locked the directory) it holds nothing
    /// and returns `Ok(None)`, as it does on an `Env` without shared locks (the default).
    /// `NotFound` if `path` is missing, `NotADirectory` if it is a file.
    ///
    /// `OsEnv`: `flock(LOCK_SH)` on `LOCK` opened read-only; `SimEnv`: a count of shared
    /// holders per directory, released by a crash as every lock is.
    fn lock_dir_shared(&self, path: &Path) -> io::Result<Option<Self::DirLock>> {
        match self.exists(path)? {
            true => Ok(None),
            false => Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is missing", path.display()))),
        }
    }

    /// Monotonic time since the environment started. Never goes backwards.
    fn now_monotonic(&self) -> Duration;

    /// Wall-clock time. May jump, backwards too: use it for timestamps, never for intervals.
    fn now_wall(&self) -> SystemTime;

    /// Blocks the caller for `duration` (advances the virtual clock in the simulator).
    fn sleep(&self, duration: Duration);

    /// How many threads the caller may use for independent work such as recovering shards
    /// in parallel. Default 1: an environment that must stay deterministic (the simulator)
    /// keeps every call on one thread, in a fixed order.
    fn parallelism(&self) -> usize {
        1
    }
}

/// The range check of [`EnvFile::start_writeback`] and [`EnvFile::advise_sequential_read`]:
/// `InvalidInput` past `i64::MAX`.
pub(crate) fn check_writeback_range(offset: u64, len_bytes: u64) -> io::Result<()> {
    match offset.checked_add(len_bytes) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "writeback range ends past i64::MAX")),
    }
}

/// The name of the lock file [`Env::lock_dir`] keeps in a locked directory.
pub const LOCK_FILE_NAME: &str = "LOCK";
