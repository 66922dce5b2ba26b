//! An arena memtable: the shard state's delta and frozen layers (`super::state`), the changes
//! since the last checkpoint, written by every commit and by WAL replay.
//!
//! # Why not a `BTreeMap<Vec<u8>, Option<Vec<u8>>>` (decided, measured)
//!
//! The map cost two heap allocations per entry plus node slack (about 200 B for a 116 B
//! entry), was the largest cost of WAL replay and of a bulk load's commits, and its drop
//! freed every entry one by one. Here an entry costs its bytes, 2 to 4 bytes of lengths and
//! about 20 bytes of index, and no allocation; dropping the layer frees a few large blocks.
//!
//! # Layout
//!
//! ```text
//!   arena   blocks of bytes (4 KiB growing to BLOCK_BYTES, never reallocated), entries back
//!           to back in commit order, laid out as in a `checkpoint::run` block:
//!             key length | key | value length | value   (varints; a tombstone: no value)
//!           position of an entry: (block number << 32) | offset in the block, with
//!           TOMBSTONE (bit 63) set for a tombstone
//!   keys    one u64 per distinct key, in order of first insertion: the position of the
//!           key's latest entry (its "key number" is its index here)
//!   slots   open addressing, linear probing, power-of-two capacity, load <= 3/4 of the
//!           hashed keys: 0 (empty) or (low 32 bits of the key's hash << 32) | (key number + 1)
//!   tail    a range of key numbers in no slot: the ascending tail (below)
//!   order   key numbers in key order, built on demand (below)
//! ```
//!
//! # The ascending tail (sequential loads touch no hash slot)
//!
//! A key above every key so far is new, so its insert needs no lookup: it is appended and
//! its number joins `tail`, a run of consecutive key numbers whose keys ascend, with no slot.
//! A lookup of a key at or above the tail's first key binary-searches the tail (then, if
//! keys were numbered after the tail, probes the slots). Keys numbered before the tail all
//! sort below its first key, so a key below it is looked up in the slots only. Why: once the
//! slots outgrow the cache, a hash insert costs a cache miss on its slot (and more in each
//! doubling), where the `BTreeMap` this replaced kept its hot right edge; a sequential bulk
//! load of 2.3M keys spent most of its insert time there.
//!
//! The tail is hashed from its front ([`TAIL_HASH_STEP_KEYS`] keys per insert, so no insert
//! pays for all of it) once a new key is numbered after it (the tail is *closed*: a key
//! below the last one, or above it while the tail is closed), or once a lookup searched a
//! tail longer than [`TAIL_SEARCH_FREE_KEYS`] (reads then get the slots back; a frozen
//! layer, never inserted into again, keeps its tail and its binary searches). A new tail
//! starts when the old one is empty. Random keys rarely land above the last one: their tail
//! is empty or a key long, hashed by the next insert.
//!
//! An insert of a new key appends its entry and adds a key number. An overwrite with a value
//! of the same length (fixed-size records, counters) writes the value in place; any other
//! appends a new entry and repoints the key's `keys` slot, and the older entry becomes
//! garbage. Once the garbage exceeds both `COMPACT_GARBAGE_BYTES_MIN` and the bytes of the
//! newest entries, the memtable compacts: it copies the newest entries into fresh blocks in
//! arena order, freeing the old blocks as it passes them. So the arena holds at most about
//! twice its newest entries, however long the WAL replayed into it (a recovery's memory
//! stays flat in WAL length), for a copy of at most one byte per byte of garbage.
//!
//! # A layer that is a run already ([`Memtable::into_run_parts`])
//!
//! An entry is laid out as a run's entry, and a tombstone is marked in its position rather
//! than in its bytes, so a layer whose keys all came ascending, with no tombstone and no
//! garbage (a sequential load's), holds its entries in key order, back to back, in blocks a
//! [`Run`](crate::checkpoint::run::Run) can take over as they are: the merge after a
//! checkpoint appends such a layer to the base by handing its blocks over and writing an
//! index slot per entry, not by copying each entry (`super::state`).
//!
//! # A batch's slots loaded together ([`Memtable::warm_slots`])
//!
//! Once the slots outgrow the caches, an insert of a random key waits on one cache miss for
//! its home slot (about 95% of `insert_parts`' own time in `perf` of a 1M random-key load),
//! and inserts one after the other wait on them one at a time. A commit knows its whole
//! batch first: it loads the home slots of the next [`WARM_GROUP_KEYS`]-odd keys one after
//! the other, independent loads the CPU keeps in flight together, then inserts them, each
//! finding its slot cached. Only a plain load (the crate allows no `unsafe`, so no prefetch
//! instruction), and only when the slots are larger than [`WARM_SLOTS_MIN`] (a sequential
//! load, whose keys all go to the ascending tail, never has any). Nothing but timing
//! depends on it: it reads the table and changes nothing.
//!
//! # The hash: keyed per store (HashDoS)
//!
//! A fixed hash would let keys chosen once collide into one probe chain in every store. The
//! hash ([`SeededHash`]) is keyed by the memtable's seed; a shard's layers take
//! [`seed_for_store`] of its store identity (drawn at creation from the Env's clocks, so the
//! simulator replays a seed exactly), and each layer hands its seed to the next at a
//! freeze. No real clock or OS randomness is read for it. The table is never iterated:
//! nothing depends on its layout but the cost of a lookup. A slot keeps 32 bits of the hash,
//! so a probe compares a key only when those agree, and growing the table re-homes slots
//! without reading keys.
//!
//! # Key order, on demand
//!
//! Commits and replay need no order: only range reads, range deletes and the checkpoint
//! writer do. [`Memtable::range`] first indexes the key numbers added since the last call.
//! Those all in the ascending tail are in order already and above every key indexed before:
//! they are appended to `sorted` as they are. Others it sorts (by the 8 bytes after the
//! prefix the smallest and the largest key share, which every key has, big-endian, then by
//! the whole key) and merges them into `recent`, a short sorted list; once `recent`
//! outgrows about twice the square root of `sorted` (the long sorted list), it is merged
//! into `sorted`. A read merges the two lists.
//! So a scan after a few new keys costs a merge of about `sqrt(n)` numbers, not a copy of
//! `n`, and a layer frozen after a bulk load is sorted once, by the checkpoint writer,
//! outside the shard's lock (`super::state`). Because the order holds key numbers, not
//! entry positions, an overwrite never makes it stale.
//!
//! # A packed copy (a frozen layer read in key order)
//!
//! [`Memtable::packed`] copies the newest entries in key order into a new memtable: every
//! key lands in the ascending tail (no hash slot), the arena and the key numbers are in key
//! order and the order is built as it goes. A reader in key order then walks memory front
//! to back, where the original costs a cache miss per entry on random keys (its entries
//! sit in commit order). The checkpoint writer packs the frozen layer once, outside the
//! shard's lock, and the writer and the merge both read the copy (`super::state`). Point
//! reads of the copy binary-search its tail. It costs a second copy of the layer while it
//! is made (the original is freed once the view and the state drop it), and the copy is
//! smaller than the original: no slots, no garbage. On random keys the walk waits on two
//! cache misses per entry (its position in `keys`, then its bytes in the arena). When the
//! order is one sorted list, the copy takes [`PACK_GROUP_KEYS`] entries at a time: it loads
//! their positions, then their first bytes, then copies them, so each group waits on two
//! misses' time, not on two per entry: loads overlap only with loads near them in the
//! instruction stream, and one entry's copy between two loads keeps them apart (plain
//! loads, as in "A batch's slots loaded together", that change nothing but timing).
//! Measured: 290k random 17-byte keys with 100-byte values packed in 78 ms one entry at a
//! time (loading 16 ahead), 50 to 55 ms in groups.
//!
//! The order sits behind an `RwLock` so the read path can build it through `&self` (a frozen
//! layer is shared behind an `Arc` with the checkpoint writer): readers hold the read lock
//! while they iterate; only indexing new keys takes the write lock, and a frozen layer is
//! indexed at most once.
//!
//! # Invariants
//!
//! - every key number outside `tail` is in exactly one slot, the tail's in none, and a slot's
//!   hash bits are its key's (under the memtable's seed);
//! - the tail's keys ascend with their numbers, and every key numbered before the tail
//!   sorts below the tail's first key; an empty tail is `0..0`;
//! - `keys[k]` is the position of the newest entry of key `k`, and keys are distinct;
//! - `order.sorted` and `order.recent` are each strictly increasing by key, disjoint, and
//!   together hold exactly the key numbers below `order.indexed`;
//! - `first`/`last` are the key numbers of the smallest and largest key (tombstones included),
//!   and `first_head`/`last_head` the first 8 bytes of those keys (`prefix8`);
//! - `garbage_bytes <= entry_bytes`, and after every insert the garbage is below
//!   `COMPACT_GARBAGE_BYTES_MIN` or at most the bytes of the newest entries.

