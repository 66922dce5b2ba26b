//! Generation: the operations of the key-value workload, as data, and how they are drawn.
//!
//! An operation is drawn from the seed's workload stream (crash points from the images
//! stream, so the operations do not depend on which crash points enumerate their images), or
//! replayed from a recording, so a corpus entry keeps working when the drawing code changes.
//!
//! Invariants: drawing reads the model and the open transactions only to choose keys and
//! clients (a transaction's keys stay in one key group); it touches neither the store nor the
//! model's contents.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::KvWorkload;
use crate::kv::groups::DOCUMENTS;
use crate::kv::{Key, KvStore, Value, Write};

/// Keys the workload uses: few, so transactions overwrite each other.
pub(super) const KEYS: Key = 16;
/// Simulated clients with interleaved transactions.
const CLIENTS: u8 = 3;

/// One operation of the key-value workload, as drawn from the seed or replayed from a
/// recording (so a corpus entry keeps working when the drawing code changes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    /// Commit these writes, durably or not.
    Commit {
        /// The writes.
        writes: Vec<Write>,
        /// Whether the commit must be durable before it returns.
        durable: bool,
    },
    /// Make every commit durable.
    Sync,
    /// Read a key and compare it with the model.
    Get {
        /// The key.
        key: Key,
    },
    /// Crash the process between operations; with `check_images`, first recover on every
    /// legal crash image.
    Crash {
        /// Enumerate and check the crash images first.
        check_images: bool,
    },
    /// A client begins a transaction (interleaved mode).
    Begin {
        /// The client.
        client: u8,
    },
    /// A client adds a write to its open transaction.
    Put {
        /// The client.
        client: u8,
        /// The write.
        write: Write,
    },
    /// Read both clocks (the wall clock may jump; the monotonic one must never go back).
    Clock,
    /// Take a checkpoint (stores that have them).
    Checkpoint,
    /// Start a checkpoint without writing it (stores whose checkpoints overlap commits): the
    /// operations after it commit while it is frozen, until a tick or checkpoint writes it;
    /// a crash may come at any point in between.
    BeginCheckpoint,
    /// A client commits (durably or not) or aborts its open transaction.
    Finish {
        /// The client.
        client: u8,
        /// Commit (`true`) or abort.
        commit: bool,
        /// Whether the commit must be durable before it returns.
        durable: bool,
    },
    /// The store's background work (checkpoints when due, syncs).
    Tick,
    /// Scan one group (`Some`) or the whole store, and compare with the model.
    Scan {
        /// The group, or `None` for every group.
        group: Option<u8>,
    },
    /// Add to a key's value, resolved by the store; the new value must match the model.
    Increment {
        /// The key.
        key: Key,
        /// How much (the value wraps at `Value::MAX`).
        by: Value,
        /// Whether the commit must be durable before it returns.
        durable: bool,
    },
    /// Import a document (resuming after a crash; a complete one is skipped).
    Document {
        /// The document, below [`crate::kv::groups::DOCUMENTS`].
        doc: u8,
        /// Durable chunks to import it in; the last one marks it complete.
        chunks: u8,
    },
    /// A client reads a key inside its open transaction: its own writes are visible, else
    /// the committed value (stores that take [`KvStore::extended_ops`]).
    TxnGet {
        /// The client.
        client: u8,
        /// The key.
        key: Key,
    },
    /// A client adds an increment to its open transaction, resolved at its commit
    /// ([`crate::kv::TxnWrite::Add`]; stores that take [`KvStore::extended_ops`]).
    Add {
        /// The client.
        client: u8,
        /// The key.
        key: Key,
        /// How much (the value wraps at `Value::MAX`).
        by: Value,
    },
}

