//! Recovery of a store made of a checkpoint store and a write-ahead log: the latest checkpoint
//! that loads, then a replay of the WAL records it does not cover (DESIGN.md section 3, rules
//! 7, 9 and 13).
//!
//! [`recover`] opens the checkpoint store (which durably removes partial directories), loads
//! the newest checkpoint whose whole chain verifies (falling back past damaged ones, each
//! fallback reported), hands its state to the caller's [`Replayer`], then opens the WAL and
//! hands the replayer every record from the checkpoint's replay point on. The caller owns the
//! meaning of records; this module owns the order and the checks that make replay safe.
//!
//! It is the layer above both stores it combines: `wal` and `checkpoint` know nothing of each
//! other, only this module (and the shard above it) sees both.
//!
//! Invariants:
//! - **idempotent replay**: records below [`Replayer::replay_from`] are never handed over, and
//!   each record handed over says whether the checkpoint already covers it (`lsn <=
//!   checkpoint lsn`), so an increment is never applied twice;
//! - **no silent gap**: if the WAL no longer reaches back to the replay point of the chosen
//!   checkpoint (its segments were deleted for a newer checkpoint that turned out damaged), the
//!   records in between are lost: recovery fails with [`RecoveryError::WalMissing`] naming the
//!   lsns, never replays across the gap;
//! - **no lsn reuse**: if the WAL ends before the chosen checkpoint's lsn, new records would
//!   get lsns the checkpoint claims to cover and a later replay would skip them: recovery
//!   fails with [`RecoveryError::WalBehindCheckpoint`]. Where the WAL ends is the lsn before
//!   its next one, not its last record: after truncation the only segment may hold no record
//!   yet, and its header alone says where the log stands;
//! - a damaged checkpoint is never taken for "no checkpoint": when checkpoints exist and none
//!   loads, every one is reported as a fallback, and recovery replays the whole WAL on the
//!   empty state only if the WAL still starts at lsn 1 (the oldest fallback of all); else it
//!   fails with the reason for each checkpoint. Without any checkpoint, a WAL that does not
//!   start at lsn 1 fails with [`RecoveryError::WalStartsLate`];
//! - **a recovery that starts from nothing proves the store is new**: a WAL directory that is
//!   missing or holds no segment is new only if the checkpoint store never held a checkpoint
//!   (no valid, damaged or partial directory, no `HIGH_WATER`): a checkpoint is only ever
//!   created after the WAL's first segment is durable, and the WAL never deletes its last
//!   segment. Otherwise the WAL is gone with everything it held:
//!   [`RecoveryError::WalGone`], checked before the WAL is opened (which would create a new
//!   segment and make the next open look like a new store);
//! - **no silent cut**: a WAL found shorter than its floor marker says it was (its newest
//!   segment deleted, truncated, emptied or zeroed; see `crate::wal::floor`) fails the WAL's
//!   open with corruption naming the file, which is data loss here, never a torn tail;
//! - a replay point above the record after the checkpoint's lsn would skip records the
//!   checkpoint does not hold: it is refused as [`RecoveryError::BadCheckpointState`];
//! - an I/O error anywhere fails recovery (it says nothing about the data); it is never taken
//!   for damage or for the end of the log.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checkpoint::run::Run;
use crate::checkpoint::{
    Bytes, CheckpointError, CheckpointKind, CheckpointMeta, CheckpointOptions, CheckpointStore, Fallback,
    Unusable,
};
use crate::env::Env;
use crate::wal::{CoveredDamage, Dropped, Lsn, Record, RecordRef, ScanReport, Wal, WalError, WalOptions};

/// What the caller does with the recovered state and records.
pub trait Replayer {
    /// The first lsn a checkpoint needs replayed. Default: the record after its lsn. A store
    /// whose transactions span several records returns the first record of the oldest
    /// transaction that was still open when the checkpoint was taken.
    fn replay_from(&self, meta: &CheckpointMeta) -> Lsn {
        meta.lsn.saturating_add(1)
    }

