//! `OverlayEnv`: the caller's [`Env`] seen read-only, with every change kept in memory.
//!
//! Owns the overlay that makes a read-only open possible (`Kernel::open_read_only`): recovery
//! code written for a writable store (it truncates a torn WAL tail, removes partial checkpoint
//! directories, creates missing directories, syncs) runs unchanged on top of it, and the inner
//! `Env` only ever sees reads: `open` read-only, `read_at`, `len`, `list_dir`, `exists` and
//! [`Env::lock_dir_shared`]. Every write, `set_len`, create, rename and remove lands in the
//! overlay, visible to later calls through the overlay and lost when it drops.
//!
//! Invariants:
//! - **nothing reaches the inner `Env` but reads** (`tests/kernel_read_only.rs` checks it with
//!   an `Env` that fails every mutating call, and with a `SimEnv` whose durable image and
//!   trace of mutating calls stay untouched);
//! - a file is copied into memory only when it is first changed (a file that is only read is
//!   read from the inner `Env` each time), so a read-only recovery costs memory for the
//!   files it would have written, not for the whole store;
//! - syncs succeed and do nothing; the directory locks are shared locks on the inner `Env`.
//!
//! Known limit: removing a directory hides it, and creating it again shows it empty only of
//! what the overlay removed first (entries of the inner `Env` below it would show again);
//! stormhold never recreates a directory it removed (checkpoint ids are never reused).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{Env, EnvFile, OpenOptions};

/// A file as the overlay sees it: still the inner one, or copied into memory.
enum Content<F> {
    Inner(F),
    Memory(Vec<u8>),
}

type Shared<F> = Arc<Mutex<Content<F>>>;

struct Overlay<F> {
    /// Files created or changed through the overlay (and files renamed, by their new name).
    files: BTreeMap<PathBuf, Shared<F>>,
    /// Directories created through the overlay.
    dirs: BTreeSet<PathBuf>,
    /// Names of the inner `Env` removed (or renamed away) through the overlay.
    hidden: BTreeSet<PathBuf>,
}

/// The caller's `Env`, read-only, with changes in memory: see the module docs.
pub struct OverlayEnv<E: Env> {
    inner: E,
    overlay: Arc<Mutex<Overlay<E::File>>>,
}

impl<E: Env + Clone> Clone for OverlayEnv<E> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), overlay: Arc::clone(&self.overlay) }
    }
}

impl<E: Env> std::fmt::Debug for OverlayEnv<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let overlay = lock(&self.overlay);
        f.debug_struct("OverlayEnv")
            .field("files", &overlay.files.keys().collect::<Vec<_>>())
            .field("dirs", &overlay.dirs)
            .field("hidden", &overlay.hidden)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn error(kind: io::ErrorKind, path: &Path, what: &str) -> io::Error {
    io::Error::new(kind, format!("{} {what} (read-only overlay)", path.display()))
}

/// A file handle of [`OverlayEnv`].
pub struct OverlayFile<F> {
    content: Shared<F>,
    readable: bool,
    writable: bool,
}

fn check(allowed: bool, what: &str) -> io::Result<()> {
    match allowed {
        true => Ok(()),
        false => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("handle was opened without {what} access"),
        )),
    }
}

impl<F: EnvFile> OverlayFile<F> {
    /// The file's bytes in memory, copying them from the inner file on the first change.
    fn memory<T>(&self, change: impl FnOnce(&mut Vec<u8>) -> T) -> io::Result<T> {
        check(self.writable, "write")?;
        let mut content = lock(&self.content);
        if let Content::Inner(file) = &*content {
            let mut bytes = vec![0; usize::try_from(file.len()?).map_err(io::Error::other)?];
            file.read_exact_at(&mut bytes, 0)?;
            *content = Content::Memory(bytes);
        }
        match &mut *content {
            Content::Memory(bytes) => Ok(change(bytes)),
            Content::Inner(_) => unreachable!("copied into memory just above"),
        }
    }
}