impl<S: KvStore> KvWorkload<S> {
    /// The next operation: replayed, or drawn from the workload and image streams.
    pub(super) fn next_op(&mut self) -> Option<KvOp> {
        if let Some(replay) = &mut self.replay {
            return replay.next();
        }
        if self.rng.random_bool(self.config.driver_crash_probability) {
            let check_images = self.images_rng.random_bool(self.config.image_check_probability);
            return Some(KvOp::Crash { check_images });
        }
        if S::checkpoints(&self.store_config) && self.rng.random_bool(0.04) {
            return Some(KvOp::Checkpoint);
        }
        if S::extended_ops(&self.store_config)
            && let Some(op) = self.draw_extended_op()
        {
            return Some(op);
        }
        if S::interleaved_transactions(&self.store_config) && self.rng.random_bool(0.5) {
            return Some(self.draw_client_op());
        }
        Some(match self.rng.random_range(0..100) {
            0..60 => {
                let writes = self.random_writes(S::writes_per_commit_max(&self.store_config));
                KvOp::Commit { writes, durable: self.rng.random_bool(0.5) }
            }
            60..75 => KvOp::Sync,
            75..78 => KvOp::Clock,
            _ => KvOp::Get { key: self.rng.random_range(0..KEYS) },
        })
    }

    /// A tick, scan, increment or document import, or (most often) none of them.
    fn draw_extended_op(&mut self) -> Option<KvOp> {
        let groups = self.model.groups();
        Some(match self.rng.random_range(0..100) {
            0..5 => KvOp::Tick,
            5..9 => {
                let group = self.rng.random_bool(0.7).then(|| self.rng.random_range(0..groups) as u8);
                KvOp::Scan { group }
            }
            9..16 => KvOp::Increment {
                key: self.rng.random_range(0..KEYS),
                by: self.rng.random_range(1..=1000),
                durable: self.rng.random_bool(0.5),
            },
            16..19 => KvOp::Document {
                doc: self.rng.random_range(0..DOCUMENTS),
                chunks: self.rng.random_range(1..=3),
            },
            19..23 if S::checkpoints(&self.store_config) => KvOp::BeginCheckpoint,
            _ => return None,
        })
    }

    /// A key of `group` among the workload's keys.
    fn random_key_in(&mut self, group: usize) -> Key {
        let groups = self.model.groups();
        let in_group = (usize::from(KEYS) - group).div_ceil(groups);
        (group + groups * self.rng.random_range(0..in_group)) as Key
    }

    /// A client operation: begin, write (long transactions are common), commit or abort.
    fn draw_client_op(&mut self) -> KvOp {
        let client = self.rng.random_range(0..CLIENTS);
        let Some((_, writes)) = self.open_txns.get(&client) else { return KvOp::Begin { client } };
        let written: Vec<Key> = writes.iter().map(|w| w.key()).collect();
        let finish_chance = if written.is_empty() { 0.0 } else { 0.25 };
        if self.rng.random_bool(finish_chance) {
            let commit = self.rng.random_bool(0.85);
            return KvOp::Finish { client, commit, durable: self.rng.random_bool(0.5) };
        }
        // A transaction stays in the group of its first write.
        let key = match written.first() {
            Some(&first) if self.model.groups() > 1 => self.random_key_in(self.model.group_of(first)),
            _ => self.rng.random_range(0..KEYS),
        };
        if S::extended_ops(&self.store_config) && self.rng.random_bool(0.2) {
            // Most often a key the transaction wrote: its own write must be visible.
            let key = match written.is_empty() || self.rng.random_bool(0.3) {
                true => key,
                false => written[self.rng.random_range(0..written.len())],
            };
            return KvOp::TxnGet { client, key };
        }
        if S::extended_ops(&self.store_config) && self.rng.random_bool(0.2) {
            return KvOp::Add { client, key, by: self.rng.random_range(1..=1000) };
        }
        let value = self.rng.random_bool(0.85).then(|| self.rng.random::<Value>());
        KvOp::Put { client, write: (key, value) }
    }

    fn random_writes(&mut self, writes_max: usize) -> Vec<Write> {
        let count = self.rng.random_range(1..=writes_max.max(1));
        // With several groups, a transaction's keys come from one group.
        let groups = self.model.groups();
        let group = (groups > 1).then(|| self.rng.random_range(0..groups));
        (0..count)
            .map(|_| {
                let key = match group {
                    Some(group) => self.random_key_in(group),
                    None => self.rng.random_range(0..KEYS),
                };
                let value = self.rng.random_bool(0.85).then(|| self.rng.random::<Value>());
                (key, value)
            })
            .collect()
    }
}
