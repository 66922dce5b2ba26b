//! Checking: crash, reopen and judge. A crash ends the process (its open transactions die
//! with it), the store reopens retrying through faults, and the recovered state is judged
//! against the model, on the live disk and on every enumerated crash image; then the store
//! audits its own durable invariants with faults off, and the quiet phase ends with a
//! liveness probe.
//!
//! Invariants: an open may report data loss only after real media damage, and only damage
//! the store's [`KvStore::loss_is_explained`] accepts; a store that does
//! not open in [`OPEN_ATTEMPTS_MAX`] attempts without media damage is a liveness violation;
//! after a successful recovery the model of each group that opened is rebased on what
//! survived, and a group that failed at open keeps its model (base and pending commits) until a
//! recovery of it (a restart, or [`KvStore::reopen_group`]) is judged. The failed syncs counted
//! at the last power loss are those before the open's own last machine crash, so a sync that
//! failed during an open that succeeded in part makes the next crash a power loss (fsyncgate).

use std::collections::BTreeMap;
use stormhold::env::sim::{CrashKind, SimEnv, is_crash};

use super::{KvWorkload, media_faults};
use crate::kv::model::Ack;
use crate::kv::{AuditFacts, Key, KvStore, StoreError, Value};
use crate::verdict::{Violation, ViolationKind};

/// Open attempts before recovery counts as stuck.
const OPEN_ATTEMPTS_MAX: u32 = 64;
/// The key of the liveness probe, outside the workload's keys.
const PROBE_KEY: Key = 0xffff;

/// The outcome of opening a store.
enum Opened<S> {
    Store(S),
    /// The store refused to open and said why, after real media damage.
    HonestLoss(String),
}

impl<S: KvStore> KvWorkload<S> {
    /// Crashes the process, reopens the store (retrying through faults) and checks it. At a
    /// sampled driver crash point, first checks recovery on every legal crash image.
    pub(super) fn recover(&mut self, check_images: bool) -> Result<(), Violation> {
        // A crash fails the shard it strikes (dropping what it knew): the checkpoints in
        // flight are those at the start of the operation the restart ended.
        if let Some(in_flight) = self.in_flight.take().filter(|_| self.store.is_some()) {
            self.env.note(format!("op {}: restart with a checkpoint in flight: {in_flight}", self.op_index));
            self.restarts_mid_checkpoint += 1;
        }
        self.store = None;
        // The process died: its open transactions die with it (never committed).
        self.open_txns.clear();
        if check_images && !self.env.is_crashed() {
            self.check_images()?;
        }
        self.crash_now();
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
        // The count at the open's own last power loss: a sync that failed during the open
        // (which may leave shards failed while the others serve) came after it.
        let (opened, at_power_loss) = opened;
        if let Some(sync_failures) = at_power_loss {
            self.sync_failures_at_power_loss = sync_failures;
        }
        let store = match opened {
            Opened::Store(store) => store,
            Opened::HonestLoss(what) => {
                self.data_loss_detected += 1;
                self.env
                    .note(format!("op {}: data loss reported ({what}); the store is wiped", self.op_index));
                return self.wipe_store();
            }
        };
        // Groups that failed at open are judged when a later recovery of them succeeds.
        let unjudged = store.unreadable_groups();
        let recovered = self.state_of(&store)?;
        self.recoveries += 1;
        if self.judge_on(&self.env.clone(), &recovered, &unjudged)? {
            self.undetectable += 1;
        }
        self.env.set_faults_enabled(false);
        let audit = self.audit_on(&self.env.clone(), &store);
        self.env.set_faults_enabled(!self.quiet);
        audit?;
        let prefixes = self.model.judge_except(&recovered, &unjudged).prefixes();
        self.model.rebase_except(&recovered, &prefixes, &unjudged);
        self.failed_at_open = unjudged;
        self.store = Some(store);
        Ok(())
    }