fn end(offset: u64, len: usize) -> io::Result<usize> {
    usize::try_from(offset)
        .ok()
        .and_then(|at| at.checked_add(len))
        .filter(|&end| end as u64 <= i64::MAX as u64)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset past i64::MAX"))
}

impl<F: EnvFile> EnvFile for OverlayFile<F> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        check(self.readable, "read")?;
        match &*lock(&self.content) {
            Content::Inner(file) => file.read_at(buf, offset),
            Content::Memory(bytes) => {
                end(offset, buf.len())?;
                let from = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                Ok(n)
            }
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let end = end(offset, buf.len())?;
        if buf.is_empty() {
            return Ok(0);
        }
        self.memory(|bytes| {
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[end - buf.len()..end].copy_from_slice(buf);
            buf.len()
        })
    }

    fn len(&self) -> io::Result<u64> {
        match &*lock(&self.content) {
            Content::Inner(file) => file.len(),
            Content::Memory(bytes) => Ok(bytes.len() as u64),
        }
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        let len = end(len_bytes, 0)?;
        self.memory(|bytes| bytes.resize(len, 0))
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
}

impl<E: Env> OverlayEnv<E> {
    /// `inner`, read-only, with an empty overlay.
    pub fn new(inner: E) -> Self {
        let overlay = Overlay { files: BTreeMap::new(), dirs: BTreeSet::new(), hidden: BTreeSet::new() };
        Self { inner, overlay: Arc::new(Mutex::new(overlay)) }
    }

    /// The inner `Env`.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Whether anything was changed through the overlay (a recovery that found nothing to
    /// repair changes nothing).
    pub fn is_changed(&self) -> bool {
        let overlay = lock(&self.overlay);
        !(overlay.files.is_empty() && overlay.dirs.is_empty() && overlay.hidden.is_empty())
    }

    fn inner_exists(&self, overlay: &Overlay<E::File>, path: &Path) -> io::Result<bool> {
        Ok(!overlay.hidden.contains(path) && self.inner.exists(path)?)
    }

    fn exists_locked(&self, overlay: &Overlay<E::File>, path: &Path) -> io::Result<bool> {
        Ok(overlay.files.contains_key(path)
            || overlay.dirs.contains(path)
            || self.inner_exists(overlay, path)?)
    }

    fn is_dir_locked(&self, overlay: &Overlay<E::File>, path: &Path) -> io::Result<bool> {
        if overlay.dirs.contains(path) {
            return Ok(true);
        }
        if overlay.files.contains_key(path) || !self.inner_exists(overlay, path)? {
            return Ok(false);
        }
        // The inner `Env` refuses to open a directory as a file: that is how to tell.
        match self.inner.open(path, OpenOptions::read_only()) {
            Err(error) if error.kind() == io::ErrorKind::IsADirectory => Ok(true),
            _ => Ok(false),
        }
    }

    fn parent_is_dir(&self, overlay: &Overlay<E::File>, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() && !self.is_dir_locked(overlay, parent)? => {
                Err(error(io::ErrorKind::NotFound, parent, "is not a directory"))
            }
            _ => Ok(()),
        }
    }

    /// The shared content of `path`, from the overlay or opened read-only from the inner `Env`.
    fn content(&self, overlay: &Overlay<E::File>, path: &Path) -> io::Result<Shared<E::File>> {
        if let Some(content) = overlay.files.get(path) {
            return Ok(Arc::clone(content));
        }
        if overlay.dirs.contains(path) {
            return Err(error(io::ErrorKind::IsADirectory, path, "is a directory"));
        }
        if overlay.hidden.contains(path) {
            return Err(error(io::ErrorKind::NotFound, path, "was removed"));
        }
        let file = self.inner.open(path, OpenOptions::read_only())?;
        Ok(Arc::new(Mutex::new(Content::Inner(file))))
    }
}

