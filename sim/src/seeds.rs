//! Sets of seeds written as strided spans, and the coverage check of merged sweep pieces.
//!
//! A [`SeedSpan`] `{start, end, step}` stands for the seeds `start, start + step, ...` below
//! `end`. A sweep writes the seeds it ran as spans (a whole shard `i/N` of `A..B` is one span of
//! step `N`); `merge` walks the spans of all pieces in seed order at once, so its memory is one
//! cursor per span whatever the number of seeds.
//!
//! Invariants: spans out of [`compress`] are sorted, disjoint, non-empty, with `end` one past
//! their last seed, and expand to exactly the seeds given; [`check_coverage`] reports a seed
//! that two spans hold as an overlap and every seed of the range no span holds as a gap.

use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::ops::Range;

/// The seeds `start, start + step, ...` below `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSpan {
    /// The first seed.
    pub start: u64,
    /// One past the last seed (exclusive bound).
    pub end: u64,
    /// The distance between two seeds (at least 1).
    pub step: u64,
}

impl SeedSpan {
    /// How many seeds the span holds.
    pub fn len(&self) -> u64 {
        if self.end <= self.start { 0 } else { (self.end - self.start - 1) / self.step.max(1) + 1 }
    }

    /// Whether the span holds no seed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last seed, if any.
    pub fn last(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.start + (self.len() - 1) * self.step.max(1))
    }
}

impl fmt::Display for SeedSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.len(), self.step) {
            (1, _) => write!(f, "{}", self.start),
            (_, 1) => write!(f, "{}..{}", self.start, self.end),
            (n, step) => write!(f, "{}..{} step {step} ({n} seeds)", self.start, self.end),
        }
    }
}

/// Writes sorted, distinct seeds as few spans: each span extends while the next seed is the
/// same distance on as the one before.
pub fn compress(seeds: &[u64]) -> Vec<SeedSpan> {
    debug_assert!(seeds.windows(2).all(|pair| pair[0] < pair[1]), "sorted and distinct");
    let mut spans: Vec<SeedSpan> = Vec::new();
    for &seed in seeds {
        if let Some(span) = spans.last_mut() {
            let last = span.end - 1;
            if span.start == last {
                span.step = seed - last;
                span.end = seed + 1;
                continue;
            }
            if seed - last == span.step {
                span.end = seed + 1;
                continue;
            }
        }
        spans.push(SeedSpan { start: seed, end: seed + 1, step: 1 });
    }
    spans
}

/// The seeds `shard.0 (mod shard.1)` of `range`, as spans.
pub fn shard_spans(range: &Range<u64>, shard: (u64, u64)) -> Vec<SeedSpan> {
    let (index, count) = (shard.0, shard.1.max(1));
    // In u128: `index + count` may not fit a u64 for a crafted shard count.
    let offset = ((u128::from(index) + u128::from(count) - u128::from(range.start % count))
        % u128::from(count)) as u64;
    let Some(first) = range.start.checked_add(offset).filter(|first| *first < range.end) else {
        return Vec::new();
    };
    let span = SeedSpan { start: first, end: range.end, step: count };
    let last = span.last().unwrap_or(first);
    vec![SeedSpan { end: last + 1, ..span }]
}

/// What walking the pieces' spans over a range found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Seeds held by more than one piece, with the pieces (by index) that hold them; at most
    /// [`COVERAGE_REPORT_MAX`] listed.
    pub overlaps: Vec<(u64, Vec<usize>)>,
    /// Seeds of the range that no piece holds, as spans; at most [`COVERAGE_REPORT_MAX`] listed.
    pub gaps: Vec<SeedSpan>,
    /// How many seeds are missing in all (listed or not).
    pub missing: u64,
    /// How many seeds are held twice or more in all (listed or not).
    pub duplicated: u64,
    /// Seeds held outside the range.
    pub outside: u64,
}

/// Bound on the overlaps and gaps a coverage check lists.
pub const COVERAGE_REPORT_MAX: usize = 32;

impl Coverage {
    /// Whether every seed of the range is held exactly once and none outside it.
    pub fn is_exact(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.outside == 0
    }

    /// Records the missing seeds `from..to`: one by one until the last gap span is a run of
    /// step 1, which then takes the rest at once.
    fn gap(&mut self, from: u64, to: u64) {
        self.missing += to.saturating_sub(from);
        let mut seed = from;
        while seed < to {
            if !extend_gap(&mut self.gaps, seed) {
                return;
            }
            seed += 1;
            if let Some(span) = self.gaps.last_mut()
                && span.step == 1
                && span.len() >= 2
            {
                span.end = to;
                return;
            }
        }
    }
}

/// Adds `seed` to the last gap span or a new one; false once the list is full.
fn extend_gap(gaps: &mut Vec<SeedSpan>, seed: u64) -> bool {
    if let Some(span) = gaps.last_mut() {
        let last = span.end - 1;
        if span.start == last || seed - last == span.step {
            span.step = seed - last;
            span.end = seed + 1;
            return true;
        }
    }
    if gaps.len() >= COVERAGE_REPORT_MAX {
        return false;
    }
    gaps.push(SeedSpan { start: seed, end: seed + 1, step: 1 });
    true
}

