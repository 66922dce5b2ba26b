//! Raw baselines on plain `std::fs` files: what the hardware and the OS give without the
//! kernel. Only the benchmark touches `std::fs` directly, and only here and for cleanup.
//!
//! Each baseline is set up once and then measured in slices (see `harness::interleave`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::harness::{BenchError, Budget, Rate, Unit, run_writers, timed};

/// Bytes written with zeros before the overwrite baseline starts; it wraps around at the end.
const PREALLOCATED_BYTES: u64 = 16 * 1024 * 1024;
/// Chunk of the zero fill and of sequential reads.
const CHUNK_BYTES: usize = 1024 * 1024;

fn create(path: &Path, append: bool) -> Result<File, BenchError> {
    Ok(OpenOptions::new().create_new(true).read(true).write(true).append(append).open(path)?)
}

/// Baseline A: append `record_bytes` and `fdatasync`, in a loop (the file grows each time).
pub fn append_fdatasync(
    dir: &Path,
    record_bytes: usize,
) -> Result<impl FnMut(Budget) -> Result<Rate, BenchError>, BenchError> {
    let mut file = create(&dir.join("append.raw"), true)?;
    let record = vec![0xa5; record_bytes];
    Ok(move |budget| {
        timed(budget, Unit::PerSecond, || {
            file.write_all(&record)?;
            file.sync_data()?;
            Ok(())
        })
    })
}

/// Baseline B: overwrite `record_bytes` of space that was written with zeros and synced
/// before the loop, then `fdatasync` (no size change, no allocation to journal).
pub fn overwrite_fdatasync(
    dir: &Path,
    record_bytes: usize,
) -> Result<impl FnMut(Budget) -> Result<Rate, BenchError>, BenchError> {
    let mut file = create(&dir.join("overwrite.raw"), false)?;
    let zeros = vec![0; CHUNK_BYTES];
    for _ in 0..PREALLOCATED_BYTES / CHUNK_BYTES as u64 {
        file.write_all(&zeros)?;
    }
    file.sync_all()?;
    let record = vec![0xa5; record_bytes];
    let mut offset = 0;
    Ok(move |budget| {
        timed(budget, Unit::PerSecond, || {
            if offset + record_bytes as u64 > PREALLOCATED_BYTES {
                offset = 0;
            }
            file.write_all_at(&record, offset)?;
            file.sync_data()?;
            offset += record_bytes as u64;
            Ok(())
        })
    })
}

/// Sequential appends of `record_bytes` each, one write call per record (as the WAL makes),
/// then one `fdatasync` per slice. The rate is in bytes.
pub fn append_loop(
    dir: &Path,
    record_bytes: usize,
) -> Result<impl FnMut(Budget) -> Result<Rate, BenchError>, BenchError> {
    let mut file = create(&dir.join("bulk.raw"), true)?;
    let record = vec![0xa5; record_bytes];
    Ok(move |budget| {
        let start = Instant::now();
        let writes = timed(budget, Unit::PerSecond, || Ok(file.write_all(&record)?))?;
        file.sync_data()?;
        let bytes = writes.amount * record_bytes as f64;
        Ok(Rate { amount: bytes, elapsed: start.elapsed(), unit: Unit::MibPerSecond })
    })
}

/// Reads `files` (path and byte count) sequentially in 1 MiB chunks, once per slice. The
/// rate is in bytes.
pub fn sequential_read(files: Vec<(PathBuf, u64)>) -> impl FnMut(Budget) -> Result<Rate, BenchError> {
    let mut buf = vec![0; CHUNK_BYTES];
    move |_budget| {
        let start = Instant::now();
        let mut total = 0;
        for (path, len) in &files {
            let mut file = File::open(path)?;
            let mut left = *len;
            while left > 0 {
                let want = left.min(CHUNK_BYTES as u64) as usize;
                let got = file.read(&mut buf[..want])?;
                if got == 0 {
                    return Err(format!("{} ends early", path.display()).into());
                }
                left -= got as u64;
                total += got as u64;
            }
        }
        Ok(Rate { amount: total as f64, elapsed: start.elapsed(), unit: Unit::MibPerSecond })
    }
}

/// The simple leader/follower group commit, straight on a file: append under a mutex; the
/// first committer that finds no sync in flight syncs everything appended so far outside the
/// mutex while the others wait on a condvar and keep appending into the next batch.
pub struct GroupCommit {
    file: File,
    state: Mutex<GroupState>,
    turn: Condvar,
    threads: usize,
    record: Vec<u8>,
}

struct GroupState {
    written: u64,
    durable: u64,
    syncing: bool,
    syncs: u64,
}

impl GroupCommit {
    /// A group-commit log in `dir` for `threads` writers of `record_bytes` each.
    pub fn new(dir: &Path, threads: usize, record_bytes: usize) -> Result<Self, BenchError> {
        Ok(Self {
            file: create(&dir.join(format!("group-{threads}.raw")), true)?,
            state: Mutex::new(GroupState { written: 0, durable: 0, syncing: false, syncs: 0 }),
            turn: Condvar::new(),
            threads,
            record: vec![0xa5; record_bytes],
        })
    }

    /// Commits per sync so far.
    pub fn average_batch(&self) -> f64 {
        match self.state.lock() {
            Ok(state) => state.durable as f64 / state.syncs.max(1) as f64,
            Err(_) => 0.0,
        }
    }

    fn commit(&self) -> Result<(), BenchError> {
        let lock_error = |_| -> BenchError { "a committer panicked".into() };
        let mut state = self.state.lock().map_err(lock_error)?;
        (&self.file).write_all(&self.record)?;
        state.written += 1;
        let seq = state.written;
        while state.durable < seq {
            if state.syncing {
                state = self.turn.wait(state).map_err(lock_error)?;
                continue;
            }
            let target = state.written;
            state.syncing = true;
            drop(state);
            let result = self.file.sync_data();
            state = self.state.lock().map_err(lock_error)?;
            state.syncing = false;
            if result.is_ok() {
                state.durable = target;
                state.syncs += 1;
            }
            self.turn.notify_all();
            result?;
        }
        Ok(())
    }
}

impl crate::harness::Contender for GroupCommit {
    fn slice(&mut self, budget: Budget) -> Result<Rate, BenchError> {
        let this = &*self;
        run_writers(self.threads, budget, || this.commit())
    }
}