use std::cmp::Ordering;
use std::marker::PhantomData;
use std::ops::{Bound, Range};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use crate::checkpoint::run::{BLOCK_BYTES, compare_keys, get_varint, put_varint, varint_bytes};

mod hash;
mod range;

pub use hash::{KeyHash, SeededHash, hash_keys, seed_for_store};
pub use range::MemRange;

/// Bytes of the first arena block; each next one doubles, up to [`BLOCK_BYTES`].
const FIRST_BLOCK_BYTES: usize = 4096;
/// Entries [`Memtable::packed`] loads together (their positions, then their first bytes)
/// before it copies them.
const PACK_GROUP_KEYS: usize = 16;
/// Slots of the smallest hash table.
const SLOTS_MIN: usize = 16;
/// Garbage (bytes of superseded entries) that may make the memtable compact itself, once
/// it also exceeds the bytes of the newest entries.
const COMPACT_GARBAGE_BYTES_MIN: u64 = 16 << 20;
/// Keys of the ascending tail a lookup may binary-search without asking for the tail to be
/// hashed (about a dozen steps over recent, mostly cached entries).
const TAIL_SEARCH_FREE_KEYS: usize = 4096;
/// Keys of the tail an insert hashes, from its front, while the tail is being hashed.
const TAIL_HASH_STEP_KEYS: usize = 4;
/// Most key numbers `recent` holds before its merge into `sorted`, at least.
const RECENT_MIN: usize = 4096;

/// Slots below which [`Memtable::warm_slots`] does nothing: 512 KiB of slots, about what
/// a core's private caches keep.
const WARM_SLOTS_MIN: usize = 1 << 16;
/// Keys whose home slots a commit loads before it inserts them (see
/// [`Memtable::warm_slots`]): about the loads a core keeps in flight at once.
pub const WARM_GROUP_KEYS: usize = 16;