    /// Retries, in this process, the recovery of `group`, which failed at the store's open,
    /// and judges it against its model as a restart would (the other groups serve on, and
    /// are not judged); a refusal (a sync failed in it) or a crash restarts the process.
    pub(super) fn reopen_group(&mut self, group: usize) -> Result<(), Violation> {
        let Some(store) = self.store.as_mut() else { return Ok(()) };
        let reopened = store.reopen_group(group);
        let outcome = match &reopened {
            Ok(true) => "serving".to_owned(),
            Ok(false) => "failed again".to_owned(),
            Err(error) => format!("err {error}"),
        };
        self.env.note(format!("op {}: reopen shard {group} in this process -> {outcome}", self.op_index));
        match reopened {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(_) => return self.recover(false),
        }
        let state = match self.store.as_ref().map(S::readable_state) {
            Some(Ok(state)) => state,
            Some(Err(error)) => {
                let detail = format!("state after reopening shard {group}: {error}");
                return Err(self.violation(ViolationKind::Durability, detail));
            }
            None => return Ok(()),
        };
        let recovered: BTreeMap<Key, Value> =
            state.into_iter().filter(|&(key, _)| self.model.group_of(key) == group).collect();
        let others: Vec<usize> = (0..self.model.groups()).filter(|&g| g != group).collect();
        // Not counted in `recoveries`: those are crash-and-recover cycles (the sweep's speed).
        if self.judge_on(&self.env.clone(), &recovered, &others)? {
            self.undetectable += 1;
        }
        let prefixes = self.model.judge_except(&recovered, &others).prefixes();
        self.model.rebase_except(&recovered, &prefixes, &others);
        self.failed_at_open.retain(|&g| g != group);
        Ok(())
    }

    /// Ends the process as the seed says: a machine crash, or (when the swarm turned process
    /// crashes on) with even odds a process crash that keeps the page cache, a quarter of them
    /// followed by a power loss before the restart. A process crash drawn by the simulator in
    /// a call stays one. The next machine crash (a later driver crash, a drawn one, a failed
    /// open) drops whatever was never synced, so what the reopened store served from the page
    /// cache must have been synced by its open (DESIGN.md rule 4), or the judge after that
    /// crash fails.
    ///
    /// The one exception is the kernel's documented limit (fsyncgate, `src/wal/mod.rs`): after
    /// a failed sync the page cache may hold pages marked clean that never reached the disk,
    /// and no store can tell. The operator's remedy is a machine restart, so a crash after a
    /// failed sync since the last power loss cuts the power too.
    fn crash_now(&mut self) {
        use rand::Rng;
        let process = self.config.faults.process_crash_probability > 0.0
            && !self.env.is_crashed()
            && self.crash_kind_rng.random_bool(0.5);
        if process {
            self.env.crash_with(CrashKind::Process);
            if self.crash_kind_rng.random_bool(0.25) {
                self.env.note(format!("op {}: process crash, then power loss", self.op_index));
                self.env.crash_with(CrashKind::Machine);
            } else {
                self.env.note(format!("op {}: process crash, the page cache kept", self.op_index));
            }
        } else {
            self.env.crash();
        }
        self.power_loss_after_failed_sync();
    }

    /// Cuts the power of a machine whose process crashed after a failed sync since the last
    /// power loss (see [`Self::crash_now`]), and notes each power loss.
    fn power_loss_after_failed_sync(&mut self) {
        let sync_failures = self.env.stats().sync_failures;
        if self.env.last_crash_kind() == Some(CrashKind::Process)
            && sync_failures > self.sync_failures_at_power_loss
        {
            self.env
                .note(format!("op {}: a sync failed before this process crash: power loss", self.op_index));
            self.env.crash_with(CrashKind::Machine);
        }
        if self.env.last_crash_kind() == Some(CrashKind::Machine) {
            self.sync_failures_at_power_loss = sync_failures;
        }
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
        self.failed_at_open.clear();
        self.media_faults_before_wipe = media_faults(&self.env);
        self.damage_before_wipe = self.env.damage_log().len();
        self.checkpoint_acknowledged = None;
        self.store = Some(store);
        self.env.set_faults_enabled(!self.quiet);
        Ok(())
    }

