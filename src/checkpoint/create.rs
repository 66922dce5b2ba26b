//! Creating a checkpoint: validate the request, then publish it with the protocol of the
//! module docs (data synced and verified, `META` through a temporary name, directories
//! synced) before anything refers to it.

use std::path::Path;
use std::time::UNIX_EPOCH;

use super::data;
use super::error::CheckpointError;
use super::fsio::{self, io};
use super::meta::{CheckpointData, CheckpointKind, CheckpointMeta, FileEntry, UserMeta};
use super::{CheckpointStore, DATA_FILE_NAME, META_FILE_NAME, META_TMP_FILE_NAME, Slot, format};
use crate::env::Env;

impl<E: Env> CheckpointStore<E> {
    /// Creates and durably publishes a checkpoint of `data` at `epoch` and `lsn`, returning its
    /// metadata. A full checkpoint takes `parent: None`; an incremental one names a listed
    /// checkpoint with an intact chain as its parent.
    ///
    /// Refuses (without touching the disk or poisoning): an lsn below the latest checkpoint's
    /// or the parent's, a missing or unusable parent, a key both put and deleted, and an
    /// incremental once `full_every_incrementals` are chained on the parent
    /// ([`CheckpointError::FullCheckpointDue`]). Any I/O failure poisons the store; the id it
    /// was given is not handed out again by this store.
    pub fn create(
        &mut self,
        epoch: u64,
        lsn: u64,
        user: UserMeta,
        data: CheckpointData,
        parent: Option<u64>,
    ) -> Result<CheckpointMeta, CheckpointError> {
        self.check_writable()?;
        self.check_request(lsn, data.kind(), parent)?;
        let data_bytes =
            data::encode_data(&data).map_err(|e| CheckpointError::InvalidRequest(e.to_string()))?;
        let id = self.next_id;
        if id > format::CHECKPOINT_ID_MAX {
            let detail = format!("checkpoint ids are exhausted (next id {id})");
            return Err(CheckpointError::InvalidRequest(detail));
        }
        let file = FileEntry {
            name: DATA_FILE_NAME.to_string(),
            len_bytes: data_bytes.len() as u64,
            crc32: crc32fast::hash(&data_bytes),
        };
        let meta = CheckpointMeta {
            id,
            epoch,
            lsn,
            wall_time_ms: self.wall_time_ms(),
            user,
            size_bytes: file.len_bytes,
            key_count: data.key_count(),
            parent,
            kind: data.kind(),
            files: vec![file],
        };
        let envelope = format::encode_meta(&meta, Some(self.options.identity))
            .map_err(|e| CheckpointError::InvalidRequest(e.to_string()))?;
        assert_eq!(meta.check(id), Ok(()), "create builds only valid metadata");
        assert_eq!(
            format::decode_meta(&envelope),
            Ok((meta.clone(), Some(self.options.identity))),
            "the envelope round-trips"
        );
        self.next_id += 1;
        let published = self.publish(&meta, &data_bytes, &envelope);
        self.poison_on_error(published)?;
        self.slots.insert(id, Slot::Valid(meta.clone()));
        Ok(meta)
    }

    pub(super) fn check_request(
        &self,
        lsn: u64,
        kind: CheckpointKind,
        parent: Option<u64>,
    ) -> Result<(), CheckpointError> {
        let invalid = |what: String| Err(CheckpointError::InvalidRequest(what));
        if let Some(latest) = self.latest()
            && lsn < latest.lsn
        {
            return invalid(format!("lsn {lsn} is below the latest checkpoint's ({})", latest.lsn));
        }
        match (kind, parent) {
            (CheckpointKind::Full, None) => Ok(()),
            (CheckpointKind::Full, Some(parent)) => {
                invalid(format!("a full checkpoint with parent {parent}"))
            }
            (CheckpointKind::Incremental, None) => invalid("an incremental checkpoint needs a parent".into()),
            (CheckpointKind::Incremental, Some(parent)) => {
                let incrementals = match self.incrementals_in_chain(parent) {
                    Err(CheckpointError::NotFound { .. }) => return invalid(format!("no parent {parent}")),
                    Err(error) => return invalid(format!("parent {parent} is unusable: {error}")),
                    Ok(incrementals) => incrementals,
                };
                if self.meta(parent).is_some_and(|p| lsn < p.lsn) {
                    return invalid(format!("lsn {lsn} is below parent {parent}'s"));
                }
                if incrementals >= self.options.full_every_incrementals {
                    return Err(CheckpointError::FullCheckpointDue { parent, incrementals });
                }
                Ok(())
            }
        }
    }

    pub(super) fn wall_time_ms(&self) -> u64 {
        let since_epoch = self.env.now_wall().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }

    /// Writes the checkpoint directory of `meta`; returns once it is durably published.
    fn publish(
        &self,
        meta: &CheckpointMeta,
        data_bytes: &[u8],
        envelope: &[u8],
    ) -> Result<(), CheckpointError> {
        let env = &self.env;
        let dir = self.checkpoint_dir(meta.id);
        io("create directory", &dir, env.create_dir(&dir))?;
        let data_path = dir.join(DATA_FILE_NAME);
        fsio::write_synced(env, &data_path, data_bytes)?;
        verify_written(env, &data_path, data_bytes)?;
        self.publish_meta(&dir, envelope)
    }

    /// Steps 2 to 4 of the publication (module docs), once the data files are synced and
    /// verified in `dir`: `META` through its temporary name, the directories synced.
    pub(super) fn publish_meta(&self, dir: &Path, envelope: &[u8]) -> Result<(), CheckpointError> {
        let env = &self.env;
        let tmp = dir.join(META_TMP_FILE_NAME);
        fsio::write_synced(env, &tmp, envelope)?;
        verify_written(env, &tmp, envelope)?;
        // The entries of DATA and META.tmp become durable before META can exist (rule 11).
        io("sync directory", dir, env.sync_dir(dir))?;
        io("rename", &tmp, env.rename(&tmp, &dir.join(META_FILE_NAME)))?;
        io("sync directory", dir, env.sync_dir(dir))?;
        io("sync directory", &self.dir, env.sync_dir(&self.dir))
    }
}

/// Reads the file at `path` back through a new handle and checks it holds exactly `expected`.
pub(super) fn verify_written<E: Env>(env: &E, path: &Path, expected: &[u8]) -> Result<(), CheckpointError> {
    let (file, len) = io("open", path, fsio::open_read(env, path))?;
    if len != expected.len() as u64 {
        return Err(CheckpointError::DataLength {
            path: path.to_path_buf(),
            expected: expected.len() as u64,
            actual: len,
        });
    }
    let bytes = fsio::read_len(&file, path, len)?;
    if bytes != expected {
        return Err(CheckpointError::DataChecksum {
            path: path.to_path_buf(),
            expected: crc32fast::hash(expected),
            actual: crc32fast::hash(&bytes),
        });
    }
    Ok(())
}
