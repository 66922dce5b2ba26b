//! Reclaiming the disk space of files nothing reads any more, in bounded steps: WAL segments
//! behind the oldest retained checkpoint and the directories of checkpoints retention removed.
//!
//! Removing a large file is not free: on ext4 an `unlink` of a 270 MB checkpoint `DATA` took
//! 70 ms, freeing its extents and dropping its cached pages in one call. Done where retention
//! decides it (under the checkpoint lock, and for a WAL segment under the WAL's lock), that
//! was a commit's wait. So retention only makes a file unreachable, durably and cheaply, and
//! queues it here; each step then shrinks one queued file by at most
//! [`RECLAIM_STEP_BYTES`] from its end, or removes it once it is that small (2-3 ms a step,
//! measured), or removes a queued directory once it is empty.
//!
//! # Invariants
//!
//! - only an unreachable path is queued: a retired WAL segment was renamed away from every
//!   segment name and the rename is durable (`Wal::retire_before`); a checkpoint directory's
//!   `META` is durably gone (`CheckpointStore::apply_retention_deferred`). A crash anywhere in
//!   reclaiming so leaves garbage that recovery does not read, never a damaged file that it
//!   does: at the next open, the checkpoint store removes a directory without `META`, and the
//!   shard queues the retired segments it finds again;
//! - the queue is drained front to back, one bounded unit per step: no step frees more than
//!   [`RECLAIM_STEP_BYTES`] of one file;
//! - a path already gone is done, not an error (a crash between two steps, or a removal whose
//!   directory sync never happened).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use super::Failure;
use crate::checkpoint::CheckpointError;
use crate::env::{Env, EnvFile, OpenOptions};
use crate::wal::Wal;

/// Bytes one step frees of a file at most (8 MiB: 2-3 ms of `ftruncate` on ext4).
pub(super) const RECLAIM_STEP_BYTES: u64 = 8 << 20;

/// A path whose space is still to be reclaimed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Doomed {
    /// A file, shrunk then removed.
    File(PathBuf),
    /// A directory: each of its files, then the directory itself.
    Dir(PathBuf),
}

/// The queue of unreachable paths (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Reclaim {
    queue: VecDeque<Doomed>,
}

impl Reclaim {
    /// The queue of a shard at open: the segments an earlier process retired from `wal` and
    /// never removed (see the module docs).
    pub(super) fn of_retired<E: Env>(wal: &Wal<E>) -> Result<Self, Failure> {
        let segments = wal.retired_files().map_err(|e| Failure::wal("open", e))?;
        Ok(Self { queue: segments.into_iter().map(Doomed::File).collect() })
    }

    /// Queues `path`, a file nothing reads any more.
    pub(super) fn push_file(&mut self, path: PathBuf) {
        self.queue.push_back(Doomed::File(path));
    }

    /// Queues `path`, a directory nothing reads any more, with every file in it.
    pub(super) fn push_dir(&mut self, path: PathBuf) {
        self.queue.push_back(Doomed::Dir(path));
    }

    /// One bounded unit of reclaiming (see the module docs); returns whether there was any
    /// to do.
    pub(super) fn step<E: Env>(&mut self, env: &E) -> Result<bool, CheckpointError> {
        let Some(front) = self.queue.front() else { return Ok(false) };
        let done = match front {
            Doomed::File(path) => shrink_or_remove(env, path)?,
            Doomed::Dir(dir) => match first_file(env, dir)? {
                Some(file) => {
                    shrink_or_remove(env, &file)?;
                    false
                }
                None => {
                    gone_is_done(env.remove_dir(dir))
                        .map_err(|e| CheckpointError::io("remove directory", dir, e))?;
                    true
                }
            },
        };
        if done {
            self.queue.pop_front();
        }
        Ok(true)
    }

    /// Every unit left, one after the other.
    pub(super) fn drain<E: Env>(&mut self, env: &E) -> Result<(), CheckpointError> {
        while self.step(env)? {}
        Ok(())
    }
}

