//! Creating a checkpoint in bounded steps: the same publication as `create` (module docs),
//! with `DATA` streamed in chunks the caller sizes, so no single call writes, syncs or reads
//! back the whole image.
//!
//! ```text
//!   stage           the request checked, an id taken, ckpt-<id>/ and DATA created, a
//!                   placeholder header written
//!   put / delete    entries encoded into the chunk buffer (no I/O), in the layout's order
//!   write_chunk     the buffer written after the last chunk, read back and compared; DATA
//!                   synced once UNSYNCED_BYTES_MAX are written since the last sync, and
//!                   each chunk not synced handed to writeback at once (a hint)
//!   finish_staged   the last chunk, the real header (counts known now) written at 0, synced
//!                   and read back; META through its temporary name; directories synced
//! ```
//!
//! # Invariants
//!
//! - every byte of `DATA` is read back, and synced, before `META` is written, as `create`
//!   does it (rules 6 and 11); the file's crc32 is the header's combined with the
//!   chunks', computed from the bytes as written;
//! - entries go in the layout's order (puts by strictly increasing key, then deletes by
//!   strictly increasing key), refused otherwise, so the file always decodes;
//! - writeback starts as each chunk is written (`EnvFile::start_writeback`), so the disk
//!   takes the checkpoint in chunk-sized writes spread over its writing instead of a burst
//!   of up to `UNSYNCED_BYTES_MAX` at each sync, during which a WAL sync of the same disk
//!   waits behind it (issue 11: the slowest commits beside checkpoints spent 91-95% of their
//!   time in the WAL `fdatasync`). The hint gives no durability: the rules above rest on
//!   the syncs alone, and a failed hint fails the checkpoint like a failed sync;
//! - any I/O failure poisons the store, as in `create`; a crash or an abandoned stage leaves
//!   a directory without `META`: partial, removed at the next open, its id never reused.

use std::path::PathBuf;

use super::data::{self, DATA_HEADER_BYTES};
use super::error::CheckpointError;
use super::frame::Framer;
use super::fsio::io;
use super::meta::{Bytes, CheckpointKind, CheckpointMeta, FileEntry, UserMeta};
use super::{CheckpointStore, DATA_FILE_NAME, Slot, format};
use crate::env::{Env, EnvFile, OpenOptions};

/// Bytes of `DATA` written before a chunk syncs it (the last sync, at the finish, flushes
/// no more than this).
pub const UNSYNCED_BYTES_MAX: u64 = 4 << 20;

/// A checkpoint being written (see the module docs). Holds its open `DATA` file.
pub struct StagedCheckpoint<F> {
    id: u64,
    epoch: u64,
    lsn: u64,
    user: UserMeta,
    kind: CheckpointKind,
    parent: Option<u64>,
    dir: PathBuf,
    data_path: PathBuf,
    file: F,
    /// The chunk not yet written, in frames (see `frame`).
    framer: Framer,
    /// Bytes of `DATA` written and verified, the header's placeholder included.
    written_bytes: u64,
    /// Bytes written since `DATA` was last synced.
    unsynced_bytes: u64,
    /// crc32 of the chunks written (the header excluded: it is written last).
    body_crc: crc32fast::Hasher,
    puts: u64,
    deletes: u64,
    /// The last key added in the current phase (puts, then deletes): reused, so an entry
    /// allocates nothing; `has_last` says whether it holds one.
    last_key: Bytes,
    has_last: bool,
    in_deletes: bool,
    /// The buffer a chunk is read back into (reused from chunk to chunk).
    back: Vec<u8>,
}

impl<F> StagedCheckpoint<F> {
    /// The checkpoint's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes encoded and not yet written.
    pub fn buffered_bytes(&self) -> usize {
        self.framer.len()
    }

    /// Whether adding `key` with `value` would close the open frame by its size (see
    /// `frame::Framer::would_close`; never right after a chunk is written: no frame is open).
    pub fn would_close_frame(&self, key: &[u8], value: Option<&[u8]>) -> bool {
        self.framer.would_close(key.len(), value.map_or(0, <[u8]>::len))
    }

