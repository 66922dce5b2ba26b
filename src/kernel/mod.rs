//! The front door: [`Kernel`], an embeddable store of many shards in one directory.
//!
//! [`Kernel::open`] takes the directory lock (a second open fails with
//! [`KernelError::Locked`]), creates the directory crash-safely or checks that it was created
//! with the same shard count and router ([`layout`]), then recovers every shard independently
//! (in parallel threads where the `Env` allows, in shard order in the simulator). A shard that
//! cannot recover, or later hits an I/O or sync failure, is *failed*: its operations return
//! [`KernelError::Shard`] naming it, and every other shard keeps serving
//! ([`Kernel::shard_status`] reports each one). A shard whose recovery failed at open with an
//! I/O error can be recovered again in the same process with [`Kernel::reopen_shard`]; after a
//! failed sync in it (fsyncgate) that is refused, and the retry is a new process.
//!
//! # Transactions
//!
//! A [`Transaction`] buffers its writes (reads through it see them) and commits them as one
//! WAL record of one shard, so it is atomic and its increments are resolved under the shard's
//! lock. Transactions spanning shards are **rejected** ([`KernelError::CrossShard`]), at the
//! first write that routes elsewhere: an atomic cross-shard commit needs a coordinator record
//! and a recovery rule over several independent logs, and every shard's independent recovery
//! is what keeps a failed shard from stopping the others. Keep related keys in one shard with
//! [`Router::Prefix`].
//!
//! # Durability
//!
//! `commit(Durability::None)` returns once the record is appended (it survives a process
//! crash only if the OS writes it back, and a machine crash may lose it); `Data` and `All`
//! return once a group sync covers it. Many threads committing to one shard share syncs
//! (leader/follower group commit of [`crate::wal::shared`]). A [`SyncHandle`] tracks a
//! `None` commit until it is durable.
//!
//! # Background work
//!
//! The kernel starts no thread of its own. [`Kernel::tick`] does the background work: each shard
//! writes and publishes the checkpoint a commit froze (past half the WAL-bytes cap) or
//! [`Kernel::begin_checkpoint`] froze, or checkpoints when an epoch trigger fires (operations, WAL
//! bytes, time; the WAL-bytes trigger caps the WAL to replay after a crash), and, with
//! `sync_on_tick`, syncs unsynced commits. A checkpoint is written outside the shard's commit lock:
//! commits go on meanwhile (see `shard::checkpointing`). Then a shard whose every record is durable
//! but whose newest record no durable record vouches for appends and syncs an empty vouching
//! record, so rot in the last acknowledged commit is detected at recovery instead of taken for a
//! torn tail (DESIGN.md rule 18); an idle shard does this once, not at every tick. Last, each shard
//! writes its WAL's next preallocation step once the tail has passed half of the last one, and
//! syncs the new length unless a commit's sync is in flight (`Shard::prepare_wal_ahead`), so that
//! growth is not left to a commit's `fdatasync` (on ext4 the first sync after a file grows commits
//! the journal). The simulator calls it at chosen times; [`Kernel::spawn_ticker`] runs it on a
//! thread for real-OS users.

mod buffer;
mod config;
mod error;
pub mod layout;
mod ranges;
mod read_only;
mod reopen;
mod ticker;
mod txn;

use std::collections::BTreeSet;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};

pub use config::{
    Config, ConfigBuilder, DOCUMENT_ID_BYTES_MAX, KEY_BYTES_MAX, ProgressCallback, Router, SHARDS_MAX,
    TRANSACTION_BYTES_MAX, VALUE_BYTES_MAX,
};
pub use error::{KernelError, ReopenRefusal};
pub use ranges::DurableResult;
pub use ticker::Ticker;
pub use txn::{CommitInfo, Document, SyncHandle, Transaction};

use crate::env::Env;
use crate::recovery::{Helpers, RecoveryReport};
use crate::shard::{Failure, Intent, Shard, ShardError, ShardStats, ShardStatus, Tick};
use crate::wal::{Durability, Lsn, StoreIdentity};
use layout::KernelMeta;

/// Key-value pairs in key order, as scans return them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Counters of the whole kernel, and of each shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// The sum over shards.
    pub total: ShardStats,
    /// Each shard's, in shard order.
    pub shards: Vec<ShardStats>,
}

