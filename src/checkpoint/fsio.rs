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

/// Bytes a checkpoint file is read in at a time: a file at most this long is read in one call.
pub(super) const READ_BLOCK_BYTES: usize = 1024 * 1024;

/// A file of known length read front to back through one bounded block, with the crc32 of
/// every byte read: the checkpoint decoder streams `DATA` through it, so loading holds one
/// block, not the whole file, beside the state it builds. A take larger than the block (one
/// huge value) grows it to that take, never past what the file holds.
pub(super) struct BlockSource<'a, F: EnvFile> {
    file: &'a F,
    path: &'a Path,
    len_bytes: u64,
    block: Vec<u8>,
    /// File offset of `block[0]`.
    block_offset: u64,
    /// Bytes of `block` taken already, and bytes of it read from the file.
    taken: usize,
    filled: usize,
    crc: crc32fast::Hasher,
    /// The first read that failed: the decoder sees only that the bytes are not there.
    failed: Option<io::Error>,
}

impl<'a, F: EnvFile> BlockSource<'a, F> {
    pub(super) fn new(file: &'a F, path: &'a Path, len_bytes: u64) -> Self {
        let block_bytes = usize::try_from(len_bytes).map_or(READ_BLOCK_BYTES, |l| l.min(READ_BLOCK_BYTES));
        Self {
            file,
            path,
            len_bytes,
            block: vec![0; block_bytes],
            block_offset: 0,
            taken: 0,
            filled: 0,
            crc: crc32fast::Hasher::new(),
            failed: None,
        }
    }

    /// A source that goes on from `offset` of the file, with `crc` the crc32 state of every
    /// byte before it (a loader that read the front itself hands the rest over).
    pub(super) fn resume(
        file: &'a F,
        path: &'a Path,
        len_bytes: u64,
        offset: u64,
        crc: crc32fast::Hasher,
    ) -> Self {
        assert!(offset <= len_bytes, "a source resumes inside its file");
        let left = len_bytes - offset;
        let block_bytes = usize::try_from(left).map_or(READ_BLOCK_BYTES, |l| l.min(READ_BLOCK_BYTES));
        let block = vec![0; block_bytes];
        Self { file, path, len_bytes, block, block_offset: offset, taken: 0, filled: 0, crc, failed: None }
    }

    /// Reads the next bytes of the file into the free end of the block (which has room).
    fn refill(&mut self) -> io::Result<()> {
        let file_offset = self.block_offset + self.filled as u64;
        let want = (self.block.len() - self.filled).min((self.len_bytes - file_offset) as usize);
        let fresh = &mut self.block[self.filled..self.filled + want];
        self.file.read_exact_at(fresh, file_offset)?;
        self.crc.update(fresh);
        self.filled += want;
        Ok(())
    }

    /// Reads (and checksums) whatever the decoder left unread, then returns the crc32 of the
    /// whole file, or the first read error.
    pub(super) fn finish(mut self) -> Result<u32, CheckpointError> {
        while self.failed.is_none() && self.block_offset + (self.filled as u64) < self.len_bytes {
            self.block_offset += self.filled as u64;
            (self.taken, self.filled) = (0, 0);
            if let Err(error) = self.refill() {
                self.failed = Some(error);
            }
        }
        match self.failed {
            Some(error) => Err(CheckpointError::io("read", self.path, error)),
            None => Ok(self.crc.finalize()),
        }
    }
}

impl<F: EnvFile> super::data::DataSource for BlockSource<'_, F> {
    fn take(&mut self, len: usize) -> Result<&[u8], super::data::DataError> {
        let offset = self.offset();
        if self.failed.is_some() || len as u64 > self.len_bytes - offset {
            return Err(super::data::ends_first(offset, len));
        }
        if self.filled - self.taken < len {
            // Move the unread rest to the front, grow the block for an oversized take, read on.
            self.block.copy_within(self.taken..self.filled, 0);
            self.block_offset += self.taken as u64;
            (self.filled, self.taken) = (self.filled - self.taken, 0);
            if self.block.len() < len {
                self.block.resize(len, 0);
            }
            if let Err(error) = self.refill() {
                self.failed = Some(error);
                return Err(super::data::ends_first(offset, len));
            }
        }
        let taken = &self.block[self.taken..self.taken + len];
        self.taken += len;
        Ok(taken)
    }

    fn offset(&self) -> u64 {
        self.block_offset + self.taken as u64
    }

    fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    fn buffered(&self) -> &[u8] {
        if self.failed.is_some() { &[] } else { &self.block[self.taken..self.filled] }
    }

    fn consume(&mut self, len: usize) {
        assert!(len <= self.filled - self.taken, "consumes only what is buffered");
        self.taken += len;
    }
}
