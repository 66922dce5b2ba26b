//! The `aries` workload: ARIES recovery (`stormhold::wal::aries`) under a STEAL / NO-FORCE page
//! store on `SimEnv`, crashed at any Env call, recovery and its undo pass included, and judged
//! by a model of the committed transactions ([`model`]).
//!
//! A seeded client runs up to three transactions at a time under strict two-phase locking on
//! pages (begin, update, commit with or without a sync, abort with its CLRs), while the buffer
//! pool ([`pages`]) writes dirty pages, committed or not, in a seeded order (STEAL) and never
//! because of a commit (NO-FORCE); fuzzy checkpoints and log syncs come in between. A crash
//! (spontaneous at any Env call, a machine or a process crash as the fault options say, or
//! drawn by the driver between operations) or any error is followed by a restart and recovery
//! with faults still on, so a crash can hit analysis, redo or undo; attempts repeat until one
//! succeeds (the last ones with faults off). After each recovery the checker asserts:
//! - the data file equals the model after exactly the first `k` commits, for some `k` at or
//!   past the last durable acknowledgement (no committed change lost, no aborted or loser's
//!   change left, no commit half there);
//! - recovery is idempotent: a second recovery of the recovered log finds no open transaction
//!   and redoes, undoes and writes nothing, and the data stays the same;
//! - during the run, every page read equals the model's live view.
//!
//! The planted mistakes `aries-steal-before-log` (a page written before its log records are
//! durable), `aries-checkpoint-forgets-dirty` (checkpoints with an empty dirty page table) and
//! `aries-skip-recovery-flush` (the pages recovery changed stay in the cache, so a second
//! recovery has work left: the idempotence check fails) run the same workload on a page store
//! with that mistake ([`pages::PoolBug`]).
//!
//! Invariants: nothing here reads real time or iterates an unordered collection; a full disk
//! is switched off (this workload proves crash safety, not ENOSPC handling); after media damage
//! a failed recovery is counted as data loss detected and a mismatch as undetectable, the store
//! wiped, like the other workloads do (the page file has a single copy of each page).

pub mod model;
pub mod pages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use stormhold::env::Env;
use stormhold::env::sim::SimEnv;
use stormhold::wal::aries::{self, RecoveryStats, Transactions};
use stormhold::wal::{Durability, Wal, WalOptions};

use crate::config::{RunConfig, stream};
use crate::verdict::{Violation, ViolationKind};
use model::{Mismatch, Model, Writes};
use pages::{BufferPool, PAGE_DATA_BYTES, PAGES, PageFile, PoolBug};

/// Open transactions at most.
const OPEN_TXNS_MAX: usize = 3;
/// Recovery attempts with faults on before they are switched off.
const FAULTY_ATTEMPTS_MAX: u32 = 4;
/// Recovery attempts with faults off before recovery counts as stuck.
const QUIET_ATTEMPTS_MAX: u32 = 2;
/// WAL segment size: small, so logs rotate.
const SEGMENT_SIZE_BYTES: u64 = 16 * 1024;

/// The page store the workload drives: correct, or with one planted mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AriesBug {
    /// The correct page store.
    None,
    /// Steals a page before the log is durable up to its lsn.
    StealBeforeLog,
    /// Checkpoints get an empty dirty page table.
    CheckpointForgetsDirty,
    /// The pages recovery changed are not written out after it.
    SkipRecoveryFlush,
}

impl AriesBug {
    /// Every variant.
    pub const ALL: [AriesBug; 4] = [
        AriesBug::None,
        AriesBug::StealBeforeLog,
        AriesBug::CheckpointForgetsDirty,
        AriesBug::SkipRecoveryFlush,
    ];

    /// The workload name.
    pub fn workload_name(self) -> &'static str {
        match self {
            AriesBug::None => "aries",
            AriesBug::StealBeforeLog => "aries-steal-before-log",
            AriesBug::CheckpointForgetsDirty => "aries-checkpoint-forgets-dirty",
            AriesBug::SkipRecoveryFlush => "aries-skip-recovery-flush",
        }
    }

    fn pool_bug(self) -> PoolBug {
        match self {
            AriesBug::None => PoolBug::None,
            AriesBug::StealBeforeLog => PoolBug::StealBeforeLog,
            AriesBug::CheckpointForgetsDirty => PoolBug::CheckpointForgetsDirty,
            AriesBug::SkipRecoveryFlush => PoolBug::SkipRecoveryFlush,
        }
    }
}

