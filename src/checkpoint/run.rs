//! A packed run: a sorted, append-only-then-immutable sequence of key/value entries laid out
//! back to back in large arena blocks, with a compact index searched by binary search. The
//! shard state's base layer and what checkpoint recovery builds from a sorted `DATA` stream.
//!
//! # Layout
//!
//! ```text
//!   block (BLOCK_BYTES, allocated once, never reallocated; a checkpoint frame adopted
//!          whole, or a small block a loader copies small frames into, is its own length)
//!     entry: key length | key | value length | value                    (back to back)
//!            (each length a LEB128 varint of 1 to 5 bytes: 7 bits a byte, low bits first,
//!            the high bit set on every byte but the last)
//!   index: one u64 per entry, (block number << 32) | offset of the entry in its block,
//!          in chunks of INDEX_CHUNK_SLOTS (no reallocation as it grows, freed by chunk)
//! ```
//!
//! An entry costs its bytes plus 10 for short keys and values (2 bytes of lengths, an 8-byte
//! index slot): no allocation per entry, one per block. The key's length comes first, so a
//! binary-search probe decodes one varint. An entry larger than a block gets a block of its own,
//! of exactly its size, and the next entry starts a fresh block: so no entry ever spans two
//! blocks, and offsets within a block fit a u32 (an oversized entry is always at offset 0).
//!
//! # Consuming a run from the front
//!
//! A merge that rewrites a run into a new one (the shard's merge cursor, the recovery of a
//! checkpoint chain) reads it in key order and calls [`Run::consume`]: entries below the
//! new start are gone from every read, and every block and index chunk wholly before the
//! first live entry is freed at once, so the old run shrinks as the new one grows.
//! [`Run::move_front_into`] does both at once for entries that go over unchanged: it copies
//! them a block's byte range at a time (or hands a whole block over) and writes only their
//! index slots, as pushing each and consuming them would; it counts their payload from the
//! distances between their index slots, decoding only entries too long for one-byte lengths.
//!
//! # Overwriting a value in place
//!
//! A run is immutable once shared. Its one owner may overwrite an entry's value with one of
//! the same length ([`Run::overwrite_value`]): the entry's bytes and lengths keep their
//! place, so the index and the key order are untouched. WAL replay does it for the keys of a
//! recovered checkpoint (see `crate::shard::state`), through [`Run::try_overwrite_value`],
//! which checks the length on the same decode of the entry that writes the value.
//!
//! # Invariants
//!
//! - keys strictly increase along the index (checked on every push in debug builds);
//! - `start <= index.len()`; blocks before the block of `index[start]` and index chunks
//!   wholly before `start` are freed (empty);
//! - every index slot points into a live block at an offset where a whole entry fits.

use std::ops::{Bound, Range};

/// Bytes of one arena block (1 MiB). An entry larger than this gets a block of its own.
pub const BLOCK_BYTES: usize = 1 << 20;
/// The most bytes an entry's two lengths take (two 5-byte varints).
pub const ENTRY_LENGTHS_BYTES_MAX: usize = 10;
/// The bytes of the smallest entry with a length of two bytes or more (a key of 128 bytes and
/// an empty value): every smaller entry has two one-byte lengths.
const LONG_LENGTH_ENTRY_BYTES_MIN: usize = 2 + 0x80 + 1;

const _: () = assert!(BLOCK_BYTES <= u32::MAX as usize, "offsets in a block fit a u32");
const _: () = assert!(BLOCK_BYTES > 4 * ENTRY_LENGTHS_BYTES_MAX, "a block holds several small entries");

