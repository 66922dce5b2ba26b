//! Epochs: the WAL is divided into numbered epochs of one or more segments each, and an epoch
//! ends when any of its triggers fires (operations, WAL bytes, or monotonic time).
//!
//! ```text
//!   Active --advance--> Sealing --mark_durable--> Durable --archive--> Archived
//! ```
//!
//! [`EpochTracker`] is pure bookkeeping: no I/O and no clock of its own. The caller reads
//! [`Env::now_monotonic`](crate::env::Env::now_monotonic) for triggers and epoch lengths and
//! [`Env::now_wall`](crate::env::Env::now_wall) for the timestamps of transitions, so a run
//! under the simulator is deterministic. The wall clock may jump, backwards too: it is only
//! ever recorded, never subtracted.
//!
//! Invariants (checked after every change in debug builds):
//! - **restarting never reuses an epoch number**: numbers are strictly increasing, start at
//!   [`EpochId::FIRST`], and [`EpochTracker::resume`] numbers its first epoch one past the
//!   highest number the caller ever saw;
//! - exactly one epoch is Active, the newest; the history is ordered by id;
//! - the latest durable checkpoint's epoch never decreases; every epoch at or below it is
//!   Durable or Archived, every older epoch above it is Sealing (a checkpoint covering epoch
//!   `E` covers every record before `E` too, so [`EpochTracker::mark_durable`] also makes the
//!   older Sealing epochs Durable);
//! - an epoch is Archived only when strictly older than the latest durable checkpoint's epoch;
//! - at most [`EpochConfig::sealing_max`] epochs are Sealing and the history holds at most
//!   [`EpochConfig::history_len_max`] epochs, so every structure here is bounded.
//!
//! Caller contract (the tracker cannot check it):
//! - on restart, pass to [`EpochTracker::resume`] the highest epoch number found *anywhere*:
//!   checkpoint metadata, every WAL segment header, and the names of files that failed to open
//!   or decode. Reusing a number lets a new segment be taken for an old one, and deleting the
//!   "old" one then deletes records that were never checkpointed;
//! - never delete a WAL segment that holds a record newer than the latest durable checkpoint.
//!   [`EpochTracker::archivable_before`] and [`EpochTracker::archive_horizon`] name only epochs
//!   strictly older than that checkpoint's epoch; pass them the epoch of the oldest checkpoint
//!   you keep as a fallback (DESIGN.md section 3 rule 13), and they never go past it either;
//! - while [`EpochTracker::advance`] refuses with [`EpochError::SealingBacklog`], admit no more
//!   writes until a checkpoint is durable: that keeps the WAL to replay after the latest
//!   checkpoint under [`EpochConfig::replay_bytes_bound`] (plus the record that crossed a
//!   threshold).
//!
//! The config and its ranges live in `epoch/config.rs`, the errors in `epoch/error.rs`; both
//! are re-exported here.

mod config;
mod error;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::{
    DURATION_MAX_MS_RANGE, EpochConfig, HISTORY_LEN_MAX_RANGE, OPS_MAX_RANGE, REPLAY_BYTES_MAX,
    SEALING_MAX_RANGE, WAL_BYTES_MAX_RANGE,
};
pub use error::EpochError;

/// An epoch number. Numbers start at 1 ([`EpochId::FIRST`]); 0 is never an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct EpochId(pub u64);

impl EpochId {
    /// The first epoch of a store that never had one.
    pub const FIRST: EpochId = EpochId(1);

    /// The number after this one, or `None` when the numbers are exhausted.
    pub fn next(self) -> Option<EpochId> {
        self.0.checked_add(1).map(EpochId)
    }
}

impl fmt::Display for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// Where an epoch is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EpochState {
    /// Receives WAL records. Exactly one epoch, the newest, is Active.
    Active,
    /// Receives no more records; a checkpoint covering it is not yet durable.
    Sealing,
    /// A durably published checkpoint covers every record of the epoch.
    Durable,
    /// The caller may delete (or has deleted) the epoch's WAL segments.
    Archived,
}

