//! The config of the epoch tracker: when epochs end and how much is kept, with the allowed
//! range of every field and the checks between fields.

use std::ops::RangeInclusive;

use super::EpochError;

/// Allowed range of [`EpochConfig::ops_max`], in operations.
pub const OPS_MAX_RANGE: RangeInclusive<u64> = 1..=1_000_000_000;
/// Allowed range of [`EpochConfig::wal_bytes_max`], in bytes (one sector to 64 GiB).
pub const WAL_BYTES_MAX_RANGE: RangeInclusive<u64> = 4096..=(64 << 30);
/// Allowed range of [`EpochConfig::duration_max_ms`], in milliseconds (up to one day).
pub const DURATION_MAX_MS_RANGE: RangeInclusive<u64> = 1..=86_400_000;
/// Allowed range of [`EpochConfig::history_len_max`], in epochs.
pub const HISTORY_LEN_MAX_RANGE: RangeInclusive<u64> = 2..=4096;
/// Allowed range of [`EpochConfig::sealing_max`], in epochs.
pub const SEALING_MAX_RANGE: RangeInclusive<u64> = 1..=1024;
/// Largest [`EpochConfig::replay_bytes_bound`] a config may have, in bytes (1 TiB).
pub const REPLAY_BYTES_MAX: u64 = 1 << 40;

const _: () = assert!(*SEALING_MAX_RANGE.end() < *HISTORY_LEN_MAX_RANGE.end());
const _: () = assert!(*SEALING_MAX_RANGE.start() < *HISTORY_LEN_MAX_RANGE.start());
const _: () = assert!(*WAL_BYTES_MAX_RANGE.start() * (*SEALING_MAX_RANGE.start() + 1) <= REPLAY_BYTES_MAX);

/// When epochs end and how much is tracked; check with [`EpochConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochConfig {
    /// An epoch ends after this many operations ([`OPS_MAX_RANGE`]; default 100 000).
    pub ops_max: u64,
    /// An epoch ends after this many WAL bytes ([`WAL_BYTES_MAX_RANGE`]; default 64 MiB).
    pub wal_bytes_max: u64,
    /// An epoch ends after this long on the monotonic clock, in milliseconds
    /// ([`DURATION_MAX_MS_RANGE`]; default 5 000).
    pub duration_max_ms: u64,
    /// Epochs kept in the history, the active one included ([`HISTORY_LEN_MAX_RANGE`], more
    /// than `sealing_max`; default 64).
    pub history_len_max: u64,
    /// Epochs that may wait in Sealing for a durable checkpoint ([`SEALING_MAX_RANGE`];
    /// default 4).
    pub sealing_max: u64,
}

impl Default for EpochConfig {
    fn default() -> Self {
        Self {
            ops_max: 100_000,
            wal_bytes_max: 64 << 20,
            duration_max_ms: 5_000,
            history_len_max: 64,
            sealing_max: 4,
        }
    }
}

impl EpochConfig {
    /// Short epochs: little WAL to replay after a crash, more frequent checkpoints.
    pub fn low_latency() -> Self {
        Self {
            ops_max: 10_000,
            wal_bytes_max: 8 << 20,
            duration_max_ms: 1_000,
            sealing_max: 2,
            ..Self::default()
        }
    }

    /// Long epochs: fewer checkpoints, more WAL to replay after a crash.
    pub fn high_throughput() -> Self {
        Self {
            ops_max: 1_000_000,
            wal_bytes_max: 256 << 20,
            duration_max_ms: 30_000,
            sealing_max: 8,
            ..Self::default()
        }
    }

    /// Most WAL bytes that can lie after the latest durable checkpoint if the caller honours
    /// [`EpochError::SealingBacklog`]: `sealing_max` sealed epochs plus the active one
    /// (saturating).
    pub fn replay_bytes_bound(&self) -> u64 {
        self.wal_bytes_max.saturating_mul(self.sealing_max.saturating_add(1))
    }

    /// Checks every field against its range, then the fields against each other.
    pub fn validate(&self) -> Result<(), EpochError> {
        in_range("ops_max", self.ops_max, OPS_MAX_RANGE)?;
        in_range("wal_bytes_max", self.wal_bytes_max, WAL_BYTES_MAX_RANGE)?;
        in_range("duration_max_ms", self.duration_max_ms, DURATION_MAX_MS_RANGE)?;
        in_range("history_len_max", self.history_len_max, HISTORY_LEN_MAX_RANGE)?;
        in_range("sealing_max", self.sealing_max, SEALING_MAX_RANGE)?;
        if self.sealing_max >= self.history_len_max {
            return Err(EpochError::ConfigInconsistent {
                fields: ["sealing_max", "history_len_max"],
                detail: format!(
                    "the history must hold the sealing epochs and the active one, so sealing_max {} \
                     must be below history_len_max {}",
                    self.sealing_max, self.history_len_max
                ),
            });
        }
        if self.replay_bytes_bound() > REPLAY_BYTES_MAX {
            return Err(EpochError::ConfigInconsistent {
                fields: ["wal_bytes_max", "sealing_max"],
                detail: format!(
                    "wal_bytes_max {} times (sealing_max {} + 1) exceeds {REPLAY_BYTES_MAX} bytes of WAL \
                     to replay after the latest checkpoint",
                    self.wal_bytes_max, self.sealing_max
                ),
            });
        }
        Ok(())
    }
}

fn in_range(field: &'static str, value: u64, allowed: RangeInclusive<u64>) -> Result<(), EpochError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(EpochError::ConfigOutOfRange { field, value, allowed })
    }
}
