//! The payloads of the ARIES records: encode and decode only, no I/O.
//!
//! The transaction id and the `prev_lsn` chain live in the WAL record header
//! ([`crate::wal::format`]); these are the bytes after it. All integers are little-endian.
//!
//! ```text
//! Begin, Commit, Abort   empty
//!
//! Update
//!   0..8     page id, u64
//!   8..12    offset in the page, u32
//!   12..16   before image length b, u32
//!   16..20   after image length a, u32
//!   20..     before image (b bytes), then after image (a bytes); nothing after
//!
//! Clr (compensation: restores a before image)
//!   0..8     page id, u64
//!   8..12    offset in the page, u32
//!   12..20   undo_next_lsn, u64: the next record of the transaction still to undo (0: none)
//!   20..24   image length n, u32
//!   24..     image (n bytes); nothing after
//!
//! Checkpoint (fuzzy)
//!   0..4     active transactions n, u32
//!   4..8     dirty pages m, u32
//!   8..      n × (transaction id u64, last lsn u64), then m × (page id u64, rec_lsn u64);
//!            nothing after
//! ```
//!
//! Invariants: decoding any byte string returns a value or a [`PayloadError`] and never panics;
//! a length or count is trusted only after the bytes it promises were found present, so no
//! input makes the decoder allocate more than the input's size; the encoding is canonical:
//! whatever decodes re-encodes to exactly the same bytes.

use std::fmt;

use super::{PageId, TxnId};
use crate::wal::format::{Lsn, RecordKind};

/// An update: bytes `offset..offset + len` of a page changed from `before` to `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The page.
    pub page_id: PageId,
    /// Where in the page the change starts.
    pub offset: u32,
    /// The bytes before the change (for undo).
    pub before: Vec<u8>,
    /// The bytes after the change (for redo).
    pub after: Vec<u8>,
}

/// A compensation log record: undoing an update wrote `image` (its before image) back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clr {
    /// The page.
    pub page_id: PageId,
    /// Where in the page the restored bytes start.
    pub offset: u32,
    /// The bytes restored (the undone update's before image); redo writes them again.
    pub image: Vec<u8>,
    /// The next record of the transaction that still needs undoing (the undone update's
    /// `prev_lsn`); 0 when nothing is left.
    pub undo_next_lsn: Lsn,
}

/// A fuzzy checkpoint: the transaction table and the dirty page table at its lsn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Transactions active at the checkpoint: (transaction id, lsn of its last record).
    pub active_txns: Vec<(TxnId, Lsn)>,
    /// Pages whose latest changes may not be durable in the page store: (page id, rec_lsn,
    /// the lsn of the oldest change the page store may lack).
    pub dirty_pages: Vec<(PageId, Lsn)>,
}

/// The meaning of a record's payload, by its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A [`RecordKind::Data`] record: opaque to ARIES, never interpreted.
    Data,
    /// A transaction begins.
    Begin,
    /// A change.
    Update(Update),
    /// A transaction committed.
    Commit,
    /// A transaction's rollback is complete.
    Abort,
    /// A compensation.
    Clr(Clr),
    /// A fuzzy checkpoint.
    Checkpoint(Checkpoint),
}

/// Why a payload does not decode as its kind says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// Fewer bytes than the fields need.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        available: usize,
    },
    /// Bytes after the last field.
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::Truncated { needed, available } => {
                write!(f, "payload truncated: {needed} bytes needed, {available} available")
            }
            PayloadError::TrailingBytes { extra } => {
                write!(f, "{extra} bytes after the payload's last field")
            }
        }
    }
}

impl std::error::Error for PayloadError {}

const UPDATE_FIXED_BYTES: usize = 20;
const CLR_FIXED_BYTES: usize = 24;
const CHECKPOINT_FIXED_BYTES: usize = 8;
const CHECKPOINT_ENTRY_BYTES: usize = 16;

/// Reads fields front to back, refusing to read past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], PayloadError> {
        let needed = self.at.saturating_add(len);
        let taken = self.bytes.get(self.at..needed);
        let taken = taken.ok_or(PayloadError::Truncated { needed, available: self.bytes.len() })?;
        self.at = needed;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, PayloadError> {
        let mut word = [0; 4];
        word.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(word))
    }

    fn u64(&mut self) -> Result<u64, PayloadError> {
        let mut word = [0; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    /// Fails unless `len` more bytes are there, before anything is allocated for them.
    fn expect_remaining(&self, len: usize) -> Result<(), PayloadError> {
        let needed = self.at.saturating_add(len);
        if needed > self.bytes.len() {
            return Err(PayloadError::Truncated { needed, available: self.bytes.len() });
        }
        Ok(())
    }

    fn finish(self) -> Result<(), PayloadError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            extra => Err(PayloadError::TrailingBytes { extra }),
        }
    }
}

