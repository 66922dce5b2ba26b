//! The `raft` workload: the `stormhold-raft` adapter on `SimEnv`, driven through openraft's
//! storage API by a deterministic client, crashed at any Env call, and judged by what Raft
//! requires to survive ([`model`]).
//!
//! There is no network and no openraft core: the workload plays the leader's and the
//! follower's storage calls for two groups sharing one kernel (vote, append with callback,
//! truncate of an unapplied suffix, purge of an applied prefix, apply, snapshot build, and the
//! install of the other group's snapshot followed by the purge openraft would do), in an
//! order drawn from the seed. Every adapter call completes in one poll (`ready`), except an
//! append's callback, which the workload polls again after a `tick` of its choosing: the
//! callback firing is what it counts as "flushed". A crash (spontaneous at any Env call, drawn
//! between operations, or right after a `save_vote`) or any error is followed by a restart,
//! a reopen and a check of both groups with faults off; then the model is rebased.
//!
//! The planted mistakes `raft-callback-before-sync` and `raft-vote-unsynced` run the same
//! workload on an adapter with [`stormhold_raft::PlantedBug`] set.
//!
//! Invariants: nothing here reads real time or iterates an unordered collection; a full disk
//! is switched off for this workload (it proves crash safety, not ENOSPC handling); media
//! damage that the kernel reports as data loss is counted and the store wiped, like the
//! key-value workloads do.

pub mod model;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, Vote};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use stormhold::env::sim::SimEnv;
use stormhold::{Config, Kernel, Router};
use stormhold_raft::{GROUP_PREFIX_BYTES, LogStore, Options, PlantedBug, Request, StateMachine, TypeConfig};

use crate::config::{RunConfig, stream};
use crate::verdict::{Violation, ViolationKind};
use model::{GroupModel, Kv, Recovered};

/// Groups sharing the kernel.
const GROUPS: u32 = 2;
/// Keys of the state machine.
const KEYS: u32 = 6;
/// Open attempts before recovery counts as stuck.
const OPEN_ATTEMPTS_MAX: u32 = 32;

/// The adapter the workload drives: correct, or with one planted mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftBug {
    /// The real adapter.
    None,
    /// The append callback fires before the sync.
    CallbackBeforeSync,
    /// `save_vote` returns before the vote is durable.
    VoteUnsynced,
}

impl RaftBug {
    /// Every variant.
    pub const ALL: [RaftBug; 3] = [RaftBug::None, RaftBug::CallbackBeforeSync, RaftBug::VoteUnsynced];

    /// The workload name.
    pub fn workload_name(self) -> &'static str {
        match self {
            RaftBug::None => "raft",
            RaftBug::CallbackBeforeSync => "raft-callback-before-sync",
            RaftBug::VoteUnsynced => "raft-vote-unsynced",
        }
    }

    fn planted(self) -> PlantedBug {
        match self {
            RaftBug::None => PlantedBug::None,
            RaftBug::CallbackBeforeSync => PlantedBug::CallbackBeforeSync,
            RaftBug::VoteUnsynced => PlantedBug::VoteUnsynced,
        }
    }
}

/// Runs a future that must complete in one poll; `None` if it waits.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

struct Group {
    log: LogStore<SimEnv>,
    sm: StateMachine<SimEnv>,
}

/// Why an operation stopped: the process must restart, or a promise broke.
enum Stop {
    Restart,
    Broken(Violation),
}

type Step = Result<(), Stop>;

fn restart_on<T, E>(result: Option<Result<T, E>>) -> Result<T, Stop> {
    match result {
        Some(Ok(value)) => Ok(value),
        _ => Err(Stop::Restart),
    }
}

/// The workload; see the module docs.
pub struct RaftWorkload {
    env: SimEnv,
    config: RunConfig,
    rng: ChaCha8Rng,
    options: Options,
    dir: PathBuf,
    wipes: u32,
    kernel: Option<Arc<Kernel<SimEnv>>>,
    groups: Vec<Group>,
    models: Vec<GroupModel>,
    op_index: u64,
    quiet: bool,
    /// Operations executed.
    pub ops: u64,
    /// Crash recoveries checked.
    pub recoveries: u64,
    /// Times the kernel honestly reported data loss after media damage (the store was wiped).
    pub data_loss_detected: u64,
    /// Losses after media damage that no single-copy format detects (the store was wiped).
    pub undetectable: u64,
    /// Media faults injected before the store was last wiped (those after may have damaged
    /// the current store).
    media_seen: u64,
}

