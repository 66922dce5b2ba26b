//! Bounded and reverse scans, and durability callbacks, of a [`Kernel`].
//!
//! A bounded scan reads at most `limit` entries from each shard it must read (one shard when
//! the range lies under one prefix of a prefix router) and merges them, so reading "the first
//! n" or "the last key" of a range costs O(n) per shard, not the range's size. Like
//! [`Kernel::scan`], it fails rather than skip a failed shard.

use std::ops::{Bound, RangeBounds};

use super::{CommitInfo, Entries, Kernel, KernelError, Router};
use crate::env::Env;
use crate::shard::ShardError;
use crate::wal::Lsn;

fn bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// One key-value pair.
pub type Entry = (Vec<u8>, Vec<u8>);

/// What a durability callback of [`Kernel::on_durable`] is given: `Ok(durable lsn)` once the
/// commit is durable, or the error of its shard if it failed first (the outcome is unknown).
pub type DurableResult = Result<Lsn, KernelError>;

impl<E: Env + Clone> Kernel<E> {
    /// The shards a range may touch: one if both bounds lie under one prefix of a prefix
    /// router, else all.
    fn shards_of(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Vec<u32> {
        if let (
            Router::Prefix { len_bytes },
            Bound::Included(s) | Bound::Excluded(s),
            Bound::Included(e) | Bound::Excluded(e),
        ) = (self.config.router, start, end)
        {
            let len = len_bytes as usize;
            if s.len() >= len && e.len() >= len && s[..len] == e[..len] {
                return vec![self.shard_of(s)];
            }
        }
        (0..self.config.shards).collect()
    }

    fn scan_limited_bounds(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Entries, KernelError> {
        let mut out = Vec::new();
        for id in self.shards_of(start, end) {
            out.extend(Self::shard_result(id, self.shard(id).scan_limited(start, end, limit, reverse))?);
        }
        if reverse {
            out.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        } else {
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The first `limit` entries with keys in `range`, in key order.
    ///
    /// ```
    /// # use stormhold::{Config, Durability, Kernel, env::OsEnv};
    /// # let dir = tempfile::tempdir()?;
    /// # let kernel = Kernel::open(OsEnv::new(), dir.path(), Config::builder().shards(3).build()?)?;
    /// for key in [b"a", b"b", b"c"] {
    ///     kernel.put(key, b"1", Durability::None)?;
    /// }
    /// let first = kernel.scan_range(b"a".as_slice().., 2)?;
    /// assert_eq!(first.iter().map(|(k, _)| k.as_slice()).collect::<Vec<_>>(), [b"a", b"b"]);
    /// assert_eq!(kernel.last_in_range(..b"c".as_slice())?.unwrap().0, b"b");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan_range<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        limit: usize,
    ) -> Result<Entries, KernelError> {
        self.scan_limited_bounds(bound(range.start_bound()), bound(range.end_bound()), limit, false)
    }

    /// The last `limit` entries with keys in `range`, in descending key order.
    pub fn scan_range_rev<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        limit: usize,
    ) -> Result<Entries, KernelError> {
        self.scan_limited_bounds(bound(range.start_bound()), bound(range.end_bound()), limit, true)
    }

    /// The entry with the greatest key in `range`, if any.
    pub fn last_in_range<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
    ) -> Result<Option<Entry>, KernelError> {
        Ok(self.scan_range_rev(range, 1)?.pop())
    }

    /// Calls `callback` once `commit` is durable: at once (in this call) if it already is,
    /// else from whichever call next makes its shard's WAL durable past it (a committer's
    /// group sync, [`Kernel::sync`], [`Kernel::tick`], a checkpoint). No thread waits for
    /// it; with nobody syncing, it waits. If the shard fails first, the callback gets the
    /// error. A commit that wrote nothing is durable at once.
    ///
    /// ```
    /// # use stormhold::{Config, Durability, Kernel, env::OsEnv};
    /// # use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// # let dir = tempfile::tempdir()?;
    /// # let kernel = Kernel::open(OsEnv::new(), dir.path(), Config::builder().build()?)?;
    /// let mut txn = kernel.begin();
    /// txn.put(b"k", b"v")?;
    /// let commit = txn.commit(Durability::None)?;
    /// let fired = Arc::new(AtomicBool::new(false));
    /// let flag = Arc::clone(&fired);
    /// kernel.on_durable(&commit, Box::new(move |result| flag.store(result.is_ok(), Ordering::SeqCst)))?;
    /// kernel.sync(Durability::Data)?; // or a tick, or another committer's sync
    /// assert!(fired.load(Ordering::SeqCst));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_durable(
        &self,
        commit: &CommitInfo,
        callback: Box<dyn FnOnce(DurableResult) + Send>,
    ) -> Result<(), KernelError> {
        let Some(id) = commit.shard else {
            callback(Ok(commit.lsn));
            return Ok(());
        };
        let shard = self.shard_checked(id)?;
        let callback = move |result: Result<Lsn, ShardError>| {
            callback(result.map_err(|error| KernelError::Shard { shard: id, error }));
        };
        shard.on_durable(commit.lsn, Box::new(callback));
        Ok(())
    }

    /// Durability callbacks still waiting, over all shards.
    pub fn durable_waiters(&self) -> usize {
        self.shards.iter().map(|s| s.durable_waiters()).sum()
    }
}
