//! `SimEnv` pending writes at a crash: lost, kept once synced, or torn sector by sector (new,
//! old, zero or garbage bytes; with and without powersafe overwrite; 512- and 4096-byte
//! sectors).
//!
//! Where an outcome is random, a test loops over many seeds, checks the invariant for every
//! one, and also checks that each interesting outcome occurred, so it cannot pass vacuously.
//! Together the `env_sim_*.rs` files pin the exact effect of each `SimEnv` fault on bytes,
//! directory entries, handles and clocks, so that a change to the fault model fails there
//! instead of silently changing which crash images the checker sees.

mod env_sim_support;

use stormhold::env::EnvFile;
use stormhold::env::sim::{FaultOptions, TearFillWeights};

use env_sim_support::*;

// ---------------------------------------------------------------------------------------------
// Crash and pending writes.

#[test]
fn crash_drops_unsynced_write_when_every_write_is_lost() {
    for seed in 0..50 {
        let env = sim(seed, with_fate(fate(0, 1, 0)));
        let file = durable_file(&env, "/f", &old_bytes(1024));
        file.write_all_at(&new_bytes(600), 100).expect("overwrite");
        file.append(&new_bytes(700)).expect("append");
        crash_and_restart(&env);
        assert_eq!(read_file(&env, "/f").expect("read"), old_bytes(1024), "seed {seed}");
        assert_eq!(env.stats().writes_lost, 2, "seed {seed}");
    }
}