/// What the workload exercised, so a test can prove it reached what it claims.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Transactions rolled back by `abort`.
    pub aborts: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Pages written while an open transaction held them.
    pub uncommitted_pages_stolen: u64,
    /// Updates recovery undid, and changes it redid.
    pub undone: u64,
    /// See [`Seen::undone`].
    pub redone: u64,
    /// Recovery attempts a crash interrupted.
    pub crashes_in_recovery: u64,
    /// ... of them after the undo pass had handed the page store at least one undo.
    pub crashes_during_undo: u64,
}

/// The open log, transaction table and buffer pool between recoveries.
struct Live {
    wal: Wal<SimEnv>,
    txns: Transactions,
    pool: BufferPool,
    /// Open transactions' writes.
    writes: BTreeMap<u64, Writes>,
    /// Page -> the open transaction holding it.
    locks: BTreeMap<u64, u64>,
}

/// Why an operation stopped: the process must restart, or a promise broke.
enum Stop {
    Restart,
    Broken(Violation),
}

type Step = Result<(), Stop>;

fn restart_on<T, E>(result: Result<T, E>) -> Result<T, Stop> {
    result.map_err(|_| Stop::Restart)
}

/// The workload; see the module docs.
pub struct AriesWorkload {
    env: SimEnv,
    config: RunConfig,
    rng: ChaCha8Rng,
    bug: AriesBug,
    root: PathBuf,
    wipes: u32,
    live: Option<Live>,
    model: Model,
    next_txn: u64,
    op_index: u64,
    quiet: bool,
    media_seen: u64,
    /// Operations executed.
    pub ops: u64,
    /// Crash recoveries checked.
    pub recoveries: u64,
    /// Times recovery failed after media damage (the store was wiped).
    pub data_loss_detected: u64,
    /// Mismatches after media damage that the single-copy page file cannot detect (wiped).
    pub undetectable: u64,
    /// What the run exercised.
    pub seen: Seen,
}

fn wal_options() -> WalOptions {
    WalOptions { segment_size_bytes: SEGMENT_SIZE_BYTES, ..WalOptions::default() }
}

