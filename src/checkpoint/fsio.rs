//! The few file operations the store builds its protocols from, each mapping an I/O failure to
//! a [`CheckpointError::Io`] that names the file and the step.

use std::io;
use std::path::Path;

use super::error::CheckpointError;
use super::{HIGH_WATER_FILE_NAME, HIGH_WATER_TMP_FILE_NAME, format};
use crate::env::{Env, EnvFile, OpenOptions};
use crate::identity::StoreIdentity;

pub(super) fn io<T>(op: &'static str, path: &Path, result: io::Result<T>) -> Result<T, CheckpointError> {
    result.map_err(|e| CheckpointError::io(op, path, e))
}

/// Writes `bytes` as the whole of the file at `path` (created, or truncated if it exists) and
/// syncs it. Its directory entry is not durable until the caller syncs the directory.
pub(super) fn write_synced<E: Env>(env: &E, path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let file = io("create", path, env.open(path, OpenOptions::create().truncate(true)))?;
    io("write", path, file.write_all_at(bytes, 0))?;
    io("sync", path, file.sync_data())
}

/// Opens the file at `path` for reading and returns it with its length.
pub(super) fn open_read<E: Env>(env: &E, path: &Path) -> io::Result<(E::File, u64)> {
    let file = env.open(path, OpenOptions::read_only())?;
    let len = file.len()?;
    Ok((file, len))
}

/// Reads the first `len` bytes of `file`.
pub(super) fn read_len<F: EnvFile>(file: &F, path: &Path, len: u64) -> Result<Vec<u8>, CheckpointError> {
    let len = usize::try_from(len).map_err(|_| {
        CheckpointError::io("read", path, io::Error::new(io::ErrorKind::FileTooLarge, "too large to read"))
    })?;
    let mut bytes = vec![0; len];
    io("read", path, file.read_exact_at(&mut bytes, 0))?;
    Ok(bytes)
}

/// Removes a file; a missing one is already removed.
pub(super) fn remove_file_if_present<E: Env>(env: &E, path: &Path) -> Result<(), CheckpointError> {
    match env.remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        result => io("remove file", path, result),
    }
}

/// Removes every file of the directory `dir`, then the directory. Not durable until the caller
/// syncs the directory holding `dir`.
pub(super) fn remove_dir_with_files<E: Env>(env: &E, dir: &Path) -> Result<(), CheckpointError> {
    for name in io("list directory", dir, env.list_dir(dir))? {
        remove_file_if_present(env, &dir.join(name))?;
    }
    io("remove directory", dir, env.remove_dir(dir))
}

/// Makes `HIGH_WATER` in `dir` hold `id`, durably: temporary name, sync, rename, sync `dir`.
pub(super) fn write_high_water<E: Env>(
    env: &E,
    dir: &Path,
    id: u64,
    identity: StoreIdentity,
) -> Result<(), CheckpointError> {
    let tmp = dir.join(HIGH_WATER_TMP_FILE_NAME);
    let path = dir.join(HIGH_WATER_FILE_NAME);
    write_synced(env, &tmp, &format::encode_high_water(id, Some(identity)))?;
    io("rename", &tmp, env.rename(&tmp, &path))?;
    io("sync directory", dir, env.sync_dir(dir))
}

/// Reads `HIGH_WATER` in `dir`: `Ok(0)` if there is none, `Ok(Err(why))` if it is damaged.
/// One that says it belongs to another store or shard than `identity` is
/// [`CheckpointError::Foreign`]: not damage to repair, a file in the wrong place.
pub(super) fn read_high_water<E: Env>(
    env: &E,
    dir: &Path,
    identity: StoreIdentity,
) -> Result<Result<u64, String>, CheckpointError> {
    let path = dir.join(HIGH_WATER_FILE_NAME);
    let (file, len) = match open_read(env, &path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Ok(0)),
        result => io("open", &path, result)?,
    };
    if len != format::HIGH_WATER_BYTES as u64 && len != format::HIGH_WATER_UNPLACED_BYTES as u64 {
        return Ok(Err(format!("{len} bytes, expected {}", format::HIGH_WATER_BYTES)));
    }
    let bytes = read_len(&file, &path, len)?;
    match format::decode_high_water(&bytes) {
        Err(error) => Ok(Err(error.to_string())),
        Ok((_, Some(found))) if found != identity => {
            Err(CheckpointError::Foreign { path, offset: 20, found, expected: identity })
        }
        Ok((id, _)) => Ok(Ok(id)),
    }
}
