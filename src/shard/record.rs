//! The shard's WAL record: one committed batch (a transaction, or a chunk of a document), pure
//! encode and decode.
//!
//! A transaction is one record, so a checkpoint taken between records never splits one, and a
//! record is either wholly replayed or (torn, never acknowledged) wholly absent. Increments are
//! resolved to puts of the new value before they are logged, so replaying a record twice
//! gives the same state (replay is idempotent on top of that, by lsn, too).
//!
//! Version 3 (written), byte offsets from the start of the payload:
//!
//! ```text
//! 0      version (3)
//! 1      flags: bit 0 a document mark follows the ops, bit 1 the document is complete
//! 2..6   op count u32 LE
//! 6..    the ops, applied in order (a key may appear more than once: the last op wins):
//!          kind u8 (1 put, 2 delete), key: u32 LE length + bytes, value (put only): same
//!          kind 3 (range delete): start key, end key (exclusive), same framing
//! ..     document id (when bit 0): u32 LE length + UTF-8 bytes, the last thing in the record
//! ```
//!
//! The ops come before the document id so that a [`BatchBuilder`] appends each write once,
//! in place, into the buffer the WAL writes (its head room is the WAL record header), and the
//! commit only patches the flags and count and appends the id. A new op kind is a new kind
//! byte; decoders of this version refuse kinds they do not know, naming the offset. A range
//! delete removes the user keys in `start..end` (never document marks) and is one op whatever
//! it covers.
//!
//! Read only, from logs written before (every version ever written stays readable):
//! - version 1: the document id sits between the flags and the op count (`2..` id, then the
//!   count, then the ops); kinds 1 and 2 only;
//! - version 2: the layout of version 1 with kind 3 allowed (written for batches holding a
//!   range delete before version 3 existed).
//!
//! One decoder, [`BatchView::parse`], serves the commit path and replay: it walks the record
//! once, borrowing, bounds every length by the bytes left before anything is allocated, and
//! names the offset of the first thing that is wrong. [`Batch::decode`] is the owned form.

use super::Bytes;

/// The version this code writes.
pub const VERSION: u8 = 3;
/// The first version, id before the ops, no range deletes; still read.
pub const VERSION_V1: u8 = 1;
/// The layout of version 1 with range deletes; still read.
pub const VERSION_V2_RANGE: u8 = 2;
const FLAG_DOC: u8 = 1;
const FLAG_DOC_COMPLETE: u8 = 2;
/// Kind byte of a put.
pub const OP_PUT: u8 = 1;
/// Kind byte of a delete.
pub const OP_DELETE: u8 = 2;
/// Kind byte of a range delete (versions 2 and 3).
pub const OP_DELETE_RANGE: u8 = 3;
/// Bytes before the first op of a version-3 record.
pub const OPS_START: usize = 6;
/// The smallest op (a delete of the empty key): kind and a length.
const OP_BYTES_MIN: usize = 5;

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets `key` to a value.
    Put(Bytes, Bytes),
    /// Removes `key`.
    Delete(Bytes),
    /// Removes every user key in `start..end` (end exclusive).
    DeleteRange(Bytes, Bytes),
}

/// One write of an encoded batch, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpRef<'a> {
    /// Sets the key to the value.
    Put(&'a [u8], &'a [u8]),
    /// Removes the key.
    Delete(&'a [u8]),
    /// Removes every user key in `start..end` (end exclusive).
    DeleteRange(&'a [u8], &'a [u8]),
}

impl<'a> OpRef<'a> {
    /// The key the op writes (a range delete: its start).
    pub fn key(&self) -> &'a [u8] {
        match *self {
            OpRef::Put(key, _) | OpRef::Delete(key) | OpRef::DeleteRange(key, _) => key,
        }
    }

    /// Whether the op writes `key` (a range delete: whether its range holds `key`).
    pub fn covers(&self, key: &[u8]) -> bool {
        match *self {
            OpRef::Put(op_key, _) | OpRef::Delete(op_key) => op_key == key,
            OpRef::DeleteRange(start, end) => start <= key && key < end,
        }
    }

    /// The owned op.
    pub fn to_op(&self) -> Op {
        match *self {
            OpRef::Put(key, value) => Op::Put(key.to_vec(), value.to_vec()),
            OpRef::Delete(key) => Op::Delete(key.to_vec()),
            OpRef::DeleteRange(start, end) => Op::DeleteRange(start.to_vec(), end.to_vec()),
        }
    }
}

