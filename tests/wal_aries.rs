//! ARIES recovery on the simulated disk: committed transactions are redone, losers undone
//! exactly once (also when a crash interrupts undo), aborted ones stay undone, a checkpoint
//! bounds redo, damage to the meaning of records is reported, and a STEAL page store whose
//! data file holds uncommitted changes ends, after crashes at random points, equal to the
//! committed model.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::error::Error;
use std::io;
use std::path::Path;

use stormhold::env::sim::{CrashMode, FaultOptions, SimEnv, SimFile, TearFillWeights, WriteFateWeights};
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::wal::aries::{self, AriesError, RecoveryHandler, RecoveryStats, Transactions};
use stormhold::wal::{Durability, Lsn, RecordKind, Wal, WalOptions};

const WAL_DIR: &str = "/wal";
const SEGMENT_BYTES: u64 = 4 * 4096;

fn wal_options() -> WalOptions {
    WalOptions { segment_size_bytes: SEGMENT_BYTES, ..WalOptions::default() }
}

fn perfect_disk(seed: u64) -> SimEnv {
    SimEnv::new(seed, FaultOptions::default()).expect("valid options")
}

fn crash(env: &SimEnv) {
    env.crash();
    env.restart();
}

fn try_recover<H: RecoveryHandler>(
    env: &SimEnv,
    handler: &mut H,
) -> Result<(Wal<SimEnv>, RecoveryStats), AriesError> {
    aries::recover(env.clone(), Path::new(WAL_DIR), wal_options(), handler)
}

fn recover<H: RecoveryHandler>(env: &SimEnv, handler: &mut H) -> (Wal<SimEnv>, RecoveryStats) {
    try_recover(env, handler).expect("recovery")
}

// ---------------------------------------------------------------------------------------------
// An in-memory page store that survives crashes (as if every page write were forced at once)
// and records every call it gets.

const MEM_PAGE_BYTES: usize = 64;

#[derive(Clone, Debug, Default)]
struct MemPages {
    /// Page id -> (page lsn, bytes).
    pages: BTreeMap<u64, (Lsn, Vec<u8>)>,
    /// (page, lsn, image) of every redo, in call order.
    redos: Vec<(u64, Lsn, Vec<u8>)>,
    /// (page, lsn, image) of every undo, in call order.
    undos: Vec<(u64, Lsn, Vec<u8>)>,
    /// Pages whose lsn was asked for.
    lsn_queries: Vec<u64>,
}

impl MemPages {
    fn write(&mut self, page: u64, offset: u32, image: &[u8], lsn: Lsn) {
        let (page_lsn, bytes) = self.pages.entry(page).or_insert_with(|| (0, vec![0; MEM_PAGE_BYTES]));
        bytes[offset as usize..offset as usize + image.len()].copy_from_slice(image);
        *page_lsn = lsn;
    }

    fn bytes(&self, page: u64, offset: u32, len: usize) -> Vec<u8> {
        let at = offset as usize;
        self.pages.get(&page).map_or(vec![0; len], |(_, bytes)| bytes[at..at + len].to_vec())
    }
}

impl RecoveryHandler for MemPages {
    type Error = Infallible;

    fn page_lsn(&mut self, page_id: u64) -> Result<Lsn, Infallible> {
        self.lsn_queries.push(page_id);
        Ok(self.pages.get(&page_id).map_or(0, |(lsn, _)| *lsn))
    }

    fn redo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> Result<(), Infallible> {
        self.redos.push((page_id, lsn, image.to_vec()));
        self.write(page_id, offset, image, lsn);
        Ok(())
    }

    fn undo(&mut self, page_id: u64, offset: u32, image: &[u8], lsn: Lsn) -> Result<(), Infallible> {
        self.undos.push((page_id, lsn, image.to_vec()));
        self.write(page_id, offset, image, lsn);
        Ok(())
    }
}

/// A transaction writes `after` at `offset` of `page`: logged first, then applied to `store`.
fn write(
    (txns, wal, store): (&mut Transactions, &mut Wal<SimEnv>, &mut MemPages),
    txn: u64,
    page: u64,
    offset: u32,
    after: &[u8],
) -> Lsn {
    let before = store.bytes(page, offset, after.len());
    let lsn = txns.update(wal, txn, page, offset, &before, after).expect("update");
    store.write(page, offset, after, lsn);
    lsn
}

