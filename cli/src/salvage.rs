//! `stormhold salvage DIR --to NEW`: everything recoverable, from every shard, into a new
//! store with the same shard count and router; then exactly what was lost.
//!
//! Each shard is read from its files, not through a normal recovery, so a shard that a normal
//! open fails is salvaged too: its newest checkpoint that loads (falling back past damaged
//! ones), then every valid WAL record after that checkpoint's lsn, in lsn order, up to the
//! first damage (a point-in-time scan). Lost, and printed: records missing between the
//! checkpoint and the WAL (a gap), every record from the first damage on (with the number of
//! valid records after it), and all of the WAL past the checkpoint if it cannot be read. A
//! WAL that ends before the checkpoint's lsn (the case a normal open refuses) keeps everything
//! the checkpoint holds; whether records followed it cannot be known, and that is printed
//! (as `UNKNOWN`, counted with the losses) rather than called "nothing lost". `DIR` is only read (a read-only overlay); `NEW` must not
//! hold a store yet.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use stormhold::env::OsEnv;
use stormhold::kernel::layout;
use stormhold::shard::record::{Batch, Op};
use stormhold::shard::{NS_DOC, NS_USER};
use stormhold::wal::{RecoveryMode, StoreIdentity};
use stormhold::{Config, Durability, Kernel};

use crate::files::{checkpoints, kernel_meta, scan_wal, shard_identity, shard_paths, show};
use crate::{EXIT_DAMAGE, EXIT_OK, Fail};

/// Bytes of keys and values per transaction written to the new store.
const CHUNK_BYTES: usize = 4 << 20;

/// What one shard yielded.
#[derive(Default)]
struct Salvaged {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    docs: BTreeSet<String>,
    from: Vec<String>,
    lost: Vec<String>,
}

pub fn run(dir: &Path, to: &Path) -> Result<u8, Fail> {
    let meta = kernel_meta(dir)?;
    if layout::read_meta(&OsEnv::new(), to).map_err(Fail::error)?.is_some() {
        return Err(Fail::error(format!(
            "{} already holds a store; salvage into a new directory",
            to.display()
        )));
    }
    let normal: Vec<String> = match crate::open(dir) {
        Ok(kernel) => kernel
            .shard_status()
            .into_iter()
            .map(|s| s.failed.map_or("serving".to_owned(), |f| format!("FAILED: {f}")))
            .collect(),
        Err(fail) => {
            vec![format!("the store does not open read-only: {}", fail.message); meta.shards as usize]
        }
    };
    let config = Config::builder().shards(meta.shards).router(meta.router).build()?;
    let target = Kernel::open(OsEnv::new(), to, config)?;
    let (mut keys, mut lost) = (0, 0);
    for id in 0..meta.shards {
        eprintln!("salvage: shard {}/{}", id + 1, meta.shards);
        let salvaged = salvage_shard(dir, id, shard_identity(&meta, id));
        write(&target, &salvaged)?;
        println!("shard {id}: normal open: {}", normal[id as usize]);
        println!(
            "shard {id}: salvaged {} keys, {} documents from {}",
            salvaged.entries.len(),
            salvaged.docs.len(),
            salvaged.from.join(", ")
        );
        for line in &salvaged.lost {
            println!("shard {id}: LOST {line}");
        }
        keys += salvaged.entries.len();
        lost += salvaged.lost.len();
    }
    target.sync(Durability::Data)?;
    target.close()?;
    println!(
        "salvaged {keys} keys into {}; {}",
        to.display(),
        match lost {
            0 => "nothing was lost".to_owned(),
            n => format!("{n} losses listed above"),
        }
    );
    Ok(if lost == 0 { EXIT_OK } else { EXIT_DAMAGE })
}