impl AriesWorkload {
    /// A workload for `config` on `env`.
    pub fn new(env: SimEnv, config: RunConfig, bug: AriesBug) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(stream::WORKLOAD);
        env.set_disk_bytes_max(None);
        Self {
            env,
            config,
            rng,
            bug,
            root: PathBuf::from("/aries-0"),
            wipes: 0,
            live: None,
            model: Model::default(),
            next_txn: 1,
            op_index: 0,
            quiet: false,
            media_seen: 0,
            ops: 0,
            recoveries: 0,
            data_loss_detected: 0,
            undetectable: 0,
            seen: Seen::default(),
        }
    }

    fn violation(&self, kind: ViolationKind, detail: String) -> Violation {
        Violation { kind, op_index: self.op_index, detail }
    }

    /// Runs the chaos phase, the quiet phase and the liveness probe.
    pub fn run(&mut self) -> Result<(), Violation> {
        self.recover()?;
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
                Err(Stop::Restart) => self.crash_and_recover()?,
                Ok(()) if crash_now => self.crash_and_recover()?,
                Ok(()) => {
                    let live = self.live.as_ref().expect("open between recoveries");
                    self.model.durable_to(live.wal.durable_lsn());
                }
            }
        }
        self.crash_and_recover()?;
        self.probe()
    }

    fn live(&mut self) -> &mut Live {
        self.live.as_mut().expect("the log is open between recoveries")
    }

    fn step(&mut self) -> Step {
        let open: Vec<u64> = self.live().writes.keys().copied().collect();
        let txn = (!open.is_empty()).then(|| open[self.rng.random_range(0..open.len())]);
        match (self.rng.random_range(0..100), txn) {
            (0..15, _) | (_, None) if open.len() < OPEN_TXNS_MAX => self.begin(),
            (15..48, Some(txn)) => self.update(txn),
            (48..60, Some(txn)) => {
                let synced = self.rng.random_bool(0.5);
                self.commit(txn, synced)
            }
            (60..66, Some(txn)) => self.abort(txn),
            (66..80, _) => self.steal(),
            (80..86, _) => self.read(),
            (86..92, _) => {
                self.seen.checkpoints += 1;
                let live = self.live();
                let dirty = live.pool.dirty_pages();
                restart_on(live.txns.checkpoint(&mut live.wal, &dirty)).map(drop)
            }
            (92.., _) => restart_on(self.live().wal.sync(Durability::Data)).map(drop),
            _ => Ok(()),
        }
    }

    fn begin(&mut self) -> Step {
        let txn = self.next_txn;
        self.next_txn += 1;
        let live = self.live();
        restart_on(live.txns.begin(&mut live.wal, txn))?;
        live.writes.insert(txn, Writes::new());
        Ok(())
    }

    /// Strict two-phase locking on pages: no two open transactions change the same page, so
    /// undoing one never erases another's change.
    fn update(&mut self, txn: u64) -> Step {
        let page = self.rng.random_range(0..PAGES);
        let len = self.rng.random_range(1..=24usize);
        let offset = self.rng.random_range(0..(PAGE_DATA_BYTES - len) as u32);
        let after: Vec<u8> = (0..len).map(|_| self.rng.random()).collect();
        let live = self.live();
        if live.locks.get(&page).is_some_and(|&holder| holder != txn) {
            return Ok(());
        }
        live.locks.insert(page, txn);
        let at = offset as usize;
        let before = restart_on(live.pool.page(page))?.0.data[at..at + len].to_vec();
        let lsn = restart_on(live.txns.update(&mut live.wal, txn, page, offset, &before, &after))?;
        restart_on(live.pool.apply(page, offset, &after, lsn))?;
        live.writes.entry(txn).or_default().push((page, offset, after));
        Ok(())
    }

    fn release(&mut self, txn: u64) -> Writes {
        let live = self.live();
        live.locks.retain(|_, holder| *holder != txn);
        live.writes.remove(&txn).unwrap_or_default()
    }

    fn commit(&mut self, txn: u64, synced: bool) -> Step {
        let durability = if synced { Durability::Data } else { Durability::None };
        // In the model before the call: if the call fails, the commit may or may not be durable.
        let writes = self.release(txn);
        self.model.committing(writes);
        let live = self.live();
        let lsn = restart_on(live.txns.commit(&mut live.wal, txn, durability))?;
        self.model.committed(lsn);
        Ok(())
    }

    fn abort(&mut self, txn: u64) -> Step {
        self.release(txn);
        self.seen.aborts += 1;
        let live = self.live();
        restart_on(live.txns.abort(&mut live.wal, txn, &mut live.pool)).map(drop)
    }

    fn steal(&mut self) -> Step {
        let dirty = self.live().pool.dirty();
        if dirty.is_empty() {
            return Ok(());
        }
        let page = dirty[self.rng.random_range(0..dirty.len())];
        let live = self.live();
        restart_on(live.pool.steal(page, &mut live.wal))?;
        self.seen.uncommitted_pages_stolen += u64::from(live.locks.contains_key(&page));
        Ok(())
    }

    /// A page read through the pool equals the model's live view.
    fn read(&mut self) -> Step {
        let page = self.rng.random_range(0..PAGES);
        let live = self.live.as_mut().expect("open between recoveries");
        let got = restart_on(live.pool.page(page))?.0.data.clone();
        let expected = self.model.live(live.writes.values()).swap_remove(page as usize);
        if got != expected {
            let at = (0..PAGE_DATA_BYTES).find(|&i| got[i] != expected[i]).unwrap_or(0);
            let detail = format!("page {page} byte {at}: expected {}, got {}", expected[at], got[at]);
            return Err(Stop::Broken(self.violation(ViolationKind::Read, detail)));
        }
        Ok(())
    }

    /// A machine crash between operations, a restart, recovery and its check. (Process
    /// crashes come from the fault options, `--faults process`.)
    fn crash_and_recover(&mut self) -> Result<(), Violation> {
        self.live = None;
        self.env.crash();
        self.env.restart();
        self.recoveries += 1;
        self.recover()
    }
}

/// One recovery attempt: the log recovered into a fresh pool over the data file, the pages
/// recovery changed written out. `undos` counts the undos the pool got before any failure.
fn attempt(
    env: &SimEnv,
    root: &Path,
    bug: PoolBug,
    undos: &mut u64,
) -> Result<(Live, RecoveryStats), String> {
    match env.create_dir(root) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => return Err(error.to_string()),
        _ => {}
    }
    env.sync_dir(Path::new("/")).map_err(|e| e.to_string())?;
    let disk = PageFile::open(env, root).map_err(|e| e.to_string())?;
    let mut pool = BufferPool::new(disk, bug);
    let result = aries::recover(env.clone(), &root.join("wal"), wal_options(), &mut pool);
    *undos = pool.undos;
    let (mut wal, stats) = result.map_err(|e| e.to_string())?;
    pool.flush(&mut wal)?;
    let live = Live { wal, txns: Transactions::new(), pool, writes: BTreeMap::new(), locks: BTreeMap::new() };
    Ok((live, stats))
}

