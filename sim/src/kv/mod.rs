//! Key-value stores under test, and the workload that checks them.
//!
//! Owns the [`KvStore`] contract every store the simulator checks implements, and the value
//! types it speaks in. The rooms below it:
//! - [`stores`]: the stores under test (the toy stores, the WAL, checkpoint and kernel stores);
//! - [`model`] and [`groups`]: the reference model of `DESIGN.md` section 4, per key group;
//! - [`workload`]: the driver that draws operations, runs them on a store under faults and
//!   checks each recovery against the model.
//!
//! The arrows point one way: the workload uses the contract and the model; the stores use the
//! contract (and the document keys of [`groups`]); the model uses neither.

pub mod damage_audit;
pub mod groups;
pub mod model;
pub mod stores;
pub mod workload;

// The stores' old paths (`kv::toy::ToyBug`, `kv::kernel_store::KernelBug`, ...), kept for the
// configuration, the command line and the tests.
pub use stores::{ckpt_store, kernel_store, toy, wal_store};

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use stormhold::env::sim::SimEnv;

/// A key of the test stores.
pub type Key = u16;
/// A value of the test stores.
pub type Value = u32;
/// One write of a transaction: a put (`Some`) or a delete (`None`).
pub type Write = (Key, Option<Value>);

/// One write of an interleaved transaction: a put or delete, or (stores that take
/// [`KvStore::extended_ops`] only) an increment inside the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TxnWrite {
    /// A put or a delete.
    Set(Write),
    /// Adds `by` to the key's value (absent counts as 0, wrapping at `Value::MAX`), resolved at
    /// commit against the value then committed (or written earlier in the same transaction):
    /// a delta, not a value, so a store that applies it twice, or never, changes the result.
    Add {
        /// The key.
        key: Key,
        /// How much.
        by: Value,
    },
}

impl TxnWrite {
    /// The key it writes.
    pub fn key(self) -> Key {
        match self {
            TxnWrite::Set((key, _)) => key,
            TxnWrite::Add { key, .. } => key,
        }
    }

    /// The key's value after this write, given its value before.
    pub fn apply_to(self, before: Option<Value>) -> Option<Value> {
        match self {
            TxnWrite::Set((_, value)) => value,
            TxnWrite::Add { by, .. } => Some(before.unwrap_or(0).wrapping_add(by)),
        }
    }

    /// The puts and deletes of a transaction of a store that takes no increments inside
    /// transactions. Panics on an increment: the workload never draws one for such a store.
    pub fn sets(writes: &[TxnWrite]) -> Vec<Write> {
        let set = |write: &TxnWrite| match *write {
            TxnWrite::Set(write) => write,
            TxnWrite::Add { .. } => {
                panic!("an increment inside a transaction of a store without extended ops")
            }
        };
        writes.iter().map(set).collect()
    }
}

/// How a store answers: the error kinds the checker tells apart.
#[derive(Debug)]
pub enum StoreError {
    /// An I/O error (an injected fault or a simulated crash). The operation's outcome is
    /// unknown.
    Io(io::Error),
    /// Recovery found damage it cannot repair and refuses to open: honest only if the
    /// simulator really destroyed durable bytes.
    DataLoss(String),
    /// The store refuses work after an earlier failure (fail-stop).
    Poisoned,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(error) => write!(f, "I/O error: {error}"),
            StoreError::DataLoss(what) => write!(f, "data loss: {what}"),
            StoreError::Poisoned => f.write_str("store is poisoned by an earlier failure"),
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> Self {
        StoreError::Io(error)
    }
}

/// What the workload knows when it audits a recovered store ([`KvStore::audit`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditFacts {
    /// The simulator damaged media since the store was last wiped: only then may a checkpoint
    /// fail to load, or recovery pass over one.
    pub media_damage: bool,
    /// The newest checkpoint whose creation returned `Ok` since the store was last wiped
    /// ([`KvStore::checkpoint_acknowledged`]).
    pub checkpoint_acknowledged: Option<u64>,
    /// The first entry of [`SimEnv::damage_log`] injected since the store was last wiped:
    /// only damage from there on can explain a loss or a fallback ([`damage_audit`]).
    pub damage_from: usize,
}