impl<E: Env> Env for OverlayEnv<E> {
    type File = OverlayFile<E::File>;
    type DirLock = Option<E::DirLock>;

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<Self::File> {
        options.validate()?;
        let mut overlay = lock(&self.overlay);
        let exists = self.exists_locked(&overlay, path)?;
        if options.create_new && exists {
            return Err(error(io::ErrorKind::AlreadyExists, path, "exists"));
        }
        let content = if exists {
            let content = self.content(&overlay, path)?;
            if options.truncate {
                *lock(&content) = Content::Memory(Vec::new());
            }
            content
        } else if options.create || options.create_new {
            self.parent_is_dir(&overlay, path)?;
            Arc::new(Mutex::new(Content::Memory(Vec::new())))
        } else {
            return Err(error(io::ErrorKind::NotFound, path, "does not exist"));
        };
        if options.write {
            // Kept by name, so every later open sees what this handle changes.
            overlay.files.insert(path.to_path_buf(), Arc::clone(&content));
        }
        Ok(OverlayFile { content, readable: options.read, writable: options.write })
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut overlay = lock(&self.overlay);
        if self.exists_locked(&overlay, path)? {
            return Err(error(io::ErrorKind::AlreadyExists, path, "exists"));
        }
        self.parent_is_dir(&overlay, path)?;
        overlay.hidden.remove(path);
        overlay.dirs.insert(path.to_path_buf());
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        if !self.list_dir(path)?.is_empty() {
            return Err(error(io::ErrorKind::DirectoryNotEmpty, path, "is not empty"));
        }
        let mut overlay = lock(&self.overlay);
        overlay.dirs.remove(path);
        overlay.hidden.insert(path.to_path_buf());
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let overlay = lock(&self.overlay);
        if !self.is_dir_locked(&overlay, path)? {
            return Err(error(io::ErrorKind::NotFound, path, "is not a directory"));
        }
        let mut names = BTreeSet::new();
        if !overlay.dirs.contains(path) {
            names.extend(self.inner.list_dir(path)?);
        }
        names.retain(|name| !overlay.hidden.contains(&path.join(name)));
        for added in overlay.files.keys().chain(&overlay.dirs) {
            if let (Some(parent), Some(name)) = (added.parent(), added.file_name())
                && parent == path
            {
                names.insert(name.to_string_lossy().into_owned());
            }
        }
        Ok(names.into_iter().collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut overlay = lock(&self.overlay);
        if self.is_dir_locked(&overlay, from)? {
            return Err(error(io::ErrorKind::Unsupported, from, "is a directory"));
        }
        self.parent_is_dir(&overlay, to)?;
        if self.is_dir_locked(&overlay, to)? {
            return Err(error(io::ErrorKind::IsADirectory, to, "is a directory"));
        }
        let content = self.content(&overlay, from)?;
        if from == to {
            return Ok(());
        }
        overlay.files.remove(from);
        overlay.hidden.insert(from.to_path_buf());
        overlay.files.insert(to.to_path_buf(), content);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut overlay = lock(&self.overlay);
        if self.is_dir_locked(&overlay, path)? {
            return Err(error(io::ErrorKind::IsADirectory, path, "is a directory"));
        }
        if !self.exists_locked(&overlay, path)? {
            return Err(error(io::ErrorKind::NotFound, path, "does not exist"));
        }
        overlay.files.remove(path);
        overlay.hidden.insert(path.to_path_buf());
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.exists_locked(&lock(&self.overlay), path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        match self.is_dir_locked(&lock(&self.overlay), path)? {
            true => Ok(()),
            false => Err(error(io::ErrorKind::NotFound, path, "is not a directory")),
        }
    }

    /// A shared lock on the inner `Env` (the overlay never writes, so readers coexist).
    fn lock_dir(&self, path: &Path) -> io::Result<Self::DirLock> {
        let overlay = lock(&self.overlay);
        if overlay.dirs.contains(path) {
            return Ok(None);
        }
        drop(overlay);
        self.inner.lock_dir_shared(path)
    }

    fn lock_dir_shared(&self, path: &Path) -> io::Result<Option<Self::DirLock>> {
        self.lock_dir(path).map(Some)
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

    fn parallelism(&self) -> usize {
        self.inner.parallelism()
    }
}