const _: () = assert!(FIRST_BLOCK_BYTES.is_power_of_two() && FIRST_BLOCK_BYTES <= BLOCK_BYTES);
const _: () = assert!(WARM_SLOTS_MIN.is_power_of_two() && WARM_SLOTS_MIN >= SLOTS_MIN);
const _: () = assert!(SLOTS_MIN.is_power_of_two());

/// The bit of a position that marks a tombstone's entry (block numbers stay below 2^31).
const TOMBSTONE: u64 = 1 << 63;

/// The block number of position `pos`.
#[inline]
fn block_of(pos: u64) -> usize {
    ((pos & !TOMBSTONE) >> 32) as usize
}

/// The offset in its block of position `pos`.
#[inline]
fn offset_of(pos: u64) -> usize {
    pos as u32 as usize
}

/// Entries of a layer that is a run, back to back in one block ([`Memtable::run_stretch`]).
#[derive(Clone, Copy, Debug)]
pub struct RunStretch<'a> {
    /// Their bytes, in a run's layout (a checkpoint frame's body).
    pub bytes: &'a [u8],
    /// How many entries the bytes hold.
    pub count: usize,
    /// The first entry's key.
    pub first_key: &'a [u8],
    /// The last entry's key.
    pub last_key: &'a [u8],
}

/// A memtable's arena handed over as a run's blocks ([`Memtable::into_run_parts`]).
#[derive(Debug)]
pub struct RunParts {
    /// The blocks, none empty, each holding whole entries back to back.
    pub blocks: Vec<Vec<u8>>,
    /// Every entry's position in `blocks`, (block number << 32) | offset, in key order.
    pub positions: Vec<u64>,
    /// Bytes of the entries' keys and values.
    pub payload_bytes: u64,
}

/// A key as its first byte and the rest (see [`KeyHash`]).
fn split(key: &[u8]) -> (&[u8], &[u8]) {
    key.split_at(key.len().min(1))
}

/// The key and value (`None`: a tombstone) of the entry at offset `at` of `block`.
#[inline]
fn decode(block: &[u8], at: usize, tombstone: bool) -> (&[u8], Option<&[u8]>) {
    let (key_len, key_at) = get_varint(block, at);
    let (value_len, value_at) = get_varint(block, key_at + key_len);
    let key = &block[key_at..key_at + key_len];
    (key, (!tombstone).then(|| &block[value_at..value_at + value_len]))
}

/// `prefix ++ rest` against `key`, without joining the parts.
fn cmp_parts(prefix: &[u8], rest: &[u8], key: &[u8]) -> Ordering {
    // Inline word compares, not a `memcmp` call each (4% of a sequential load's inserts,
    // whose keys share their first 8 bytes, so every insert compares whole keys).
    let (head, tail) = key.split_at(prefix.len().min(key.len()));
    compare_keys(prefix, head).then_with(|| compare_keys(rest, tail))
}

/// The first 8 bytes of `key`, zero-padded, as a big-endian number: among keys that share
/// the bytes before the ones given, ordering by it, then by the whole key, is ordering by key.
fn prefix8(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(bytes)
}

/// [`prefix8`] of `prefix ++ rest`, without joining the parts. Two keys whose heads differ
/// sort as their heads do: the first byte where the heads differ is a byte of both keys, or
/// the end of the shorter one (a zero of the padding) where the longer one holds a byte
/// above zero.
fn head_parts(prefix: &[u8], rest: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    if let ([namespace], Some(eight)) = (prefix, rest.first_chunk::<8>()) {
        // A state key of 9 bytes or more: one 8-byte load, no call to `memcpy`.
        return (u64::from(*namespace) << 56) | (u64::from_be_bytes(*eight) >> 8);
    }
    let p = prefix.len().min(8);
    bytes[..p].copy_from_slice(&prefix[..p]);
    let r = rest.len().min(8 - p);
    bytes[p..p + r].copy_from_slice(&rest[..r]);
    u64::from_be_bytes(bytes)
}

/// The key order (see the module docs).
#[derive(Debug, Default)]
struct Order {
    sorted: Vec<u32>,
    recent: Vec<u32>,
    /// Key numbers below this are in `sorted` or `recent`.
    indexed: usize,
}

/// An arena memtable (see the module docs). `None` values are tombstones.
pub struct Memtable<H = SeededHash> {
    blocks: Vec<Vec<u8>>,
    keys: Vec<u64>,
    slots: Vec<u64>,
    /// The ascending tail: key numbers in no slot (every other one is in one; see the
    /// module docs).
    tail: Range<usize>,
    /// Set by a lookup that binary-searched a long tail: inserts then hash the tail in steps.
    tail_read: AtomicBool,
    /// The seed the hash keys derive from, and the keys.
    seed: u64,
    hash_keys: [u64; 2],
    order: RwLock<Order>,
    /// Key numbers of the smallest and of the largest key.
    first: Option<u32>,
    last: Option<u32>,
    /// [`prefix8`] of the smallest and of the largest key (0 while there is none): an insert
    /// compares its key with both, and two heads that differ order the keys without reading
    /// either entry.
    first_head: u64,
    last_head: u64,
    /// Bytes of every entry appended, and of the superseded ones.
    entry_bytes: u64,
    garbage_bytes: u64,
    /// Bytes of the lengths (varints) of every entry appended: with no garbage, the entries'
    /// keys and values take `entry_bytes - length_bytes`.
    length_bytes: u64,
    hash: PhantomData<fn() -> H>,
}

