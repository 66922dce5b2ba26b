//! The `aries` workload's page store: a data file of checksummed page slots on the simulated
//! disk ([`PageFile`]) and the buffer pool over it ([`BufferPool`]), the page store ARIES
//! recovery and rollback write to (a [`RecoveryHandler`]).
//!
//! Layout of the data file: page `p` has two slots, at `(2p + s) * SLOT_STRIDE_BYTES` for
//! `s` in 0..2; a slot is one 4096-byte sector (the largest sector size the simulator draws),
//! so a torn or non-powersafe write of one slot never touches the other.
//!
//! ```text
//! slot
//!   0..8     page lsn, u64 LE (0: never written)
//!   8..12    crc32 of bytes 0..8 and 12..SLOT_BYTES, u32 LE
//!   12..16   zero
//!   16..     PAGE_DATA_BYTES of page data
//! ```
//!
//! Invariants:
//! - a page write is atomic: it goes to the slot that does not hold the page's newest valid
//!   image, and is synced before the call returns, so at most one slot of a page is ever
//!   unsynced and a crash leaves the newest valid slot either the old or the new image;
//! - the write-ahead rule: a page reaches the data file only once the log is durable up to
//!   its lsn (the planted mistake `aries-steal-before-log` breaks exactly this);
//! - the dirty page table a checkpoint gets lists every cached page with changes the data
//!   file lacks, with the lsn of the oldest of them (the planted mistake
//!   `aries-checkpoint-forgets-dirty` hands an empty one);
//! - reading a page picks the valid slot with the highest lsn; no valid slot reads as a page
//!   of zeros with lsn 0.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use stormhold::env::sim::{SimEnv, SimFile};
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::wal::aries::RecoveryHandler;
use stormhold::wal::{Durability, Lsn, Wal};

/// Pages of the store.
pub const PAGES: u64 = 6;
/// Data bytes of a page.
pub const PAGE_DATA_BYTES: usize = 240;
const SLOT_HEADER_BYTES: usize = 16;
const SLOT_BYTES: usize = SLOT_HEADER_BYTES + PAGE_DATA_BYTES;
const SLOT_STRIDE_BYTES: u64 = 4096;
const _: () = assert!(SLOT_BYTES as u64 <= SLOT_STRIDE_BYTES);

/// The directory of the data file, below the workload's root.
pub const DATA_DIR_NAME: &str = "data";
/// The data file's name in it.
pub const DATA_FILE_NAME: &str = "pages";

/// A page as the store holds it: its lsn and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The lsn of the last change it holds (0: none).
    pub lsn: Lsn,
    /// Its bytes.
    pub data: Vec<u8>,
}

impl Page {
    fn empty() -> Self {
        Self { lsn: 0, data: vec![0; PAGE_DATA_BYTES] }
    }

    fn patch(&mut self, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        let at = offset as usize;
        let range = self.data.get_mut(at..at + image.len()).ok_or(io::ErrorKind::InvalidInput)?;
        range.copy_from_slice(image);
        self.lsn = lsn;
        Ok(())
    }
}

fn slot_crc(slot: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&slot[..8]);
    hasher.update(&slot[12..]);
    hasher.finalize()
}

