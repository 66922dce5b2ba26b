//! Transactions, document imports and sync handles: the kernel's client-side buffers.
//!
//! A [`Transaction`] and a [`Document`] buffer writes in memory, bound to the shard of their
//! first key; nothing reaches the disk before `commit`, so dropping one is an abort. The
//! buffer ([`WriteBuffer`]) is the encoded WAL record itself, so a commit copies nothing.

use std::time::Duration;

use super::buffer::{Latest, WriteBuffer};
use super::{Kernel, KernelError, check_key, check_value};
use crate::env::Env;
use crate::shard::record::DocMark;
use crate::shard::{ShardError, counter_value};
use crate::wal::{Durability, Lsn};

/// What a commit returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The shard the commit went to (`None`: there was nothing to write).
    pub shard: Option<u32>,
    /// The lsn of its record in that shard's WAL.
    pub lsn: Lsn,
}

fn bind<E: Env + Clone>(kernel: &Kernel<E>, bound: &mut Option<u32>, key: &[u8]) -> Result<u32, KernelError> {
    check_key(key)?;
    // One shard: every key routes to it (`route` is a hash mod 1); a bulk load of one shard
    // skips hashing each key.
    let key_shard = if kernel.config.shards == 1 { 0 } else { kernel.shard_of(key) };
    match *bound {
        Some(bound_to) if bound_to != key_shard => {
            Err(KernelError::CrossShard { bound_to, key: key.to_vec(), key_shard })
        }
        _ => {
            *bound = Some(key_shard);
            Ok(key_shard)
        }
    }
}

/// Adds `by` to the counter at `key` in `writes` of `shard`: merged with an earlier
/// increment, or resolved against an earlier put or delete; a refused increment leaves the
/// earlier write in place.
pub(super) fn increment_in(
    writes: &mut WriteBuffer,
    shard: u32,
    key: &[u8],
    by: u64,
) -> Result<(), KernelError> {
    let overflow = || KernelError::Shard { shard, error: ShardError::CounterOverflow { key: key.to_vec() } };
    match writes.latest_mut(key) {
        Latest::Unwritten => writes.set_add(key, by),
        Latest::Add(earlier) => writes.set_add(key, earlier.checked_add(by).ok_or_else(overflow)?),
        Latest::Delete => writes.put(key, &by.to_le_bytes()),
        Latest::Put(value) => {
            let current =
                counter_value(key, Some(value)).map_err(|error| KernelError::Shard { shard, error })?;
            let new = current.checked_add(by).ok_or_else(overflow)?;
            writes.put(key, &new.to_le_bytes());
        }
    }
    Ok(())
}

/// Commits `writes` as one record of shard `id`, and empties them (whatever the outcome).
pub(super) fn commit_buffer<E: Env + Clone>(
    kernel: &Kernel<E>,
    id: u32,
    writes: &mut WriteBuffer,
    doc: Option<&DocMark>,
    durability: Durability,
) -> Result<CommitInfo, KernelError> {
    let result = kernel.writable_shard(id).and_then(|shard| {
        let (batch, adds) = writes.parts_mut();
        Kernel::<E>::shard_result(id, shard.commit_built(batch, adds, doc, durability))
    });
    writes.reset();
    Ok(CommitInfo { shard: Some(id), lsn: result?.lsn })
}

/// A multi-key transaction of one shard; see [`Kernel`](crate::Kernel)'s module docs.
///
/// ```
/// # use stormhold::{Config, Durability, Kernel, Router, env::OsEnv};
/// # let dir = tempfile::tempdir()?;
/// let config = Config::builder().router(Router::Prefix { len_bytes: 5 }).build()?;
/// let kernel = Kernel::open(OsEnv::new(), dir.path(), config)?;
/// let mut txn = kernel.begin();
/// txn.put(b"acct:alice", b"open")?;
/// txn.increment(b"acct:count", 1)?;
/// assert_eq!(txn.get(b"acct:alice")?, Some(b"open".to_vec()));
/// let commit = txn.commit(Durability::Data)?;
/// assert!(kernel.sync_handle(&commit).is_synced());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A write costs one append to the buffer; a `get` or `increment` looks its key up there (a
/// scan of a short transaction, an index built on first use in a long one).
pub struct Transaction<'k, E: Env + Clone> {
    kernel: &'k Kernel<E>,
    shard: Option<u32>,
    writes: WriteBuffer,
}