/// A document mark: the batch is a chunk of document `id`, the last one when `complete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocMark {
    /// The document id.
    pub id: String,
    /// Whether this chunk completes the document.
    pub complete: bool,
}

/// A committed batch: what one WAL record of a shard holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The writes, applied in order.
    pub ops: Vec<Op>,
    /// Set when the batch is a document chunk.
    pub doc: Option<DocMark>,
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("lengths are bounded by the kernel's limits");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Encodes a batch in place, op by op, behind `head_room` bytes left for the caller (the WAL
/// record header): the buffer it fills is the one the WAL writes, so a write is copied once,
/// from the caller's slices into the record.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    head_room: usize,
    count: u32,
    /// Payload offsets of the range deletes, in order.
    ranges: Vec<u32>,
    /// Where the ops end, once [`BatchBuilder::finish`] closed the batch.
    ops_end: Option<usize>,
}

impl BatchBuilder {
    /// An empty batch behind `head_room` zero bytes.
    pub fn new(head_room: usize) -> Self {
        let mut buf = Vec::with_capacity(head_room + OPS_START);
        buf.resize(head_room, 0);
        buf.extend_from_slice(&[VERSION, 0, 0, 0, 0, 0]);
        Self { buf, head_room, count: 0, ranges: Vec::new(), ops_end: None }
    }

    /// Empties the batch for reuse, keeping its allocations.
    pub fn reset(&mut self) {
        self.buf.truncate(self.head_room);
        self.buf[..self.head_room].fill(0);
        self.buf.extend_from_slice(&[VERSION, 0, 0, 0, 0, 0]);
        self.count = 0;
        self.ranges.clear();
        self.ops_end = None;
    }

    /// Bytes the batch's buffer holds allocated.
    pub fn capacity_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Ops so far.
    pub fn op_count(&self) -> usize {
        self.count as usize
    }

    /// Appends a put and returns its offset in the payload.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> u32 {
        let at = self.start_op(OP_PUT, 9 + key.len() + value.len());
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
        at
    }

    /// Appends a delete and returns its offset in the payload.
    pub fn delete(&mut self, key: &[u8]) -> u32 {
        let at = self.start_op(OP_DELETE, 5 + key.len());
        put_bytes(&mut self.buf, key);
        at
    }

    /// Appends a range delete of `start..end` and returns its offset in the payload.
    pub fn delete_range(&mut self, start: &[u8], end: &[u8]) -> u32 {
        let at = self.start_op(OP_DELETE_RANGE, 9 + start.len() + end.len());
        put_bytes(&mut self.buf, start);
        put_bytes(&mut self.buf, end);
        self.ranges.push(at);
        at
    }

    /// Whether a range delete before payload offset `at` covers `key`.
    pub fn erased_before(&self, at: u32, key: &[u8]) -> bool {
        self.ranges
            .iter()
            .take_while(|&&range_at| range_at < at)
            .any(|&range_at| self.op_at(range_at).covers(key))
    }

    fn start_op(&mut self, kind: u8, len: usize) -> u32 {
        self.buf.reserve(len);
        let at = u32::try_from(self.buf.len() - self.head_room).expect("records are bounded far below 4 GiB");
        self.count = self.count.checked_add(1).expect("op counts are bounded by the record size");
        self.buf.push(kind);
        at
    }

    /// The op at payload offset `at`, as returned by [`BatchBuilder::put`] or `delete`.
    pub fn op_at(&self, at: u32) -> OpRef<'_> {
        let payload = self.payload();
        let mut reader = Reader { bytes: payload, at: at as usize };
        let op = reader.op().expect("offsets come from this builder");
        op.expect("offsets come from this builder")
    }

    /// Overwrites the value of the put at payload offset `at`, which must have the same length
    /// (an increment's placeholder, resolved at commit).
    pub fn patch_value(&mut self, at: u32, value: &[u8]) {
        let start = self.head_room + at as usize;
        let key_len =
            u32::from_le_bytes(self.buf[start + 1..start + 5].try_into().expect("4 bytes")) as usize;
        let value_at = start + 5 + key_len;
        let old_len =
            u32::from_le_bytes(self.buf[value_at..value_at + 4].try_into().expect("4 bytes")) as usize;
        assert_eq!(old_len, value.len(), "a patched value keeps its length");
        self.buf[value_at + 4..value_at + 4 + old_len].copy_from_slice(value);
    }

    /// Closes the batch: sets the flags and the count, and appends the document mark.
    pub fn finish(&mut self, doc: Option<&DocMark>) {
        let flags = match doc {
            None => 0,
            Some(doc) if doc.complete => FLAG_DOC | FLAG_DOC_COMPLETE,
            Some(_) => FLAG_DOC,
        };
        let h = self.head_room;
        self.buf[h + 1] = flags;
        self.buf[h + 2..h + OPS_START].copy_from_slice(&self.count.to_le_bytes());
        self.ops_end = Some(self.buf.len() - h);
        if let Some(doc) = doc {
            put_bytes(&mut self.buf, doc.id.as_bytes());
        }
    }

    /// The payload encoded so far (complete after [`BatchBuilder::finish`]).
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.head_room..]
    }

    /// The closed batch as [`BatchView::parse`] would decode it, without the walk that
    /// checks it: the builder wrote every op itself. `None` before [`BatchBuilder::finish`].
    pub fn view(&self) -> Option<BatchView<'_>> {
        let ops_end = self.ops_end?;
        let payload = self.payload();
        let flags = payload[1];
        let doc = (flags & FLAG_DOC != 0).then(|| {
            let mut reader = Reader { bytes: payload, at: ops_end };
            let id = reader.doc_id().expect("the builder wrote a UTF-8 id");
            (id, flags & FLAG_DOC_COMPLETE != 0)
        });
        Some(BatchView { ops: &payload[OPS_START..ops_end], count: self.count as usize, doc })
    }

    /// The head room followed by the payload.
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