impl<H> Default for Memtable<H> {
    /// An empty memtable with seed 0 (tests, and layers that never see untrusted keys).
    fn default() -> Self {
        Self::with_seed(0)
    }
}

impl<H> Memtable<H> {
    /// An empty memtable whose hash is keyed by `seed` (a shard's: [`seed_for_store`]).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            blocks: Vec::new(),
            keys: Vec::new(),
            slots: Vec::new(),
            tail: 0..0,
            tail_read: AtomicBool::new(false),
            seed,
            hash_keys: hash_keys(seed),
            order: RwLock::default(),
            first: None,
            last: None,
            first_head: 0,
            last_head: 0,
            entry_bytes: 0,
            garbage_bytes: 0,
            length_bytes: 0,
            hash: PhantomData,
        }
    }
}

impl<H> std::fmt::Debug for Memtable<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memtable")
            .field("keys", &self.keys.len())
            .field("entry_bytes", &self.entry_bytes)
            .field("garbage_bytes", &self.garbage_bytes)
            .finish()
    }
}

impl<H: KeyHash> Memtable<H> {
    /// An empty memtable with seed 0 (see [`Memtable::with_seed`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The seed of this memtable's hash: the next layer of the same state takes it over.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The hash of `key` in this memtable (its seed's).
    fn hash_of(&self, prefix: &[u8], rest: &[u8]) -> u64 {
        H::hash(self.hash_keys, prefix, rest)
    }

    /// Distinct keys (tombstones included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was ever inserted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The smallest key inserted (tombstones included).
    pub fn first_key(&self) -> Option<&[u8]> {
        self.first.map(|n| self.key(n))
    }

    /// The largest key inserted (tombstones included).
    pub fn last_key(&self) -> Option<&[u8]> {
        self.last.map(|n| self.key(n))
    }

    /// Bytes of the entries superseded by a later entry of their key.
    pub fn garbage_bytes(&self) -> u64 {
        self.garbage_bytes
    }

    /// Bytes held allocated: the arena, the key table, the slots and the order.
    pub fn allocated_bytes(&self) -> usize {
        let order = self.order.read().unwrap_or_else(PoisonError::into_inner);
        self.blocks.iter().map(Vec::capacity).sum::<usize>()
            + 8 * (self.keys.capacity() + self.slots.capacity())
            + 4 * (order.sorted.capacity() + order.recent.capacity())
    }

    /// Sets `key` to `value` (`None`: a tombstone).
    pub fn insert(&mut self, key: &[u8], value: Option<&[u8]>) {
        let (prefix, rest) = split(key);
        self.insert_parts(prefix, rest, value);
    }

    /// Sets the key `prefix ++ rest` to `value` (`None`: a tombstone), without joining the
    /// parts. `prefix` is at most one byte (a namespace), and empty only with `rest`.
    pub fn insert_parts(&mut self, prefix: &[u8], rest: &[u8], value: Option<&[u8]>) {
        debug_assert!(
            prefix.len() == 1 || (prefix.is_empty() && rest.is_empty()),
            "a key splits after one byte"
        );
        if !self.tail.is_empty() && (self.tail.end < self.keys.len() || *self.tail_read.get_mut()) {
            self.hash_tail_front(TAIL_HASH_STEP_KEYS);
        }
        let head = head_parts(prefix, rest);
        let above_last =
            self.last.is_none_or(|last| self.cmp_head(last, self.last_head, prefix, rest, head).is_gt());
        if above_last && (self.tail.is_empty() || self.tail.end == self.keys.len()) {
            // A key above every key is new and extends the tail: no hash, no probe.
            let pos = self.append(prefix, rest, value);
            let number = self.push_key(pos);
            if self.tail.is_empty() {
                self.tail = number as usize..number as usize;
            }
            self.tail.end += 1;
            if self.first.is_none() {
                (self.first, self.first_head) = (Some(number), head);
            }
            (self.last, self.last_head) = (Some(number), head);
            return;
        }
        if !above_last
            && self.in_tail(prefix, rest)
            && let Some(number) = self.tail_search(prefix, rest)
        {
            return self.overwrite(number, prefix, rest, value);
        }
        let hash = self.hash_of(prefix, rest);
        if 4 * (self.hashed_keys() + 1) > 3 * self.slots.len() {
            self.grow();
        }
        // The key's home slot is loaded first and the entry appended while it arrives (the
        // load is a cache miss in a large table); an overwrite in place takes the entry back.
        let home = self.slots[hash as usize & (self.slots.len() - 1)];
        let pos = self.append(prefix, rest, value);
        match self.probe_from(home, hash, prefix, rest) {
            Ok(number) => {
                let old = self.keys[number];
                if self.overwrite_in_place(old, value) {
                    self.unappend(pos);
                } else {
                    self.repoint(number, pos);
                }
            }
            Err(slot) => {
                // A new key past a non-empty tail closes it: the tail is hashed in steps.
                let number = self.push_key(pos);
                self.slots[slot] = (hash << 32) | (u64::from(number) + 1);
                if above_last {
                    (self.last, self.last_head) = (Some(number), head);
                } else if self
                    .first
                    .is_none_or(|first| self.cmp_head(first, self.first_head, prefix, rest, head).is_lt())
                {
                    (self.first, self.first_head) = (Some(number), head);
                }
            }
        }
    }

