//! Opening a store that exists: [`Kernel::open_existing`] with the shard count and router it
//! was created with, and [`Kernel::open_read_only`], which writes nothing at all.
//!
//! Invariants of a read-only open:
//! - it takes no exclusive lock: a shared one ([`Env::lock_dir_shared`]) where the `Env` has
//!   it, so it fails with [`KernelError::Locked`] while a writer holds the store, and a
//!   writer cannot open the store while it is held;
//! - nothing reaches the caller's `Env` but reads: recovery runs on an [`OverlayEnv`], so the
//!   repairs a writable open makes (truncating a torn WAL tail, removing partial checkpoint
//!   directories, creating a missing directory, syncing) happen in memory only, and the
//!   recovery reports say what a writable open would do;
//! - every write, sync and checkpoint returns [`KernelError::ReadOnly`]; `tick` and `close`
//!   do nothing.

use std::path::Path;

use super::layout::{self, KernelMeta};
use super::{Config, Kernel, KernelError};
use crate::env::{Env, OverlayEnv};

fn locked_or_io<'a>(dir: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> KernelError + 'a {
    move |error| match error.kind() {
        std::io::ErrorKind::WouldBlock => KernelError::Locked { path: dir.to_path_buf() },
        _ => KernelError::io(what, dir, error),
    }
}

/// `options` with the shard count and router of the store in `dir`, read from `KERNEL`.
/// Also the store's identity, which its shards' files must carry.
fn existing_config<E: Env>(env: &E, dir: &Path, options: Config) -> Result<(Config, u64), KernelError> {
    let KernelMeta { shards, router, store_id } =
        layout::read_meta(env, dir)?.ok_or_else(|| KernelError::NoStore { path: dir.to_path_buf() })?;
    Ok((Config { shards, router, ..options }, store_id))
}

impl<E: Env + Clone> Kernel<E> {
    /// Opens the store in `dir` with the shard count and router it was created with (read
    /// from its `KERNEL` file; every other option is the default). Fails with
    /// [`KernelError::NoStore`] if `dir` holds no store: it never creates one.
    ///
    /// ```
    /// # use stormhold::{Config, Durability, Kernel, Router, env::OsEnv};
    /// # let dir = tempfile::tempdir()?;
    /// let config = Config::builder().shards(3).router(Router::Prefix { len_bytes: 2 }).build()?;
    /// Kernel::open(OsEnv::new(), dir.path(), config)?.close()?;
    /// let kernel = Kernel::open_existing(OsEnv::new(), dir.path())?;
    /// assert_eq!(kernel.config().shards(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_existing(env: E, dir: &Path) -> Result<Self, KernelError> {
        Self::open_existing_with(env, dir, Config::default())
    }

    /// [`Kernel::open_existing`] with the options of `options` (WAL, checkpoints, epochs,
    /// recovery threads, progress) and the shard count and router the store was created with
    /// (those of `options` are ignored).
    pub fn open_existing_with(env: E, dir: &Path, options: Config) -> Result<Self, KernelError> {
        let (config, _) = existing_config(&env, dir, options)?;
        Self::open(env, dir, config)
    }

    /// Opens the store in `dir` read-only, with the config it was created with: see the
    /// module docs. Works on a read-only directory (a read-only mount, a user without write
    /// permission) and beside other read-only opens.
    ///
    /// ```
    /// # use stormhold::{Config, Durability, Kernel, KernelError, env::OsEnv};
    /// # let dir = tempfile::tempdir()?;
    /// # let kernel = Kernel::open(OsEnv::new(), dir.path(), Config::builder().build()?)?;
    /// # kernel.put(b"k", b"v", Durability::Data)?;
    /// # kernel.close()?;
    /// let kernel = Kernel::open_read_only(OsEnv::new(), dir.path())?;
    /// assert_eq!(kernel.get(b"k")?, Some(b"v".to_vec()));
    /// assert!(matches!(kernel.put(b"k", b"w", Durability::Data), Err(KernelError::ReadOnly { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_read_only(env: E, dir: &Path) -> Result<Kernel<OverlayEnv<E>>, KernelError> {
        let lock = env.lock_dir_shared(dir).map_err(locked_or_io(dir, "lock directory (shared)"))?;
        let (mut config, store_id) = existing_config(&env, dir, Config::default())?;
        // Preallocating the active segment would copy it into memory for nothing.
        config.shard.wal.preallocate = false;
        let overlay = OverlayEnv::new(env);
        let shards = Kernel::open_shards(&overlay, dir, &config, store_id);
        super::check_serving_shards(dir, &config, &shards)?;
        let buffers = super::buffer::BufferPool::default();
        Ok(Kernel {
            env: overlay,
            dir: dir.to_path_buf(),
            config,
            shards,
            _lock: lock,
            read_only: true,
            buffers,
            store_id,
        })
    }
}
