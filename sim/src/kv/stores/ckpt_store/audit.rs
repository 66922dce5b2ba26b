//! The checkpoint store's audit of its own recovery: the checkpoint invariants of DESIGN.md
//! section 4, checked on the disk and on the [`RecoveryReport`] right after every successful
//! recovery (the workload turns faults off first).
//!
//! - **no partial checkpoint is left**: every `ckpt-*` directory has a `META`;
//! - **retention never removed what a retained checkpoint needs**: every ancestor of a listed
//!   checkpoint is still present (listed, or damaged by the simulator), whatever the media did;
//!   and, without media damage, every listed checkpoint loads, its whole chain verified;
//! - **the latest checkpoint is used**: without fallbacks, recovery used the newest listed
//!   checkpoint; fallbacks, and damaged metadata, are legal only after media damage;
//! - **an acknowledged checkpoint is never lost**: without media damage, the checkpoint used is
//!   at least the newest one whose creation returned `Ok`;
//! - **recovery acts on the checkpoint it chose**: it handed over no record before that
//!   checkpoint's replay point, and called a record covered exactly when at or below its lsn;
//! - **epoch numbers are never reused**: listed checkpoints' epochs increase with their ids, and
//!   the resumed tracker's active epoch is above all of them.

use std::collections::BTreeSet;
use std::path::Path;
use stormhold::checkpoint::META_FILE_NAME;
use stormhold::checkpoint::format::parse_checkpoint_dir_name;
use stormhold::env::Env;
use stormhold::env::sim::SimEnv;

use super::{CKPT_DIR, CkptStore};
use crate::kv::AuditFacts;

impl CkptStore {
    /// See the module docs.
    pub(super) fn audit_recovery(&self, env: &SimEnv, facts: &AuditFacts) -> Result<(), String> {
        if let Some(disagreement) = &self.recovery_disagreement {
            return Err(disagreement.clone());
        }
        no_partial_directories(env)?;
        self.chains_are_present()?;
        if !facts.media_damage {
            self.listed_checkpoints_load()?;
        }
        self.recovery_used_the_newest(facts)?;
        self.epochs_are_fresh()
    }

    fn epochs_are_fresh(&self) -> Result<(), String> {
        let listed = self.ckpts.list();
        for pair in listed.windows(2) {
            let (newer, older) = (&pair[0], &pair[1]);
            if newer.epoch <= older.epoch {
                return Err(format!(
                    "checkpoint {} has epoch {}, not above checkpoint {}'s epoch {}: an epoch number was reused",
                    newer.id, newer.epoch, older.id, older.epoch
                ));
            }
        }
        let active = self.epochs.current().0;
        match listed.first() {
            Some(newest) if newest.epoch >= active => Err(format!(
                "the resumed active epoch {active} is not above checkpoint {}'s epoch {}",
                newest.id, newest.epoch
            )),
            _ => Ok(()),
        }
    }

    /// Every ancestor of every listed checkpoint is present (listed or damaged).
    fn chains_are_present(&self) -> Result<(), String> {
        let listed = self.ckpts.list();
        let present: BTreeSet<u64> =
            listed.iter().map(|m| m.id).chain(self.ckpts.damaged().iter().map(|d| d.id)).collect();
        for meta in &listed {
            let mut at = meta;
            while let Some(parent) = at.parent {
                if !present.contains(&parent) {
                    return Err(format!(
                        "checkpoint {} is listed but its ancestor {parent} is gone: retention removed \
                         what a retained checkpoint needs",
                        meta.id
                    ));
                }
                match listed.iter().find(|m| m.id == parent) {
                    Some(parent) => at = parent,
                    None => break,
                }
            }
        }
        Ok(())
    }

    fn listed_checkpoints_load(&self) -> Result<(), String> {
        for meta in self.ckpts.list() {
            if let Err(error) = self.ckpts.load(meta.id) {
                return Err(format!(
                    "listed checkpoint {} does not load, and the simulator damaged no media: {error}",
                    meta.id
                ));
            }
        }
        Ok(())
    }

