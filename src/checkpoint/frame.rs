//! The entry layout of a version-2 `DATA` file: entries in *frames*, each frame's body laid
//! out exactly as a block of a packed [`super::run::Run`], so a loader reads a frame from disk
//! straight into a block the run adopts (no entry is decoded into a buffer and copied again).
//! Encode, walk and check only; no I/O (the loader is `frame_load`).
//!
//! ```text
//!   after the 32-byte header (see `data`): the put frames, then the delete frames; the file
//!   ends with the last frame (a file of no entries is the header alone)
//!   frame   body length u32 LE (> 0) | entry count u32 LE (> 0) | body
//!   body    entries back to back: key length | key | value length | value
//!           (each length a minimal LEB128 varint of a u32, as in a run's blocks);
//!           a delete is an entry with an empty value
//! ```
//!
//! The header's counts say where each section ends: the put frames' counts add up to the put
//! count, then the delete frames' to the delete count; a frame never holds both.
//! A frame's body is at most [`FRAME_BYTES_MAX`] unless it holds a single entry (one larger
//! than that has a frame of its own, as it has a block of its own in a run). Where frames
//! end is the writer's choice (the checkpoint writer ends one at each chunk it writes), so
//! two files holding the same entries may frame them differently and decode alike.
//!
//! # Invariants
//!
//! - [`walk_frame`] accepts a body only if it holds exactly its count of well-formed entries
//!   (minimal varints, every byte inside the body, keys strictly increasing from the key
//!   before the frame, no value on a delete): what it accepts is a valid run block;
//! - [`Sections`] accepts frames only in the layout's order and counts: the put frames add up
//!   to the header's put count before any delete frame, the delete frames to its delete count,
//!   and nothing follows;
//! - nothing here allocates more than the input holds: a frame's length is checked against
//!   the bytes left in the file before anything is read into it.

use super::data::{DataError, DataSink, DataSource, DataSummary};
use super::run::{BLOCK_BYTES, compare_keys, put_varint, varint_bytes};

/// The largest frame body holding more than one entry (a run's block).
pub const FRAME_BYTES_MAX: usize = BLOCK_BYTES;
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 8;

/// Builds frames into a buffer: a writer appends entries, ends a frame where it likes (it
/// must between the puts and the deletes; one is ended where the next entry would make it
/// exceed [`FRAME_BYTES_MAX`]), and takes the bytes of closed frames.
#[derive(Debug, Default)]
pub struct Framer {
    bytes: Vec<u8>,
    /// Where the open frame's header is in `bytes`, with its entries so far.
    open: Option<(usize, u32)>,
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (a delete: an empty value) to the open frame, opening one first (and
    /// closing a full one). Fails if the key or value does not fit a u32 length.
    pub fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), DataError> {
        let length = |bytes: &[u8]| {
            u32::try_from(bytes.len()).map_err(|_| DataError {
                offset: 0,
                detail: format!("a key or value of {} bytes", bytes.len()),
            })
        };
        let (key_len, value_len) = (length(key)?, length(value)?);
        let entry_bytes = varint_bytes(key_len) + key.len() + varint_bytes(value_len) + value.len();
        if self.closes_for(entry_bytes) {
            self.close_frame();
        }
        if entry_bytes > u32::MAX as usize {
            return Err(DataError { offset: 0, detail: format!("an entry of {entry_bytes} bytes") });
        }
        let bytes = &mut self.bytes;
        self.open
            .get_or_insert_with(|| {
                bytes.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
                (bytes.len() - FRAME_HEADER_BYTES, 0)
            })
            .1 += 1;
        put_varint(&mut self.bytes, key_len);
        self.bytes.extend_from_slice(key);
        put_varint(&mut self.bytes, value_len);
        self.bytes.extend_from_slice(value);
        Ok(())
    }

    /// Whether an entry of `key_len` and `value_len` bytes would close the open frame (it
    /// would take the frame's body past [`FRAME_BYTES_MAX`]) and open the next one with it:
    /// a writer that ends a frame where it likes can end it before such an entry instead.
    pub fn would_close(&self, key_len: usize, value_len: usize) -> bool {
        let varint = |len: usize| varint_bytes(u32::try_from(len).unwrap_or(u32::MAX));
        self.closes_for(varint(key_len) + key_len + varint(value_len) + value_len)
    }

    fn closes_for(&self, entry_bytes: usize) -> bool {
        self.open.is_some_and(|(at, entries)| {
            let body = self.bytes.len() - at - FRAME_HEADER_BYTES;
            body + entry_bytes > FRAME_BYTES_MAX || entries == u32::MAX
        })
    }

