//! ARIES under a STEAL page store on the simulated disk: uncommitted changes reach its data
//! file (after the log records they need), crashes hit any Env call, recovery included, and
//! after recovery the data file equals the committed model.
//!
//! Together the `wal_aries_*.rs` files check ARIES recovery on the simulated disk: committed
//! transactions are redone, losers undone exactly once (also when a crash interrupts undo),
//! aborted ones stay undone, a checkpoint bounds redo, damage to the meaning of records is
//! reported, and a STEAL page store ends, after crashes at random points, equal to the
//! committed model.

mod wal_aries_support;

use std::collections::BTreeMap;
use std::error::Error;
use std::io;
use std::path::Path;

use stormhold::env::sim::{CrashMode, FaultOptions, SimEnv, SimFile, TearFillWeights};
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::wal::aries::{RecoveryHandler, RecoveryStats, Transactions};
use stormhold::wal::{Durability, Lsn, Wal};

use wal_aries_support::*;

/// A page is one 512-byte sector: its lsn (8 bytes) then its data. With tear fill "old" the
/// simulated disk writes a sector whole or not at all, the atomic page write ARIES assumes.
const PAGE_BYTES: usize = 512;
const PAGE_DATA_BYTES: usize = PAGE_BYTES - 8;
const PAGES: u64 = 6;
const DATA_DIR: &str = "/data";
const DATA_FILE: &str = "/data/pages";

/// The data file. As a recovery handler it writes through (no cache).
struct PageFile {
    file: SimFile,
}

impl PageFile {
    fn open(env: &SimEnv) -> io::Result<Self> {
        if let Err(error) = env.create_dir(Path::new(DATA_DIR))
            && error.kind() != io::ErrorKind::AlreadyExists
        {
            return Err(error);
        }
        env.sync_dir(Path::new("/"))?;
        let file = env.open(Path::new(DATA_FILE), OpenOptions::create())?;
        env.sync_dir(Path::new(DATA_DIR))?;
        Ok(Self { file })
    }

    fn read(&self, page: u64) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; PAGE_BYTES];
        let at = page * PAGE_BYTES as u64;
        let there = self.file.len()?.saturating_sub(at).min(PAGE_BYTES as u64) as usize;
        self.file.read_exact_at(&mut bytes[..there], at)?;
        Ok(bytes)
    }

    fn write(&self, page: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, page * PAGE_BYTES as u64)
    }

    fn data(&self) -> io::Result<BTreeMap<u64, Vec<u8>>> {
        (0..PAGES).map(|page| Ok((page, self.read(page)?[8..].to_vec()))).collect()
    }
}

fn page_lsn(bytes: &[u8]) -> Lsn {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

fn patch(bytes: &mut [u8], offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
    let at = 8 + offset as usize;
    let range = bytes.get_mut(at..at + image.len()).ok_or(io::ErrorKind::InvalidInput)?;
    range.copy_from_slice(image);
    bytes[..8].copy_from_slice(&lsn.to_le_bytes());
    Ok(())
}

impl RecoveryHandler for PageFile {
    type Error = io::Error;

    fn page_lsn(&mut self, page_id: u64) -> io::Result<Lsn> {
        Ok(page_lsn(&self.read(page_id)?))
    }

    fn redo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        let mut bytes = self.read(page_id)?;
        patch(&mut bytes, offset, image, lsn)?;
        self.write(page_id, &bytes)
    }

    fn undo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        self.redo(page_id, offset, image, lsn)
    }
}

/// The live page store: a cache over the data file that writes any page at any time (STEAL),
/// once the log is durable up to the page's lsn, and tells its dirty pages to checkpoints.
struct BufferPool {
    disk: PageFile,
    /// Cached pages with the lsn of their oldest change the data file lacks.
    cache: BTreeMap<u64, (Vec<u8>, Option<Lsn>)>,
    /// Pages written to the data file but not synced, with that oldest lsn.
    unsynced: BTreeMap<u64, Lsn>,
}

