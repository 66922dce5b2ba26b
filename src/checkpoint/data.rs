//! The byte layout of a checkpoint's data file `DATA`: encode and decode only, no I/O.
//!
//! ```text
//! DATA
//!   0..8     magic "STRMCKD\0"
//!   8..12    format version, u32 LE (2; 1 is still read)
//!   12       kind, u8: 1 full, 2 incremental
//!   13..16   zero
//!   16..24   put count, u64 LE
//!   24..32   delete count, u64 LE (0 for a full checkpoint)
//!   32..     version 2: the puts in frames, then the deletes in frames (see `frame`: a
//!            frame's body is a packed run's block);
//!            version 1: the puts, keys strictly increasing: key length u32 LE, key, value
//!            length u32 LE, value; then the deletes, keys strictly increasing: key length
//!            u32 LE, key.
//!            Either way the file ends right after the last entry.
//! ```
//!
//! The file carries no checksum of its own: `META` records its length and crc32, and the store
//! verifies both before it uses what it decoded (it decodes while it reads, through a
//! [`DataSource`], or, for version 2, frame by frame into the run it builds). Decoding still
//! never panics on any bytes and allocates no more than the input holds; only an encoding
//! of some [`CheckpointData`] decodes (sorted unique keys, no key both put and deleted, no
//! trailing bytes), to that data.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::frame::{self, Framer};
use super::meta::{Bytes, CheckpointData};

/// The data format version this code writes (it reads this one and [`DATA_VERSION_PACKED_U32`]).
pub const DATA_VERSION: u32 = 2;
/// The first data format version: `u32` lengths, no frames (still read).
pub const DATA_VERSION_PACKED_U32: u32 = 1;
/// Bytes of the data file header.
pub const DATA_HEADER_BYTES: usize = 32;
const DATA_MAGIC: &[u8; 8] = b"STRMCKD\0";
const KIND_FULL: u8 = 1;
const KIND_INCREMENTAL: u8 = 2;

/// Why bytes are not a data file, or data cannot be encoded. `offset` is within the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataError {
    /// Where the problem is (0 for encoding errors).
    pub offset: u64,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.detail)
    }
}

impl std::error::Error for DataError {}

/// Encodes `data` as a complete data file (version 2, frames of up to
/// [`frame::FRAME_BYTES_MAX`]). Fails if a key is both put and deleted or a key or value
/// does not fit a u32 length.
pub fn encode_data(data: &CheckpointData) -> Result<Vec<u8>, DataError> {
    let empty = BTreeSet::new();
    let (kind, puts, deletes) = match data {
        CheckpointData::Full(state) => (KIND_FULL, state, &empty),
        CheckpointData::Incremental { puts, deletes } => (KIND_INCREMENTAL, puts, deletes),
    };
    if let Some(key) = deletes.iter().find(|key| puts.contains_key(*key)) {
        return Err(DataError { offset: 0, detail: format!("key {key:?} is both put and deleted") });
    }
    let mut framer = Framer::new();
    for (key, value) in puts {
        framer.entry(key, value)?;
    }
    framer.close_frame();
    for key in deletes {
        framer.entry(key, &[])?;
    }
    let body = framer.into_bytes();
    let mut out = Vec::with_capacity(DATA_HEADER_BYTES + body.len());
    out.extend_from_slice(&encode_header(kind == KIND_FULL, puts.len() as u64, deletes.len() as u64));
    out.extend_from_slice(&body);
    Ok(out)
}

/// The header of a data file (`full`: a full checkpoint, else an incremental one) holding
/// `puts` puts and `deletes` deletes; for a writer that streams the entries and writes the
/// header last (`shard::writer`).
pub fn encode_header(full: bool, puts: u64, deletes: u64) -> [u8; DATA_HEADER_BYTES] {
    let mut out = [0; DATA_HEADER_BYTES];
    out[..8].copy_from_slice(DATA_MAGIC);
    out[8..12].copy_from_slice(&DATA_VERSION.to_le_bytes());
    out[12] = if full { KIND_FULL } else { KIND_INCREMENTAL };
    out[16..24].copy_from_slice(&puts.to_le_bytes());
    out[24..32].copy_from_slice(&deletes.to_le_bytes());
    out
}

