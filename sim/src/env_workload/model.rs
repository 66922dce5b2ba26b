//! The reference model of the env workload: what each file and directory must, may and must
//! not hold after a crash, under the rules of the `Env` contract.
//!
//! The model imports nothing from the simulated disk but option values; it is written from the
//! contract, not from the simulator's code, so it cannot share the simulator's bugs.
//!
//! Per file it keeps what the workload wrote (`expected`), what a successful sync made durable
//! (`durable`), the changes since that sync (`unsynced`), and the changes a failed sync covered
//! (`uncertain`: they may or may not be on disk, and no later sync settles that). After a
//! crash: bytes no such change touched must hold their durable value; touched bytes may hold
//! the old value, the new one, zeros, or (if the options allow garbage) anything; the length
//! lies between the bounds the changes allow. Per directory, the same for entries.

use std::collections::BTreeMap;
use std::ops::Range;
use stormhold::env::sim::FaultOptions;

/// Identifies a file (an inode) of the model.
pub type FileId = u64;

/// A change to a file since its content was last known durable.
#[derive(Clone, Debug)]
pub enum Change {
    /// Bytes written.
    Write {
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// Truncated or extended.
    SetLen {
        /// The new length in bytes.
        len: u64,
    },
    /// The durable content when a sync failed: where the uncertain changes touched it, the
    /// disk may still hold these bytes, whatever later syncs say. Touches nothing itself.
    Snapshot {
        /// The durable bytes at the failure.
        data: Vec<u8>,
    },
}

/// What the model knows of one file.
#[derive(Clone, Debug, Default)]
pub struct FileModel {
    /// What reads must return, if every call took effect as it said.
    pub expected: Vec<u8>,
    /// Content known durable (outside the ranges of `unsynced` and `uncertain`).
    pub durable: Vec<u8>,
    /// Changes since the last successful sync.
    pub unsynced: Vec<Change>,
    /// Changes covered by a failed sync: on disk or not, nobody knows.
    pub uncertain: Vec<Change>,
    /// A failed sync may have changed what reads return (drop and revert profiles).
    pub reads_unreliable: bool,
    /// After a failed sync, the durable length may be as low as this, whatever later syncs say.
    pub len_floor: Option<u64>,
}

fn write_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    if bytes.len() < start + data.len() {
        bytes.resize(start + data.len(), 0);
    }
    bytes[start..start + data.len()].copy_from_slice(data);
}

impl FileModel {
    /// A file whose content is known and durable (after a crash check).
    pub fn settled(content: Vec<u8>) -> Self {
        Self { expected: content.clone(), durable: content, ..Self::default() }
    }

    /// Records a write that returned `Ok(data.len())`.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        write_into(&mut self.expected, offset, data);
        self.unsynced.push(Change::Write { offset, data: data.to_vec() });
    }

    /// Records a `set_len` that returned `Ok`.
    pub fn set_len(&mut self, len: u64) {
        self.expected.resize(len as usize, 0);
        self.unsynced.push(Change::SetLen { len });
    }

    /// Records a sync that returned `Ok`.
    pub fn synced(&mut self) {
        self.durable = self.expected.clone();
        self.unsynced.clear();
    }

    /// Records a sync that failed: its changes are uncertain from now on.
    pub fn sync_failed(&mut self, cache_kept: bool) {
        self.uncertain.push(Change::Snapshot { data: self.durable.clone() });
        self.uncertain.append(&mut self.unsynced);
        self.reads_unreliable |= !cache_kept;
        let floor = self.durable.len() as u64;
        self.len_floor = Some(self.len_floor.map_or(floor, |old| old.min(floor)));
    }

    fn changes(&self) -> impl Iterator<Item = &Change> {
        self.unsynced.iter().chain(&self.uncertain)
    }

    /// The byte ranges a crash may have changed, widened to whole sectors when the disk does
    /// not promise powersafe overwrite.
    fn touched(&self, options: &FaultOptions) -> Vec<Range<u64>> {
        let sector = u64::from(options.sector_size_bytes);
        // A truncate that a failed sync covered may never reach the disk, even after later
        // syncs, so everything past its length may still hold the snapshot's bytes.
        let uncertain_truncates = self.uncertain.iter().filter_map(|change| match change {
            Change::SetLen { len } => Some(*len..u64::MAX),
            _ => None,
        });
        self.changes()
            .filter_map(|change| match change {
                Change::Write { offset, data } => {
                    let range = *offset..offset + data.len() as u64;
                    Some(if options.powersafe_overwrite {
                        range
                    } else {
                        range.start - range.start % sector..range.end.div_ceil(sector) * sector
                    })
                }
                Change::SetLen { .. } | Change::Snapshot { .. } => None,
            })
            .chain(uncertain_truncates)
            .collect()
    }

    fn length_bounds(&self) -> (u64, u64) {
        let durable = self.durable.len() as u64;
        let mut low = self.len_floor.map_or(durable, |floor| floor.min(durable));
        let mut high = durable;
        for change in self.changes() {
            match change {
                Change::Write { offset, data } => high = high.max(offset + data.len() as u64),
                Change::SetLen { len } => {
                    low = low.min(*len);
                    high = high.max(*len);
                }
                Change::Snapshot { data } => high = high.max(data.len() as u64),
            }
        }
        (low, high)
    }

    /// Checks the content `got` of this file after a crash. `excused` are ranges the simulator
    /// reports it damaged on purpose; `lengths_excused` is set when a misdirected write may have
    /// moved the end of the file.
    pub fn check_recovered(
        &self,
        got: &[u8],
        options: &FaultOptions,
        excused: &[Range<u64>],
        lengths_excused: bool,
    ) -> Result<(), String> {
        let (len_min, len_max) = self.length_bounds();
        let got_len = got.len() as u64;
        if !lengths_excused && !(len_min..=len_max).contains(&got_len) {
            return Err(format!("length {got_len} outside the legal {len_min}..={len_max}"));
        }
        let touched = self.touched(options);
        let garbage_possible = options.tear_fill.garbage > 0;
        let inside = |ranges: &[Range<u64>], at: u64| ranges.iter().any(|r| r.contains(&at));
        for (index, &byte) in got.iter().enumerate() {
            let at = index as u64;
            if inside(excused, at) {
                continue;
            }
            let old = self.durable.get(index).copied();
            if !inside(&touched, at) {
                let legal = match old {
                    Some(old) if at < len_min => byte == old,
                    Some(old) => byte == old || byte == 0,
                    None => byte == 0,
                };
                if !legal {
                    return Err(format!(
                        "byte {at} is {byte:#04x} but no unsynced change touched it (durable value {old:?})"
                    ));
                }
                continue;
            }
            if garbage_possible || byte == 0 || Some(byte) == old {
                continue;
            }
            let written = self.changes().any(|change| match change {
                Change::Write { offset, data } => {
                    at >= *offset && at < offset + data.len() as u64 && data[(at - offset) as usize] == byte
                }
                Change::Snapshot { data } => data.get(index) == Some(&byte),
                Change::SetLen { .. } => false,
            });
            if !written {
                return Err(format!("byte {at} is {byte:#04x}, which no write put there (invented)"));
            }
        }
        Ok(())
    }
}