fn encode_slot(page: &Page) -> Vec<u8> {
    let mut slot = vec![0; SLOT_BYTES];
    slot[..8].copy_from_slice(&page.lsn.to_le_bytes());
    slot[SLOT_HEADER_BYTES..].copy_from_slice(&page.data);
    let crc = slot_crc(&slot);
    slot[8..12].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// The page a slot holds, if it is valid (checksum passes, lsn above 0).
fn decode_slot(slot: &[u8]) -> Option<Page> {
    let lsn = u64::from_le_bytes(slot[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(slot[8..12].try_into().ok()?);
    (lsn > 0 && crc == slot_crc(slot)).then(|| Page { lsn, data: slot[SLOT_HEADER_BYTES..].to_vec() })
}

/// The data file.
pub struct PageFile {
    file: SimFile,
    /// Per page, the slot holding its newest valid image (the next write goes to the other).
    current: BTreeMap<u64, usize>,
}

impl PageFile {
    /// Opens (creating it durably if missing) the data file below `root`.
    pub fn open(env: &SimEnv, root: &Path) -> io::Result<Self> {
        let dir = root.join(DATA_DIR_NAME);
        if let Err(error) = env.create_dir(&dir)
            && error.kind() != io::ErrorKind::AlreadyExists
        {
            return Err(error);
        }
        env.sync_dir(root)?;
        let file = env.open(&dir.join(DATA_FILE_NAME), OpenOptions::create())?;
        env.sync_dir(&dir)?;
        Ok(Self { file, current: BTreeMap::new() })
    }

    fn read_slot(&self, page: u64, slot: usize) -> io::Result<Option<Page>> {
        let at = (2 * page + slot as u64) * SLOT_STRIDE_BYTES;
        let mut bytes = vec![0; SLOT_BYTES];
        let there = self.file.len()?.saturating_sub(at).min(SLOT_BYTES as u64) as usize;
        self.file.read_exact_at(&mut bytes[..there], at)?;
        Ok(decode_slot(&bytes))
    }

    /// The page's newest valid image (zeros with lsn 0 if it has none).
    pub fn read(&mut self, page: u64) -> io::Result<Page> {
        let slots = [self.read_slot(page, 0)?, self.read_slot(page, 1)?];
        let newest = (0..2).filter(|&s| slots[s].is_some()).max_by_key(|&s| slots[s].as_ref().map(|p| p.lsn));
        match newest {
            Some(slot) => {
                self.current.insert(page, slot);
                Ok(slots[slot].clone().unwrap_or_else(Page::empty))
            }
            None => Ok(Page::empty()),
        }
    }

    /// Writes `image` of `page` to its other slot and syncs: when this returns `Ok` the image
    /// is durable; after an error the page holds the old or the new image.
    pub fn write(&mut self, page: u64, image: &Page) -> io::Result<()> {
        if !self.current.contains_key(&page) {
            self.read(page)?;
        }
        let slot = self.current.get(&page).map_or(0, |&s| 1 - s);
        let at = (2 * page + slot as u64) * SLOT_STRIDE_BYTES;
        self.file.write_all_at(&encode_slot(image), at)?;
        self.file.sync_data()?;
        self.current.insert(page, slot);
        Ok(())
    }

    /// Every page's data, in page order.
    pub fn data(&mut self) -> io::Result<Vec<Vec<u8>>> {
        (0..PAGES).map(|page| Ok(self.read(page)?.data)).collect()
    }
}

/// The mistake the page store makes, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolBug {
    /// None: the page store keeps its side of the bargain.
    None,
    /// Steals a page without making the log durable up to its lsn first.
    StealBeforeLog,
    /// Hands every checkpoint an empty dirty page table.
    CheckpointForgetsDirty,
    /// Leaves the pages recovery changed in the cache instead of writing them out.
    SkipRecoveryFlush,
}

/// A cache over the data file that writes any page at any time (STEAL), never at commit
/// (NO-FORCE), and tells its dirty pages to checkpoints.
pub struct BufferPool {
    /// The data file.
    pub disk: PageFile,
    /// Cached pages with the lsn of their oldest change the data file lacks.
    cache: BTreeMap<u64, (Page, Option<Lsn>)>,
    bug: PoolBug,
    /// Undos handed to the pool (by rollback or recovery).
    pub undos: u64,
}

impl BufferPool {
    /// An empty cache over `disk`.
    pub fn new(disk: PageFile, bug: PoolBug) -> Self {
        Self { disk, cache: BTreeMap::new(), bug, undos: 0 }
    }

    /// The cached page, read from the data file on a miss.
    pub fn page(&mut self, page: u64) -> io::Result<&mut (Page, Option<Lsn>)> {
        if !self.cache.contains_key(&page) {
            let image = self.disk.read(page)?;
            self.cache.insert(page, (image, None));
        }
        Ok(self.cache.entry(page).or_insert_with(|| (Page::empty(), None)))
    }

    /// Applies a change with lsn `lsn` to the cached page.
    pub fn apply(&mut self, page: u64, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        let (cached, rec_lsn) = self.page(page)?;
        cached.patch(offset, image, lsn)?;
        rec_lsn.get_or_insert(lsn);
        Ok(())
    }

    /// Pages with changes the data file lacks.
    pub fn dirty(&self) -> Vec<u64> {
        self.cache.iter().filter(|(_, (_, rec_lsn))| rec_lsn.is_some()).map(|(&page, _)| page).collect()
    }

    /// Writes the cached `page` to the data file, after the log is durable up to its lsn.
    pub fn steal(&mut self, page: u64, wal: &mut Wal<SimEnv>) -> Result<(), String> {
        let image = self.page(page).map_err(|e| e.to_string())?.0.clone();
        if wal.durable_lsn() < image.lsn && self.bug != PoolBug::StealBeforeLog {
            wal.sync(Durability::Data).map_err(|e| e.to_string())?; // The write-ahead rule.
        }
        self.disk.write(page, &image).map_err(|e| e.to_string())?;
        self.page(page).map_err(|e| e.to_string())?.1 = None;
        Ok(())
    }

    /// Writes every dirty page (after recovery: the log is durable).
    pub fn flush(&mut self, wal: &mut Wal<SimEnv>) -> Result<(), String> {
        if self.bug == PoolBug::SkipRecoveryFlush {
            return Ok(());
        }
        for page in self.dirty() {
            self.steal(page, wal)?;
        }
        Ok(())
    }

    /// The dirty page table for a checkpoint.
    pub fn dirty_pages(&self) -> Vec<(u64, Lsn)> {
        if self.bug == PoolBug::CheckpointForgetsDirty {
            return Vec::new();
        }
        self.cache.iter().filter_map(|(&page, (_, rec_lsn))| rec_lsn.map(|lsn| (page, lsn))).collect()
    }
}

impl RecoveryHandler for BufferPool {
    type Error = io::Error;

    fn page_lsn(&mut self, page_id: u64) -> io::Result<Lsn> {
        Ok(self.page(page_id)?.0.lsn)
    }

    fn redo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        self.apply(page_id, offset, image, lsn)
    }

    fn undo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        self.undos += 1;
        self.apply(page_id, offset, image, lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_round_trips_and_any_flipped_byte_invalidates_it() {
        let page = Page { lsn: 7, data: (0..PAGE_DATA_BYTES).map(|i| i as u8).collect() };
        let slot = encode_slot(&page);
        assert_eq!(decode_slot(&slot), Some(page));
        for at in [0, 9, 12, SLOT_BYTES - 1] {
            let mut bad = slot.clone();
            bad[at] ^= 1;
            assert_eq!(decode_slot(&bad), None, "byte {at}");
        }
        assert_eq!(decode_slot(&vec![0; SLOT_BYTES]), None, "a zeroed slot is no page");
    }
}