impl BufferPool {
    fn page(&mut self, page: u64) -> io::Result<&mut (Vec<u8>, Option<Lsn>)> {
        if !self.cache.contains_key(&page) {
            let bytes = self.disk.read(page)?;
            self.cache.insert(page, (bytes, None));
        }
        Ok(self.cache.get_mut(&page).expect("cached"))
    }

    fn apply(&mut self, page: u64, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        let (bytes, rec_lsn) = self.page(page)?;
        patch(bytes, offset, image, lsn)?;
        rec_lsn.get_or_insert(lsn);
        Ok(())
    }

    fn steal(&mut self, page: u64, wal: &mut Wal<SimEnv>) -> Result<(), Box<dyn Error>> {
        let (bytes, rec_lsn) = self.page(page)?.clone();
        if wal.durable_lsn() < page_lsn(&bytes) {
            wal.sync(Durability::Data)?; // The write-ahead rule.
        }
        self.disk.write(page, &bytes)?;
        if let Some(rec_lsn) = rec_lsn {
            let oldest = self.unsynced.entry(page).or_insert(rec_lsn);
            *oldest = (*oldest).min(rec_lsn);
        }
        self.page(page)?.1 = None;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.disk.file.sync_data()?;
        self.unsynced.clear();
        Ok(())
    }

    fn dirty_pages(&self) -> Vec<(u64, Lsn)> {
        let mut dirty = self.unsynced.clone();
        for (&page, &(_, rec_lsn)) in &self.cache {
            if let Some(rec_lsn) = rec_lsn {
                let oldest = dirty.entry(page).or_insert(rec_lsn);
                *oldest = (*oldest).min(rec_lsn);
            }
        }
        dirty.into_iter().collect()
    }
}

impl RecoveryHandler for BufferPool {
    type Error = io::Error;

    fn page_lsn(&mut self, page_id: u64) -> io::Result<Lsn> {
        Ok(page_lsn(&self.page(page_id)?.0))
    }

    fn redo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        self.apply(page_id, offset, image, lsn)
    }

    fn undo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> io::Result<()> {
        self.apply(page_id, offset, image, lsn)
    }
}

/// splitmix64: the workload's choices, from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

type Writes = Vec<(u64, u32, Vec<u8>)>;

/// The committed state: the data at the last recovery, then the commits since, in commit
/// order, each with its lsn (`Lsn::MAX` while its outcome is unknown).
#[derive(Default)]
struct Model {
    base: BTreeMap<u64, Vec<u8>>,
    commits: Vec<(Lsn, Writes)>,
    /// Commits acknowledged durable.
    durable: usize,
}

impl Model {
    fn state_after(&self, commits: usize) -> BTreeMap<u64, Vec<u8>> {
        let mut state = self.base.clone();
        for (page, offset, bytes) in self.commits[..commits].iter().flat_map(|(_, writes)| writes) {
            let at = *offset as usize;
            state.get_mut(page).expect("page")[at..at + bytes.len()].copy_from_slice(bytes);
        }
        state
    }
}

/// What the sweep saw, so it can prove it exercised what it claims.
#[derive(Debug, Default)]
struct Seen {
    crashes_in_recovery: u64,
    uncommitted_pages_stolen: u64,
    losers_undone: u64,
    aborts: u64,
    checkpoints: u64,
    redone: u64,
}

struct Live {
    wal: Wal<SimEnv>,
    txns: Transactions,
    pool: BufferPool,
    next_txn: u64,
    writes: BTreeMap<u64, Writes>,
    locks: BTreeMap<u64, u64>,
}

type Step = Result<(), Box<dyn Error>>;

impl Live {
    fn random_active(&self, rng: &mut Rng) -> Option<u64> {
        let active: Vec<u64> = self.writes.keys().copied().collect();
        (!active.is_empty()).then(|| active[rng.below(active.len() as u64) as usize])
    }

    fn release(&mut self, txn: u64) -> Writes {
        self.locks.retain(|_, holder| *holder != txn);
        self.writes.remove(&txn).unwrap_or_default()
    }