/// A decoded batch, borrowed from its record: [`BatchView::parse`] checked every length, so
/// [`BatchView::ops`] walks the ops without failing.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<'a> {
    ops: &'a [u8],
    count: usize,
    doc: Option<(&'a str, bool)>,
}

impl<'a> BatchView<'a> {
    /// Decodes a record of any version; the error names the offset of the first problem.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.u8()?;
        if !matches!(version, VERSION | VERSION_V1 | VERSION_V2_RANGE) {
            return Err(format!("offset 0: unknown batch version {version}"));
        }
        let flags = reader.u8()?;
        if flags & !(FLAG_DOC | FLAG_DOC_COMPLETE) != 0 || flags == FLAG_DOC_COMPLETE {
            return Err(format!("offset 1: unknown flags {flags:#04x}"));
        }
        let has_doc = flags & FLAG_DOC != 0;
        let mut doc = None;
        if version != VERSION && has_doc {
            doc = Some(reader.doc_id()?);
        }
        let count = reader.u32()? as usize;
        // Every op takes at least 5 bytes: bound the count before walking.
        if count > reader.left() / OP_BYTES_MIN {
            return Err(format!(
                "offset {}: {count} ops cannot fit in {} bytes",
                reader.at - 4,
                reader.left()
            ));
        }
        let ops_start = reader.at;
        for _ in 0..count {
            let at = reader.at;
            match reader.op()? {
                Some(OpRef::DeleteRange(..)) if version == VERSION_V1 => {
                    return Err(format!("offset {at}: unknown op kind {OP_DELETE_RANGE}"));
                }
                Some(_) => {}
                None => return Err(format!("offset {at}: unknown op kind {}", bytes[at])),
            }
        }
        let ops = &bytes[ops_start..reader.at];
        if version == VERSION && has_doc {
            doc = Some(reader.doc_id()?);
        }
        if reader.left() != 0 {
            return Err(format!("offset {}: {} bytes after the batch", reader.at, reader.left()));
        }
        Ok(Self { ops, count, doc: doc.map(|id| (id, flags & FLAG_DOC_COMPLETE != 0)) })
    }

    /// Ops in the batch.
    pub fn op_count(&self) -> usize {
        self.count
    }

    /// The ops, in order.
    pub fn ops(&self) -> impl Iterator<Item = OpRef<'a>> + 'a {
        let mut reader = Reader { bytes: self.ops, at: 0 };
        // Checked by `parse`: every op decodes, and they end where the slice does. The end is
        // tested before decoding: a decode past it builds an error message (an allocation and
        // a format per batch, 3% of a recovery in perf).
        std::iter::from_fn(move || if reader.left() == 0 { None } else { reader.op().ok().flatten() })
    }

    /// The document mark: its id and whether the batch completes it.
    pub fn doc(&self) -> Option<(&'a str, bool)> {
        self.doc
    }

    /// The owned batch.
    pub fn to_batch(&self) -> Batch {
        let ops = self.ops().map(|op| op.to_op()).collect();
        let doc = self.doc.map(|(id, complete)| DocMark { id: id.to_owned(), complete });
        Batch { ops, doc }
    }
}