/// Checks that the spans of `pieces` hold every seed of `range` exactly once.
///
/// Walks all spans in seed order with a heap of cursors: time is linear in the seeds held
/// (times the log of the span count), memory is one cursor per span. A run of missing seeds
/// between two held ones costs one step per missing seed only until the gap list is full.
pub fn check_coverage(range: &Range<u64>, pieces: &[Vec<SeedSpan>]) -> Coverage {
    let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::new();
    for (piece, spans) in pieces.iter().enumerate() {
        for (index, span) in spans.iter().enumerate() {
            if !span.is_empty() {
                heap.push(Reverse((span.start, piece, index)));
            }
        }
    }
    let mut coverage = Coverage::default();
    let mut expected = range.start;
    let mut previous: Option<(u64, usize)> = None;
    while let Some(Reverse((seed, piece, index))) = heap.pop() {
        let span = pieces[piece][index];
        if let Some(next) = seed.checked_add(span.step.max(1)).filter(|next| *next < span.end) {
            heap.push(Reverse((next, piece, index)));
        }
        if !range.contains(&seed) {
            coverage.outside += 1;
            continue;
        }
        match previous {
            Some((seen, first_piece)) if seen == seed => {
                coverage.duplicated += 1;
                record_overlap(&mut coverage.overlaps, seed, first_piece, piece);
            }
            _ => {
                coverage.gap(expected, seed);
                expected = seed + 1;
                previous = Some((seed, piece));
            }
        }
    }
    coverage.gap(expected, range.end);
    coverage
}

fn record_overlap(overlaps: &mut Vec<(u64, Vec<usize>)>, seed: u64, first: usize, piece: usize) {
    if let Some((seen, holders)) = overlaps.last_mut()
        && *seen == seed
    {
        holders.push(piece);
    } else if overlaps.len() < COVERAGE_REPORT_MAX {
        overlaps.push((seed, vec![first, piece]));
    }
}

/// Every seed of `spans`, in order (for tests and small sets).
pub fn expand(spans: &[SeedSpan]) -> Vec<u64> {
    spans.iter().flat_map(|span| (span.start..span.end).step_by(span.step.max(1) as usize)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_writes_a_whole_shard_as_one_span_and_expands_back() {
        let shard: Vec<u64> = (0..40).filter(|s| s % 4 == 3).collect();
        let spans = compress(&shard);
        assert_eq!(spans, vec![SeedSpan { start: 3, end: 40, step: 4 }]);
        assert_eq!(expand(&spans), shard);
        assert_eq!(spans, shard_spans(&(0..40), (3, 4)));
        let ragged = [1, 2, 3, 10, 20, 30, 31];
        assert_eq!(expand(&compress(&ragged)), ragged);
        assert_eq!(compress(&ragged).len(), 3, "{:?}", compress(&ragged));
        assert_eq!(compress(&[]), vec![]);
    }

    #[test]
    fn shard_spans_cover_the_range_exactly_once_for_any_start() {
        for start in [0u64, 1, 5, 17] {
            for count in 1..6u64 {
                let range = start..start + 23;
                let pieces: Vec<Vec<SeedSpan>> =
                    (0..count).map(|i| shard_spans(&range, (i, count))).collect();
                let coverage = check_coverage(&range, &pieces);
                assert!(coverage.is_exact(), "{range:?} in {count}: {coverage:?}");
                for (i, spans) in pieces.iter().enumerate() {
                    assert!(expand(spans).iter().all(|s| s % count == i as u64 && range.contains(s)));
                }
            }
        }
        assert_eq!(shard_spans(&(0..2), (3, 4)), vec![], "a shard with no seed in a short range");
        let huge = shard_spans(&(5..u64::MAX), (u64::MAX - 2, u64::MAX - 1));
        assert_eq!(huge, vec![SeedSpan { start: u64::MAX - 2, end: u64::MAX - 1, step: u64::MAX - 1 }]);
    }

    #[test]
    fn coverage_lists_a_missing_shard_as_one_strided_gap() {
        let range = 0..100;
        let pieces: Vec<Vec<SeedSpan>> = [0, 1, 3].iter().map(|&i| shard_spans(&range, (i, 4))).collect();
        let coverage = check_coverage(&range, &pieces);
        assert_eq!(coverage.missing, 25);
        assert_eq!(coverage.gaps, vec![SeedSpan { start: 2, end: 99, step: 4 }]);
        assert_eq!(coverage.gaps[0].to_string(), "2..99 step 4 (25 seeds)");
        assert!(coverage.overlaps.is_empty());
    }

    #[test]
    fn coverage_reports_overlaps_outside_seeds_and_a_tail_gap() {
        let range = 0..10;
        let whole = vec![SeedSpan { start: 0, end: 6, step: 1 }];
        let again = vec![SeedSpan { start: 4, end: 5, step: 1 }, SeedSpan { start: 12, end: 13, step: 1 }];
        let coverage = check_coverage(&range, &[whole, again]);
        assert_eq!(coverage.overlaps, vec![(4, vec![0, 1])]);
        assert_eq!((coverage.duplicated, coverage.outside, coverage.missing), (1, 1, 4));
        assert_eq!(coverage.gaps, vec![SeedSpan { start: 6, end: 10, step: 1 }]);
        assert!(!coverage.is_exact());
    }

    #[test]
    fn coverage_of_nothing_is_one_gap_and_the_list_stays_bounded() {
        let coverage = check_coverage(&(5..9), &[]);
        assert_eq!(coverage.gaps, vec![SeedSpan { start: 5, end: 9, step: 1 }]);
        let scattered: Vec<SeedSpan> =
            (0..200).map(|i| SeedSpan { start: i * i, end: i * i + 1, step: 1 }).collect();
        let coverage = check_coverage(&(0..40_000), &[scattered]);
        assert!(coverage.gaps.len() <= COVERAGE_REPORT_MAX);
        assert_eq!(coverage.missing, 40_000 - 200);
        let everything = check_coverage(&(0..1 << 50), &[]);
        assert_eq!((everything.missing, everything.gaps.len()), (1 << 50, 1), "a long gap costs one step");
    }
}
