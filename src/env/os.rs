//! `OsEnv`: the [`Env`] of the real operating system, with std only.
//!
//! This is the only module of the kernel that touches `std::fs` and real time (the tidy test
//! enforces it). It adds the few checks that make the real OS honour the [`Env`] contract
//! exactly as the simulator does: opening a directory as a file fails with `IsADirectory`
//! (Linux would open it read-only), renaming a directory fails with `Unsupported`, renaming a
//! file onto a directory that holds it fails with `IsADirectory` (Linux: `ENOTEMPTY`),
//! syncing a file as a directory fails with `NotADirectory`, and reading, writing or resizing
//! through a handle opened without that access fails with `PermissionDenied`.

use std::fs::{self, File, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::{Env, EnvFile, LOCK_FILE_NAME, OpenOptions};

/// The real operating system. Clones share the monotonic clock's origin.
#[derive(Clone, Debug)]
pub struct OsEnv {
    started: Instant,
}

/// Attempts after the first when a directory lock is held (see `lock_dir`).
const LOCK_RETRIES: u32 = 10;
/// Wait between those attempts.
const LOCK_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

impl OsEnv {
    /// A new real-OS environment; its monotonic clock starts at zero now.
    pub fn new() -> Self {
        Self { started: Instant::now() }
    }
}

impl Default for OsEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// An open file of [`OsEnv`].
#[derive(Debug)]
pub struct OsFile {
    file: File,
    readable: bool,
    writable: bool,
}

/// The lock [`OsEnv::lock_dir`] (exclusive) or [`Env::lock_dir_shared`] (shared) holds on a
/// directory; released on drop.
#[derive(Debug)]
pub struct OsDirLock {
    // Held for its lock: the OS releases it when the descriptor closes.
    _file: File,
}

fn check_access(allowed: bool, what: &str) -> io::Result<()> {
    if allowed {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("handle was opened without {what} access"),
        ))
    }
}

fn is_dir(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

impl EnvFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        check_access(self.readable, "read")?;
        self.file.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        check_access(self.writable, "write")?;
        self.file.write_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        check_access(self.writable, "write")?;
        self.file.set_len(len_bytes)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn start_writeback(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        super::check_writeback_range(offset, len_bytes)?;
        if len_bytes == 0 {
            return Ok(());
        }
        writeback::start(&self.file, offset, len_bytes)
    }

    fn advise_sequential_read(&self, offset: u64, len_bytes: u64) -> io::Result<()> {
        super::check_writeback_range(offset, len_bytes)?;
        if len_bytes == 0 {
            return Ok(());
        }
        readahead::advise(&self.file, offset, len_bytes)
    }
}

/// [`EnvFile::start_writeback`] on Linux: `sync_file_range(SYNC_FILE_RANGE_WRITE)`, the call
/// RocksDB's `bytes_per_sync` makes. Only that flag: `SYNC_FILE_RANGE_WAIT_BEFORE` and
/// `_WAIT_AFTER` end in `file_check_and_advance_wb_err`, which hands a writeback error to
/// this call and hides it from the next `fdatasync` of the same descriptor (fsyncgate), and
/// none of them makes anything durable (no metadata, no device cache flush) anyway.
///
/// The first `unsafe` of the crate: std links libc, but exposes no `sync_file_range`, so it is
/// declared here (glibc's and musl's signature on 64-bit Linux), and the call is safe because
/// it takes plain integers: the descriptor is open for the call's duration (borrowed from a
/// live `File`), the range was checked to fit `off64_t`, and the kernel reads no memory of
/// ours. Measured to matter: `stormhold-bench --only checkpoint-latency` (see the commit).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod writeback {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `SYNC_FILE_RANGE_WRITE` of `<linux/fs.h>`.
    const SYNC_FILE_RANGE_WRITE: u32 = 2;

    unsafe extern "C" {
        fn sync_file_range(fd: i32, offset: i64, nbytes: i64, flags: u32) -> i32;
    }

    pub(super) fn start(file: &File, offset: u64, len_bytes: u64) -> io::Result<()> {
        let range = |n: u64| i64::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
        let (offset, len_bytes) = (range(offset)?, range(len_bytes)?);
        // SAFETY: see the module docs: integers only, the descriptor is live for the call.
        let rc = unsafe { sync_file_range(file.as_raw_fd(), offset, len_bytes, SYNC_FILE_RANGE_WRITE) };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

/// [`EnvFile::advise_sequential_read`] on Linux: `posix_fadvise(SEQUENTIAL)` then
/// `posix_fadvise(WILLNEED)` on the range. Measured to matter for a cold open: the recovery
/// scan otherwise reads a cold segment with the default read-ahead window, one request behind
/// the checksums (see the commit, peers harness w5).
///
/// The second `unsafe` of the crate, for the same reason as `writeback`: std links libc but
/// exposes no `posix_fadvise`, so it is declared here (glibc's and musl's signature on 64-bit
/// Linux, where `off_t` is 64 bits), and the call is safe because it takes plain integers:
/// the descriptor is borrowed from a live `File`, the range was checked to fit `off_t`, and
/// the kernel reads no memory of ours. It returns the error number itself (not `errno`).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod readahead {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `POSIX_FADV_SEQUENTIAL` and `POSIX_FADV_WILLNEED` of `<fcntl.h>` on Linux.
    const POSIX_FADV_SEQUENTIAL: i32 = 2;
    const POSIX_FADV_WILLNEED: i32 = 3;

    unsafe extern "C" {
        fn posix_fadvise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
    }

    pub(super) fn advise(file: &File, offset: u64, len_bytes: u64) -> io::Result<()> {
        let range = |n: u64| i64::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
        let (offset, len_bytes) = (range(offset)?, range(len_bytes)?);
        for advice in [POSIX_FADV_SEQUENTIAL, POSIX_FADV_WILLNEED] {
            // SAFETY: see the module docs: integers only, the descriptor is live for the call.
            let rc = unsafe { posix_fadvise(file.as_raw_fd(), offset, len_bytes, advice) };
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
        }
        Ok(())
    }
}