    /// Called once, first, with the checkpoint's state (an empty map and `None` when the store
    /// has no checkpoint). An error (the state is not this store's) fails recovery.
    fn base(&mut self, meta: Option<&CheckpointMeta>, state: BTreeMap<Bytes, Bytes>) -> Result<(), String>;

    /// [`Replayer::base`] with the state as a packed run, which is how recovery calls it.
    /// Default: copies the run into a map and calls `base`; a replayer that keeps a packed
    /// state (the shard) overrides it and saves two allocations per entry.
    fn base_run(&mut self, meta: Option<&CheckpointMeta>, state: Run) -> Result<(), String> {
        self.base(meta, state.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
    }

    /// Called for every WAL record from the replay point on, in lsn order. `covered` is true
    /// when the checkpoint already includes the record's effect (`lsn <= checkpoint lsn`);
    /// such records only rebuild context (the start of a transaction). An error (the record is
    /// not this store's) fails recovery; later records are still scanned but not handed over.
    fn record(&mut self, record: Record, covered: bool) -> Result<(), String>;

    /// [`Replayer::record`] with the record borrowed from the scan's read window, which is
    /// how recovery calls it. Default: copies the record and calls `record`; a replayer that
    /// needs only the payload's bytes overrides it and saves an allocation and a copy per
    /// record.
    fn record_borrowed(&mut self, record: RecordRef<'_>, covered: bool) -> Result<(), String> {
        self.record(record.to_record(), covered)
    }
}

/// The checkpoint a recovery started from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointUsed {
    /// Its id.
    pub id: u64,
    /// Its epoch.
    pub epoch: u64,
    /// The WAL position it includes.
    pub lsn: Lsn,
    /// Full or incremental.
    pub kind: CheckpointKind,
    /// Entries of its own data file.
    pub key_count: u64,
}

/// What a recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint used (`None`: none existed, the whole WAL was replayed).
    pub checkpoint: Option<CheckpointUsed>,
    /// Newer checkpoints passed over because they did not load, newest first.
    pub fallbacks: Vec<Fallback>,
    /// Checkpoints whose metadata is damaged, as the store's open found them.
    pub damaged: Vec<Unusable>,
    /// Partial checkpoint directories removed, oldest first.
    pub partial_removed: Vec<u64>,
    /// The first lsn replay needed.
    pub replay_from: Lsn,
    /// WAL records the scan found.
    pub records_scanned: u64,
    /// Records before the replay point, not handed over.
    pub records_skipped: u64,
    /// Records handed over that the checkpoint already covered.
    pub records_covered: u64,
    /// Records handed over and applied (above the checkpoint's lsn).
    pub records_replayed: u64,
    /// Bytes the WAL scan read as records.
    pub wal_bytes_scanned: u64,
    /// Non-zero bytes of a torn tail that the WAL truncated.
    pub torn_bytes_truncated: u64,
    /// WAL segments found.
    pub wal_segments: usize,
    /// What a point-in-time recovery ([`crate::wal::RecoveryMode::PointInTime`]) dropped:
    /// acknowledged records may be among them.
    pub dropped: Option<Dropped>,
    /// Damage to WAL records the checkpoint already holds, skipped: nothing needed is lost
    /// (DESIGN.md rule 16). Damage reaching past the checkpoint's lsn is never here: it fails
    /// the recovery.
    pub covered_damage: Vec<CoveredDamage>,
    /// The lsn the next record gets.
    pub next_lsn: Lsn,
    /// Time the recovery took on the Env's monotonic clock.
    pub duration: Duration,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.checkpoint {
            Some(c) => write!(f, "checkpoint {} ({:?}, epoch {}, lsn {})", c.id, c.kind, c.epoch, c.lsn)?,
            None => f.write_str("no checkpoint")?,
        }
        write!(
            f,
            "; replayed {} records from lsn {} ({} covered, {} skipped, {} scanned in {} segments)",
            self.records_replayed,
            self.replay_from,
            self.records_covered,
            self.records_skipped,
            self.records_scanned,
            self.wal_segments
        )?;
        if self.torn_bytes_truncated > 0 {
            write!(f, "; truncated {} torn bytes", self.torn_bytes_truncated)?;
        }
        if !self.partial_removed.is_empty() {
            write!(f, "; removed partial checkpoints {:?}", self.partial_removed)?;
        }
        if let Some(dropped) = &self.dropped {
            write!(
                f,
                "; DROPPED every lsn from {} (damage at {} offset {}, {} later valid records)",
                dropped.from_lsn,
                dropped.path.display(),
                dropped.offset,
                dropped.later_records
            )?;
        }
        for damage in &self.covered_damage {
            write!(
                f,
                "; skipped damaged lsns {}..={} at {} offset {} (the checkpoint holds them)",
                damage.from_lsn,
                damage.to_lsn,
                damage.path.display(),
                damage.offset
            )?;
        }
        for fallback in &self.fallbacks {
            write!(f, "; passed over {fallback}")?;
        }
        write!(f, "; next lsn {}", self.next_lsn)
    }
}

