//! Crash recovery of the env workload: restart, check every entry against the model, adopt
//! what survived, and the liveness probe of the quiet phase.
//!
//! The check runs with fault drawing switched off: it plays the observer, not the system under
//! test, and must not confuse an injected read error with lost data.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use stormhold::env::sim::{DamageKind, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};

use super::model::{DirModel, FileId, FileModel};
use super::{DIRS, EnvWorkload, Stop, path};
use crate::verdict::{Violation, ViolationKind};

/// The model files a survivor's content matches, and the content.
type Matched = (Vec<FileId>, Vec<u8>);

/// What one surviving entry turned out to be.
struct Survivor {
    dir: &'static str,
    name: String,
    /// Every model file whose rules allow its content, and the content; `None` if media damage
    /// made it unreadable.
    matched: Option<Matched>,
}

impl EnvWorkload {
    /// Crashes (if the process still lives), restarts, checks, and adopts the survivors.
    pub(super) fn recover(&mut self) -> Result<(), Stop> {
        if self.process_crashed() {
            let in_flight = self.in_flight.take();
            if self.recover_process(in_flight)? {
                return Ok(());
            }
        }
        self.handles.clear();
        self.env.crash();
        self.env.restart();
        let chaos = self.op_index < self.config.ops;
        self.env.set_faults_enabled(false);
        let result = self.check_and_adopt();
        self.env.set_faults_enabled(chaos);
        self.recoveries += 1;
        result
    }

    /// Checks every legal post-crash image of the current pending state (each on a fork,
    /// faults off) against the model, before the run goes on with one drawn image.
    pub(super) fn check_images(&mut self) -> Result<(), Stop> {
        let images = crate::images::prepared_images(&self.env, self.config.images_max, self.op_index);
        let count = images.len();
        for (index, image) in images.into_iter().enumerate() {
            for dir in DIRS {
                self.check_dir(&image, dir).map_err(|stop| match stop {
                    Stop::Violation(violation) => {
                        Stop::Violation(crate::images::in_image(violation, index, count))
                    }
                    Stop::Crashed => Stop::Crashed,
                })?;
            }
        }
        self.images_explored += count as u64;
        Ok(())
    }

    fn check_and_adopt(&mut self) -> Result<(), Stop> {
        let mut survivors = Vec::new();
        for dir in DIRS {
            survivors.extend(self.check_dir(&self.env, dir)?);
        }
        self.adopt(survivors)
    }

    fn check_dir(&self, env: &SimEnv, dir: &'static str) -> Result<Vec<Survivor>, Stop> {
        let names = env.list_dir(&PathBuf::from(format!("/{dir}"))).map_err(|error| {
            self.violation(
                ViolationKind::Durability,
                format!("directory /{dir} unreadable after crash: {error}"),
            )
        })?;
        let candidates = self.dirs[dir].candidates();
        for (name, candidate) in &candidates {
            if candidate.must_exist && !names.contains(name) {
                return Err(self.violation(
                    ViolationKind::Durability,
                    format!(
                        "/{dir}/{name} was durably linked (directory synced) but is gone after the crash"
                    ),
                ));
            }
        }
        let mut survivors = Vec::new();
        for name in names {
            let legal = candidates.get(&name).map(|c| c.files.clone()).unwrap_or_default();
            if legal.is_empty() {
                return Err(self.violation(
                    ViolationKind::Invention,
                    format!("/{dir}/{name} exists after the crash, but no create or rename ever linked it"),
                ));
            }
            let matched = self.match_file(env, dir, &name, &legal)?;
            survivors.push(Survivor { dir, name, matched });
        }
        Ok(survivors)
    }

    /// Reads `dir/name` and finds every one of `legal` files whose model allows its content.
    fn match_file(
        &self,
        env: &SimEnv,
        dir: &str,
        name: &str,
        legal: &[FileId],
    ) -> Result<Option<Matched>, Stop> {
        let file_path = path(dir, name);
        let damage = env.damage_at(&file_path).unwrap_or_default();
        let content = match read_whole(env, &file_path) {
            Ok(content) => content,
            Err(error) if damage.iter().any(|(kind, _)| *kind == DamageKind::BadSector) => {
                env.note(format!("{}: unreadable after media damage ({error})", file_path.display()));
                return Ok(None);
            }
            Err(error) => {
                return Err(self.violation(
                    ViolationKind::Durability,
                    format!("{} unreadable after crash on a quiet disk: {error}", file_path.display()),
                ));
            }
        };
        let excused: Vec<Range<u64>> = damage.iter().map(|(_, range)| range.clone()).collect();
        let lengths_excused = damage.iter().any(|(kind, _)| *kind == DamageKind::Misdirect);
        let mut reasons = Vec::new();
        let mut matching = Vec::new();
        for &file in legal {
            match self.files[&file].check_recovered(&content, &self.config.faults, &excused, lengths_excused)
            {
                Ok(()) => matching.push(file),
                Err(reason) => reasons.push(format!("file#{file}: {reason}")),
            }
        }
        if !matching.is_empty() {
            return Ok(Some((matching, content)));
        }
        Err(self.violation(
            ViolationKind::Durability,
            format!("{} matches no legal post-crash state: {}", file_path.display(), reasons.join("; ")),
        ))
    }