#[test]
fn crash_keeps_synced_write_under_any_fate() {
    let fates = [fate(1, 0, 0), fate(0, 1, 0), fate(0, 0, 1), fate(1, 1, 1)];
    for write_fate in fates {
        for seed in 0..50 {
            let env = sim(seed, with_fate(write_fate));
            let file = durable_file(&env, "/f", &old_bytes(1024));
            file.write_all_at(&new_bytes(1500), 300).expect("write");
            file.set_len(1700).expect("set_len");
            file.sync_data().expect("sync_data");
            let mut expected = old_bytes(1024);
            expected.resize(1800, 0);
            expected[300..1800].copy_from_slice(&new_bytes(1500));
            expected.truncate(1700);
            crash_and_restart(&env);
            assert_eq!(read_file(&env, "/f").expect("read"), expected, "{write_fate:?} seed {seed}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Torn writes.

fn tear_options(
    tear_fill: TearFillWeights,
    sector_size_bytes: u32,
    powersafe_overwrite: bool,
) -> FaultOptions {
    FaultOptions {
        sector_size_bytes,
        write_fate: fate(0, 0, 1),
        tear_fill,
        powersafe_overwrite,
        ..FaultOptions::default()
    }
}

/// Writes `new` at `offset` over a durable file of `old`, crashes with that write torn, and
/// returns the file as the next process reads it.
fn torn_write(seed: u64, options: FaultOptions, old: &[u8], offset: usize, new: &[u8]) -> Vec<u8> {
    let env = sim(seed, options);
    let file = durable_file(&env, "/f", old);
    assert_eq!(file.write_at(new, offset as u64).expect("write"), new.len());
    crash_and_restart(&env);
    assert_eq!(env.stats().writes_torn, 1);
    read_file(&env, "/f").expect("read")
}

/// Checks a torn write under powersafe overwrite: bytes outside the written range are `old`,
/// and in each sector the written part is entirely new or satisfies `is_fill(got, old_part)`.
/// Returns, per touched sector, whether its new bytes landed.
fn landed_sectors(
    after: &[u8],
    old: &[u8],
    (offset, new): (usize, &[u8]),
    sector: usize,
    is_fill: impl Fn(&[u8], &[u8]) -> bool,
) -> Vec<bool> {
    let end = offset + new.len();
    assert_eq!(after.len(), old.len(), "the write stayed inside the file");
    assert_eq!(after[..offset], old[..offset], "bytes before the write changed");
    assert_eq!(after[end..], old[end..], "bytes after the write changed");
    let mut landed = Vec::new();
    let mut start = offset - offset % sector;
    while start < end {
        let part = start.max(offset)..(start + sector).min(end);
        let got = &after[part.clone()];
        if got == &new[part.start - offset..part.end - offset] {
            landed.push(true);
        } else {
            assert!(
                is_fill(got, &old[part.clone()]),
                "sector at {start} holds neither new bytes nor the fill"
            );
            landed.push(false);
        }
        start += sector;
    }
    landed
}

/// Both outcomes occurred, and at least once a later sector landed without an earlier one
/// (a tear keeps any subset of sectors, not only a prefix).
fn assert_tears_vary(outcomes: &[Vec<bool>]) {
    let all = || outcomes.iter().flatten();
    assert!(all().any(|&landed| landed), "no sector ever landed");
    assert!(all().any(|&landed| !landed), "every sector always landed");
    let non_prefix = outcomes.iter().any(|sectors| {
        sectors.iter().position(|&landed| !landed).is_some_and(|hole| sectors[hole..].contains(&true))
    });
    assert!(non_prefix, "the landed sectors were always a prefix");
}

/// A write that starts and ends inside sectors and covers four whole ones: sectors 0..=5 of
/// a 4 KiB file are touched, 6 and 7 are not.
const TORN_OFFSET: usize = 300;
const TORN_LEN: usize = 4 * SECTOR + 212 + 400;
const TORN_FILE_LEN: usize = 8 * SECTOR;

fn torn_outcomes(options: &FaultOptions, is_fill: impl Fn(&[u8], &[u8]) -> bool) -> Vec<Vec<bool>> {
    let (old, new) = (old_bytes(TORN_FILE_LEN), new_bytes(TORN_LEN));
    SEEDS
        .map(|seed| {
            let after = torn_write(seed, options.clone(), &old, TORN_OFFSET, &new);
            let landed = landed_sectors(&after, &old, (TORN_OFFSET, &new), SECTOR, &is_fill);
            assert_eq!(landed.len(), 6, "seed {seed}");
            landed
        })
        .collect()
}

#[test]
fn torn_write_sectors_hold_new_or_old_bytes() {
    let outcomes = torn_outcomes(&tear_options(fill(1, 0, 0), 512, true), |got, old| got == old);
    assert_tears_vary(&outcomes);
}

#[test]
fn torn_write_sectors_hold_new_or_zero_bytes() {
    let outcomes =
        torn_outcomes(&tear_options(fill(0, 1, 0), 512, true), |got, _| got.iter().all(|&b| b == 0));
    assert_tears_vary(&outcomes);
}

#[test]
fn torn_write_sectors_hold_new_or_garbage_bytes() {
    // Garbage is random: for parts of 212 bytes and more it equals neither the old bytes nor
    // zeros except with negligible odds.
    let is_garbage = |got: &[u8], old: &[u8]| got != old && got.iter().any(|&b| b != 0);
    let outcomes = torn_outcomes(&tear_options(fill(0, 0, 1), 512, true), is_garbage);
    assert_tears_vary(&outcomes);
}

#[test]
fn torn_write_without_powersafe_overwrite_zeroes_whole_touched_sectors_only() {
    let options = tear_options(fill(0, 1, 0), 512, false);
    let (old, new) = (old_bytes(TORN_FILE_LEN), new_bytes(TORN_LEN));
    let (end, touched_end) = (TORN_OFFSET + TORN_LEN, 6 * SECTOR);
    let (mut landed, mut zeroed) = (0, 0);
    for seed in SEEDS {
        let after = torn_write(seed, options.clone(), &old, TORN_OFFSET, &new);
        assert_eq!(after.len(), old.len(), "seed {seed}");
        assert_eq!(after[touched_end..], old[touched_end..], "untouched sectors changed, seed {seed}");
        for start in (0..touched_end).step_by(SECTOR) {
            let sector = start..start + SECTOR;
            let written = sector.start.max(TORN_OFFSET)..sector.end.min(end);
            let mut expected_new = old[sector.clone()].to_vec();
            expected_new[written.start - start..written.end - start]
                .copy_from_slice(&new[written.start - TORN_OFFSET..written.end - TORN_OFFSET]);
            if after[sector.clone()] == expected_new[..] {
                landed += 1;
            } else {
                assert!(
                    after[sector].iter().all(|&b| b == 0),
                    "sector at {start} neither landed nor zero, seed {seed}"
                );
                zeroed += 1;
            }
        }
    }
    // Sectors 0 and 5 have bytes outside the written range: a zeroed one lost them too.
    assert!(landed > 0 && zeroed > 0, "landed {landed}, zeroed {zeroed}");
}

#[test]
fn torn_write_tears_whole_4096_byte_sectors() {
    let sector = 4096;
    let options = tear_options(fill(1, 0, 0), 4096, true);
    let (old, new) = (old_bytes(3 * sector), new_bytes(sector + 3000));
    let offset = 1000;
    let outcomes: Vec<Vec<bool>> = SEEDS
        .map(|seed| {
            let after = torn_write(seed, options.clone(), &old, offset, &new);
            // A 512-byte tear would mix new and old inside a 4096-byte sector and fail here.
            landed_sectors(&after, &old, (offset, &new), sector, |got, old| got == old)
        })
        .collect();
    let all = || outcomes.iter().flatten();
    assert!(all().any(|&landed| landed) && all().any(|&landed| !landed));
    assert!(outcomes.iter().all(|sectors| sectors.len() == 2));
}