    /// Bytes of `DATA` written so far (the placeholder header included).
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Adds a put (a delete with `None`; only in an incremental checkpoint). Refuses an entry
    /// out of the layout's order, a put after a delete, or a key or value too long.
    pub fn entry(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), CheckpointError> {
        let invalid = |what: String| Err(CheckpointError::InvalidRequest(what));
        match value {
            Some(_) if self.in_deletes => return invalid(format!("put of {key:?} after a delete")),
            None if self.kind == CheckpointKind::Full => {
                return invalid("a delete in a full checkpoint".into());
            }
            None if !self.in_deletes => {
                self.in_deletes = true;
                self.has_last = false;
                // A frame holds puts or deletes, never both.
                self.framer.close_frame();
            }
            _ => {}
        }
        if self.has_last && self.last_key.as_slice() >= key {
            return invalid(format!("key {key:?} is not after the last one"));
        }
        self.framer
            .entry(key, value.unwrap_or_default())
            .map_err(|e| CheckpointError::InvalidRequest(e.to_string()))?;
        match value {
            Some(_) => self.puts += 1,
            None => self.deletes += 1,
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.has_last = true;
        Ok(())
    }
}

impl<F> StagedCheckpoint<F> {
    /// Adds `count` puts laid out already (a stretch of a run's block, `body`: see
    /// `crate::checkpoint::frame::Framer::entries`), from `first_key` to `last_key`.
    /// Refuses what [`StagedCheckpoint::entry`] refuses of its first put.
    pub fn puts(
        &mut self,
        body: &[u8],
        count: u32,
        first_key: &[u8],
        last_key: &[u8],
    ) -> Result<(), CheckpointError> {
        let invalid = |what: String| Err(CheckpointError::InvalidRequest(what));
        if self.in_deletes {
            return invalid(format!("put of {first_key:?} after a delete"));
        }
        if self.has_last && self.last_key.as_slice() >= first_key {
            return invalid(format!("key {first_key:?} is not after the last one"));
        }
        self.framer.entries(body, count);
        self.puts += u64::from(count);
        self.last_key.clear();
        self.last_key.extend_from_slice(last_key);
        self.has_last = true;
        Ok(())
    }

    /// Bytes of entries the open frame takes before its bound (see
    /// `crate::checkpoint::frame::Framer::room_bytes`).
    pub fn frame_room_bytes(&self) -> usize {
        self.framer.room_bytes()
    }
}

impl<E: Env> CheckpointStore<E> {
    /// Begins a checkpoint at `epoch` and `lsn` (see the module docs): checks the request as
    /// `create` does, takes the next id, creates its directory and `DATA`.
    pub fn stage(
        &mut self,
        epoch: u64,
        lsn: u64,
        user: UserMeta,
        kind: CheckpointKind,
        parent: Option<u64>,
    ) -> Result<StagedCheckpoint<E::File>, CheckpointError> {
        self.check_writable()?;
        self.check_request(lsn, kind, parent)?;
        let id = self.next_id;
        if id > format::CHECKPOINT_ID_MAX {
            let detail = format!("checkpoint ids are exhausted (next id {id})");
            return Err(CheckpointError::InvalidRequest(detail));
        }
        self.next_id += 1;
        let dir = self.checkpoint_dir(id);
        let data_path = dir.join(DATA_FILE_NAME);
        let created = (|| {
            io("create directory", &dir, self.env.create_dir(&dir))?;
            let file =
                io("create", &data_path, self.env.open(&data_path, OpenOptions::create().truncate(true)))?;
            io("write", &data_path, file.write_all_at(&[0; DATA_HEADER_BYTES], 0))?;
            Ok(file)
        })();
        let file = self.poison_on_error(created)?;
        Ok(StagedCheckpoint {
            id,
            epoch,
            lsn,
            user,
            kind,
            parent,
            dir,
            data_path,
            file,
            framer: Framer::new(),
            written_bytes: DATA_HEADER_BYTES as u64,
            unsynced_bytes: DATA_HEADER_BYTES as u64,
            body_crc: crc32fast::Hasher::new(),
            puts: 0,
            deletes: 0,
            last_key: Vec::new(),
            has_last: false,
            in_deletes: false,
            back: Vec::new(),
        })
    }