impl fmt::Display for EpochState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EpochState::Active => "active",
            EpochState::Sealing => "sealing",
            EpochState::Durable => "durable",
            EpochState::Archived => "archived",
        })
    }
}

/// Which triggers of the active epoch have fired. Several may fire at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Triggers {
    /// Operations reached [`EpochConfig::ops_max`].
    pub ops: bool,
    /// WAL bytes reached [`EpochConfig::wal_bytes_max`].
    pub wal_bytes: bool,
    /// The monotonic clock reached [`EpochConfig::duration_max_ms`] since the epoch opened.
    pub time: bool,
}

impl Triggers {
    /// Whether any trigger fired, i.e. the epoch should advance.
    pub fn any(self) -> bool {
        self.ops || self.wal_bytes || self.time
    }
}

/// One epoch as the tracker knows it. Wall-clock timestamps are milliseconds since the Unix
/// epoch (0 for a wall clock set before it), as read by the caller; they may go backwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochInfo {
    /// Its number.
    pub id: EpochId,
    /// Its state.
    pub state: EpochState,
    /// Operations recorded in it.
    pub ops: u64,
    /// WAL bytes recorded in it.
    pub wal_bytes: u64,
    /// Its length on the monotonic clock, in milliseconds, once sealed.
    pub duration_ms: Option<u64>,
    /// When it became Active.
    pub opened_wall_ms: u64,
    /// When it became Sealing.
    pub sealed_wall_ms: Option<u64>,
    /// When it became Durable.
    pub durable_wall_ms: Option<u64>,
    /// When it became Archived.
    pub archived_wall_ms: Option<u64>,
}

impl EpochInfo {
    fn opened(id: EpochId, opened_wall_ms: u64) -> Self {
        Self {
            id,
            state: EpochState::Active,
            ops: 0,
            wal_bytes: 0,
            duration_ms: None,
            opened_wall_ms,
            sealed_wall_ms: None,
            durable_wall_ms: None,
            archived_wall_ms: None,
        }
    }
}

/// Counters since the tracker was created or resumed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochStats {
    /// Epochs opened, the active one included.
    pub epochs: u64,
    /// Epochs sealed.
    pub epochs_sealed: u64,
    /// Epochs archived.
    pub epochs_archived: u64,
    /// Checkpoints marked durable.
    pub checkpoints: u64,
    /// Operations recorded, the active epoch included.
    pub operations: u64,
    /// WAL bytes recorded, the active epoch included.
    pub wal_bytes: u64,
    /// Operations of sealed epochs.
    pub sealed_ops: u64,
    /// WAL bytes of sealed epochs.
    pub sealed_wal_bytes: u64,
    /// Monotonic milliseconds of sealed epochs.
    pub sealed_duration_ms: u64,
    /// Sealed epochs whose ops trigger had fired (triggers may fire together).
    pub sealed_by_ops: u64,
    /// Sealed epochs whose WAL-bytes trigger had fired.
    pub sealed_by_wal_bytes: u64,
    /// Sealed epochs whose time trigger had fired.
    pub sealed_by_time: u64,
    /// Sealed epochs no trigger had fired for (a forced advance).
    pub sealed_forced: u64,
}

impl EpochStats {
    /// Average operations per sealed epoch (0 before the first).
    pub fn average_ops_per_epoch(&self) -> f64 {
        self.sealed_ops as f64 / self.epochs_sealed.max(1) as f64
    }

    /// Average WAL bytes per sealed epoch (0 before the first).
    pub fn average_wal_bytes_per_epoch(&self) -> f64 {
        self.sealed_wal_bytes as f64 / self.epochs_sealed.max(1) as f64
    }

    /// Average monotonic length of a sealed epoch in milliseconds (0 before the first).
    pub fn average_duration_ms(&self) -> f64 {
        self.sealed_duration_ms as f64 / self.epochs_sealed.max(1) as f64
    }

