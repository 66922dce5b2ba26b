//! The byte layout of the store's two small published files, `META` and `HIGH_WATER`: encode
//! and decode only, no I/O.
//!
//! ```text
//! META (written as META.tmp, synced, then renamed)
//!   0..8     magic "STRMCKM\0"
//!   8..12    envelope version, u32 LE (2; version 1, still read, carries no identity)
//!   12..16   body length in bytes, u32 LE (at most META_BODY_BYTES_MAX)
//!   16..20   crc32 of bytes 0..16 followed by the body (so a rotten length or version fails
//!            the checksum instead of being trusted)
//!   20..     body, exactly `length` bytes; the file ends there:
//!            version 2: 20..28 store id u64 LE, 28..32 shard index u32 LE, 32..36 shard
//!                       count u32 LE (the StoreIdentity of the store and shard it belongs
//!                       to), then the CheckpointMeta
//!            version 1: the CheckpointMeta alone
//!            CheckpointMeta is serde + bincode 2 (standard config: little endian,
//!            variable-length integers)
//!
//! HIGH_WATER (written as HIGH_WATER.tmp, synced, then renamed)
//!   version 2 (40 bytes):
//!   0..8     magic "STRMCKH\0"
//!   8..12    version, u32 LE (2)
//!   12..20   a checkpoint id at or above every id whose directory was ever removed, u64 LE
//!   20..36   the StoreIdentity, as in META
//!   36..40   crc32 of bytes 0..36
//!   version 1 (20 bytes, still read): 0..8 magic, 8..16 the id, 16..20 crc32 of 0..16
//! ```
//!
//! A decoded file says where it belongs as a [`Place`]: `Some(identity)` from version 2,
//! `None` from version 1 (which predates identities; the reader accepts it anywhere).
//!
//! Invariants: decoding any byte string returns a value or a typed error and never panics;
//! `decode(encode(x, place)) == (x, place)`; the length is bounded before it is used, the
//! checksum passes before the version or the body is interpreted, and only the exact encoding
//! decodes (no trailing bytes, inside the body or after it).

use std::fmt;

use super::meta::CheckpointMeta;
use crate::identity::{STORE_IDENTITY_BYTES, StoreIdentity};

/// Where a decoded file says it belongs: `None` for a format version without an identity.
pub type Place = Option<StoreIdentity>;

/// The envelope version this code writes (with an identity).
pub const META_VERSION: u32 = 2;
/// The older envelope version, without an identity: still read, written only on request.
pub const META_VERSION_UNPLACED: u32 = 1;
/// Bytes of the envelope header before the body.
pub const META_HEADER_BYTES: usize = 20;
/// Largest body a `META` may carry.
pub const META_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Largest `META` file.
pub const META_FILE_BYTES_MAX: usize = META_HEADER_BYTES + META_BODY_BYTES_MAX;
/// Bytes of a `HIGH_WATER` file of version 2.
pub const HIGH_WATER_BYTES: usize = 40;
/// Bytes of a `HIGH_WATER` file of version 1 (no identity).
pub const HIGH_WATER_UNPLACED_BYTES: usize = 20;
/// The `HIGH_WATER` version this code writes.
pub const HIGH_WATER_VERSION: u32 = 2;
/// The largest checkpoint id a store hands out or accepts from disk (ids, epochs and lsns read
/// back are bounded by it, so no arithmetic on them overflows: room for 2^62 checkpoints).
pub const CHECKPOINT_ID_MAX: u64 = 1 << 62;
const META_MAGIC: &[u8; 8] = b"STRMCKM\0";
const HIGH_WATER_MAGIC: &[u8; 8] = b"STRMCKH\0";

const _: () = assert!(META_BODY_BYTES_MAX <= u32::MAX as usize);

type BincodeConfig = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<META_BODY_BYTES_MAX>,
>;

fn bincode_config() -> BincodeConfig {
    bincode::config::standard().with_limit::<META_BODY_BYTES_MAX>()
}

