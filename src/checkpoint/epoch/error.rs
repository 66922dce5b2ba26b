//! Errors of the epoch tracker: a config out of range, or a transition the state machine does
//! not allow. None of them is a panic: a caller or a recovered disk can cause each.

use std::fmt;
use std::ops::RangeInclusive;

use super::{EpochId, EpochState};

/// What went wrong with an epoch config or transition.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EpochError {
    /// A config field is outside its allowed range.
    ConfigOutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The values allowed.
        allowed: RangeInclusive<u64>,
    },
    /// Config fields that are each in range but do not fit together.
    ConfigInconsistent {
        /// The fields involved.
        fields: [&'static str; 2],
        /// Why they do not fit.
        detail: String,
    },
    /// The epoch is not in a state that may move to `to`.
    InvalidTransition {
        /// The epoch.
        epoch: EpochId,
        /// Its state.
        from: EpochState,
        /// The state asked for.
        to: EpochState,
    },
    /// The epoch is not in the history: never opened, or forgotten (older than the history, or
    /// from before a restart).
    UnknownEpoch {
        /// The epoch asked for.
        epoch: EpochId,
        /// The active epoch.
        current: EpochId,
    },
    /// Archiving asked for an epoch that is not strictly older than the latest durable
    /// checkpoint's epoch.
    NotArchivable {
        /// The epoch.
        epoch: EpochId,
        /// The latest durable checkpoint's epoch, if any.
        latest_durable: Option<EpochId>,
    },
    /// `advance` refused: `sealing_max` epochs already wait for a durable checkpoint.
    SealingBacklog {
        /// Epochs in Sealing.
        sealing: u64,
        /// The configured maximum.
        max: u64,
    },
    /// No epoch number is left after `last`.
    Exhausted {
        /// The last number used.
        last: EpochId,
    },
    /// `resume` was given a latest durable checkpoint epoch that is 0 or above the highest epoch
    /// number seen: the caller's recovery is inconsistent.
    InconsistentResume {
        /// The highest epoch number the caller saw.
        last_epoch_seen: u64,
        /// The latest durable checkpoint's epoch it gave.
        latest_durable: EpochId,
    },
}

impl fmt::Display for EpochError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EpochError::ConfigOutOfRange { field, value, allowed } => write!(
                f,
                "epoch config: {field} = {value} is outside the allowed range {}..={}",
                allowed.start(),
                allowed.end()
            ),
            EpochError::ConfigInconsistent { fields, detail } => {
                write!(f, "epoch config: {} and {} do not fit together: {detail}", fields[0], fields[1])
            }
            EpochError::InvalidTransition { epoch, from, to } => {
                write!(f, "{epoch} cannot move from {from} to {to}")
            }
            EpochError::UnknownEpoch { epoch, current } => {
                write!(f, "{epoch} is not in the history (the active one is {current})")
            }
            EpochError::NotArchivable { epoch, latest_durable: Some(d) } => {
                write!(
                    f,
                    "{epoch} cannot be archived: it is not older than the latest durable checkpoint's {d}"
                )
            }
            EpochError::NotArchivable { epoch, latest_durable: None } => {
                write!(f, "{epoch} cannot be archived: no checkpoint is durable yet")
            }
            EpochError::SealingBacklog { sealing, max } => write!(
                f,
                "cannot advance: {sealing} epochs are sealing (max {max}); make a checkpoint durable first"
            ),
            EpochError::Exhausted { last } => write!(f, "epoch numbers are exhausted after {last}"),
            EpochError::InconsistentResume { last_epoch_seen, latest_durable } => write!(
                f,
                "resume: the latest durable checkpoint's {latest_durable} is not in 1..={last_epoch_seen}, \
                 the epochs seen"
            ),
        }
    }
}

impl std::error::Error for EpochError {}
