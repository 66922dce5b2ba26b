//! [`LogStore`]: openraft's `RaftLogStorage` and `RaftLogReader` over a kernel group (see the
//! crate docs for the contracts it keeps).
//!
//! Invariants: the log keys of a group hold a contiguous run of indices above the purge
//! point (append adds at the end, truncate removes a suffix and purge a prefix, each in one
//! commit); the vote is never acknowledged before it is durable.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use stormhold::env::Env;
use stormhold::{Durability, Kernel, VALUE_BYTES_MAX};

use crate::{Options, PlantedBug, TypeConfig, io, keys};

/// Bytes of entries one append commits per record (a larger append takes several commits,
/// each a contiguous run, so a crash between them leaves a prefix).
const APPEND_BATCH_BYTES: usize = 4 << 20;

type NodeId = u64;
type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// A Raft group's log and vote; cheap to clone (the clone is its log reader).
pub struct LogStore<E: Env> {
    kernel: Arc<Kernel<E>>,
    prefix: [u8; 8],
    options: Options,
}

impl<E: Env> Clone for LogStore<E> {
    fn clone(&self) -> Self {
        Self { kernel: Arc::clone(&self.kernel), prefix: self.prefix, options: self.options }
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> std::io::Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| io(format!("key \"{}\": undecodable value: {e}", key.escape_ascii())))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("openraft's types and the adapter's serialize to JSON")
}

impl<E: Env + Clone + Send + Sync + 'static> LogStore<E> {
    pub(crate) fn new(kernel: Arc<Kernel<E>>, prefix: [u8; 8], options: Options) -> Self {
        Self { kernel, prefix, options }
    }

    /// The kernel under the store.
    pub fn kernel(&self) -> &Arc<Kernel<E>> {
        &self.kernel
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> std::io::Result<Option<T>> {
        match self.kernel.get(key).map_err(io)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn entries(&self, start: Bound<u64>, end: Bound<u64>) -> std::io::Result<Vec<Entry<TypeConfig>>> {
        let key = |b: Bound<u64>| b.map(|i| keys::log(&self.prefix, i));
        let end = match end {
            Bound::Unbounded => Bound::Excluded(keys::log_end(&self.prefix)),
            bounded => key(bounded),
        };
        let found = self.kernel.scan_range((key(start), end), usize::MAX).map_err(io)?;
        found.iter().map(|(k, v)| decode(k, v)).collect()
    }

    fn last_purged(&self) -> std::io::Result<Option<LogId<NodeId>>> {
        self.read(&keys::purged(&self.prefix))
    }
}

impl<E: Env + Clone + Send + Sync + 'static> RaftLogReader<TypeConfig> for LogStore<E> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        self.entries(range.start_bound().cloned(), range.end_bound().cloned())
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl<E: Env + Clone + Send + Sync + 'static> RaftLogStorage<TypeConfig> for LogStore<E> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let read = || -> std::io::Result<LogState<TypeConfig>> {
            let last_purged_log_id = self.last_purged()?;
            let range = keys::log(&self.prefix, 0)..keys::log_end(&self.prefix);
            let last = match self.kernel.last_in_range(range).map_err(io)? {
                Some((k, v)) => Some(decode::<Entry<TypeConfig>>(&k, &v)?.log_id),
                None => last_purged_log_id,
            };
            Ok(LogState { last_purged_log_id, last_log_id: last })
        };
        read().map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        let durability = match self.options.bug {
            PlantedBug::VoteUnsynced => Durability::None,
            _ => Durability::Data,
        };
        self.kernel
            .put(&keys::vote(&self.prefix), &encode(vote), durability)
            .map(drop)
            .map_err(|e| StorageIOError::write_vote(&io(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.read(&keys::vote(&self.prefix)).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        // Advisory (openraft re-derives it): durable with the next sync of the shard.
        self.kernel
            .put(&keys::committed(&self.prefix), &encode(&committed), Durability::None)
            .map(drop)
            .map_err(|e| StorageIOError::write(&io(e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        let found: Option<Option<LogId<NodeId>>> =
            self.read(&keys::committed(&self.prefix)).map_err(|e| StorageIOError::read(&e))?;
        Ok(found.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write_error = |e: stormhold::KernelError| StorageError::from(StorageIOError::write_logs(&io(e)));
        let mut last = None;
        let mut txn = self.kernel.begin();
        let mut bytes = 0;
        for entry in entries {
            let value = encode(&entry);
            if value.len() > VALUE_BYTES_MAX {
                return Err(
                    StorageIOError::write_log_entry(entry.log_id, &io("entry larger than a value")).into()
                );
            }
            if bytes + value.len() > APPEND_BATCH_BYTES && bytes > 0 {
                last = Some(txn.commit(Durability::None).map_err(write_error)?);
                txn = self.kernel.begin();
                bytes = 0;
            }
            bytes += value.len();
            txn.put(&keys::log(&self.prefix, entry.log_id.index), &value).map_err(write_error)?;
        }
        let commit = txn.commit(Durability::None).map_err(write_error)?;
        let commit = if commit.shard.is_some() { commit } else { last.unwrap_or(commit) };
        if self.options.bug == PlantedBug::CallbackBeforeSync {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let notify =
            move |result: stormhold::DurableResult| callback.log_io_completed(result.map(drop).map_err(io));
        self.kernel.on_durable(&commit, Box::new(notify)).map_err(write_error)?;
        if self.options.sync_on_append {
            self.kernel.sync_handle(&commit).wait().map_err(write_error)?;
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut txn = self.kernel.begin();
        let range = keys::log(&self.prefix, log_id.index)..keys::log_end(&self.prefix);
        let result = txn.delete_range(range).and_then(|()| txn.commit(Durability::None));
        result.map(drop).map_err(|e| StorageIOError::write_logs(&io(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut txn = self.kernel.begin();
        let range = keys::log(&self.prefix, 0)..keys::log(&self.prefix, log_id.index.saturating_add(1));
        let result = txn
            .delete_range(range)
            .and_then(|()| txn.put(&keys::purged(&self.prefix), &encode(&log_id)))
            .and_then(|()| txn.commit(Durability::Data));
        result.map(drop).map_err(|e| StorageIOError::write_logs(&io(e)).into())
    }
}