fn fresh_log(env: &SimEnv) -> (Wal<SimEnv>, Transactions) {
    let (wal, stats) = recover(env, &mut MemPages::default());
    assert_eq!(stats, RecoveryStats::default(), "a new log recovers nothing");
    (wal, Transactions::new())
}

// ---------------------------------------------------------------------------------------------
// Scenarios of the seed's recovery behaviours.

#[test]
fn committed_txn_is_redone_into_a_page_store_that_lost_it() {
    let env = perfect_disk(1);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut live = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    let a = write((&mut txns, &mut wal, &mut live), 1, 1, 0, &[1, 2, 3, 4]);
    let b = write((&mut txns, &mut wal, &mut live), 1, 2, 8, &[9, 9, 9]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    drop(wal);
    crash(&env);

    let mut lost = MemPages::default();
    let (_, stats) = recover(&env, &mut lost);
    assert_eq!((stats.redone, stats.undone, stats.active_txns, stats.dirty_pages), (2, 0, 0, 2));
    assert_eq!(lost.redos.iter().map(|r| r.1).collect::<Vec<_>>(), [a, b]);
    assert_eq!(lost.pages, live.pages, "bytes and page lsns as the live store had them");

    let (_, again) = recover(&env, &mut lost);
    assert_eq!(again.redone, 0, "page lsns show every change is there: redo is idempotent");
    assert_eq!(lost.pages, live.pages);
}

#[test]
fn uncommitted_txn_is_undone_and_ended_by_an_abort() {
    let env = perfect_disk(2);
    let (mut wal, mut txns) = fresh_log(&env);
    // The store writes every change at once: it holds the loser's changes (STEAL).
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[7; 8]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    let committed: Vec<Vec<u8>> = [1, 2].map(|page| store.bytes(page, 0, MEM_PAGE_BYTES)).to_vec();
    txns.begin(&mut wal, 2).expect("begin");
    write((&mut txns, &mut wal, &mut store), 2, 1, 0, &[8; 8]);
    write((&mut txns, &mut wal, &mut store), 2, 2, 4, &[5; 4]);
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    crash(&env);

    let (_, stats) = recover(&env, &mut store);
    assert_eq!((stats.active_txns, stats.undone, stats.clrs_written, stats.redone), (1, 2, 2, 0));
    assert_eq!(store.undos.iter().map(|u| u.0).collect::<Vec<_>>(), [2, 1], "newest first");
    assert_eq!([1, 2].map(|page| store.bytes(page, 0, MEM_PAGE_BYTES)).to_vec(), committed);

    crash(&env);
    let (_, again) = recover(&env, &mut store);
    assert_eq!((again.active_txns, again.undone, again.clrs_written), (0, 0, 0), "the Abort ended it");

    let mut forgetful = MemPages::default();
    let (_, history) = recover(&env, &mut forgetful);
    assert_eq!((history.redone, history.undone), (5, 0), "3 updates and 2 CLRs repeated");
    assert_eq!(forgetful.pages, store.pages, "repeating history ends where undo ended");
}

#[test]
fn losers_that_changed_the_same_bytes_are_undone_newest_first_across_transactions() {
    let env = perfect_disk(10);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    txns.begin(&mut wal, 2).expect("begin");
    // No locking at this layer: 1 writes A, 2 overwrites it with B, 1 again with C.
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[0xa; 4]);
    write((&mut txns, &mut wal, &mut store), 2, 1, 2, &[0xb; 4]);
    write((&mut txns, &mut wal, &mut store), 1, 1, 4, &[0xc; 4]);
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    crash(&env);
    let (_, stats) = recover(&env, &mut store);
    assert_eq!((stats.active_txns, stats.undone), (2, 3));
    assert_eq!(store.bytes(1, 0, 8), [0; 8], "undone in reverse lsn order over both transactions");
}