/// Why a recovery failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The checkpoint store failed to open, or checkpoints exist and none loads.
    Checkpoint(CheckpointError),
    /// The WAL failed to open (I/O error, or corruption it names by file and offset).
    Wal(WalError),
    /// The WAL no longer holds records the chosen checkpoint needs: they are lost.
    WalMissing {
        /// The WAL directory.
        wal_dir: PathBuf,
        /// The checkpoint chosen.
        checkpoint: u64,
        /// The first lsn it needs.
        needed_from: Lsn,
        /// The first lsn the WAL holds.
        first_available: Lsn,
    },
    /// The WAL ends before the chosen checkpoint's lsn: records the checkpoint covers are
    /// gone from the WAL, and new records would reuse their lsns.
    WalBehindCheckpoint {
        /// The WAL directory.
        wal_dir: PathBuf,
        /// The checkpoint chosen.
        checkpoint: u64,
        /// Its lsn.
        checkpoint_lsn: Lsn,
        /// The last lsn the WAL holds (0: none).
        wal_last_lsn: Lsn,
    },
    /// No checkpoint was used (the store has none, or none loads) and the WAL does not start
    /// at lsn 1: the records before it are lost.
    WalStartsLate {
        /// The WAL directory.
        wal_dir: PathBuf,
        /// The first lsn the WAL holds.
        first_available: Lsn,
    },
    /// The checkpoint's state (or its replay point) is not this store's.
    BadCheckpointState {
        /// The checkpoint (`None`: the empty state of no checkpoint).
        checkpoint: Option<u64>,
        /// What the replayer said.
        detail: String,
    },
    /// A WAL record is not this store's.
    BadRecord {
        /// The WAL directory.
        wal_dir: PathBuf,
        /// The record's segment.
        segment_id: u64,
        /// Its lsn.
        lsn: Lsn,
        /// What the replayer said.
        detail: String,
    },
    /// The WAL directory is missing or holds no segment, but the checkpoint store has held
    /// checkpoints: the WAL existed, and every record it held is lost.
    WalGone {
        /// The WAL directory.
        wal_dir: PathBuf,
        /// The highest checkpoint id the checkpoint store has seen.
        checkpoint_id_seen: u64,
    },
}

