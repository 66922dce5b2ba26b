//! `WriteBuffer`: the writes of a transaction, a document chunk or one shard's part of a
//! `WriteBatch`, encoded as they arrive into the WAL record that will carry them.
//!
//! Each put, delete or increment is appended once to a [`BatchBuilder`] (whose head room is
//! the WAL record header), so a commit encodes nothing: it resolves the increments in place,
//! closes the batch and hands the buffer to the WAL and the state. There is no per-write
//! allocation beyond the buffer's growth.
//!
//! Invariants:
//! - a key may be written more than once; the record applies its ops in order, so the last
//!   write of a key wins, exactly as the map of the writes the buffer replaces did;
//! - `ops` holds the offset of every op in order; `adds` the ops that are increments still to
//!   resolve (a put of 8 placeholder bytes, and the delta), in offset order. An increment a
//!   later put, delete or covering range delete overwrites leaves `adds` (its placeholder is
//!   then overwritten or removed when the record is applied, and never read as a counter);
//! - `ranges` holds the offset of every range delete in order; the latest write of a key is
//!   the later of its latest put/delete/increment and the latest range delete that covers it
//!   (a range delete reads as a delete of every key it covers);
//! - `index`, once built (on the first lookup in a buffer of more than [`INDEX_AFTER`] ops by a
//!   write path: an increment, or a write while increments are pending) maps every key to the
//!   offset of its latest point op (put, delete, increment) and is kept up to date; a pure load
//!   never looks a key up and never builds it, and a `get` without the index scans back.
//!
//! A [`BufferPool`] keeps a few emptied buffers of committed transactions for the next ones,
//! so a load of many large transactions neither regrows its buffer op by op (about ten
//! reallocations and copies for a 125 KB batch) nor frees a large block per commit. Measured,
//! this is small next to the state map: most of the allocator time `perf` shows in the bulk
//! rows is the final drop of the state, outside the timed part. It holds at most
//! [`SPARE_BUFFERS_MAX`] buffers of at most [`SPARE_BUFFER_BYTES_MAX`] each.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::shard::Bytes;
use crate::shard::record::{BatchBuilder, OpRef};
use crate::wal::format::RECORD_HEADER_BYTES;

/// Ops a lookup scans before the buffer builds its index.
const INDEX_AFTER: usize = 32;
/// Emptied buffers a [`BufferPool`] keeps.
const SPARE_BUFFERS_MAX: usize = 8;
/// The largest batch allocation a [`BufferPool`] keeps, in bytes: a rare huge transaction's
/// buffer is freed, not held for the kernel's lifetime.
const SPARE_BUFFER_BYTES_MAX: usize = 4 << 20;

/// Emptied write buffers for reuse; see the module docs.
#[derive(Debug, Default)]
pub(super) struct BufferPool {
    spare: Mutex<Vec<WriteBuffer>>,
}

impl BufferPool {
    /// An empty buffer: a spare one if there is one.
    pub(super) fn take(&self) -> WriteBuffer {
        let spare = self.spare.lock().ok().and_then(|mut spare| spare.pop());
        spare.unwrap_or_else(WriteBuffer::new)
    }

    /// Keeps `buffer`, emptied, for a later [`BufferPool::take`], unless the pool is full or
    /// the buffer too large.
    pub(super) fn give(&self, mut buffer: WriteBuffer) {
        if buffer.batch.capacity_bytes() > SPARE_BUFFER_BYTES_MAX {
            return;
        }
        buffer.reset();
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < SPARE_BUFFERS_MAX
        {
            spare.push(buffer);
        }
    }

    /// Buffers held.
    #[cfg(test)]
    fn spare_count(&self) -> usize {
        self.spare.lock().map_or(0, |spare| spare.len())
    }
}