/// Why bytes are not a valid `META` (or `HIGH_WATER`) file. Offsets are within the file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than the header needs.
    TooShort {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// Bytes 0..8 are not the magic.
    BadMagic,
    /// The body length field (offset 12) is larger than the format allows.
    BodyTooLong {
        /// The length the field claims.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The file is not exactly header plus body long.
    LengthMismatch {
        /// Bytes the header announces.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The stored checksum (offset 16, or 16 in `HIGH_WATER`) does not match the bytes.
    Checksum {
        /// The stored crc32.
        stored: u32,
        /// The crc32 of the bytes.
        computed: u32,
    },
    /// The checksum passes but the version (offset 8) is not one this code reads.
    UnsupportedVersion(u32),
    /// The checksum passes but the body (offset 20) is not a `CheckpointMeta`.
    Body(String),
    /// A `CheckpointMeta` too large to encode.
    TooLarge {
        /// Its encoded length.
        len: usize,
    },
    /// The checksum passes but a field holds a value beyond its bound.
    OutOfRange {
        /// The field's offset in the file.
        offset: usize,
        /// Its value.
        value: u64,
        /// The largest value it may hold.
        max: u64,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::TooShort { len, needed } => write!(f, "{len} bytes, the header needs {needed}"),
            FormatError::BadMagic => write!(f, "bad magic at offset 0"),
            FormatError::BodyTooLong { len, max } => {
                write!(f, "body length {len} at offset 12 exceeds {max}")
            }
            FormatError::LengthMismatch { expected, actual } => {
                write!(f, "file holds {actual} bytes, the header announces {expected}")
            }
            FormatError::Checksum { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            FormatError::UnsupportedVersion(version) => {
                write!(f, "unsupported version {version} at offset 8")
            }
            FormatError::Body(detail) => write!(f, "body at offset {META_HEADER_BYTES}: {detail}"),
            FormatError::TooLarge { len } => {
                write!(f, "metadata of {len} bytes exceeds {META_BODY_BYTES_MAX}")
            }
            FormatError::OutOfRange { offset, value, max } => {
                write!(f, "value {value} at offset {offset} exceeds {max}")
            }
        }
    }
}

impl std::error::Error for FormatError {}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut field = [0; 4];
    field.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(field)
}

fn envelope_crc(header: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..16]);
    hasher.update(body);
    hasher.finalize()
}

/// Encodes `meta` as a complete `META` file: version 2 carrying `place`'s identity, or
/// version 1 when `place` is `None` (only to write what an older store wrote).
pub fn encode_meta(meta: &CheckpointMeta, place: Place) -> Result<Vec<u8>, FormatError> {
    let mut body = place.map_or_else(Vec::new, |identity| identity.to_bytes().to_vec());
    let encoded = bincode::serde::encode_to_vec(meta, bincode_config())
        .map_err(|e| FormatError::Body(e.to_string()))?;
    body.extend_from_slice(&encoded);
    if body.len() > META_BODY_BYTES_MAX {
        return Err(FormatError::TooLarge { len: body.len() });
    }
    let version = if place.is_some() { META_VERSION } else { META_VERSION_UNPLACED };
    let mut bytes = Vec::with_capacity(META_HEADER_BYTES + body.len());
    bytes.extend_from_slice(META_MAGIC);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let crc = envelope_crc(&bytes, &body);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decodes a complete `META` file, and where it says it belongs. Checks only the format, not
/// [`CheckpointMeta::check`] nor whether the place is the reader's.
pub fn decode_meta(bytes: &[u8]) -> Result<(CheckpointMeta, Place), FormatError> {
    if bytes.len() < META_HEADER_BYTES {
        return Err(FormatError::TooShort { len: bytes.len(), needed: META_HEADER_BYTES });
    }
    if &bytes[..8] != META_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let body_len = u32_at(bytes, 12) as usize;
    if body_len > META_BODY_BYTES_MAX {
        return Err(FormatError::BodyTooLong { len: body_len as u64, max: META_BODY_BYTES_MAX });
    }
    if bytes.len() != META_HEADER_BYTES + body_len {
        return Err(FormatError::LengthMismatch {
            expected: META_HEADER_BYTES + body_len,
            actual: bytes.len(),
        });
    }
    let body = &bytes[META_HEADER_BYTES..];
    let (stored, computed) = (u32_at(bytes, 16), envelope_crc(bytes, body));
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed });
    }
    let (place, body) = match u32_at(bytes, 8) {
        META_VERSION_UNPLACED => (None, body),
        META_VERSION => {
            let identity: &[u8; STORE_IDENTITY_BYTES] = body
                .get(..STORE_IDENTITY_BYTES)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| FormatError::Body(format!("{} bytes, the identity needs 16", body.len())))?;
            (Some(StoreIdentity::from_bytes(identity)), &body[STORE_IDENTITY_BYTES..])
        }
        version => return Err(FormatError::UnsupportedVersion(version)),
    };
    let (meta, used): (CheckpointMeta, usize) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| FormatError::Body(e.to_string()))?;
    if used != body.len() {
        return Err(FormatError::Body(format!("{} trailing bytes after the metadata", body.len() - used)));
    }
    Ok((meta, place))
}

