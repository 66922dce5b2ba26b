//! `stormhold verify DIR`: every checksum of every file, through the kernel's own decoders:
//! `KERNEL`, each shard's checkpoint metadata, `HIGH_WATER` and chains (the checkpoint
//! store's open), each checkpoint's data files (loading it), and every WAL segment header and
//! record (a WAL scan). Damage is printed with its file and offset; the exit code is 2.
//! A torn WAL tail (a write a crash interrupted, never acknowledged) is noted, not damage.

use std::path::Path;

use stormhold::wal::{RecoveryMode, StoreIdentity, WalError};

use crate::files::{checkpoints, kernel_meta, scan_wal, shard_identity, shard_paths};
use crate::{EXIT_DAMAGE, EXIT_OK, Fail};

pub fn run(dir: &Path) -> Result<u8, Fail> {
    let meta = match kernel_meta(dir) {
        Ok(meta) => meta,
        Err(fail) if fail.code == EXIT_DAMAGE => {
            println!("DAMAGE {}", fail.message);
            return Ok(EXIT_DAMAGE);
        }
        Err(fail) => return Err(fail),
    };
    println!("{}: KERNEL ok ({} shards)", dir.join("KERNEL").display(), meta.shards);
    let mut damage = Vec::new();
    for id in 0..meta.shards {
        eprintln!("verify: shard {}/{}", id + 1, meta.shards);
        let (ckpt_dir, wal_dir) = shard_paths(dir, id);
        let newest = verify_checkpoints(id, &ckpt_dir, shard_identity(&meta, id), &mut damage);
        verify_wal(id, &wal_dir, shard_identity(&meta, id), newest, &mut damage);
    }
    if damage.is_empty() {
        println!("clean: every checksum of every file matches");
        return Ok(EXIT_OK);
    }
    for line in &damage {
        println!("DAMAGE {line}");
    }
    println!("{} damaged places", damage.len());
    Ok(EXIT_DAMAGE)
}

/// Checks a shard's checkpoints; returns the newest that loads, as (id, lsn).
fn verify_checkpoints(
    shard: u32,
    ckpt_dir: &Path,
    identity: StoreIdentity,
    damage: &mut Vec<String>,
) -> Option<(u64, u64)> {
    let (store, report) = match checkpoints(ckpt_dir, identity) {
        Ok(opened) => opened,
        Err(error) => {
            damage.push(format!("shard {shard}: {error}"));
            return None;
        }
    };
    for bad in report.damaged.iter().chain(&report.broken_chains) {
        damage.push(format!("shard {shard}: checkpoint {}: {}", bad.id, bad.reason));
    }
    if let Some(reason) = &report.high_water_damaged {
        damage.push(format!("shard {shard}: {reason}"));
    }
    let list = store.list();
    let (mut ok, mut newest) = (0, None);
    for meta in &list {
        match store.load(meta.id) {
            Ok(_) => {
                ok += 1;
                newest = newest.max(Some((meta.id, meta.lsn)));
            }
            Err(error) => damage.push(format!("shard {shard}: checkpoint {}: {error}", meta.id)),
        }
    }
    println!("shard {shard}: {ok} of {} checkpoints load (META, data files, chain)", list.len());
    newest
}

/// Checks a shard's WAL, and that it reaches the lsn of the newest checkpoint that loads.
fn verify_wal(
    shard: u32,
    wal_dir: &Path,
    identity: StoreIdentity,
    newest: Option<(u64, u64)>,
    damage: &mut Vec<String>,
) {
    match scan_wal(wal_dir, identity, RecoveryMode::TolerateTornTail, |_| {}) {
        Ok(scan) => {
            println!(
                "shard {shard}: WAL ok: {} records, {} B, {} segments, lsns up to {}",
                scan.records,
                scan.bytes,
                scan.segments.len(),
                scan.next_lsn.saturating_sub(1)
            );
            let wal_end = scan.next_lsn.saturating_sub(1);
            if let Some((id, lsn)) = newest.filter(|&(_, lsn)| lsn > wal_end) {
                damage.push(format!(
                    "{}: the WAL ends at lsn {wal_end}, before checkpoint {id}'s lsn {lsn}: segments are missing",
                    wal_dir.display()
                ));
            }
            if scan.torn_bytes > 0 {
                println!("shard {shard}: note: a torn tail of {} B (never acknowledged)", scan.torn_bytes);
            }
        }
        Err(WalError::Corruption { path, offset, lsn, detail }) => {
            damage.push(format!("{} offset {offset}: WAL record lsn {lsn}: {detail}", path.display()));
        }
        Err(error) => damage.push(format!("shard {shard}: {error}")),
    }
}
