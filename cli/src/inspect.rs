//! `stormhold inspect DIR`: the creation config, each shard's state, its checkpoints and WAL
//! segments, and what a recovery would do (a dry run: the read-only open recovers in memory).

use std::path::Path;

use stormhold::StoreIdentity;

use crate::files::{checkpoints, kernel_meta, segments, shard_identity, shard_paths};
use crate::{EXIT_OK, Fail, open};

pub fn run(dir: &Path) -> Result<u8, Fail> {
    let meta = kernel_meta(dir)?;
    let kernel = open(dir)?;
    println!("store {}: {} shards, router {:?} (fixed at creation)", dir.display(), meta.shards, meta.router);
    let reports = kernel.recovery_reports();
    for (status, report) in kernel.shard_status().iter().zip(&reports) {
        eprintln!("inspect: shard {}/{}", status.shard + 1, meta.shards);
        match &status.failed {
            None => println!(
                "shard {}: serving, last lsn {}, durable lsn {}, epoch {}, checkpoint {}",
                status.shard,
                status.last_lsn,
                status.durable_lsn,
                status.epoch,
                status.last_checkpoint.map_or("none".to_owned(), |id| id.to_string())
            ),
            Some(failure) => println!("shard {}: FAILED: {failure}", status.shard),
        }
        let (ckpt_dir, wal_dir) = shard_paths(dir, status.shard);
        print_checkpoints(&ckpt_dir, shard_identity(&meta, status.shard));
        print_wal(&wal_dir, report.as_ref());
        match report {
            Some(report) => println!("  recovery (dry run): {report}"),
            None => println!("  recovery (dry run): fails; `stormhold salvage` copies what is recoverable"),
        }
    }
    Ok(EXIT_OK)
}

fn print_checkpoints(ckpt_dir: &Path, identity: StoreIdentity) {
    match checkpoints(ckpt_dir, identity) {
        Err(error) => println!("  checkpoints: unreadable: {error}"),
        Ok((store, report)) => {
            let list = store.list();
            println!("  checkpoints: {} valid, next id {}", list.len(), store.next_id());
            for m in &list {
                let parent = m.parent.map_or("-".to_owned(), |p| p.to_string());
                println!(
                    "    id {} {:?} epoch {} lsn {} size {} B keys {} parent {parent}",
                    m.id, m.kind, m.epoch, m.lsn, m.size_bytes, m.key_count
                );
            }
            for damaged in report.damaged.iter().chain(&report.broken_chains) {
                println!("    id {} DAMAGED: {}", damaged.id, damaged.reason);
            }
            for id in &report.partial_removed {
                println!("    id {id} partial (an interrupted checkpoint; a writable open removes it)");
            }
        }
    }
}

fn print_wal(wal_dir: &Path, report: Option<&stormhold::RecoveryReport>) {
    match segments(wal_dir) {
        Err(error) => println!("  wal: unreadable: {error}"),
        Ok(list) => {
            let bytes: u64 = list.iter().map(|(_, _, len)| len).sum();
            match report {
                Some(r) => println!(
                    "  wal: {} segments, {bytes} B on disk; {} B of records, {} to replay from lsn {}",
                    list.len(),
                    r.wal_bytes_scanned,
                    r.records_replayed,
                    r.replay_from
                ),
                None => println!("  wal: {} segments, {bytes} B on disk", list.len()),
            }
            for (id, path, len) in &list {
                let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                println!("    segment {id} {name} {len} B");
            }
        }
    }
}
