//! Process crashes in the env workload: after one, the page cache is still there, so every
//! file and directory must read back exactly as the workload left it, unsynced changes
//! included; the model keeps its durable and unsynced state, so a later machine crash is
//! checked against what was synced, before or after the restart.
//!
//! A process crash drawn inside a call leaves that call's effect unknown (it may come before
//! or after the call, and a write may be short). The objects the interrupted operation
//! touches are checked by the machine-crash rules instead and their observed state adopted;
//! every other object is checked exactly. A sync interrupted by a crash may have failed first,
//! so the model records it as a failed sync (a superset of the outcomes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use stormhold::env::Env;
use stormhold::env::sim::{CrashKind, DamageKind, SyncFailureProfile};

use super::model::FileId;
use super::ops::EnvOp;
use super::{DIRS, EnvWorkload, Stop, path};
use crate::runner::ViolationKind;

/// What the operation in flight at a crash may or may not have done.
#[derive(Default)]
pub(super) struct InFlight {
    /// Files whose content it may have changed.
    files: BTreeSet<FileId>,
    /// A file it may have synced.
    synced_file: Option<FileId>,
    /// A directory it may have synced.
    synced_dir: Option<&'static str>,
    /// Directories whose entries it may have changed, with their entries before it.
    dirs_before: BTreeMap<&'static str, BTreeMap<String, FileId>>,
}

impl EnvWorkload {
    /// What `op` may change, taken before it runs (only when process crashes can happen).
    pub(super) fn in_flight_of(&self, op: &EnvOp) -> Option<InFlight> {
        let process_crashes = self.config.faults.process_crash_probability > 0.0;
        if !process_crashes {
            return None;
        }
        let mut in_flight = InFlight::default();
        let file_of = |handle: usize| self.handle_index(handle).map(|index| self.handles[index].file);
        let mut dir_before = |dir: usize| {
            let dir = DIRS[dir % DIRS.len()];
            in_flight.dirs_before.insert(dir, self.dirs[dir].expected.clone());
        };
        match op {
            EnvOp::Open { dir, .. } | EnvOp::Remove { dir, .. } => dir_before(*dir),
            EnvOp::Rename { from, to } => {
                dir_before(from.0);
                dir_before(to.0);
            }
            EnvOp::SyncDir { dir } => in_flight.synced_dir = Some(DIRS[dir % DIRS.len()]),
            EnvOp::Write { handle, .. } | EnvOp::SetLen { handle, .. } => {
                in_flight.files.extend(file_of(*handle));
            }
            EnvOp::Sync { handle, .. } => {
                in_flight.synced_file = file_of(*handle);
                in_flight.files.extend(in_flight.synced_file);
            }
            EnvOp::Read { .. } | EnvOp::Close { .. } | EnvOp::List { .. } | EnvOp::Clock { .. } => {}
            EnvOp::Crash { .. } => {}
        }
        Some(in_flight)
    }

    /// Whether the process is down after a process crash, with the page cache still there.
    pub(super) fn process_crashed(&self) -> bool {
        self.env.is_crashed() && self.env.last_crash_kind() == Some(CrashKind::Process)
    }

    /// Recovery from a process crash: restart on the page cache and check it. Sometimes the
    /// machine loses power while the process is down instead; then `Ok(false)`, and the caller
    /// recovers from the machine crash.
    pub(super) fn recover_process(&mut self, in_flight: Option<InFlight>) -> Result<bool, Stop> {
        self.handles.clear();
        let in_flight = in_flight.unwrap_or_default();
        self.note_uncertain_syncs(&in_flight);
        if self.power_loss_rng_says_so() {
            self.env.note("power lost while the process is down");
            self.env.crash_with(CrashKind::Machine);
            return Ok(false);
        }
        self.env.restart();
        let chaos = self.op_index < self.config.ops;
        self.env.set_faults_enabled(false);
        let result = self.check_cache(&in_flight);
        self.env.set_faults_enabled(chaos);
        self.recoveries += 1;
        self.process_recoveries += 1;
        result.map(|()| true)
    }

    fn power_loss_rng_says_so(&mut self) -> bool {
        use rand::Rng;
        self.process_rng.random_bool(0.25)
    }

