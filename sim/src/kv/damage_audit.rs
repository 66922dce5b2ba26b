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
use stormhold::env::sim::{Damage, DamageKind, SimEnv};
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
    let (meta, _) = decode_meta(&bytes).ok().filter(|(meta, _)| meta.id == id)?;
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

/// Whether the damage since `damage_from` explains an open of the kernel in `root` that kept
/// failing with `last_error`: only a bad sector (a read that fails for ever) in a file of the
/// shard it names (or under `root`, if it names none) keeps an open failing; rot and
/// misdirected writes make recovery report data loss instead, and a full disk or injected
/// errors are gone once faults stop.
pub fn stuck_is_explained(env: &SimEnv, root: &Path, last_error: &str, damage_from: usize) -> bool {
    let log = env.damage_log();
    let bad: Vec<Damage> = log
        .get(damage_from..)
        .unwrap_or_default()
        .iter()
        .filter(|hit| hit.kind == DamageKind::BadSector)
        .cloned()
        .collect();
    match reported_shard(last_error) {
        Some(shard) => ShardDamage::of(&bad, root, shard).any(),
        None => bad.iter().any(|hit| hit.path.starts_with(root) || hit.path == Path::new("?")),
    }
}

/// The WAL file a kernel store's data-loss report names as corrupt (`"WAL corruption in
/// PATH at offset ..."`, the kernel's `WalError::Corruption`).
pub fn named_wal_file(what: &str) -> Option<PathBuf> {
    let (_, rest) = what.split_once("WAL corruption in ")?;
    Some(PathBuf::from(rest.split_once(" at offset ")?.0))
}