    /// Appends `entries` entries laid out already (a stretch of a run's block, `body`) to
    /// the open frame, opening one first, or closing a full one as [`Framer::entry`] does.
    /// The caller vouches for the body as [`walk_frame`] checks it (debug builds walk it),
    /// for its keys' order against the entries before it, and, for more than one entry,
    /// that it fits a frame's bound ([`Framer::room_bytes`] of a new frame).
    pub fn entries(&mut self, body: &[u8], entries: u32) {
        assert!(entries > 0 && !body.is_empty(), "entries to add");
        assert!(body.len() <= FRAME_BYTES_MAX || entries == 1, "entries above the bound are one entry");
        debug_assert_eq!(walk_frame(body, 0, entries, false, None, |_, _, _| {}), Ok(()), "valid entries");
        if self.open.is_some_and(|(at, count)| {
            let open_body = self.bytes.len() - at - FRAME_HEADER_BYTES;
            open_body + body.len() > FRAME_BYTES_MAX || count.checked_add(entries).is_none()
        }) {
            self.close_frame();
        }
        let bytes = &mut self.bytes;
        self.open
            .get_or_insert_with(|| {
                bytes.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
                (bytes.len() - FRAME_HEADER_BYTES, 0)
            })
            .1 += entries;
        self.bytes.extend_from_slice(body);
    }

    /// Bytes of entries the open frame takes before it reaches its bound (a new frame's:
    /// [`FRAME_BYTES_MAX`]).
    pub fn room_bytes(&self) -> usize {
        // A frame of one entry may be past the bound: no room then.
        self.open.map_or(FRAME_BYTES_MAX, |(at, _)| {
            FRAME_BYTES_MAX.saturating_sub(self.bytes.len() - at - FRAME_HEADER_BYTES)
        })
    }

    /// Ends the open frame, if any: its header gets its length and count.
    pub fn close_frame(&mut self) {
        if let Some((at, entries)) = self.open.take() {
            let body = (self.bytes.len() - at - FRAME_HEADER_BYTES) as u32;
            self.bytes[at..at + 4].copy_from_slice(&body.to_le_bytes());
            self.bytes[at + 4..at + 8].copy_from_slice(&entries.to_le_bytes());
        }
    }

    /// Bytes buffered, the open frame's included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The buffered bytes, every frame closed first.
    pub fn closed_bytes(&mut self) -> &[u8] {
        self.close_frame();
        &self.bytes
    }

    /// Forgets the buffered bytes (once written); the buffer's allocation is kept.
    pub fn clear(&mut self) {
        assert!(self.open.is_none(), "only closed frames are written and cleared");
        self.bytes.clear();
    }

    /// The buffered bytes, every frame closed.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.close_frame();
        self.bytes
    }
}

/// The varint of a u32 at `at` in `bytes` (read from disk: checked) and the offset after it.
#[inline(always)]
fn varint_at(bytes: &[u8], at: usize) -> Result<(usize, usize), &'static str> {
    // Lengths under 128, the common case, take one byte.
    match bytes.get(at) {
        Some(&byte) if byte < 0x80 => Ok((usize::from(byte), at + 1)),
        _ => varint_at_long(bytes, at),
    }
}

#[cold]
#[inline(never)]
fn varint_at_long(bytes: &[u8], at: usize) -> Result<(usize, usize), &'static str> {
    let mut n = 0u32;
    for i in 0..5 {
        let Some(&byte) = bytes.get(at + i) else { return Err("an entry is cut by the end of its frame") };
        if i == 4 && byte > 0x0f {
            return Err("a length does not fit a u32");
        }
        n |= u32::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i > 0 && byte == 0 {
                return Err("a length is not minimally encoded");
            }
            return Ok((n as usize, at + i + 1));
        }
    }
    Err("a length does not fit a u32")
}

/// Walks the `count` entries of a frame `body` (at file offset `body_at`), checking them
/// (see the module docs) against `before`, the key before the frame; calls `entry` with each
/// entry's offset in the body, key and value. `deletes`: a delete frame (empty values only).
pub fn walk_frame<'b>(
    body: &'b [u8],
    body_at: u64,
    count: u32,
    deletes: bool,
    before: Option<&[u8]>,
    mut entry: impl FnMut(usize, &'b [u8], &'b [u8]),
) -> Result<(), DataError> {
    let mut previous = before;
    let mut at = 0;
    for _ in 0..count {
        let fail = |detail: &str| DataError { offset: body_at + at as u64, detail: detail.to_string() };
        let (key_len, key_at) = varint_at(body, at).map_err(fail)?;
        let key_end = key_at.checked_add(key_len).filter(|&end| end <= body.len());
        let key_end = key_end.ok_or_else(|| fail("an entry is cut by the end of its frame"))?;
        let (value_len, value_at) = varint_at(body, key_end).map_err(fail)?;
        let value_end = value_at.checked_add(value_len).filter(|&end| end <= body.len());
        let value_end = value_end.ok_or_else(|| fail("an entry is cut by the end of its frame"))?;
        if deletes && value_len != 0 {
            return Err(fail("a delete carries a value"));
        }
        let key = &body[key_at..key_end];
        if previous.is_some_and(|previous| compare_keys(previous, key).is_ge()) {
            return Err(fail("keys are not strictly increasing"));
        }
        entry(at, key, &body[value_at..value_end]);
        previous = Some(key);
        at = value_end;
    }
    if at != body.len() {
        let detail = format!("{} bytes after the frame's {count} entries", body.len() - at);
        return Err(DataError { offset: body_at + at as u64, detail });
    }
    Ok(())
}