/// The byte-wise order of two keys (a prefix first), compared 8 bytes at a time: a checkpoint
/// load checks the order of every entry (`frame::walk_frame`), and a `memcmp` call per pair
/// of short keys was 4% of a realistic load.
#[inline(always)]
pub(crate) fn compare_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let (mut a, mut b) = (a, b);
    while let (Some((x, a_rest)), Some((y, b_rest))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
        (a, b) = (a_rest, b_rest);
    }
    // Fewer than 8 bytes left in one of them: byte by byte, then the shorter first.
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Bytes of the varint of `n` (LEB128; also the shard memtable's entry lengths).
pub(crate) fn varint_bytes(n: u32) -> usize {
    (32 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the varint of `n`.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at `at` and the offset after it (the run or the memtable wrote it: it is well
/// formed; never used on bytes read from disk).
#[inline]
pub(crate) fn get_varint(block: &[u8], at: usize) -> (usize, usize) {
    // Keys and values under 128 bytes, the common case, take one byte: no loop.
    let first = block[at];
    if first < 0x80 {
        return (usize::from(first), at + 1);
    }
    get_varint_long(block, at)
}

#[cold]
fn get_varint_long(block: &[u8], mut at: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let byte = block[at];
        n |= usize::from(byte & 0x7f) << shift;
        at += 1;
        if byte < 0x80 {
            return (n, at);
        }
        shift += 7;
    }
}

/// Bytes an entry of these lengths takes in a block.
fn entry_bytes(key_len: u32, value_len: u32) -> usize {
    varint_bytes(key_len) + key_len as usize + varint_bytes(value_len) + value_len as usize
}

/// Index slots per chunk of the index (512 KiB).
const INDEX_CHUNK_SLOTS: usize = 1 << 16;

/// The index: entry positions in fixed-size chunks.
#[derive(Clone, Default)]
struct Index {
    chunks: Vec<Vec<u64>>,
    len: usize,
}

impl Index {
    const fn new() -> Self {
        Self { chunks: Vec::new(), len: 0 }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, i: usize) -> u64 {
        self.chunks[i / INDEX_CHUNK_SLOTS][i % INDEX_CHUNK_SLOTS]
    }

    #[inline]
    fn push(&mut self, slot: u64) {
        if self.len.is_multiple_of(INDEX_CHUNK_SLOTS) {
            self.chunks.push(Vec::with_capacity(INDEX_CHUNK_SLOTS));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(slot);
        }
        self.len += 1;
    }

    /// Drops every slot from `len` on (a failed [`Run::adopt_block`]'s).
    fn truncate(&mut self, len: usize) {
        while self.len > len {
            let chunk = (self.len - 1) / INDEX_CHUNK_SLOTS;
            let keep = len.max(chunk * INDEX_CHUNK_SLOTS) - chunk * INDEX_CHUNK_SLOTS;
            self.chunks[chunk].truncate(keep);
            if keep == 0 {
                self.chunks.pop();
            }
            self.len = chunk * INDEX_CHUNK_SLOTS + keep;
        }
    }

    /// Frees every chunk wholly before slot `i`.
    fn free_before(&mut self, i: usize) {
        for chunk in &mut self.chunks[..i / INDEX_CHUNK_SLOTS] {
            if chunk.capacity() > 0 {
                *chunk = Vec::new();
            }
        }
    }

    fn allocated_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * 8).sum()
    }
}

/// A packed sorted run (see the module docs).
#[derive(Clone, Default)]
pub struct Run {
    blocks: Vec<Vec<u8>>,
    index: Index,
    /// Entries below `start` were consumed by a merge (see [`Run::consume`]).
    start: usize,
    /// Payload bytes (keys and values) of the live entries.
    live_bytes: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("entries", &self.len())
            .field("blocks", &self.blocks.iter().filter(|b| b.capacity() > 0).count())
            .field("live_bytes", &self.live_bytes)
            .finish()
    }
}

impl Run {
    /// An empty run.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty run for about `entries` entries (a hint: the index grows by chunks, so
    /// nothing is reserved ahead).
    pub fn with_capacity(entries: usize) -> Self {
        let _ = entries;
        Self::default()
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.index.len() - self.start
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Payload bytes (keys and values) of the live entries.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Appends an entry; `key` must sort after every key already in the run.
    #[inline]
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        self.push_with(key, value, crate::pages::with_capacity);
    }

    /// [`Run::push`], taking a new block, when the entry does not fit the last one, from
    /// `new_block(capacity)`: an empty vector of at least that capacity (`BLOCK_BYTES`, or
    /// the entry's bytes if larger). A loader passes blocks whose pages another thread has
    /// already touched, so the copy into them takes no page fault (`checkpoint::load`).
    #[inline]
    pub fn push_with(&mut self, key: &[u8], value: &[u8], new_block: impl FnOnce(usize) -> Vec<u8>) {
        self.push_in(key, value, BLOCK_BYTES, new_block);
    }

