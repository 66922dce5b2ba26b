//! A real small store on a perfect `SimEnv`: a few shards, acknowledged commits (puts and
//! deletes, each durable before it returns), maybe a checkpoint, closed cleanly. The
//! whole-open target damages its files; the decoder targets take their seeds from them.
//!
//! Invariant: [`Built::model`] holds exactly the state of every acknowledged commit (a commit
//! that returned an error is a finding of the builder, not a silent gap in the model).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stormhold::env::OpenOptions;
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile};
use stormhold::{Config, Durability, Kernel, Router};

use crate::Choices;

/// The store's directory in the simulated file system.
pub const STORE_DIR: &str = "/store";
/// Keys the builder writes (`key-00` .. `key-11`), few so commits overwrite each other.
pub const KEYS: u8 = 12;
/// WAL segment size of the built store: small, so it has several segments.
pub const SEGMENT_SIZE_BYTES: u64 = 32 * 1024;

/// What the builder made.
pub struct Built {
    /// The machine holding the store.
    pub env: SimEnv,
    /// The configuration to reopen it with.
    pub config: Config,
    /// The acknowledged state.
    pub model: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The key with index `index`.
pub fn key(index: u8) -> Vec<u8> {
    format!("key-{index:02}").into_bytes()
}

/// Builds a store as `choices` say: 1 to 3 shards, 4 to 35 commits, an optional checkpoint.
/// `Err` is a description of a kernel call that failed on a perfect disk.
pub fn build(choices: &mut Choices<'_>) -> Result<Built, String> {
    let env = SimEnv::new(0, FaultOptions::default()).map_err(|e| e.to_string())?;
    let shards = 1 + u32::from(choices.byte() % 3);
    let config = Config::builder()
        .shards(shards)
        .router(Router::Hash)
        .segment_size_bytes(SEGMENT_SIZE_BYTES)
        .build()
        .map_err(|e| e.to_string())?;
    let dir = Path::new(STORE_DIR);
    let kernel = Kernel::open(env.clone(), dir, config.clone()).map_err(|e| format!("create: {e}"))?;
    let commits = 4 + usize::from(choices.byte() % 32);
    let checkpoint_at = usize::from(choices.byte());
    let mut model = BTreeMap::new();
    for i in 0..commits {
        let k = key(choices.byte() % KEYS);
        if choices.byte().is_multiple_of(5) {
            kernel.delete(&k, Durability::Data).map_err(|e| format!("delete: {e}"))?;
            model.remove(&k);
        } else {
            let value = format!("value-{i}-{}", choices.byte()).into_bytes();
            kernel.put(&k, &value, Durability::Data).map_err(|e| format!("put: {e}"))?;
            model.insert(k, value);
        }
        if i == checkpoint_at {
            kernel.checkpoint().map_err(|e| format!("checkpoint: {e}"))?;
        }
    }
    kernel.close().map_err(|e| format!("close: {e}"))?;
    Ok(Built { env, config, model })
}

/// Every file under `dir` (recursively, sorted), except the directory lock.
pub fn files(env: &SimEnv, dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(mut names) = env.list_dir(dir) else { return out };
    names.sort();
    for name in names {
        let path = dir.join(&name);
        if env.list_dir(&path).is_ok() {
            out.extend(files(env, &path));
        } else if name != "LOCK" {
            out.push(path);
        }
    }
    out
}

/// The bytes of a file (empty if it cannot be read).
pub fn read(env: &SimEnv, path: &Path) -> Vec<u8> {
    let Ok(file) = env.open(path, OpenOptions::read_only()) else { return Vec::new() };
    let len = file.len().unwrap_or(0);
    let mut bytes = vec![0; usize::try_from(len).unwrap_or(0)];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => bytes,
        Err(_) => Vec::new(),
    }
}

/// Every file of a default-built store with its bytes: the decoder targets' seeds.
pub fn seed_files() -> Vec<(PathBuf, Vec<u8>)> {
    let plan = [2u8, 31, 12, 3, 1, 7, 0, 2, 9, 4, 4, 11, 1, 5, 5, 6, 2];
    let Ok(built) = build(&mut Choices::new(&plan)) else { return Vec::new() };
    files(&built.env, Path::new(STORE_DIR))
        .into_iter()
        .map(|path| {
            let bytes = read(&built.env, &path);
            (path, bytes)
        })
        .collect()
}