fn len_u32(len: usize) -> [u8; 4] {
    // Images and tables are bounded by the WAL's payload limit (16 MiB), far below u32::MAX.
    debug_assert!(u32::try_from(len).is_ok());
    (len as u32).to_le_bytes()
}

/// Encodes an update.
pub fn encode_update(update: &Update) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(UPDATE_FIXED_BYTES + update.before.len() + update.after.len());
    bytes.extend_from_slice(&update.page_id.to_le_bytes());
    bytes.extend_from_slice(&update.offset.to_le_bytes());
    bytes.extend_from_slice(&len_u32(update.before.len()));
    bytes.extend_from_slice(&len_u32(update.after.len()));
    bytes.extend_from_slice(&update.before);
    bytes.extend_from_slice(&update.after);
    bytes
}

/// Decodes an update.
pub fn decode_update(bytes: &[u8]) -> Result<Update, PayloadError> {
    let mut reader = Reader::new(bytes);
    let page_id = reader.u64()?;
    let offset = reader.u32()?;
    let before_len = reader.u32()? as usize;
    let after_len = reader.u32()? as usize;
    reader.expect_remaining(before_len.saturating_add(after_len))?;
    let before = reader.take(before_len)?.to_vec();
    let after = reader.take(after_len)?.to_vec();
    reader.finish()?;
    Ok(Update { page_id, offset, before, after })
}

/// Encodes a compensation record.
pub fn encode_clr(clr: &Clr) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(CLR_FIXED_BYTES + clr.image.len());
    bytes.extend_from_slice(&clr.page_id.to_le_bytes());
    bytes.extend_from_slice(&clr.offset.to_le_bytes());
    bytes.extend_from_slice(&clr.undo_next_lsn.to_le_bytes());
    bytes.extend_from_slice(&len_u32(clr.image.len()));
    bytes.extend_from_slice(&clr.image);
    bytes
}

/// Decodes a compensation record.
pub fn decode_clr(bytes: &[u8]) -> Result<Clr, PayloadError> {
    let mut reader = Reader::new(bytes);
    let page_id = reader.u64()?;
    let offset = reader.u32()?;
    let undo_next_lsn = reader.u64()?;
    let image_len = reader.u32()? as usize;
    let image = reader.take(image_len)?.to_vec();
    reader.finish()?;
    Ok(Clr { page_id, offset, image, undo_next_lsn })
}

/// Encodes a checkpoint.
pub fn encode_checkpoint(checkpoint: &Checkpoint) -> Vec<u8> {
    let entries = checkpoint.active_txns.len() + checkpoint.dirty_pages.len();
    let mut bytes = Vec::with_capacity(CHECKPOINT_FIXED_BYTES + CHECKPOINT_ENTRY_BYTES * entries);
    bytes.extend_from_slice(&len_u32(checkpoint.active_txns.len()));
    bytes.extend_from_slice(&len_u32(checkpoint.dirty_pages.len()));
    for &(id, lsn) in checkpoint.active_txns.iter().chain(&checkpoint.dirty_pages) {
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&lsn.to_le_bytes());
    }
    bytes
}

fn decode_pairs(reader: &mut Reader<'_>, count: usize) -> Result<Vec<(u64, u64)>, PayloadError> {
    reader.expect_remaining(count.saturating_mul(CHECKPOINT_ENTRY_BYTES))?;
    (0..count).map(|_| Ok((reader.u64()?, reader.u64()?))).collect()
}

/// Decodes a checkpoint.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint, PayloadError> {
    let mut reader = Reader::new(bytes);
    let active = reader.u32()? as usize;
    let dirty = reader.u32()? as usize;
    reader.expect_remaining(active.saturating_add(dirty).saturating_mul(CHECKPOINT_ENTRY_BYTES))?;
    let active_txns = decode_pairs(&mut reader, active)?;
    let dirty_pages = decode_pairs(&mut reader, dirty)?;
    reader.finish()?;
    Ok(Checkpoint { active_txns, dirty_pages })
}

fn decode_empty(bytes: &[u8]) -> Result<(), PayloadError> {
    Reader::new(bytes).finish()
}

/// Decodes the payload of a record of `kind`.
pub fn decode(kind: RecordKind, bytes: &[u8]) -> Result<Payload, PayloadError> {
    Ok(match kind {
        RecordKind::Data => Payload::Data,
        RecordKind::Begin => decode_empty(bytes).map(|()| Payload::Begin)?,
        RecordKind::Update => Payload::Update(decode_update(bytes)?),
        RecordKind::Commit => decode_empty(bytes).map(|()| Payload::Commit)?,
        RecordKind::Abort => decode_empty(bytes).map(|()| Payload::Abort)?,
        RecordKind::Clr => Payload::Clr(decode_clr(bytes)?),
        RecordKind::Checkpoint => Payload::Checkpoint(decode_checkpoint(bytes)?),
    })
}

