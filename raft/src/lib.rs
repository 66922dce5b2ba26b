//! stormhold as the storage of [openraft](https://docs.rs/openraft/0.9.25): a
//! [`LogStore`] (`RaftLogStorage`, `RaftLogReader`) and a [`StateMachine`]
//! (`RaftStateMachine`, `RaftSnapshotBuilder`) over one [`stormhold::Kernel`], generic over
//! its `Env`, one Raft group per key prefix.
//!
//! # Layout
//!
//! A group's keys all start with its prefix ([`group_prefix`], [`GROUP_PREFIX_BYTES`] bytes),
//! and the kernel must use `Router::Prefix { len_bytes: GROUP_PREFIX_BYTES }`, so a group's
//! log, vote and applied state live in one shard and commit atomically in one WAL:
//!
//! ```text
//! P c                 committed log id (save_committed)
//! P d gen key         state machine data of generation `gen` (u64 BE)
//! P e                 applied state: generation, last applied log id, last membership
//! P l index           log entry `index` (u64 BE)
//! P p                 last purged log id
//! P s seq chunk       chunk `chunk` (u32 BE) of stored snapshot `seq` (u64 BE)
//! P t                 current snapshot: seq, chunk count, meta
//! P v                 vote
//! ```
//!
//! # The contracts kept (openraft's `storage/v2.rs`)
//!
//! - `save_vote` returns after the vote is durable (a `Data` commit).
//! - `append` commits the entries before it returns (readable at once) and fires the callback
//!   through [`stormhold::Kernel::on_durable`], i.e. only once a sync covers them; with
//!   [`Options::sync_on_append`] the append syncs itself, else `tick`/`sync`/another
//!   group's sync of the shard fires it.
//! - `truncate` is one range delete of `[index, end)`, `purge` one commit of the purge point
//!   and a range delete of `[0, index]`: neither leaves a hole. A truncate need not be
//!   durable: entries appended after it are later in the same WAL, so their durability
//!   implies its own. A purge is synced.
//! - `apply` writes the data and the applied state in one commit per batch, synced before it
//!   returns.
//! - `build_snapshot` reads the applied state and the data in one scan under the shard's lock
//!   (a consistent view, even with applies running), then stores it in chunks.
//! - `install_snapshot` writes the new data under a fresh generation and the snapshot under a
//!   fresh sequence number, in chunks (so neither is capped by one value or one record), then
//!   switches in one commit: the applied state naming the new generation, the snapshot
//!   record, and range deletes of the old generation and snapshot. A crash before that commit
//!   leaves the old state (the partial new generation is unreferenced and cleared by the next
//!   install), after it the new one; never a mix.

mod keys;
mod log_store;
mod snapshot;
mod state_machine;

use std::io::Cursor;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use stormhold::env::Env;
use stormhold::{Kernel, KernelError, Router};

pub use keys::{GROUP_PREFIX_BYTES, group_prefix};
pub use log_store::LogStore;
pub use state_machine::StateMachine;

/// A request to the key-value state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Set `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// The state machine's answer: the value the key held before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The previous value.
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The openraft type configuration the adapter implements.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A mistake planted on purpose, for the simulator to catch (never use outside tests).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlantedBug {
    /// None: the real adapter.
    #[default]
    None,
    /// `append` fires its callback before the entries are synced.
    CallbackBeforeSync,
    /// `save_vote` returns before the vote is synced.
    VoteUnsynced,
}

/// How the adapter uses the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Whether `append` syncs the shard itself before returning (the callback then fires
    /// inside it). Without, the callback fires when something else syncs the shard: the
    /// kernel's `tick`, `sync`, or another group's sync (group commit across groups).
    pub sync_on_append: bool,
    #[doc(hidden)]
    pub bug: PlantedBug,
}

impl Default for Options {
    fn default() -> Self {
        Self { sync_on_append: true, bug: PlantedBug::None }
    }
}

/// Opens group `group` on `kernel`: its log store and state machine. The kernel must route
/// by a prefix of [`GROUP_PREFIX_BYTES`] bytes.
pub fn open_group<E: Env + Clone + Send + Sync + 'static>(
    kernel: Arc<Kernel<E>>,
    group: u32,
    options: Options,
) -> Result<(LogStore<E>, StateMachine<E>), KernelError> {
    match kernel.config().router() {
        Router::Prefix { len_bytes } if len_bytes == GROUP_PREFIX_BYTES => {}
        other => {
            return Err(KernelError::InvalidInput(format!(
                "stormhold-raft needs Router::Prefix {{ len_bytes: {GROUP_PREFIX_BYTES} }}, the kernel has {other:?}"
            )));
        }
    }
    let prefix = group_prefix(group);
    Ok((LogStore::new(Arc::clone(&kernel), prefix, options), StateMachine::new(kernel, prefix)))
}

/// A kernel error as openraft's error source.
pub(crate) fn io(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}