    /// The state of every group that serves reads after an open.
    fn state_of(&self, store: &S) -> Result<BTreeMap<Key, Value>, Violation> {
        store
            .readable_state()
            .map_err(|error| self.violation(ViolationKind::Durability, format!("state after open: {error}")))
    }

    /// Recovers the store on every legal post-crash image of the current pending state (each
    /// on a fork, faults off) and judges each one.
    fn check_images(&mut self) -> Result<(), Violation> {
        let images = crate::images::prepared_images(&self.env, self.config.images_max, self.op_index);
        let count = images.len();
        for (index, image) in images.into_iter().enumerate() {
            let in_image = |violation| crate::images::in_image(violation, index, count);
            if let (Opened::Store(store), _) = self.open_on(&image).map_err(in_image)? {
                let recovered = self.state_of(&store)?;
                self.judge_on(&image, &recovered, &store.unreadable_groups()).map_err(in_image)?;
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
            damage_from: self.damage_before_wipe,
        };
        store.audit(env, &facts).map_err(|detail| {
            self.violation(ViolationKind::Checkpoint, format!("checkpoint audit after recovery: {detail}"))
        })
    }

    /// Opens the store on `env`, retrying through faults and crashes during recovery. Also
    /// returns the simulator's failed syncs at the last power loss before the open that
    /// succeeded, if there was one since the call began.
    fn open_on(&self, env: &SimEnv) -> Result<(Opened<S>, Option<u64>), Violation> {
        let mut last_error = String::new();
        let mut at_power_loss = None;
        for _ in 0..OPEN_ATTEMPTS_MAX {
            if env.last_crash_kind() == Some(CrashKind::Machine) {
                at_power_loss = Some(env.stats().sync_failures);
            }
            let sync_failures_at_power_loss = at_power_loss.unwrap_or(self.sync_failures_at_power_loss);
            let crashed = || {
                if env.last_crash_kind() == Some(CrashKind::Process)
                    && env.stats().sync_failures > sync_failures_at_power_loss
                {
                    // A process crash during recovery after a failed sync: see `crash_now`.
                    env.crash_with(CrashKind::Machine);
                }
                env.restart()
            };
            match S::open(env, &self.store_config) {
                // The process died during the open at a call that cannot fail (a clock
                // reading: it answers, and the process is dead after it), so the open went
                // on and returned: it is a crash during recovery like any other (the audit
                // that followed otherwise failed at its first call, on a dead process).
                Ok(store) if env.is_crashed() => {
                    drop(store);
                    crashed();
                }
                // Whatever a failed open said, if the process died during it this is a crash
                // during recovery too, and a sync that failed in it turns the crash into a
                // power loss (the generic arm below cannot: `SimEnv::crash` does nothing to a
                // dead process). Bug fixed here: the kernel store reports a process that died
                // while its shards recovered as an `Other` error, so a failed WAL directory
                // sync of that open was followed by a restart that trusted the page cache
                // (corpus: kernel-power-loss-after-failed-sync-in-open).
                Err(_) if env.is_crashed() => crashed(),
                Ok(store) => match self.accept_open(env, store) {
                    Ok(store) => return Ok((Opened::Store(store), at_power_loss)),
                    Err(why) => {
                        last_error = why;
                        env.crash();
                        env.restart();
                    }
                },
                Err(StoreError::DataLoss(what)) if self.media_damage(env) => {
                    S::loss_is_explained(env, &self.store_config, &what, self.damage_before_wipe).map_err(
                        |why| self.violation(ViolationKind::Durability, format!("{why} ({what})")),
                    )?;
                    env.note(format!("honest data loss reported: {what}"));
                    return Ok((Opened::HonestLoss(what), at_power_loss));
                }
                Err(StoreError::DataLoss(what)) => {
                    return Err(self.violation(
                        ViolationKind::Durability,
                        format!("open reported data loss, but the simulator damaged no media: {what}"),
                    ));
                }
                Err(StoreError::Io(error)) if is_crash(&error) => crashed(),
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
        if self.media_damage(env)
            && S::stuck_is_explained(env, &self.store_config, &last_error, self.damage_before_wipe)
        {
            return Ok((Opened::HonestLoss(last_error), at_power_loss));
        }
        Err(self.violation(
            ViolationKind::Liveness,
            format!("the store did not open in {OPEN_ATTEMPTS_MAX} attempts: {last_error}"),
        ))
    }

    /// A store that opened, unless groups failed at its open once faults stopped (liveness is
    /// owed by every group then) or every group did: `Err` says why, and the open counts as
    /// failed. While faults go on, the run goes on with some groups failed.
    fn accept_open(&self, env: &SimEnv, store: S) -> Result<S, String> {
        match store.failed_at_open() {
            None => Ok(store),
            Some(why) if !self.quiet && store.failed_groups().len() < self.model.groups() => {
                let failed = store.failed_groups();
                env.note(format!("opened with {why}; shards {failed:?} failed at open, the others serve"));
                Ok(store)
            }
            Some(why) => Err(why),
        }
    }

    /// Judges a recovered state; `Ok(true)` for a legal loss of the last durable group after
    /// media damage on `env` (undetectable by a single-copy format).
    ///
    /// Each key group is judged against its own model (the prefix property is per group).
    /// The groups `unjudged` failed at open: their models wait for a recovery of them.
    fn judge_on(
        &self,
        env: &SimEnv,
        recovered: &BTreeMap<Key, Value>,
        unjudged: &[usize],
    ) -> Result<bool, Violation> {
        let judgement = self.model.judge_except(recovered, unjudged);
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

    /// With faults off, the store must take a durable write that survives a crash. The probe's
    /// crash may expose media damage done earlier (a process crash keeps the page cache, which
    /// hides it); after an honest data-loss report the store is wiped, probe and all, and the
    /// promise is owed by the store that starts over, so the probe runs once more.
    pub(super) fn liveness_probe(&mut self) -> Result<(), Violation> {
        self.env.set_faults_enabled(false);
        let wipes_before = self.data_loss_detected;
        self.probe_once()?;
        if self.data_loss_detected == wipes_before {
            return self.check_probe();
        }
        self.env.note(format!(
            "op {}: the probe's store was wiped after honest data loss; probing again",
            self.op_index
        ));
        let wipes_before = self.data_loss_detected;
        self.probe_once()?;
        if self.data_loss_detected > wipes_before {
            // Faults are off and the wipe removed every damaged file: nothing is left to lose.
            return Err(self.violation(
                ViolationKind::Liveness,
                "the store that started over after a wipe reported data loss on a quiet disk".into(),
            ));
        }
        self.check_probe()
    }

    /// Commits the probe durably, then crashes and recovers.
    fn probe_once(&mut self) -> Result<(), Violation> {
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
        self.recover(false)
    }

    /// The probe committed by [`Self::probe_once`] survived its crash.
    fn check_probe(&mut self) -> Result<(), Violation> {
        match self.store.as_ref().map(|s| s.get(PROBE_KEY)) {
            Some(Ok(Some(0x5eed))) => Ok(()),
            // The store read fine but the write acknowledged durable is gone: not a stuck
            // store but a broken promise.
            Some(Ok(other)) => Err(self.violation(
                ViolationKind::Durability,
                format!(
                    "the quiet-phase probe, acknowledged durable, did not survive a crash: read {other:?}"
                ),
            )),
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