    /// Writes the buffered chunk after the last one and reads it back; syncs `DATA` once
    /// [`UNSYNCED_BYTES_MAX`] are written since the last sync, so the sync that finishes the
    /// checkpoint flushes at most that much.
    pub fn write_chunk(&mut self, staged: &mut StagedCheckpoint<E::File>) -> Result<(), CheckpointError> {
        self.check_writable()?;
        if staged.framer.is_empty() {
            return Ok(());
        }
        let sync = staged.unsynced_bytes + staged.framer.len() as u64 >= UNSYNCED_BYTES_MAX;
        let StagedCheckpoint {
            file, data_path, framer, back, written_bytes, body_crc, unsynced_bytes, ..
        } = &mut *staged;
        let chunk = framer.closed_bytes();
        let written = write_verified(file, data_path, chunk, *written_bytes, sync, back);
        self.poison_on_error(written)?;
        body_crc.update(chunk);
        *written_bytes += chunk.len() as u64;
        *unsynced_bytes = if sync { 0 } else { *unsynced_bytes + chunk.len() as u64 };
        framer.clear();
        Ok(())
    }

    /// Writes the last chunk and the header, then publishes the checkpoint as `create` does.
    /// Returns its metadata once it is durably published.
    pub fn finish_staged(
        &mut self,
        mut staged: StagedCheckpoint<E::File>,
    ) -> Result<CheckpointMeta, CheckpointError> {
        self.write_chunk(&mut staged)?;
        // The request still holds: nothing was published in between (re-checked, cheaply).
        self.check_request(staged.lsn, staged.kind, staged.parent)?;
        let full = staged.kind == CheckpointKind::Full;
        let header = data::encode_header(full, staged.puts, staged.deletes);
        // The header and every chunk since the last sync become durable here.
        let written = write_verified(&staged.file, &staged.data_path, &header, 0, true, &mut staged.back);
        self.poison_on_error(written)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.combine(&staged.body_crc);
        let file = FileEntry {
            name: DATA_FILE_NAME.to_string(),
            len_bytes: staged.written_bytes,
            crc32: crc.finalize(),
        };
        let meta = CheckpointMeta {
            id: staged.id,
            epoch: staged.epoch,
            lsn: staged.lsn,
            wall_time_ms: self.wall_time_ms(),
            user: staged.user,
            size_bytes: file.len_bytes,
            key_count: staged.puts + staged.deletes,
            parent: staged.parent,
            kind: staged.kind,
            files: vec![file],
        };
        let envelope = format::encode_meta(&meta, Some(self.options.identity))
            .map_err(|e| CheckpointError::InvalidRequest(e.to_string()))?;
        assert_eq!(meta.check(meta.id), Ok(()), "a staged checkpoint builds only valid metadata");
        let published = self.publish_meta(&staged.dir, &envelope);
        self.poison_on_error(published)?;
        self.slots.insert(meta.id, Slot::Valid(meta.clone()));
        Ok(meta)
    }
}

/// Writes `bytes` at `offset` of `file`, syncs the file if `sync`, and reads the bytes back
/// through the handle into `back` (a buffer reused from call to call).
fn write_verified<F: EnvFile>(
    file: &F,
    path: &std::path::Path,
    bytes: &[u8],
    offset: u64,
    sync: bool,
    back: &mut Vec<u8>,
) -> Result<(), CheckpointError> {
    io("write", path, file.write_all_at(bytes, offset))?;
    if sync {
        io("sync", path, file.sync_data())?;
    } else {
        // Written back from now, not all at the next sync (no durability: see the docs).
        let len = bytes.len() as u64;
        io("start writeback (sync_file_range)", path, file.start_writeback(offset, len))?;
    }
    // Stale bytes of an earlier chunk never pass for this one: the read fills all of it.
    back.clear();
    back.resize(bytes.len(), 0);
    io("read", path, file.read_exact_at(back, offset))?;
    if back.as_slice() != bytes {
        return Err(CheckpointError::DataChecksum {
            path: path.to_path_buf(),
            expected: crc32fast::hash(bytes),
            actual: crc32fast::hash(back),
        });
    }
    Ok(())
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::checkpoint::{CheckpointData, CheckpointOptions};
    use crate::env::sim::{FaultOptions, SimEnv};

    fn store(env: &SimEnv) -> CheckpointStore<SimEnv> {
        CheckpointStore::open(env.clone(), Path::new("/ck"), CheckpointOptions::default()).expect("open").0
    }

    fn kv(k: &str, v: &str) -> (Bytes, Bytes) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn a_staged_checkpoint_written_in_chunks_loads_as_the_same_data_as_create() {
        let env = SimEnv::new(3, FaultOptions::default()).expect("env");
        let mut store = self::store(&env);
        let state: BTreeMap<Bytes, Bytes> = [kv("a", "1"), kv("b", "22"), kv("c", "333")].into();
        let mut staged = store.stage(1, 7, UserMeta::default(), CheckpointKind::Full, None).expect("stage");
        for (i, (key, value)) in state.iter().enumerate() {
            staged.entry(key, Some(value)).expect("entry");
            if i % 2 == 0 {
                store.write_chunk(&mut staged).expect("chunk");
                assert_eq!(staged.buffered_bytes(), 0);
            }
        }
        let full = store.finish_staged(staged).expect("finish");
        let mut staged = store
            .stage(2, 9, UserMeta::default(), CheckpointKind::Incremental, Some(full.id))
            .expect("stage");
        staged.entry(b"b", Some(b"new")).expect("put");
        staged.entry(b"a", None).expect("a delete after the puts restarts the order");
        assert!(staged.entry(b"z", Some(b"late")).is_err(), "a put after a delete is refused");
        staged.entry(b"c", None).expect("delete");
        assert!(staged.entry(b"c", None).is_err(), "a repeated key is refused");
        let inc = store.finish_staged(staged).expect("finish");
        drop(store);
        env.crash();
        env.restart();
        let store = self::store(&env);
        assert_eq!(store.list().len(), 2, "both published durably");
        let loaded = store.load_latest_valid().expect("load").expect("a checkpoint");
        assert_eq!(loaded.meta.id, inc.id);
        assert_eq!(loaded.state, [kv("b", "new")].into(), "a deleted, b put, c deleted");
        let expected = store.meta(full.id).expect("listed");
        assert_eq!((expected.key_count, expected.kind), (3, CheckpointKind::Full));
        // The same image through `create` frames it differently (one frame, where the staged
        // writer ends a frame at each chunk) and loads as the same state.
        let env2 = SimEnv::new(4, FaultOptions::default()).expect("env");
        let mut other = self::store(&env2);
        let created = other
            .create(1, 7, UserMeta::default(), CheckpointData::Full(state.clone()), None)
            .expect("create");
        assert_eq!((created.key_count, created.kind), (expected.key_count, expected.kind));
        assert!(created.files[0].len_bytes < expected.files[0].len_bytes, "fewer frames, fewer headers");
        assert_eq!(other.load(created.id).expect("load"), state);
        assert_eq!(store.load(full.id).expect("load"), state);
    }

    #[test]
    fn each_chunk_not_synced_is_handed_to_writeback_as_it_is_written() {
        let env = SimEnv::new(6, FaultOptions::default()).expect("env");
        let mut store = self::store(&env);
        let mut staged = store.stage(1, 3, UserMeta::default(), CheckpointKind::Full, None).expect("stage");
        let value = vec![7; 1 << 20];
        let mut chunk_bytes = Vec::new();
        for i in 0..6u32 {
            staged.entry(&i.to_be_bytes(), Some(&value)).expect("entry");
            chunk_bytes.push(staged.buffered_bytes() as u64);
            store.write_chunk(&mut staged).expect("chunk");
        }
        // The header and three chunks stay under UNSYNCED_BYTES_MAX; the fourth chunk
        // reaches it and syncs instead of hinting; the count starts again after it.
        let hinted: u64 = chunk_bytes[..3].iter().chain(&chunk_bytes[4..]).sum();
        assert_eq!(env.writeback_hints(), (5, hinted), "every chunk but the syncing one is hinted");
        store.finish_staged(staged).expect("finish");
        assert_eq!(env.writeback_hints().0, 5, "the header is synced, never only hinted");
    }

    #[test]
    fn a_staged_checkpoint_cut_off_by_a_crash_is_never_listed() {
        let env = SimEnv::new(5, FaultOptions::default()).expect("env");
        let mut store = self::store(&env);
        let mut staged = store.stage(1, 3, UserMeta::default(), CheckpointKind::Full, None).expect("stage");
        staged.entry(b"k", Some(b"v")).expect("entry");
        store.write_chunk(&mut staged).expect("chunk");
        drop((staged, store));
        env.crash();
        env.restart();
        let mut store = self::store(&env);
        assert!(store.list().is_empty(), "never published");
        let state = BTreeMap::from([kv("k", "w")]);
        let meta = store
            .create(1, 3, UserMeta::default(), CheckpointData::Full(state.clone()), None)
            .expect("create");
        let loaded = store.load_latest_valid().expect("load").expect("a checkpoint");
        assert_eq!((loaded.meta.id, loaded.state), (meta.id, state), "the partial one is gone");
    }
}
