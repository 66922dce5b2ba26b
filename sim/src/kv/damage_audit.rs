//! Honest errors that know what was damaged (DESIGN.md section 4, issue 14 item 4): the
//! kernel workload's check of a data-loss report and of a recovery's choice of checkpoint
//! against the simulator's own record of every byte range its media faults hit
//! ([`SimEnv::damage_log`]), never against what the kernel says about itself.
//!
//! What a shard's recovery *needs* (the definition both checks use):
//! - every WAL segment of the shard, the shard's other files (the checkpoint high-water mark)
//!   and the kernel's own files (`KERNEL`): damage to any of them may make recovery refuse
//!   data (this is lenient for WAL bytes wholly covered by a valid checkpoint, which the
//!   workload cannot place in lsn order without re-deriving the kernel's scan);
//! - a checkpoint directory, but only while neither the newest checkpoint on disk nor the one
//!   before it is *intact* (its `META` decodes and no file of its directory, nor of any
//!   ancestor's directory, was damaged): recovery must use the newest valid checkpoint, and the
//!   WAL is kept back to the previous checkpoint (DESIGN.md rule 13), so with either of those
//!   intact and the WAL undamaged, nothing durable is lost.
//!
//! Damage is matched by the path it was injected at (a `META.tmp` hit counts for its
//! checkpoint directory; checkpoint directories are never renamed), counting only faults
//! injected since the store was last wiped (`damage_from`, an index into the log). Every
//! inspection runs on a fork of the machine with faults off, so the checks never change a
//! seed's trace.
//!
//! The checks:
//! - **honest loss**: a shard that failed with `data_loss` must have needed damage, and a WAL
//!   corruption report must name a file the simulator damaged ([`loss_is_explained`]); a loss
//!   without is a "dishonest loss";
//! - **nothing recoverable skipped**: after a successful recovery, the checkpoint used is at
//!   least the newest intact one on disk, and every checkpoint passed over (a fallback) or
//!   found with damaged metadata has damage in its own directory or an older one
//!   ([`recovery_used_the_newest_valid`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use stormhold::checkpoint::META_FILE_NAME;
use stormhold::checkpoint::format::{decode_meta, parse_checkpoint_dir_name};
use stormhold::env::sim::{Damage, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::kernel::layout;
use stormhold::recovery::RecoveryReport;

/// Checkpoint metadata larger than this is not read (it is not intact either).
const META_READ_BYTES_MAX: u64 = stormhold::checkpoint::format::META_FILE_BYTES_MAX as u64;

/// What the simulator damaged, since the store was last wiped, among the files one shard's
/// recovery reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardDamage {
    /// A WAL segment of the shard.
    pub wal: bool,
    /// Checkpoints (by id) with a damaged file in their directory.
    pub checkpoints: BTreeSet<u64>,
    /// Any other file the shard's recovery reads: the kernel's files, the high-water mark,
    /// a file no directory entry named.
    pub other: bool,
}

impl ShardDamage {
    /// Sorts the damage of `log` (all of it: the caller slices off what came before a wipe)
    /// done to the files of shard `shard` of the kernel in `root`.
    pub fn of(log: &[Damage], root: &Path, shard: u32) -> Self {
        let shard_name = layout::shard_dir(Path::new(""), shard);
        let mut damage = Self::default();
        for hit in log {
            let Ok(inside) = hit.path.strip_prefix(root) else {
                // "?" names a file no entry names: it may be anything.
                damage.other |= hit.path == Path::new("?");
                continue;
            };
            let parts: Vec<&str> = inside
                .components()
                .filter_map(|c| match c {
                    Component::Normal(name) => name.to_str(),
                    _ => None,
                })
                .collect();
            match parts.as_slice() {
                [first, ..] if Path::new(first) != shard_name && first.starts_with("shard-") => {}
                [_, "wal", ..] => damage.wal = true,
                [_, "ckpt", dir, ..] if parse_checkpoint_dir_name(dir).is_some() => {
                    damage.checkpoints.extend(parse_checkpoint_dir_name(dir));
                }
                _ => damage.other = true,
            }
        }
        damage
    }

    /// Whether anything of the shard's was damaged.
    pub fn any(&self) -> bool {
        self.wal || self.other || !self.checkpoints.is_empty()
    }
}

/// The checkpoints in `dir` (a shard's `ckpt` directory on a fault-free fork): id to parent,
/// `None` where `META` does not read or decode.
fn checkpoints_on_disk(env: &SimEnv, dir: &Path) -> BTreeMap<u64, Option<Option<u64>>> {
    let names = env.list_dir(dir).unwrap_or_default();
    let ids = names.iter().filter_map(|name| parse_checkpoint_dir_name(name).map(|id| (id, name)));
    ids.map(|(id, name)| (id, read_parent(env, &dir.join(name).join(META_FILE_NAME), id))).collect()
}

fn read_parent(env: &SimEnv, meta: &Path, id: u64) -> Option<Option<u64>> {
    let file = env.open(meta, OpenOptions::read_only()).ok()?;
    let len = file.len().ok().filter(|&len| len <= META_READ_BYTES_MAX)?;
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, 0).ok()?;
    let meta = decode_meta(&bytes).ok().filter(|meta| meta.id == id)?;
    // A parent is always older; anything else is not a chain this check follows.
    meta.parent.map_or(Some(None), |parent| (parent < id).then_some(Some(parent)))
}

/// Whether checkpoint `newest` of `on_disk` is intact: its `META` decodes, and it and every
/// ancestor (all on disk) have no damaged file.
fn intact(on_disk: &BTreeMap<u64, Option<Option<u64>>>, damage: &ShardDamage, newest: u64) -> bool {
    let mut at = Some(newest);
    while let Some(id) = at {
        if damage.checkpoints.contains(&id) {
            return false;
        }
        match on_disk.get(&id) {
            Some(Some(parent)) => at = *parent,
            _ => return false,
        }
    }
    true
}

