//! The floor marker: a small synced file, `FLOOR`, next to the segments, that records how far
//! the durable log once reached, so a log found shorter at recovery is a reported loss, not a
//! torn tail.
//!
//! Owns the file `FLOOR` of a log directory (and its temporary `FLOOR.tmp`). The marker names
//! the newest segment that existed and the highest lsn that was durable when it was written;
//! both only grow, so an old marker stays true. It is written (temporary file, sync, rename,
//! directory sync: never torn) when a segment is sealed, after its successor is durable, and
//! when the log is closed ([`super::Wal::record_floor`]); never on the commit path, so it costs
//! no sync per commit.
//!
//! Invariants:
//! - the marker's segment was durable (header and directory entry) before the marker named it;
//! - the marker's lsn was durable before the marker named it;
//! - a recovery whose log ends below the marker's lsn, or whose newest segment is older than the
//!   marker's, is corruption naming the file, never a silent cut (point-in-time recovery, which
//!   drops records on purpose, rewrites the marker instead).
//!
//! Layout (48 bytes, little endian): `0..8` magic `SHWFLOOR`, `8..12` version 1, `12..20` store
//! id, `20..24` shard, `24..28` shard count, `28..36` newest segment id, `36..44` floor lsn,
//! `44..48` crc32 of `0..44`.

use std::path::{Path, PathBuf};

use super::error::WalError;
use super::format::{Lsn, StoreIdentity};
use crate::env::{Env, EnvFile, OpenOptions};

/// The marker's file name in the log directory.
pub const FLOOR_FILE_NAME: &str = "FLOOR";
const FLOOR_TMP_FILE_NAME: &str = "FLOOR.tmp";
const MAGIC: &[u8; 8] = b"SHWFLOOR";
const VERSION: u32 = 1;
/// The encoded size of a marker.
pub const FLOOR_BYTES: usize = 48;

/// What a marker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Floor {
    /// The log it belongs to.
    pub identity: StoreIdentity,
    /// The newest segment that existed (durably) when it was written.
    pub segment_id: u64,
    /// The highest lsn durable when it was written.
    pub lsn: Lsn,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Encodes a marker.
pub fn encode_floor(floor: &Floor) -> [u8; FLOOR_BYTES] {
    let mut bytes = [0; FLOOR_BYTES];
    bytes[0..8].copy_from_slice(MAGIC);
    bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&floor.identity.store_id.to_le_bytes());
    bytes[20..24].copy_from_slice(&floor.identity.shard.to_le_bytes());
    bytes[24..28].copy_from_slice(&floor.identity.shards.to_le_bytes());
    bytes[28..36].copy_from_slice(&floor.segment_id.to_le_bytes());
    bytes[36..44].copy_from_slice(&floor.lsn.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..44]);
    bytes[44..48].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes a marker; the error says what is wrong.
pub fn decode_floor(bytes: &[u8]) -> Result<Floor, String> {
    if bytes.len() != FLOOR_BYTES {
        return Err(format!("{} bytes, a floor marker has {FLOOR_BYTES}", bytes.len()));
    }
    if crc32fast::hash(&bytes[0..44]) != u32_at(bytes, 44) {
        return Err("bad checksum".into());
    }
    if &bytes[0..8] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let identity =
        StoreIdentity { store_id: u64_at(bytes, 12), shard: u32_at(bytes, 20), shards: u32_at(bytes, 24) };
    Ok(Floor { identity, segment_id: u64_at(bytes, 28), lsn: u64_at(bytes, 36) })
}

/// The path of the marker of the log in `dir`.
pub fn floor_path(dir: &Path) -> PathBuf {
    dir.join(FLOOR_FILE_NAME)
}

fn io<T>(op: &'static str, path: &Path, result: std::io::Result<T>) -> Result<T, WalError> {
    result.map_err(|e| WalError::io(op, path, e))
}

