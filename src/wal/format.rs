//! The byte layout of WAL segments and records: encode and decode only, no I/O.
//!
//! ```text
//! segment file wal-<id:016x>.log
//! 0..4096        segment header, alone in its sector (a torn append never shares its sector)
//!   0..8           magic "STRMWAL\0"
//!   8..12          format version, u32 LE (2; version 1 had no identity)
//!   12..20         segment id, u64 LE
//!   20..28         first lsn of the segment, u64 LE
//!   28..36         store id, u64 LE (drawn when the store was created; 0: a standalone log)
//!   36..40         shard index, u32 LE
//!   40..44         shard count, u32 LE (0: a standalone log)
//!   44..48         crc32 of bytes 0..44
//!   48..4096       zero
//! 4096..         records, each starting on a multiple of 8 (the gap is zeros); after each sync
//!                the writer starts the next record on a 4096-byte boundary, so new appends
//!                never share a sector with synced ones (zeros never decode as a record)
//!
//! record = header (56 bytes) + payload
//!   0..4           header crc32 of bytes 4..56 (so the payload crc and the length are covered
//!                  before the length is trusted)
//!   4..8           payload length, u32 LE (at most RECORD_PAYLOAD_BYTES_MAX)
//!   8..12          payload crc32
//!   12             record kind, u8
//!   13..16         zero
//!   16..24         lsn, u64 LE (dense: 1, 2, 3, ... across segments)
//!   24..32         durable_lsn, u64 LE: the highest lsn durable when this record was written
//!   32..40         segment id, u64 LE (stale bytes of another segment never pass)
//!   40..48         transaction id, u64 LE (0: none)
//!   48..56         prev_lsn, u64 LE: the previous record of the same transaction (0: none)
//! ```
//!
//! Invariants: decoding any byte string returns a record or a typed error and never panics;
//! `decode(encode(r)) == r`; a record decodes only if both checksums pass and its reserved
//! bytes are zero, so only the exact encoding of a record decodes.

use std::fmt;

/// A log sequence number. Dense, starting at 1; 0 means "none".
pub type Lsn = u64;

/// Bytes of the segment header's sector; records start here.
pub const SEGMENT_HEADER_BYTES: u64 = 4096;
/// Bytes of the fields of the segment header that carry data.
pub const SEGMENT_HEADER_FIELDS_BYTES: usize = 48;
/// Appends after a sync start on a multiple of this (the largest sector size we support).
pub const SYNC_ALIGN_BYTES: u64 = 4096;
/// Bytes of a record header.
pub const RECORD_HEADER_BYTES: usize = 56;
/// Largest payload of one record.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The largest first lsn a segment may name (room for 2^62 more records).
pub const FIRST_LSN_MAX: Lsn = 1 << 62;
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 2;
const SEGMENT_MAGIC: &[u8; 8] = b"STRMWAL\0";

const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(SYNC_ALIGN_BYTES));
const _: () = assert!(SEGMENT_HEADER_FIELDS_BYTES as u64 <= SEGMENT_HEADER_BYTES);

/// What a record means. The WAL itself gives meaning only to the byte; the ARIES layer and the
/// kernel give meaning to the payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// Opaque data of an upper layer.
    Data,
    /// A transaction begins.
    Begin,
    /// A transaction changed something (before and after images).
    Update,
    /// A transaction committed.
    Commit,
    /// A transaction aborted (its undo is complete).
    Abort,
    /// A compensation record written while undoing.
    Clr,
    /// A fuzzy checkpoint (active transactions, dirty pages).
    Checkpoint,
}

impl RecordKind {
    fn to_byte(self) -> u8 {
        match self {
            RecordKind::Data => 1,
            RecordKind::Begin => 2,
            RecordKind::Update => 3,
            RecordKind::Commit => 4,
            RecordKind::Abort => 5,
            RecordKind::Clr => 6,
            RecordKind::Checkpoint => 7,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => RecordKind::Data,
            2 => RecordKind::Begin,
            3 => RecordKind::Update,
            4 => RecordKind::Commit,
            5 => RecordKind::Abort,
            6 => RecordKind::Clr,
            7 => RecordKind::Checkpoint,
            _ => return None,
        })
    }
}

/// Which store and shard a durable file belongs to (defined beside the layers, which all use it).
pub use crate::identity::StoreIdentity;

/// The header of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's id (its file name).
    pub segment_id: u64,
    /// The lsn of its first record.
    pub first_lsn: Lsn,
    /// The store and shard the segment belongs to.
    pub identity: StoreIdentity,
}