    /// [`Run::push`], starting a new block (when the entry does not fit the last one) of
    /// `block_bytes` (or the entry's bytes if larger) rather than [`BLOCK_BYTES`]: a loader
    /// copying a few small entries after a full block (`checkpoint::frame_load`) would
    /// otherwise take a whole block, its pages mapped, for each such stretch.
    pub(crate) fn push_in_blocks_of(&mut self, key: &[u8], value: &[u8], block_bytes: usize) {
        debug_assert!(block_bytes <= BLOCK_BYTES, "blocks are at most BLOCK_BYTES");
        self.push_in(key, value, block_bytes, crate::pages::with_capacity);
    }

    #[inline]
    fn push_in(
        &mut self,
        key: &[u8],
        value: &[u8],
        block_bytes: usize,
        new_block: impl FnOnce(usize) -> Vec<u8>,
    ) {
        debug_assert!(
            self.index.len() == self.start || self.key_at(self.index.len() - 1) < key,
            "run keys strictly increase"
        );
        let (Ok(key_len), Ok(value_len)) = (u32::try_from(key.len()), u32::try_from(value.len())) else {
            panic!("a run entry's key and value lengths fit a u32 (the checkpoint format's bound)");
        };
        // Keys and values under 128 bytes (the common case) have one-byte lengths.
        let short = key_len < 0x80 && value_len < 0x80;
        let entry_bytes = if short { 2 + key.len() + value.len() } else { entry_bytes(key_len, value_len) };
        let fits = self.blocks.last().is_some_and(|b| b.capacity() - b.len() >= entry_bytes);
        if !fits {
            let capacity = entry_bytes.max(block_bytes);
            let block = new_block(capacity);
            assert!(
                block.is_empty() && block.capacity() >= capacity,
                "a new block is empty and large enough"
            );
            self.blocks.push(block);
        }
        let block_number = self.blocks.len() - 1;
        let block = &mut self.blocks[block_number];
        let offset = block.len();
        if short {
            block.push(key_len as u8);
            block.extend_from_slice(key);
            block.push(value_len as u8);
        } else {
            put_varint(block, key_len);
            block.extend_from_slice(key);
            put_varint(block, value_len);
        }
        block.extend_from_slice(value);
        if entry_bytes > BLOCK_BYTES {
            // An oversized entry owns its block: close it so the next entry starts a new one.
            block.shrink_to_fit();
        }
        self.index.push(((block_number as u64) << 32) | offset as u64);
        self.live_bytes += (key.len() + value.len()) as u64;
    }

    /// Appends `block`, a whole block of entries in this run's layout laid back to back (a
    /// checkpoint's `DATA` frame, read from disk straight into it: no entry is copied), as
    /// its own block. `walk` checks the block and reports each entry's offset and payload
    /// bytes (key plus value) in order; it is handed the block and the run's last key (each
    /// entry's key must sort after it and after the one before). If `walk` fails, the run is
    /// as it was and the error is returned.
    pub(crate) fn adopt_block<E>(
        &mut self,
        block: Vec<u8>,
        walk: impl FnOnce(&[u8], Option<&[u8]>, &mut dyn FnMut(usize, usize)) -> Result<(), E>,
    ) -> Result<(), E> {
        let (index_len, live_bytes) = (self.index.len(), self.live_bytes);
        let last = self.last_key().map(<[u8]>::to_vec);
        let number = self.blocks.len() as u64;
        let Run { index, live_bytes: live, .. } = self;
        let walked = walk(&block, last.as_deref(), &mut |offset, payload| {
            debug_assert!(offset < block.len(), "an entry starts inside its block");
            index.push((number << 32) | offset as u64);
            *live += payload as u64;
        });
        match walked {
            Ok(()) => {
                self.blocks.push(block);
                Ok(())
            }
            Err(error) => {
                self.index.truncate(index_len);
                self.live_bytes = live_bytes;
                Err(error)
            }
        }
    }