/// A change to a directory entry since the directory was last synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirChange {
    /// An entry was created or renamed in.
    Link {
        /// The entry's name.
        name: String,
        /// The file it names.
        file: FileId,
    },
    /// An entry was removed or renamed out.
    Unlink {
        /// The entry's name.
        name: String,
    },
}

impl DirChange {
    fn name(&self) -> &str {
        match self {
            DirChange::Link { name, .. } | DirChange::Unlink { name } => name,
        }
    }
}

/// What the model knows of one directory.
#[derive(Clone, Debug, Default)]
pub struct DirModel {
    /// The entries as the workload sees them.
    pub expected: BTreeMap<String, FileId>,
    /// Entries known durable (unless a change names them).
    pub durable: BTreeMap<String, FileId>,
    /// Changes since the last successful directory sync.
    pub unsynced: Vec<DirChange>,
    /// Changes a failed directory sync covered.
    pub uncertain: Vec<DirChange>,
    /// What those names held durably before the failed sync (the disk may still hold it).
    pub uncertain_old: BTreeMap<String, FileId>,
}

/// What may be found under one name after a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryCandidates {
    /// The entry must be there.
    pub must_exist: bool,
    /// The files it may name (empty: it must not exist).
    pub files: Vec<FileId>,
}

impl DirModel {
    /// Records an entry operation that returned `Ok`.
    pub fn apply(&mut self, change: DirChange) {
        match &change {
            DirChange::Link { name, file } => self.expected.insert(name.clone(), *file),
            DirChange::Unlink { name } => self.expected.remove(name),
        };
        self.unsynced.push(change);
    }

    /// Records a directory sync that returned `Ok`.
    pub fn synced(&mut self) {
        self.durable = self.expected.clone();
        self.unsynced.clear();
    }

    /// Records a directory sync that failed.
    pub fn sync_failed(&mut self) {
        for change in &self.unsynced {
            if let Some(&file) = self.durable.get(change.name()) {
                self.uncertain_old.entry(change.name().to_owned()).or_insert(file);
            }
        }
        self.uncertain.append(&mut self.unsynced);
    }

    /// Every name that may exist after a crash, with what it may hold.
    pub fn candidates(&self) -> BTreeMap<String, EntryCandidates> {
        let mut names: BTreeMap<String, EntryCandidates> = BTreeMap::new();
        for (name, &file) in &self.durable {
            names.insert(name.clone(), EntryCandidates { must_exist: true, files: vec![file] });
        }
        for change in self.unsynced.iter().chain(&self.uncertain) {
            let entry = names
                .entry(change.name().to_owned())
                .or_insert(EntryCandidates { must_exist: false, files: Vec::new() });
            match change {
                // A removal may or may not have reached the disk.
                DirChange::Unlink { .. } => entry.must_exist = false,
                DirChange::Link { file, .. } => {
                    if !entry.files.contains(file) {
                        entry.files.push(*file);
                    }
                }
            }
        }
        // A failed directory sync may have dropped any of its operations for good (a later
        // sync does not write them again): such a name may hold its old file, or nothing.
        for change in &self.uncertain {
            let entry = names
                .entry(change.name().to_owned())
                .or_insert(EntryCandidates { must_exist: false, files: Vec::new() });
            entry.must_exist = false;
            if let Some(&old) = self.uncertain_old.get(change.name())
                && !entry.files.contains(&old)
            {
                entry.files.push(old);
            }
        }
        names
    }
}