/// A record, as written or read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// What it means.
    pub kind: RecordKind,
    /// Its lsn.
    pub lsn: Lsn,
    /// The highest lsn durable when it was written.
    pub durable_lsn: Lsn,
    /// The segment it was written to.
    pub segment_id: u64,
    /// Its transaction (0: none).
    pub txn_id: u64,
    /// The previous record of the same transaction (0: none).
    pub prev_lsn: Lsn,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A record read in place: the payload borrowed from the reader's buffer, so a recovery scan
/// hands records over without allocating or copying each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// What it means.
    pub kind: RecordKind,
    /// Its lsn.
    pub lsn: Lsn,
    /// The highest lsn durable when it was written.
    pub durable_lsn: Lsn,
    /// The segment it was written to.
    pub segment_id: u64,
    /// Its transaction (0: none).
    pub txn_id: u64,
    /// The previous record of the same transaction (0: none).
    pub prev_lsn: Lsn,
    /// The payload.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// The record with its payload copied out.
    pub fn to_record(&self) -> Record {
        Record {
            kind: self.kind,
            lsn: self.lsn,
            durable_lsn: self.durable_lsn,
            segment_id: self.segment_id,
            txn_id: self.txn_id,
            prev_lsn: self.prev_lsn,
            payload: self.payload.to_vec(),
        }
    }
}

impl Record {
    /// The record, borrowed.
    pub fn borrowed(&self) -> RecordRef<'_> {
        RecordRef {
            kind: self.kind,
            lsn: self.lsn,
            durable_lsn: self.durable_lsn,
            segment_id: self.segment_id,
            txn_id: self.txn_id,
            prev_lsn: self.prev_lsn,
            payload: &self.payload,
        }
    }
}

/// Why bytes are not a record or a segment header.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the structure needs.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        available: usize,
    },
    /// A checksum does not match.
    BadChecksum,
    /// The segment magic is wrong.
    BadMagic,
    /// The segment was written by a format version this code does not read.
    UnsupportedVersion(u32),
    /// The length field is beyond [`RECORD_PAYLOAD_BYTES_MAX`] (only after the header checksum
    /// passed, so the writer wrote it: a bug, not damage).
    LengthTooLarge(u32),
    /// The kind byte is not a known kind.
    UnknownKind(u8),
    /// A segment header whose checksum passed names an impossible first lsn (0, or so large
    /// that the log could not go on).
    InvalidFirstLsn(u64),
    /// Header bytes documented as zero are not (only after the header checksum passed: a
    /// writer of another format version, not damage).
    ReservedNotZero,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, available } => {
                write!(f, "truncated: {needed} bytes needed, {available} available")
            }
            DecodeError::BadChecksum => f.write_str("checksum mismatch"),
            DecodeError::BadMagic => f.write_str("not a stormhold WAL segment (bad magic)"),
            DecodeError::UnsupportedVersion(version) => write!(f, "unsupported WAL format version {version}"),
            DecodeError::LengthTooLarge(len) => write!(f, "record length {len} exceeds the maximum"),
            DecodeError::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            DecodeError::InvalidFirstLsn(lsn) => write!(f, "impossible first lsn {lsn}"),
            DecodeError::ReservedNotZero => f.write_str("reserved record header bytes are not zero"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn need(bytes: &[u8], needed: usize) -> Result<(), DecodeError> {
    if bytes.len() < needed { Err(DecodeError::Truncated { needed, available: bytes.len() }) } else { Ok(()) }
}

/// Encodes a segment header into its 48 data bytes (the rest of its sector is zero).
pub fn encode_segment_header(header: &SegmentHeader) -> [u8; SEGMENT_HEADER_FIELDS_BYTES] {
    let mut bytes = [0; SEGMENT_HEADER_FIELDS_BYTES];
    bytes[0..8].copy_from_slice(SEGMENT_MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&header.segment_id.to_le_bytes());
    bytes[20..28].copy_from_slice(&header.first_lsn.to_le_bytes());
    bytes[28..36].copy_from_slice(&header.identity.store_id.to_le_bytes());
    bytes[36..40].copy_from_slice(&header.identity.shard.to_le_bytes());
    bytes[40..44].copy_from_slice(&header.identity.shards.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..44]);
    bytes[44..48].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes a segment header from the start of `bytes`.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
    // A version 1 header is shorter and checksummed differently: name its version rather
    // than calling it damage.
    if bytes.len() >= 32
        && &bytes[0..8] == SEGMENT_MAGIC
        && u32_at(bytes, 8) == 1
        && crc32fast::hash(&bytes[0..28]) == u32_at(bytes, 28)
    {
        return Err(DecodeError::UnsupportedVersion(1));
    }
    need(bytes, SEGMENT_HEADER_FIELDS_BYTES)?;
    if crc32fast::hash(&bytes[0..44]) != u32_at(bytes, 44) {
        return Err(DecodeError::BadChecksum);
    }
    if &bytes[0..8] != SEGMENT_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let identity =
        StoreIdentity { store_id: u64_at(bytes, 28), shard: u32_at(bytes, 36), shards: u32_at(bytes, 40) };
    let first_lsn = u64_at(bytes, 20);
    if first_lsn == 0 || first_lsn > FIRST_LSN_MAX {
        return Err(DecodeError::InvalidFirstLsn(first_lsn));
    }
    Ok(SegmentHeader { segment_id: u64_at(bytes, 12), first_lsn, identity })
}

