//! [`StateMachine`]: openraft's `RaftStateMachine` and `RaftSnapshotBuilder` over a kernel
//! group: a key-value map of [`Request`]s, its applied state, and stored snapshots (see the
//! crate docs for the contracts and the atomic install).
//!
//! Invariants: the applied state (`P e`) names the one generation of data that is live; it
//! and the data it describes change only together, in one commit; a stored snapshot's chunks
//! are written before the record (`P t`) that names them.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use stormhold::env::Env;
use stormhold::{Durability, Kernel, KernelError};

use crate::log_store::encode;
use crate::{Request, Response, TypeConfig, io, keys, snapshot};

type NodeId = u64;
type Result<T> = std::result::Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, openraft::BasicNode>;
type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

/// Bytes of data one commit of an install writes.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// The applied state record `P e`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Applied {
    generation: u64,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
}

/// The current snapshot record `P t`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    seq: u64,
    chunks: u32,
    meta: Meta,
}

/// A Raft group's state machine; cheap to clone (the clone is its snapshot builder).
pub struct StateMachine<E: Env> {
    kernel: Arc<Kernel<E>>,
    prefix: [u8; 8],
}

impl<E: Env> Clone for StateMachine<E> {
    fn clone(&self) -> Self {
        Self { kernel: Arc::clone(&self.kernel), prefix: self.prefix }
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> std::io::Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| io(format!("key \"{}\": undecodable value: {e}", key.escape_ascii())))
}

impl<E: Env + Clone + Send + Sync + 'static> StateMachine<E> {
    pub(crate) fn new(kernel: Arc<Kernel<E>>, prefix: [u8; 8]) -> Self {
        Self { kernel, prefix }
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> std::io::Result<Option<T>> {
        match self.kernel.get(key).map_err(io)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn applied(&self) -> std::io::Result<Applied> {
        Ok(self.read(&keys::applied(&self.prefix))?.unwrap_or_default())
    }

    /// The value of `key` in the live state.
    pub fn get(&self, key: &str) -> std::io::Result<Option<String>> {
        let applied = self.applied()?;
        let found =
            self.kernel.get(&keys::data(&self.prefix, applied.generation, key.as_bytes())).map_err(io)?;
        Ok(found.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The applied state and the live data, read in one scan of the group's shard (under its
    /// lock): a consistent view.
    fn view(&self) -> std::io::Result<(Applied, stormhold::Entries)> {
        let range = keys::data_start(&self.prefix, 0)..keys::applied_end(&self.prefix);
        let mut all = self.kernel.scan_range(range, usize::MAX).map_err(io)?;
        let applied_key = keys::applied(&self.prefix);
        let applied = match all.last() {
            Some((k, v)) if *k == applied_key => decode(k, v)?,
            _ => Applied::default(),
        };
        let live = keys::data_start(&self.prefix, applied.generation);
        let next = keys::data_start(&self.prefix, applied.generation + 1);
        all.retain(|(k, _)| *k >= live && *k < next);
        let pairs = all.into_iter().map(|(k, v)| (k[live.len()..].to_vec(), v)).collect();
        Ok((applied, pairs))
    }

    /// Stores `blob` as snapshot `seq` in chunks (clearing any leftover of an earlier attempt
    /// at the same `seq`), without the record naming it. Returns the chunk count.
    fn store_chunks(&self, seq: u64, blob: &[u8]) -> std::result::Result<u32, KernelError> {
        let chunks: Vec<&[u8]> =
            if blob.is_empty() { Vec::new() } else { blob.chunks(snapshot::CHUNK_BYTES).collect() };
        let mut txn = self.kernel.begin();
        txn.delete_range(
            keys::snapshot_start(&self.prefix, seq)..keys::snapshot_start(&self.prefix, seq + 1),
        )?;
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 {
                txn.commit(Durability::None)?;
                txn = self.kernel.begin();
            }
            txn.put(&keys::snapshot_chunk(&self.prefix, seq, i as u32), chunk)?;
        }
        txn.commit(Durability::None)?;
        Ok(chunks.len() as u32)
    }

    fn stored(&self) -> std::io::Result<Option<Stored>> {
        self.read(&keys::snapshot(&self.prefix))
    }

    fn load_blob(&self, stored: &Stored) -> std::io::Result<Vec<u8>> {
        let range = keys::snapshot_start(&self.prefix, stored.seq)
            ..keys::snapshot_start(&self.prefix, stored.seq + 1);
        let chunks = self.kernel.scan_range(range, usize::MAX).map_err(io)?;
        if chunks.len() != stored.chunks as usize {
            return Err(io(format!(
                "snapshot {}: {} chunks stored, the record names {}",
                stored.seq,
                chunks.len(),
                stored.chunks
            )));
        }
        Ok(chunks.into_iter().flat_map(|(_, v)| v).collect())
    }

    /// Replaces the stored snapshot with `blob` under `meta`, and, with `install`, the live
    /// state too; the switch is one commit.
    fn replace(&self, meta: &Meta, blob: &[u8], install: Option<stormhold::Entries>) -> std::io::Result<()> {
        let old = self.stored()?;
        let seq = old.as_ref().map_or(1, |s| s.seq + 1);
        let chunks = self.store_chunks(seq, blob).map_err(io)?;
        let current = self.applied()?;
        let mut txn = self.kernel.begin();
        if let Some(pairs) = install {
            let generation = current.generation + 1;
            let (start, end) =
                (keys::data_start(&self.prefix, generation), keys::data_start(&self.prefix, generation + 1));
            txn.delete_range(start..end).map_err(io)?;
            let mut bytes = 0;
            for (key, value) in pairs {
                if bytes > INSTALL_BATCH_BYTES {
                    txn.commit(Durability::None).map_err(io)?;
                    txn = self.kernel.begin();
                    bytes = 0;
                }
                bytes += key.len() + value.len();
                txn.put(&keys::data(&self.prefix, generation, &key), &value).map_err(io)?;
            }
            txn.commit(Durability::None).map_err(io)?;
            // The switch: one commit names the new generation and drops the old one.
            txn = self.kernel.begin();
            let applied = Applied {
                generation,
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
            };
            txn.put(&keys::applied(&self.prefix), &encode(&applied)).map_err(io)?;
            let (start, end) = (
                keys::data_start(&self.prefix, current.generation),
                keys::data_start(&self.prefix, generation),
            );
            txn.delete_range(start..end).map_err(io)?;
        }
        txn.put(&keys::snapshot(&self.prefix), &encode(&Stored { seq, chunks, meta: meta.clone() }))
            .map_err(io)?;
        if let Some(old) = old {
            let range =
                keys::snapshot_start(&self.prefix, old.seq)..keys::snapshot_start(&self.prefix, old.seq + 1);
            txn.delete_range(range).map_err(io)?;
        }
        txn.commit(Durability::Data).map(drop).map_err(io)
    }

    fn apply_batch(&self, entries: Vec<Entry<TypeConfig>>) -> std::io::Result<Vec<Response>> {
        let mut applied = self.applied()?;
        let mut txn = self.kernel.begin();
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let mut response = Response::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
                EntryPayload::Normal(request) => {
                    let key = match &request {
                        Request::Set { key, .. } | Request::Delete { key } => {
                            keys::data(&self.prefix, applied.generation, key.as_bytes())
                        }
                    };
                    response.previous =
                        txn.get(&key).map_err(io)?.map(|v| String::from_utf8_lossy(&v).into_owned());
                    match request {
                        Request::Set { value, .. } => txn.put(&key, value.as_bytes()),
                        Request::Delete { .. } => txn.delete(&key),
                    }
                    .map_err(io)?;
                }
            }
            out.push(response);
        }
        txn.put(&keys::applied(&self.prefix), &encode(&applied)).map_err(io)?;
        txn.commit(Durability::Data).map_err(io)?;
        Ok(out)
    }
}

