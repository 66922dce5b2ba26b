//! Opening a store: create its directory crash-safely, take the lock, classify every
//! checkpoint directory (valid, damaged or partial), remove the partial ones durably, make
//! every listed checkpoint durable, and settle the next id.
//!
//! Why the open syncs what it found (DESIGN.md rule 4, for checkpoints): after a *process*
//! crash the page cache keeps what the dead process did, so a `META` renamed into place just
//! before the crash (or a checkpoint directory whose entry in the store directory was not yet
//! synced) is listed although a power loss would still drop it. The store then builds on it:
//! an incremental child names it as parent, retention deletes older checkpoints and the WAL is
//! truncated because it covers them. So before `open` returns, each listed checkpoint's
//! directory is synced, then the store directory. The files need no sync: `create` syncs `DATA`
//! and `META.tmp` before the rename, so a `META` the page cache shows has durable bytes behind
//! it (after a failed sync the store is poisoned and never renames).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::error::CheckpointError;
use super::fsio::{self, io};
use super::{
    CheckpointOptions, CheckpointStore, HIGH_WATER_TMP_FILE_NAME, META_FILE_NAME, OpenReport, Slot, Unusable,
    format,
};
use crate::env::Env;
use crate::identity::StoreIdentity;

/// What one checkpoint directory turned out to be.
enum Found {
    Slot(Slot),
    Partial,
}

impl<E: Env> CheckpointStore<E> {
    /// Opens (creating if needed) the store in `dir`. Before it returns, every partial
    /// directory is durably gone and `HIGH_WATER` covers its id, every listed checkpoint is
    /// durable (even if an earlier process left it only in the page cache); damaged
    /// checkpoints are reported in the [`OpenReport`], and left alone.
    pub fn open(
        env: E,
        dir: &Path,
        options: CheckpointOptions,
    ) -> Result<(Self, OpenReport), CheckpointError> {
        options.validate()?;
        create_store_dir(&env, dir)?;
        let lock = io("lock directory", dir, env.lock_dir(dir))?;
        let identity = options.identity;
        let high_water = fsio::read_high_water(&env, dir, identity)?;
        let (slots, partials) = scan(&env, dir, identity)?;
        let seen_max = slots.keys().chain(&partials).copied().max().unwrap_or(0);
        let high_water_damaged = high_water.as_ref().err().cloned();
        let mut store = CheckpointStore {
            env,
            dir: dir.to_path_buf(),
            options,
            _lock: lock,
            slots,
            next_id: 0,
            high_water: high_water.unwrap_or(0),
            poisoned: None,
        };
        if high_water_damaged.is_some() {
            fsio::write_high_water(&store.env, dir, seen_max, identity)?;
            store.high_water = seen_max;
        }
        store.remove_partials(&partials, seen_max)?;
        store.sync_found()?;
        store.next_id = store.high_water.max(seen_max) + 1;
        let report = store.report(partials, high_water_damaged);
        Ok((store, report))
    }

    /// Removes partial directories: `HIGH_WATER` first covers every id seen, so none of
    /// theirs is handed out again once they are gone.
    fn remove_partials(&mut self, partials: &[u64], seen_max: u64) -> Result<(), CheckpointError> {
        if partials.is_empty() {
            return Ok(());
        }
        if seen_max > self.high_water {
            fsio::write_high_water(&self.env, &self.dir, seen_max, self.options.identity)?;
            self.high_water = seen_max;
        }
        for &id in partials {
            fsio::remove_dir_with_files(&self.env, &self.checkpoint_dir(id))?;
        }
        // The removals become durable with the store directory's sync in `sync_found`.
        Ok(())
    }

    /// Makes every listed checkpoint's directory durable, then the store directory (the
    /// entries of those directories, `HIGH_WATER`, and the removal of the partial ones): what
    /// an earlier process left only in the page cache is on disk before anything new relies on
    /// it (see the module docs). Damaged checkpoints are never relied on, and one may not even
    /// be a directory: they are left as found.
    fn sync_found(&self) -> Result<(), CheckpointError> {
        for meta in self.valid() {
            let dir = self.checkpoint_dir(meta.id);
            io("sync directory", &dir, self.env.sync_dir(&dir))?;
        }
        io("sync directory", &self.dir, self.env.sync_dir(&self.dir))
    }