/// Where [`decode_from`] reads the data file: `len` contiguous bytes at a time, in order. The
/// bytes a `take` returns stay valid until the next call, so a source may reuse one buffer
/// (the checkpoint store streams a file through a bounded block this way).
pub trait DataSource {
    /// The next `len` bytes. Fails, naming the offset, if the input ends first; a source never
    /// allocates more than the input holds to serve a crafted length.
    fn take(&mut self, len: usize) -> Result<&[u8], DataError>;
    /// Bytes taken so far: the offset of the next `take`.
    fn offset(&self) -> u64;
    /// The input's whole length, in bytes.
    fn len_bytes(&self) -> u64;
    /// The bytes already buffered at the offset, which the next takes would return (possibly
    /// none): a decoder may read whole entries from them in place and [`DataSource::consume`]
    /// them, one bounds check per entry instead of four calls. Default: none.
    fn buffered(&self) -> &[u8] {
        &[]
    }
    /// Consumes the first `len` bytes of [`DataSource::buffered`] (at most its length).
    fn consume(&mut self, len: usize) {
        assert_eq!(len, 0, "a source without a buffer has nothing to consume");
    }
}

/// The error of a `take` of `len` bytes at `offset` past the end of the input.
pub fn ends_first(offset: u64, len: usize) -> DataError {
    DataError { offset, detail: format!("{len} bytes needed, the file ends first") }
}

/// A cursor over bytes in memory.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl DataSource for Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], DataError> {
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| ends_first(self.at as u64, len))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn offset(&self) -> u64 {
        self.at as u64
    }

    fn len_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn buffered(&self) -> &[u8] {
        &self.bytes[self.at..]
    }

    fn consume(&mut self, len: usize) {
        assert!(len <= self.bytes.len() - self.at, "consumes only what is buffered");
        self.at += len;
    }
}

fn take_u32(source: &mut impl DataSource) -> Result<u32, DataError> {
    let mut field = [0; 4];
    field.copy_from_slice(source.take(4)?);
    Ok(u32::from_le_bytes(field))
}

/// Reads the next length-prefixed key into `key` (reusing its allocation) and checks it
/// sorts after `last` (the previous key of the same section, if any).
fn take_key_after(
    source: &mut impl DataSource,
    key: &mut Bytes,
    last: Option<&[u8]>,
) -> Result<(), DataError> {
    let at = source.offset();
    let len = take_u32(source)? as usize;
    key.clear();
    key.extend_from_slice(source.take(len)?);
    if last.is_some_and(|last| last >= key.as_slice()) {
        return Err(DataError { offset: at, detail: "keys are not strictly increasing".into() });
    }
    Ok(())
}

/// The header at the front of `source`: (version, kind, put count, delete count).
fn decode_header(source: &mut impl DataSource) -> Result<(u32, u8, u64, u64), DataError> {
    let header = source.take(DATA_HEADER_BYTES)?;
    if &header[..8] != DATA_MAGIC {
        return Err(DataError { offset: 0, detail: "bad magic".into() });
    }
    let field = |at: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != DATA_VERSION && version != DATA_VERSION_PACKED_U32 {
        return Err(DataError { offset: 8, detail: format!("unsupported version {version}") });
    }
    let kind = header[12];
    if kind != KIND_FULL && kind != KIND_INCREMENTAL {
        return Err(DataError { offset: 12, detail: format!("unknown kind {kind}") });
    }
    if header[13..16] != [0, 0, 0] {
        return Err(DataError { offset: 13, detail: "reserved bytes are not zero".into() });
    }
    let (puts, deletes) = (field(16), field(24));
    if kind == KIND_FULL && deletes != 0 {
        return Err(DataError { offset: 24, detail: format!("a full checkpoint with {deletes} deletes") });
    }
    Ok((version, kind, puts, deletes))
}

