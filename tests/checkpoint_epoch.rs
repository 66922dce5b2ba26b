//! Tests of the epoch tracker (`src/checkpoint/epoch.rs`): config validation and presets, each
//! trigger firing exactly at its threshold (time on the monotonic clock, whatever the wall clock
//! does), the Active -> Sealing -> Durable -> Archived state machine and its typed errors,
//! bounded history and backlog, statistics, and the restart rules: an epoch number is never
//! reused and nothing at or above the latest durable checkpoint's epoch is ever archivable.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use stormhold::checkpoint::epoch::{
    DURATION_MAX_MS_RANGE, EpochConfig, EpochError, EpochId, EpochState, EpochTracker, HISTORY_LEN_MAX_RANGE,
    OPS_MAX_RANGE, REPLAY_BYTES_MAX, SEALING_MAX_RANGE, Triggers, WAL_BYTES_MAX_RANGE, wall_ms,
};

fn mono(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn wall(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn small_config() -> EpochConfig {
    EpochConfig { ops_max: 10, wal_bytes_max: 4096, duration_max_ms: 100, history_len_max: 6, sealing_max: 3 }
}

fn tracker(config: EpochConfig) -> EpochTracker {
    EpochTracker::new(config, mono(0), wall(1_000)).expect("valid config")
}

// ---- config ----

#[test]
fn config_default_and_presets_validate() {
    for config in [EpochConfig::default(), EpochConfig::low_latency(), EpochConfig::high_throughput()] {
        assert_eq!(config.validate(), Ok(()), "{config:?}");
        assert!(config.replay_bytes_bound() <= REPLAY_BYTES_MAX);
    }
    let (low, high) = (EpochConfig::low_latency(), EpochConfig::high_throughput());
    assert!(low.ops_max < high.ops_max && low.wal_bytes_max < high.wal_bytes_max);
    assert!(low.duration_max_ms < high.duration_max_ms);
    assert!(low.replay_bytes_bound() < EpochConfig::default().replay_bytes_bound());
}

#[test]
fn config_each_field_out_of_range_is_named_with_its_range() {
    type Set = fn(&mut EpochConfig, u64);
    let fields: [(&str, Set, std::ops::RangeInclusive<u64>); 5] = [
        ("ops_max", |c, v| c.ops_max = v, OPS_MAX_RANGE),
        ("wal_bytes_max", |c, v| c.wal_bytes_max = v, WAL_BYTES_MAX_RANGE),
        ("duration_max_ms", |c, v| c.duration_max_ms = v, DURATION_MAX_MS_RANGE),
        ("history_len_max", |c, v| c.history_len_max = v, HISTORY_LEN_MAX_RANGE),
        ("sealing_max", |c, v| c.sealing_max = v, SEALING_MAX_RANGE),
    ];
    for (field, set, allowed) in fields {
        for value in [0, allowed.start() - 1, allowed.end() + 1, u64::MAX] {
            if allowed.contains(&value) {
                continue;
            }
            let mut config = EpochConfig::default();
            set(&mut config, value);
            let err = config.validate().expect_err(field);
            assert_eq!(err, EpochError::ConfigOutOfRange { field, value, allowed: allowed.clone() });
            let message = err.to_string();
            assert!(message.contains(field) && message.contains(&value.to_string()), "{message}");
            assert!(message.contains(&format!("{}..={}", allowed.start(), allowed.end())), "{message}");
        }
        for value in [*allowed.start(), *allowed.end()] {
            let mut config = EpochConfig::default();
            set(&mut config, value);
            assert!(
                !matches!(config.validate(), Err(EpochError::ConfigOutOfRange { .. })),
                "{field}={value}"
            );
        }
    }
}

#[test]
fn config_sealing_max_not_below_history_len_max_is_inconsistent() {
    for sealing_max in [4, 5] {
        let config = EpochConfig { history_len_max: 4, sealing_max, ..EpochConfig::default() };
        let err = config.validate().expect_err("inconsistent");
        assert!(
            matches!(&err, EpochError::ConfigInconsistent { fields, .. } if *fields == ["sealing_max", "history_len_max"]),
            "{err:?}"
        );
        assert!(err.to_string().contains("sealing_max") && err.to_string().contains("history_len_max"));
    }
    let config = EpochConfig { history_len_max: 4, sealing_max: 3, ..EpochConfig::default() };
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn config_replay_bound_over_limit_is_inconsistent() {
    let config = EpochConfig {
        wal_bytes_max: *WAL_BYTES_MAX_RANGE.end(),
        sealing_max: 100,
        history_len_max: 200,
        ..EpochConfig::default()
    };
    let err = config.validate().expect_err("too much WAL to replay");
    assert!(
        matches!(&err, EpochError::ConfigInconsistent { fields, .. } if *fields == ["wal_bytes_max", "sealing_max"]),
        "{err:?}"
    );
    // Exactly at the limit is allowed.
    let config = EpochConfig { wal_bytes_max: REPLAY_BYTES_MAX / 16, sealing_max: 15, ..config };
    assert_eq!(config.replay_bytes_bound(), REPLAY_BYTES_MAX);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn tracker_refuses_an_invalid_config() {
    let config = EpochConfig { ops_max: 0, ..EpochConfig::default() };
    let err = EpochTracker::new(config, mono(0), wall(0)).expect_err("invalid");
    assert!(matches!(err, EpochError::ConfigOutOfRange { field: "ops_max", .. }));
}

// ---- triggers ----

#[test]
fn ops_trigger_fires_exactly_at_threshold() {
    let mut t = tracker(small_config());
    assert_eq!(t.record(9, 9, mono(1)), Triggers::default());
    assert_eq!(t.record(1, 0, mono(2)), Triggers { ops: true, ..Triggers::default() });
    assert!(t.pending(mono(2)).any());
}

#[test]
fn wal_bytes_trigger_fires_exactly_at_threshold() {
    let mut t = tracker(small_config());
    assert!(!t.record(1, 4095, mono(1)).any());
    assert_eq!(t.record(0, 1, mono(1)), Triggers { wal_bytes: true, ..Triggers::default() });
    // Triggers can fire together.
    assert_eq!(t.record(9, 0, mono(100)), Triggers { ops: true, wal_bytes: true, time: true });
}

#[test]
fn time_trigger_fires_exactly_at_threshold_on_the_monotonic_clock() {
    let mut t = EpochTracker::new(small_config(), mono(500), wall(0)).expect("valid");
    assert!(!t.record(1, 1, mono(599) + Duration::from_nanos(999_999)).any());
    assert_eq!(t.record(0, 0, mono(600)), Triggers { time: true, ..Triggers::default() });
    // The next epoch's timer starts at its own opening.
    t.advance(mono(650), wall(0)).expect("advance");
    assert!(!t.pending(mono(749)).time);
    assert!(t.pending(mono(750)).time);
}

#[test]
fn wall_clock_jumps_never_move_the_time_trigger() {
    let mut t = tracker(small_config());
    // The wall clock jumps back an hour, then forward a day: the time trigger follows only the
    // monotonic clock, and the timestamps are recorded as read.
    t.advance(mono(10), wall(3_600_000)).expect("advance");
    let second = t.advance(mono(20), wall(1_000)).expect("advance");
    assert!(!t.record(1, 1, mono(119)).time);
    assert!(t.record(0, 0, mono(120)).time);
    let third = t.advance(mono(130), wall(90_000_000)).expect("advance");
    assert!(!t.pending(mono(229)).time);
    let second_info = t.info(second).expect("in history");
    assert_eq!((second_info.opened_wall_ms, second_info.sealed_wall_ms), (1_000, Some(90_000_000)));
    assert_eq!(second_info.duration_ms, Some(110));
    assert_eq!(t.info(third).expect("active").opened_wall_ms, 90_000_000);
}

#[test]
fn a_stale_monotonic_reading_counts_as_no_time() {
    let mut t = EpochTracker::new(small_config(), mono(1_000), wall(0)).expect("valid");
    assert!(!t.record(1, 1, mono(0)).any());
    let first = t.current();
    t.advance(mono(0), wall(0)).expect("advance");
    assert_eq!(t.info(first).expect("sealed").duration_ms, Some(0));
}

#[test]
fn wall_clock_before_the_unix_epoch_is_zero() {
    assert_eq!(wall_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
    assert_eq!(wall_ms(wall(1_234)), 1_234);
}

// ---- state machine ----

#[test]
fn epoch_moves_active_sealing_durable_archived_with_timestamps() {
    let mut t = tracker(small_config());
    let first = t.current();
    assert_eq!(first, EpochId::FIRST);
    t.record(3, 300, mono(5));
    let second = t.advance(mono(40), wall(2_000)).expect("advance");
    let third = t.advance(mono(50), wall(3_000)).expect("advance");
    assert_eq!((second, third), (EpochId(2), EpochId(3)));
    t.mark_durable(second, wall(4_000)).expect("durable");
    t.archive(first, wall(5_000)).expect("archive");
    let info = t.info(first).expect("in history");
    assert_eq!(info.state, EpochState::Archived);
    assert_eq!((info.ops, info.wal_bytes, info.duration_ms), (3, 300, Some(40)));
    assert_eq!(
        (info.opened_wall_ms, info.sealed_wall_ms, info.durable_wall_ms, info.archived_wall_ms),
        (1_000, Some(2_000), Some(4_000), Some(5_000))
    );
    assert_eq!(t.info(second).expect("in history").state, EpochState::Durable);
    assert_eq!(t.info(third).expect("active").state, EpochState::Active);
    let states: Vec<_> = t.history().map(|e| (e.id.0, e.state)).collect();
    assert_eq!(states, [(1, EpochState::Archived), (2, EpochState::Durable), (3, EpochState::Active)]);
}

#[test]
fn invalid_transitions_are_typed_errors() {
    let mut t = tracker(small_config());
    let first = t.current();
    let transition = |epoch, from, to| EpochError::InvalidTransition { epoch, from, to };
    assert_eq!(
        t.mark_durable(first, wall(0)),
        Err(transition(first, EpochState::Active, EpochState::Durable))
    );
    assert_eq!(t.archive(first, wall(0)), Err(transition(first, EpochState::Active, EpochState::Archived)));
    let second = t.advance(mono(1), wall(0)).expect("advance");
    assert_eq!(t.archive(first, wall(0)), Err(transition(first, EpochState::Sealing, EpochState::Archived)));
    t.mark_durable(first, wall(0)).expect("durable");
    assert_eq!(
        t.mark_durable(first, wall(0)),
        Err(transition(first, EpochState::Durable, EpochState::Durable))
    );
    // The latest durable checkpoint's epoch itself is never archivable.
    let not_archivable = EpochError::NotArchivable { epoch: first, latest_durable: Some(first) };
    assert_eq!(t.archive(first, wall(0)), Err(not_archivable.clone()));
    assert!(not_archivable.to_string().contains("epoch 1"));
    t.advance(mono(2), wall(0)).expect("advance");
    t.mark_durable(second, wall(0)).expect("durable");
    t.archive(first, wall(0)).expect("archive");
    assert_eq!(t.archive(first, wall(0)), Err(transition(first, EpochState::Archived, EpochState::Archived)));
    for unknown in [EpochId(0), EpochId(99)] {
        let err = t.mark_durable(unknown, wall(0)).expect_err("unknown");
        assert_eq!(err, EpochError::UnknownEpoch { epoch: unknown, current: t.current() });
        assert!(t.archive(unknown, wall(0)).is_err());
    }
    // Nothing above changed the tracker's view.
    assert_eq!(t.latest_durable(), Some(second));
}

#[test]
fn mark_durable_covers_older_sealing_epochs() {
    let mut t = tracker(small_config());
    let first = t.current();
    let second = t.advance(mono(1), wall(0)).expect("advance");
    let third = t.advance(mono(2), wall(0)).expect("advance");
    t.advance(mono(3), wall(0)).expect("advance");
    assert_eq!(t.sealing_count(), 3);
    t.mark_durable(second, wall(7)).expect("durable");
    assert_eq!(t.info(first).expect("kept").state, EpochState::Durable);
    assert_eq!(t.info(first).expect("kept").durable_wall_ms, Some(7));
    assert_eq!(t.info(third).expect("kept").state, EpochState::Sealing);
    assert_eq!((t.sealing_count(), t.stats().checkpoints), (1, 1));
}

#[test]
fn advance_refuses_past_the_sealing_backlog_until_a_checkpoint() {
    let mut t = tracker(small_config());
    for _ in 0..3 {
        t.advance(mono(1), wall(0)).expect("advance");
    }
    let before = t.current();
    assert_eq!(t.advance(mono(2), wall(0)), Err(EpochError::SealingBacklog { sealing: 3, max: 3 }));
    assert_eq!(t.current(), before);
    t.mark_durable(EpochId(before.0 - 1), wall(0)).expect("durable");
    assert_eq!(t.advance(mono(3), wall(0)), Ok(EpochId(before.0 + 1)));
}

#[test]
fn history_stays_bounded_and_forgets_only_checkpointed_epochs() {
    let config = small_config();
    let mut t = tracker(config.clone());
    for round in 0..50 {
        let sealed = t.current();
        t.advance(mono(round), wall(0)).expect("advance");
        t.mark_durable(sealed, wall(0)).expect("durable");
        assert!(t.history().count() as u64 <= config.history_len_max);
    }
    assert!(t.history().all(|e| e.state != EpochState::Sealing));
    assert_eq!(t.history().last().map(|e| e.id), Some(t.current()));
    // A forgotten epoch is unknown, not an error of another kind.
    assert!(matches!(t.archive(EpochId::FIRST, wall(0)), Err(EpochError::UnknownEpoch { .. })));
}

// ---- restart ----

#[test]
fn resume_opens_the_epoch_after_the_last_one_seen() {
    let t = EpochTracker::resume(small_config(), 41, Some(EpochId(37)), mono(0), wall(0)).expect("resume");
    assert_eq!(t.current(), EpochId(42));
    assert_eq!(t.latest_durable(), Some(EpochId(37)));
    assert_eq!(t.history().count(), 1);
}

#[test]
fn resume_refuses_a_durable_epoch_it_never_saw_and_exhausted_numbers() {
    for durable in [EpochId(0), EpochId(11)] {
        let err = EpochTracker::resume(small_config(), 10, Some(durable), mono(0), wall(0)).expect_err("bad");
        assert_eq!(err, EpochError::InconsistentResume { last_epoch_seen: 10, latest_durable: durable });
    }
    let err = EpochTracker::resume(small_config(), u64::MAX, None, mono(0), wall(0)).expect_err("exhausted");
    assert_eq!(err, EpochError::Exhausted { last: EpochId(u64::MAX) });
    let mut t = EpochTracker::resume(small_config(), u64::MAX - 1, None, mono(0), wall(0)).expect("last one");
    assert_eq!(t.advance(mono(1), wall(0)), Err(EpochError::Exhausted { last: EpochId(u64::MAX) }));
}

/// Regression (libdictenstein): after a restart the epoch counter started over, a new epoch
/// reused the number of an old WAL segment, and that segment, holding records newer than the
/// latest checkpoint, was deleted. Here the WAL of epochs 8..=10 lies after checkpoint 7.
#[test]
fn restart_neither_reuses_a_number_nor_offers_wal_after_the_checkpoint() {
    let mut t = EpochTracker::resume(small_config(), 10, Some(EpochId(7)), mono(0), wall(0)).expect("resume");
    assert_eq!(t.current(), EpochId(11));
    assert_eq!(t.archive_horizon(EpochId(u64::MAX)), Some(EpochId(7)));
    assert!(t.archivable_before(EpochId(u64::MAX)).is_empty());
    // Once epoch 11's checkpoint is durable it covers the replayed epochs 8..=10.
    t.advance(mono(1), wall(0)).expect("advance");
    t.mark_durable(EpochId(11), wall(0)).expect("durable");
    assert_eq!(t.archive_horizon(EpochId(u64::MAX)), Some(EpochId(11)));
    // Keeping checkpoint 7 as a fallback keeps its WAL and everything after it.
    assert_eq!(t.archive_horizon(EpochId(7)), Some(EpochId(7)));
}

#[test]
fn nothing_is_archivable_before_a_durable_checkpoint() {
    let mut t = tracker(small_config());
    t.advance(mono(1), wall(0)).expect("advance");
    assert_eq!(t.archive_horizon(EpochId(u64::MAX)), None);
    assert!(t.archivable_before(EpochId(u64::MAX)).is_empty());
    let err = t.archive(EpochId::FIRST, wall(0)).expect_err("sealing");
    assert!(matches!(err, EpochError::InvalidTransition { .. }));
}

// ---- statistics ----

#[test]
fn statistics_count_and_average_sealed_epochs() {
    let mut t = tracker(small_config());
    let mut now = 0;
    for (ops, bytes, length_ms) in [(10, 1_000, 100), (20, 2_000, 200), (30, 6_000, 300)] {
        t.record(ops, bytes, mono(now + 1));
        now += length_ms;
        let sealed = t.current();
        t.advance(mono(now), wall(0)).expect("advance");
        t.mark_durable(sealed, wall(0)).expect("durable");
    }
    t.record(5, 50, mono(now));
    t.archive(EpochId(1), wall(0)).expect("archive");
    let stats = t.stats();
    assert_eq!((stats.epochs, stats.epochs_sealed, stats.checkpoints, stats.epochs_archived), (4, 3, 3, 1));
    assert_eq!((stats.operations, stats.wal_bytes), (65, 9_050));
    assert_eq!(stats.average_ops_per_epoch(), 20.0);
    assert_eq!(stats.average_wal_bytes_per_epoch(), 3_000.0);
    assert_eq!(stats.average_duration_ms(), 200.0);
    assert_eq!((stats.sealed_by_ops, stats.sealed_by_wal_bytes, stats.sealed_by_time), (3, 1, 3));
    assert_eq!(stats.sealed_forced, 0);
    let empty = tracker(small_config());
    assert_eq!(empty.stats().average_ops_per_epoch(), 0.0);
}

// ---- properties over random histories ----

#[derive(Clone, Debug)]
enum Step {
    Record { ops: u64, bytes: u64, dt_ms: u64 },
    Advance { dt_ms: u64, wall_ms: u64 },
    MarkDurable { pick: usize },
    Archive { keep_back: u64 },
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..5u64, 0..3000u64, 0..80u64).prop_map(|(ops, bytes, dt_ms)| Step::Record { ops, bytes, dt_ms }),
        (0..150u64, any::<u64>())
            .prop_map(|(dt_ms, wall_ms)| Step::Advance { dt_ms, wall_ms: wall_ms >> 20 }),
        any::<usize>().prop_map(|pick| Step::MarkDurable { pick }),
        (0..4u64).prop_map(|keep_back| Step::Archive { keep_back }),
        Just(Step::Restart),
    ]
}

/// What the caller would recover on restart: the highest number it saw, the latest checkpoint.
fn restart(t: &EpochTracker, now: Duration) -> EpochTracker {
    EpochTracker::resume(t.config().clone(), t.current().0, t.latest_durable(), now, wall(0)).expect("resume")
}

fn apply(t: &mut EpochTracker, step: &Step, now: &mut Duration, issued: &mut BTreeSet<u64>) {
    match *step {
        Step::Record { ops, bytes, dt_ms } => {
            *now += mono(dt_ms);
            t.record(ops, bytes, *now);
        }
        Step::Advance { dt_ms, wall_ms } => {
            *now += mono(dt_ms);
            if let Ok(id) = t.advance(*now, wall(wall_ms)) {
                assert!(issued.insert(id.0), "{id} issued twice");
            }
        }
        Step::MarkDurable { pick } => {
            let sealing: Vec<EpochId> =
                t.history().filter(|e| e.state == EpochState::Sealing).map(|e| e.id).collect();
            match sealing.get(pick % sealing.len().max(1)) {
                Some(&epoch) => t.mark_durable(epoch, wall(0)).expect("sealing epoch"),
                None => assert!(t.mark_durable(t.current(), wall(0)).is_err()),
            }
        }
        Step::Archive { keep_back } => {
            let fallback = EpochId(t.latest_durable().map_or(0, |d| d.0.saturating_sub(keep_back)));
            for epoch in t.archivable_before(fallback) {
                assert!(epoch < fallback);
                t.archive(epoch, wall(0)).expect("archivable");
            }
        }
        Step::Restart => {
            *t = restart(t, *now);
            assert!(issued.insert(t.current().0), "resume reused {}", t.current());
        }
    }
}

proptest! {
    #[test]
    fn restart_never_reuses_an_epoch_number(steps in prop::collection::vec(step(), 1..200)) {
        let mut t = tracker(small_config());
        let mut issued = BTreeSet::from([t.current().0]);
        let mut now = Duration::ZERO;
        for step in &steps {
            apply(&mut t, step, &mut now, &mut issued);
            // The active epoch is the newest number ever issued, across every restart.
            prop_assert_eq!(issued.last().copied(), Some(t.current().0));
        }
    }

    #[test]
    fn archivable_never_names_the_latest_durable_epoch_or_newer(
        steps in prop::collection::vec(step(), 1..200),
        keep in any::<u64>(),
    ) {
        let mut t = tracker(small_config());
        let mut issued = BTreeSet::from([t.current().0]);
        let mut now = Duration::ZERO;
        for step in &steps {
            apply(&mut t, step, &mut now, &mut issued);
            let Some(durable) = t.latest_durable() else {
                prop_assert!(t.archivable_before(EpochId(keep)).is_empty());
                continue;
            };
            let horizon = t.archive_horizon(EpochId(keep)).expect("a checkpoint is durable");
            prop_assert!(horizon <= durable && horizon <= EpochId(keep));
            for epoch in t.archivable_before(EpochId(keep)) {
                prop_assert!(epoch < horizon);
            }
            prop_assert!(t.archive(durable, wall(0)).is_err());
            prop_assert!(t.history().all(|e| e.state != EpochState::Archived || e.id < durable));
        }
    }
}