/// What the buffer holds for a key: its latest write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Latest<'a> {
    /// Not written.
    Unwritten,
    /// Set to the value.
    Put(&'a [u8]),
    /// Removed.
    Delete,
    /// Incremented by the delta over the committed value.
    Add(u64),
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct WriteBuffer {
    batch: BatchBuilder,
    ops: Vec<u32>,
    adds: Vec<(u32, u64)>,
    ranges: Vec<u32>,
    index: Option<BTreeMap<Bytes, u32>>,
}

impl WriteBuffer {
    pub(super) fn new() -> Self {
        Self {
            batch: BatchBuilder::new(RECORD_HEADER_BYTES),
            ops: Vec::new(),
            adds: Vec::new(),
            ranges: Vec::new(),
            index: None,
        }
    }

    /// The encoded batch and its increments, for [`crate::shard::Shard::commit_built`].
    pub(super) fn parts_mut(&mut self) -> (&mut BatchBuilder, &[(u32, u64)]) {
        (&mut self.batch, &self.adds)
    }

    /// Forgets every write, keeping the allocations (the index aside).
    pub(super) fn reset(&mut self) {
        self.batch.reset();
        self.ops.clear();
        self.adds.clear();
        self.ranges.clear();
        self.index = None;
    }

    /// The offset of the latest op of `key`, building the index first if it is due.
    fn latest_at_mut(&mut self, key: &[u8]) -> Option<u32> {
        if self.index.is_none() && self.ops.len() > INDEX_AFTER {
            let mut index = BTreeMap::new();
            for &at in &self.ops {
                if let op @ (OpRef::Put(..) | OpRef::Delete(_)) = self.batch.op_at(at) {
                    index.insert(op.key().to_vec(), at);
                }
            }
            self.index = Some(index);
        }
        self.latest_at(key)
    }

    /// The offset of the latest op that writes `key` (a range delete covering it included):
    /// from the index, or a scan back if none is built.
    fn latest_at(&self, key: &[u8]) -> Option<u32> {
        match &self.index {
            Some(index) => {
                let point = index.get(key).copied();
                let range = self.ranges.iter().rev().copied().find(|&at| self.batch.op_at(at).covers(key));
                point.max(range)
            }
            None => self.ops.iter().rev().copied().find(|&at| self.batch.op_at(at).covers(key)),
        }
    }

    fn add_slot(&self, at: u32) -> Result<usize, usize> {
        self.adds.binary_search_by_key(&at, |&(add_at, _)| add_at)
    }

    /// The latest write of `key`, building the index if it is due.
    pub(super) fn latest_mut(&mut self, key: &[u8]) -> Latest<'_> {
        self.latest_at_mut(key);
        self.latest(key)
    }

    /// The latest write of `key` (a scan back through the writes until an index is built).
    pub(super) fn latest(&self, key: &[u8]) -> Latest<'_> {
        let Some(at) = self.latest_at(key) else { return Latest::Unwritten };
        if let Ok(slot) = self.add_slot(at) {
            return Latest::Add(self.adds[slot].1);
        }
        match self.batch.op_at(at) {
            OpRef::Put(_, value) => Latest::Put(value),
            OpRef::Delete(_) | OpRef::DeleteRange(..) => Latest::Delete,
        }
    }

    fn note(&mut self, key: &[u8], at: u32) {
        self.ops.push(at);
        if let Some(index) = &mut self.index {
            index.insert(key.to_vec(), at);
        }
    }

    /// Drops the pending increment of `key`, which a later write is about to overwrite.
    fn cancel_add(&mut self, key: &[u8]) {
        if self.adds.is_empty() {
            return;
        }
        if let Some(at) = self.latest_at_mut(key)
            && let Ok(slot) = self.add_slot(at)
        {
            self.adds.remove(slot);
        }
    }

    /// Sets `key` to `value`.
    pub(super) fn put(&mut self, key: &[u8], value: &[u8]) {
        self.cancel_add(key);
        let at = self.batch.put(key, value);
        self.note(key, at);
    }

    /// Removes `key`.
    pub(super) fn delete(&mut self, key: &[u8]) {
        self.cancel_add(key);
        let at = self.batch.delete(key);
        self.note(key, at);
    }

    /// Removes every key in `start..end`: pending increments in the range are dropped, and
    /// the range reads as a delete of each key it covers until a later write of that key.
    pub(super) fn delete_range(&mut self, start: &[u8], end: &[u8]) {
        let batch = &self.batch;
        self.adds.retain(|&(at, _)| !OpRef::DeleteRange(start, end).covers(batch.op_at(at).key()));
        let at = self.batch.delete_range(start, end);
        self.ops.push(at);
        self.ranges.push(at);
    }

    /// Sets the pending increment of `key` (which must not be written, or be an increment)
    /// to `delta` in total.
    pub(super) fn set_add(&mut self, key: &[u8], delta: u64) {
        if let Some(at) = self.latest_at_mut(key)
            && let Ok(slot) = self.add_slot(at)
        {
            self.adds[slot].1 = delta;
            return;
        }
        let at = self.batch.put(key, &[0; 8]);
        // Offsets grow: the new increment is the last in offset order.
        self.adds.push((at, delta));
        self.note(key, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookups(buffer: &mut WriteBuffer) -> Vec<String> {
        let keys: [&[u8]; 4] = [b"a", b"b", b"c", b"zz"];
        keys.iter().map(|key| format!("{:?}", buffer.latest_mut(key))).collect()
    }

    /// The same writes, with `fill` ops on other keys first (past the index threshold or not).
    fn written(fill: usize) -> WriteBuffer {
        let mut buffer = WriteBuffer::new();
        for n in 0..fill {
            buffer.put(format!("fill{n}").as_bytes(), b"");
        }
        buffer.put(b"a", b"1");
        buffer.set_add(b"b", 5);
        buffer.set_add(b"b", 7);
        buffer.put(b"a", b"2");
        buffer.set_add(b"c", 1);
        buffer.delete(b"c");
        buffer
    }

    #[test]
    fn the_latest_write_wins_with_and_without_the_index() {
        for fill in [0, INDEX_AFTER * 2] {
            let mut buffer = written(fill);
            assert_eq!(buffer.index.is_some(), fill > 0, "fill {fill}");
            let expected = [Latest::Put(b"2"), Latest::Add(7), Latest::Delete, Latest::Unwritten];
            let expected: Vec<String> = expected.iter().map(|l| format!("{l:?}")).collect();
            assert_eq!(lookups(&mut buffer), expected, "fill {fill}");
            // The overwritten increment of c is no longer pending; b's is, once.
            assert_eq!(buffer.adds.len(), 1);
        }
    }

    #[test]
    fn a_range_delete_hides_earlier_writes_and_later_writes_win_with_and_without_the_index() {
        for fill in [0, INDEX_AFTER * 2] {
            let mut buffer = written(fill);
            buffer.put(b"bb", b"x");
            buffer.delete_range(b"a", b"bz");
            buffer.put(b"a", b"3");
            assert_eq!(buffer.index.is_some(), fill > 0, "fill {fill}");
            let expected = [Latest::Put(b"3"), Latest::Delete, Latest::Delete, Latest::Unwritten];
            let expected: Vec<String> = expected.iter().map(|l| format!("{l:?}")).collect();
            assert_eq!(lookups(&mut buffer), expected, "fill {fill}");
            assert_eq!(format!("{:?}", buffer.latest(b"bb")), "Delete", "fill {fill}");
            assert_eq!(format!("{:?}", buffer.latest(b"bz")), "Unwritten", "the end is exclusive");
            // b's pending increment was in the range: nothing is left to resolve.
            assert!(buffer.adds.is_empty(), "fill {fill}");
        }
    }

    #[test]
    fn a_pooled_buffer_comes_back_empty_with_its_allocation_and_the_pool_is_bounded() {
        let pool = BufferPool::default();
        let mut buffer = pool.take();
        buffer.put(b"a", &[7; 1000]);
        buffer.set_add(b"n", 1);
        buffer.delete_range(b"x", b"y");
        let capacity = buffer.batch.capacity_bytes();
        pool.give(buffer);
        let mut again = pool.take();
        assert_eq!(pool.spare_count(), 0);
        assert_eq!(again.batch.capacity_bytes(), capacity, "the allocation is reused");
        assert!(again.ops.is_empty() && again.adds.is_empty() && again.ranges.is_empty());
        assert_eq!(format!("{:?}", again.latest_mut(b"a")), "Unwritten");
        for _ in 0..SPARE_BUFFERS_MAX + 3 {
            pool.give(WriteBuffer::new());
        }
        assert_eq!(pool.spare_count(), SPARE_BUFFERS_MAX);
        let mut huge = WriteBuffer::new();
        huge.put(b"big", &vec![0; SPARE_BUFFER_BYTES_MAX]);
        let pool = BufferPool::default();
        pool.give(huge);
        assert_eq!(pool.spare_count(), 0, "a buffer past the cap is freed");
    }

    #[test]
    fn a_pure_load_builds_no_index() {
        let mut buffer = WriteBuffer::new();
        for n in 0..1000u32 {
            buffer.put(&n.to_be_bytes(), b"v");
        }
        assert!(buffer.index.is_none());
        assert_eq!(buffer.ops.len(), 1000);
    }
}