/// A data file's header, checked as [`decode_into`] checks it: (version, whether it is a full
/// checkpoint, put count, delete count). `bytes` holds at least the header.
pub fn decode_header_bytes(bytes: &[u8]) -> Result<(u32, bool, u64, u64), DataError> {
    let (version, kind, puts, deletes) = decode_header(&mut Reader { bytes, at: 0 })?;
    Ok((version, kind == KIND_FULL, puts, deletes))
}

/// A capacity for `count` entries of at least `entry_bytes` each that the input could hold
/// (a crafted count never allocates more than the input's size).
fn bounded_capacity(count: u64, input_bytes: u64, entry_bytes: u64) -> usize {
    usize::try_from(count.min(input_bytes / entry_bytes)).unwrap_or(usize::MAX)
}

/// Decodes a complete data file.
pub fn decode_data(bytes: &[u8]) -> Result<CheckpointData, DataError> {
    decode_from(&mut Reader { bytes, at: 0 })
}

/// Where [`decode_into`] hands the entries it decodes, in file order: the puts, keys strictly
/// increasing, then the deletes, keys strictly increasing. Borrowed bytes are valid for the
/// call only, so a sink that packs them (a [`super::run::Run`]) allocates nothing per entry.
pub trait DataSink {
    /// The header was read: how many puts and deletes follow (bounded by the input's size,
    /// so a sink may reserve that much).
    fn counts(&mut self, _puts: usize, _deletes: usize) {}
    /// One put.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Whether `key` was put (a delete of a put key is refused).
    fn is_put(&self, key: &[u8]) -> bool;
    /// One delete.
    fn delete(&mut self, key: &[u8]);
}

/// What [`decode_into`] read from the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSummary {
    /// Whether it is a full checkpoint.
    pub full: bool,
    /// Entries decoded: puts plus deletes.
    pub entries: u64,
}

/// Decodes a complete data file read from `source` front to back, in one pass, handing each
/// entry to `sink`: the keys are checked sorted and unique as they are read, and keys and
/// values are handed over borrowed, so the source may stream the file through a bounded
/// buffer and the sink build its state from the sorted stream (no search, no allocation per
/// entry). Puts that lie wholly in the source's buffered bytes are decoded in place (one
/// bounds check each; a key is copied only when it is the last of the buffer, to check the
/// order of the next); the rest go through [`DataSource::take`]. Either way the same bytes
/// decode to the same entries and the same errors at the same offsets.
pub fn decode_into(source: &mut impl DataSource, sink: &mut impl DataSink) -> Result<DataSummary, DataError> {
    let input_bytes = source.len_bytes();
    let (version, kind, put_count, delete_count) = decode_header(source)?;
    if version == DATA_VERSION {
        sink.counts(
            bounded_capacity(put_count, input_bytes, 2),
            bounded_capacity(delete_count, input_bytes, 2),
        );
        return frame::decode_frames(source, sink, kind == KIND_FULL, put_count, delete_count);
    }
    sink.counts(bounded_capacity(put_count, input_bytes, 8), bounded_capacity(delete_count, input_bytes, 4));
    let (mut key, mut last) = (Vec::new(), Vec::new());
    let mut n = 0;
    while n < put_count {
        // Whole entries already buffered are decoded in place; the one cut by the end of the
        // buffer (or any that does not fit) goes through `take`, which reads on.
        n = puts_in_place(source, sink, n, put_count, &mut last)?;
        if n < put_count {
            take_key_after(source, &mut key, (n > 0).then_some(last.as_slice()))?;
            let len = take_u32(source)? as usize;
            sink.put(&key, source.take(len)?);
            std::mem::swap(&mut key, &mut last);
            n += 1;
        }
    }
    for n in 0..delete_count {
        let at = source.offset();
        take_key_after(source, &mut key, (n > 0).then_some(last.as_slice()))?;
        if sink.is_put(&key) {
            return Err(DataError { offset: at, detail: "a deleted key is also put".into() });
        }
        sink.delete(&key);
        std::mem::swap(&mut key, &mut last);
    }
    let at = source.offset();
    if at != input_bytes {
        return Err(DataError { offset: at, detail: format!("{} trailing bytes", input_bytes - at) });
    }
    Ok(DataSummary { full: kind == KIND_FULL, entries: put_count + delete_count })
}

