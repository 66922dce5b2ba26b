//! The kernel directory and its metadata file, created crash-safely (DESIGN.md rule 12).
//!
//! ```text
//! <dir>/LOCK            the directory lock (Env::lock_dir)
//! <dir>/KERNEL          format version, shard count, router (below)
//! <dir>/shard-<NNNN>/   one directory per shard (crate::shard)
//! ```
//!
//! `KERNEL`, 33 bytes: magic `STRMHOLD` (0..8), format version u32 LE (8..12; 2), shard
//! count u32 LE (12..16), router kind u8 (16: 0 hash, 1 prefix), prefix length u32 LE
//! (17..21), store id u64 LE (21..29), crc32 of bytes 0..29, u32 LE (29..33). Version 1 (25
//! bytes, no store id) is refused with its version named.
//!
//! The store id is drawn at creation from the Env's clocks and the directory path
//! ([`draw_store_id`]): deterministic on the simulated disk, distinct between stores on the
//! real one. Each shard's files carry it with the shard index and count
//! ([`crate::wal::StoreIdentity`]), so a file swapped in from another shard or store is
//! refused by name.
//!
//! Creation: every shard directory is created and the kernel directory synced, then `KERNEL`
//! is written to `KERNEL.tmp`, synced, renamed and the directory synced. A crash before the
//! rename is durable leaves no `KERNEL`: the next open redoes the creation (the shard
//! directories may exist already; they hold nothing, since no shard opens before `KERNEL` is
//! durable). `KERNEL` is never rewritten after that, so a damaged one is media damage, an
//! error naming the file and offset, never "empty store". A missing `KERNEL` next to a shard
//! directory that holds anything is refused ([`KernelError::KernelFileMissing`]): shard
//! directories hold nothing until `KERNEL` is durable, so the file was deleted, and creating
//! the store anew, perhaps with another shard count, would strand the shards' data.

use std::path::{Path, PathBuf};

use super::{KernelError, Router};
use crate::env::{Env, EnvFile, OpenOptions};

/// The metadata file.
pub const KERNEL_FILE_NAME: &str = "KERNEL";
/// Its temporary name during creation.
pub const KERNEL_TMP_FILE_NAME: &str = "KERNEL.tmp";
const MAGIC: &[u8; 8] = b"STRMHOLD";
const VERSION: u32 = 2;
const KERNEL_BYTES: usize = 33;
const KERNEL_V1_BYTES: usize = 25;

/// What `KERNEL` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelMeta {
    /// The shard count.
    pub shards: u32,
    /// The router.
    pub router: Router,
    /// The store's identity, drawn at creation.
    pub store_id: u64,
}

impl KernelMeta {
    /// Whether `other` describes the same configuration (the store id aside).
    pub fn same_config(&self, other: &KernelMeta) -> bool {
        self.shards == other.shards && self.router == other.router
    }
}

/// Draws a store id from the Env's clocks and the directory (never 0, the id of files outside
/// a kernel). Only the Env's clocks vary, so the simulated disk draws the same id for the
/// same seed.
pub fn draw_store_id<E: Env>(env: &E, dir: &Path) -> u64 {
    let wall = env.now_wall().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mono = env.now_monotonic().as_nanos() as u64;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in wall.to_le_bytes().iter().chain(&mono.to_le_bytes()).chain(dir.as_os_str().as_encoded_bytes())
    {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.max(1)
}

/// The directory of shard `id`.
pub fn shard_dir(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("shard-{id:04}"))
}