/// [`EnvFile::advise_sequential_read`] elsewhere: a hint the platform has no call for.
#[cfg(not(target_os = "linux"))]
mod readahead {
    pub(super) fn advise(_file: &std::fs::File, _offset: u64, _len_bytes: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// [`EnvFile::start_writeback`] elsewhere: a hint the platform has no call for, so nothing.
#[cfg(not(target_os = "linux"))]
mod writeback {
    pub(super) fn start(_file: &std::fs::File, _offset: u64, _len_bytes: u64) -> std::io::Result<()> {
        Ok(())
    }
}

impl Env for OsEnv {
    type File = OsFile;
    type DirLock = OsDirLock;

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<OsFile> {
        options.validate()?;
        // Linux opens a directory read-only, which the contract refuses; with `create_new` it
        // already answers `AlreadyExists`, which the contract keeps.
        if !options.create_new && is_dir(path) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        let file = fs::OpenOptions::new()
            .read(options.read)
            .write(options.write)
            .create(options.create)
            .create_new(options.create_new)
            .truncate(options.truncate)
            .open(path)?;
        Ok(OsFile { file, readable: options.read, writable: options.write })
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            let name = entry?.file_name().into_string().map_err(|raw| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("non-UTF-8 file name {raw:?} in {}", path.display()),
                )
            })?;
            names.push(name);
        }
        names.sort_unstable();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if is_dir(from) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("Env renames files only; {} is a directory", from.display()),
            ));
        }
        match fs::rename(from, to) {
            // `from` is not a directory, so this is Linux refusing a target that is an
            // ancestor of the source (it checks that before `EISDIR`); the target is a
            // directory either way, and the contract says `IsADirectory`.
            Err(error) if error.kind() == io::ErrorKind::DirectoryNotEmpty => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory: {error}", to.display()),
            )),
            result => result,
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        fs::exists(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir = File::open(path)?;
        if !dir.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ));
        }
        dir.sync_all()
    }

    fn lock_dir(&self, path: &Path) -> io::Result<OsDirLock> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join(LOCK_FILE_NAME))?;
        lock_with_retries(file, path, File::try_lock, "another open store")
    }

    fn lock_dir_shared(&self, path: &Path) -> io::Result<Option<OsDirLock>> {
        if !fs::metadata(path)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ));
        }
        let file = match File::open(path.join(LOCK_FILE_NAME)) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            result => result?,
        };
        lock_with_retries(file, path, File::try_lock_shared, "an open store").map(Some)
    }

    fn now_monotonic(&self) -> Duration {
        self.started.elapsed()
    }

    fn now_wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn parallelism(&self) -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// Takes `try_lock` on the lock file of `path`. A lock held elsewhere in this process can
/// linger for an instant after its holder dropped it: a child process forked meanwhile (to be
/// exec'd) holds a copy of the descriptor until its exec closes it. So contention is retried
/// briefly before it is reported as held by `holder`.
fn lock_with_retries(
    file: File,
    path: &Path,
    try_lock: fn(&File) -> Result<(), TryLockError>,
    holder: &str,
) -> io::Result<OsDirLock> {
    for attempt in 0..=LOCK_RETRIES {
        match try_lock(&file) {
            Ok(()) => return Ok(OsDirLock { _file: file }),
            Err(TryLockError::WouldBlock) if attempt < LOCK_RETRIES => {
                std::thread::sleep(LOCK_RETRY_INTERVAL)
            }
            Err(TryLockError::WouldBlock) => break,
            Err(TryLockError::Error(error)) => return Err(error),
        }
    }
    Err(io::Error::new(io::ErrorKind::WouldBlock, format!("{} is locked by {holder}", path.display())))
}