    /// [`Run::adopt_block`] of a block already walked: `offsets` are its entries' offsets in
    /// order, `payload_bytes` their keys' and values' bytes. The caller checked the block as
    /// `adopt_block`'s walk does, its first key against the run's last included.
    pub(crate) fn adopt_walked(&mut self, block: Vec<u8>, offsets: &[u32], payload_bytes: u64) {
        debug_assert!(offsets.windows(2).all(|w| w[0] < w[1]), "entries in order");
        debug_assert!(
            offsets.last().is_none_or(|&at| (at as usize) < block.len()),
            "entries inside the block"
        );
        let number = (self.blocks.len() as u64) << 32;
        for &at in offsets {
            self.index.push(number | u64::from(at));
        }
        self.live_bytes += payload_bytes;
        self.blocks.push(block);
        let first = self.index.len() - offsets.len();
        debug_assert!(
            offsets.is_empty() || first <= self.start || self.key_at(first - 1) < self.key_at(first),
            "the block's first key sorts after the run's last"
        );
    }

    /// Appends `blocks`, entries in this run's layout back to back (a memtable's arena that
    /// is a run already: `crate::shard::memtable::Memtable::into_run_parts`), as blocks of
    /// their own: `positions` are their entries', (block number in `blocks` << 32) | offset,
    /// in key order, and `payload_bytes` their keys' and values' bytes. The caller knows the
    /// entries' keys increase, from the run's last key on. No entry is copied.
    pub(crate) fn adopt_blocks(&mut self, blocks: Vec<Vec<u8>>, positions: &[u64], payload_bytes: u64) {
        debug_assert!(positions.windows(2).all(|w| w[0] < w[1]), "entries in arena order");
        debug_assert!(
            positions
                .iter()
                .all(|&p| blocks.get((p >> 32) as usize).is_some_and(|b| (p as u32 as usize) < b.len())),
            "entries inside their blocks"
        );
        let first = self.index.len();
        let base = (self.blocks.len() as u64) << 32;
        for &pos in positions {
            self.index.push(base + pos);
        }
        self.blocks.extend(blocks);
        self.live_bytes += payload_bytes;
        debug_assert!(
            (first.max(self.start + 1)..self.index.len()).all(|i| self.key_at(i - 1) < self.key_at(i)),
            "run keys strictly increase"
        );
    }

    /// Where each block's bytes are (tests: blocks handed over, not copied).
    #[cfg(test)]
    pub(crate) fn block_addresses(&self) -> Vec<usize> {
        self.blocks.iter().filter(|b| !b.is_empty()).map(|b| b.as_ptr() as usize).collect()
    }

    /// The entry at absolute index position `i` (live or not yet freed).
    fn entry_at(&self, i: usize) -> (&[u8], &[u8]) {
        let slot = self.index.get(i);
        let block = &self.blocks[(slot >> 32) as usize];
        let at = (slot & u64::from(u32::MAX)) as usize;
        let (key_len, key_at) = get_varint(block, at);
        let (value_len, value_at) = get_varint(block, key_at + key_len);
        (&block[key_at..key_at + key_len], &block[value_at..value_at + value_len])
    }

    fn key_at(&self, i: usize) -> &[u8] {
        let slot = self.index.get(i);
        let block = &self.blocks[(slot >> 32) as usize];
        let (key_len, key_at) = get_varint(block, (slot & u64::from(u32::MAX)) as usize);
        &block[key_at..key_at + key_len]
    }

    /// The `n`th live entry (0: the first).
    pub fn entry(&self, n: usize) -> (&[u8], &[u8]) {
        assert!(n < self.len(), "entry {n} of a run of {}", self.len());
        self.entry_at(self.start + n)
    }

    /// The largest live key.
    pub fn last_key(&self) -> Option<&[u8]> {
        (!self.is_empty()).then(|| self.key_at(self.index.len() - 1))
    }

    /// The number of live entries in absolute positions `from..to` whose key passes `below`
    /// (which holds for a prefix of the run's keys), found by binary search.
    fn partition(&self, mut from: usize, mut to: usize, below: impl Fn(&[u8]) -> bool) -> usize {
        let first = from;
        while from < to {
            let mid = from + (to - from) / 2;
            if below(self.key_at(mid)) {
                from = mid + 1;
            } else {
                to = mid;
            }
        }
        from - first
    }

    /// The number of live entries with keys below `key` (its lower bound).
    pub fn lower_bound(&self, key: &[u8]) -> usize {
        self.partition(self.start, self.index.len(), |k| k < key)
    }