fn encode(meta: &KernelMeta) -> [u8; KERNEL_BYTES] {
    let mut out = [0; KERNEL_BYTES];
    out[0..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&meta.shards.to_le_bytes());
    let (kind, len) = match meta.router {
        Router::Hash => (0, 0),
        Router::Prefix { len_bytes } => (1, len_bytes),
    };
    out[16] = kind;
    out[17..21].copy_from_slice(&len.to_le_bytes());
    out[21..29].copy_from_slice(&meta.store_id.to_le_bytes());
    let crc = crc32fast::hash(&out[..29]);
    out[29..33].copy_from_slice(&crc.to_le_bytes());
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Decodes `KERNEL`; the error is the offset and what is wrong there.
fn decode(bytes: &[u8]) -> Result<KernelMeta, (u64, String)> {
    if bytes.len() == KERNEL_V1_BYTES && bytes.starts_with(MAGIC) && u32_at(bytes, 8) == 1 {
        return Err((8, format!("format version 1 is not supported (this build reads {VERSION})")));
    }
    if bytes.len() != KERNEL_BYTES {
        let at = bytes.len().min(KERNEL_BYTES) as u64;
        return Err((at, format!("is {} bytes long, not {KERNEL_BYTES}", bytes.len())));
    }
    if &bytes[0..8] != MAGIC {
        return Err((0, "is not a stormhold kernel file (wrong magic)".to_owned()));
    }
    let crc = crc32fast::hash(&bytes[..29]);
    if crc != u32_at(bytes, 29) {
        return Err((
            29,
            format!("checksum {:#010x} does not match the bytes ({crc:#010x})", u32_at(bytes, 29)),
        ));
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err((8, format!("format version {version} is not supported (this build reads {VERSION})")));
    }
    let shards = u32_at(bytes, 12);
    if !(1..=super::SHARDS_MAX).contains(&shards) {
        return Err((12, format!("shard count {shards} is out of range")));
    }
    let router = match (bytes[16], u32_at(bytes, 17)) {
        (0, 0) => Router::Hash,
        (1, len_bytes @ 1..) => Router::Prefix { len_bytes },
        (kind, len) => return Err((16, format!("router kind {kind} with length {len} is not valid"))),
    };
    let mut store_id = [0; 8];
    store_id.copy_from_slice(&bytes[21..29]);
    Ok(KernelMeta { shards, router, store_id: u64::from_le_bytes(store_id) })
}

/// Reads `KERNEL`: `Ok(None)` when it does not exist (the kernel is new, or its creation
/// crashed before publishing it).
pub fn read_meta<E: Env>(env: &E, dir: &Path) -> Result<Option<KernelMeta>, KernelError> {
    let path = dir.join(KERNEL_FILE_NAME);
    let file = match env.open(&path, OpenOptions::read_only()) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        result => result.map_err(|e| KernelError::io("open", &path, e))?,
    };
    let len = file.len().map_err(|e| KernelError::io("len", &path, e))?;
    // Bound the read before allocating: anything longer is damage anyway.
    let mut bytes = vec![0; (len as usize).min(KERNEL_BYTES + 1)];
    file.read_exact_at(&mut bytes, 0).map_err(|e| KernelError::io("read", &path, e))?;
    if len as usize > KERNEL_BYTES {
        return Err(KernelError::Corrupt {
            path,
            offset: KERNEL_BYTES as u64,
            detail: format!("is {len} bytes long"),
        });
    }
    decode(&bytes).map(Some).map_err(|(offset, detail)| KernelError::Corrupt { path, offset, detail })
}

/// The first shard directory of `dir` (any `shard-*` entry) that is not empty, if any.
pub fn find_shard_data<E: Env>(env: &E, dir: &Path) -> Result<Option<PathBuf>, KernelError> {
    let names = env.list_dir(dir).map_err(|e| KernelError::io("list directory", dir, e))?;
    for name in names.iter().filter(|name| name.starts_with("shard-")) {
        let shard = dir.join(name);
        match env.list_dir(&shard) {
            Ok(entries) if !entries.is_empty() => return Ok(Some(shard)),
            // An empty directory, or a file of that name: holds no shard's data.
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {}
            Err(error) => return Err(KernelError::io("list directory", shard, error)),
        }
    }
    Ok(None)
}

/// Creates the shard directories and publishes `KERNEL` (see the module docs).
pub fn create<E: Env>(env: &E, dir: &Path, meta: &KernelMeta) -> Result<(), KernelError> {
    for id in 0..meta.shards {
        let shard = shard_dir(dir, id);
        match env.create_dir(&shard) {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(KernelError::io("create directory", shard, error));
            }
            _ => {}
        }
    }
    env.sync_dir(dir).map_err(|e| KernelError::io("sync directory", dir, e))?;
    let tmp = dir.join(KERNEL_TMP_FILE_NAME);
    let file = env
        .open(&tmp, OpenOptions::create().truncate(true))
        .map_err(|e| KernelError::io("create", &tmp, e))?;
    file.write_all_at(&encode(meta), 0).map_err(|e| KernelError::io("write", &tmp, e))?;
    file.sync_all().map_err(|e| KernelError::io("sync", &tmp, e))?;
    drop(file);
    let path = dir.join(KERNEL_FILE_NAME);
    env.rename(&tmp, &path).map_err(|e| KernelError::io("rename", &path, e))?;
    env.sync_dir(dir).map_err(|e| KernelError::io("sync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_damage_is_named() {
        let meta = KernelMeta { shards: 12, router: Router::Prefix { len_bytes: 3 }, store_id: 0xabcd };
        let bytes = encode(&meta);
        assert_eq!(decode(&bytes), Ok(meta));
        for at in 0..KERNEL_BYTES {
            let mut damaged = bytes;
            damaged[at] ^= 0x40;
            let (offset, _) = decode(&damaged).unwrap_err();
            assert!(offset == 0 || offset == 29, "a flip at {at} reported at {offset}");
        }
        assert_eq!(decode(&bytes[..10]).unwrap_err().0, 10);
    }
}