/// The shard a kernel store's error names (`"... shard N did not recover: ..."`).
pub fn reported_shard(what: &str) -> Option<u32> {
    let (before, _) = what.split_once(" did not recover")?;
    before.rsplit_once("shard ")?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    //! Each check can fail: the damage the simulator really did is aimed at one file kind, and
    //! a report (or a loss) that the damage does not explain is refused.

    use super::*;
    use stormhold::checkpoint::{CheckpointKind, CheckpointOptions, Fallback, FallbackReason};
    use stormhold::env::sim::{FaultOptions, MediaTarget, TargetRegion, TargetedFaults, TargetedWeights};
    use stormhold::recovery::CheckpointUsed;
    use stormhold::{Config, Durability, Kernel};

    const ROOT: &str = "/kernel";

    /// A machine whose every faulty call rots one bit of a file whose name ends in `suffix`
    /// (faults start off).
    fn rotting(suffix: &str) -> SimEnv {
        damaging(suffix, TargetedWeights { bit_rot: 1, misdirect: 0, bad_sector: 0 })
    }

    fn damaging(suffix: &str, weights: TargetedWeights) -> SimEnv {
        let target = MediaTarget {
            name_prefix: String::new(),
            name_suffix: suffix.to_owned(),
            region: TargetRegion::Whole,
        };
        let options = FaultOptions {
            media_faults_max: u32::MAX,
            targeted: TargetedFaults { probability: 1.0, weights, targets: vec![target] },
            ..FaultOptions::default()
        };
        let env = SimEnv::new(7, options).expect("valid options");
        env.set_faults_enabled(false);
        env
    }

    /// A one-shard kernel with full checkpoints 1 and 2, closed.
    fn two_checkpoints(env: &SimEnv) {
        let checkpoints =
            CheckpointOptions { max_retained: 4, full_every_incrementals: 0, ..CheckpointOptions::default() };
        let config = Config::builder().shards(1).checkpoint_options(checkpoints).build().expect("config");
        let kernel = Kernel::open(env.clone(), Path::new(ROOT), config).expect("open");
        for round in 0..2u8 {
            let mut txn = kernel.begin();
            txn.put(&[round], &[round; 8]).expect("put");
            txn.commit(Durability::Data).expect("commit");
            kernel.checkpoint().expect("checkpoint");
        }
        drop(kernel);
        assert_eq!(checkpoints_on_disk(env, &ckpt_dir(Path::new(ROOT), 0)).len(), 2);
    }

    /// Rots one bit of a file the env's target names.
    fn rot_once(env: &SimEnv) {
        env.set_faults_enabled(true);
        env.exists(Path::new(ROOT)).expect("exists");
        env.set_faults_enabled(false);
        assert_eq!(env.damage_log().len(), 1);
    }

    fn used(id: u64) -> Option<CheckpointUsed> {
        Some(CheckpointUsed { id, epoch: id, lsn: 0, kind: CheckpointKind::Full, key_count: 0 })
    }

    fn fallback(id: u64) -> Fallback {
        Fallback { id, reason: FallbackReason::DamagedMeta("checksum".to_owned()) }
    }

    #[test]
    fn wal_damage_classifies_as_wal_and_excuses_no_skipped_checkpoint() {
        let env = rotting(".log");
        two_checkpoints(&env);
        rot_once(&env);
        let damage = ShardDamage::of(&env.damage_log(), Path::new(ROOT), 0);
        assert_eq!(damage, ShardDamage { wal: true, ..ShardDamage::default() });
        assert_eq!(ShardDamage::of(&env.damage_log(), Path::new(ROOT), 1), ShardDamage::default());
        let root = Path::new(ROOT);
        let honest = RecoveryReport { checkpoint: used(2), ..RecoveryReport::default() };
        assert_eq!(recovery_used_the_newest_valid(&env, root, 0, &honest, 0), Ok(()));
        let skipped = RecoveryReport { checkpoint: used(1), ..RecoveryReport::default() };
        let error = recovery_used_the_newest_valid(&env, root, 0, &skipped, 0).expect_err("2 is intact");
        assert!(error.contains("skipped recoverable data"), "{error}");
        let passed_over = RecoveryReport { checkpoint: used(1), fallbacks: vec![fallback(2)], ..skipped };
        let error =
            recovery_used_the_newest_valid(&env, root, 0, &passed_over, 0).expect_err("2 is undamaged");
        assert!(error.contains("passed over checkpoint 2"), "{error}");
        // Damage before the last wipe explains nothing.
        assert_eq!(recovery_used_the_newest_valid(&env, root, 0, &passed_over, 1), Err(error));
    }

    #[test]
    fn checkpoint_damage_excuses_a_fallback_but_no_wal_corruption_report() {
        let env = rotting("META");
        two_checkpoints(&env);
        rot_once(&env);
        let hit = ShardDamage::of(&env.damage_log(), Path::new(ROOT), 0).checkpoints;
        assert_eq!(hit.len(), 1, "{hit:?}");
        let root = Path::new(ROOT);
        let fell_back =
            RecoveryReport { checkpoint: used(1), fallbacks: vec![fallback(2)], ..RecoveryReport::default() };
        let newest_hit = hit.contains(&2);
        assert_eq!(recovery_used_the_newest_valid(&env, root, 0, &fell_back, 0).is_ok(), newest_hit);
        let wal = "shard 0 did not recover: WAL recovery failed: WAL corruption in \
                   /kernel/shard-0000/wal/wal-0000000000000001.log at offset 40 (lsn 2): bad record";
        let error = loss_is_explained(&env, root, wal, 0).expect_err("no WAL file was damaged");
        assert!(error.contains("which the simulator never damaged"), "{error}");
        // One of two checkpoints damaged, the other intact, the WAL whole: nothing is lost.
        let lost = "shard 0 did not recover: checkpoint recovery failed: no checkpoint loads";
        let error = loss_is_explained(&env, root, lost, 0).expect_err("the other checkpoint is intact");
        assert!(error.contains("is intact"), "{error}");
        assert!(loss_is_explained(&env, root, "shard 1 did not recover: x", 0).is_err(), "shard 1 is whole");
    }

    #[test]
    fn a_loss_naming_a_damaged_wal_file_is_honest() {
        let env = rotting(".log");
        two_checkpoints(&env);
        rot_once(&env);
        let damaged = env.damage_log()[0].path.display().to_string();
        let root = Path::new(ROOT);
        let what =
            format!("shard 0 did not recover: WAL recovery failed: WAL corruption in {damaged} at offset 9");
        assert_eq!(loss_is_explained(&env, root, &what, 0), Ok(()));
        assert!(loss_is_explained(&env, root, &what, 1).is_err(), "not after a wipe");
        assert_eq!(loss_is_explained(&env, root, "the kernel file is corrupt", 0), Ok(()));
        assert_eq!(named_wal_file(&what).as_deref(), Some(Path::new(&damaged)));
        assert_eq!(reported_shard(&what), Some(0));
        assert_eq!(reported_shard("I/O error: shard 3 did not recover: x"), Some(3));
        assert_eq!(reported_shard("simulated EIO: latent bad sector"), None);
    }

    #[test]
    fn only_a_bad_sector_of_the_named_shard_explains_an_open_that_stays_stuck() {
        let root = Path::new(ROOT);
        let stuck = "I/O error: shard 0 did not recover: WAL read: simulated EIO: latent bad sector";
        let rotted = rotting(".log");
        two_checkpoints(&rotted);
        rot_once(&rotted);
        assert!(
            !stuck_is_explained(&rotted, root, stuck, 0),
            "rot gives a data-loss report, not a stuck open"
        );
        let bad = damaging(".log", TargetedWeights { bit_rot: 0, misdirect: 0, bad_sector: 1 });
        two_checkpoints(&bad);
        rot_once(&bad);
        assert!(stuck_is_explained(&bad, root, stuck, 0));
        assert!(stuck_is_explained(&bad, root, "simulated EIO: latent bad sector", 0), "no shard named");
        assert!(!stuck_is_explained(&bad, root, "I/O error: shard 1 did not recover: x", 0), "another shard");
        assert!(!stuck_is_explained(&bad, root, stuck, 1), "not after a wipe");
    }
}