/// A durable key-value store the simulator can check.
pub trait KvStore: Sized {
    /// What the store needs to open (options, a planted bug, ...).
    type Config;
    /// A short name for reports.
    fn name(&self) -> String;
    /// Opens the store in its directory on `env`, creating it or recovering it.
    fn open(env: &SimEnv, config: &Self::Config) -> Result<Self, StoreError>;
    /// Removes every file of the store (what an operator does after it reported data loss).
    fn destroy(env: &SimEnv) -> std::io::Result<()>;
    /// Checks that the damage the simulator did since the store was last wiped (entries
    /// `damage_from..` of [`SimEnv::damage_log`]) explains the data loss `what` an open
    /// reported, beyond there being some media damage at all (the workload checks that
    /// first); `Err` says why not, a "dishonest loss". Default: any media damage explains it.
    fn loss_is_explained(
        _env: &SimEnv,
        _config: &Self::Config,
        _what: &str,
        _damage_from: usize,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Whether the damage since `damage_from` explains an open that kept failing with
    /// `last_error` (not a data-loss report) so that the store is given up as lost; otherwise
    /// the workload owes it liveness. Default: any media damage explains it.
    fn stuck_is_explained(
        _env: &SimEnv,
        _config: &Self::Config,
        _last_error: &str,
        _damage_from: usize,
    ) -> bool {
        true
    }
    /// The most writes one transaction may carry.
    fn writes_per_commit_max(config: &Self::Config) -> usize;
    /// Commits `writes` atomically; with `durable`, returns `Ok` only once they are durable.
    fn commit(&mut self, writes: &[Write], durable: bool) -> Result<(), StoreError>;
    /// Whether the store takes interleaved transactions of several clients
    /// ([`KvStore::txn_begin`], [`KvStore::txn_write`], [`KvStore::txn_finish`]).
    fn interleaved_transactions(_config: &Self::Config) -> bool {
        false
    }
    /// Whether the store takes checkpoints ([`KvStore::checkpoint`]).
    fn checkpoints(_config: &Self::Config) -> bool {
        false
    }
    /// Takes a checkpoint; on `Ok`, every committed transaction is durable.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Freezes a checkpoint to be written by a later [`KvStore::tick`] or
    /// [`KvStore::checkpoint`] (commits land meanwhile); makes nothing durable. Default: none.
    fn begin_checkpoint(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The checkpoints in flight (frozen, not yet published), described for the trace when
    /// the process crashes: the proof that crashes strike while one is being written with
    /// commits landing after its freeze. Default: none.
    fn checkpoints_in_flight(&self) -> Option<String> {
        None
    }
    /// The id of the newest checkpoint whose creation returned `Ok` since this store was
    /// opened (also one taken inside a call that then failed), if any.
    fn checkpoint_acknowledged(&self) -> Option<u64> {
        None
    }
    /// Checks the store's own durable invariants right after a successful recovery (the
    /// workload calls it with faults off); `Err` says which one broke. Default: none.
    fn audit(&self, _env: &SimEnv, _facts: &AuditFacts) -> Result<(), String> {
        Ok(())
    }
    /// Starts transaction `txn` (interleaved mode).
    fn txn_begin(&mut self, _txn: u64) -> Result<(), StoreError> {
        Ok(())
    }
    /// Adds a write to the open transaction `txn`; it is invisible until committed.
    fn txn_write(&mut self, _txn: u64, _write: Write) -> Result<(), StoreError> {
        Ok(())
    }
    /// Adds an increment of `key` by `by` to the open transaction `txn`, resolved at its
    /// commit ([`TxnWrite::Add`]; [`KvStore::extended_ops`] stores only).
    fn txn_increment(&mut self, _txn: u64, _key: Key, _by: Value) -> Result<(), StoreError> {
        Err(StoreError::Poisoned)
    }
    /// Commits (durably if asked) or aborts `txn`, whose writes were `writes` (increments only
    /// for [`KvStore::extended_ops`] stores).
    fn txn_finish(
        &mut self,
        _txn: u64,
        writes: &[TxnWrite],
        commit: bool,
        durable: bool,
    ) -> Result<(), StoreError> {
        if commit { self.commit(&TxnWrite::sets(writes), durable) } else { Ok(()) }
    }
    /// The value of `key` as the open transaction `txn` sees it: its own writes over the
    /// committed state ([`KvStore::extended_ops`] stores).
    fn txn_get(&self, _txn: u64, _key: Key) -> Result<Option<Value>, StoreError> {
        Err(StoreError::Poisoned)
    }
    /// Makes every committed transaction durable.
    fn sync(&mut self) -> Result<(), StoreError>;
    /// The current value of `key`, the store's own unsynced writes included.
    fn get(&self, key: Key) -> Result<Option<Value>, StoreError>;
    /// The whole current state, ordered by key.
    fn state(&self) -> Result<BTreeMap<Key, Value>, StoreError>;
    /// The current state of every group that serves reads, ordered by key: [`KvStore::state`]
    /// without the groups [`KvStore::unreadable_groups`] lists, what a recovery that left
    /// groups failed at open is judged on. Default: [`KvStore::state`].
    fn readable_state(&self) -> Result<BTreeMap<Key, Value>, StoreError> {
        self.state()
    }
    /// Why groups failed at the open that returned this store, as an open that refused them
    /// would have said it (for the kernel: `"shard N did not recover: ..."`); `None` if none
    /// did. A store of several groups may open with groups failed without data loss
    /// ([`KvStore::failed_groups`]) while the others serve. Default: none.
    fn failed_at_open(&self) -> Option<String> {
        None
    }
    /// Retries, in this process, the recovery of `group`, which failed at open (the others go
    /// on serving): `Ok(true)` once it serves, `Ok(false)` if it failed again; `Poisoned` if the
    /// store refuses (a sync failed in it: only a new process may retry, fsyncgate). Default:
    /// refused.
    fn reopen_group(&mut self, _group: usize) -> Result<bool, StoreError> {
        Err(StoreError::Poisoned)
    }

    /// Independent groups of keys (key `k` is in group `k % groups`, see [`groups`]), each
    /// recovering on its own, so that after a crash one group may keep more unsynced commits
    /// than another: the workload keeps one model per group and draws each transaction's keys
    /// from one group. Default 1 (the whole store is one group).
    ///
    /// With several groups, a group may fail-stop while the others serve
    /// ([`KvStore::failed_groups`]); an error of a whole-store operation ([`KvStore::sync`],
    /// [`KvStore::checkpoint`]) then leaves every group that `failed_groups` does not list
    /// having completed it.
    fn key_groups(_config: &Self::Config) -> usize {
        1
    }
    /// The groups that are fail-stopped while the others serve (stores with several groups).
    fn failed_groups(&self) -> Vec<usize> {
        Vec::new()
    }
    /// The failed groups that serve no reads either (default: every failed group). A failed
    /// group not listed still serves reads of what it holds, and they are checked against the
    /// model like any other (DESIGN.md rule 16).
    fn unreadable_groups(&self) -> Vec<usize> {
        self.failed_groups()
    }
    /// Whether the store takes the operations below: [`KvStore::tick`],
    /// [`KvStore::scan_group`], [`KvStore::increment`] (and increments inside transactions,
    /// [`KvStore::txn_increment`]), reads inside transactions and documents
    /// ([`KvStore::document_begin`], [`KvStore::document_commit`]).
    fn extended_ops(_config: &Self::Config) -> bool {
        false
    }
    /// Background work (checkpoints when due, syncs); returns the groups whose every committed
    /// transaction is durable now.
    fn tick(&mut self) -> Result<Vec<usize>, StoreError> {
        Ok(Vec::new())
    }
    /// The current entries of one group, ordered by key (a whole-store scan is
    /// [`KvStore::state`]).
    fn scan_group(&self, _group: usize) -> Result<BTreeMap<Key, Value>, StoreError> {
        Err(StoreError::Poisoned)
    }
    /// Adds `by` to the value of `key` (absent counts as 0, wrapping at `Value::MAX`), resolved
    /// by the store at commit, in a transaction of its own; returns the new value.
    fn increment(&mut self, _key: Key, _by: Value, _durable: bool) -> Result<Value, StoreError> {
        Err(StoreError::Poisoned)
    }
    /// Begins (or resumes) importing document `doc`; returns whether it is complete already
    /// (the import then commits nothing).
    fn document_begin(&mut self, _doc: u8) -> Result<bool, StoreError> {
        Err(StoreError::Poisoned)
    }
    /// Durably commits a chunk of document `doc` (its `writes`, all in the document's group),
    /// and with `complete` records the document complete atomically with them.
    fn document_commit(&mut self, _doc: u8, _writes: &[Write], _complete: bool) -> Result<(), StoreError> {
        Err(StoreError::Poisoned)
    }
}