/// The put at the start of `bytes`, if it lies wholly there: (key, value, its bytes).
fn put_at(bytes: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let u32_at = |at: usize| {
        let field: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(field) as usize)
    };
    let key_end = 4usize.checked_add(u32_at(0)?)?;
    let value_at = key_end.checked_add(4)?;
    let value_end = value_at.checked_add(u32_at(key_end)?)?;
    Some((bytes.get(4..key_end)?, bytes.get(value_at..value_end)?, value_end))
}

/// Decodes puts `n..put_count` that lie wholly in the source's buffered bytes, checking the
/// key order as [`take_key_after`] does (against `last`, the previous key, for the first);
/// leaves the last key decoded in `last` and returns the count decoded so far.
fn puts_in_place(
    source: &mut impl DataSource,
    sink: &mut impl DataSink,
    mut n: u64,
    put_count: u64,
    last: &mut Bytes,
) -> Result<u64, DataError> {
    let (offset, buffered) = (source.offset(), source.buffered());
    let (mut used, mut previous): (usize, Option<&[u8]>) = (0, None);
    while n < put_count {
        let Some((key, value, len)) = put_at(&buffered[used..]) else { break };
        let after = previous.or((n > 0).then_some(last.as_slice()));
        if after.is_some_and(|after| after >= key) {
            let detail = "keys are not strictly increasing".into();
            return Err(DataError { offset: offset + used as u64, detail });
        }
        sink.put(key, value);
        (previous, used, n) = (Some(key), used + len, n + 1);
    }
    if let Some(key) = previous {
        last.clear();
        last.extend_from_slice(key);
    }
    source.consume(used);
    Ok(n)
}

/// A sink that builds the maps of a [`CheckpointData`] (from sorted vectors, no search).
#[derive(Default)]
struct MapSink {
    puts: Vec<(Bytes, Bytes)>,
    deletes: Vec<Bytes>,
}

impl DataSink for MapSink {
    fn counts(&mut self, puts: usize, deletes: usize) {
        self.puts.reserve(puts);
        self.deletes.reserve(deletes);
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.puts.push((key.to_vec(), value.to_vec()));
    }

    fn is_put(&self, key: &[u8]) -> bool {
        self.puts.binary_search_by(|(k, _)| k.as_slice().cmp(key)).is_ok()
    }

    fn delete(&mut self, key: &[u8]) {
        self.deletes.push(key.to_vec());
    }
}