/// Records start on multiples of this within a segment.
pub const RECORD_ALIGN_BYTES: u64 = 8;

/// The encoded size of a record with `payload_len` bytes of payload.
pub fn record_bytes(payload_len: usize) -> u64 {
    (RECORD_HEADER_BYTES + payload_len) as u64
}

/// The room a record with `payload_len` bytes of payload takes in a segment (aligned).
pub fn record_slot_bytes(payload_len: usize) -> u64 {
    record_bytes(payload_len).next_multiple_of(RECORD_ALIGN_BYTES)
}

/// Encodes a record. Panics if the payload exceeds [`RECORD_PAYLOAD_BYTES_MAX`] (the writer
/// checks first and returns an error).
pub fn encode_record(record: &Record) -> Vec<u8> {
    assert!(record.payload.len() <= RECORD_PAYLOAD_BYTES_MAX, "payload length checked by the writer");
    let mut bytes = vec![0; RECORD_HEADER_BYTES + record.payload.len()];
    bytes[RECORD_HEADER_BYTES..].copy_from_slice(&record.payload);
    frame_record(&mut bytes, record);
    bytes
}

/// The crc32 of `bytes`, as `crc32fast::hash` computes it, from a hasher whose CPU-feature
/// detection ran once: `crc32fast::hash` detects at every call, which for the two checksums of
/// each record a recovery scan verifies was about 6% of `Kernel::open`'s instructions.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    static HASHER: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    let mut hasher = HASHER.get_or_init(crc32fast::Hasher::new).clone();
    hasher.update(bytes);
    hasher.finalize()
}

/// Fills the header of `frame`, whose payload already follows [`RECORD_HEADER_BYTES`] bytes of
/// room, from `fields` (its `payload` is ignored): the in-place form of [`encode_record`], for
/// writers that build the payload in the buffer they write.
pub fn frame_record(frame: &mut [u8], fields: &Record) {
    assert!(frame.len() >= RECORD_HEADER_BYTES, "a frame starts with the header's room");
    let (header, payload) = frame.split_at_mut(RECORD_HEADER_BYTES);
    assert!(payload.len() <= RECORD_PAYLOAD_BYTES_MAX, "payload length checked by the writer");
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..12].copy_from_slice(&crc32(payload).to_le_bytes());
    header[12] = fields.kind.to_byte();
    header[13..16].fill(0);
    header[16..24].copy_from_slice(&fields.lsn.to_le_bytes());
    header[24..32].copy_from_slice(&fields.durable_lsn.to_le_bytes());
    header[32..40].copy_from_slice(&fields.segment_id.to_le_bytes());
    header[40..48].copy_from_slice(&fields.txn_id.to_le_bytes());
    header[48..56].copy_from_slice(&fields.prev_lsn.to_le_bytes());
    let crc = crc32(&header[4..RECORD_HEADER_BYTES]);
    header[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// The header fields of a record whose header checksum passed; the payload is still unread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload bytes that follow.
    pub payload_len: usize,
    payload_crc: u32,
    /// The kind.
    pub kind: RecordKind,
    /// The lsn.
    pub lsn: Lsn,
    /// The durable lsn claim.
    pub durable_lsn: Lsn,
    /// The segment id.
    pub segment_id: u64,
    /// The transaction id.
    pub txn_id: u64,
    /// The previous lsn of the transaction.
    pub prev_lsn: Lsn,
}

