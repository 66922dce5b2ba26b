//! A verbatim copy of main's `src/shard/record.rs` at commit 456e873 (its unit tests left out),
//! the codec that wrote versions 1 and 2 of the shard's batch record, kept so a test can write
//! WAL records exactly as a store of that code did. Do not edit: it is the old format's witness.
//!
//! (Original module doc follows.) The shard's WAL record: one committed batch (a transaction, or a chunk of a document), pure
//! encode and decode.
//!
//! A transaction is one record, so a checkpoint taken between records never splits one, and a
//! record is either wholly replayed or (torn, never acknowledged) wholly absent. Increments are
//! resolved to puts of the new value before they are logged, so replaying a record twice
//! gives the same state (replay is idempotent on top of that, by lsn, too).
//!
//! ```text
//! 0      version (1)
//! 1      flags: bit 0 a document mark follows, bit 1 the document is complete
//! [2..]  document id: u32 LE length, UTF-8 bytes             (when bit 0)
//! ..     op count u32 LE, then per op:
//!          kind u8 (1 put, 2 delete), key: u32 LE length + bytes, value (put only): same
//!          kind 3 (range delete, version 2 only): start key, end key (exclusive), same framing
//! ```
//!
//! Version 1 has no range deletes; a batch is written as version 2 only when it holds one, so
//! every batch without one keeps the version-1 bytes, and a version-1 decoder refuses a
//! version-2 record by its version byte instead of misreading it. A range delete removes the
//! user keys in `start..end` (never document marks) and is one op whatever it covers.
//!
//! Decoding bounds every length by the bytes left before it allocates, and names the offset of
//! the first thing that is wrong.

type Bytes = Vec<u8>;

const VERSION: u8 = 1;
/// The version of a batch that holds a range delete.
const VERSION_RANGE: u8 = 2;
const FLAG_DOC: u8 = 1;
const FLAG_DOC_COMPLETE: u8 = 2;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_RANGE: u8 = 3;

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
        2 + doc + 4 + ops
    }

    /// Encodes the batch.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        let ranged = self.ops.iter().any(|op| matches!(op, Op::DeleteRange(..)));
        out.push(if ranged { VERSION_RANGE } else { VERSION });
        let flags = match &self.doc {
            None => 0,
            Some(doc) if doc.complete => FLAG_DOC | FLAG_DOC_COMPLETE,
            Some(_) => FLAG_DOC,
        };
        out.push(flags);
        if let Some(doc) = &self.doc {
            put_bytes(&mut out, doc.id.as_bytes());
        }
        let count = u32::try_from(self.ops.len()).expect("op counts are bounded by the record size");
        out.extend_from_slice(&count.to_le_bytes());
        for op in &self.ops {
            match op {
                Op::Put(key, value) => {
                    out.push(OP_PUT);
                    put_bytes(&mut out, key);
                    put_bytes(&mut out, value);
                }
                Op::Delete(key) => {
                    out.push(OP_DELETE);
                    put_bytes(&mut out, key);
                }
                Op::DeleteRange(start, end) => {
                    out.push(OP_DELETE_RANGE);
                    put_bytes(&mut out, start);
                    put_bytes(&mut out, end);
                }
            }
        }
        debug_assert_eq!(out.len(), self.encoded_len());
        out
    }

    /// Decodes a batch; the error names the offset of the first problem.
    pub fn decode(bytes: &[u8]) -> Result<Batch, String> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.u8()?;
        if version != VERSION && version != VERSION_RANGE {
            return Err(format!("offset 0: unknown batch version {version}"));
        }
        let flags = reader.u8()?;
        if flags & !(FLAG_DOC | FLAG_DOC_COMPLETE) != 0 || flags == FLAG_DOC_COMPLETE {
            return Err(format!("offset 1: unknown flags {flags:#04x}"));
        }
        let doc = if flags & FLAG_DOC != 0 {
            let at = reader.at;
            let id = String::from_utf8(reader.bytes()?)
                .map_err(|_| format!("offset {at}: document id is not UTF-8"))?;
            Some(DocMark { id, complete: flags & FLAG_DOC_COMPLETE != 0 })
        } else {
            None
        };
        let count = reader.u32()? as usize;
        // Every op takes at least 5 bytes: bound the count before allocating.
        if count > reader.left() / 5 {
            return Err(format!(
                "offset {}: {count} ops cannot fit in {} bytes",
                reader.at - 4,
                reader.left()
            ));
        }
        let mut ops = Vec::with_capacity(count);
        for _ in 0..count {
            let at = reader.at;
            ops.push(match reader.u8()? {
                OP_PUT => Op::Put(reader.bytes()?, reader.bytes()?),
                OP_DELETE => Op::Delete(reader.bytes()?),
                OP_DELETE_RANGE if version == VERSION_RANGE => {
                    Op::DeleteRange(reader.bytes()?, reader.bytes()?)
                }
                kind => return Err(format!("offset {at}: unknown op kind {kind}")),
            });
        }
        if reader.left() != 0 {
            return Err(format!("offset {}: {} bytes after the last op", reader.at, reader.left()));
        }
        Ok(Batch { ops, doc })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, len: usize) -> Result<&[u8], String> {
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

    fn bytes(&mut self) -> Result<Bytes, String> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }
}