    /// Makes the survivors the new known state.
    ///
    /// Two names can hold one inode (a rename whose unlink was lost), and the content cannot
    /// always tell that apart from two files. Two survivors may be one inode only if their
    /// content is identical and some model file matches both; then only the first name is kept
    /// and the others are removed durably, so every kept name is a distinct file.
    fn adopt(&mut self, survivors: Vec<Survivor>) -> Result<(), Stop> {
        let mut files = BTreeMap::new();
        let mut kept: Vec<(Vec<FileId>, Vec<u8>)> = Vec::new();
        let mut dirs: BTreeMap<&'static str, DirModel> =
            DIRS.iter().map(|&d| (d, DirModel::default())).collect();
        for survivor in survivors {
            let Some((matching, content)) = survivor.matched else {
                self.discard(survivor.dir, &survivor.name)?;
                continue;
            };
            let maybe_alias = kept.iter().any(|(other_matching, other_content)| {
                *other_content == content && other_matching.iter().any(|file| matching.contains(file))
            });
            if maybe_alias {
                self.discard(survivor.dir, &survivor.name)?;
                continue;
            }
            let id = self.next_file;
            self.next_file += 1;
            files.insert(id, FileModel::settled(content.clone()));
            kept.push((matching, content));
            let dir = dirs.get_mut(survivor.dir).unwrap_or_else(|| unreachable!("survivors come from DIRS"));
            dir.expected.insert(survivor.name.clone(), id);
            dir.durable.insert(survivor.name, id);
        }
        self.files = files;
        self.dirs = dirs;
        Ok(())
    }

    /// Removes a file durably (unreadable after media damage, an ambiguous link, or to free
    /// space), so the run goes on from a known state.
    fn discard(&self, dir: &str, name: &str) -> Result<(), Stop> {
        self.env.note(format!("discard /{dir}/{name}"));
        self.env
            .remove_file(&path(dir, name))
            .and_then(|()| self.env.sync_dir(&PathBuf::from(format!("/{dir}"))))
            .map_err(|error| {
                self.violation(ViolationKind::Liveness, format!("cannot remove /{dir}/{name}: {error}"))
            })
    }

    /// With faults off, the disk must take a durable write that survives a crash.
    pub(super) fn liveness_probe(&mut self) -> Result<(), Violation> {
        let stop_to_violation = |stop: Stop| match stop {
            Stop::Violation(violation) => violation,
            Stop::Crashed => unreachable!("faults are off in the quiet phase"),
        };
        self.env.set_faults_enabled(false);
        if self.config.faults.disk_bytes_max.is_some() {
            self.free_space().map_err(stop_to_violation)?;
        }
        let probe = PathBuf::from("/d0/liveness-probe");
        let data: Vec<u8> = (0..64u8).collect();
        let written = write_durably(&self.env, &probe, &data);
        self.env.crash();
        self.env.restart();
        let read = read_whole(&self.env, &probe);
        match (written, read) {
            (Ok(()), Ok(got)) if got == data => Ok(()),
            (written, read) => Err(Violation {
                kind: ViolationKind::Liveness,
                op_index: self.op_index,
                detail: format!("quiet-phase probe failed: write {written:?}, read back {read:?}"),
            }),
        }
    }

    fn free_space(&mut self) -> Result<(), Stop> {
        for dir in DIRS {
            let names: Vec<String> = self.dirs[dir].expected.keys().cloned().collect();
            for name in names {
                self.discard(dir, &name)?;
            }
        }
        Ok(())
    }
}

pub(super) fn read_whole(env: &impl Env, path: &Path) -> io::Result<Vec<u8>> {
    let file = env.open(path, OpenOptions::read_only())?;
    let mut content = vec![0; file.len()? as usize];
    file.read_exact_at(&mut content, 0)?;
    Ok(content)
}

fn write_durably(env: &impl Env, path: &Path, data: &[u8]) -> io::Result<()> {
    let file = env.open(path, OpenOptions::create().truncate(true))?;
    file.write_all_at(data, 0)?;
    file.sync_data()?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    env.sync_dir(parent)
}