/// Decodes and checks a record header from the start of `bytes`. The length is trusted only
/// after the header checksum passed.
pub fn decode_record_header(bytes: &[u8]) -> Result<RecordHeader, DecodeError> {
    need(bytes, RECORD_HEADER_BYTES)?;
    if crc32(&bytes[4..RECORD_HEADER_BYTES]) != u32_at(bytes, 0) {
        return Err(DecodeError::BadChecksum);
    }
    let payload_len = u32_at(bytes, 4);
    if payload_len as usize > RECORD_PAYLOAD_BYTES_MAX {
        return Err(DecodeError::LengthTooLarge(payload_len));
    }
    let kind = RecordKind::from_byte(bytes[12]).ok_or(DecodeError::UnknownKind(bytes[12]))?;
    // Bug fixed here: bytes 13..16 were ignored, so bytes no writer of this format produces
    // decoded as a record (and re-encoded differently). Only the exact encoding is a record.
    if bytes[13..16] != [0; 3] {
        return Err(DecodeError::ReservedNotZero);
    }
    Ok(RecordHeader {
        payload_len: payload_len as usize,
        payload_crc: u32_at(bytes, 8),
        kind,
        lsn: u64_at(bytes, 16),
        durable_lsn: u64_at(bytes, 24),
        segment_id: u64_at(bytes, 32),
        txn_id: u64_at(bytes, 40),
        prev_lsn: u64_at(bytes, 48),
    })
}

impl RecordHeader {
    /// Checks `payload` against the header and builds the record.
    pub fn with_payload(&self, payload: &[u8]) -> Result<Record, DecodeError> {
        self.with_payload_ref(payload).map(|record| record.to_record())
    }

    /// Checks `payload` against the header and builds the record, borrowing the payload.
    pub fn with_payload_ref<'a>(&self, payload: &'a [u8]) -> Result<RecordRef<'a>, DecodeError> {
        need(payload, self.payload_len)?;
        let payload = &payload[..self.payload_len];
        if crc32(payload) != self.payload_crc {
            return Err(DecodeError::BadChecksum);
        }
        Ok(self.verified_record(payload))
    }

    /// The record of this header and `payload`, which [`RecordHeader::with_payload_ref`]
    /// already accepted (a caller that checked the bytes once need not hash them again).
    /// Panics if `payload` is shorter than the header says: that is a caller's mistake.
    pub fn verified_record<'a>(&self, payload: &'a [u8]) -> RecordRef<'a> {
        let payload = &payload[..self.payload_len];
        debug_assert_eq!(crc32fast::hash(payload), self.payload_crc, "the payload was verified");
        RecordRef {
            kind: self.kind,
            lsn: self.lsn,
            durable_lsn: self.durable_lsn,
            segment_id: self.segment_id,
            txn_id: self.txn_id,
            prev_lsn: self.prev_lsn,
            payload,
        }
    }

    /// The record's encoded size.
    pub fn record_bytes(&self) -> u64 {
        record_bytes(self.payload_len)
    }
}

/// Decodes a whole record from the start of `bytes`.
pub fn decode_record(bytes: &[u8]) -> Result<Record, DecodeError> {
    let header = decode_record_header(bytes)?;
    header.with_payload(&bytes[RECORD_HEADER_BYTES..])
}

/// The segment file name of `segment_id`.
pub fn segment_file_name(segment_id: u64) -> String {
    format!("wal-{segment_id:016x}.log")
}

/// The name a segment takes out of the log before its file is removed
/// (`Wal::retire_before`): not a segment name, so no scan reads it.
pub fn retired_segment_file_name(segment_id: u64) -> String {
    format!("{}.retired", segment_file_name(segment_id))
}

/// The segment id a retired segment's file name names (see [`retired_segment_file_name`]).
pub fn parse_retired_segment_file_name(name: &str) -> Option<u64> {
    parse_segment_file_name(name.strip_suffix(".retired")?)
}