    fn recovery_used_the_newest(&self, facts: &AuditFacts) -> Result<(), String> {
        let report = &self.recovery;
        let used = report.checkpoint.as_ref().map(|c| c.id);
        fallbacks_need_media_damage(report, facts)?;
        if !facts.media_damage
            && let Some(acknowledged) = facts.checkpoint_acknowledged
            && used.is_none_or(|used| used < acknowledged)
        {
            return Err(format!(
                "recovery used checkpoint {used:?}, older than checkpoint {acknowledged} whose creation \
                 returned Ok"
            ));
        }
        let newest = self.ckpts.list().first().map(|m| m.id);
        if report.fallbacks.is_empty() && used != newest {
            return Err(format!(
                "recovery used checkpoint {used:?} without a fallback, but the newest listed is {newest:?}"
            ));
        }
        Ok(())
    }
}

/// Every `ckpt-*` directory has a `META`: recovery removed every partial one.
fn no_partial_directories(env: &SimEnv) -> Result<(), String> {
    checkpoint_dirs_are_whole(env, Path::new(CKPT_DIR)).map(drop)
}

/// Every `ckpt-*` directory under `dir` has a `META` (recovery removed every partial one);
/// returns the newest id found. Shared by every store with a checkpoint store.
pub(crate) fn checkpoint_dirs_are_whole(env: &SimEnv, dir: &Path) -> Result<Option<u64>, String> {
    let names = env.list_dir(dir).map_err(|e| format!("audit cannot list {}: {e}", dir.display()))?;
    let mut newest = None;
    for name in names {
        let Some(id) = parse_checkpoint_dir_name(&name) else { continue };
        let meta = dir.join(&name).join(META_FILE_NAME);
        match env.exists(&meta) {
            Ok(true) => newest = newest.max(Some(id)),
            Ok(false) => {
                return Err(format!(
                    "{} has no {META_FILE_NAME}: a partial checkpoint outlived recovery",
                    dir.join(&name).display()
                ));
            }
            Err(error) => return Err(format!("audit cannot check {}: {error}", meta.display())),
        }
    }
    Ok(newest)
}