impl<E: Env + Clone + Send + Sync + 'static> RaftSnapshotBuilder<TypeConfig> for StateMachine<E> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let build = || -> std::io::Result<Snapshot<TypeConfig>> {
            let (applied, pairs) = self.view()?;
            let seq = self.stored()?.map_or(1, |s| s.seq + 1);
            let snapshot_id = match applied.last_applied {
                Some(id) => format!("{}-{}-{seq}", id.leader_id.term, id.index),
                None => format!("0-0-{seq}"),
            };
            let meta =
                Meta { last_log_id: applied.last_applied, last_membership: applied.membership, snapshot_id };
            let blob = snapshot::encode(&pairs);
            self.replace(&meta, &blob, None)?;
            Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(blob)) })
        };
        build().map_err(|e| StorageIOError::write_snapshot(None, &e).into())
    }
}

impl<E: Env + Clone + Send + Sync + 'static> RaftStateMachine<TypeConfig> for StateMachine<E> {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership)> {
        let applied = self.applied().map_err(|e| StorageIOError::read_state_machine(&e))?;
        Ok((applied.last_applied, applied.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let mut out = Vec::with_capacity(entries.len());
        // Bounded commits: a batch too big for one record is applied in runs, each persisted.
        let mut run = Vec::new();
        let mut bytes = 0;
        for entry in entries {
            bytes += match &entry.payload {
                EntryPayload::Normal(Request::Set { key, value }) => key.len() + value.len(),
                _ => 64,
            };
            run.push(entry);
            if bytes > INSTALL_BATCH_BYTES {
                out.extend(
                    self.apply_batch(std::mem::take(&mut run))
                        .map_err(|e| StorageIOError::write_state_machine(&e))?,
                );
                bytes = 0;
            }
        }
        if !run.is_empty() {
            out.extend(self.apply_batch(run).map_err(|e| StorageIOError::write_state_machine(&e))?);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<()> {
        let blob = snapshot.into_inner();
        let install = || -> std::io::Result<()> {
            let pairs = snapshot::decode(&blob).map_err(io)?;
            self.replace(meta, &blob, Some(pairs))
        };
        install().map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e).into())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let read = || -> std::io::Result<Option<Snapshot<TypeConfig>>> {
            let Some(stored) = self.stored()? else { return Ok(None) };
            let blob = self.load_blob(&stored)?;
            Ok(Some(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(blob)) }))
        };
        read().map_err(|e| StorageIOError::read_snapshot(None, &e).into())
    }
}