impl Batch {
    /// The encoded size in bytes, without encoding.
    pub fn encoded_len(&self) -> usize {
        let doc = self.doc.as_ref().map_or(0, |d| 4 + d.id.len());
        let ops: usize = self
            .ops
            .iter()
            .map(|op| match op {
                Op::Put(key, value) => 1 + 4 + key.len() + 4 + value.len(),
                Op::Delete(key) => 1 + 4 + key.len(),
                Op::DeleteRange(start, end) => 1 + 4 + start.len() + 4 + end.len(),
            })
            .sum();
        OPS_START + ops + doc
    }

    /// Encodes the batch (version 3).
    pub fn encode(&self) -> Vec<u8> {
        let mut builder = BatchBuilder::new(0);
        builder.buf.reserve(self.encoded_len());
        for op in &self.ops {
            match op {
                Op::Put(key, value) => builder.put(key, value),
                Op::Delete(key) => builder.delete(key),
                Op::DeleteRange(start, end) => builder.delete_range(start, end),
            };
        }
        builder.finish(self.doc.as_ref());
        debug_assert_eq!(builder.buf.len(), self.encoded_len());
        builder.buf
    }

    /// Decodes a batch of any version; the error names the offset of the first problem.
    pub fn decode(bytes: &[u8]) -> Result<Batch, String> {
        BatchView::parse(bytes).map(|view| view.to_batch())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.left() {
            return Err(format!("offset {}: needs {len} bytes, {} left", self.at, self.left()));
        }
        let out = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// The next op; `None` (nothing consumed but the kind byte) for an unknown kind.
    fn op(&mut self) -> Result<Option<OpRef<'a>>, String> {
        if let Some(put) = self.whole_put() {
            return Ok(Some(put));
        }
        Ok(match self.u8()? {
            OP_PUT => Some(OpRef::Put(self.bytes()?, self.bytes()?)),
            OP_DELETE => Some(OpRef::Delete(self.bytes()?)),
            OP_DELETE_RANGE => Some(OpRef::DeleteRange(self.bytes()?, self.bytes()?)),
            _ => None,
        })
    }

    /// The next op if it is a put that lies wholly within the bytes (the bulk of every
    /// batch), read with one bounds check per field and no error path; anything else
    /// (another kind, a short record) is left to [`Reader::op`]'s checked reads.
    fn whole_put(&mut self) -> Option<OpRef<'a>> {
        let rest = self.bytes.get(self.at..)?;
        let (&OP_PUT, rest) = rest.split_first()? else { return None };
        let (key_len, rest) = rest.split_first_chunk::<4>()?;
        let (key, rest) = rest.split_at_checked(u32::from_le_bytes(*key_len) as usize)?;
        let (value_len, rest) = rest.split_first_chunk::<4>()?;
        let value = rest.get(..u32::from_le_bytes(*value_len) as usize)?;
        self.at += 1 + 4 + key.len() + 4 + value.len();
        Some(OpRef::Put(key, value))
    }

    fn doc_id(&mut self) -> Result<&'a str, String> {
        let at = self.at;
        std::str::from_utf8(self.bytes()?).map_err(|_| format!("offset {at}: document id is not UTF-8"))
    }
}

#[cfg(test)]
mod tests;