fn kernel_config() -> Config {
    Config::builder()
        .shards(2)
        .router(Router::Prefix { len_bytes: GROUP_PREFIX_BYTES })
        .segment_size_bytes(64 * 1024)
        // The workload judges each shard's failure itself: every open returns the kernel.
        .min_serving_shards(0)
        .build()
        .expect("a valid kernel config")
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId { leader_id: CommittedLeaderId::new(term, 1), index }
}

impl RaftWorkload {
    /// A workload for `config` on `env`.
    pub fn new(env: SimEnv, config: RunConfig, bug: RaftBug) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(stream::WORKLOAD);
        let options = Options { sync_on_append: rng.random_bool(0.5), bug: bug.planted() };
        env.set_disk_bytes_max(None);
        Self {
            env,
            config,
            rng,
            options,
            dir: PathBuf::from("/raft-0"),
            wipes: 0,
            kernel: None,
            groups: Vec::new(),
            models: vec![GroupModel::default(); GROUPS as usize],
            op_index: 0,
            quiet: false,
            ops: 0,
            recoveries: 0,
            data_loss_detected: 0,
            undetectable: 0,
            media_seen: 0,
        }
    }

    fn violation(&self, kind: ViolationKind, detail: String) -> Stop {
        Stop::Broken(Violation { kind, op_index: self.op_index, detail })
    }

    /// Runs the chaos phase, the quiet phase and the liveness probe.
    pub fn run(&mut self) -> Result<(), Violation> {
        self.reopen()?;
        let total = self.config.ops + self.config.quiet_ops;
        while self.op_index < total {
            if self.op_index >= self.config.ops && !self.quiet {
                self.quiet = true;
                self.env.set_faults_enabled(false);
            }
            self.op_index += 1;
            self.ops += 1;
            let step = if self.env.is_crashed() { Err(Stop::Restart) } else { self.step() };
            let crash_now = self.rng.random_bool(self.config.driver_crash_probability);
            match step {
                Err(Stop::Broken(violation)) => return Err(violation),
                Err(Stop::Restart) => self.recover()?,
                Ok(()) if crash_now => self.recover()?,
                Ok(()) => {}
            }
        }
        self.recover()?;
        self.probe()
    }

    fn step(&mut self) -> Step {
        let g = self.rng.random_range(0..GROUPS) as usize;
        match self.rng.random_range(0..100) {
            0..10 => {
                // Crash right after the vote now and then: when an unsynced vote is lost.
                let crash_after = self.rng.random_bool(0.2);
                self.elect(g, crash_after)
            }
            10..45 => self.append(g),
            45..52 => self.truncate(g),
            52..72 => self.apply(g),
            72..79 => self.purge(g),
            79..84 => self.build_snapshot(g),
            84..88 => self.install_snapshot(g),
            88..95 => {
                let report = self.kernel().tick();
                if report.failed.is_empty() { Ok(()) } else { Err(Stop::Restart) }
            }
            _ => self.kernel().checkpoint().map(drop).map_err(|_| Stop::Restart),
        }
    }

    fn kernel(&self) -> &Arc<Kernel<SimEnv>> {
        self.kernel.as_ref().expect("the kernel is open between recoveries")
    }

    fn elect(&mut self, g: usize, crash_after: bool) -> Step {
        let model = &mut self.models[g];
        model.term += 1;
        let vote = if self.rng.random_bool(0.5) {
            Vote::new_committed(model.term, 1)
        } else {
            Vote::new(model.term, 1)
        };
        model.votes_written.push(vote);
        restart_on(ready(self.groups[g].log.save_vote(&vote)))?;
        self.models[g].vote = Some(vote);
        if crash_after { Err(Stop::Restart) } else { Ok(()) }
    }

    fn append(&mut self, g: usize) -> Step {
        let count = self.rng.random_range(1..=4u64);
        let model = &mut self.models[g];
        let (start, term) = (model.next_index(), model.term.max(1));
        let mut entries = Vec::new();
        for index in start..start + count {
            let id = log_id(term, index);
            let payload = if self.rng.random_bool(0.2) {
                EntryPayload::Blank
            } else {
                let key = format!("k{}", self.rng.random_range(0..KEYS));
                let value = format!("v{}-{}", index, self.rng.random_range(0..1000u32));
                EntryPayload::Normal(if self.rng.random_bool(0.15) {
                    Request::Delete { key }
                } else {
                    Request::Set { key, value }
                })
            };
            model.appended.insert(id);
            entries.push(Entry::<TypeConfig> { log_id: id, payload });
        }
        let tick_first = self.rng.random_bool(0.6);
        let kernel = Arc::clone(self.kernel());
        let group = &mut self.groups[g];
        let mut flushing = std::pin::pin!(group.log.blocking_append(entries.clone()));
        let mut cx = Context::from_waker(Waker::noop());
        let mut outcome = flushing.as_mut().poll(&mut cx);
        // The entries are readable now whether or not the callback fired.
        let model = &mut self.models[g];
        for entry in &entries {
            model.log.insert(entry.log_id.index, entry.log_id);
        }
        if outcome.is_pending() && tick_first {
            if !kernel.tick().failed.is_empty() {
                return Err(Stop::Restart);
            }
            outcome = flushing.as_mut().poll(&mut cx);
        }
        let status: Vec<(u64, u64)> =
            kernel.shard_status().iter().map(|s| (s.last_lsn, s.durable_lsn)).collect();
        let shard = kernel.shard_of(&stormhold_raft::group_prefix(g as u32));
        self.env.note(format!("group {g} (shard {shard}): append {start}..{} -> {outcome:?}; (last, durable) lsn per shard {status:?}", start + count));
        match outcome {
            Poll::Ready(Ok(())) => model.flushed(),
            Poll::Ready(Err(_)) => return Err(Stop::Restart),
            Poll::Pending => {}
        }
        Ok(())
    }

    fn truncate(&mut self, g: usize) -> Step {
        let model = &self.models[g];
        let applied = model.applied.map_or(0, |id| id.index);
        let candidates: Vec<u64> = model.log.keys().copied().filter(|&i| i > applied).collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let at = candidates[self.rng.random_range(0..candidates.len())];
        let id = model.log[&at];
        // Before the call: a truncate that fails may still have happened, and one that
        // returns need not be durable yet; either way what must survive shrinks to below it.
        self.models[g].must_log.split_off(&at);
        restart_on(ready(self.groups[g].log.truncate(id)))?;
        let model = &mut self.models[g];
        model.log.split_off(&at);
        model.term += 1;
        Ok(())
    }

    fn apply(&mut self, g: usize) -> Step {
        let model = &self.models[g];
        let from = model.applied.map_or(0, |id| id.index) + 1;
        let count = self.rng.random_range(1..=3);
        // Only flushed entries may be committed, hence applied.
        let ids: Vec<LogId<u64>> = model.must_log.range(from..).take(count).map(|(_, id)| *id).collect();
        if ids.is_empty() || ids[0].index != from {
            return Ok(());
        }
        let mut reader = self.groups[g].log.clone();
        let range = ids[0].index..=ids[ids.len() - 1].index;
        let entries = restart_on(ready(reader.try_get_log_entries(range)))?;
        if entries.iter().map(|e| e.log_id).collect::<Vec<_>>() != ids {
            return Err(
                self.violation(ViolationKind::Read, format!("group {g}: read {entries:?} for {ids:?}"))
            );
        }
        // The state after the batch, noted before the call: an interrupted apply may leave it.
        let (mut applied, mut kv) = (self.models[g].applied, self.models[g].kv.clone());
        for entry in &entries {
            applied = Some(entry.log_id);
            match &entry.payload {
                EntryPayload::Normal(Request::Set { key, value }) => {
                    drop(kv.insert(key.clone(), value.clone()))
                }
                EntryPayload::Normal(Request::Delete { key }) => drop(kv.remove(key)),
                _ => {}
            }
        }
        self.models[g].applied_candidate(applied, &kv);
        restart_on(ready(self.groups[g].sm.apply(entries)))?;
        let model = &mut self.models[g];
        model.applied = applied;
        model.kv = kv;
        Ok(())
    }

    fn purge(&mut self, g: usize) -> Step {
        let model = &self.models[g];
        let low = model.purged.map_or(0, |id| id.index) + 1;
        let high = model.applied.map_or(0, |id| id.index);
        if low > high {
            return Ok(());
        }
        let at = self.rng.random_range(low..=high);
        let Some(&id) = model.log.get(&at) else { return Ok(()) };
        self.purge_to(g, id)
    }

    fn purge_to(&mut self, g: usize, id: LogId<u64>) -> Step {
        restart_on(ready(self.groups[g].log.purge(id)))?;
        let model = &mut self.models[g];
        model.log = model.log.split_off(&(id.index + 1));
        model.must_log = model.must_log.split_off(&(id.index + 1));
        model.purged = Some(id);
        model.must_purged = Some(id);
        Ok(())
    }

    fn build_snapshot(&mut self, g: usize) -> Step {
        let id_expected = self.models[g].applied;
        // The id is known only after the build: note every id the build could produce.
        let mut builder = restart_on(ready(self.groups[g].sm.get_snapshot_builder()).map(Ok::<_, ()>))?;
        let snapshot = ready(builder.build_snapshot());
        // An interrupted build may still have stored a snapshot of the applied id.
        self.models[g].snapshot_ids.insert(id_expected);
        let Some(Ok(snapshot)) = snapshot else { return Err(Stop::Restart) };
        if snapshot.meta.last_log_id != id_expected {
            let detail =
                format!("group {g}: snapshot of {:?}, applied is {id_expected:?}", snapshot.meta.last_log_id);
            return Err(self.violation(ViolationKind::Read, detail));
        }
        let model = &mut self.models[g];
        model.snapshots.insert(snapshot.meta.snapshot_id.clone());
        model.snapshot_acked = true;
        Ok(())
    }

    fn install_snapshot(&mut self, g: usize) -> Step {
        let source = (g + 1) % GROUPS as usize;
        let Some(snapshot) = restart_on(ready(self.groups[source].sm.get_current_snapshot()))? else {
            return Ok(());
        };
        let Some(id) = snapshot.meta.last_log_id else { return Ok(()) };
        if id.index <= self.models[g].applied.map_or(0, |a| a.index) {
            return Ok(());
        }
        let Some(kv) = self.models[source].states.get(&Some(id)).and_then(|s| s.last()).cloned() else {
            return Ok(());
        };
        let meta = snapshot.meta.clone();
        let model = &mut self.models[g];
        model.snapshots.insert(meta.snapshot_id.clone());
        model.snapshot_ids.insert(Some(id));
        model.applied_candidate(Some(id), &kv);
        restart_on(ready(self.groups[g].sm.install_snapshot(&meta, snapshot.snapshot)))?;
        let model = &mut self.models[g];
        model.applied = Some(id);
        model.kv = kv;
        model.snapshot_acked = true;
        model.term = model.term.max(id.leader_id.term);
        // What openraft does next: purge the log up to the snapshot.
        model.log.insert(id.index, id);
        self.purge_to(g, id)
    }

    /// Crashes, restarts, reopens and checks every group, then rebases the models.
    fn recover(&mut self) -> Result<(), Violation> {
        self.groups.clear();
        self.kernel = None;
        self.env.crash();
        self.env.restart();
        self.recoveries += 1;
        self.reopen()
    }

    fn open_kernel(&mut self) -> Result<Arc<Kernel<SimEnv>>, Violation> {
        let mut last_error = String::new();
        for _ in 0..OPEN_ATTEMPTS_MAX {
            match Kernel::open(self.env.clone(), &self.dir, kernel_config()) {
                Ok(kernel) => {
                    let statuses = kernel.shard_status();
                    if let Some(failure) = statuses.iter().find_map(|s| s.failed.clone()) {
                        drop(kernel);
                        last_error = failure.to_string();
                        if failure.data_loss || self.media_damage() > 0 {
                            if self.media_damage() == 0 {
                                let detail =
                                    format!("recovery reports data loss without media damage: {failure}");
                                return Err(Violation {
                                    kind: ViolationKind::Durability,
                                    op_index: self.op_index,
                                    detail,
                                });
                            }
                            self.wipe();
                        }
                    } else {
                        return Ok(Arc::new(kernel));
                    }
                }
                Err(error) => {
                    last_error = error.to_string();
                    // Faults are off while reopening: a refusal is persistent. After media
                    // damage it is the kernel honestly refusing damaged metadata.
                    if self.media_damage() > 0 {
                        self.wipe();
                    }
                }
            }
            self.env.crash();
            self.env.restart();
        }
        let detail = format!("the kernel did not open in {OPEN_ATTEMPTS_MAX} attempts: {last_error}");
        Err(Violation { kind: ViolationKind::Liveness, op_index: self.op_index, detail })
    }

    /// Media faults injected so far.
    fn media_damage(&self) -> u64 {
        let stats = self.env.stats();
        stats.bit_rot + stats.misdirected_writes + stats.bad_sectors
    }

    /// Media damage the kernel reported honestly: start over in a fresh directory.
    fn wipe(&mut self) {
        self.data_loss_detected += 1;
        self.wipes += 1;
        self.dir = PathBuf::from(format!("/raft-{}", self.wipes));
        self.media_seen = self.media_damage();
        self.models = vec![GroupModel::default(); GROUPS as usize];
    }

    fn reopen(&mut self) -> Result<(), Violation> {
        self.env.set_faults_enabled(false);
        let result = self.reopen_and_check();
        if !self.quiet {
            self.env.set_faults_enabled(true);
        }
        result
    }

    fn reopen_and_check(&mut self) -> Result<(), Violation> {
        let kernel = self.open_kernel()?;
        self.groups.clear();
        for g in 0..GROUPS {
            let (log, sm) =
                stormhold_raft::open_group(Arc::clone(&kernel), g, self.options).map_err(|e| Violation {
                    kind: ViolationKind::Panic,
                    op_index: self.op_index,
                    detail: e.to_string(),
                })?;
            self.groups.push(Group { log, sm });
        }
        for (shard, report) in kernel.recovery_reports().iter().enumerate() {
            if let Some(report) = report {
                self.env.note(format!("shard {shard} recovered: {report}"));
            }
        }
        self.kernel = Some(kernel);
        for g in 0..GROUPS as usize {
            let got = self.read_group(g)?;
            if let Err((lost, detail)) = self.models[g].check(g as u32, &got) {
                if self.media_damage() > self.media_seen {
                    // A misdirected write or rot can take the last durable records in a way
                    // no single-copy format detects: counted, the store wiped, not a violation.
                    self.env.note(format!(
                        "op {}: undetectable loss after media damage: {detail}",
                        self.op_index
                    ));
                    self.undetectable += 1;
                    self.wipe();
                    return self.reopen_and_check();
                }
                let kind = if lost { ViolationKind::Durability } else { ViolationKind::Invention };
                return Err(Violation { kind, op_index: self.op_index, detail });
            }
            self.models[g].rebase(&got);
        }
        Ok(())
    }

    fn read_group(&mut self, g: usize) -> Result<Recovered, Violation> {
        let op_index = self.op_index;
        let read_error = |what: &str, e: String| Violation {
            kind: ViolationKind::Read,
            op_index,
            detail: format!("group {g}: {what} after recovery: {e}"),
        };
        fn done<T>(r: Option<Result<T, openraft::StorageError<u64>>>) -> Result<T, String> {
            match r {
                Some(Ok(v)) => Ok(v),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the call waited".to_owned()),
            }
        }
        let group = &mut self.groups[g];
        let vote = done(ready(group.log.read_vote())).map_err(|e| read_error("read_vote", e))?;
        let state = done(ready(group.log.get_log_state())).map_err(|e| read_error("get_log_state", e))?;
        let log =
            done(ready(group.log.try_get_log_entries(0..))).map_err(|e| read_error("read the log", e))?;
        let (applied, _) =
            done(ready(group.sm.applied_state())).map_err(|e| read_error("applied_state", e))?;
        let snapshot = done(ready(group.sm.get_current_snapshot()))
            .map_err(|e| read_error("get_current_snapshot", e))?;
        let mut kv = Kv::new();
        for k in 0..KEYS {
            let key = format!("k{k}");
            if let Some(value) =
                group.sm.get(&key).map_err(|e| read_error("read the state", e.to_string()))?
            {
                kv.insert(key, value);
            }
        }
        Ok(Recovered {
            vote,
            purged: state.last_purged_log_id,
            last_log_id: state.last_log_id,
            log: log.iter().map(|e| e.log_id).collect(),
            applied,
            kv,
            snapshot: snapshot.map(|s| (s.meta.snapshot_id, s.meta.last_log_id)),
        })
    }

    /// After the quiet phase: the store still takes a vote and an append, and both survive a
    /// crash once synced.
    fn probe(&mut self) -> Result<(), Violation> {
        let op_index = self.op_index;
        let liveness = |detail: String| Violation { kind: ViolationKind::Liveness, op_index, detail };
        let result = match self.elect(0, false) {
            Ok(()) => self.append(0),
            other => other,
        };
        match result {
            Err(Stop::Broken(violation)) => return Err(violation),
            Err(Stop::Restart) => return Err(liveness("a vote or append failed with faults off".to_owned())),
            Ok(()) => {}
        }
        self.kernel().sync(stormhold::Durability::Data).map_err(|e| liveness(format!("sync: {e}")))?;
        self.models[0].flushed();
        self.recover()
    }
}