/// The newest intact checkpoint in `dir`.
fn newest_intact(env: &SimEnv, dir: &Path, damage: &ShardDamage) -> Option<u64> {
    let on_disk = checkpoints_on_disk(env, dir);
    on_disk.keys().rev().copied().find(|&id| intact(&on_disk, damage, id))
}

/// A fault-free copy of the machine to inspect.
fn inspect(env: &SimEnv) -> SimEnv {
    let fork = env.fork();
    fork.set_faults_enabled(false);
    if fork.is_crashed() {
        fork.restart();
    }
    fork
}

fn ckpt_dir(root: &Path, shard: u32) -> std::path::PathBuf {
    layout::shard_dir(root, shard).join("ckpt")
}

/// Whether the damage since `damage_from` explains the data loss `what` that an open of the
/// kernel in `root` reported: a WAL corruption report must name a file the simulator damaged;
/// any other loss of a shard needs damage to a file its recovery needed (see the module docs),
/// and a refusal of the kernel itself (no shard named) damage under `root`. `Err` says why not.
pub fn loss_is_explained(env: &SimEnv, root: &Path, what: &str, damage_from: usize) -> Result<(), String> {
    let shard = reported_shard(what);
    let log = env.damage_log();
    let since = log.get(damage_from..).unwrap_or_default();
    let Some(shard) = shard else {
        return match since.iter().any(|hit| hit.path.starts_with(root) || hit.path == Path::new("?")) {
            true => Ok(()),
            false => Err(format!(
                "the kernel refused to open, but the simulator damaged no file under {}",
                root.display()
            )),
        };
    };
    let damage = ShardDamage::of(since, root, shard);
    if let Some(named) = named_wal_file(what) {
        // The kernel names the WAL file it found damaged: the simulator must have damaged it
        // (under its own name, or the temporary name it was written under).
        let tmp = named.with_extension("tmp");
        return match since.iter().any(|hit| hit.path == named || hit.path == tmp) {
            true => Ok(()),
            false => Err(format!(
                "dishonest loss: shard {shard} reported corruption in {}, which the simulator never damaged",
                named.display()
            )),
        };
    }
    if damage.wal || damage.other {
        return Ok(());
    }
    let on_disk = checkpoints_on_disk(&inspect(env), &ckpt_dir(root, shard));
    // The WAL is kept back to the previous checkpoint (DESIGN.md rule 13): with the newest or
    // the one before it intact, the undamaged WAL recovers everything.
    let recoverable = on_disk.keys().rev().take(2).copied().find(|&id| intact(&on_disk, &damage, id));
    match recoverable {
        None if !damage.checkpoints.is_empty() => Ok(()),
        None => Err(format!(
            "dishonest loss: shard {shard} reported data loss, but the simulator damaged none of its files"
        )),
        Some(id) => Err(format!(
            "dishonest loss: shard {shard} reported data loss, but the simulator damaged none of its WAL \
             segments or other files, and checkpoint {id}, the newest or the one before it, is intact \
             (damaged checkpoints: {:?})",
            damage.checkpoints
        )),
    }
}

/// After a successful recovery of shard `shard`: the checkpoint used is at least the newest
/// intact one, and every checkpoint passed over or found damaged is explained by damage to
/// its own directory or an older one (see the module docs).
pub fn recovery_used_the_newest_valid(
    env: &SimEnv,
    root: &Path,
    shard: u32,
    report: &RecoveryReport,
    damage_from: usize,
) -> Result<(), String> {
    let log = env.damage_log();
    let damage = ShardDamage::of(log.get(damage_from..).unwrap_or_default(), root, shard);
    if !damage.any() && report.fallbacks.is_empty() && report.damaged.is_empty() {
        // The store's own audit requires the newest checkpoint on disk then.
        return Ok(());
    }
    let explained = |id: u64| damage.other || damage.checkpoints.range(..=id).next().is_some();
    if let Some(fallback) = report.fallbacks.iter().find(|f| !explained(f.id)) {
        return Err(format!(
            "recovery passed over checkpoint {} ({fallback}), but the simulator damaged no file of it \
             or of an older checkpoint (damaged: {:?})",
            fallback.id, damage.checkpoints
        ));
    }
    if let Some(unusable) =
        report.damaged.iter().find(|d| !damage.other && !damage.checkpoints.contains(&d.id))
    {
        return Err(format!(
            "checkpoint {} has damaged metadata ({}), but the simulator damaged no file of it",
            unusable.id, unusable.reason
        ));
    }
    let used = report.checkpoint.as_ref().map(|c| c.id);
    match newest_intact(&inspect(env), &ckpt_dir(root, shard), &damage) {
        Some(newest) if used.is_none_or(|used| used < newest) => Err(format!(
            "recovery skipped recoverable data: it used checkpoint {used:?}, but checkpoint {newest} \
             and its whole chain are valid and undamaged"
        )),
        _ => Ok(()),
    }
}

/// The WAL file a kernel store's data-loss report names as corrupt (`"WAL corruption in
/// PATH at offset ..."`, the kernel's `WalError::Corruption`).
pub fn named_wal_file(what: &str) -> Option<PathBuf> {
    let (_, rest) = what.split_once("WAL corruption in ")?;
    Some(PathBuf::from(rest.split_once(" at offset ")?.0))
}

/// The shard a kernel store's data-loss report names (`"shard N did not recover: ..."`).
pub fn reported_shard(what: &str) -> Option<u32> {
    what.strip_prefix("shard ")?.split_once(' ')?.0.parse().ok()
}
