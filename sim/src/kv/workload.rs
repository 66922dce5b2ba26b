//! The key-value workload: drives a [`KvStore`] under faults and checks every recovery.
//!
//! The workload commits transactions (durable or not), syncs, reads, and crashes the process;
//! a store that fails a call is treated as fail-stopped and restarted. Recovery runs with
//! faults still on, so a crash during recovery is just another crash. After each successful
//! open the recovered state must be a legal prefix of the model ([`KvModel::verdict`]).
//!
//! Honest errors: a store may refuse to open with [`StoreError::DataLoss`] only if the
//! simulator really damaged media; losing exactly the last durable sync group counts as
//! `undetectable` damage under the same condition; anything else is a violation. After faults
//! stop, the store must open and take a durable write within a bounded number of attempts.
//!
//! Checkpoints (DESIGN.md section 4): after every successful recovery, crash images
//! included, the store audits its own durable invariants ([`KvStore::audit`]) with faults
//! off, knowing whether media was damaged and the newest checkpoint whose creation returned
//! `Ok`; a failed audit is a [`ViolationKind::Checkpoint`] violation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stormhold::env::Env;
use stormhold::env::sim::{SimEnv, is_crash};

use super::groups::{self, DOCUMENT_MARK_VALUE, DOCUMENTS, GroupedModel};
use super::model::Ack;
use super::{AuditFacts, Key, KvStore, StoreError, Value, Write};
use crate::config::{RunConfig, stream};
use crate::runner::{Violation, ViolationKind};

/// Keys the workload uses: few, so transactions overwrite each other.
const KEYS: Key = 16;
/// Open attempts before recovery counts as stuck.
const OPEN_ATTEMPTS_MAX: u32 = 64;
/// The key of the liveness probe, outside the workload's keys.
const PROBE_KEY: Key = 0xffff;

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
        /// The document, below [`groups::DOCUMENTS`].
        doc: u8,
        /// Durable chunks to import it in; the last one marks it complete.
        chunks: u8,
    },
}

/// What an operation touches, for telling a failed group from a healthy one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// One group: an error there must come from that group's own failure.
    Group(usize),
    /// Several groups, or none in particular.
    Whole,
}

/// Simulated clients with interleaved transactions.
const CLIENTS: u8 = 3;

/// The outcome of opening a store.
enum Opened<S> {
    Store(S),
    /// The store refused to open and said why, after real media damage.
    HonestLoss(String),
}

/// Drives one seed of a key-value store.
pub struct KvWorkload<S: KvStore> {
    env: SimEnv,
    config: RunConfig,
    store_config: S::Config,
    rng: ChaCha8Rng,
    store: Option<S>,
    /// One model per key group ([`KvStore::key_groups`]).
    model: GroupedModel,
    op_index: u64,
    /// Recoveries whose state was checked.
    pub recoveries: u64,
    /// Losses of the last durable sync group after media damage (no single-copy format can
    /// tell them from a torn write).
    pub undetectable: u64,
    /// Honest data-loss reports after media damage; each time the store was wiped.
    pub data_loss_detected: u64,
    /// Crash images recovered and judged at enumerated crash points.
    pub images_explored: u64,
    /// Decides which crash points enumerate their images (its own stream, so the workload's
    /// operations do not depend on it).
    images_rng: ChaCha8Rng,
    /// Operations to replay instead of drawing (`None`: draw).
    replay: Option<std::vec::IntoIter<KvOp>>,
    /// Every operation executed, for the corpus.
    pub recorded: Vec<KvOp>,
    /// Open transactions per client: (txn id, writes so far).
    open_txns: BTreeMap<u8, (u64, Vec<Write>)>,
    /// Whether faults have stopped.
    quiet: bool,
    /// Media faults done before the store was last wiped: they excuse nothing after it.
    media_faults_before_wipe: u64,
    /// The latest monotonic reading.
    monotonic_seen: std::time::Duration,
    next_txn: u64,
    /// The newest checkpoint whose creation returned `Ok` since the store was last wiped.
    checkpoint_acknowledged: Option<u64>,
}

