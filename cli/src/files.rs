//! The store's files as the command reads them, through the kernel's own decoders (the
//! `internals` layer modules), each on a fresh read-only overlay of the real OS: a reader
//! here never writes, whatever the layer it calls would repair.

use std::path::{Path, PathBuf};

use stormhold::checkpoint::{CheckpointError, CheckpointOptions, CheckpointStore, OpenReport};
use stormhold::env::{Env, EnvFile, OpenOptions, OsEnv, OverlayEnv};
use stormhold::kernel::layout::{self, KernelMeta};
use stormhold::wal::format::segment_file_name;
use stormhold::wal::scan::list_segments;
use stormhold::wal::{Record, RecoveryMode, ScanReport, StoreIdentity, Wal, WalError, WalOptions};

use crate::Fail;

/// The read-only view every reader here uses.
pub type ReadEnv = OverlayEnv<OsEnv>;

/// A fresh read-only view of the real OS.
pub fn read_env() -> ReadEnv {
    OverlayEnv::new(OsEnv::new())
}

/// `KERNEL` of `dir`: its shard count and router.
pub fn kernel_meta(dir: &Path) -> Result<KernelMeta, Fail> {
    match layout::read_meta(&OsEnv::new(), dir) {
        Ok(Some(meta)) => Ok(meta),
        Ok(None) => Err(Fail::error(format!("{} holds no stormhold store (no KERNEL file)", dir.display()))),
        Err(error) => Err(Fail::damage(error)),
    }
}

/// The checkpoint and WAL directories of shard `id`.
pub fn shard_paths(dir: &Path, id: u32) -> (PathBuf, PathBuf) {
    let shard = layout::shard_dir(dir, id);
    (shard.join("ckpt"), shard.join("wal"))
}

/// The checkpoint store of a shard, opened read-only; a `META` or `HIGH_WATER` that names
/// another store or shard than `identity` is an error naming it.
pub fn checkpoints(
    ckpt_dir: &Path,
    identity: StoreIdentity,
) -> Result<(CheckpointStore<ReadEnv>, OpenReport), CheckpointError> {
    CheckpointStore::open(
        read_env(),
        ckpt_dir,
        CheckpointOptions { identity, ..CheckpointOptions::default() },
    )
}

/// Each WAL segment: id, path and length in bytes.
pub fn segments(wal_dir: &Path) -> Result<Vec<(u64, PathBuf, u64)>, String> {
    let env = OsEnv::new();
    let ids = list_segments(&env, wal_dir).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for id in ids {
        let path = wal_dir.join(segment_file_name(id));
        let len = env.open(&path, OpenOptions::read_only()).and_then(|f| f.len());
        out.push((id, path.clone(), len.map_err(|e| format!("{}: {e}", path.display()))?));
    }
    Ok(out)
}

/// The identity every WAL segment of shard `id` of the store described by `meta` carries.
pub fn shard_identity(meta: &KernelMeta, id: u32) -> StoreIdentity {
    StoreIdentity { store_id: meta.store_id, shard: id, shards: meta.shards }
}

/// Scans a shard's WAL read-only in `mode`, handing every valid record to `visit`; a
/// segment that names another store or shard than `identity` is damage.
pub fn scan_wal(
    wal_dir: &Path,
    identity: StoreIdentity,
    mode: RecoveryMode,
    visit: impl FnMut(Record),
) -> Result<ScanReport, WalError> {
    let options = WalOptions { preallocate: false, recovery_mode: mode, identity, ..WalOptions::default() };
    Wal::open(read_env(), wal_dir, options, visit).map(|(_, scan)| scan)
}

/// Bytes as text with every non-printable byte escaped.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
