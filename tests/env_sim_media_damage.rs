//! `SimEnv` media damage: bad sectors, bit rot and misdirected writes.
//!
//! Where an outcome is random, a test loops over many seeds, checks the invariant for every
//! one, and also checks that each interesting outcome occurred, so it cannot pass vacuously.
//! Together the `env_sim_*.rs` files pin the exact effect of each `SimEnv` fault on bytes,
//! directory entries, handles and clocks, so that a change to the fault model fails there
//! instead of silently changing which crash images the checker sees.

mod env_sim_support;

use std::ops::Range;

use stormhold::env::sim::{CallKind, DamageKind, Fault, FaultOptions, SimFile};
use stormhold::env::{Env, EnvFile, OpenOptions};

use env_sim_support::*;

// ---------------------------------------------------------------------------------------------
// Media damage.

#[test]
fn bad_sector_fails_overlapping_reads_forever() {
    let env = sim(0, FaultOptions::default());
    let file = durable_file(&env, "/f", &old_bytes(8 * SECTOR));
    env.arm(CallKind::Len, Fault::BadSector { pick: 0x9e37_79b9_7f4a_7c15 });
    file.len().expect("len");
    assert_eq!(env.stats().bad_sectors, 1);
    let damage = env.damage_at(path("/f")).expect("damage");
    let [(DamageKind::BadSector, bad)] = damage.as_slice() else { panic!("damage {damage:?}") };
    let bad = bad.start as usize..bad.end as usize;
    assert!(bad.start % SECTOR == 0 && bad.len() == SECTOR && bad.end <= 8 * SECTOR, "{bad:?}");
    let check = |file: &SimFile| {
        let read = |range: Range<usize>| {
            let mut buf = vec![0; range.len()];
            file.read_exact_at(&mut buf, range.start as u64).map(|()| buf)
        };
        for _ in 0..3 {
            assert_eio(read(bad.clone()));
            assert_eio(read(bad.end - 1..bad.end));
            assert_eio(read(bad.start.saturating_sub(10)..bad.start + 1));
        }
        for start in (0..8 * SECTOR).step_by(SECTOR).filter(|&start| start != bad.start) {
            assert_eq!(
                read(start..start + SECTOR).expect("a good sector reads"),
                old_bytes(8 * SECTOR)[start..start + SECTOR]
            );
        }
    };
    check(&file);
    drop(file);
    crash_and_restart(&env);
    check(&env.open(path("/f"), OpenOptions::read_only()).expect("reopen"));
    assert_eq!(env.damage_at(path("/f")).expect("damage"), damage, "the sector stays bad");
    assert_eq!(env.stats().bad_sector_reads, 6 * 3);
}

#[test]
fn bit_rot_flips_exactly_one_durable_bit() {
    let env = sim(0, FaultOptions::default());
    let file = durable_file(&env, "/f", &old_bytes(2048));
    let mut before = old_bytes(2048);
    let mut rotted = std::collections::BTreeSet::new();
    for round in 0..100u64 {
        let pick = round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        env.arm(CallKind::Len, Fault::BitRot { pick });
        file.len().expect("len");
        let after = env.durable_contents(path("/f")).expect("path").expect("durable");
        let flipped: Vec<usize> = (0..before.len()).filter(|&i| before[i] != after[i]).collect();
        let [byte] = flipped.as_slice() else { panic!("pick {pick:#x} changed bytes {flipped:?}") };
        assert_eq!((before[*byte] ^ after[*byte]).count_ones(), 1, "pick {pick:#x}");
        let damage = env.damage_at(path("/f")).expect("damage");
        let range = *byte as u64..*byte as u64 + 1;
        assert_eq!(damage.last(), Some(&(DamageKind::BitRot, range)), "pick {pick:#x}");
        rotted.insert(*byte);
        before = after;
    }
    assert!(rotted.len() > 50, "picks spread over the file: {} bytes", rotted.len());
    assert_eq!(env.stats().bit_rot, 100);
    drop(file);
    crash_and_restart(&env);
    assert_eq!(read_file(&env, "/f").expect("read"), before, "the next process reads the rotten bytes");
}

#[test]
fn misdirected_write_lands_one_sector_away_after_crash() {
    let env = sim(0, FaultOptions::default());
    let old = old_bytes(4 * SECTOR);
    let file = durable_file(&env, "/f", &old);
    let new = new_bytes(SECTOR);
    env.arm(CallKind::Write, Fault::Misdirect { shift_sectors: 1 });
    file.write_all_at(&new, 0).expect("write");
    let mut live = old.clone();
    live[..SECTOR].copy_from_slice(&new);
    assert_eq!(read_via(&file), live, "the cache shows the data where it was written");
    file.sync_data().expect("sync");
    let mut landed = old.clone();
    landed[SECTOR..2 * SECTOR].copy_from_slice(&new);
    assert_eq!(env.durable_contents(path("/f")).expect("path"), Some(landed.clone()));
    drop(file);
    crash_and_restart(&env);
    assert_eq!(read_file(&env, "/f").expect("read"), landed, "the next process sees where it landed");
    let damage = env.damage_at(path("/f")).expect("damage");
    let expected = [(DamageKind::Misdirect, 0..512), (DamageKind::Misdirect, 512..1024)];
    assert_eq!(damage, expected);
    assert_eq!(env.stats().misdirected_writes, 1);
}