/// Decodes a complete data file read from `source` front to back, in one pass (see
/// [`decode_into`]), into the maps of a [`CheckpointData`].
pub fn decode_from(source: &mut impl DataSource) -> Result<CheckpointData, DataError> {
    let mut sink = MapSink::default();
    let summary = decode_into(source, &mut sink)?;
    let puts: BTreeMap<Bytes, Bytes> = sink.puts.into_iter().collect();
    Ok(if summary.full {
        CheckpointData::Full(puts)
    } else {
        CheckpointData::Incremental { puts, deletes: sink.deletes.into_iter().collect::<BTreeSet<Bytes>>() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }

    /// A full version-1 data file whose puts are `keys` in the given order (valid only if
    /// sorted).
    fn full_with_keys(keys: &[&[u8]]) -> Vec<u8> {
        let mut out = encode_header(true, keys.len() as u64, 0).to_vec();
        out[8..12].copy_from_slice(&DATA_VERSION_PACKED_U32.to_le_bytes());
        for key in keys {
            entry(&mut out, key);
            entry(&mut out, b"v");
        }
        out
    }

    #[test]
    fn the_sorted_stream_builds_the_map_and_disorder_is_refused_at_its_offset() {
        let bytes = full_with_keys(&[b"a", b"b", b"c"]);
        let Ok(CheckpointData::Full(state)) = decode_data(&bytes) else { panic!("decodes") };
        assert_eq!(state.keys().map(|k| k.as_slice()).collect::<Vec<_>>(), [b"a", b"b", b"c"]);
        // The third key's entry starts after the header and two entries of 4+1+4+1 bytes.
        let third = (DATA_HEADER_BYTES + 2 * 10) as u64;
        let disorders: [[&[u8]; 3]; 2] = [[b"a", b"c", b"b"], [b"a", b"b", b"b"]];
        for keys in disorders {
            let error = decode_data(&full_with_keys(&keys)).expect_err("out of order");
            assert_eq!(error.offset, third, "{error}");
            assert!(error.detail.contains("strictly increasing"), "{error}");
        }
    }

    /// A source that buffers only up to the next multiple of `chunk` (or nothing, with 0),
    /// so entries are cut by buffer ends everywhere.
    struct Chunked<'a> {
        reader: Reader<'a>,
        chunk: usize,
    }

    impl DataSource for Chunked<'_> {
        fn take(&mut self, len: usize) -> Result<&[u8], DataError> {
            self.reader.take(len)
        }
        fn offset(&self) -> u64 {
            self.reader.offset()
        }
        fn len_bytes(&self) -> u64 {
            self.reader.len_bytes()
        }
        fn buffered(&self) -> &[u8] {
            let at = self.reader.at;
            let end = match self.chunk {
                0 => at,
                chunk => ((at / chunk + 1) * chunk).min(self.reader.bytes.len()),
            };
            &self.reader.bytes[at..end]
        }
        fn consume(&mut self, len: usize) {
            assert!(len <= self.buffered().len(), "consumes only what is buffered");
            self.reader.at += len;
        }
    }

    #[test]
    fn entries_decoded_in_place_or_taken_decode_alike_wherever_the_buffer_ends() {
        let keys: Vec<Vec<u8>> = (0..30u8).map(|n| vec![b'k'; 1 + usize::from(n % 7)]).collect();
        let mut sorted: Vec<Vec<u8>> =
            keys.iter().enumerate().map(|(n, k)| [k.as_slice(), &[n as u8]].concat()).collect();
        sorted.sort();
        let as_slices = |keys: &[Vec<u8>]| keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
        let mut files = vec![as_slices(&sorted)];
        for at in [1, 2, 9, 17, 29] {
            let mut disordered = as_slices(&sorted);
            disordered.swap(at - 1, at);
            files.push(disordered.clone());
            disordered[at] = disordered[at - 1].clone();
            files.push(disordered);
        }
        for keys in files {
            let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
            let mut bytes = full_with_keys(&refs);
            let whole = decode_data(&bytes);
            for chunk in 0..60 {
                let decoded = decode_from(&mut Chunked { reader: Reader { bytes: &bytes, at: 0 }, chunk });
                assert_eq!(decoded, whole, "keys {keys:?}, buffers of {chunk}");
            }
            // A file cut short ends first at the same offset whatever the buffer.
            bytes.truncate(bytes.len() - 3);
            let whole = decode_data(&bytes).expect_err("cut");
            for chunk in [0, 1, 7, 64] {
                let cut = decode_from(&mut Chunked { reader: Reader { bytes: &bytes, at: 0 }, chunk });
                assert_eq!(cut.expect_err("cut"), whole, "buffers of {chunk}");
            }
        }
    }

    #[test]
    fn a_crafted_count_allocates_no_more_than_the_input_holds() {
        let mut bytes = full_with_keys(&[b"a"]);
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        let error = decode_data(&bytes).expect_err("the file ends first");
        assert!(error.detail.contains("the file ends first"), "{error}");
        assert_eq!(bounded_capacity(u64::MAX, 80, 8), 10);
        assert_eq!(bounded_capacity(3, 80, 8), 3);
    }
}
