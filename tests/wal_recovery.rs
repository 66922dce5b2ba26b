//! Property tests of the recovery scan (DESIGN.md section 3, rule 2) on logs written through
//! the real `Wal` on a fault-free `SimEnv` and then damaged directly through the Env API:
//! a truncated last segment gives exactly the longest valid prefix; a damaged record that no
//! later record vouches for is a torn tail; one that a later record vouches for is corruption
//! naming the file and the offset of the damaged record.
//!
//! Where each record lies is found by decoding the files (`wal_support::locate`), not by the
//! scan under test.

mod wal_support;

use proptest::prelude::*;
use proptest::sample::Index;
use stormhold::wal::format::{self, SEGMENT_HEADER_BYTES};
use stormhold::wal::{RecoveryMode, WalError};
use wal_support::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn wal_recovery_truncated_last_segment_keeps_exactly_the_longest_valid_prefix(
        steps in steps(),
        seed in any::<u64>(),
        cut in any::<Index>(),
        anywhere in prop::bool::weighted(0.2),
    ) {
        let env = quiet_env(seed);
        build(&env, &steps);
        let placed = locate(&env);
        let last = segment_paths(&env).pop().expect("a segment");
        let file_len = read_all(&env, &last).len() as u64;
        // Mostly cut where the records are; sometimes anywhere in the preallocated file.
        let data_end = placed.iter().filter(|p| p.path == last).map(Placed::end).max().unwrap_or(0);
        let cut = cut.index(if anywhere { file_len } else { data_end.min(file_len) } as usize + 1) as u64;
        truncate(&env, &last, cut);
        let expected: Vec<Vec<u8>> = placed
            .iter()
            .filter(|p| p.path != last || p.end() <= cut)
            .map(|p| p.record.payload.clone())
            .collect();

        let (records, report) = recover(&env, RecoveryMode::TolerateTornTail).expect("a torn tail is no error");
        prop_assert_eq!(payloads(&records), expected.clone(), "cut at {} of {}", cut, last.display());
        prop_assert_eq!(report.last_lsn, expected.len() as u64);
        prop_assert_eq!(report.next_lsn, expected.len() as u64 + 1);
        // No end: the only segment lost its header and was replaced by a fresh segment 1.
        let (segment_id, end) = report.end.map_or((1, SEGMENT_HEADER_BYTES), |end| (end.segment_id, end.offset));
        assert_durable_zeros_from(&env, &dir().join(format::segment_file_name(segment_id)), end);
        append_after_recovery_continues_densely(&env, &expected, b"after the cut");
    }

    #[test]
    fn wal_recovery_unvouched_damaged_record_is_a_torn_tail_or_an_error_under_absolute_consistency(
        steps in steps(),
        seed in any::<u64>(),
        which in any::<Index>(),
        bit in any::<Index>(),
    ) {
        let env = quiet_env(seed);
        build(&env, &steps);
        let placed = locate(&env);
        let candidates: Vec<usize> = (0..placed.len()).filter(|&i| !vouched(&placed, i)).collect();
        // The last record always qualifies: nothing comes after it.
        let damaged = &placed[*which.get(&candidates)];
        flip_bit(&env, &damaged.path, damaged.offset * 8 + bit.index(damaged.len as usize * 8) as u64);
        let lsn = damaged.record.lsn;
        let expected: Vec<Vec<u8>> =
            placed[..lsn as usize - 1].iter().map(|p| p.record.payload.clone()).collect();

        match recover(&env.fork(), RecoveryMode::AbsoluteConsistency) {
            Err(WalError::Corruption { path, lsn: at, .. }) => {
                prop_assert_eq!(path, damaged.path.clone());
                prop_assert_eq!(at, lsn);
            }
            other => prop_assert!(false, "absolute consistency must refuse a torn tail: {:?}", other),
        }
        let point_in_time = env.fork();
        let (records, report) = recover(&point_in_time, RecoveryMode::PointInTime).expect("point in time");
        prop_assert_eq!(payloads(&records), expected.clone());
        prop_assert_eq!(report.dropped.map(|d| d.from_lsn), Some(lsn), "point in time reports the cut");

        let (records, report) = recover(&env, RecoveryMode::TolerateTornTail).expect("a torn tail is no error");
        prop_assert_eq!(payloads(&records), expected.clone(), "lsn {} and after dropped", lsn);
        prop_assert!(report.torn_bytes > 0, "the damaged bytes are reported as a torn tail");
        prop_assert_eq!(report.dropped, None);
        append_after_recovery_continues_densely(&env, &expected, b"after the torn tail");
    }

    #[test]
    fn wal_recovery_vouched_damaged_record_is_corruption_naming_its_file_and_offset(
        steps in steps(),
        seed in any::<u64>(),
        which in any::<Index>(),
        bit in any::<Index>(),
    ) {
        let env = quiet_env(seed);
        build(&env, &steps);
        let placed = locate(&env);
        let candidates: Vec<usize> = (0..placed.len()).filter(|&i| vouched(&placed, i)).collect();
        prop_assume!(!candidates.is_empty(), "no record is vouched for");
        let damaged = &placed[*which.get(&candidates)];
        flip_bit(&env, &damaged.path, damaged.offset * 8 + bit.index(damaged.len as usize * 8) as u64);
        let lsn = damaged.record.lsn;

        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::AbsoluteConsistency] {
            match recover(&env.fork(), mode) {
                Err(WalError::Corruption { path, offset, lsn: at, .. }) => {
                    prop_assert_eq!(path, damaged.path.clone(), "{:?}", mode);
                    prop_assert_eq!(offset, damaged.offset, "{:?}: the damaged record's offset", mode);
                    prop_assert_eq!(at, lsn, "{:?}", mode);
                }
                other => prop_assert!(false, "{:?}: vouched-for damage must be corruption: {:?}", mode, other),
            }
        }
        let (records, report) = recover(&env, RecoveryMode::PointInTime).expect("point in time drops instead");
        let expected: Vec<Vec<u8>> =
            placed[..lsn as usize - 1].iter().map(|p| p.record.payload.clone()).collect();
        prop_assert_eq!(payloads(&records), expected.clone());
        let dropped = report.dropped.expect("point in time reports what it dropped");
        prop_assert_eq!(dropped.from_lsn, lsn);
        prop_assert_eq!(dropped.path, damaged.path.clone());
        prop_assert_eq!(dropped.offset, damaged.offset);
        append_after_recovery_continues_densely(&env, &expected, b"after the point-in-time cut");
    }
}