impl<'k, E: Env + Clone> Transaction<'k, E> {
    pub(super) fn new(kernel: &'k Kernel<E>) -> Self {
        Self { kernel, shard: None, writes: kernel.buffers.take() }
    }

    /// The shard the transaction is bound to (the shard of its first key).
    pub fn shard(&self) -> Option<u32> {
        self.shard
    }

    /// The value of `key` as this transaction sees it: its own writes over the committed
    /// state.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KernelError> {
        match self.writes.latest(key) {
            Latest::Put(value) => Ok(Some(value.to_vec())),
            Latest::Delete => Ok(None),
            Latest::Add(delta) => {
                let current = self.kernel.get(key)?;
                let id = self.kernel.shard_of(key);
                let value = Kernel::<E>::shard_result(id, counter_value(key, current.as_deref()))?;
                let overflow = ShardError::CounterOverflow { key: key.to_vec() };
                let value = Kernel::<E>::shard_result(id, value.checked_add(delta).ok_or(overflow))?;
                Ok(Some(value.to_le_bytes().to_vec()))
            }
            Latest::Unwritten => self.kernel.get(key),
        }
    }

    /// The u64 counter at `key` as this transaction sees it (`None`: absent), as
    /// [`Kernel::get_counter`] reads it.
    pub fn get_counter(&self, key: &[u8]) -> Result<Option<u64>, KernelError> {
        let value = self.get(key)?;
        let id = self.kernel.shard_of(key);
        value.map(|v| Kernel::<E>::shard_result(id, counter_value(key, Some(&v)))).transpose()
    }

    /// Removes every key in `range` (`start..end`, end exclusive) of the transaction's
    /// shard, as one op of the commit's WAL record whatever it covers. Writes buffered
    /// before it in the range are dropped; writes after it stay. Increments and document
    /// marks are not touched except for counters in the range, which then count from 0.
    ///
    /// Both bounds must route to one shard and the range must not reach other shards' keys:
    /// with [`Router::Prefix`](crate::Router::Prefix), both bounds at least the prefix long
    /// and sharing it (or the end being the first key past the start's prefix, for a whole
    /// prefix); with one shard, any range. Otherwise [`KernelError::InvalidInput`]
    /// (or [`KernelError::CrossShard`] when the transaction is bound elsewhere).
    ///
    /// ```
    /// # use stormhold::{Config, Durability, Kernel, Router, env::OsEnv};
    /// # let dir = tempfile::tempdir()?;
    /// let config = Config::builder().router(Router::Prefix { len_bytes: 4 }).build()?;
    /// let kernel = Kernel::open(OsEnv::new(), dir.path(), config)?;
    /// for key in [b"log:1", b"log:2", b"log:3"] {
    ///     kernel.put(key, b"entry", Durability::None)?;
    /// }
    /// let mut txn = kernel.begin();
    /// txn.delete_range(b"log:1".as_slice()..b"log:3".as_slice())?;
    /// txn.commit(Durability::Data)?;
    /// assert_eq!(kernel.scan_prefix(b"log:")?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_range<K: AsRef<[u8]>>(&mut self, range: std::ops::Range<K>) -> Result<(), KernelError> {
        let (start, end) = (range.start.as_ref(), range.end.as_ref());
        check_key(start)?;
        check_key(end)?;
        let config = self.kernel.config();
        let contained = match config.router {
            _ if config.shards == 1 => true,
            super::Router::Prefix { len_bytes } => {
                let len = len_bytes as usize;
                // Under one prefix, or from inside it to its end (the whole prefix).
                start.len() >= len
                    && ((end.len() >= len && start[..len] == end[..len])
                        || super::prefix_end(&start[..len]).is_some_and(|e| e == end))
            }
            super::Router::Hash => false,
        };
        if !contained {
            return Err(KernelError::InvalidInput(format!(
                "range \"{}\"..\"{}\" may cover keys of several shards; a range delete needs both bounds under one prefix of the prefix router (or one shard)",
                start.escape_ascii(),
                end.escape_ascii()
            )));
        }
        bind(self.kernel, &mut self.shard, start)?;
        if start >= end {
            return Ok(());
        }
        self.writes.delete_range(start, end);
        Ok(())
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KernelError> {
        check_value(value)?;
        bind(self.kernel, &mut self.shard, key)?;
        self.writes.put(key, value);
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), KernelError> {
        bind(self.kernel, &mut self.shard, key)?;
        self.writes.delete(key);
        Ok(())
    }

    /// Adds `by` to the u64 counter at `key`, resolved against the committed value at commit
    /// (so concurrent increments never lose one).
    pub fn increment(&mut self, key: &[u8], by: u64) -> Result<(), KernelError> {
        let shard = bind(self.kernel, &mut self.shard, key)?;
        increment_in(&mut self.writes, shard, key, by)
    }

    /// Commits every write atomically as one record of the bound shard. With `Durability::Data`
    /// or `All`, returns once the record is durable; an error then means the outcome is
    /// unknown (the shard is failed).
    pub fn commit(mut self, durability: Durability) -> Result<CommitInfo, KernelError> {
        let Some(id) = self.shard else { return Ok(CommitInfo { shard: None, lsn: 0 }) };
        let result = commit_buffer(self.kernel, id, &mut self.writes, None, durability);
        self.kernel.buffers.give(self.writes);
        result
    }

    /// Drops every write.
    pub fn abort(self) {}
}