    fn note_sealed(&mut self, epoch: &EpochInfo, fired: Triggers) {
        self.epochs_sealed += 1;
        self.sealed_ops = self.sealed_ops.saturating_add(epoch.ops);
        self.sealed_wal_bytes = self.sealed_wal_bytes.saturating_add(epoch.wal_bytes);
        self.sealed_duration_ms = self.sealed_duration_ms.saturating_add(epoch.duration_ms.unwrap_or(0));
        self.sealed_by_ops += u64::from(fired.ops);
        self.sealed_by_wal_bytes += u64::from(fired.wal_bytes);
        self.sealed_by_time += u64::from(fired.time);
        self.sealed_forced += u64::from(!fired.any());
    }
}

/// Milliseconds since the Unix epoch of a wall-clock reading; 0 before it.
pub fn wall_ms(now_wall: SystemTime) -> u64 {
    now_wall.duration_since(UNIX_EPOCH).map_or(0, duration_ms)
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The epochs of one WAL: the active one, a bounded history, triggers and statistics.
#[derive(Clone, Debug)]
pub struct EpochTracker {
    config: EpochConfig,
    active: EpochInfo,
    /// Monotonic reading when the active epoch opened; the time trigger counts from it.
    active_opened_mono: Duration,
    /// Epochs before the active one, oldest first; fewer than `history_len_max`.
    history: VecDeque<EpochInfo>,
    /// How many epochs of `history` are Sealing.
    sealing: u64,
    latest_durable: Option<EpochId>,
    stats: EpochStats,
}

impl EpochTracker {
    /// A tracker for a store that never had an epoch: the active epoch is [`EpochId::FIRST`].
    pub fn new(config: EpochConfig, now_mono: Duration, now_wall: SystemTime) -> Result<Self, EpochError> {
        Self::resume(config, 0, None, now_mono, now_wall)
    }

    /// A tracker after a restart. `last_epoch_seen` is the highest epoch number the caller found
    /// anywhere (see the module docs); the active epoch is the one after it, so no number is
    /// ever reused. `latest_durable` is the epoch of the latest durable checkpoint, if any.
    /// Epochs from before the restart are not in the history; WAL segments of theirs may be
    /// deleted only below [`EpochTracker::archive_horizon`].
    pub fn resume(
        config: EpochConfig,
        last_epoch_seen: u64,
        latest_durable: Option<EpochId>,
        now_mono: Duration,
        now_wall: SystemTime,
    ) -> Result<Self, EpochError> {
        config.validate()?;
        if let Some(durable) = latest_durable.filter(|d| d.0 == 0 || d.0 > last_epoch_seen) {
            return Err(EpochError::InconsistentResume { last_epoch_seen, latest_durable: durable });
        }
        let first = EpochId(last_epoch_seen)
            .next()
            .ok_or(EpochError::Exhausted { last: EpochId(last_epoch_seen) })?;
        let tracker = Self {
            history: VecDeque::with_capacity(config.history_len_max as usize),
            config,
            active: EpochInfo::opened(first, wall_ms(now_wall)),
            active_opened_mono: now_mono,
            sealing: 0,
            latest_durable,
            stats: EpochStats { epochs: 1, ..EpochStats::default() },
        };
        tracker.check_invariants();
        Ok(tracker)
    }

    /// The config.
    pub fn config(&self) -> &EpochConfig {
        &self.config
    }

    /// The active epoch's number, which is also the highest number ever used.
    pub fn current(&self) -> EpochId {
        self.active.id
    }

    /// The active epoch.
    pub fn active(&self) -> &EpochInfo {
        &self.active
    }

    /// The epoch of the latest checkpoint marked durable (also one from before a restart).
    pub fn latest_durable(&self) -> Option<EpochId> {
        self.latest_durable
    }

    /// Epochs in Sealing.
    pub fn sealing_count(&self) -> u64 {
        self.sealing
    }

    /// The counters.
    pub fn stats(&self) -> &EpochStats {
        &self.stats
    }

    /// The epochs remembered, oldest first, ending with the active one.
    pub fn history(&self) -> impl Iterator<Item = &EpochInfo> + '_ {
        self.history.iter().chain(std::iter::once(&self.active))
    }

    /// One epoch, if it is in the history.
    pub fn info(&self, epoch: EpochId) -> Option<&EpochInfo> {
        if epoch == self.active.id {
            Some(&self.active)
        } else {
            self.index_of(epoch).map(|i| &self.history[i])
        }
    }

    /// The triggers of the active epoch at monotonic time `now_mono`, without recording
    /// anything. A reading older than the epoch's opening counts as no time elapsed.
    pub fn pending(&self, now_mono: Duration) -> Triggers {
        let elapsed = now_mono.saturating_sub(self.active_opened_mono);
        Triggers {
            ops: self.active.ops >= self.config.ops_max,
            wal_bytes: self.active.wal_bytes >= self.config.wal_bytes_max,
            time: elapsed >= Duration::from_millis(self.config.duration_max_ms),
        }
    }

    /// Counts `ops` operations and `wal_bytes` WAL bytes into the active epoch and returns the
    /// triggers that have fired; the caller should then [`advance`](Self::advance).
    pub fn record(&mut self, ops: u64, wal_bytes: u64, now_mono: Duration) -> Triggers {
        self.active.ops = self.active.ops.saturating_add(ops);
        self.active.wal_bytes = self.active.wal_bytes.saturating_add(wal_bytes);
        self.stats.operations = self.stats.operations.saturating_add(ops);
        self.stats.wal_bytes = self.stats.wal_bytes.saturating_add(wal_bytes);
        self.pending(now_mono)
    }

    /// Seals the active epoch and opens the next, whose number it returns. Works whether or not
    /// a trigger fired (a forced advance). Refuses with [`EpochError::SealingBacklog`] when
    /// `sealing_max` epochs already wait for a checkpoint.
    pub fn advance(&mut self, now_mono: Duration, now_wall: SystemTime) -> Result<EpochId, EpochError> {
        if self.sealing >= self.config.sealing_max {
            return Err(EpochError::SealingBacklog { sealing: self.sealing, max: self.config.sealing_max });
        }
        let next = self.active.id.next().ok_or(EpochError::Exhausted { last: self.active.id })?;
        let fired = self.pending(now_mono);
        let at = wall_ms(now_wall);
        let mut sealed = std::mem::replace(&mut self.active, EpochInfo::opened(next, at));
        sealed.state = EpochState::Sealing;
        sealed.sealed_wall_ms = Some(at);
        sealed.duration_ms = Some(duration_ms(now_mono.saturating_sub(self.active_opened_mono)));
        self.active_opened_mono = now_mono;
        self.stats.note_sealed(&sealed, fired);
        self.stats.epochs += 1;
        self.history.push_back(sealed);
        self.sealing += 1;
        while self.history.len() as u64 >= self.config.history_len_max {
            // Sealing epochs are the newest of the history and number at most sealing_max,
            // which is below history_len_max, so the oldest here is Durable or Archived.
            let evicted = self.history.pop_front();
            assert!(evicted.is_some_and(|e| e.state >= EpochState::Durable));
        }
        self.check_invariants();
        Ok(next)
    }

    /// Records that a checkpoint covering every record of `epoch` (which must be Sealing) is
    /// durably published. Older Sealing epochs become Durable too, since the checkpoint covers
    /// them; this counts as one checkpoint.
    pub fn mark_durable(&mut self, epoch: EpochId, now_wall: SystemTime) -> Result<(), EpochError> {
        let state = self.state_of(epoch)?;
        if state != EpochState::Sealing {
            return Err(EpochError::InvalidTransition { epoch, from: state, to: EpochState::Durable });
        }
        let at = wall_ms(now_wall);
        for info in self.history.iter_mut().filter(|e| e.id <= epoch && e.state == EpochState::Sealing) {
            info.state = EpochState::Durable;
            info.durable_wall_ms = Some(at);
            self.sealing -= 1;
        }
        // Every epoch at or below the latest durable one is Durable or Archived, and this one
        // was Sealing, so it is newer.
        assert!(self.latest_durable < Some(epoch));
        self.latest_durable = Some(epoch);
        self.stats.checkpoints += 1;
        self.check_invariants();
        Ok(())
    }

    /// Records that `epoch`'s WAL segments may be (or were) deleted. The epoch must be Durable
    /// and strictly older than the latest durable checkpoint's epoch.
    pub fn archive(&mut self, epoch: EpochId, now_wall: SystemTime) -> Result<(), EpochError> {
        let state = self.state_of(epoch)?;
        if state != EpochState::Durable {
            return Err(EpochError::InvalidTransition { epoch, from: state, to: EpochState::Archived });
        }
        if self.latest_durable <= Some(epoch) {
            return Err(EpochError::NotArchivable { epoch, latest_durable: self.latest_durable });
        }
        let index =
            self.index_of(epoch).ok_or(EpochError::UnknownEpoch { epoch, current: self.active.id })?;
        self.history[index].state = EpochState::Archived;
        self.history[index].archived_wall_ms = Some(wall_ms(now_wall));
        self.stats.epochs_archived += 1;
        self.check_invariants();
        Ok(())
    }

    /// The exclusive upper bound of the epochs whose WAL segments may be deleted when the caller
    /// keeps the checkpoint of `checkpoint_epoch` (its oldest fallback): the smaller of that and
    /// the latest durable checkpoint's epoch. `None` while no checkpoint is durable. Covers
    /// epochs from before a restart, which the history does not list.
    pub fn archive_horizon(&self, checkpoint_epoch: EpochId) -> Option<EpochId> {
        self.latest_durable.map(|durable| durable.min(checkpoint_epoch))
    }

    /// The Durable epochs of the history strictly below [`archive_horizon`](Self::archive_horizon),
    /// oldest first: the ones [`archive`](Self::archive) accepts.
    pub fn archivable_before(&self, checkpoint_epoch: EpochId) -> Vec<EpochId> {
        let Some(horizon) = self.archive_horizon(checkpoint_epoch) else { return Vec::new() };
        let archivable: Vec<EpochId> = self
            .history
            .iter()
            .filter(|e| e.id < horizon && e.state == EpochState::Durable)
            .map(|e| e.id)
            .collect();
        assert!(archivable.iter().all(|&e| Some(e) < self.latest_durable));
        archivable
    }

    fn index_of(&self, epoch: EpochId) -> Option<usize> {
        self.history.binary_search_by_key(&epoch, |e| e.id).ok()
    }

    fn state_of(&self, epoch: EpochId) -> Result<EpochState, EpochError> {
        self.info(epoch).map(|e| e.state).ok_or(EpochError::UnknownEpoch { epoch, current: self.active.id })
    }

    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert_eq!(self.active.state, EpochState::Active);
        assert!(self.latest_durable < Some(self.active.id));
        assert!((self.history.len() as u64) < self.config.history_len_max);
        assert!(self.sealing <= self.config.sealing_max);
        let mut sealing = 0;
        let mut previous = None;
        for info in &self.history {
            assert!(previous < Some(info.id) && info.id < self.active.id, "epoch ids are increasing");
            previous = Some(info.id);
            let durable = Some(info.id) <= self.latest_durable;
            match info.state {
                EpochState::Active => panic!("{} in the history is Active", info.id),
                EpochState::Sealing => assert!(!durable, "{} is sealing below a durable checkpoint", info.id),
                EpochState::Durable => assert!(durable, "{} is durable above the latest checkpoint", info.id),
                EpochState::Archived => assert!(Some(info.id) < self.latest_durable),
            }
            sealing += u64::from(info.state == EpochState::Sealing);
        }
        assert_eq!(sealing, self.sealing);
    }
}