/// The segment id a file name names, if it is exactly the name [`segment_file_name`] gives
/// it: 16 lower-case hex digits. `from_str_radix` alone would also take upper-case digits and
/// a leading `+`, so two names (`wal-…a.log`, `wal-…A.log`) could name one segment.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_hasher_computes_what_crc32fast_hash_computes_at_every_length() {
        // Below and above the 64-byte edge where crc32fast leaves its table code for the
        // folding one, and across its 16-byte strides: records written by older builds
        // (crc32fast::hash) must still verify.
        let bytes: Vec<u8> = (0..4099u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for len in (0..300).chain([1023, 1024, 1025, 4096, 4099]) {
            assert_eq!(crc32(&bytes[..len]), crc32fast::hash(&bytes[..len]), "length {len}");
        }
        // The hasher is shared: a second call starts from a fresh state, not the first's.
        assert_eq!(crc32(b"abc"), crc32(b"abc"));
    }

    fn record(payload: &[u8]) -> Record {
        Record {
            kind: RecordKind::Update,
            lsn: 42,
            durable_lsn: 40,
            segment_id: 3,
            txn_id: 7,
            prev_lsn: 41,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn record_round_trips_and_every_flipped_bit_is_refused() {
        let original = record(b"before/after");
        let bytes = encode_record(&original);
        assert_eq!(decode_record(&bytes), Ok(original));
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_record(&damaged).is_err(), "bit {bit} flipped and still decoded");
        }
    }

    #[test]
    fn zeros_and_short_input_are_not_records() {
        assert_eq!(decode_record(&[0; 128]), Err(DecodeError::BadChecksum));
        assert!(matches!(decode_record(&[1; 10]), Err(DecodeError::Truncated { needed: 56, available: 10 })));
        let bytes = encode_record(&record(b"payload"));
        assert!(matches!(decode_record(&bytes[..bytes.len() - 1]), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn segment_header_round_trips_and_refuses_other_files() {
        let identity = StoreIdentity { store_id: 0xfeed, shard: 2, shards: 3 };
        let header = SegmentHeader { segment_id: 9, first_lsn: 1000, identity };
        let bytes = encode_segment_header(&header);
        assert_eq!(decode_segment_header(&bytes), Ok(header));
        let mut other = bytes;
        other[0] = b'X';
        assert_eq!(decode_segment_header(&other), Err(DecodeError::BadChecksum));
        let mut wrong_magic = bytes;
        wrong_magic[0] = b'X';
        let crc = crc32fast::hash(&wrong_magic[0..44]);
        wrong_magic[44..48].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_segment_header(&wrong_magic), Err(DecodeError::BadMagic));
        let mut v1 = [0; 32];
        v1[0..8].copy_from_slice(SEGMENT_MAGIC);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        v1[20..28].copy_from_slice(&1u64.to_le_bytes());
        let crc = crc32fast::hash(&v1[0..28]);
        v1[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_segment_header(&v1), Err(DecodeError::UnsupportedVersion(1)));
    }

    #[test]
    fn segment_file_name_with_upper_case_hex_is_not_a_segment() {
        assert_eq!(parse_segment_file_name("wal-000000000000000a.log"), Some(10));
        assert_eq!(parse_segment_file_name("wal-000000000000000A.log"), None);
        assert_eq!(parse_segment_file_name("wal-00000000000000Ff.log"), None);
    }

    #[test]
    fn segment_file_name_with_a_leading_plus_is_not_a_segment() {
        assert_eq!(parse_segment_file_name("wal-+00000000000000a.log"), None);
        assert_eq!(parse_segment_file_name("wal--00000000000000a.log"), None);
    }

    #[test]
    fn segment_file_name_of_the_wrong_length_is_not_a_segment() {
        assert_eq!(parse_segment_file_name("wal-00000000000000a.log"), None, "15 digits");
        assert_eq!(parse_segment_file_name("wal-00000000000000000a.log"), None, "17 digits");
        assert_eq!(parse_segment_file_name("wal-.log"), None, "no digits");
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
    }

    #[test]
    fn segment_file_name_with_other_characters_is_not_a_segment() {
        for name in ["wal- 00000000000000a.log", "wal-0x0000000000000a.log", "WAL-000000000000000a.log"] {
            assert_eq!(parse_segment_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn segment_file_names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_segment_file_name(&segment_file_name(0xabc)), Some(0xabc));
        for name in ["wal-1.log", "wal-000000000000000g.log", "LOCK", "wal-0000000000000001.log.tmp"] {
            assert_eq!(parse_segment_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn a_retired_segment_name_is_not_a_segment_name() {
        let retired = retired_segment_file_name(0xabc);
        assert_eq!(parse_segment_file_name(&retired), None, "no scan reads a retired segment");
        assert_eq!(parse_retired_segment_file_name(&retired), Some(0xabc));
        assert_eq!(parse_retired_segment_file_name(&segment_file_name(0xabc)), None);
        assert_eq!(parse_retired_segment_file_name("wal-1.log.retired"), None);
    }
}