    fn step(&mut self, rng: &mut Rng, model: &mut Model, seen: &mut Seen) -> Step {
        let active = self.random_active(rng);
        match (rng.below(100), active) {
            (0..15, _) | (_, None) if self.writes.len() < 3 => self.begin(),
            (15..50, Some(txn)) => self.update(rng, txn),
            (50..62, Some(txn)) => self.commit(rng, txn, model),
            (62..68, Some(txn)) => {
                self.release(txn);
                seen.aborts += 1;
                Ok(self.txns.abort(&mut self.wal, txn, &mut self.pool).map(drop)?)
            }
            (68..82, _) => self.steal(rng, seen),
            (82..88, _) => Ok(self.pool.sync()?),
            (88..93, _) => {
                seen.checkpoints += 1;
                Ok(self.txns.checkpoint(&mut self.wal, &self.pool.dirty_pages()).map(drop)?)
            }
            (93.., _) => Ok(self.wal.sync(Durability::Data).map(drop)?),
            _ => Ok(()),
        }
    }

    fn begin(&mut self) -> Step {
        self.txns.begin(&mut self.wal, self.next_txn)?;
        self.writes.insert(self.next_txn, Writes::new());
        self.next_txn += 1;
        Ok(())
    }

    /// Strict two-phase locking on pages: no two open transactions change the same page, so
    /// undoing one never erases another's change.
    fn update(&mut self, rng: &mut Rng, txn: u64) -> Step {
        let page = rng.below(PAGES);
        if self.locks.get(&page).is_some_and(|&holder| holder != txn) {
            return Ok(());
        }
        self.locks.insert(page, txn);
        let len = 1 + rng.below(24) as usize;
        let offset = rng.below((PAGE_DATA_BYTES - len) as u64) as u32;
        let after: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        let at = 8 + offset as usize;
        let before = self.pool.page(page)?.0[at..at + len].to_vec();
        let lsn = self.txns.update(&mut self.wal, txn, page, offset, &before, &after)?;
        self.pool.apply(page, offset, &after, lsn)?;
        self.writes.get_mut(&txn).expect("active").push((page, offset, after));
        Ok(())
    }

    fn commit(&mut self, rng: &mut Rng, txn: u64, model: &mut Model) -> Step {
        // In the model before the call: if the call fails, the commit may or may not be durable.
        model.commits.push((Lsn::MAX, self.release(txn)));
        let durability = if rng.below(2) == 0 { Durability::None } else { Durability::Data };
        let lsn = self.txns.commit(&mut self.wal, txn, durability)?;
        model.commits.last_mut().expect("pushed").0 = lsn;
        Ok(())
    }

    fn steal(&mut self, rng: &mut Rng, seen: &mut Seen) -> Step {
        let dirty: Vec<u64> = self
            .pool
            .cache
            .iter()
            .filter(|(_, (_, rec_lsn))| rec_lsn.is_some())
            .map(|(&page, _)| page)
            .collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let page = dirty[rng.below(dirty.len() as u64) as usize];
        self.pool.steal(page, &mut self.wal)?;
        seen.uncommitted_pages_stolen += u64::from(self.locks.contains_key(&page));
        Ok(())
    }

    /// Runs the workload until the simulated process crashes (at most `ops` operations, then
    /// the driver crashes it).
    fn run(&mut self, env: &SimEnv, ops: usize, rng: &mut Rng, model: &mut Model, seen: &mut Seen) {
        for _ in 0..ops {
            if let Err(error) = self.step(rng, model, seen) {
                assert!(
                    env.is_crashed(),
                    "seed {}: a workload call failed without a crash: {error}",
                    env.seed()
                );
                return;
            }
            model.durable = model.commits.partition_point(|(lsn, _)| *lsn <= self.wal.durable_lsn());
        }
        env.crash();
    }
}