    /// [`Run::lower_bound`] by galloping from the first live entry: probes 1, 2, 4, ...
    /// entries in, then a binary search of the last doubling. A merge that walks the run in
    /// key order finds each next key in O(log gap) probes near the front, cache-warm, instead
    /// of a binary search over the whole index per key.
    pub fn lower_bound_from_front(&self, key: &[u8]) -> usize {
        let live = self.len();
        let mut end = 1;
        while end <= live && self.key_at(self.start + end - 1) < key {
            end *= 2;
        }
        let from = end / 2;
        from + self.partition(self.start + from, self.start + end.min(live), |k| k < key)
    }

    /// The number of live entries with keys at or below `key` (its upper bound).
    pub fn upper_bound(&self, key: &[u8]) -> usize {
        self.partition(self.start, self.index.len(), |k| k <= key)
    }

    /// The value of `key`, if the run holds it.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let n = self.lower_bound(key);
        if n == self.len() {
            return None;
        }
        let (found, value) = self.entry(n);
        (found == key).then_some(value)
    }

    /// The live position (0: the first live entry) of `key`, if the run holds it.
    pub fn position(&self, key: &[u8]) -> Option<usize> {
        let n = self.lower_bound(key);
        (n < self.len() && self.entry(n).0 == key).then_some(n)
    }

    /// Overwrites the value of the `n`th live entry with `value` of the same length, in place
    /// (the key order and every other entry unchanged). Panics when the lengths differ: the
    /// caller checks them (an entry cannot grow or shrink in a packed block).
    pub fn overwrite_value(&mut self, n: usize, value: &[u8]) {
        assert!(self.try_overwrite_value(n, value), "an in-place overwrite keeps the value's length");
    }

    /// [`Run::overwrite_value`] if the `n`th live entry's value has `value`'s length (`true`);
    /// else changes nothing (`false`). One decode of the entry, where checking its length
    /// first and then overwriting decodes it twice (WAL replay does this for every record).
    #[inline]
    pub fn try_overwrite_value(&mut self, n: usize, value: &[u8]) -> bool {
        assert!(n < self.len(), "entry {n} of a run of {}", self.len());
        let slot = self.index.get(self.start + n);
        let block = &mut self.blocks[(slot >> 32) as usize];
        let (key_len, key_at) = get_varint(block, (slot & u64::from(u32::MAX)) as usize);
        let (value_len, value_at) = get_varint(block, key_at + key_len);
        if value_len != value.len() {
            return false;
        }
        block[value_at..value_at + value_len].copy_from_slice(value);
        true
    }

    /// The search aid of [`Run::position_with`]: a sample of the run's keys, one every
    /// [`FENCE_EVERY`] entries, each as the 8 bytes after the prefix every key of the run
    /// shares, as a big-endian `u64`: a byte an entry, against the 100 B or more it holds.
    /// The samples are taken at the first lookup that needs them (see
    /// [`Run::position_with`]); this reads the first and last keys only.
    pub fn fences(&self) -> Fences {
        let prefix = match (self.iter().next(), self.last_key()) {
            (Some((first, _)), Some(last)) => {
                let shared = first.iter().zip(last).take_while(|(a, b)| a == b).count();
                first[..shared].to_vec()
            }
            _ => Vec::new(),
        };
        Fences {
            prefix,
            samples: Vec::new(),
            sampled: false,
            misses: 0,
            start: self.start,
            entries: self.len(),
            hint: 0,
            last_found: None,
        }
    }

    /// The samples of `fences` (see [`Run::fences`]), taken now.
    fn sample_fences(&self, fences: &mut Fences) {
        let shared = fences.prefix.len();
        fences.samples =
            (0..self.len()).step_by(FENCE_EVERY).map(|n| fence_of(self.entry(n).0, shared)).collect();
        fences.sampled = true;
    }

    /// [`Run::position`] with `fences` of this run (built since its last push or consume):
    /// a search of the `u64` samples, then a binary search over the few entries between two
    /// of them, not one over the whole index (each of its probes decodes an entry's key).
    /// The sample search gallops from where the previous lookup ended (`fences` remembers
    /// it): replay overwrites keys mostly in key order, so the next key's sample is a probe or
    /// two away, not the 15 of a binary search over 37k samples; and the entry after the one
    /// the previous lookup found is tried first, one comparison (issue 11: the lookup was 58M
    /// of the 503M instructions of a realistic 300k-key open).
    pub fn position_with(&self, fences: &mut Fences, key: &[u8]) -> Option<usize> {
        debug_assert!(
            fences.start == self.start && fences.entries == self.len(),
            "fences of this run as it is"
        );
        if self.is_empty() {
            return None;
        }
        // Every key of the run starts with the shared prefix: a key without it is not held.
        let shared = fences.prefix.len();
        if !key.starts_with(&fences.prefix) {
            return None;
        }
        // A replay of keys in key order asks for the entry after the last one found: one
        // comparison, no search.
        let next = fences.last_found.map_or(0, |n| n + 1);
        if next < self.len() && self.key_at(self.start + next) == key {
            fences.last_found = Some(next);
            return Some(next);
        }
        if !fences.sampled {
            // Sampling touches every FENCE_EVERYth entry of the run (a cache miss each, as
            // many as a few thousand binary searches): it waits until lookups the shortcut
            // above misses show it pays (a replay in key order never samples).
            fences.misses += 1;
            if fences.misses <= self.len() / LOOKUPS_BEFORE_SAMPLING_PER_ENTRY {
                let found = self.position(key);
                fences.last_found = found.or(fences.last_found);
                return found;
            }
            self.sample_fences(fences);
        }
        let fence = fence_of(key, shared);
        // Samples below the key's fence are below the key; samples above it are above it.
        let below = gallop_partition(&fences.samples, fences.hint, |f| f < fence);
        let not_above = below + gallop_partition(&fences.samples[below..], 0, |f| f == fence);
        fences.hint = below;
        let from = self.start + below.saturating_sub(1) * FENCE_EVERY;
        let to = self.start + (not_above * FENCE_EVERY).min(self.len());
        let n = from - self.start + self.partition(from, to, |k| k < key);
        let found = (n < self.len() && self.key_at(self.start + n) == key).then_some(n);
        fences.last_found = found.or(fences.last_found);
        found
    }

    /// The live entry positions (0: the first live entry) with keys within the bounds.
    pub fn positions(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Range<usize> {
        let from = match start {
            Bound::Included(key) => self.lower_bound(key),
            Bound::Excluded(key) => self.upper_bound(key),
            Bound::Unbounded => 0,
        };
        let to = match end {
            Bound::Included(key) => self.upper_bound(key),
            Bound::Excluded(key) => self.lower_bound(key),
            Bound::Unbounded => self.len(),
        };
        from..to.max(from)
    }

    /// The live entries with keys within the bounds, in key order (reversible).
    pub fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> RunIter<'_> {
        RunIter { run: self, positions: self.positions(start, end) }
    }

    /// Every live entry, in key order (reversible).
    pub fn iter(&self) -> RunIter<'_> {
        RunIter { run: self, positions: 0..self.len() }
    }

    /// Drops the first `n` live entries from every read and frees every block wholly before
    /// the first entry left (see the module docs).
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len(), "consume {n} of a run of {}", self.len());
        for i in self.start..self.start + n {
            let (key, value) = self.entry_at(i);
            self.live_bytes -= (key.len() + value.len()) as u64;
        }
        self.start += n;
        self.free_consumed();
    }

    /// Frees every block and index chunk wholly before the first live entry; a run consumed
    /// to nothing becomes a new empty run.
    fn free_consumed(&mut self) {
        if self.is_empty() {
            // Bug fixed here: only the blocks and chunks were freed, `start` and the index's
            // length kept, so a push into the emptied run (the merge takes a base it consumed
            // whole as its new base) wrote its slot at the front of a freed chunk, and reads
            // of it went out of bounds (found by `shard_state_layers`).
            debug_assert_eq!(self.live_bytes, 0, "no live entry, no live bytes");
            *self = Self::new();
            return;
        }
        let first_live_block = (self.index.get(self.start) >> 32) as usize;
        self.index.free_before(self.start);
        for block in &mut self.blocks[..first_live_block] {
            if block.capacity() > 0 {
                *block = Vec::new();
            }
        }
    }

    /// The block number and offset of the entry at absolute position `i`.
    fn slot_at(&self, i: usize) -> (usize, usize) {
        let slot = self.index.get(i);
        ((slot >> 32) as usize, (slot & u64::from(u32::MAX)) as usize)
    }

    /// Moves the first `n` live entries to the end of `into`, as a [`Run::push`] of each into
    /// `into` and then [`Run::consume`] of `n` would, but by block: a block all of whose
    /// entries move is handed over whole (no copy), the moved entries of any other block are
    /// copied as one byte range, and per entry only an index slot is written (a merge's
    /// untouched key ranges cost a copy, not an encode; shard state's merge, issue 12). The
    /// first moved key must sort after every key of `into`.
    pub fn move_front_into(&mut self, n: usize, into: &mut Run) {
        assert!(n <= self.len(), "move {n} of a run of {}", self.len());
        debug_assert!(
            n == 0 || into.last_key().is_none_or(|last| last < self.key_at(self.start)),
            "run keys strictly increase"
        );
        let end = self.start + n;
        let mut i = self.start;
        while i < end {
            let (block_number, from) = self.slot_at(i);
            let mut j = i + 1;
            while j < end && self.slot_at(j).0 == block_number {
                j += 1;
            }
            // The moved entries of this block, i..j, are the bytes from..to of it.
            let to = if j < self.index.len() && self.slot_at(j).0 == block_number {
                self.slot_at(j).1
            } else {
                self.blocks[block_number].len()
            };
            let payload = self.payload_bytes_in_block(i..j, to);
            // A whole block moves unless `into`'s last block has room for an 8th of one
            // (then it is copied there: a move never leaves more than that unused).
            let room = into.blocks.last().map_or(0, |b| b.capacity() - b.len());
            if from == 0 && to == self.blocks[block_number].len() && room < BLOCK_BYTES / 8 {
                into.blocks.push(std::mem::take(&mut self.blocks[block_number]));
                let number = (into.blocks.len() - 1) as u64;
                for k in i..j {
                    into.index.push((number << 32) | self.slot_at(k).1 as u64);
                }
            } else {
                self.copy_entries(i..j, to, into);
            }
            (self.live_bytes, into.live_bytes) = (self.live_bytes - payload, into.live_bytes + payload);
            i = j;
        }
        self.start = end;
        self.free_consumed();
    }

    /// Key and value bytes of the entries at absolute positions `positions`, all in one block
    /// and ending at its offset `to`. An entry's bytes run from its offset to the next one's
    /// (entries lie back to back); one of fewer than [`LONG_LENGTH_ENTRY_BYTES_MIN`] has two
    /// one-byte lengths, so its payload is its bytes less 2, read from the index alone. Only
    /// longer entries are decoded.
    fn payload_bytes_in_block(&self, positions: Range<usize>, to: usize) -> u64 {
        let mut payload = 0;
        let mut next = to;
        for i in positions.rev() {
            let at = self.slot_at(i).1;
            let bytes = next - at;
            payload += if bytes < LONG_LENGTH_ENTRY_BYTES_MIN {
                bytes - 2
            } else {
                let (key, value) = self.entry_at(i);
                key.len() + value.len()
            } as u64;
            next = at;
        }
        payload
    }

    /// Copies the entries at `positions` (all in one block, ending at offset `to`; one larger
    /// than a block gets a block of its own) to the end of `into`, into its last block as far as they fit
    /// and the rest into a new one.
    fn copy_entries(&self, positions: Range<usize>, to: usize, into: &mut Run) {
        let (block_number, _) = self.slot_at(positions.start);
        let source = &self.blocks[block_number];
        let mut i = positions.start;
        while i < positions.end {
            let from = self.slot_at(i).1;
            let room = into.blocks.last().map_or(0, |b| b.capacity() - b.len());
            // The entries i..j that fit the room.
            let mut j = i;
            let end_of = |k: usize| if k + 1 < positions.end { self.slot_at(k + 1).1 } else { to };
            while j < positions.end && end_of(j) - from <= room {
                j += 1;
            }
            if j == i {
                let bytes = end_of(i) - from;
                into.blocks.push(Vec::with_capacity(bytes.max(BLOCK_BYTES)));
                if bytes > BLOCK_BYTES {
                    // An oversized entry owns its block, as `push` has it.
                    let last = into.blocks.len() - 1;
                    into.blocks[last].extend_from_slice(&source[from..from + bytes]);
                    into.index.push((last as u64) << 32);
                    i += 1;
                }
                continue;
            }
            let last = into.blocks.len() - 1;
            let (block, number) = (&mut into.blocks[last], last as u64);
            let at = block.len();
            block.extend_from_slice(&source[from..end_of(j - 1)]);
            for k in i..j {
                into.index.push((number << 32) | (at + self.slot_at(k).1 - from) as u64);
            }
            i = j;
        }
    }

    /// Bytes the run holds allocated: its live blocks and its index.
    pub fn allocated_bytes(&self) -> usize {
        self.blocks.iter().map(Vec::capacity).sum::<usize>() + self.index.allocated_bytes()
    }
}