    fn report(&self, partial_removed: Vec<u64>, high_water_damaged: Option<String>) -> OpenReport {
        let valid: Vec<u64> = self.valid().rev().map(|meta| meta.id).collect();
        let broken_chains = valid
            .iter()
            .filter_map(|&id| self.chain_problem(id).map(|reason| Unusable { id, reason }))
            .collect();
        OpenReport {
            valid,
            damaged: self.damaged(),
            broken_chains,
            partial_removed,
            high_water_damaged,
            next_id: self.next_id,
        }
    }
}

/// Creates the store directory if it is missing and makes its entry durable, so a crash during
/// creation leaves either no directory or an empty one, both of which open.
fn create_store_dir<E: Env>(env: &E, dir: &Path) -> Result<(), CheckpointError> {
    match env.create_dir(dir) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => {
            return Err(CheckpointError::io("create directory", dir, error));
        }
        _ => {}
    }
    if let Some(parent) = dir.parent() {
        io("sync directory", parent, env.sync_dir(parent))?;
    }
    Ok(())
}

/// Classifies every checkpoint directory: (valid and damaged ones by id, partial ids in order).
/// A `META` of another store or shard than `identity` fails the whole scan (see [`classify`]).
fn scan<E: Env>(
    env: &E,
    dir: &Path,
    identity: StoreIdentity,
) -> Result<(BTreeMap<u64, Slot>, Vec<u64>), CheckpointError> {
    let mut slots = BTreeMap::new();
    let mut partials = Vec::new();
    for name in io("list directory", dir, env.list_dir(dir))? {
        if name == HIGH_WATER_TMP_FILE_NAME {
            // Never renamed, so never read: a leftover of a crash while raising the mark.
            fsio::remove_file_if_present(env, &dir.join(name))?;
            continue;
        }
        let Some(id) = format::parse_checkpoint_dir_name(&name) else { continue };
        match classify(env, &dir.join(&name), id, identity)? {
            Found::Slot(slot) => {
                slots.insert(id, slot);
            }
            Found::Partial => partials.push(id),
        }
    }
    Ok((slots, partials))
}

/// Reads and checks the `META` of checkpoint directory `path`. A `META` that decodes but says
/// it belongs to another store or shard is [`CheckpointError::Foreign`], not a damaged slot:
/// falling back past it would hide a directory swapped in from elsewhere (and the one that
/// belongs here may be the one missing), so the store refuses to open, naming the file.
fn classify<E: Env>(
    env: &E,
    path: &Path,
    id: u64,
    identity: StoreIdentity,
) -> Result<Found, CheckpointError> {
    let meta_path = path.join(META_FILE_NAME);
    let damaged = |reason: String| Ok(Found::Slot(Slot::Damaged(reason)));
    let (file, len) = match fsio::open_read(env, &meta_path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Found::Partial),
        Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
            return damaged(format!("{} is not a directory", path.display()));
        }
        result => io("open", &meta_path, result)?,
    };
    if len > format::META_FILE_BYTES_MAX as u64 {
        let error = format::FormatError::BodyTooLong { len, max: format::META_BODY_BYTES_MAX };
        return damaged(CheckpointError::MetaFormat { path: meta_path, source: error }.to_string());
    }
    let bytes = fsio::read_len(&file, &meta_path, len)?;
    match format::decode_meta(&bytes) {
        Err(source) => damaged(CheckpointError::MetaFormat { path: meta_path, source }.to_string()),
        Ok((_, Some(found))) if found != identity => {
            Err(CheckpointError::Foreign { path: meta_path, offset: 20, found, expected: identity })
        }
        Ok((meta, _)) => match meta.check(id) {
            Err(check) => damaged(CheckpointError::MetaInvalid { path: meta_path, check }.to_string()),
            Ok(()) => Ok(Found::Slot(Slot::Valid(meta))),
        },
    }
}