/// `Ok` for a path already gone.
fn gone_is_done(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        result => result,
    }
}

/// The first file (by name) in `dir`, `None` once it is empty or gone.
fn first_file<E: Env>(env: &E, dir: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    match env.list_dir(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CheckpointError::io("list directory", dir, error)),
        Ok(mut names) => {
            names.sort_unstable();
            Ok(names.first().map(|name| dir.join(name)))
        }
    }
}

/// Shrinks `path` by [`RECLAIM_STEP_BYTES`] from its end, or removes it when it holds no more
/// than that; returns whether it is gone.
fn shrink_or_remove<E: Env>(env: &E, path: &Path) -> Result<bool, CheckpointError> {
    let file = match env.open(path, OpenOptions::read_write()) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(true),
        result => result.map_err(|e| CheckpointError::io("open", path, e))?,
    };
    let len_bytes = file.len().map_err(|e| CheckpointError::io("stat", path, e))?;
    if len_bytes > RECLAIM_STEP_BYTES {
        file.set_len(len_bytes - RECLAIM_STEP_BYTES).map_err(|e| CheckpointError::io("shrink", path, e))?;
        return Ok(false);
    }
    drop(file);
    gone_is_done(env.remove_file(path)).map_err(|e| CheckpointError::io("remove", path, e))?;
    Ok(true)
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::env::sim::{FaultOptions, SimEnv};

    fn write_file(env: &SimEnv, path: &Path, len_bytes: u64) {
        let file = env.open(path, OpenOptions::create()).unwrap();
        file.set_len(len_bytes).unwrap();
        file.write_all_at(b"x", len_bytes - 1).unwrap();
    }

    fn len_of(env: &SimEnv, path: &Path) -> Option<u64> {
        env.open(path, OpenOptions::read_only()).ok().map(|f| f.len().unwrap())
    }

    #[test]
    fn a_file_shrinks_by_at_most_a_step_then_goes() {
        let env = SimEnv::new(1, FaultOptions::default()).unwrap();
        env.create_dir(Path::new("/d")).unwrap();
        let path = Path::new("/d/f");
        write_file(&env, path, 2 * RECLAIM_STEP_BYTES + 5);
        let mut reclaim = Reclaim::default();
        reclaim.push_file(path.to_path_buf());
        let mut lens = Vec::new();
        while reclaim.step(&env).unwrap() {
            lens.push(len_of(&env, path));
        }
        assert_eq!(lens, [Some(RECLAIM_STEP_BYTES + 5), Some(5), None]);
        assert!(!reclaim.step(&env).unwrap(), "nothing left to do");
    }

    #[test]
    fn a_directory_goes_file_by_file_then_itself() {
        let env = SimEnv::new(1, FaultOptions::default()).unwrap();
        env.create_dir(Path::new("/c")).unwrap();
        write_file(&env, Path::new("/c/DATA"), RECLAIM_STEP_BYTES + 1);
        write_file(&env, Path::new("/c/META"), 10);
        let mut reclaim = Reclaim::default();
        reclaim.push_dir(PathBuf::from("/c"));
        let mut steps = 0;
        while reclaim.step(&env).unwrap() {
            steps += 1;
            assert!(steps < 10, "bounded");
        }
        // DATA shrinks, DATA goes, META goes, the directory goes.
        assert_eq!(steps, 4);
        assert!(!env.exists(Path::new("/c")).unwrap());
    }

    #[test]
    fn paths_already_gone_are_done() {
        let env = SimEnv::new(1, FaultOptions::default()).unwrap();
        let mut reclaim = Reclaim::default();
        reclaim.push_file(PathBuf::from("/nowhere/f"));
        reclaim.push_dir(PathBuf::from("/nowhere"));
        reclaim.drain(&env).unwrap();
        assert!(!reclaim.step(&env).unwrap(), "nothing left to do");
    }
}