impl RecoveryError {
    /// Whether the error says durable data is damaged or lost (as opposed to an I/O failure,
    /// after which a retry may succeed).
    pub fn is_data_loss(&self) -> bool {
        match self {
            RecoveryError::Checkpoint(error) => {
                error.is_damage()
                    || matches!(
                        error,
                        CheckpointError::NoLoadableCheckpoint { .. } | CheckpointError::Foreign { .. }
                    )
            }
            // Options, poisoning and I/O say nothing about the data; only corruption does.
            RecoveryError::Wal(error) => matches!(error, WalError::Corruption { .. }),
            _ => true,
        }
    }
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Checkpoint(error) => write!(f, "checkpoint recovery failed: {error}"),
            RecoveryError::Wal(error) => write!(f, "WAL recovery failed: {error}"),
            RecoveryError::WalMissing { wal_dir, checkpoint, needed_from, first_available } => write!(
                f,
                "{}: checkpoint {checkpoint} needs the WAL from lsn {needed_from}, but it starts at lsn \
                 {first_available}: lsns {needed_from}..{first_available} are lost",
                wal_dir.display()
            ),
            RecoveryError::WalBehindCheckpoint { wal_dir, checkpoint, checkpoint_lsn, wal_last_lsn } => {
                write!(
                    f,
                    "{}: the WAL ends at lsn {wal_last_lsn}, before checkpoint {checkpoint}'s lsn \
                 {checkpoint_lsn}: records the checkpoint covers are gone from the WAL",
                    wal_dir.display()
                )
            }
            RecoveryError::WalStartsLate { wal_dir, first_available } => write!(
                f,
                "{}: no checkpoint is usable and the WAL starts at lsn {first_available}: lsns \
                 1..{first_available} are lost",
                wal_dir.display()
            ),
            RecoveryError::BadCheckpointState { checkpoint: Some(id), detail } => {
                write!(f, "checkpoint {id} holds state that is not this store's: {detail}")
            }
            RecoveryError::BadCheckpointState { checkpoint: None, detail } => {
                write!(f, "the empty state was refused: {detail}")
            }
            RecoveryError::BadRecord { wal_dir, segment_id, lsn, detail } => write!(
                f,
                "{}: record lsn {lsn} in segment {segment_id} is not this store's: {detail}",
                wal_dir.display()
            ),
            RecoveryError::WalGone { wal_dir, checkpoint_id_seen } => write!(
                f,
                "{}: the WAL holds no segment, but checkpoints up to id {checkpoint_id_seen} exist: \
                 the WAL was deleted and every record it held is lost",
                wal_dir.display()
            ),
        }
    }
}

impl std::error::Error for RecoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecoveryError::Checkpoint(error) => Some(error),
            RecoveryError::Wal(error) => Some(error),
            _ => None,
        }
    }
}

/// A recovered store: its checkpoint store and WAL, open and ready, and what recovery did.
#[derive(Debug)]
pub struct Recovered<E: Env> {
    /// The checkpoint store (holds its directory lock).
    pub checkpoints: CheckpointStore<E>,
    /// The WAL: durable up to its last lsn, torn tail gone, ready to append.
    pub wal: Wal<E>,
    /// What recovery found and did.
    pub report: RecoveryReport,
}

/// Where the store's two parts live and how they are configured.
#[derive(Clone, Debug)]
pub struct RecoveryPaths<'a> {
    /// The checkpoint store's directory.
    pub checkpoint_dir: &'a Path,
    /// Its options.
    pub checkpoint_options: CheckpointOptions,
    /// The WAL's directory.
    pub wal_dir: &'a Path,
    /// Its options.
    pub wal_options: WalOptions,
}

/// Recovers the store at `paths`: see the module docs.
pub fn recover<E: Env + Clone>(
    env: &E,
    paths: RecoveryPaths<'_>,
    replayer: &mut impl Replayer,
) -> Result<Recovered<E>, RecoveryError> {
    recover_with(env, paths, replayer, Helpers::None)
}

/// Whether a recovery may use a helper thread beside its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Helpers {
    /// Everything on the caller's thread (the default: [`recover`]).
    None,
    /// One helper thread at a time, where the `Env` allows threads ([`Env::parallelism`]
    /// above 1): the caller has a core to spare (a kernel recovering fewer shards at once than
    /// it may use threads). The helper readies the arena blocks of the checkpoint's run
    /// (`checkpoint::load`), then reads each WAL segment ahead of the scan (`wal::window`);
    /// what is read, in which order, and what recovers are the same. With `None`, neither.
    One,
}

impl Helpers {
    /// The helpers of each recovery when `at_once` recoveries run side by side on a budget of
    /// `budget` threads: one each only if the budget holds a spare thread for every one of
    /// them (so a kernel recovering as many shards at once as it may use threads, or told to
    /// recover on one thread, uses no helper).
    pub fn for_budget(budget: usize, at_once: usize) -> Self {
        if at_once > 0 && budget >= 2 * at_once { Helpers::One } else { Helpers::None }
    }
}