/// Reads the marker of the log in `dir` (`None`: there is none), checked against `identity`.
pub fn read_floor<E: Env>(env: &E, dir: &Path, identity: StoreIdentity) -> Result<Option<Floor>, WalError> {
    let path = floor_path(dir);
    if !io("stat", &path, env.exists(&path))? {
        return Ok(None);
    }
    let file = io("open", &path, env.open(&path, OpenOptions::read_only()))?;
    let len = io("len", &path, file.len())?;
    if len != FLOOR_BYTES as u64 {
        let detail = format!("floor marker of {len} bytes, expected {FLOOR_BYTES}");
        return Err(WalError::corruption(&path, 0, 0, detail));
    }
    let mut bytes = [0; FLOOR_BYTES];
    io("read", &path, file.read_exact_at(&mut bytes, 0))?;
    let floor = decode_floor(&bytes)
        .map_err(|detail| WalError::corruption(&path, 0, 0, format!("floor marker: {detail}")))?;
    if floor.identity != identity {
        let detail = format!("floor marker belongs to {}, this log is {identity}", floor.identity);
        return Err(WalError::corruption(&path, 12, 0, detail));
    }
    Ok(Some(floor))
}

/// Publishes `floor` atomically: temporary file, sync, rename, directory sync.
pub fn write_floor<E: Env>(env: &E, dir: &Path, floor: &Floor) -> Result<(), WalError> {
    let tmp = dir.join(FLOOR_TMP_FILE_NAME);
    let file = io("create floor marker", &tmp, env.open(&tmp, OpenOptions::create().truncate(true)))?;
    io("write floor marker", &tmp, file.write_all_at(&encode_floor(floor), 0))?;
    io("sync floor marker", &tmp, file.sync_all())?;
    drop(file);
    let path = floor_path(dir);
    io("publish floor marker", &path, env.rename(&tmp, &path))?;
    io("sync directory", dir, env.sync_dir(dir))
}

/// Checks what the scan recovered against the marker: the log must reach the marker's lsn
/// (`covered`: the last lsn the recovered log covers) and its newest segment (`newest`: the
/// newest segment with a valid header or removed as a partial creation).
pub fn check_floor(dir: &Path, floor: &Floor, covered: Lsn, newest: Option<u64>) -> Result<(), WalError> {
    if newest.is_none_or(|id| id < floor.segment_id) {
        let missing = dir.join(super::format::segment_file_name(floor.segment_id));
        let detail = format!(
            "segment {:016x} is missing, but {} says it existed and lsn {} was durable: acknowledged \
             records are lost",
            floor.segment_id,
            floor_path(dir).display(),
            floor.lsn
        );
        return Err(WalError::corruption(missing, 0, covered + 1, detail));
    }
    if covered < floor.lsn {
        let detail = format!(
            "the log ends at lsn {covered}, but {} says lsn {} was durable: lsns {}..={} are lost",
            floor_path(dir).display(),
            floor.lsn,
            covered + 1,
            floor.lsn
        );
        let newest_path = dir.join(super::format::segment_file_name(newest.unwrap_or(0)));
        return Err(WalError::corruption(newest_path, 0, covered + 1, detail));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips_and_damage_is_refused() {
        let floor =
            Floor { identity: StoreIdentity { store_id: 7, shard: 1, shards: 2 }, segment_id: 3, lsn: 99 };
        let bytes = encode_floor(&floor);
        assert_eq!(decode_floor(&bytes), Ok(floor));
        for at in 0..FLOOR_BYTES {
            let mut bad = bytes;
            bad[at] ^= 0x01;
            assert!(decode_floor(&bad).is_err(), "a flip at {at} must be refused");
        }
        assert!(decode_floor(&bytes[..40]).is_err());
    }

    #[test]
    fn a_shorter_log_or_a_missing_segment_contradicts_the_marker() {
        let floor = Floor { identity: StoreIdentity::default(), segment_id: 3, lsn: 99 };
        let dir = Path::new("/wal");
        assert!(check_floor(dir, &floor, 99, Some(3)).is_ok());
        assert!(check_floor(dir, &floor, 120, Some(4)).is_ok());
        assert!(check_floor(dir, &floor, 98, Some(3)).is_err());
        assert!(check_floor(dir, &floor, 99, Some(2)).is_err());
        assert!(check_floor(dir, &floor, 99, None).is_err());
    }
}