/// What one [`Kernel::tick`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Checkpoints published: (shard, checkpoint id).
    pub checkpoints: Vec<(u32, u64)>,
    /// Shards whose unsynced commits were synced.
    pub synced: Vec<u32>,
    /// Shards that appended and synced an empty record vouching for their newest durable
    /// record: (shard, its lsn).
    pub vouched: Vec<(u32, u64)>,
    /// Shards that failed during this tick, with the error.
    pub failed: Vec<(u32, ShardError)>,
    /// Shards with background work left that the next tick goes on with (a checkpoint
    /// being written, or the merge after one): a ticker calls again without waiting.
    pub busy: Vec<u32>,
}

/// An open store: see the module docs.
pub struct Kernel<E: Env> {
    env: E,
    dir: PathBuf,
    config: Config,
    shards: Vec<Shard<E>>,
    _lock: E::DirLock,
    /// Opened with [`Kernel::open_read_only`]: every write is refused.
    read_only: bool,
    /// Emptied write buffers of committed transactions, for the next ones.
    buffers: buffer::BufferPool,
    /// The store's identity, drawn at creation (every shard's files carry it).
    store_id: u64,
}

impl<E: Env> std::fmt::Debug for Kernel<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("dir", &self.dir).field("shards", &self.shards.len()).finish()
    }
}

fn check_key(key: &[u8]) -> Result<(), KernelError> {
    if key.len() > KEY_BYTES_MAX {
        return Err(KernelError::InvalidInput(format!(
            "a key of {} bytes is longer than {KEY_BYTES_MAX}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), KernelError> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(KernelError::InvalidInput(format!(
            "a value of {} bytes is longer than {VALUE_BYTES_MAX}",
            value.len()
        )));
    }
    Ok(())
}

