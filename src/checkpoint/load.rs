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

use super::data;
use super::error::CheckpointError;
use super::fsio::{self, io};
use super::meta::{Bytes, CheckpointData, CheckpointMeta};
use super::{CheckpointStore, DATA_FILE_NAME, Fallback, FallbackReason, Loaded, Slot};
use crate::env::Env;

impl<E: Env> CheckpointStore<E> {
    /// The state of checkpoint `id`: its chain's full base with every increment applied, oldest
    /// first. Damage (a missing, short, long or rotten file, a broken chain) is an error that
    /// names the file or the checkpoint; see [`CheckpointError::is_damage`].
    pub fn load(&self, id: u64) -> Result<BTreeMap<Bytes, Bytes>, CheckpointError> {
        if let Some(Slot::Damaged(reason)) = self.slots.get(&id) {
            return Err(CheckpointError::Damaged { id, reason: reason.clone() });
        }
        let chain = self.chain_ids(id)?;
        let mut state = BTreeMap::new();
        for at in chain.into_iter().rev() {
            let Some(meta) = self.meta(at) else {
                unreachable!("chain_ids returns listed checkpoints only");
            };
            self.read_data(meta)?.apply_to(&mut state);
        }
        Ok(state)
    }

    /// The newest checkpoint that loads, with every newer one passed over and why; `Ok(None)`
    /// when the store holds no checkpoint at all. When checkpoints exist but none loads, the
    /// error lists each one and why. An I/O failure (not damage) is returned as is: it says
    /// nothing about the checkpoint, so it is never a reason to fall back.
    pub fn load_latest_valid(&self) -> Result<Option<Loaded>, CheckpointError> {
        let mut fallbacks = Vec::new();
        for (&id, slot) in self.slots.iter().rev() {
            let reason = match slot {
                Slot::Damaged(why) => FallbackReason::DamagedMeta(why.clone()),
                Slot::Valid(meta) => match self.load(id) {
                    Ok(state) => return Ok(Some(Loaded { meta: meta.clone(), state, fallbacks })),
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

    /// Verifies every file of checkpoint `meta` and decodes its data. `DATA` is decoded as it
    /// is read (one block at a time, checksummed on the way), and the decoded data is used only
    /// once the whole file's crc32 matches; a file that fails its checksum is reported as
    /// such even where its bytes also fail to decode, as when it was checked before decoding.
    fn read_data(&self, meta: &CheckpointMeta) -> Result<CheckpointData, CheckpointError> {
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
            let data = (entry.name == DATA_FILE_NAME).then(|| data::decode_from(&mut source));
            let crc = source.finish()?;
            if crc != entry.crc32 {
                return Err(CheckpointError::DataChecksum { path, expected: entry.crc32, actual: crc });
            }
            if let Some(data) = data {
                decoded = Some((path, data));
            }
        }
        let Some((path, data)) = decoded else {
            return Err(CheckpointError::DataMissing { path: dir.join(DATA_FILE_NAME) });
        };
        let data = data.map_err(|source| CheckpointError::DataFormat { path: path.clone(), source })?;
        let described = |detail: String| CheckpointError::DataFormat {
            path: path.clone(),
            source: data::DataError { offset: 0, detail },
        };
        if data.kind() != meta.kind {
            return Err(described(format!(
                "holds a {:?} checkpoint, metadata says {:?}",
                data.kind(),
                meta.kind
            )));
        }
        if data.key_count() != meta.key_count {
            return Err(described(format!(
                "holds {} entries, metadata says {}",
                data.key_count(),
                meta.key_count
            )));
        }
        Ok(data)
    }
}
