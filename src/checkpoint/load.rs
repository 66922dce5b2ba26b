//! Loading state: a checkpoint's base image plus its chain of increments, every file checked
//! against the length its `META` records before it is read and against its crc32 before
//! anything decoded from it is used; and the search for the newest checkpoint that loads, with
//! the reason for every one passed over.
//!
//! `DATA` is streamed: read front to back in blocks of at most 1 MiB, checksummed and decoded
//! on the way, so loading holds one block beside the state it builds, not the whole file. A
//! file whose crc32 fails is a checksum failure whether or not its bytes also decoded.

use std::collections::BTreeMap;
use std::io;

use super::chain::{self, Changes};
use super::data::{self, DataSink};
use super::error::CheckpointError;
use super::fsio::{self, io};
use super::meta::{Bytes, CheckpointKind, CheckpointMeta};
use super::run::Run;
use super::{CheckpointStore, DATA_FILE_NAME, Fallback, FallbackReason, Loaded, LoadedRun, Slot};
use crate::env::Env;

impl<E: Env> CheckpointStore<E> {
    /// The state of checkpoint `id`: its chain's full base with every increment applied, oldest
    /// first. Damage (a missing, short, long or rotten file, a broken chain) is an error that
    /// names the file or the checkpoint; see [`CheckpointError::is_damage`].
    pub fn load(&self, id: u64) -> Result<BTreeMap<Bytes, Bytes>, CheckpointError> {
        Ok(self.load_run(id)?.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
    }

    /// [`CheckpointStore::load`] as a packed [`Run`]: the full image packed straight from its
    /// sorted stream, the increments folded in by one k-way merge (`chain.rs`).
    pub fn load_run(&self, id: u64) -> Result<Run, CheckpointError> {
        if let Some(Slot::Damaged(reason)) = self.slots.get(&id) {
            return Err(CheckpointError::Damaged { id, reason: reason.clone() });
        }
        let chain = self.chain_ids(id)?;
        let (mut base, mut changes) = (Run::new(), Vec::new());
        for at in chain.into_iter().rev() {
            let Some(meta) = self.meta(at) else {
                unreachable!("chain_ids returns listed checkpoints only");
            };
            let mut data = Changes::default();
            self.read_data(meta, &mut data)?;
            match meta.kind {
                CheckpointKind::Full => (base, changes) = (data.puts, Vec::new()),
                CheckpointKind::Incremental => changes.push(data),
            }
        }
        Ok(chain::merge_chain(base, &changes))
    }

    /// The newest checkpoint that loads, with every newer one passed over and why; `Ok(None)`
    /// when the store holds no checkpoint at all. When checkpoints exist but none loads, the
    /// error lists each one and why. An I/O failure (not damage) is returned as is: it says
    /// nothing about the checkpoint, so it is never a reason to fall back.
    pub fn load_latest_valid(&self) -> Result<Option<Loaded>, CheckpointError> {
        Ok(self.load_latest_valid_run()?.map(|loaded| Loaded {
            meta: loaded.meta,
            state: loaded.run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
            fallbacks: loaded.fallbacks,
        }))
    }

    /// [`CheckpointStore::load_latest_valid`] with the state as a packed [`Run`] (what
    /// recovery uses).
    pub fn load_latest_valid_run(&self) -> Result<Option<LoadedRun>, CheckpointError> {
        let mut fallbacks = Vec::new();
        for (&id, slot) in self.slots.iter().rev() {
            let reason = match slot {
                Slot::Damaged(why) => FallbackReason::DamagedMeta(why.clone()),
                Slot::Valid(meta) => match self.load_run(id) {
                    Ok(run) => return Ok(Some(LoadedRun { meta: meta.clone(), run, fallbacks })),
                    Err(CheckpointError::BrokenChain { .. }) => {
                        FallbackReason::BrokenChain(self.chain_problem(id).unwrap_or_default())
                    }
                    Err(error) if error.is_damage() => FallbackReason::DamagedData(error.to_string()),
                    Err(error) => return Err(error),
                },
            };
            fallbacks.push(Fallback { id, reason });
        }
        if fallbacks.is_empty() { Ok(None) } else { Err(CheckpointError::NoLoadableCheckpoint { fallbacks }) }
    }

    /// Verifies every file of checkpoint `meta` and decodes its data into `sink`. `DATA` is
    /// decoded as it is read (one block at a time, checksummed on the way), and the sink's
    /// content may be used only once this returns `Ok` (the whole file's crc32 matched); a
    /// file that fails its checksum is reported as such even where its bytes also fail to
    /// decode, as when it was checked before decoding.
    fn read_data(&self, meta: &CheckpointMeta, sink: &mut impl DataSink) -> Result<(), CheckpointError> {
        let dir = self.checkpoint_dir(meta.id);
        let mut decoded = None;
        for entry in &meta.files {
            let path = dir.join(&entry.name);
            let (file, len) = match fsio::open_read(&self.env, &path) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(CheckpointError::DataMissing { path });
                }
                result => io("open", &path, result)?,
            };
            if len != entry.len_bytes {
                return Err(CheckpointError::DataLength { path, expected: entry.len_bytes, actual: len });
            }
            let mut source = fsio::BlockSource::new(&file, &path, len);
            let summary = (entry.name == DATA_FILE_NAME).then(|| data::decode_into(&mut source, &mut *sink));
            let crc = source.finish()?;
            if crc != entry.crc32 {
                return Err(CheckpointError::DataChecksum { path, expected: entry.crc32, actual: crc });
            }
            if let Some(summary) = summary {
                decoded = Some((path, summary));
            }
        }
        let Some((path, summary)) = decoded else {
            return Err(CheckpointError::DataMissing { path: dir.join(DATA_FILE_NAME) });
        };
        let summary = summary.map_err(|source| CheckpointError::DataFormat { path: path.clone(), source })?;
        let described = |detail: String| CheckpointError::DataFormat {
            path: path.clone(),
            source: data::DataError { offset: 0, detail },
        };
        let kind = if summary.full { CheckpointKind::Full } else { CheckpointKind::Incremental };
        if kind != meta.kind {
            return Err(described(format!("holds a {kind:?} checkpoint, metadata says {:?}", meta.kind)));
        }
        if summary.entries != meta.key_count {
            return Err(described(format!(
                "holds {} entries, metadata says {}",
                summary.entries, meta.key_count
            )));
        }
        Ok(())
    }
}