/// Reads shard `id` from its files: see the module docs.
fn salvage_shard(dir: &Path, id: u32, identity: StoreIdentity) -> Salvaged {
    let (ckpt_dir, wal_dir) = shard_paths(dir, id);
    let mut out = Salvaged::default();
    let mut state = BTreeMap::new();
    let mut base_lsn = 0;
    match checkpoints(&ckpt_dir, identity).map(|(store, _)| store.load_latest_valid()) {
        Err(error) | Ok(Err(error)) => {
            out.lost.push(format!("no checkpoint loads ({error}); only the WAL is used"))
        }
        Ok(Ok(None)) => out.from.push("no checkpoint".to_owned()),
        Ok(Ok(Some(loaded))) => {
            base_lsn = loaded.meta.lsn;
            state = loaded.state;
            out.from.push(format!("checkpoint {} (lsn {})", loaded.meta.id, loaded.meta.lsn));
            for fallback in &loaded.fallbacks {
                out.from.push(format!("passed over {fallback}"));
            }
        }
    }
    for (key, value) in state {
        match key.split_first() {
            Some((&NS_USER, user)) => drop(out.entries.insert(user.to_vec(), value)),
            Some((&NS_DOC, doc)) => drop(out.docs.insert(String::from_utf8_lossy(doc).into_owned())),
            _ => out.lost.push(format!("checkpoint key \"{}\" is in no namespace; skipped", show(&key))),
        }
    }
    replay(&wal_dir, identity, base_lsn, &mut out);
    out
}

/// Applies every valid WAL record after `base_lsn`, in order, up to the first damage; records
/// in `out.lost` what could not be applied.
fn replay(wal_dir: &Path, identity: StoreIdentity, base_lsn: u64, out: &mut Salvaged) {
    let (mut expected, mut applied, mut bad) = (base_lsn + 1, 0u64, Vec::new());
    let entries = &mut out.entries;
    let docs = &mut out.docs;
    let scanned = scan_wal(wal_dir, identity, RecoveryMode::PointInTime, |record| {
        if record.lsn < expected {
            return;
        }
        if record.lsn > expected {
            bad.push(format!("lsns {expected}..{} are missing from the WAL", record.lsn));
        }
        expected = record.lsn + 1;
        match Batch::decode(&record.payload) {
            Err(detail) => {
                bad.push(format!("record lsn {} is not a shard batch ({detail}); skipped", record.lsn))
            }
            Ok(batch) => {
                applied += 1;
                for op in batch.ops {
                    match op {
                        Op::Put(key, value) => drop(entries.insert(key, value)),
                        Op::Delete(key) => drop(entries.remove(&key)),
                        Op::DeleteRange(start, end) => {
                            entries.retain(|key, _| !(start.as_slice() <= key.as_slice() && key < &end))
                        }
                    }
                }
                if let Some(doc) = batch.doc.filter(|d| d.complete) {
                    docs.insert(doc.id);
                }
            }
        }
    });
    out.lost.append(&mut bad);
    match scanned {
        Ok(scan) => {
            out.from.push(format!("{applied} WAL records after lsn {base_lsn}"));
            if let Some(d) = scan.dropped {
                out.lost.push(format!(
                    "every record from lsn {}: damage at {} offset {} ({} valid records after it dropped)",
                    d.from_lsn,
                    d.path.display(),
                    d.offset,
                    d.later_records
                ));
            }
            if scan.next_lsn <= base_lsn {
                // The checkpoint holds every record up to its lsn; whether the log went further
                // is gone with the log.
                out.lost.push(format!(
                    "UNKNOWN: the WAL ends at lsn {}, before the checkpoint's lsn {base_lsn}; the \
                     checkpoint holds everything up to it, and any record after it is gone with the WAL",
                    scan.next_lsn.saturating_sub(1)
                ));
            }
        }
        Err(error) => {
            out.lost.push(format!("any record after lsn {base_lsn}: the WAL is unreadable ({error})"))
        }
    }
}

/// Writes what a shard yielded into the new store, in transactions of about `CHUNK_BYTES`.
fn write(target: &Kernel<OsEnv>, salvaged: &Salvaged) -> Result<(), Fail> {
    let mut txn = target.begin();
    let mut bytes = 0;
    for (key, value) in &salvaged.entries {
        if bytes + key.len() + value.len() > CHUNK_BYTES || txn.put(key, value).is_err() {
            txn.commit(Durability::None)?;
            txn = target.begin();
            bytes = 0;
            txn.put(key, value)?;
        }
        bytes += key.len() + value.len();
    }
    txn.commit(Durability::None)?;
    for doc in &salvaged.docs {
        target.begin_document(doc)?.commit()?;
    }
    Ok(())
}
