//! Directory locks of [`SimEnv`]: the exclusive lock of [`Env::lock_dir`] and the shared one of
//! [`Env::lock_dir_shared`].
//!
//! Invariants: a directory has at most one exclusive holder, and never an exclusive and a
//! shared holder at once (either call fails with `WouldBlock` while the other kind is held,
//! as `flock` does between processes); any number of shared holders coexist; a crash releases
//! every lock (the process that held them is dead), and a guard of a dead generation releases
//! nothing when it drops. A shared lock creates nothing: without a `LOCK` file (no exclusive
//! holder ever existed) it holds nothing and returns `Ok(None)`, as `OsEnv` does.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::fs::{NodeId, components};
use super::state::State;
use super::{CallKind, SimEnv, lock};
#[cfg(doc)]
use crate::env::Env;
use crate::env::{LOCK_FILE_NAME, OpenOptions};

/// A directory lock of [`SimEnv`] (exclusive or shared); released on drop or by a crash.
pub struct SimDirLock {
    shared: Arc<Mutex<State>>,
    node: NodeId,
    generation: u64,
    kind_shared: bool,
}

impl std::fmt::Debug for SimDirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDirLock").field("node", &self.node).field("shared", &self.kind_shared).finish()
    }
}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        if state.generation != self.generation {
            return;
        }
        if !self.kind_shared {
            state.locks.remove(&self.node);
        } else if let Some(count) = state.shared_locks.get_mut(&self.node) {
            *count -= 1;
            if *count == 0 {
                state.shared_locks.remove(&self.node);
            }
        }
    }
}

fn would_block(path: &Path, held: &str) -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, format!("{} is locked {held}", path.display()))
}

impl SimEnv {
    /// [`Env::lock_dir`] (`shared` false) or [`Env::lock_dir_shared`] (`shared` true).
    pub(super) fn lock_dir_with(&self, path: &Path, shared: bool) -> io::Result<Option<SimDirLock>> {
        let what = || format!("lock_dir{} {}", if shared { "_shared" } else { "" }, path.display());
        let node = self.call(CallKind::LockDir, 0, None, what, |state, _| {
            let node = Self::resolve_dir(state, path)?;
            if state.locks.contains_key(&node) {
                return Err(would_block(path, "by another open store"));
            }
            let lock_path = path.join(LOCK_FILE_NAME);
            if shared {
                match state.fs.resolve(&components(&lock_path)?, &lock_path) {
                    Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                    result => result?,
                };
                *state.shared_locks.entry(node).or_insert(0) += 1;
                return Ok(Some(node));
            }
            if state.shared_locks.contains_key(&node) {
                return Err(would_block(path, "shared by a read-only open"));
            }
            state.fs.open(&components(&lock_path)?, &lock_path, OpenOptions::create())?;
            let generation = state.generation;
            state.locks.insert(node, generation);
            Ok(Some(node))
        })?;
        let generation = self.lock().generation;
        Ok(node.map(|node| SimDirLock {
            shared: Arc::clone(&self.shared),
            node,
            generation,
            kind_shared: shared,
        }))
    }
}