/// Entries between two samples of [`Fences`].
pub const FENCE_EVERY: usize = 8;
/// [`Run::position_with`] answers by plain binary search, and samples its fences only after
/// one lookup in this many entries of the run missed its next-entry shortcut.
const LOOKUPS_BEFORE_SAMPLING_PER_ENTRY: usize = 256;

/// The 8 bytes of `key` after its first `shared`, zero-padded, as a big-endian `u64`: keys
/// with that prefix compare as their fences do wherever the fences differ.
fn fence_of(key: &[u8], shared: usize) -> u64 {
    let mut bytes = [0u8; 8];
    let rest = &key[shared.min(key.len())..];
    let n = rest.len().min(8);
    bytes[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(bytes)
}

/// The partition point of `samples` under `below` (which holds for a prefix of them), found
/// by galloping from `hint` (any index; the closer to the answer, the fewer probes): probes
/// 1, 2, 4, ... samples away from it in the answer's direction, then a binary search of the
/// last doubling. Equals `samples.partition_point(below)` for every hint.
fn gallop_partition(samples: &[u64], hint: usize, below: impl Fn(u64) -> bool) -> usize {
    let hint = hint.min(samples.len());
    if hint < samples.len() && below(samples[hint]) {
        // The answer is past `hint`: double the step until a sample is not below.
        let (mut lo, mut step) = (hint + 1, 1);
        while lo + step <= samples.len() && below(samples[lo + step - 1]) {
            lo += step;
            step *= 2;
        }
        let hi = (lo + step).min(samples.len());
        lo + samples[lo..hi].partition_point(|&f| below(f))
    } else {
        // The answer is at or before `hint`: double the step back until a sample is below.
        let (mut hi, mut step) = (hint, 1);
        while hi >= step && !below(samples[hi - step]) {
            hi -= step;
            step *= 2;
        }
        let lo = hi.saturating_sub(step);
        lo + samples[lo..hi].partition_point(|&f| below(f))
    }
}

/// A sample of a run's keys for [`Run::position_with`] (see [`Run::fences`]).
#[derive(Clone, Debug, Default)]
pub struct Fences {
    /// The bytes every key of the run starts with.
    prefix: Vec<u8>,
    /// The fence of every [`FENCE_EVERY`]th live entry, once `sampled`.
    samples: Vec<u64>,
    sampled: bool,
    /// Lookups the next-entry shortcut missed before the samples were taken.
    misses: usize,
    /// The run's `start` and live length when sampled (a debug check).
    start: usize,
    entries: usize,
    /// The sample index the last [`Run::position_with`] ended at: where the next gallops from.
    hint: usize,
    /// The live position the last successful [`Run::position_with`] found: the next lookup
    /// tries the entry after it first.
    last_found: Option<usize>,
}

/// Entries of a run in key order; `next_back` walks from the other end.
#[derive(Clone, Debug)]
pub struct RunIter<'a> {
    run: &'a Run,
    positions: Range<usize>,
}

/// The run behind [`RunIter::empty`].
static EMPTY_RUN: Run = Run { blocks: Vec::new(), index: Index::new(), start: 0, live_bytes: 0 };

impl RunIter<'_> {
    /// An iterator over no entries.
    pub fn empty<'b>() -> RunIter<'b> {
        RunIter { run: &EMPTY_RUN, positions: 0..0 }
    }
}

impl<'a> Iterator for RunIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.positions.next().map(|n| self.run.entry(n))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.positions.size_hint()
    }
}

impl DoubleEndedIterator for RunIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.positions.next_back().map(|n| self.run.entry(n))
    }
}

impl ExactSizeIterator for RunIter<'_> {}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, V)> for Run {
    /// A run of sorted entries (keys strictly increasing).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut run = Run::new();
        for (key, value) in entries {
            run.push(key.as_ref(), value.as_ref());
        }
        run
    }
}

#[cfg(test)]
mod tests;