/// Fallbacks and damaged checkpoint metadata are legal only after the simulator damaged
/// media. Shared by every store with a checkpoint store.
pub(crate) fn fallbacks_need_media_damage(
    report: &stormhold::recovery::RecoveryReport,
    facts: &AuditFacts,
) -> Result<(), String> {
    if facts.media_damage {
        return Ok(());
    }
    if let Some(fallback) = report.fallbacks.first() {
        return Err(format!(
            "recovery fell back, and the simulator damaged no media: passed over {fallback}"
        ));
    }
    if let Some(damaged) = report.damaged.first() {
        return Err(format!(
            "checkpoint {} has damaged metadata, and the simulator damaged no media: {}",
            damaged.id, damaged.reason
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Each check can fail: each test breaks one invariant behind the store's back.

    use super::*;
    use crate::config::{RunConfig, WorkloadKind};
    use crate::kv::stores::ckpt_store::CkptBug;
    use crate::kv::workload::KvWorkload;
    use crate::kv::{Key, KvStore, StoreError, Value, Write};
    use crate::verdict::ViolationKind;
    use std::collections::BTreeMap;
    use stormhold::checkpoint::format::checkpoint_dir_name;
    use stormhold::env::sim::FaultOptions;
    use stormhold::env::{EnvFile, OpenOptions};

    fn quiet_env() -> SimEnv {
        SimEnv::new(1, FaultOptions::default()).expect("valid options")
    }

    const FACTS: AuditFacts =
        AuditFacts { media_damage: false, checkpoint_acknowledged: None, damage_from: 0 };

    /// A store with checkpoints 1 (full), 2 and 3 (incrementals on it), reopened after a crash.
    fn three_checkpoints(env: &SimEnv) -> CkptStore {
        let mut store = CkptStore::open(env, &CkptBug::None).expect("open");
        for round in 0..3u32 {
            store.commit(&[(1, Some(round)), (2, Some(round + 10))], true).expect("commit");
            store.checkpoint().expect("checkpoint");
        }
        assert_eq!(store.checkpoint_acknowledged(), Some(3));
        store.commit(&[(3, Some(7))], true).expect("commit");
        reopen(env, store)
    }

    fn reopen(env: &SimEnv, store: CkptStore) -> CkptStore {
        drop(store);
        env.crash();
        env.restart();
        CkptStore::open(env, &CkptBug::None).expect("reopen")
    }

    fn ckpt_path(id: u64, name: &str) -> std::path::PathBuf {
        Path::new(CKPT_DIR).join(checkpoint_dir_name(id)).join(name)
    }

    fn remove_checkpoint_dir(env: &SimEnv, id: u64) {
        let dir = Path::new(CKPT_DIR).join(checkpoint_dir_name(id));
        for name in env.list_dir(&dir).expect("list") {
            env.remove_file(&dir.join(name)).expect("remove");
        }
        env.remove_dir(&dir).expect("remove dir");
        env.sync_dir(Path::new(CKPT_DIR)).expect("sync");
    }

    #[test]
    fn audit_passes_a_healthy_recovery() {
        let env = quiet_env();
        let store = three_checkpoints(&env);
        let facts = AuditFacts { checkpoint_acknowledged: Some(3), ..FACTS };
        assert_eq!(store.audit(&env, &facts), Ok(()));
        assert_eq!(store.last_recovery().checkpoint.as_ref().map(|c| c.id), Some(3));
    }

    #[test]
    fn audit_catches_a_removed_parent() {
        let env = quiet_env();
        let store = three_checkpoints(&env);
        drop(store);
        // What a retention that ignores parent chains would do: delete the full base.
        remove_checkpoint_dir(&env, 1);
        let store = CkptStore::open(&env, &CkptBug::None).expect("the whole WAL still replays");
        let error = store.audit(&env, &FACTS).expect_err("a listed checkpoint lost its parent");
        assert!(error.contains("ancestor 1 is gone"), "{error}");
        // Media damage excuses no missing parent.
        let error = store.audit(&env, &AuditFacts { media_damage: true, ..FACTS }).expect_err("still caught");
        assert!(error.contains("ancestor 1 is gone"), "{error}");
    }

    #[test]
    fn audit_catches_a_fallback_and_a_load_failure_without_media_damage() {
        let env = quiet_env();
        drop(three_checkpoints(&env));
        let path = ckpt_path(3, "DATA");
        let file = env.open(&path, OpenOptions::read_write()).expect("open");
        file.write_all_at(b"rot", 12).expect("damage");
        file.sync_data().expect("sync");
        drop(file);
        let store = CkptStore::open(&env, &CkptBug::None).expect("falls back to checkpoint 2");
        let error = store.audit(&env, &FACTS).expect_err("a listed checkpoint does not load");
        assert!(error.contains("listed checkpoint 3 does not load"), "{error}");
        let damaged = AuditFacts { media_damage: true, checkpoint_acknowledged: Some(3), ..FACTS };
        assert_eq!(store.audit(&env, &damaged), Ok(()), "media damage excuses the fallback");
    }

    #[test]
    fn audit_catches_a_partial_directory_left_behind() {
        let env = quiet_env();
        let store = three_checkpoints(&env);
        env.create_dir(&Path::new(CKPT_DIR).join(checkpoint_dir_name(9))).expect("plant");
        let error = store.audit(&env, &FACTS).expect_err("a partial directory is left");
        assert!(error.contains("ckpt-0000000000000009 has no META"), "{error}");
    }

    #[test]
    fn audit_catches_a_reused_epoch_number() {
        let env = quiet_env();
        let mut store = three_checkpoints(&env);
        let reused = store.ckpts.list()[0].epoch;
        let lsn = store.wal.last_lsn();
        let data = stormhold::checkpoint::CheckpointData::Full(BTreeMap::new());
        store.ckpts.create(reused, lsn, Default::default(), data, None).expect("create");
        let store = reopen(&env, store);
        let error = store.audit(&env, &FACTS).expect_err("two checkpoints share an epoch");
        assert!(error.contains("an epoch number was reused"), "{error}");
    }

    #[test]
    fn audit_catches_a_recovery_older_than_an_acknowledged_checkpoint() {
        let env = quiet_env();
        let store = three_checkpoints(&env);
        let facts = AuditFacts { checkpoint_acknowledged: Some(4), ..FACTS };
        let error = store.audit(&env, &facts).expect_err("checkpoint 4 was acknowledged");
        assert!(error.contains("older than checkpoint 4"), "{error}");
    }

    /// A checkpoint store whose retention keeps the newest checkpoints but not the parents
    /// they need: once the newest is full (so recovery does not need the old chain), it
    /// deletes the oldest listed checkpoint if another listed one names it as parent.
    struct BrokenRetention {
        env: SimEnv,
        store: CkptStore,
    }

    impl BrokenRetention {
        fn remove_a_needed_parent(&mut self) -> std::io::Result<()> {
            let listed = self.store.ckpts.list();
            if listed.first().is_none_or(|newest| newest.parent.is_some()) {
                return Ok(());
            }
            match listed.last().filter(|oldest| listed.iter().any(|m| m.parent == Some(oldest.id))) {
                Some(oldest) => try_remove_checkpoint_dir(&self.env, oldest.id),
                None => Ok(()),
            }
        }
    }

    fn try_remove_checkpoint_dir(env: &SimEnv, id: u64) -> std::io::Result<()> {
        let dir = Path::new(CKPT_DIR).join(checkpoint_dir_name(id));
        for name in env.list_dir(&dir)? {
            env.remove_file(&dir.join(name))?;
        }
        env.remove_dir(&dir)?;
        env.sync_dir(Path::new(CKPT_DIR))
    }

    impl KvStore for BrokenRetention {
        type Config = CkptBug;
        fn name(&self) -> String {
            "checkpoint with broken retention".to_owned()
        }
        fn open(env: &SimEnv, config: &CkptBug) -> Result<Self, StoreError> {
            Ok(Self { env: env.clone(), store: CkptStore::open(env, config)? })
        }
        fn destroy(env: &SimEnv) -> std::io::Result<()> {
            CkptStore::destroy(env)
        }
        fn writes_per_commit_max(config: &CkptBug) -> usize {
            CkptStore::writes_per_commit_max(config)
        }
        fn commit(&mut self, writes: &[Write], durable: bool) -> Result<(), StoreError> {
            self.store.commit(writes, durable)
        }
        fn checkpoints(_: &CkptBug) -> bool {
            true
        }
        fn checkpoint(&mut self) -> Result<(), StoreError> {
            self.store.checkpoint()?;
            self.remove_a_needed_parent().map_err(StoreError::Io)
        }
        fn checkpoint_acknowledged(&self) -> Option<u64> {
            self.store.checkpoint_acknowledged()
        }
        fn audit(&self, env: &SimEnv, facts: &AuditFacts) -> Result<(), String> {
            self.store.audit(env, facts)
        }
        fn sync(&mut self) -> Result<(), StoreError> {
            self.store.sync()
        }
        fn get(&self, key: Key) -> Result<Option<Value>, StoreError> {
            self.store.get(key)
        }
        fn state(&self) -> Result<BTreeMap<Key, Value>, StoreError> {
            self.store.state()
        }
    }

    #[test]
    fn the_workload_reports_a_broken_retention_as_a_checkpoint_violation() {
        let mut config = RunConfig::from_seed(3, WorkloadKind::Checkpoint, 400);
        config.restrict_faults(&[]);
        let env = SimEnv::new(config.seed, config.faults.clone()).expect("valid options");
        let mut workload = KvWorkload::<BrokenRetention>::new(env, config, CkptBug::None);
        let violation = workload.run().expect_err("the audit catches the missing parent");
        assert_eq!(violation.kind, ViolationKind::Checkpoint, "{violation}");
        assert!(violation.detail.contains("is gone: retention removed"), "{violation}");
    }
}
