//! Loading state: a checkpoint's base image plus its chain of increments, every file checked
//! against the length its `META` records before it is read and against its crc32 before
//! anything decoded from it is used; and the search for the newest checkpoint that loads, with
//! the reason for every one passed over.
//!
//! `DATA` is streamed: read front to back in blocks of at most 1 MiB, checksummed and decoded
//! on the way, so loading holds one block beside the state it builds, not the whole file. A
//! file whose crc32 fails is a checksum failure whether or not its bytes also decoded.
//!
//! Where the caller grants a helper thread ([`CheckpointStore::load_latest_valid_run_with`], which
//! recovery grants on an `Env` whose [`Env::parallelism`] leaves a core spare), a helper touches
//! every page of the arena blocks the decoded run will fill, ahead of the decoder, and hands them
//! over through a bounded channel: the copy of each entry into the run then takes no page fault (a
//! fresh block's faults were about 45% of a realistic `Kernel::open`; on 2 cores the helper keeps
//! up with about half the blocks, and the decoder allocates the rest itself). The helper reads,
//! writes and decides nothing the load depends on: it does no I/O, and a block it has not readied
//! yet is allocated by the decoder as without it, so what is read, in which order, and what loads
//! are the same with or without it (the simulator, whose parallelism is 1, never has one).

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc;

use super::chain::{self, Changes};
use super::data::{self, DataSink};
use super::error::CheckpointError;
use super::frame_load;
use super::fsio::{self, io};
use super::meta::{Bytes, CheckpointKind, CheckpointMeta};
use super::run::{BLOCK_BYTES, Run};
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
        self.load_run_with(id, false)
    }

    /// [`CheckpointStore::load_run`], with a helper thread readying arena blocks if `helper`
    /// (see the module docs).
    fn load_run_with(&self, id: u64, helper: bool) -> Result<Run, CheckpointError> {
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
            self.read_data(meta, &mut data, helper)?;
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
        self.load_latest_valid_run_with(false)
    }

    /// [`CheckpointStore::load_latest_valid_run`], with a helper thread readying the arena
    /// blocks of each run it decodes if `helper` and the `Env` allows threads (see the module
    /// docs). The same checkpoints load or fail, for the same reasons, either way.
    pub fn load_latest_valid_run_with(&self, helper: bool) -> Result<Option<LoadedRun>, CheckpointError> {
        let helper = helper && self.env.parallelism() > 1;
        let mut fallbacks = Vec::new();
        for (&id, slot) in self.slots.iter().rev() {
            let reason = match slot {
                Slot::Damaged(why) => FallbackReason::DamagedMeta(why.clone()),
                Slot::Valid(meta) => match self.load_run_with(id, helper) {
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
    fn read_data(
        &self,
        meta: &CheckpointMeta,
        sink: &mut Changes,
        helper: bool,
    ) -> Result<(), CheckpointError> {
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
            let helped = helper && len >= HELPED_BYTES_MIN;
            let framed = match entry.name == DATA_FILE_NAME {
                true => frame_load::open(&file, &path, len)?,
                false => None,
            };
            let (summary, crc) = match framed {
                // Version 2: frame by frame, each read straight into the run's blocks.
                Some(reader) => {
                    let (summary, crc) = frame_load::load(reader, &mut *sink, helped)?;
                    (Some(summary), crc)
                }
                None => {
                    let mut source = fsio::BlockSource::new(&file, &path, len);
                    let summary = (entry.name == DATA_FILE_NAME).then(|| {
                        if helped {
                            decode_with_helper(&mut source, &mut *sink, len)
                        } else {
                            data::decode_into(&mut source, &mut *sink)
                        }
                    });
                    (summary, source.finish()?)
                }
            };
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

/// A `DATA` file shorter than this is decoded without a helper (a thread would cost more
/// than the few faults it saves).
const HELPED_BYTES_MIN: u64 = 8 * BLOCK_BYTES as u64;

/// Arena blocks the helper readies ahead of the decoder (so at most this many MiB of touched,
/// unused blocks exist at a time).
const READY_BLOCKS_MAX: usize = 4;

/// [`data::decode_into`] of a `DATA` file of `len_bytes` into `sink`, with a helper thread
/// readying the blocks of its puts run (see the module docs). Without a thread (one fails to
/// start), the plain decode.
fn decode_with_helper<S: data::DataSource>(
    source: &mut S,
    sink: &mut Changes,
    len_bytes: u64,
) -> Result<data::DataSummary, data::DataError> {
    // A run takes fewer bytes than the file (1-byte lengths where the file has 4-byte ones)
    // but loses up to an entry at the end of each block: one spare per block of the file and
    // a few more, and the decoder allocates any block beyond them itself.
    let blocks = usize::try_from(len_bytes / BLOCK_BYTES as u64)
        .unwrap_or(usize::MAX)
        .saturating_add(READY_BLOCKS_MAX);
    std::thread::scope(|scope| {
        let (ready, readied) = mpsc::sync_channel(READY_BLOCKS_MAX);
        let spawned = std::thread::Builder::new()
            .name("stormhold-ckpt-blocks".into())
            .spawn_scoped(scope, move || ready_blocks(&ready, blocks));
        if spawned.is_err() {
            return data::decode_into(source, sink);
        }
        let mut helped = Helped { changes: sink, readied };
        data::decode_into(source, &mut helped)
        // `readied` is dropped here: the helper's next send fails and it ends.
    })
}

/// The helper: up to `count` empty blocks of [`BLOCK_BYTES`] with every page touched, until
/// the decoder hangs up.
fn ready_blocks(ready: &mpsc::SyncSender<Vec<u8>>, count: usize) {
    for _ in 0..count {
        let mut block = Vec::with_capacity(BLOCK_BYTES);
        // Writing the bytes faults each page in here, on the helper's core. The byte is
        // opaque to the compiler, which would otherwise make this allocation a `calloc`
        // (fresh pages are zero already, so it writes nothing and faults nothing in).
        block.resize(BLOCK_BYTES, std::hint::black_box(0));
        block.clear();
        if ready.send(block).is_err() {
            return;
        }
    }
}

/// A sink that fills its puts run from the helper's blocks.
struct Helped<'a> {
    changes: &'a mut Changes,
    readied: mpsc::Receiver<Vec<u8>>,
}

impl DataSink for Helped<'_> {
    fn counts(&mut self, puts: usize, deletes: usize) {
        self.changes.counts(puts, deletes);
    }

    #[inline]
    fn put(&mut self, key: &[u8], value: &[u8]) {
        let readied = &self.readied;
        self.changes.puts.push_with(key, value, |capacity| {
            // A block the helper has not readied yet is not waited for: allocated here.
            let block = (capacity == BLOCK_BYTES).then(|| readied.try_recv().ok()).flatten();
            block.unwrap_or_else(|| Vec::with_capacity(capacity))
        });
    }

    fn is_put(&self, key: &[u8]) -> bool {
        self.changes.is_put(key)
    }

    fn delete(&mut self, key: &[u8]) {
        self.changes.delete(key);
    }
}