impl<E: Env + Clone> Kernel<E> {
    /// Opens the kernel in `dir`, creating it if needed, and recovers every shard. A shard
    /// that cannot recover opens failed (see [`Kernel::shard_status`]) while the others
    /// serve; when fewer than [`crate::ConfigBuilder::min_serving_shards`] serve (by default:
    /// none), the open fails with [`KernelError::TooFewShardsServing`] naming each failure.
    ///
    /// ```
    /// use stormhold::{Config, Durability, Kernel, env::OsEnv};
    /// let dir = tempfile::tempdir()?;
    /// let kernel = Kernel::open(OsEnv::new(), dir.path(), Config::builder().shards(2).build()?)?;
    /// kernel.put(b"greeting", b"hello", Durability::Data)?;
    /// assert_eq!(kernel.get(b"greeting")?, Some(b"hello".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(env: E, dir: &Path, config: Config) -> Result<Self, KernelError> {
        match env.create_dir(dir) {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(KernelError::io("create directory", dir, error));
            }
            _ => {}
        }
        // Always, not only when this call created it: an earlier process may have died (or
        // its sync failed) between the creation and the sync, leaving the entry only in the
        // page cache.
        let parent = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        env.sync_dir(parent).map_err(|e| KernelError::io("sync directory", parent, e))?;
        let lock = env.lock_dir(dir).map_err(|error| match error.kind() {
            std::io::ErrorKind::WouldBlock => KernelError::Locked { path: dir.to_path_buf() },
            _ => KernelError::io("lock directory", dir, error),
        })?;
        let wanted = KernelMeta { shards: config.shards, router: config.router, store_id: 0 };
        let store_id = match layout::read_meta(&env, dir)? {
            // Sync even when `KERNEL` was found: an earlier open may have renamed it into
            // place and failed (or died) before its directory sync was durable.
            Some(found) if found.same_config(&wanted) => {
                env.sync_dir(dir).map_err(|e| KernelError::io("sync directory", dir, e))?;
                found.store_id
            }
            Some(found) => {
                return Err(KernelError::ConfigMismatch {
                    path: dir.to_path_buf(),
                    detail: format!(
                        "created with {} shards and {:?}; opened with {} shards and {:?} (both are fixed at creation)",
                        found.shards, found.router, wanted.shards, wanted.router
                    ),
                });
            }
            None => {
                if let Some(shard_dir) = layout::find_shard_data(&env, dir)? {
                    let path = dir.join(layout::KERNEL_FILE_NAME);
                    return Err(KernelError::KernelFileMissing { path, shard_dir });
                }
                let created = KernelMeta { store_id: layout::draw_store_id(&env, dir), ..wanted };
                layout::create(&env, dir, &created)?;
                created.store_id
            }
        };
        let shards = Self::open_shards(&env, dir, &config, store_id);
        check_serving_shards(dir, &config, &shards)?;
        let buffers = buffer::BufferPool::default();
        Ok(Self {
            env,
            dir: dir.to_path_buf(),
            config,
            shards,
            _lock: lock,
            read_only: false,
            buffers,
            store_id,
        })
    }

    fn open_shards(env: &E, dir: &Path, config: &Config, store_id: u64) -> Vec<Shard<E>> {
        // Precondition: the config was validated (at least one shard).
        debug_assert!(config.shards >= 1, "a kernel has at least one shard");
        let shards = Self::open_shards_unchecked(env, dir, config, store_id);
        // Postconditions: one shard per index, in order, failed or serving.
        debug_assert_eq!(shards.len(), config.shards as usize, "every shard is opened");
        debug_assert!(shards.iter().enumerate().all(|(i, s)| s.id() == i as u32), "shards are in order");
        shards
    }

    fn open_shards_unchecked(env: &E, dir: &Path, config: &Config, store_id: u64) -> Vec<Shard<E>> {
        let budget = match config.recovery_threads {
            0 => env.parallelism(),
            n => n.min(env.parallelism().max(1)),
        };
        let threads = budget.clamp(1, config.shards as usize);
        // A shard recovering beside a spare thread of the budget gets it as a helper.
        let helpers = Helpers::for_budget(budget, threads);
        let open = |id: u32| Self::open_shard_with(env, dir, config, store_id, id, helpers);
        if threads == 1 {
            return (0..config.shards).map(open).collect();
        }
        let ids: Vec<u32> = (0..config.shards).collect();
        let chunk = ids.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .chunks(chunk)
                .map(|chunk| scope.spawn(move || chunk.iter().map(|&id| open(id)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        })
    }

    /// Opens (recovers) shard `id`; a shard that cannot recover opens failed.
    fn open_shard(env: &E, dir: &Path, config: &Config, store_id: u64, id: u32) -> Shard<E> {
        Self::open_shard_with(env, dir, config, store_id, id, Helpers::None)
    }

    /// [`Kernel::open_shard`], recovering with `helpers`.
    fn open_shard_with(
        env: &E,
        dir: &Path,
        config: &Config,
        store_id: u64,
        id: u32,
        helpers: Helpers,
    ) -> Shard<E> {
        let shard_dir = layout::shard_dir(dir, id);
        let failed = |failure: Failure| Shard::failed(id, env.clone(), &shard_dir, failure);
        match env.exists(&shard_dir) {
            // `KERNEL` is durable only after every shard directory is: a missing one was
            // removed, never "not created yet". Recreating it would serve it empty.
            Ok(false) => return failed(Failure::missing_directory(&shard_dir)),
            Err(error) => return failed(Failure::io("", &shard_dir, error)),
            Ok(true) => {}
        }
        // A panic while recovering one shard (a bug, or disk contents nothing checks) fails
        // that shard only.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut options = config.shard.clone();
            options.wal.identity = StoreIdentity { store_id, shard: id, shards: config.shards };
            options.checkpoint.identity = options.wal.identity;
            Shard::open_with(id, env.clone(), &shard_dir, &options, config.progress.as_deref(), helpers)
        }))
        .unwrap_or_else(|_| failed(Failure::panic("recovery")))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The `Env` the kernel runs on.
    pub fn env(&self) -> &E {
        &self.env
    }

    /// The shard `key` routes to.
    pub fn shard_of(&self, key: &[u8]) -> u32 {
        self.config.router.route(key, self.config.shards)
    }

    /// Shard `id`, to commit to: refused on a read-only kernel.
    fn writable_shard(&self, id: u32) -> Result<&Shard<E>, KernelError> {
        self.check_writable()?;
        Ok(self.shard(id))
    }

    fn check_writable(&self) -> Result<(), KernelError> {
        match self.read_only {
            true => Err(KernelError::ReadOnly { path: self.dir.clone() }),
            false => Ok(()),
        }
    }

    /// Whether the kernel was opened with [`Kernel::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn shard(&self, id: u32) -> &Shard<E> {
        assert!(id < self.config.shards, "routing yields a shard below the count");
        &self.shards[id as usize]
    }

    /// Shard `id`, if the kernel has it (`CommitInfo` fields are public, so not trusted).
    fn shard_checked(&self, id: u32) -> Result<&Shard<E>, KernelError> {
        self.shards.get(id as usize).ok_or_else(|| {
            KernelError::InvalidInput(format!(
                "shard {id} does not exist (the kernel has {})",
                self.shards.len()
            ))
        })
    }

    fn shard_result<T>(id: u32, result: Result<T, ShardError>) -> Result<T, KernelError> {
        result.map_err(|error| KernelError::Shard { shard: id, error })
    }

    /// The value of `key`, unsynced commits included.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KernelError> {
        check_key(key)?;
        let id = self.shard_of(key);
        Self::shard_result(id, self.shard(id).get(key))
    }

    /// The u64 counter at `key`, as [`Kernel::increment`] keeps it (`None`: the key is
    /// absent). A value that is not 8 bytes is [`ShardError::NotACounter`].
    ///
    /// ```
    /// # use stormhold::{Config, Durability, Kernel, env::OsEnv};
    /// # let dir = tempfile::tempdir()?;
    /// # let kernel = Kernel::open(OsEnv::new(), dir.path(), Config::builder().build()?)?;
    /// assert_eq!(kernel.get_counter(b"visits")?, None);
    /// kernel.increment(b"visits", 3, Durability::None)?;
    /// assert_eq!(kernel.get_counter(b"visits")?, Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_counter(&self, key: &[u8]) -> Result<Option<u64>, KernelError> {
        let value = self.get(key)?;
        let id = self.shard_of(key);
        value.map(|v| Self::shard_result(id, crate::shard::counter_value(key, Some(&v)))).transpose()
    }

    /// The entries with keys in `range`, in key order, across shards. Fails if a shard it
    /// must read is failed (a scan never silently skips a shard).
    ///
    /// ```
    /// # use stormhold::{Config, Durability, Kernel, env::OsEnv};
    /// # let dir = tempfile::tempdir()?;
    /// # let kernel = Kernel::open(OsEnv::new(), dir.path(), Config::builder().build()?)?;
    /// for key in [b"a", b"b", b"c"] {
    ///     kernel.put(key, b"1", Durability::None)?;
    /// }
    /// let keys: Vec<_> = kernel.scan(b"a".as_slice()..b"c".as_slice())?.into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<Entries, KernelError> {
        fn bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<&[u8]> {
            match b {
                Bound::Included(k) => Bound::Included(k.as_ref()),
                Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
                Bound::Unbounded => Bound::Unbounded,
            }
        }
        self.scan_bounds(bound(range.start_bound()), bound(range.end_bound()))
    }

    fn scan_bounds(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Result<Entries, KernelError> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(Self::shard_result(shard.id(), shard.scan(start, end))?);
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The entries whose keys start with `prefix`, in key order. With a prefix router and a
    /// prefix at least as long as the router's, only one shard is read.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, KernelError> {
        check_key(prefix)?;
        let end = prefix_end(prefix);
        let end_bound = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        match self.config.router {
            Router::Prefix { len_bytes } if prefix.len() >= len_bytes as usize => {
                let id = self.shard_of(prefix);
                Self::shard_result(id, self.shard(id).scan(Bound::Included(prefix), end_bound))
            }
            _ => self.scan_bounds(Bound::Included(prefix), end_bound),
        }
    }

    /// Sets `key` to `value` in a transaction of its own; returns the commit's lsn.
    pub fn put(&self, key: &[u8], value: &[u8], durability: Durability) -> Result<Lsn, KernelError> {
        let mut txn = self.begin();
        txn.put(key, value)?;
        Ok(txn.commit(durability)?.lsn)
    }

    /// Removes `key` in a transaction of its own; returns the commit's lsn.
    pub fn delete(&self, key: &[u8], durability: Durability) -> Result<Lsn, KernelError> {
        let mut txn = self.begin();
        txn.delete(key)?;
        Ok(txn.commit(durability)?.lsn)
    }

    /// Adds `by` to the u64 counter at `key` (an absent key counts as 0; a value that is not 8
    /// bytes is an error) and returns the new value.
    pub fn increment(&self, key: &[u8], by: u64, durability: Durability) -> Result<u64, KernelError> {
        check_key(key)?;
        let id = self.shard_of(key);
        let committed = Self::shard_result(
            id,
            self.writable_shard(id)?.commit(vec![(key.to_vec(), Intent::Add(by))], None, durability),
        )?;
        Ok(committed.counters.get(key).copied().expect("an increment reports its counter"))
    }

    /// Starts a transaction.
    pub fn begin(&self) -> Transaction<'_, E> {
        Transaction::new(self)
    }

    /// Starts (or resumes, after a crash) importing document `id`. A document lives in the
    /// shard of its first key (of its id, if it has no keys); once that shard is known, if
    /// the document is already complete there, the handle ignores every insert and commits
    /// nothing: re-importing is idempotent. Only that shard is read, so a failed shard
    /// elsewhere does not stop the import.
    pub fn begin_document(&self, id: &str) -> Result<Document<'_, E>, KernelError> {
        if id.is_empty() || id.len() > DOCUMENT_ID_BYTES_MAX {
            return Err(KernelError::InvalidInput(format!(
                "a document id must be 1..={DOCUMENT_ID_BYTES_MAX} bytes, not {}",
                id.len()
            )));
        }
        Ok(Document::new(self, id))
    }

    /// Whether document `id` was committed complete. Reads every shard until it finds it
    /// (the caller does not say which shard holds it), so it may fail while a shard is failed.
    pub fn is_document_completed(&self, id: &str) -> Result<bool, KernelError> {
        for shard in &self.shards {
            if Self::shard_result(shard.id(), shard.is_document_completed(id))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The ids of every document committed complete.
    pub fn completed_documents(&self) -> Result<BTreeSet<String>, KernelError> {
        let mut out = BTreeSet::new();
        for shard in &self.shards {
            out.extend(Self::shard_result(shard.id(), shard.completed_documents())?);
        }
        Ok(out)
    }

    /// Checkpoints every serving shard; returns (shard, checkpoint id) of each. Every shard is
    /// tried; the first failure is returned after all were.
    pub fn checkpoint(&self) -> Result<Vec<(u32, u64)>, KernelError> {
        self.check_writable()?;
        let mut out = Vec::new();
        let mut first_error = None;
        for shard in &self.shards {
            match shard.checkpoint() {
                Ok(id) => out.push((shard.id(), id)),
                Err(error) => {
                    first_error.get_or_insert(KernelError::Shard { shard: shard.id(), error });
                }
            }
        }
        first_error.map_or(Ok(out), Err)
    }

    /// Freezes a checkpoint of every serving shard now, without I/O; [`Kernel::tick`] (or
    /// [`Kernel::checkpoint`]) writes and publishes it while commits go on. Returns (shard,
    /// lsn covered) for each shard that froze one (a shard with nothing new since its last
    /// checkpoint freezes none). Every shard is tried; the first failure is returned after.
    pub fn begin_checkpoint(&self) -> Result<Vec<(u32, u64)>, KernelError> {
        let mut out = Vec::new();
        let mut first_error = None;
        for shard in &self.shards {
            match shard.begin_checkpoint() {
                Ok(lsn) => out.extend(lsn.map(|lsn| (shard.id(), lsn))),
                Err(error) => {
                    first_error.get_or_insert(KernelError::Shard { shard: shard.id(), error });
                }
            }
        }
        first_error.map_or(Ok(out), Err)
    }

    /// Makes every commit so far durable on every shard. Every shard is tried; the first
    /// failure is returned after all were.
    pub fn sync(&self, durability: Durability) -> Result<(), KernelError> {
        self.check_writable()?;
        let mut first_error = None;
        for shard in &self.shards {
            if let Err(error) = shard.sync(durability) {
                first_error.get_or_insert(KernelError::Shard { shard: shard.id(), error });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Runs the background work once (see the module docs). Failed shards are skipped; a
    /// shard that fails during the tick is reported in [`TickReport::failed`]. A read-only
    /// kernel has no background work: its tick does nothing.
    pub fn tick(&self) -> TickReport {
        let mut report = TickReport::default();
        if self.read_only {
            return report;
        }
        for shard in self.shards.iter().filter(|s| s.status().failed.is_none()) {
            match shard.tick(self.config.sync_on_tick) {
                Ok(Tick { checkpoint, synced, vouched, busy }) => {
                    report.checkpoints.extend(checkpoint.map(|id| (shard.id(), id)));
                    if busy {
                        report.busy.push(shard.id());
                    }
                    report.vouched.extend(vouched.map(|lsn| (shard.id(), lsn)));
                    if synced {
                        report.synced.push(shard.id());
                    }
                }
                Err(error) => {
                    report.failed.push((shard.id(), error));
                    continue;
                }
            }
            // The next preallocation step of the WAL, with the sync of its length, here
            // rather than in a commit's sync.
            if let Err(error) = shard.prepare_wal_ahead() {
                report.failed.push((shard.id(), error));
            }
        }
        report
    }

    /// Syncs every serving shard and closes the kernel. Returns the first failure; the
    /// directory lock is released either way. A read-only kernel syncs nothing.
    pub fn close(self) -> Result<(), KernelError> {
        let mut first_error = None;
        for shard in self.shards.iter().filter(|s| !self.read_only && s.status().failed.is_none()) {
            // The floor marker records how far each WAL reached, so a WAL found shorter at
            // the next open (its newest segment deleted, truncated or zeroed) is a loss.
            // And the space of what retention took out, removed now rather than by the next
            // open (see `shard::reclaim`).
            let closed = shard.sync(Durability::Data).and_then(|_| shard.record_floor());
            if let Err(error) = closed.and_then(|_| shard.reclaim_all()) {
                first_error.get_or_insert(KernelError::Shard { shard: shard.id(), error });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The state of every shard, in shard order.
    pub fn shard_status(&self) -> Vec<ShardStatus> {
        self.shards.iter().map(Shard::status).collect()
    }

    /// What each shard's recovery did at open (`None` for a shard that failed to open).
    pub fn recovery_reports(&self) -> Vec<Option<RecoveryReport>> {
        self.shards.iter().map(|s| s.recovery_report().cloned()).collect()
    }

    /// Counters, per shard and summed.
    pub fn stats(&self) -> KernelStats {
        let shards: Vec<ShardStats> = self.shards.iter().map(Shard::stats).collect();
        let mut total = ShardStats::default();
        for s in &shards {
            total.entries += s.entries;
            total.reads += s.reads;
            total.writes += s.writes;
            total.commits += s.commits;
            total.syncs += s.syncs;
            total.checkpoints += s.checkpoints;
            total.wal_bytes += s.wal_bytes;
            total.checkpoint_chunks += s.checkpoint_chunks;
            total.backpressure_steps += s.backpressure_steps;
        }
        KernelStats { total, shards }
    }

    /// A handle that tells when a commit becomes durable.
    pub fn sync_handle(&self, commit: &CommitInfo) -> SyncHandle<'_, E> {
        SyncHandle::new(self, commit)
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The open policy of [`ConfigBuilder::min_serving_shards`]: an error naming every failed
/// shard when fewer than the minimum opened serving.
pub(crate) fn check_serving_shards<E: Env + Clone>(
    dir: &Path,
    config: &Config,
    shards: &[Shard<E>],
) -> Result<(), KernelError> {
    let failures: Vec<(u32, Failure)> = shards
        .iter()
        .filter_map(|shard| shard.status().failed.map(|failure| (shard.id(), failure)))
        .collect();
    let serving = config.shards - failures.len() as u32;
    if serving >= config.min_serving_shards {
        return Ok(());
    }
    Err(KernelError::TooFewShardsServing {
        path: dir.to_path_buf(),
        serving,
        required: config.min_serving_shards,
        failures,
    })
}