/// [`recover`] with `helpers`.
pub fn recover_with<E: Env + Clone>(
    env: &E,
    paths: RecoveryPaths<'_>,
    replayer: &mut impl Replayer,
    helpers: Helpers,
) -> Result<Recovered<E>, RecoveryError> {
    let started = env.now_monotonic();
    let (checkpoints, open_report) =
        CheckpointStore::open(env.clone(), paths.checkpoint_dir, paths.checkpoint_options.clone())
            .map_err(RecoveryError::Checkpoint)?;
    let mut report = RecoveryReport {
        damaged: open_report.damaged,
        partial_removed: open_report.partial_removed,
        replay_from: 1,
        ..RecoveryReport::default()
    };
    // `Some` when checkpoints exist and none loads: the whole WAL is the last resort.
    let mut none_loads = None;
    let (meta, state) = match checkpoints.load_latest_valid_run_with(helpers == Helpers::One) {
        Ok(Some(loaded)) => {
            report.fallbacks = loaded.fallbacks;
            (Some(loaded.meta), loaded.run)
        }
        Ok(None) => (None, Run::new()),
        Err(CheckpointError::NoLoadableCheckpoint { fallbacks }) => {
            report.fallbacks.clone_from(&fallbacks);
            none_loads = Some(CheckpointError::NoLoadableCheckpoint { fallbacks });
            (None, Run::new())
        }
        Err(error) => return Err(RecoveryError::Checkpoint(error)),
    };
    if let Some(meta) = &meta {
        start_from_checkpoint(meta, replayer, &mut report)?;
    }
    replayer.base_run(meta.as_ref(), state).map_err(|detail| RecoveryError::BadCheckpointState {
        checkpoint: meta.as_ref().map(|m| m.id),
        detail,
    })?;
    check_wal_exists(env, paths.wal_dir, &checkpoints)?;
    let checkpoint_lsn = meta.as_ref().map_or(0, |m| m.lsn);
    let (wal, scan) = replay_wal(env, &paths, replayer, checkpoint_lsn, helpers, &mut report)?;
    let wal_dir = paths.wal_dir.to_path_buf();
    let first_available = scan.segments.first().map_or(scan.next_lsn, |&(_, first)| first);
    match &meta {
        Some(meta) => check_wal_reaches(&wal_dir, meta, report.replay_from, first_available, scan.next_lsn)?,
        None if first_available > 1 => {
            return Err(match none_loads {
                Some(error) => RecoveryError::Checkpoint(error),
                None => RecoveryError::WalStartsLate { wal_dir, first_available },
            });
        }
        None => {}
    }
    report.wal_bytes_scanned = scan.bytes;
    report.torn_bytes_truncated = scan.torn_bytes;
    report.wal_segments = scan.segments.len();
    report.next_lsn = scan.next_lsn;
    report.dropped = scan.dropped.clone();
    report.covered_damage = scan.covered_damage.clone();
    report.duration = env.now_monotonic().saturating_sub(started);
    Ok(Recovered { checkpoints, wal, report })
}

/// Records in `report` that recovery starts from checkpoint `meta`, and where its replay
/// starts; refuses a replay point that would skip records the checkpoint does not hold.
fn start_from_checkpoint(
    meta: &CheckpointMeta,
    replayer: &impl Replayer,
    report: &mut RecoveryReport,
) -> Result<(), RecoveryError> {
    report.replay_from = replayer.replay_from(meta);
    report.checkpoint = Some(CheckpointUsed {
        id: meta.id,
        epoch: meta.epoch,
        lsn: meta.lsn,
        kind: meta.kind,
        key_count: meta.key_count,
    });
    if report.replay_from > meta.lsn.saturating_add(1) {
        let detail = format!(
            "its replay point, lsn {}, is above the record after its lsn {}: the records in \
             between would never be replayed",
            report.replay_from, meta.lsn
        );
        return Err(RecoveryError::BadCheckpointState { checkpoint: Some(meta.id), detail });
    }
    Ok(())
}