/// Encodes a `HIGH_WATER` file naming `id`: version 2 carrying `place`'s identity, or version
/// 1 when `place` is `None`.
pub fn encode_high_water(id: u64, place: Place) -> Vec<u8> {
    let Some(identity) = place else {
        let mut bytes = Vec::with_capacity(HIGH_WATER_UNPLACED_BYTES);
        bytes.extend_from_slice(HIGH_WATER_MAGIC);
        bytes.extend_from_slice(&id.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        return bytes;
    };
    let mut bytes = Vec::with_capacity(HIGH_WATER_BYTES);
    bytes.extend_from_slice(HIGH_WATER_MAGIC);
    bytes.extend_from_slice(&HIGH_WATER_VERSION.to_le_bytes());
    bytes.extend_from_slice(&id.to_le_bytes());
    bytes.extend_from_slice(&identity.to_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes a `HIGH_WATER` file (either version), and where it says it belongs.
pub fn decode_high_water(bytes: &[u8]) -> Result<(u64, Place), FormatError> {
    let body = match bytes.len() {
        HIGH_WATER_BYTES | HIGH_WATER_UNPLACED_BYTES => bytes.len() - 4,
        actual => return Err(FormatError::LengthMismatch { expected: HIGH_WATER_BYTES, actual }),
    };
    if &bytes[..8] != HIGH_WATER_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let (stored, computed) = (u32_at(bytes, body), crc32fast::hash(&bytes[..body]));
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed });
    }
    let (id_at, place) = if bytes.len() == HIGH_WATER_UNPLACED_BYTES {
        (8, None)
    } else {
        match u32_at(bytes, 8) {
            HIGH_WATER_VERSION => {}
            version => return Err(FormatError::UnsupportedVersion(version)),
        }
        let mut identity = [0; STORE_IDENTITY_BYTES];
        identity.copy_from_slice(&bytes[20..36]);
        (12, Some(StoreIdentity::from_bytes(&identity)))
    };
    let mut id = [0; 8];
    id.copy_from_slice(&bytes[id_at..id_at + 8]);
    let id = u64::from_le_bytes(id);
    if id > CHECKPOINT_ID_MAX {
        return Err(FormatError::OutOfRange { offset: id_at, value: id, max: CHECKPOINT_ID_MAX });
    }
    Ok((id, place))
}

/// The directory name of checkpoint `id`.
pub fn checkpoint_dir_name(id: u64) -> String {
    format!("ckpt-{id:016x}")
}

/// The checkpoint id a directory name names, if it is exactly a checkpoint directory name of
/// an id this store can have handed out (1..=[`CHECKPOINT_ID_MAX`]). Any other name, such as
/// `ckpt-ffffffffffffffff`, was never written by a store and is not one of its checkpoints.
pub fn parse_checkpoint_dir_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("ckpt-")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().filter(|id| (1..=CHECKPOINT_ID_MAX).contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_dir_names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_checkpoint_dir_name(&checkpoint_dir_name(0xabc)), Some(0xabc));
        for name in [
            "ckpt-1",
            "ckpt-000000000000000G",
            "ckpt-000000000000000A",
            "LOCK",
            "HIGH_WATER",
            "ckpt-0000000000000000",
            "ckpt-ffffffffffffffff",
            "ckpt-fffffffffffffffe",
            "ckpt-4000000000000001",
        ] {
            assert_eq!(parse_checkpoint_dir_name(name), None, "{name}");
        }
    }

    #[test]
    fn high_water_round_trips_and_a_flipped_bit_fails_the_checksum() {
        let place = Some(StoreIdentity { store_id: 9, shard: 1, shards: 2 });
        for place in [place, None] {
            let bytes = encode_high_water(42, place);
            assert_eq!(decode_high_water(&bytes), Ok((42, place)));
            for at in [9, 13, 21, 33] {
                let mut rotten = bytes.clone();
                if at < rotten.len() - 4 {
                    rotten[at] ^= 1;
                    assert!(matches!(decode_high_water(&rotten), Err(FormatError::Checksum { .. })));
                }
            }
            let max = encode_high_water(CHECKPOINT_ID_MAX, place);
            assert_eq!(decode_high_water(&max), Ok((CHECKPOINT_ID_MAX, place)));
            assert!(matches!(
                decode_high_water(&encode_high_water(u64::MAX, place)),
                Err(FormatError::OutOfRange { .. })
            ));
        }
        assert_eq!(encode_high_water(1, place).len(), HIGH_WATER_BYTES);
        assert_eq!(encode_high_water(1, None).len(), HIGH_WATER_UNPLACED_BYTES);
    }

    #[test]
    fn high_water_of_an_unknown_version_is_refused_after_its_checksum() {
        let mut bytes = encode_high_water(5, Some(StoreIdentity::default()));
        bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..36]);
        bytes[36..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_high_water(&bytes), Err(FormatError::UnsupportedVersion(3)));
    }
}