/// An idempotent document import: inserts with SET semantics (a key inserted twice holds the
/// last value), durable chunks, and a final commit that records the document as complete.
///
/// After a crash, begin the same document again and insert everything again: chunks that
/// were durable are overwritten with the same values, and a document already complete is
/// skipped whole.
///
/// ```
/// # use stormhold::{Config, Kernel, Router, env::OsEnv};
/// # let dir = tempfile::tempdir()?;
/// # let config = Config::builder().router(Router::Prefix { len_bytes: 4 }).build()?;
/// # let kernel = Kernel::open(OsEnv::new(), dir.path(), config)?;
/// let mut doc = kernel.begin_document("invoice-17")?;
/// doc.insert(b"inv:17:line1", b"widget")?;
/// doc.commit_chunk()?;
/// doc.insert(b"inv:17:line2", b"gadget")?;
/// doc.commit()?;
/// assert!(kernel.is_document_completed("invoice-17")?);
/// let mut again = kernel.begin_document("invoice-17")?;
/// again.insert(b"inv:17:line1", b"widget")?;
/// assert!(again.already_complete());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Document<'k, E: Env + Clone> {
    kernel: &'k Kernel<E>,
    id: String,
    shard: Option<u32>,
    writes: WriteBuffer,
    /// Whether the bound shard had the document complete before this import (`None`: no
    /// shard bound yet).
    already_complete: Option<bool>,
}

impl<'k, E: Env + Clone> Document<'k, E> {
    pub(super) fn new(kernel: &'k Kernel<E>, id: &str) -> Self {
        Self { kernel, id: id.to_owned(), shard: None, writes: kernel.buffers.take(), already_complete: None }
    }

    /// The document id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the document was complete before this import began, in which case every call
    /// is a no-op. Known once the document's shard is: after the first insert (or a commit,
    /// for a document without keys); `false` before.
    pub fn already_complete(&self) -> bool {
        self.already_complete == Some(true)
    }