/// Encodes a payload; `None` for [`Payload::Data`], whose bytes ARIES does not own.
pub fn encode(payload: &Payload) -> Option<Vec<u8>> {
    Some(match payload {
        Payload::Data => return None,
        Payload::Begin | Payload::Commit | Payload::Abort => Vec::new(),
        Payload::Update(update) => encode_update(update),
        Payload::Clr(clr) => encode_clr(clr),
        Payload::Checkpoint(checkpoint) => encode_checkpoint(checkpoint),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [RecordKind; 7] = [
        RecordKind::Data,
        RecordKind::Begin,
        RecordKind::Update,
        RecordKind::Commit,
        RecordKind::Abort,
        RecordKind::Clr,
        RecordKind::Checkpoint,
    ];

    fn image() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..64)
    }

    fn update() -> impl Strategy<Value = Update> {
        (any::<u64>(), any::<u32>(), image(), image()).prop_map(|(page_id, offset, before, after)| Update {
            page_id,
            offset,
            before,
            after,
        })
    }

    fn clr() -> impl Strategy<Value = Clr> {
        (any::<u64>(), any::<u32>(), image(), any::<u64>())
            .prop_map(|(page_id, offset, image, undo_next_lsn)| Clr { page_id, offset, image, undo_next_lsn })
    }

    fn checkpoint() -> impl Strategy<Value = Checkpoint> {
        let pairs = || proptest::collection::vec((any::<u64>(), any::<u64>()), 0..16);
        (pairs(), pairs()).prop_map(|(active_txns, dirty_pages)| Checkpoint { active_txns, dirty_pages })
    }

    proptest! {
        #[test]
        fn update_round_trips(update in update()) {
            prop_assert_eq!(decode_update(&encode_update(&update)), Ok(update));
        }

        #[test]
        fn clr_round_trips(clr in clr()) {
            prop_assert_eq!(decode_clr(&encode_clr(&clr)), Ok(clr));
        }

        #[test]
        fn checkpoint_round_trips(checkpoint in checkpoint()) {
            prop_assert_eq!(decode_checkpoint(&encode_checkpoint(&checkpoint)), Ok(checkpoint));
        }

        #[test]
        fn random_bytes_never_panic_and_what_decodes_is_canonical(
            kind in 0..KINDS.len(),
            bytes in proptest::collection::vec(any::<u8>(), 0..96),
        ) {
            let kind = KINDS[kind];
            if let Ok(payload) = decode(kind, &bytes)
                && let Some(encoded) = encode(&payload)
            {
                prop_assert_eq!(encoded, bytes);
            }
        }

        #[test]
        fn mutated_encodings_never_panic_and_what_decodes_is_canonical(
            update in update(),
            clr in clr(),
            checkpoint in checkpoint(),
            which in 0..3usize,
            at in any::<prop::sample::Index>(),
            value in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (kind, mut bytes) = match which {
                0 => (RecordKind::Update, encode_update(&update)),
                1 => (RecordKind::Clr, encode_clr(&clr)),
                _ => (RecordKind::Checkpoint, encode_checkpoint(&checkpoint)),
            };
            let at = at.index(bytes.len());
            bytes[at] = value;
            bytes.truncate(cut.index(bytes.len() + 1).max(at));
            if let Ok(payload) = decode(kind, &bytes) {
                prop_assert_eq!(encode(&payload), Some(bytes));
            }
        }

        #[test]
        fn every_proper_prefix_and_every_extension_is_refused(update in update(), extra in 1usize..4) {
            let bytes = encode_update(&update);
            for len in 0..bytes.len() {
                let refused = matches!(decode_update(&bytes[..len]), Err(PayloadError::Truncated { .. }));
                prop_assert!(refused, "prefix of {len} bytes decoded");
            }
            let mut longer = bytes.clone();
            longer.resize(bytes.len() + extra, 0);
            prop_assert_eq!(decode_update(&longer), Err(PayloadError::TrailingBytes { extra }));
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_checkpoint(&bytes), Err(PayloadError::Truncated { .. })));
        let mut update = vec![0; 12];
        update.extend_from_slice(&u32::MAX.to_le_bytes());
        update.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_update(&update), Err(PayloadError::Truncated { .. })));
    }

    #[test]
    fn empty_kinds_refuse_any_byte() {
        for kind in [RecordKind::Begin, RecordKind::Commit, RecordKind::Abort] {
            assert!(decode(kind, &[]).is_ok(), "{kind:?}");
            assert_eq!(decode(kind, &[0]), Err(PayloadError::TrailingBytes { extra: 1 }), "{kind:?}");
        }
        assert_eq!(decode(RecordKind::Data, &[1, 2, 3]), Ok(Payload::Data));
    }
}