    /// A sync cut short by a crash may have failed before it: record it as failed.
    fn note_uncertain_syncs(&mut self, in_flight: &InFlight) {
        let cache_kept = self.config.faults.sync_failure_profile == SyncFailureProfile::Keep;
        if let Some(file) = in_flight.synced_file {
            self.file(file).sync_failed(cache_kept);
        }
        if let Some(dir) = in_flight.synced_dir {
            self.dir(dir).sync_failed();
        }
    }

    /// Every directory and file reads back as the workload left it (see the module docs).
    fn check_cache(&mut self, in_flight: &InFlight) -> Result<(), Stop> {
        for dir in DIRS {
            let names = self.env.list_dir(&PathBuf::from(format!("/{dir}"))).map_err(|error| {
                self.violation(
                    ViolationKind::Read,
                    format!("/{dir} unreadable after a process crash: {error}"),
                )
            })?;
            self.check_cached_dir(dir, &names, in_flight)?;
        }
        Ok(())
    }

    /// The directory holds the model's entries, or (if the interrupted operation changed it)
    /// the model's entries before that operation; the names alone may not tell them apart (a
    /// rename onto an existing name), so each candidate's files must read back too.
    fn check_cached_dir(
        &mut self,
        dir: &'static str,
        names: &[String],
        in_flight: &InFlight,
    ) -> Result<(), Stop> {
        let expected = self.dirs[dir].expected.clone();
        let mut candidates = vec![expected.clone()];
        candidates.extend(in_flight.dirs_before.get(dir).filter(|before| **before != expected).cloned());
        let mut reasons = Vec::new();
        for (index, entries) in candidates.into_iter().enumerate() {
            if !entries.keys().eq(names.iter()) {
                reasons.push(format!("lists {names:?}, the page cache must show {:?}", entries.keys()));
                continue;
            }
            let verdicts: Result<Vec<_>, String> = entries
                .iter()
                .map(|(name, &file)| self.cached_file(dir, name, file, in_flight.files.contains(&file)))
                .collect();
            match verdicts {
                Ok(verdicts) => {
                    if index > 0 {
                        self.env.note(format!("/{dir}: the interrupted operation did not take effect"));
                    }
                    for (&file, verdict) in entries.values().zip(verdicts) {
                        self.adopt_cached(file, verdict);
                    }
                    self.dir(dir).expected = entries;
                    return Ok(());
                }
                Err(reason) => reasons.push(reason),
            }
        }
        Err(self.violation(
            ViolationKind::Durability,
            format!("/{dir} after a process crash: {}", reasons.join("; or ")),
        ))
    }

    fn adopt_cached(&mut self, file: FileId, verdict: Cached) {
        match verdict {
            Cached::Same => {}
            Cached::Unreadable => self.file(file).reads_unreliable = true,
            Cached::Adopt(content) => self.file(file).expected = content,
        }
    }

    /// What `dir/name` (the model's `file`) holds in the page cache; `Err` if the model rules
    /// it out: exactly the model's content, or for a file the interrupted operation may have
    /// changed, any content the machine-crash rules allow.
    fn cached_file(&self, dir: &str, name: &str, file: FileId, uncertain: bool) -> Result<Cached, String> {
        let file_path = path(dir, name);
        let damage = self.env.damage_at(&file_path).unwrap_or_default();
        let content = match super::recovery::read_whole(&self.env, &file_path) {
            Ok(content) => content,
            Err(_) if damage.iter().any(|(kind, _)| *kind == DamageKind::BadSector) => {
                return Ok(Cached::Unreadable);
            }
            Err(error) => return Err(format!("{} unreadable: {error}", file_path.display())),
        };
        let model = &self.files[&file];
        if model.reads_unreliable || content == model.expected {
            return Ok(Cached::Same);
        }
        if uncertain {
            let excused: Vec<_> = damage.iter().map(|(_, range)| range.clone()).collect();
            let misdirected = damage.iter().any(|(kind, _)| *kind == DamageKind::Misdirect);
            if model.check_recovered(&content, &self.config.faults, &excused, misdirected).is_ok() {
                return Ok(Cached::Adopt(content));
            }
        }
        Err(format!(
            "{} holds {} bytes that differ from the {} of file#{file}",
            file_path.display(),
            content.len(),
            model.expected.len()
        ))
    }
}

/// What the page cache showed of one file.
enum Cached {
    /// The model's content.
    Same,
    /// Unreadable after media damage: reads of it prove nothing from now on.
    Unreadable,
    /// Content an interrupted operation may have left: the model's from now on.
    Adopt(Vec<u8>),
}