    /// Binds the document to shard `id` and reads whether it is complete there.
    fn bind_shard(&mut self, id: u32) -> Result<bool, KernelError> {
        if let Some(complete) = self.already_complete {
            return Ok(complete);
        }
        let complete = Kernel::<E>::shard_result(id, self.kernel.shard(id).is_document_completed(&self.id))?;
        self.shard = Some(id);
        self.already_complete = Some(complete);
        Ok(complete)
    }

    /// Inserts `key` = `value` (SET semantics). All keys of a document must route to one
    /// shard.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), KernelError> {
        check_value(value)?;
        let mut bound = self.shard;
        let id = bind(self.kernel, &mut bound, key)?;
        if !self.bind_shard(id)? {
            self.writes.put(key, value);
        }
        Ok(())
    }

    fn commit_with(&mut self, complete: bool) -> Result<CommitInfo, KernelError> {
        // A document without keys is recorded in the shard its id routes to.
        let id = self.shard.unwrap_or_else(|| self.kernel.shard_of(self.id.as_bytes()));
        if self.bind_shard(id)? {
            return Ok(CommitInfo { shard: None, lsn: 0 });
        }
        let doc = DocMark { id: self.id.clone(), complete };
        commit_buffer(self.kernel, id, &mut self.writes, Some(&doc), Durability::Data)
    }

    /// Makes the inserts so far durable; the document is not complete yet.
    pub fn commit_chunk(&mut self) -> Result<CommitInfo, KernelError> {
        self.commit_with(false)
    }

    /// Makes the remaining inserts durable and records the document as complete, atomically.
    pub fn commit(mut self) -> Result<CommitInfo, KernelError> {
        let result = self.commit_with(true);
        self.kernel.buffers.give(self.writes);
        result
    }

    /// Drops the inserts since the last chunk; durable chunks stay (re-import is idempotent).
    pub fn abort(self) {}
}

/// Tracks one commit until it is durable.
pub struct SyncHandle<'k, E: Env + Clone> {
    kernel: &'k Kernel<E>,
    commit: CommitInfo,
}

impl<'k, E: Env + Clone> SyncHandle<'k, E> {
    pub(super) fn new(kernel: &'k Kernel<E>, commit: &CommitInfo) -> Self {
        Self { kernel, commit: commit.clone() }
    }

    /// Whether the commit is durable (a commit that wrote nothing always is; one naming a
    /// shard the kernel does not have never is).
    pub fn is_synced(&self) -> bool {
        match self.commit.shard {
            Some(id) => self.kernel.shard_checked(id).is_ok_and(|shard| shard.is_durable(self.commit.lsn)),
            None => true,
        }
    }

    /// Makes the commit durable now, joining or leading a group sync of its shard.
    pub fn wait(&self) -> Result<(), KernelError> {
        match self.commit.shard {
            Some(id) if !self.is_synced() => {
                let shard = self.kernel.shard_checked(id)?;
                Kernel::<E>::shard_result(id, shard.sync(Durability::Data)).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Waits up to `timeout` (on the `Env`'s monotonic clock) for background work
    /// ([`Kernel::tick`], for example from [`Kernel::spawn_ticker`]) to make the commit
    /// durable, without syncing itself. Returns whether it is durable; fails if its shard
    /// failed meanwhile.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, KernelError> {
        let env = self.kernel.env();
        let deadline = env.now_monotonic().saturating_add(timeout);
        loop {
            if self.is_synced() {
                return Ok(true);
            }
            if let Some(id) = self.commit.shard
                && let Some(failure) = self.kernel.shard_checked(id)?.status().failed
            {
                let error = ShardError::Failed { shard: id, failure };
                return Err(KernelError::Shard { shard: id, error });
            }
            let now = env.now_monotonic();
            if now >= deadline {
                return Ok(false);
            }
            env.sleep((deadline - now).min(Duration::from_millis(1)));
        }
    }
}