/// Refuses a WAL without segments next to a checkpoint store that has held checkpoints (see
/// the module docs).
fn check_wal_exists<E: Env>(
    env: &E,
    wal_dir: &Path,
    checkpoints: &CheckpointStore<E>,
) -> Result<(), RecoveryError> {
    let segments = match env.list_dir(wal_dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return Err(RecoveryError::Wal(WalError::io("list", wal_dir, error))),
        Ok(names) => {
            names.iter().filter(|name| crate::wal::format::parse_segment_file_name(name).is_some()).count()
        }
    };
    let checkpoint_id_seen = checkpoints.next_id().saturating_sub(1);
    if segments == 0 && checkpoint_id_seen > 0 {
        return Err(RecoveryError::WalGone { wal_dir: wal_dir.to_path_buf(), checkpoint_id_seen });
    }
    Ok(())
}

/// Opens the WAL, handing `replayer` every record from `report.replay_from` on.
fn replay_wal<E: Env + Clone>(
    env: &E,
    paths: &RecoveryPaths<'_>,
    replayer: &mut impl Replayer,
    checkpoint_lsn: Lsn,
    helpers: Helpers,
    report: &mut RecoveryReport,
) -> Result<(Wal<E>, ScanReport), RecoveryError> {
    let mut bad_record = None;
    // Records below the replay point are held by the checkpoint: damage wholly among them is
    // reported, not fatal (DESIGN.md rule 16).
    let covered_lsn =
        if checkpoint_lsn > 0 { report.replay_from.saturating_sub(1).min(checkpoint_lsn) } else { 0 };
    let options = paths.wal_options.clone();
    // The scan's read-ahead helper only where the checkpoint load may have one too.
    let read_ahead = helpers == Helpers::One;
    let (wal, scan) =
        Wal::open_covered_with(env.clone(), paths.wal_dir, options, covered_lsn, read_ahead, |record| {
            report.records_scanned += 1;
            if record.lsn < report.replay_from {
                report.records_skipped += 1;
                return;
            }
            if bad_record.is_some() {
                return;
            }
            let covered = record.lsn <= checkpoint_lsn;
            let (segment_id, lsn) = (record.segment_id, record.lsn);
            match replayer.record_borrowed(record, covered) {
                Ok(()) if covered => report.records_covered += 1,
                Ok(()) => report.records_replayed += 1,
                Err(detail) => bad_record = Some((segment_id, lsn, detail)),
            }
        })
        .map_err(RecoveryError::Wal)?;
    if let Some((segment_id, lsn, detail)) = bad_record {
        let wal_dir = paths.wal_dir.to_path_buf();
        return Err(RecoveryError::BadRecord { wal_dir, segment_id, lsn, detail });
    }
    Ok((wal, scan))
}

/// Checks that the WAL holds every record checkpoint `meta` needs replayed and reaches its lsn.
fn check_wal_reaches(
    wal_dir: &Path,
    meta: &CheckpointMeta,
    replay_from: Lsn,
    first_available: Lsn,
    next_lsn: Lsn,
) -> Result<(), RecoveryError> {
    let wal_dir = wal_dir.to_path_buf();
    if first_available > replay_from {
        let needed_from = replay_from;
        return Err(RecoveryError::WalMissing { wal_dir, checkpoint: meta.id, needed_from, first_available });
    }
    // Bug fixed here: the scan's last *record* was compared, so a WAL whose only segment had
    // no record yet (truncation right after a rotation) was taken for one behind the checkpoint.
    let wal_last_lsn = next_lsn - 1;
    if wal_last_lsn < meta.lsn {
        let checkpoint_lsn = meta.lsn;
        return Err(RecoveryError::WalBehindCheckpoint {
            wal_dir,
            checkpoint: meta.id,
            checkpoint_lsn,
            wal_last_lsn,
        });
    }
    Ok(())
}