/// Media faults the simulator did so far (bit rot, misdirected writes, bad sectors).
fn media_faults(env: &SimEnv) -> u64 {
    let stats = env.stats();
    stats.bit_rot + stats.misdirected_writes + stats.bad_sectors
}

impl<S: KvStore> KvWorkload<S> {
    /// A workload of `config` over `env`, opening stores with `store_config`.
    pub fn new(env: SimEnv, config: RunConfig, store_config: S::Config) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(stream::WORKLOAD);
        let mut images_rng = ChaCha8Rng::seed_from_u64(config.seed);
        images_rng.set_stream(stream::IMAGES);
        let model = GroupedModel::new(S::key_groups(&store_config));
        Self {
            env,
            config,
            store_config,
            rng,
            store: None,
            model,
            op_index: 0,
            recoveries: 0,
            undetectable: 0,
            data_loss_detected: 0,
            images_explored: 0,
            images_rng,
            replay: None,
            recorded: Vec::new(),
            open_txns: BTreeMap::new(),
            quiet: false,
            media_faults_before_wipe: 0,
            monotonic_seen: std::time::Duration::ZERO,
            next_txn: 1,
            checkpoint_acknowledged: None,
        }
    }

    /// Replays `ops` instead of drawing operations; the run ends when they run out.
    pub fn replaying(mut self, ops: Vec<KvOp>) -> Self {
        self.replay = Some(ops.into_iter());
        self
    }

    /// The next operation: replayed, or drawn from the workload and image streams.
    fn next_op(&mut self) -> Option<KvOp> {
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
            _ => return None,
        })
    }

    /// A key of `group` among the workload's keys.
    fn random_key_in(&mut self, group: usize) -> Key {
        let groups = self.model.groups();
        let in_group = (usize::from(KEYS) - group).div_ceil(groups);
        (group + groups * self.rng.random_range(0..in_group)) as Key
    }

    /// Operations executed so far.
    pub fn ops(&self) -> u64 {
        self.op_index
    }

    fn violation(&self, kind: ViolationKind, detail: String) -> Violation {
        Violation { kind, op_index: self.op_index, detail }
    }

    /// Runs the chaos phase, the quiet phase, and the liveness probe.
    pub fn run(&mut self) -> Result<(), Violation> {
        self.recover(false)?;
        let total = self.config.ops + self.config.quiet_ops;
        while self.op_index < total {
            if self.op_index >= self.config.ops && !self.quiet {
                self.begin_quiet_phase();
            }
            let Some(op) = self.next_op() else { break };
            self.op_index += 1;
            self.recorded.push(op.clone());
            self.step(op)?;
        }
        self.recover(false)?;
        self.liveness_probe()
    }

    /// Whether the simulator damaged media since the store was last wiped (only then may the
    /// store honestly report data loss, or lose its last durable group undetectably).
    fn media_damage(&self, env: &SimEnv) -> bool {
        media_faults(env) > self.media_faults_before_wipe
    }

    /// Faults stop (and the disk budget is lifted: the operator freed space); from now on the
    /// store owes liveness.
    fn begin_quiet_phase(&mut self) {
        self.quiet = true;
        self.env.set_faults_enabled(false);
        self.env.set_disk_bytes_max(None);
    }

    /// A client operation: begin, write (long transactions are common), commit or abort.
    fn draw_client_op(&mut self) -> KvOp {
        let client = self.rng.random_range(0..CLIENTS);
        let Some((_, writes)) = self.open_txns.get(&client) else { return KvOp::Begin { client } };
        let finish_chance = if writes.is_empty() { 0.0 } else { 0.25 };
        if self.rng.random_bool(finish_chance) {
            let commit = self.rng.random_bool(0.85);
            return KvOp::Finish { client, commit, durable: self.rng.random_bool(0.5) };
        }
        // A transaction stays in the group of its first write.
        let key = match writes.first() {
            Some(&(first, _)) if self.model.groups() > 1 => self.random_key_in(self.model.group_of(first)),
            _ => self.rng.random_range(0..KEYS),
        };
        let value = self.rng.random_bool(0.85).then(|| self.rng.random::<Value>());
        KvOp::Put { client, write: (key, value) }
    }

    /// What `op` touches.
    fn scope_of(&self, op: &KvOp) -> Scope {
        let first = match op {
            KvOp::Commit { writes, .. } => writes.first().map(|w| w.0),
            KvOp::Finish { client, .. } => {
                self.open_txns.get(client).and_then(|(_, w)| w.first()).map(|w| w.0)
            }
            KvOp::Increment { key, .. } => Some(*key),
            KvOp::Document { doc, .. } => {
                return Scope::Group(groups::document_group(doc % DOCUMENTS, self.model.groups()));
            }
            _ => None,
        };
        first.map_or(Scope::Whole, |key| Scope::Group(self.model.group_of(key)))
    }

    fn step(&mut self, op: KvOp) -> Result<(), Violation> {
        let scope = self.scope_of(&op);
        let outcome = match op {
            KvOp::Begin { client } => self.op_begin(client),
            KvOp::Put { client, write } => self.op_put(client, write),
            KvOp::Finish { client, commit, durable } => self.op_finish(client, commit, durable),
            KvOp::Crash { check_images } => {
                self.env.note(format!("op {}: driver crash", self.op_index));
                return self.recover(check_images);
            }
            KvOp::Commit { writes, durable } => self.op_commit(writes, durable),
            KvOp::Sync => self.op_sync(),
            KvOp::Get { key } => return self.op_get(key),
            KvOp::Clock => return self.op_clock(),
            KvOp::Checkpoint => self.op_checkpoint(),
            KvOp::Tick => self.op_tick(),
            KvOp::Scan { group } => return self.op_scan(group),
            KvOp::Increment { key, by, durable } => self.op_increment(key, by, durable)?,
            KvOp::Document { doc, chunks } => self.op_document(doc, chunks)?,
        };
        self.note_checkpoint_acknowledged();
        match outcome {
            Ok(()) => Ok(()),
            Err(error) => self.after_error(error, scope),
        }
    }

    /// Remembers the newest checkpoint the store acknowledged (a store may checkpoint inside
    /// any call, and a call that failed may have created one first).
    fn note_checkpoint_acknowledged(&mut self) {
        let acknowledged = self.store.as_ref().and_then(S::checkpoint_acknowledged);
        if acknowledged > self.checkpoint_acknowledged {
            self.checkpoint_acknowledged = acknowledged;
            self.env.note(format!("op {}: checkpoint {acknowledged:?} acknowledged", self.op_index));
        }
    }

    /// After an operation failed: the process died, or the store fail-stopped, so restart it;
    /// except that in a store of several groups, a group that failed alone leaves the others
    /// serving (the store restarts when an operation finds a failed group, or all failed).
    fn after_error(&mut self, error: StoreError, scope: Scope) -> Result<(), Violation> {
        let groups = self.model.groups();
        let failed = match self.store.as_ref() {
            Some(store) if groups > 1 && !self.env.is_crashed() => store.failed_groups(),
            _ => return self.recover(false),
        };
        if let Scope::Group(group) = scope
            && !failed.contains(&group)
        {
            let detail = format!(
                "an operation on group {group} failed while the group serves (failed groups: {failed:?}): {error}"
            );
            return Err(self.violation(ViolationKind::Liveness, detail));
        }
        if matches!(error, StoreError::Poisoned) || failed.is_empty() || failed.len() == groups {
            return self.recover(false);
        }
        self.env.note(format!("op {}: groups {failed:?} failed; the others keep serving", self.op_index));
        Ok(())
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

    fn op_commit(&mut self, writes: Vec<Write>, durable: bool) -> Result<(), StoreError> {
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.commit(&writes, durable);
        self.env.note(format!(
            "op {}: commit {writes:?} durable={durable} -> {}",
            self.op_index,
            ok(&result)
        ));
        match &result {
            Ok(()) => self.model.commit(writes, if durable { Ack::Durable } else { Ack::Unsynced }),
            Err(StoreError::Poisoned) => {}
            Err(_) => self.model.commit(writes, Ack::Indeterminate),
        }
        if let (true, Ok(())) = (durable, &result) {
            self.note_watermark();
        }
        result
    }

    fn op_checkpoint(&mut self) -> Result<(), StoreError> {
        // A checkpoint syncs the log first: on success everything committed is durable.
        self.whole_store_sync("checkpoint", S::checkpoint)
    }

    /// Runs a store-wide operation that makes every committed transaction durable on
    /// success (a sync or a checkpoint), and updates the model either way.
    fn whole_store_sync(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut S) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = op(store);
        self.env.note(format!("op {}: {what} -> {}", self.op_index, ok(&result)));
        if result.is_ok() {
            self.model.synced();
            self.note_watermark();
        } else {
            self.synced_where_serving();
        }
        result
    }

    /// After a whole-store sync or checkpoint failed in a store of several groups: every
    /// group still serving completed it.
    fn synced_where_serving(&mut self) {
        let Some(store) = self.store.as_ref().filter(|_| self.model.groups() > 1) else { return };
        let failed = store.failed_groups();
        for group in (0..self.model.groups()).filter(|g| !failed.contains(g)) {
            self.model.synced_group(group);
        }
        self.note_watermark();
    }

    fn op_tick(&mut self) -> Result<(), StoreError> {
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.tick();
        self.env.note(format!("op {}: tick -> {}", self.op_index, ok(&result)));
        let durable = result?;
        for &group in &durable {
            self.model.synced_group(group);
        }
        if !durable.is_empty() {
            self.note_watermark();
        }
        Ok(())
    }

    /// Compares a scan of one group, or of the whole store, with the model. A group's scan
    /// may fail only if the group is failed; a whole-store scan must fail if any group is
    /// (a scan never silently skips one).
    fn op_scan(&mut self, group: Option<u8>) -> Result<(), Violation> {
        let Some(store) = self.store.as_ref() else { return Ok(()) };
        let groups = self.model.groups();
        let failed = store.failed_groups();
        let group = group.map(|g| usize::from(g) % groups);
        let result = match group {
            Some(group) => store.scan_group(group),
            None => store.state(),
        };
        self.env.note(format!("op {}: scan {group:?} -> {}", self.op_index, ok(&result)));
        let got = match (result, group) {
            (Ok(_), None) if !failed.is_empty() => {
                let detail = format!("a scan of every group succeeded while groups {failed:?} are failed");
                return Err(self.violation(ViolationKind::Read, detail));
            }
            (Ok(got), _) => got,
            (Err(_), Some(group)) if failed.contains(&group) => return Ok(()),
            (Err(_), None) if !failed.is_empty() => return Ok(()),
            (Err(error), _) => {
                let detail = format!("a scan of group {group:?} failed while it serves: {error}");
                return Err(self.violation(ViolationKind::Liveness, detail));
            }
        };
        let in_scope = |key: Key| group.is_none_or(|g| self.model.group_of(key) == g);
        // A group's scan reads its keys only; document marks come from every group.
        let is_mark = |key: Key| group.is_some() && groups::document_of_mark(key, groups).is_some();
        let mut expected = BTreeMap::new();
        for model in &self.model.models {
            expected.extend(model.state_after(model.txns.len()));
        }
        for key in expected.keys().chain(got.keys()).copied() {
            if !in_scope(key) || is_mark(key) || self.model.uncertain(key) {
                continue;
            }
            let (want, found) = (expected.get(&key), got.get(&key));
            if want != found {
                let detail = format!("scan {group:?}: key {key}: got {found:?}, the model expects {want:?}");
                return Err(self.violation(ViolationKind::Read, detail));
            }
        }
        Ok(())
    }

    /// An increment, unless an indeterminate transaction left the key's value unknown.
    fn op_increment(
        &mut self,
        key: Key,
        by: Value,
        durable: bool,
    ) -> Result<Result<(), StoreError>, Violation> {
        if self.model.uncertain(key) {
            self.env.note(format!("op {}: increment of uncertain key {key} skipped", self.op_index));
            return Ok(Ok(()));
        }
        let expected = self.model.expected(key).unwrap_or(0).wrapping_add(by);
        let Some(store) = self.store.as_mut() else { return Ok(Err(StoreError::Poisoned)) };
        let result = store.increment(key, by, durable);
        self.env.note(format!(
            "op {}: increment {key} by {by} durable={durable} -> {}",
            self.op_index,
            result.as_ref().map_or_else(|e| format!("err {e}"), |v| format!("ok {v}"))
        ));
        match result {
            Ok(got) if got != expected => {
                let detail = format!("increment {key} by {by}: got {got}, the model expects {expected}");
                Err(self.violation(ViolationKind::Read, detail))
            }
            Ok(got) => {
                self.model.commit(vec![(key, Some(got))], if durable { Ack::Durable } else { Ack::Unsynced });
                if durable {
                    self.note_watermark();
                }
                Ok(Ok(()))
            }
            Err(StoreError::Poisoned) => Ok(Err(StoreError::Poisoned)),
            Err(error) => {
                self.model.commit(vec![(key, Some(expected))], Ack::Indeterminate);
                Ok(Err(error))
            }
        }
    }

    /// Imports document `doc` in `chunks` durable chunks, the last one marking it complete,
    /// unless the store says it is complete already (which must match the model).
    fn op_document(&mut self, doc: u8, chunks: u8) -> Result<Result<(), StoreError>, Violation> {
        let groups = self.model.groups();
        let doc = doc % DOCUMENTS;
        let mark = groups::document_mark_key(doc, groups);
        let Some(store) = self.store.as_mut() else { return Ok(Err(StoreError::Poisoned)) };
        let begun = store.document_begin(doc);
        self.env.note(format!(
            "op {}: begin document {doc} -> {}",
            self.op_index,
            begun.as_ref().map_or_else(|e| format!("err {e}"), |c| format!("ok complete={c}"))
        ));
        let complete = match begun {
            Ok(complete) => complete,
            Err(error) => return Ok(Err(error)),
        };
        if !self.model.uncertain(mark) && complete != self.model.expected(mark).is_some() {
            let detail = format!(
                "document {doc}: the store says complete={complete}, the model expects complete={}",
                !complete
            );
            return Err(self.violation(ViolationKind::Read, detail));
        }
        if complete {
            return Ok(Ok(()));
        }
        let writes = groups::document_writes(doc, groups);
        let per_chunk = writes.len().div_ceil(usize::from(chunks.max(1)));
        let parts: Vec<&[Write]> = writes.chunks(per_chunk).collect();
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            let Some(store) = self.store.as_mut() else { return Ok(Err(StoreError::Poisoned)) };
            let result = store.document_commit(doc, part, last);
            self.env.note(format!(
                "op {}: document {doc} chunk {index} complete={last} -> {}",
                self.op_index,
                ok(&result)
            ));
            let mut modeled = part.to_vec();
            if last {
                modeled.push((mark, Some(DOCUMENT_MARK_VALUE)));
            }
            match &result {
                Ok(()) => {
                    self.model.commit(modeled, Ack::Durable);
                    self.note_watermark();
                }
                Err(StoreError::Poisoned) => {}
                Err(_) => self.model.commit(modeled, Ack::Indeterminate),
            }
            if result.is_err() {
                return Ok(result);
            }
        }
        Ok(Ok(()))
    }

    fn op_clock(&mut self) -> Result<(), Violation> {
        let wall = self.env.now_wall();
        let now = self.env.now_monotonic();
        if now < self.monotonic_seen {
            let detail = format!("monotonic clock went back from {:?} to {now:?}", self.monotonic_seen);
            return Err(self.violation(ViolationKind::Read, detail));
        }
        self.monotonic_seen = now;
        self.env.note(format!("op {}: wall clock {wall:?}", self.op_index));
        Ok(())
    }

    fn op_begin(&mut self, client: u8) -> Result<(), StoreError> {
        if self.open_txns.contains_key(&client) {
            return Ok(());
        }
        let txn = self.next_txn;
        self.next_txn += 1;
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.txn_begin(txn);
        self.env.note(format!("client {client}: op {} begin txn {txn} -> {}", self.op_index, ok(&result)));
        result.map(|()| {
            self.open_txns.insert(client, (txn, Vec::new()));
        })
    }

    fn op_put(&mut self, client: u8, write: Write) -> Result<(), StoreError> {
        let Some((txn, writes)) = self.open_txns.get(&client) else { return Ok(()) };
        let txn = *txn;
        if let Some(&(first, _)) = writes.first()
            && self.model.group_of(first) != self.model.group_of(write.0)
        {
            // Only a replay with operations cut out (a crash that ended the transaction, say)
            // can bring a write of another group here: a transaction stays in one group.
            self.env.note(format!(
                "client {client}: op {} write {write:?} of another group skipped",
                self.op_index
            ));
            return Ok(());
        }
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.txn_write(txn, write);
        self.env.note(format!(
            "client {client}: op {} txn {txn} write {write:?} -> {}",
            self.op_index,
            ok(&result)
        ));
        if result.is_ok()
            && let Some((_, writes)) = self.open_txns.get_mut(&client)
        {
            writes.push(write);
        }
        result
    }

    fn op_finish(&mut self, client: u8, commit: bool, durable: bool) -> Result<(), StoreError> {
        let Some((txn, writes)) = self.open_txns.remove(&client) else { return Ok(()) };
        let Some(store) = self.store.as_mut() else { return Err(StoreError::Poisoned) };
        let result = store.txn_finish(txn, &writes, commit, durable);
        let what = if commit { "commit" } else { "abort" };
        self.env.note(format!(
            "client {client}: op {} {what} txn {txn} durable={durable} -> {}",
            self.op_index,
            ok(&result)
        ));
        match (&result, commit) {
            (Ok(()), true) => self.model.commit(writes, if durable { Ack::Durable } else { Ack::Unsynced }),
            (Err(StoreError::Poisoned), _) | (_, false) => {}
            (Err(_), true) => self.model.commit(writes, Ack::Indeterminate),
        }
        if let (true, true, Ok(())) = (commit, durable, &result) {
            self.note_watermark();
        }
        result
    }

    fn op_sync(&mut self) -> Result<(), StoreError> {
        self.whole_store_sync("sync", S::sync)
    }

    fn note_watermark(&self) {
        let durable = self.model.durable_txns();
        self.env.note(format!("watermark durable-txns={durable}"));
    }

    fn op_get(&mut self, key: Key) -> Result<(), Violation> {
        let Some(store) = self.store.as_ref() else { return Ok(()) };
        match store.get(key) {
            Ok(got) if !self.model.uncertain(key) && got != self.model.expected(key) => Err(self.violation(
                ViolationKind::Read,
                format!("get {key}: got {got:?}, the model expects {:?}", self.model.expected(key)),
            )),
            // A read of a serving group never fails because another group failed.
            Err(error)
                if self.model.groups() > 1 && !store.failed_groups().contains(&self.model.group_of(key)) =>
            {
                let detail = format!("get {key} failed while its group serves: {error}");
                Err(self.violation(ViolationKind::Liveness, detail))
            }
            _ => Ok(()),
        }
    }

    /// Crashes the process, reopens the store (retrying through faults) and checks it. At a
    /// sampled driver crash point, first checks recovery on every legal crash image.
    fn recover(&mut self, check_images: bool) -> Result<(), Violation> {
        self.store = None;
        // The process died: its open transactions die with it (never committed).
        self.open_txns.clear();
        if check_images && !self.env.is_crashed() {
            self.check_images()?;
        }
        self.env.crash();
        self.env.restart();
        let opened = match self.open_on(&self.env.clone()) {
            // A persistent condition (a full disk, a stuck device) may keep recovery from
            // completing while faults go on; liveness is owed only once they stop.
            Err(violation) if violation.kind == ViolationKind::Liveness && !self.quiet => {
                self.env.note(format!(
                    "op {}: recovery stuck under faults, the quiet phase starts early",
                    self.op_index
                ));
                self.begin_quiet_phase();
                self.open_on(&self.env.clone())?
            }
            other => other?,
        };
        let store = match opened {
            Opened::Store(store) => store,
            Opened::HonestLoss(what) => {
                self.data_loss_detected += 1;
                self.env
                    .note(format!("op {}: data loss reported ({what}); the store is wiped", self.op_index));
                return self.wipe_store();
            }
        };
        let recovered = self.state_of(&store)?;
        self.recoveries += 1;
        if self.judge_on(&self.env.clone(), &recovered)? {
            self.undetectable += 1;
        }
        self.env.set_faults_enabled(false);
        let audit = self.audit_on(&self.env.clone(), &store);
        self.env.set_faults_enabled(!self.quiet);
        audit?;
        let prefixes = self.model.judge(&recovered).prefixes();
        self.model.rebase_at(&recovered, &prefixes);
        self.store = Some(store);
        Ok(())
    }

    /// After an honest data-loss report: removes the store's files and starts over from an
    /// empty store and model (with faults off while the operator works).
    fn wipe_store(&mut self) -> Result<(), Violation> {
        self.env.set_faults_enabled(false);
        let start_over = |this: &Self| {
            S::destroy(&this.env)
                .map_err(|e| e.to_string())
                .and_then(|()| S::open(&this.env, &this.store_config).map_err(|e| e.to_string()))
        };
        let opened = match start_over(self) {
            // A full disk outlasts the wipe: liveness is owed once faults (and the budget) stop.
            Err(_) if !self.quiet => {
                self.begin_quiet_phase();
                start_over(self)
            }
            other => other,
        };
        let store = opened.map_err(|error| {
            self.violation(
                ViolationKind::Liveness,
                format!("the store does not start over after a wipe: {error}"),
            )
        })?;
        self.model.wiped();
        self.media_faults_before_wipe = media_faults(&self.env);
        self.checkpoint_acknowledged = None;
        self.store = Some(store);
        self.env.set_faults_enabled(!self.quiet);
        Ok(())
    }

    fn state_of(&self, store: &S) -> Result<BTreeMap<Key, Value>, Violation> {
        store
            .state()
            .map_err(|error| self.violation(ViolationKind::Durability, format!("state after open: {error}")))
    }

    /// Recovers the store on every legal post-crash image of the current pending state (each
    /// on a fork, faults off) and judges each one.
    fn check_images(&mut self) -> Result<(), Violation> {
        let images = crate::images::prepared_images(&self.env, self.config.images_max, self.op_index);
        let count = images.len();
        for (index, image) in images.into_iter().enumerate() {
            let in_image = |violation| crate::images::in_image(violation, index, count);
            if let Opened::Store(store) = self.open_on(&image).map_err(in_image)? {
                let recovered = self.state_of(&store)?;
                self.judge_on(&image, &recovered).map_err(in_image)?;
                // Faults are off on the images already.
                self.audit_on(&image, &store).map_err(in_image)?;
            }
        }
        self.images_explored += count as u64;
        Ok(())
    }

    /// Runs the store's audit of its recovery on `env` (the caller turns faults off).
    fn audit_on(&self, env: &SimEnv, store: &S) -> Result<(), Violation> {
        let facts = AuditFacts {
            media_damage: self.media_damage(env),
            checkpoint_acknowledged: self.checkpoint_acknowledged,
        };
        store.audit(env, &facts).map_err(|detail| {
            self.violation(ViolationKind::Checkpoint, format!("checkpoint audit after recovery: {detail}"))
        })
    }

    /// Opens the store on `env`, retrying through faults and crashes during recovery.
    fn open_on(&self, env: &SimEnv) -> Result<Opened<S>, Violation> {
        let mut last_error = String::new();
        for _ in 0..OPEN_ATTEMPTS_MAX {
            match S::open(env, &self.store_config) {
                Ok(store) => return Ok(Opened::Store(store)),
                Err(StoreError::DataLoss(what)) if self.media_damage(env) => {
                    env.note(format!("honest data loss reported: {what}"));
                    return Ok(Opened::HonestLoss(what));
                }
                Err(StoreError::DataLoss(what)) => {
                    return Err(self.violation(
                        ViolationKind::Durability,
                        format!("open reported data loss, but the simulator damaged no media: {what}"),
                    ));
                }
                Err(StoreError::Io(error)) if is_crash(&error) => env.restart(),
                Err(error) => {
                    // A failed open fail-stops the process, which restarts before trying again
                    // (retrying in-process would trust pages a failed sync left only in the
                    // page cache: see the WAL's fsyncgate note).
                    last_error = error.to_string();
                    env.crash();
                    env.restart();
                }
            }
        }
        if self.media_damage(env) {
            return Ok(Opened::HonestLoss(last_error));
        }
        Err(self.violation(
            ViolationKind::Liveness,
            format!("the store did not open in {OPEN_ATTEMPTS_MAX} attempts: {last_error}"),
        ))
    }

    /// Judges a recovered state; `Ok(true)` for a legal loss of the last durable group after
    /// media damage on `env` (undetectable by a single-copy format).
    ///
    /// Each key group is judged against its own model (the prefix property is per group).
    fn judge_on(&self, env: &SimEnv, recovered: &BTreeMap<Key, Value>) -> Result<bool, Violation> {
        let judgement = self.model.judge(recovered);
        let divergence = |group| {
            self.violation(ViolationKind::Durability, self.model.describe_divergence(group, recovered))
        };
        if let Some(group) = judgement.illegal() {
            return Err(divergence(group));
        }
        match judgement.lost_last_durable() {
            None => {
                env.note(self.model.describe_prefixes(&judgement));
                Ok(false)
            }
            Some(_) if self.media_damage(env) => {
                env.note("recovered without the last durable sync group after media damage".to_owned());
                Ok(true)
            }
            Some(group) => Err(divergence(group)),
        }
    }

    /// With faults off, the store must take a durable write that survives a crash.
    fn liveness_probe(&mut self) -> Result<(), Violation> {
        self.env.set_faults_enabled(false);
        let writes = vec![(PROBE_KEY, Some(0x5eed))];
        let result = match self.store.as_mut() {
            Some(store) => store.commit(&writes, true),
            None => Err(StoreError::Poisoned),
        };
        self.note_checkpoint_acknowledged();
        if let Err(error) = result {
            return Err(
                self.violation(ViolationKind::Liveness, format!("durable commit on a quiet disk: {error}"))
            );
        }
        self.model.commit(writes, Ack::Durable);
        self.recover(false)?;
        match self.store.as_ref().map(|s| s.get(PROBE_KEY)) {
            Some(Ok(Some(0x5eed))) => Ok(()),
            other => Err(self.violation(
                ViolationKind::Liveness,
                format!(
                    "the quiet-phase probe did not survive a crash: {:?}",
                    other.map(|r| r.map_err(|e| e.to_string()))
                ),
            )),
        }
    }
}

fn ok<T>(result: &Result<T, StoreError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(error) => format!("err {error}"),
    }
}