#[test]
fn aborted_txn_stays_undone_after_a_crash() {
    let env = perfect_disk(3);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[7; 8]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    txns.begin(&mut wal, 2).expect("begin");
    write((&mut txns, &mut wal, &mut store), 2, 1, 2, &[8; 4]);
    txns.abort(&mut wal, 2, &mut store).expect("abort");
    assert_eq!(store.undos.len(), 1, "abort undid the update");
    assert_eq!(store.bytes(1, 0, 8), [7; 8]);
    assert!(!txns.is_active(2));
    txns.begin(&mut wal, 3).expect("begin");
    write((&mut txns, &mut wal, &mut store), 3, 2, 0, &[3; 2]);
    txns.commit(&mut wal, 3, Durability::Data).expect("commit");
    drop(wal);
    crash(&env);

    let mut forgetful = MemPages::default();
    let (_, stats) = recover(&env, &mut forgetful);
    assert_eq!((stats.active_txns, stats.undone, stats.clrs_written), (0, 0, 0));
    assert_eq!(stats.redone, 4, "both updates, the CLR and the later commit");
    assert_eq!(forgetful.pages, store.pages);
}

#[test]
fn checkpoint_bounds_redo_to_its_dirty_page_table() {
    let env = perfect_disk(4);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[1; 4]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    // Page 1 is now durable in the page store; page 2 is not.
    txns.begin(&mut wal, 2).expect("begin");
    let dirty = write((&mut txns, &mut wal, &mut store), 2, 2, 0, &[2; 4]);
    txns.checkpoint(&mut wal, &[(2, dirty)]).expect("checkpoint");
    txns.begin(&mut wal, 3).expect("begin");
    let later = write((&mut txns, &mut wal, &mut store), 3, 3, 0, &[3; 4]);
    txns.commit(&mut wal, 3, Durability::Data).expect("commit");
    drop(wal);
    crash(&env);

    // A page store that claims to hold nothing: only the checkpoint keeps page 1 out of redo.
    let mut forgetful = MemPages::default();
    let (_, stats) = recover(&env, &mut forgetful);
    assert_eq!(forgetful.redos.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), [(2, dirty), (3, later)]);
    assert!(!forgetful.lsn_queries.contains(&1), "page 1 is not dirty: its lsn is not even asked");
    assert_eq!((stats.dirty_pages, stats.active_txns, stats.undone), (2, 1, 1));
    assert_eq!(forgetful.bytes(2, 0, 4), [0; 4], "the loser known from the checkpoint was undone");
}

#[test]
fn loser_whose_records_were_truncated_is_reported_not_guessed() {
    let env = perfect_disk(5);
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[1; 4]);
    txns.begin(&mut wal, 2).expect("begin");
    for i in 0..400 {
        write((&mut txns, &mut wal, &mut store), 2, 2, i % 60, &[i as u8; 4]);
    }
    txns.commit(&mut wal, 2, Durability::Data).expect("commit");
    let checkpoint = txns.checkpoint(&mut wal, &[]).expect("checkpoint");
    wal.sync(Durability::Data).expect("sync");
    assert_eq!(txns.oldest_first_lsn(), Some(1), "the documented bound, ignored on purpose below");
    wal.truncate_before(checkpoint).expect("truncate");
    assert!(wal.stats().segments_deleted > 0);
    drop(wal);
    crash(&env);

    match try_recover(&env, &mut MemPages::default()) {
        Err(AriesError::BrokenUndoChain { txn_id: 1, lsn: 2, .. }) => {}
        other => panic!("expected a broken undo chain of transaction 1, got {other:?}"),
    }
}

#[test]
fn record_whose_payload_does_not_match_its_kind_is_reported_not_skipped() {
    let env = perfect_disk(6);
    let (mut wal, mut txns) = fresh_log(&env);
    let begin = txns.begin(&mut wal, 1).expect("begin");
    let bad = wal.append(RecordKind::Update, 1, begin, b"not an update").expect("append");
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    crash(&env);
    match try_recover(&env, &mut MemPages::default()) {
        Err(AriesError::BadRecord { lsn, kind: RecordKind::Update, .. }) if lsn == bad => {}
        other => panic!("expected a bad Update at lsn {bad}, got {other:?}"),
    }
}

#[test]
fn record_that_breaks_its_transactions_chain_is_reported() {
    let env = perfect_disk(7);
    let (mut wal, mut txns) = fresh_log(&env);
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut MemPages::default()), 1, 1, 0, &[1]);
    let bad = wal.append(RecordKind::Commit, 1, 1, &[]).expect("append a Commit skipping the update");
    wal.sync(Durability::Data).expect("sync");
    drop(wal);
    crash(&env);
    match try_recover(&env, &mut MemPages::default()) {
        Err(AriesError::BadRecord { lsn, kind: RecordKind::Commit, .. }) if lsn == bad => {}
        other => panic!("expected a broken chain at lsn {bad}, got {other:?}"),
    }
}