impl AriesWorkload {
    /// Media faults injected so far.
    fn media_damage(&self) -> u64 {
        let stats = self.env.stats();
        stats.bit_rot + stats.misdirected_writes + stats.bad_sectors
    }

    /// Recovers until an attempt succeeds (faults on for the first attempts, unless quiet),
    /// then, with faults off, checks idempotence and the data against the model.
    fn recover(&mut self) -> Result<(), Violation> {
        let (live, stats) = self.recover_attempts()?;
        self.seen.undone += stats.undone;
        self.seen.redone += stats.redone;
        self.next_txn = self.next_txn.max(stats.txn_id_max + 1);
        drop(live);
        self.env.set_faults_enabled(false);
        let checked = self.check_recovered();
        if !self.quiet {
            self.env.set_faults_enabled(true);
        }
        checked
    }

    /// Recovery attempts as [`AriesWorkload::recover`] describes; faults may be left off.
    fn recover_attempts(&mut self) -> Result<(Live, RecoveryStats), Violation> {
        let mut last_error = String::new();
        for attempt_index in 0..FAULTY_ATTEMPTS_MAX + QUIET_ATTEMPTS_MAX {
            if attempt_index == FAULTY_ATTEMPTS_MAX {
                self.env.set_faults_enabled(false);
            }
            let mut undos = 0;
            match attempt(&self.env, &self.root, self.bug.pool_bug(), &mut undos) {
                Ok(recovered) => return Ok(recovered),
                Err(error) => last_error = error,
            }
            if self.env.is_crashed() {
                self.seen.crashes_in_recovery += 1;
                self.seen.crashes_during_undo += u64::from(undos > 0);
            }
            self.env.crash();
            self.env.restart();
        }
        if self.media_damage() > self.media_seen {
            self.env.note(format!("recovery refused after media damage: {last_error}"));
            self.data_loss_detected += 1;
            self.wipe();
            return self.recover_attempts();
        }
        let detail = format!("recovery did not succeed with faults off: {last_error}");
        Err(self.violation(ViolationKind::Liveness, detail))
    }

    /// With faults off: a second recovery changes nothing, and the data is a committed
    /// prefix. Leaves the log of the second recovery open.
    fn check_recovered(&mut self) -> Result<(), Violation> {
        let (mut live, again) = self.recover_attempts()?;
        let changes = (again.active_txns, again.redone, again.undone, again.clrs_written);
        if changes != (0, 0, 0, 0) {
            let detail = format!(
                "a second recovery of the recovered log was not idempotent: (open, redone, undone, clrs) = {changes:?}"
            );
            return Err(self.violation(ViolationKind::Durability, detail));
        }
        let data = match live.pool.disk.data() {
            Ok(data) => data,
            Err(error) if self.media_damage() > self.media_seen => {
                self.env.note(format!("the data file is unreadable after media damage: {error}"));
                self.data_loss_detected += 1;
                self.wipe();
                return self.recover();
            }
            Err(error) => {
                let detail = format!("reading the data file after recovery: {error}");
                return Err(self.violation(ViolationKind::Read, detail));
            }
        };
        self.live = Some(live);
        match self.model.check_and_rebase(data) {
            Ok(()) => Ok(()),
            Err(_) if self.media_damage() > self.media_seen => {
                self.env.note(format!("op {}: undetectable loss after media damage", self.op_index));
                self.undetectable += 1;
                self.wipe();
                self.live = None;
                self.recover()
            }
            Err(Mismatch::Lost(detail)) => Err(self.violation(ViolationKind::Durability, detail)),
            Err(Mismatch::Invented(detail)) => Err(self.violation(ViolationKind::Invention, detail)),
        }
    }

    /// Media damage the store cannot survive: start over in a fresh directory.
    fn wipe(&mut self) {
        self.wipes += 1;
        self.root = PathBuf::from(format!("/aries-{}", self.wipes));
        self.media_seen = self.media_damage();
        self.model = Model::default();
    }

    /// Liveness: with faults off, a transaction commits durably and survives a crash.
    fn probe(&mut self) -> Result<(), Violation> {
        self.env.set_faults_enabled(false);
        let txn = self.next_txn;
        let committed = self.begin().and_then(|()| self.update(txn)).and_then(|()| self.commit(txn, true));
        if committed.is_err() || self.env.is_crashed() {
            let detail = "a durable commit with faults off failed".to_owned();
            return Err(self.violation(ViolationKind::Liveness, detail));
        }
        let durable_lsn = self.live().wal.durable_lsn();
        self.model.durable_to(durable_lsn);
        self.crash_and_recover()
    }
}