/// Recovers the log and the data file, crashing as the fault options say (recovery is
/// crashed too) until it succeeds; the fifth attempt runs without faults. The recovered
/// pages are synced before the workload goes on, so no later checkpoint can leave them out.
fn recover_page_file(env: &SimEnv, seen: &mut Seen) -> (Wal<SimEnv>, RecoveryStats, PageFile) {
    let mut attempts = 0;
    loop {
        if attempts == 4 {
            env.set_faults_enabled(false);
        }
        let result = PageFile::open(env).map_err(Box::<dyn Error>::from).and_then(|mut disk| {
            let (wal, stats) = try_recover(env, &mut disk)?;
            disk.file.sync_data()?;
            Ok((wal, stats, disk))
        });
        match result {
            Ok(recovered) => {
                env.set_faults_enabled(true);
                return recovered;
            }
            Err(error) => {
                assert!(env.is_crashed(), "seed {}: recovery failed without a crash: {error}", env.seed());
                seen.crashes_in_recovery += 1;
                attempts += 1;
                env.restart();
            }
        }
    }
}

/// The data file must equal the model after the first k commits, for some k at or past the
/// last commit acknowledged durable. Returns that state.
fn check_data_file(env: &SimEnv, disk: &PageFile, model: &Model) -> BTreeMap<u64, Vec<u8>> {
    env.set_faults_enabled(false);
    let data = disk.data().expect("read the data file");
    env.set_faults_enabled(true);
    let matches = (model.durable..=model.commits.len()).any(|k| model.state_after(k) == data);
    assert!(
        matches,
        "seed {}: the data file is no committed prefix of {} commits ({} durable)\n got {data:?}\n durable state {:?}",
        env.seed(),
        model.commits.len(),
        model.durable,
        model.state_after(model.durable)
    );
    data
}

fn run_steal_seed(seed: u64, seen: &mut Seen) {
    const CYCLES: usize = 3;
    const OPS_PER_CYCLE: usize = 150;
    let probability = [0.002, 0.005, 0.01][seed as usize % 3];
    let options = FaultOptions {
        crash: CrashMode::Random { probability },
        tear_fill: TearFillWeights { old: 1, zero: 0, garbage: 0 },
        ..FaultOptions::default()
    };
    let env = SimEnv::new(seed, options).expect("valid options");
    let mut rng = Rng(seed);
    env.set_faults_enabled(false);
    let (mut wal, _, mut disk) = recover_page_file(&env, seen);
    let mut model =
        Model { base: (0..PAGES).map(|page| (page, vec![0; PAGE_DATA_BYTES])).collect(), ..Model::default() };
    let mut next_txn = 1;
    for _ in 0..CYCLES {
        let pool = BufferPool { disk, cache: BTreeMap::new(), unsynced: BTreeMap::new() };
        let mut live = Live {
            wal,
            txns: Transactions::new(),
            pool,
            next_txn,
            writes: BTreeMap::new(),
            locks: BTreeMap::new(),
        };
        live.run(&env, OPS_PER_CYCLE, &mut rng, &mut model, seen);
        drop(live);
        env.restart();
        let (recovered, stats, recovered_disk) = recover_page_file(&env, seen);
        seen.losers_undone += stats.undone;
        seen.redone += stats.redone;
        model = Model { base: check_data_file(&env, &recovered_disk, &model), ..Model::default() };
        next_txn = stats.txn_id_max + 1;
        (wal, disk) = (recovered, recovered_disk);
    }
}

#[test]
fn steal_page_store_equals_the_committed_model_after_crashes_at_random_points() {
    let mut seen = Seen::default();
    for seed in 0..80 {
        run_steal_seed(seed, &mut seen);
    }
    assert!(seen.uncommitted_pages_stolen > 0, "{seen:?}");
    assert!(seen.losers_undone > 0, "{seen:?}");
    assert!(seen.redone > 0, "{seen:?}");
    assert!(seen.crashes_in_recovery > 0, "{seen:?}");
    assert!(seen.aborts > 0 && seen.checkpoints > 0, "{seen:?}");
}
