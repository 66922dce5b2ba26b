//! The key-value workload: drives a [`KvStore`] under faults and checks every recovery.
//!
//! The workload commits transactions (durable or not; with [`KvStore::extended_ops`],
//! increments inside them too, deltas the model resolves at commit in commit order), syncs,
//! reads (inside open transactions too: their own writes must be visible), and crashes the
//! process; a store that fails a call is treated as fail-stopped and restarted. A store of
//! several groups may open with groups failed without data loss
//! ([`KvStore::failed_at_open`]): the groups that recovered are judged and serve on, the failed
//! ones keep their models pending, are retried in-process when an operation finds them
//! ([`KvStore::reopen_group`]) and are judged when a recovery of them succeeds. Recovery runs with
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
//!
//! The rooms: this file owns the driver (the run's phases, one step per operation, what an
//! error means for the groups); [`ops`] draws the operations (generation), `execute` runs
//! each one against the store and the model (execution), and `recovery` crashes, reopens
//! and judges the store (checking). The model is beside this folder ([`crate::kv::model`],
//! [`crate::kv::groups`]); the stores under test are in [`crate::kv::stores`].
//!
//! [`KvModel::verdict`]: crate::kv::model::KvModel::verdict

mod execute;
pub mod ops;
mod recovery;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use stormhold::env::sim::SimEnv;

use super::groups::{self, DOCUMENTS, GroupedModel};
use super::{KvStore, StoreError, TxnWrite};
use crate::config::{RunConfig, stream};
use crate::verdict::{Violation, ViolationKind};
pub use ops::KvOp;

/// What an operation touches, for telling a failed group from a healthy one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// One group: an error there must come from that group's own failure.
    Group(usize),
    /// Several groups, or none in particular.
    Whole,
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
    /// Operations begun while the store had a checkpoint in flight (frozen, not yet
    /// published): commits and reads overlapping a checkpoint's writing.
    pub ops_beside_checkpoint: u64,
    /// Restarts (crashes) that struck while a checkpoint was in flight.
    pub restarts_mid_checkpoint: u64,
    /// Decides which crash points enumerate their images (its own stream, so the workload's
    /// operations do not depend on it).
    images_rng: ChaCha8Rng,
    /// Decides which driver crashes are process crashes (its own stream, as `images_rng`).
    crash_kind_rng: ChaCha8Rng,
    /// Failed syncs the simulator did up to the latest machine crash: one after it may have
    /// left pages clean in the page cache that never reached the disk (fsyncgate).
    sync_failures_at_power_loss: u64,
    /// Operations to replay instead of drawing (`None`: draw).
    replay: Option<std::vec::IntoIter<KvOp>>,
    /// Every operation executed, for the corpus.
    pub recorded: Vec<KvOp>,
    /// Open transactions per client: (txn id, writes so far).
    open_txns: BTreeMap<u8, (u64, Vec<TxnWrite>)>,
    /// Whether faults have stopped.
    quiet: bool,
    /// Media faults done before the store was last wiped: they excuse nothing after it.
    media_faults_before_wipe: u64,
    /// Entries of the damage log made before the store was last wiped.
    damage_before_wipe: usize,
    /// The latest monotonic reading.
    monotonic_seen: std::time::Duration,
    next_txn: u64,
    /// The newest checkpoint whose creation returned `Ok` since the store was last wiped.
    checkpoint_acknowledged: Option<u64>,
    /// The store's checkpoints in flight when the current operation began
    /// ([`KvStore::checkpoints_in_flight`]), noted if the operation ends in a restart.
    in_flight: Option<String>,
    /// The groups that failed at the store's last open (without data loss): not judged then,
    /// their models keep their pending commits until a recovery of them is judged.
    failed_at_open: Vec<usize>,
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
        let mut crash_kind_rng = ChaCha8Rng::seed_from_u64(config.seed);
        crash_kind_rng.set_stream(stream::PROCESS_CRASHES);
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
            ops_beside_checkpoint: 0,
            restarts_mid_checkpoint: 0,
            images_rng,
            crash_kind_rng,
            sync_failures_at_power_loss: 0,
            replay: None,
            recorded: Vec::new(),
            open_txns: BTreeMap::new(),
            quiet: false,
            media_faults_before_wipe: 0,
            damage_before_wipe: 0,
            monotonic_seen: std::time::Duration::ZERO,
            next_txn: 1,
            checkpoint_acknowledged: None,
            in_flight: None,
            failed_at_open: Vec::new(),
        }
    }

    /// Replays `ops` instead of drawing operations; the run ends when they run out.
    pub fn replaying(mut self, ops: Vec<KvOp>) -> Self {
        self.replay = Some(ops.into_iter());
        self
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

    /// What `op` touches.
    fn scope_of(&self, op: &KvOp) -> Scope {
        let first = match op {
            KvOp::Commit { writes, .. } => writes.first().map(|w| w.0),
            KvOp::Finish { client, .. } => {
                self.open_txns.get(client).and_then(|(_, w)| w.first()).map(|w| w.key())
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
        self.in_flight = self.store.as_ref().and_then(S::checkpoints_in_flight);
        self.ops_beside_checkpoint += u64::from(self.in_flight.is_some());
        let outcome = match op {
            KvOp::Begin { client } => self.op_begin(client),
            KvOp::Put { client, write } => self.op_put(client, TxnWrite::Set(write)),
            KvOp::Add { client, key, by } => self.op_put(client, TxnWrite::Add { key, by }),
            KvOp::Finish { client, commit, durable } => self.op_finish(client, commit, durable),
            KvOp::Crash { check_images } => {
                self.env.note(format!("op {}: driver crash", self.op_index));
                return self.recover(check_images);
            }
            KvOp::Commit { writes, durable } => self.op_commit(writes, durable),
            KvOp::Sync => self.op_sync(),
            KvOp::Get { key } => return self.op_get(key),
            KvOp::TxnGet { client, key } => return self.op_txn_get(client, key),
            KvOp::Clock => return self.op_clock(),
            KvOp::Checkpoint => self.op_checkpoint(),
            KvOp::BeginCheckpoint => self.op_begin_checkpoint(),
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
    /// serving (the store restarts when an operation finds a group that failed while serving,
    /// or all failed; a group that failed at open refuses operations until a later restart).
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
                "an operation on shard {group} failed while the shard serves (failed shards: {failed:?}): {error}"
            );
            return Err(self.violation(ViolationKind::Liveness, detail));
        }
        let only_failed_at_open = failed.iter().all(|group| self.failed_at_open.contains(group));
        if matches!(error, StoreError::Poisoned) && !failed.is_empty() && only_failed_at_open {
            // Refused by a group that failed at open: the others go on, and the store retries
            // that group's recovery in this process (or a later restart recovers it).
            self.env.note(format!("op {}: refused by shards {failed:?}, failed at open", self.op_index));
            return match scope {
                Scope::Group(group) => self.reopen_group(group),
                Scope::Whole => Ok(()),
            };
        }
        if matches!(error, StoreError::Poisoned) || failed.is_empty() || failed.len() == groups {
            return self.recover(false);
        }
        self.env.note(format!("op {}: shards {failed:?} failed; the others keep serving", self.op_index));
        Ok(())
    }

    fn note_watermark(&self) {
        let durable = self.model.durable_txns();
        self.env.note(format!("watermark durable-txns={durable}"));
    }
}

fn ok<T>(result: &Result<T, StoreError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(error) => format!("err {error}"),
    }
}