#[test]
fn transactions_refuse_misuse_without_writing() {
    let env = perfect_disk(8);
    let (mut wal, mut txns) = fresh_log(&env);
    assert!(matches!(txns.begin(&mut wal, 0), Err(AriesError::InvalidTxnId)));
    txns.begin(&mut wal, 1).expect("begin");
    assert!(matches!(txns.begin(&mut wal, 1), Err(AriesError::TxnActive(1))));
    assert!(matches!(txns.update(&mut wal, 2, 1, 0, &[0], &[1]), Err(AriesError::UnknownTxn(2))));
    assert!(matches!(
        txns.update(&mut wal, 1, 1, 0, &[0], &[1, 2]),
        Err(AriesError::ImageLengths { before: 1, after: 2 })
    ));
    assert!(matches!(txns.commit(&mut wal, 2, Durability::Data), Err(AriesError::UnknownTxn(2))));
    assert!(matches!(txns.abort(&mut wal, 2, &mut MemPages::default()), Err(AriesError::UnknownTxn(2))));
    assert_eq!(wal.last_lsn(), 1, "only the Begin was written");
    assert_eq!(txns.active(), [(1, 1)]);
}

#[test]
fn commit_is_durable_when_it_returns() {
    let env = perfect_disk(9);
    let (mut wal, mut txns) = fresh_log(&env);
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut MemPages::default()), 1, 1, 0, &[1]);
    let lsn = txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    assert_eq!(wal.durable_lsn(), lsn);
    txns.begin(&mut wal, 2).expect("begin");
    let lazy = txns.commit(&mut wal, 2, Durability::None).expect("commit");
    assert_eq!(wal.durable_lsn(), lsn, "Durability::None does not sync");
    assert!(lazy > lsn);
}

// ---------------------------------------------------------------------------------------------
// A crash in the middle of undo, at every Env call of the first recovery.

const LOSERS: u64 = 3;
const UPDATES_PER_LOSER: u64 = 50;
const COMMITTED_IMAGE: [u8; 4] = [1; 4];

fn loser_pages() -> impl Iterator<Item = (u64, u64)> {
    (0..UPDATES_PER_LOSER).flat_map(|i| (1..=LOSERS).map(move |txn| (txn, txn * 1000 + i)))
}

/// Three losers, each changing 50 pages a committed transaction wrote, interleaved; all
/// durable, the store holding every change, then a crash. Returns the store and the last lsn.
fn setup_losers(env: &SimEnv) -> (MemPages, Lsn) {
    let (mut wal, mut txns) = fresh_log(env);
    let mut store = MemPages::default();
    let log = &mut (&mut txns, &mut wal, &mut store);
    log.0.begin(log.1, 9).expect("begin");
    for (_, page) in loser_pages() {
        write((log.0, log.1, log.2), 9, page, 0, &COMMITTED_IMAGE);
    }
    log.0.commit(log.1, 9, Durability::Data).expect("commit");
    for txn in 1..=LOSERS {
        log.0.begin(log.1, txn).expect("begin");
    }
    for (txn, page) in loser_pages() {
        write((log.0, log.1, log.2), txn, page, 0, &[txn as u8 + 1; 4]);
    }
    wal.sync(Durability::Data).expect("sync");
    let last = wal.last_lsn();
    drop(wal);
    crash(env);
    (store, last)
}

