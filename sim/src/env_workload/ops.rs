//! The operations of the env workload, as data: drawn from the seed, or replayed from a
//! recording, so a corpus entry replays the same calls after the drawing code changes.
//!
//! Invariants: an operation names directories, entries and handles by index into the
//! workload's fixed tables and open handles (a handle index is taken modulo the handles open
//! when it runs, and a handle operation with none open does nothing); write data comes from a
//! per-operation seed, so a recording stays small.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{DIRS, EnvWorkload, FILE_SIZE_BYTES_MAX, NAMES, WRITE_SIZE_BYTES_MAX};

/// One operation of the env workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvOp {
    /// Open `DIRS[dir]/NAMES[name]`, creating it if `create`.
    Open {
        /// Directory index.
        dir: usize,
        /// Entry name index.
        name: usize,
        /// Create if missing.
        create: bool,
    },
    /// Write `len` bytes drawn from `data_seed` at `offset` through a handle.
    Write {
        /// Handle index.
        handle: usize,
        /// Byte offset.
        offset: u64,
        /// Byte count.
        len: u64,
        /// Seed of the bytes.
        data_seed: u64,
    },
    /// Truncate or extend through a handle.
    SetLen {
        /// Handle index.
        handle: usize,
        /// New length in bytes.
        len: u64,
    },
    /// `sync_all` (or `sync_data`) through a handle.
    Sync {
        /// Handle index.
        handle: usize,
        /// `sync_all` rather than `sync_data`.
        all: bool,
    },
    /// Read and compare with the model.
    Read {
        /// Handle index.
        handle: usize,
        /// Byte offset.
        offset: u64,
        /// Bytes asked for.
        len: u64,
    },
    /// Drop a handle.
    Close {
        /// Handle index.
        handle: usize,
    },
    /// Rename one entry to another (maybe across directories).
    Rename {
        /// Source (directory index, name index).
        from: (usize, usize),
        /// Target (directory index, name index).
        to: (usize, usize),
    },
    /// Remove an entry.
    Remove {
        /// Directory index.
        dir: usize,
        /// Entry name index.
        name: usize,
    },
    /// Sync a directory.
    SyncDir {
        /// Directory index.
        dir: usize,
    },
    /// List a directory and compare with the model.
    List {
        /// Directory index.
        dir: usize,
    },
    /// Read both clocks, after sleeping this long if set.
    Clock {
        /// Microseconds to sleep first.
        sleep_us: Option<u64>,
    },
    /// Crash the process between operations; with `check_images`, check every legal crash
    /// image first.
    Crash {
        /// Enumerate and check the crash images first.
        check_images: bool,
        /// Crash the process only, keeping the page cache (`CrashKind::Process`).
        #[serde(default)]
        process: bool,
    },
}

/// The bytes of a write with `data_seed`.
pub fn write_data(data_seed: u64, len: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(data_seed);
    (0..len).map(|_| rng.random()).collect()
}

impl EnvWorkload {
    fn entry_index(&mut self) -> (usize, usize) {
        (self.rng.random_range(0..DIRS.len()), self.rng.random_range(0..NAMES.len()))
    }

    /// Draws the next operation from the workload's and the image check's streams.
    pub(super) fn draw_op(&mut self) -> EnvOp {
        if self.rng.random_bool(self.config.driver_crash_probability) {
            let check_images = self.images_rng.random_bool(self.config.image_check_probability);
            // Drawn from a stream of its own, and only when process crashes are on, so the
            // operations of a seed without them stay what they were.
            let process =
                self.config.faults.process_crash_probability > 0.0 && self.process_rng.random_bool(0.5);
            return EnvOp::Crash { check_images, process };
        }
        let roll = self.rng.random_range(0..100);
        if self.handles.is_empty() || roll < 12 {
            let (dir, name) = self.entry_index();
            return EnvOp::Open { dir, name, create: self.rng.random_bool(0.7) };
        }
        let handle = self.rng.random_range(0..self.handles.len());
        let len_now = self.files[&self.handles[handle].file].expected.len() as u64;
        match roll {
            12..40 => EnvOp::Write {
                handle,
                offset: self.rng.random_range(0..=(len_now + 600).min(FILE_SIZE_BYTES_MAX)),
                len: self.rng.random_range(1..=WRITE_SIZE_BYTES_MAX),
                data_seed: self.rng.random(),
            },
            40..44 => EnvOp::SetLen { handle, len: self.rng.random_range(0..=FILE_SIZE_BYTES_MAX / 2) },
            44..56 => EnvOp::Sync { handle, all: self.rng.random_bool(0.5) },
            56..68 => {
                let offset = self.rng.random_range(0..=len_now);
                EnvOp::Read { handle, offset, len: self.rng.random_range(1..=2048) }
            }
            68..71 => EnvOp::Close { handle },
            71..78 => EnvOp::Rename { from: self.entry_index(), to: self.entry_index() },
            78..82 => {
                let (dir, name) = self.entry_index();
                EnvOp::Remove { dir, name }
            }
            82..94 => EnvOp::SyncDir { dir: self.rng.random_range(0..DIRS.len()) },
            94..97 => EnvOp::List { dir: self.rng.random_range(0..DIRS.len()) },
            _ => {
                let sleep_us = self.rng.random_bool(0.3).then(|| self.rng.random_range(1..10_000));
                EnvOp::Clock { sleep_us }
            }
        }
    }
}