    /// Loads the home slot of each key `prefix ++ rest` (each `prefix` at most one byte, as
    /// for [`Memtable::insert_parts`]), so the inserts that follow find them cached (see "A
    /// batch's slots loaded together" in the module docs). Changes nothing; does nothing
    /// while the slots are small.
    pub fn warm_slots<'k>(&self, keys: impl IntoIterator<Item = (&'k [u8], &'k [u8])>) {
        if !self.warms() {
            return;
        }
        let mask = self.slots.len() - 1;
        let mut seen = 0;
        for (prefix, rest) in keys {
            seen ^= self.slots[self.hash_of(prefix, rest) as usize & mask];
        }
        // The loads must happen: their value goes somewhere the optimizer cannot see through.
        std::hint::black_box(seen);
    }

    /// Whether [`Memtable::warm_slots`] loads anything: the slots outgrew [`WARM_SLOTS_MIN`].
    pub fn warms(&self) -> bool {
        self.slots.len() >= WARM_SLOTS_MIN
    }

    /// `prefix ++ rest` (whose [`head_parts`] is `head`) against the key `number` (whose is
    /// `number_head`): by the heads if they differ, else by the keys.
    fn cmp_head(&self, number: u32, number_head: u64, prefix: &[u8], rest: &[u8], head: u64) -> Ordering {
        debug_assert_eq!(number_head, prefix8(self.key(number)), "a kept head is its key's");
        head.cmp(&number_head).then_with(|| cmp_parts(prefix, rest, self.key(number)))
    }

    /// Keys in the slots (all but the tail's).
    fn hashed_keys(&self) -> usize {
        self.keys.len() - self.tail.len()
    }

    /// Adds a key number for the entry at `pos`; returns it.
    fn push_key(&mut self, pos: u64) -> u32 {
        let number = self.keys.len();
        assert!(number < u32::MAX as usize, "a memtable holds fewer than 2^32 keys");
        self.keys.push(pos);
        number as u32
    }

    /// Makes `value` the newest of key `number` (`prefix ++ rest`): in place if it can, else
    /// appended.
    fn overwrite(&mut self, number: usize, prefix: &[u8], rest: &[u8], value: Option<&[u8]>) {
        if !self.overwrite_in_place(self.keys[number], value) {
            let pos = self.append(prefix, rest, value);
            self.repoint(number, pos);
        }
    }

    /// Points key `number` at its new entry `pos`, counts the old one as garbage, and
    /// compacts once the garbage passes its bound.
    fn repoint(&mut self, number: usize, pos: u64) {
        let old = std::mem::replace(&mut self.keys[number], pos);
        self.garbage_bytes += self.entry_len(old) as u64;
        if self.garbage_bytes >= COMPACT_GARBAGE_BYTES_MIN
            && self.garbage_bytes > self.entry_bytes - self.garbage_bytes
        {
            self.compact();
        }
    }

    /// Whether the tail is not empty and `prefix ++ rest` is not below its first key (then no
    /// key numbered before the tail can be it).
    fn in_tail(&self, prefix: &[u8], rest: &[u8]) -> bool {
        !self.tail.is_empty() && cmp_parts(prefix, rest, self.key(self.tail.start as u32)) != Ordering::Less
    }

    /// The key number of `prefix ++ rest` in the tail (a binary search).
    fn tail_search(&self, prefix: &[u8], rest: &[u8]) -> Option<usize> {
        let (mut low, mut high) = (self.tail.start, self.tail.end);
        while low < high {
            let mid = low + (high - low) / 2;
            match cmp_parts(prefix, rest, self.key(mid as u32)) {
                Ordering::Less => high = mid,
                Ordering::Greater => low = mid + 1,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Puts up to `max_keys` keys from the front of the tail into the slots (its front
    /// keys sort below the rest, so what is left is a tail still).
    fn hash_tail_front(&mut self, max_keys: usize) {
        let numbers = self.tail.start..self.tail.end.min(self.tail.start + max_keys);
        while 4 * (self.hashed_keys() + numbers.len()) > 3 * self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        for number in numbers.clone() {
            let (prefix, rest) = split(self.key(number as u32));
            let hash = self.hash_of(prefix, rest);
            let mut i = hash as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (hash << 32) | (number as u64 + 1);
        }
        self.tail.start = numbers.end;
        if self.tail.is_empty() {
            self.tail = 0..0;
            *self.tail_read.get_mut() = false;
        }
    }

    /// Writes `value` over the value of the entry at `pos` if both are values of one length
    /// (a fixed-size record, a counter): no garbage. Returns whether it did.
    fn overwrite_in_place(&mut self, pos: u64, value: Option<&[u8]>) -> bool {
        let (Some(value), (_, Some(old))) = (value, self.entry(pos)) else { return false };
        if old.len() != value.len() {
            return false;
        }
        let block = &self.blocks[block_of(pos)];
        let (key_len, key_at) = get_varint(block, offset_of(pos));
        let (_, value_at) = get_varint(block, key_at + key_len);
        self.blocks[block_of(pos)][value_at..value_at + value.len()].copy_from_slice(value);
        true
    }

    /// Rewrites the newest entry of every key into fresh blocks, in arena order, freeing each
    /// old block once it is passed: the garbage goes, and the memtable never holds much more
    /// than before meanwhile (one block and a sorted list of positions).
    fn compact(&mut self) {
        // In arena order: a tombstone's mark is no part of where its entry is.
        let mut newest: Vec<(u64, u32)> =
            self.keys.iter().enumerate().map(|(n, &pos)| (pos & !TOMBSTONE, n as u32)).collect();
        newest.sort_unstable();
        let mut old = std::mem::take(&mut self.blocks);
        (self.entry_bytes, self.garbage_bytes, self.length_bytes) = (0, 0, 0);
        let mut freed = 0;
        for (pos, number) in newest {
            let block_number = block_of(pos);
            for block in &mut old[freed..block_number] {
                *block = Vec::new();
            }
            freed = block_number;
            let tombstone = self.keys[number as usize] & TOMBSTONE != 0;
            let (key, value) = decode(&old[block_number], offset_of(pos), tombstone);
            let (prefix, rest) = split(key);
            self.keys[number as usize] = self.append(prefix, rest, value);
        }
    }

    /// `Some(value)` if the memtable holds `key` (`Some(None)`: a tombstone).
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        let (prefix, rest) = split(key);
        if self.in_tail(prefix, rest) {
            if self.tail.len() > TAIL_SEARCH_FREE_KEYS && !self.tail_read.load(AtomicOrdering::Relaxed) {
                self.tail_read.store(true, AtomicOrdering::Relaxed);
            }
            if let Some(number) = self.tail_search(prefix, rest) {
                return Some(self.entry(self.keys[number]).1);
            }
            // Only a key numbered after the tail can be the key now.
            if self.tail.end == self.keys.len() {
                return None;
            }
        }
        if self.slots.is_empty() {
            return None;
        }
        let number = self.probe(self.hash_of(prefix, rest), prefix, rest).ok()?;
        Some(self.entry(self.keys[number]).1)
    }

    /// The key number of `prefix ++ rest`, or the empty slot where it would go.
    fn probe(&self, hash: u64, prefix: &[u8], rest: &[u8]) -> Result<usize, usize> {
        self.probe_from(self.slots[hash as usize & (self.slots.len() - 1)], hash, prefix, rest)
    }

    /// [`Memtable::probe`], given the content of the key's home slot.
    fn probe_from(&self, home: u64, hash: u64, prefix: &[u8], rest: &[u8]) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let tag = hash as u32;
        let mut i = hash as usize & mask;
        let mut slot = home;
        loop {
            if slot == 0 {
                return Err(i);
            }
            if (slot >> 32) as u32 == tag {
                let number = (slot as u32 - 1) as usize;
                let key = self.entry(self.keys[number]).0;
                if key.len() == prefix.len() + rest.len()
                    && key[..prefix.len()] == *prefix
                    && key[prefix.len()..] == *rest
                {
                    return Ok(number);
                }
            }
            i = (i + 1) & mask;
            slot = self.slots[i];
        }
    }

    /// Doubles the slots, re-homing each by its kept hash bits.
    fn grow(&mut self) {
        let capacity = (2 * self.slots.len()).max(SLOTS_MIN);
        let mask = capacity - 1;
        let mut slots = vec![0u64; capacity];
        for &slot in self.slots.iter().filter(|&&s| s != 0) {
            let mut i = (slot >> 32) as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = slot;
        }
        self.slots = slots;
    }

    /// Appends an entry to the arena; returns its position.
    fn append(&mut self, prefix: &[u8], rest: &[u8], value: Option<&[u8]>) -> u64 {
        let (Ok(key_len), Ok(value_len)) =
            (u32::try_from(prefix.len() + rest.len()), u32::try_from(value.map_or(0, <[u8]>::len)))
        else {
            panic!("a memtable entry's key and value lengths fit a u32 (a WAL record's bound)");
        };
        let lengths = varint_bytes(key_len) + varint_bytes(value_len);
        let bytes = lengths + key_len as usize + value_len as usize;
        if self.blocks.last().is_none_or(|b| b.capacity() - b.len() < bytes) {
            let next = self.blocks.last().map_or(FIRST_BLOCK_BYTES, |b| (2 * b.capacity()).min(BLOCK_BYTES));
            self.blocks.push(crate::pages::with_capacity(bytes.max(next)));
        }
        let number = self.blocks.len() - 1;
        debug_assert!(number < 1 << 31, "block numbers leave the tombstone bit free");
        let block = &mut self.blocks[number];
        let offset = block.len();
        assert!(offset <= u32::MAX as usize, "a block offset fits a u32");
        put_varint(block, key_len);
        block.extend_from_slice(prefix);
        block.extend_from_slice(rest);
        put_varint(block, value_len);
        if let Some(value) = value {
            block.extend_from_slice(value);
        }
        if bytes > BLOCK_BYTES {
            // An oversized entry owns its block: the next entry starts a new one.
            block.shrink_to_fit();
        }
        self.entry_bytes += bytes as u64;
        self.length_bytes += lengths as u64;
        let tombstone = if value.is_none() { TOMBSTONE } else { 0 };
        tombstone | ((number as u64) << 32) | offset as u64
    }

    /// Takes back the entry at `pos`, the last one appended.
    fn unappend(&mut self, pos: u64) {
        let (key, value) = self.entry(pos);
        let lengths = varint_bytes(key.len() as u32) + varint_bytes(value.map_or(0, |v| v.len() as u32));
        let bytes = self.entry_len(pos);
        let block = self.blocks.last_mut().expect("the entry was appended");
        debug_assert_eq!(offset_of(pos) + bytes, block.len(), "the last entry");
        block.truncate(offset_of(pos));
        self.entry_bytes -= bytes as u64;
        self.length_bytes -= lengths as u64;
    }

    /// The key and value (`None`: a tombstone) of the entry at `pos`.
    #[inline]
    fn entry(&self, pos: u64) -> (&[u8], Option<&[u8]>) {
        decode(&self.blocks[block_of(pos)], offset_of(pos), pos & TOMBSTONE != 0)
    }

    /// The first byte of the entry at `pos` (a load that brings the entry into the cache).
    fn entry_head(&self, pos: u64) -> u8 {
        self.blocks[block_of(pos)][offset_of(pos)]
    }

    fn entry_len(&self, pos: u64) -> usize {
        let (key, value) = self.entry(pos);
        let value_len = value.map_or(0, <[u8]>::len);
        varint_bytes(key.len() as u32) + key.len() + varint_bytes(value_len as u32) + value_len
    }

    fn key(&self, number: u32) -> &[u8] {
        self.entry(self.keys[number as usize]).0
    }

    fn cmp_keys(&self, a: u32, b: u32) -> Ordering {
        self.key(a).cmp(self.key(b))
    }

    /// The key order, indexing the keys added since it was last built.
    fn order(&self) -> RwLockReadGuard<'_, Order> {
        let order = self.order.read().unwrap_or_else(PoisonError::into_inner);
        if order.indexed == self.keys.len() {
            return order;
        }
        drop(order);
        let mut order = self.order.write().unwrap_or_else(PoisonError::into_inner);
        if order.indexed < self.keys.len() {
            self.index(&mut order);
        }
        drop(order);
        self.order.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sorts the key numbers not yet indexed into `recent`, and `recent` into `sorted` once
    /// it outgrows its bound (see the module docs).
    fn index(&self, order: &mut Order) {
        let numbers = order.indexed as u32..self.keys.len() as u32;
        if self.tail.start <= order.indexed && self.tail.end == self.keys.len() {
            // Every new key is in the ascending tail: the keys ascend with their numbers, and
            // each sorts above every key indexed before (those in the tail have lower numbers,
            // those before it sort below its first key). No sort: they go after `sorted`. (A
            // sequential load's layer spent 9% of the load sorting numbers already in order.)
            order.sorted.extend(numbers);
            order.indexed = self.keys.len();
            return;
        }
        // The bytes every new key shares (a common key prefix such as a table name) would
        // make every 8-byte prefix tie: the prefixes start after them. Every key lies between
        // the smallest and the largest, so it starts with the bytes those two share: no pass
        // over the keys finds them (it cost a read of every entry before the sort).
        let (Some(smallest), Some(largest)) = (self.first_key(), self.last_key()) else {
            unreachable!("keys to index exist, so a smallest and a largest");
        };
        let shared = smallest.iter().zip(largest).take_while(|(a, b)| a == b).count();
        debug_assert!(numbers.clone().all(|n| self.key(n).starts_with(&smallest[..shared])));
        let mut tail: Vec<(u64, u32)> = numbers.map(|n| (prefix8(&self.key(n)[shared..]), n)).collect();
        tail.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| self.cmp_keys(a.1, b.1)));
        let tail: Vec<u32> = tail.into_iter().map(|(_, n)| n).collect();
        let recent = self.merge(&std::mem::take(&mut order.recent), &tail);
        let recent_max = RECENT_MIN.max(2 * order.sorted.len().isqrt());
        if recent.len() > recent_max {
            order.sorted = self.merge(&order.sorted, &recent);
        } else {
            order.recent = recent;
        }
        order.indexed = self.keys.len();
    }

    /// Two sorted lists of distinct key numbers as one.
    fn merge(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        if a.is_empty() || b.is_empty() {
            return if a.is_empty() { b.to_vec() } else { a.to_vec() };
        }
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if self.cmp_keys(a[i], b[j]) == Ordering::Less {
                out.push(a[i]);
                i += 1;
            } else {
                out.push(b[j]);
                j += 1;
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        out
    }

    /// The positions in `list` (sorted key numbers) of the keys within the bounds.
    fn positions(&self, list: &[u32], start: Bound<&[u8]>, end: Bound<&[u8]>) -> Range<usize> {
        let from = match start {
            Bound::Included(key) => list.partition_point(|&n| self.key(n) < key),
            Bound::Excluded(key) => list.partition_point(|&n| self.key(n) <= key),
            Bound::Unbounded => 0,
        };
        let to = match end {
            Bound::Included(key) => list.partition_point(|&n| self.key(n) <= key),
            Bound::Excluded(key) => list.partition_point(|&n| self.key(n) < key),
            Bound::Unbounded => list.len(),
        };
        from..to.max(from)
    }

    /// The entries (`None`: a tombstone) with keys within the bounds, in key order
    /// (reversible), each key's newest. Builds the key order first if keys were added.
    pub fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> MemRange<'_, H> {
        self.range_in(self.order(), start, end)
    }

    /// [`Memtable::range`] over an order already built and read-locked.
    fn range_in<'a>(
        &'a self,
        order: RwLockReadGuard<'a, Order>,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> MemRange<'a, H> {
        let sorted = self.positions(&order.sorted, start, end);
        let recent = self.positions(&order.recent, start, end);
        MemRange { table: self, order, sorted, recent }
    }

    /// Every entry in key order (reversible).
    pub fn iter(&self) -> MemRange<'_, H> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Whether every key is in the ascending tail (a sequential load's layer, or a packed
    /// copy): its key numbers, and so its entries but for overwrites, are in key order.
    pub fn in_key_order(&self) -> bool {
        self.tail == (0..self.keys.len())
    }

    /// The newest entries of this memtable copied in key order into a new one with the same
    /// seed (see "A packed copy" in the module docs).
    pub fn packed(&self) -> Self {
        let mut packed = Self::with_seed(self.seed);
        packed.keys.reserve_exact(self.len());
        let order = self.order();
        if order.recent.is_empty() && !self.in_key_order() {
            // One sorted list: walk it a group at a time, loading the group's positions and
            // entries before copying them (see "A packed copy" in the module docs).
            let sorted = &order.sorted;
            let mut seen = 0u64;
            for group in sorted.chunks(PACK_GROUP_KEYS) {
                let mut positions = [0u64; PACK_GROUP_KEYS];
                for (position, &number) in positions.iter_mut().zip(group) {
                    *position = self.keys[number as usize];
                }
                let positions = &positions[..group.len()];
                for &pos in positions {
                    seen ^= u64::from(self.entry_head(pos));
                }
                for &pos in positions {
                    let (key, value) = self.entry(pos);
                    packed.insert(key, value);
                }
            }
            std::hint::black_box(seen);
        } else {
            for (key, value) in self.range_in(order, Bound::Unbounded, Bound::Unbounded) {
                packed.insert(key, value);
            }
        }
        debug_assert_eq!(packed.tail, 0..packed.len(), "ascending keys are all in the tail");
        let order = packed.order.get_mut().unwrap_or_else(PoisonError::into_inner);
        // Key numbers ascend with the keys: the order is the numbers themselves.
        (order.sorted, order.indexed) = ((0..packed.keys.len() as u32).collect(), packed.keys.len());
        packed
    }

    /// Whether this layer is a run already (see "A layer that is a run already" in the module
    /// docs): every key came ascending, no entry is a tombstone or garbage, and the entries
    /// lie in the arena in key order, back to back. A pass over the key table.
    pub fn is_run(&self) -> bool {
        self.in_key_order()
            && self.garbage_bytes == 0
            && self.keys.iter().all(|&pos| pos & TOMBSTONE == 0)
            && self.keys.windows(2).all(|w| w[0] < w[1])
    }

    /// In a layer that [is a run](Memtable::is_run): the entries from key number `from` on
    /// that lie in `from`'s block, as many as take at most `max_bytes` (one at least), as
    /// their bytes in the run's layout, their count and their first and last keys. `None`
    /// past the last key.
    pub fn run_stretch(&self, from: usize, max_bytes: usize) -> Option<RunStretch<'_>> {
        debug_assert!(self.in_key_order() && self.garbage_bytes == 0, "a layer that is a run");
        let &first = self.keys.get(from)?;
        let (block_number, start) = (block_of(first), offset_of(first));
        let block = &self.blocks[block_number];
        // The entries from `from` on that start in the block, and how many of them end
        // within the bytes: entry `i` ends where entry `i + 1` starts, the last at the
        // block's end.
        let in_block = self.keys[from..].partition_point(|&pos| block_of(pos) == block_number);
        let starts = &self.keys[from + 1..from + in_block];
        let ending_within = starts.partition_point(|&pos| offset_of(pos) - start <= max_bytes);
        let count = if ending_within == starts.len() && block.len() - start <= max_bytes {
            in_block
        } else {
            ending_within.max(1)
        };
        let end = if count == in_block { block.len() } else { offset_of(self.keys[from + count]) };
        let (first_key, last_key) = (self.key(from as u32), self.key((from + count - 1) as u32));
        Some(RunStretch { bytes: &block[start..end], count, first_key, last_key })
    }

    /// The arena as a run's blocks and index (see "A layer that is a run already" in the
    /// module docs), for a layer that [is a run](Memtable::is_run) (checked in debug builds).
    pub fn into_run_parts(mut self) -> RunParts {
        debug_assert!(self.is_run(), "only a layer that is a run hands over its arena");
        debug_assert_eq!(
            self.entry_bytes,
            self.keys.iter().map(|&pos| self.entry_len(pos) as u64).sum::<u64>(),
            "with no garbage, the arena holds exactly the newest entries"
        );
        let payload_bytes = self.entry_bytes - self.length_bytes;
        // An empty block (only ever the last, after an entry was taken back) is left out.
        let mut renumbered = Vec::with_capacity(self.blocks.len());
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in std::mem::take(&mut self.blocks) {
            renumbered.push(blocks.len() as u64);
            if !block.is_empty() {
                blocks.push(block);
            }
        }
        let positions = std::mem::take(&mut self.keys)
            .into_iter()
            .map(|pos| (renumbered[block_of(pos)] << 32) | offset_of(pos) as u64)
            .collect();
        RunParts { blocks, positions, payload_bytes }
    }

    /// Where each arena block's bytes are (tests: blocks handed over, not copied).
    #[cfg(test)]
    pub(crate) fn block_addresses(&self) -> Vec<usize> {
        self.blocks.iter().filter(|b| !b.is_empty()).map(|b| b.as_ptr() as usize).collect()
    }

    /// Builds the key order now (the checkpoint writer calls it outside the shard's lock).
    pub fn build_order(&self) {
        drop(self.order());
    }
}

#[cfg(test)]
mod tests;
