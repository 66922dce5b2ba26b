//! Merging the documents of sweep pieces into one verified answer.
//!
//! A merge is only as trustworthy as its pieces agree: they must come from one build (crate
//! version and commit), one workload and the same options, and together hold every seed of the
//! range they span exactly once. Anything else is refused with a [`MergeError`] that names the
//! files, and the gaps or overlaps, so the operator knows which index to run again.
//!
//! Invariants of a merged document: its counters are the sums of the pieces', its failures the
//! union in seed order, its range the hull of theirs, `seeds_run` that whole range, and it
//! passes the same checks as a document read from a file.

use std::fmt;
use std::path::PathBuf;

use crate::seeds::{self, SeedSpan};
use crate::sweep_doc::{Counters, SeedRange, Shard, SweepDocument, Timing};

/// A set of pieces that does not merge.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum MergeError {
    /// No piece was given.
    NoPieces,
    /// Two pieces differ where they must agree.
    Mismatch {
        /// What differs: `code version`, `workload` or `options`.
        what: &'static str,
        /// The first piece and its value.
        first: (PathBuf, String),
        /// The piece that differs from it, and its value.
        other: (PathBuf, String),
    },
    /// The pieces do not hold every seed of the range exactly once.
    Coverage {
        /// The range the pieces span.
        range: SeedRange,
        /// Seeds held twice, with the files that hold them (the first few).
        overlaps: Vec<(u64, Vec<PathBuf>)>,
        /// Seeds not held, as spans (the first few).
        gaps: Vec<SeedSpan>,
        /// Seeds missing in all.
        missing: u64,
        /// Seeds held more than once in all.
        duplicated: u64,
    },
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeError::NoPieces => write!(f, "merge: no sweep documents given"),
            MergeError::Mismatch { what, first, other } => write!(
                f,
                "merge: {} differs in {what}: {} has {}, {} has {}; pieces must come from one build \
                 with one workload and the same options",
                other.0.display(),
                first.0.display(),
                first.1,
                other.0.display(),
                other.1
            ),
            MergeError::Coverage { range, overlaps, gaps, missing, duplicated } => {
                write!(
                    f,
                    "merge: the pieces do not cover seeds {}..{} exactly once",
                    range.start, range.end
                )?;
                if *missing > 0 {
                    let listed: Vec<String> = gaps.iter().map(SeedSpan::to_string).collect();
                    write!(f, "\n  {missing} seeds missing (gaps: {})", listed.join(", "))?;
                    if gaps.len() >= seeds::COVERAGE_REPORT_MAX {
                        write!(f, " ...")?;
                    }
                }
                if *duplicated > 0 {
                    write!(f, "\n  {duplicated} seeds held by more than one piece:")?;
                    for (seed, files) in overlaps {
                        let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                        write!(f, "\n    seed {seed} in {}", files.join(" and "))?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for MergeError {}

/// Checks that `pieces` agree and cover their range, and sums them into one document.
pub fn merge(pieces: &[(PathBuf, SweepDocument)]) -> Result<SweepDocument, MergeError> {
    let Some((first_path, first)) = pieces.first() else {
        return Err(MergeError::NoPieces);
    };
    for (path, piece) in &pieces[1..] {
        let mismatch = |what, a: String, b: String| MergeError::Mismatch {
            what,
            first: (first_path.clone(), a),
            other: (path.clone(), b),
        };
        if piece.tool != first.tool {
            return Err(mismatch("code version", first.tool.to_string(), piece.tool.to_string()));
        }
        if piece.workload != first.workload {
            return Err(mismatch("workload", first.workload.clone(), piece.workload.clone()));
        }
        if piece.options != first.options {
            return Err(mismatch("options", format!("{:?}", first.options), format!("{:?}", piece.options)));
        }
    }
    let range = SeedRange {
        start: pieces.iter().map(|(_, p)| p.seeds.start).min().unwrap_or(0),
        end: pieces.iter().map(|(_, p)| p.seeds.end).max().unwrap_or(0),
    };
    let spans: Vec<Vec<SeedSpan>> = pieces.iter().map(|(_, p)| p.seeds_run.clone()).collect();
    let coverage = seeds::check_coverage(&range.range(), &spans);
    if !coverage.is_exact() {
        return Err(MergeError::Coverage {
            range,
            overlaps: coverage
                .overlaps
                .into_iter()
                .map(|(seed, holders)| (seed, holders.into_iter().map(|i| pieces[i].0.clone()).collect()))
                .collect(),
            gaps: coverage.gaps,
            missing: coverage.missing,
            duplicated: coverage.duplicated,
        });
    }
    Ok(sum(first, pieces, range))
}

fn sum(first: &SweepDocument, pieces: &[(PathBuf, SweepDocument)], range: SeedRange) -> SweepDocument {
    let mut merged = SweepDocument {
        seeds: range,
        shard: Shard { index: 0, count: 1 },
        pieces: 0,
        seeds_run: vec![SeedSpan { start: range.start, end: range.end, step: 1 }],
        complete: true,
        counters: Counters::default(),
        seeds_with_class: Default::default(),
        violations_by_kind: Default::default(),
        failures: Vec::new(),
        determinism: Default::default(),
        timing: Default::default(),
        exit_code: 0,
        ..first.clone()
    };
    for (_, piece) in pieces {
        merged.pieces += piece.pieces;
        add_counters(&mut merged.counters, &piece.counters);
        for (class, seeds) in &piece.seeds_with_class {
            *merged.seeds_with_class.entry(class.clone()).or_default() += seeds;
        }
        for (kind, count) in &piece.violations_by_kind {
            *merged.violations_by_kind.entry(*kind).or_default() += count;
        }
        merged.failures.extend(piece.failures.iter().cloned());
        merged.determinism.checked += piece.determinism.checked;
        merged.determinism.diverged.extend(&piece.determinism.diverged);
        merged.timing.elapsed_seconds += piece.timing.elapsed_seconds;
        merged.timing.cpu_seconds += piece.timing.cpu_seconds;
    }
    let (elapsed_seconds, cpu_seconds) = (merged.timing.elapsed_seconds, merged.timing.cpu_seconds);
    merged.timing = Timing::new(&merged.counters, elapsed_seconds, cpu_seconds);
    merged.failures.sort_by_key(|failure| failure.seed);
    merged.determinism.diverged.sort_unstable();
    merged.exit_code = merged.computed_exit_code();
    merged
}

fn add_counters(total: &mut Counters, one: &Counters) {
    let Counters {
        seeds,
        ops,
        faults,
        crashes,
        process_crashes,
        recoveries_checked,
        env_calls,
        eio,
        short_io,
        sync_failures,
        enospc,
        bit_rot,
        misdirected_writes,
        bad_sectors,
        bad_sector_reads,
        targeted_media,
        clock_jumps,
        slow_io,
        torn_writes,
        lost_writes,
        lost_dir_ops,
        crash_image_crashes,
        crash_images_checked,
        undetectable_damage,
        data_loss_reported,
        ops_beside_checkpoint,
        restarts_mid_checkpoint,
        simulated_ns,
    } = one;
    // Destructured so that a counter added to the type cannot be forgotten here.
    total.seeds += seeds;
    total.ops += ops;
    total.faults += faults;
    total.crashes += crashes;
    total.process_crashes += process_crashes;
    total.recoveries_checked += recoveries_checked;
    total.env_calls += env_calls;
    total.eio += eio;
    total.short_io += short_io;
    total.sync_failures += sync_failures;
    total.enospc += enospc;
    total.bit_rot += bit_rot;
    total.misdirected_writes += misdirected_writes;
    total.bad_sectors += bad_sectors;
    total.bad_sector_reads += bad_sector_reads;
    total.targeted_media += targeted_media;
    total.clock_jumps += clock_jumps;
    total.slow_io += slow_io;
    total.torn_writes += torn_writes;
    total.lost_writes += lost_writes;
    total.lost_dir_ops += lost_dir_ops;
    total.crash_image_crashes += crash_image_crashes;
    total.crash_images_checked += crash_images_checked;
    total.undetectable_damage += undetectable_damage;
    total.data_loss_reported += data_loss_reported;
    total.ops_beside_checkpoint += ops_beside_checkpoint;
    total.restarts_mid_checkpoint += restarts_mid_checkpoint;
    total.simulated_ns = total.simulated_ns.saturating_add(*simulated_ns);
}