/// A frame header: its body's length and entry count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of the body.
    pub body_bytes: u32,
    /// Entries in it.
    pub entries: u32,
}

impl FrameHeader {
    /// The header in `bytes` (8 bytes).
    pub fn parse(bytes: [u8; FRAME_HEADER_BYTES]) -> Self {
        let body_bytes = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let entries = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        Self { body_bytes, entries }
    }
}

/// Where a frame goes, once [`Sections::frame`] accepted its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// A frame of puts.
    Puts,
    /// A frame of deletes.
    Deletes,
}

/// The order and counts of a file's frames (see the module docs), checked header by header.
#[derive(Clone, Debug)]
pub struct Sections {
    puts: u64,
    deletes: u64,
    /// The section the next frame belongs to (`None`: every entry is read).
    section: Option<Section>,
    /// Entries of that section in the frames so far.
    seen: u64,
}

impl Sections {
    /// The sections of a file whose header announced `puts` and `deletes`.
    pub fn new(puts: u64, deletes: u64) -> Self {
        let section = if puts > 0 { Some(Section::Puts) } else { (deletes > 0).then_some(Section::Deletes) };
        Self { puts, deletes, section, seen: 0 }
    }

    /// Accepts the frame header `header` read at `at`, with `left` bytes of the file after
    /// it: the section its entries belong to.
    pub fn frame(&mut self, at: u64, header: FrameHeader, left: u64) -> Result<Section, DataError> {
        let fail = |detail: String| Err(DataError { offset: at, detail });
        let Some(section) = self.section else { return fail("a frame after the last entry".into()) };
        let expected = if section == Section::Puts { self.puts } else { self.deletes };
        let (body_bytes, entries) = (header.body_bytes, header.entries);
        if body_bytes == 0 || entries == 0 {
            return fail(format!("a frame of {body_bytes} bytes holding {entries} entries"));
        }
        if u64::from(body_bytes) > left {
            return fail(format!("a frame of {body_bytes} bytes, the file ends first"));
        }
        if entries > 1 && body_bytes as usize > FRAME_BYTES_MAX {
            return fail(format!("a frame of {body_bytes} bytes holding {entries} entries"));
        }
        // Each entry takes at least two bytes: a crafted count is refused before any walk.
        let left_in_section = expected - self.seen;
        if u64::from(entries) > left_in_section || 2 * u64::from(entries) > u64::from(body_bytes) {
            return fail(format!(
                "a frame of {entries} entries in {body_bytes} bytes, with {left_in_section} {section:?} left"
            ));
        }
        self.seen += u64::from(entries);
        if self.seen == expected {
            self.seen = 0;
            self.section = (section == Section::Puts && self.deletes > 0).then_some(Section::Deletes);
        }
        Ok(section)
    }

    /// Whether the frames so far hold every entry the header announced.
    pub fn is_done(&self) -> bool {
        self.section.is_none()
    }
}

/// Decodes the frames of a version-2 file whose header (`puts`, `deletes`) was just read
/// from `source`, handing each entry to `sink`, through the end of the file.
pub fn decode_frames(
    source: &mut impl DataSource,
    sink: &mut impl DataSink,
    full: bool,
    puts: u64,
    deletes: u64,
) -> Result<DataSummary, DataError> {
    let mut sections = Sections::new(puts, deletes);
    let (mut last, mut last_section): (Vec<u8>, Option<Section>) = (Vec::new(), None);
    while !sections.is_done() {
        let at = source.offset();
        let mut field = [0; FRAME_HEADER_BYTES];
        field.copy_from_slice(source.take(FRAME_HEADER_BYTES)?);
        let left = source.len_bytes() - source.offset();
        let section = sections.frame(at, FrameHeader::parse(field), left)?;
        // The key order runs within a section: the deletes start over.
        let has_last = last_section == Some(section);
        let header = FrameHeader::parse(field);
        let body_at = source.offset();
        let body = source.take(header.body_bytes as usize)?;
        let deleting = section == Section::Deletes;
        let mut refused = None;
        let mut frame_last = None;
        walk_frame(
            body,
            body_at,
            header.entries,
            deleting,
            has_last.then_some(last.as_slice()),
            |at, key, value| {
                if deleting {
                    if refused.is_none() && sink.is_put(key) {
                        refused = Some(at);
                    }
                } else {
                    sink.put(key, value);
                }
                frame_last = Some(key);
            },
        )?;
        if let Some(at) = refused {
            return Err(DataError {
                offset: body_at + at as u64,
                detail: "a deleted key is also put".into(),
            });
        }
        if deleting {
            walk_frame(body, body_at, header.entries, true, None, |_, key, _| sink.delete(key))?;
        }
        if let Some(key) = frame_last {
            last.clear();
            last.extend_from_slice(key);
            last_section = Some(section);
        }
    }
    let at = source.offset();
    if at != source.len_bytes() {
        return Err(DataError { offset: at, detail: format!("{} trailing bytes", source.len_bytes() - at) });
    }
    Ok(DataSummary { full, entries: puts + deletes })
}

#[cfg(test)]
mod tests;