#[test]
fn crash_during_undo_then_second_recovery_undoes_nothing_twice() {
    let measure = perfect_disk(0);
    setup_losers(&measure);
    let first_call = measure.stats().calls + 1;
    let (_, stats) = recover(&measure, &mut setup_losers(&perfect_disk(0)).0);
    assert_eq!(stats.undone, LOSERS * UPDATES_PER_LOSER);
    assert!(stats.undone as usize > aries::UNDO_BATCH_RECORDS_MAX, "undo takes several batches");
    let last_call = measure.stats().calls;
    let (mut partial_undos, mut clr_redos) = (0, 0);
    for call in first_call..=last_call {
        for after in [false, true] {
            let options =
                FaultOptions { crash: CrashMode::AtCall { call, after }, ..FaultOptions::default() };
            let env = SimEnv::new(call, options).expect("valid options");
            let (mut store, setup_last) = setup_losers(&env);
            assert_eq!(env.stats().crashes, 1, "call {call}: the setup ran whole");
            let first = try_recover(&env, &mut store);
            assert!(first.is_err() && env.is_crashed(), "call {call}: the first recovery crashed");
            let undone_first = store.undos.len() as u64;
            partial_undos += u64::from(undone_first > 0 && undone_first < stats.undone);
            env.restart();
            let redos_before = store.redos.len();
            let (_, second) = recover(&env, &mut store);
            assert!(second.active_txns <= LOSERS, "call {call}");
            // Each loser update is compensated exactly once overall: by an undo in either
            // recovery, or by the second one repeating a CLR the first made durable.
            let mut compensations: BTreeMap<u64, u64> = BTreeMap::new();
            for (page, _, image) in &store.undos {
                assert_eq!(image, &COMMITTED_IMAGE, "call {call}");
                *compensations.entry(*page).or_default() += 1;
            }
            for (page, lsn, image) in &store.redos[redos_before..] {
                assert!(
                    *lsn > setup_last && image == &COMMITTED_IMAGE,
                    "call {call}: only CLRs are repeated"
                );
                *compensations.entry(*page).or_default() += 1;
                clr_redos += 1;
            }
            let expected: BTreeMap<u64, u64> = loser_pages().map(|(_, page)| (page, 1)).collect();
            assert_eq!(compensations, expected, "call {call} after={after}");
            for (_, page) in loser_pages() {
                assert_eq!(store.bytes(page, 0, 4), COMMITTED_IMAGE, "call {call} page {page}");
            }
            let (_, third) = recover(&env, &mut store);
            assert_eq!((third.active_txns, third.undone, third.redone), (0, 0, 0), "call {call}");
        }
    }
    assert!(partial_undos > 0, "some crash fell between undo batches");
    assert!(clr_redos > 0, "some crash left durable CLRs whose undo had not reached the store");
}

// ---------------------------------------------------------------------------------------------
// A STEAL page store on the simulated disk: uncommitted changes reach its data file (after the
// log records they need), crashes hit any Env call, recovery included, and after recovery the
// data file equals the committed model.

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

// ---------------------------------------------------------------------------------------------
// A pinned recovery report.

#[test]
fn recovery_stats_of_a_pinned_scenario_match_the_snapshot() {
    // Every unsynced write is torn, its lost sectors filled with garbage: a torn tail to cut.
    let options = FaultOptions {
        write_fate: WriteFateWeights { survive: 0, lose: 0, tear: 1 },
        tear_fill: TearFillWeights { old: 0, zero: 0, garbage: 1 },
        ..FaultOptions::default()
    };
    let env = SimEnv::new(42, options).expect("valid options");
    let (mut wal, mut txns) = fresh_log(&env);
    let mut store = MemPages::default();
    txns.begin(&mut wal, 1).expect("begin");
    write((&mut txns, &mut wal, &mut store), 1, 1, 0, &[1; 8]);
    write((&mut txns, &mut wal, &mut store), 1, 2, 0, &[2; 8]);
    txns.commit(&mut wal, 1, Durability::Data).expect("commit");
    txns.begin(&mut wal, 2).expect("begin");
    write((&mut txns, &mut wal, &mut store), 2, 3, 0, &[3; 8]);
    txns.abort(&mut wal, 2, &mut store).expect("abort");
    txns.begin(&mut wal, 3).expect("begin");
    let p4 = write((&mut txns, &mut wal, &mut store), 3, 4, 0, &[4; 8]);
    let p5 = write((&mut txns, &mut wal, &mut store), 3, 5, 0, &[5; 8]);
    txns.checkpoint(&mut wal, &[(4, p4), (5, p5)]).expect("checkpoint");
    wal.sync(Durability::Data).expect("sync");
    txns.begin(&mut wal, 4).expect("begin");
    write((&mut txns, &mut wal, &mut store), 4, 6, 0, &[6; 40]);
    txns.commit(&mut wal, 4, Durability::None).expect("commit");
    drop(wal);
    crash(&env);
    let (_, stats) = recover(&env, &mut MemPages::default());
    insta::assert_debug_snapshot!(stats, @r"
    RecoveryStats {
        records_scanned: 12,
        bytes: 960,
        torn_bytes_truncated: 272,
        active_txns: 1,
        dirty_pages: 2,
        redone: 2,
        undone: 2,
        clrs_written: 2,
        txn_id_max: 3,
    }
    ");
}
