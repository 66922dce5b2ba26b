//! Recovery time against data size (DESIGN.md section 3, rule 13: "recovery time is bounded
//! by configuration, not by history"), on `OsEnv`.
//!
//! For 1x, 2x, 4x and 8x a base volume, a small store (a WAL plus a checkpoint store, as the
//! simulator's checkpoint store uses them) is written once with a full checkpoint every
//! [`CHECKPOINT_EVERY_BYTES`] of WAL, retention of [`RETAINED`] checkpoints and the WAL
//! truncated back to the oldest retained one; and once without checkpoints. Every put writes a
//! 128-byte value to one of [`KEYS`] keys, so the state stays the same size while the history
//! grows. Then [`stormhold::recovery::recover`] is timed on each store (median of a few runs;
//! the page cache is warm, the data was just written). With checkpoints the time should stay
//! flat (the 8x over 1x ratio near 1); without, it grows with the WAL (near 8).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stormhold::checkpoint::{Bytes, CheckpointData, CheckpointMeta, CheckpointOptions, UserMeta};
use stormhold::env::OsEnv;
use stormhold::recovery::{Recovered, RecoveryPaths, Replayer, recover};
use stormhold::wal::{Durability, Record, RecordKind, WalOptions};

use crate::harness::{BenchError, Scratch};
use crate::step;

/// Value length of every put, in bytes.
const VALUE_BYTES: usize = 128;
/// Distinct keys: the state is `KEYS` entries whatever the volume written.
const KEYS: u64 = 8192;
/// WAL bytes between two checkpoints; not a divisor of the volumes written, so every store
/// ends with WAL after its last checkpoint to replay.
const CHECKPOINT_EVERY_BYTES: u64 = 1000 << 10;
/// Checkpoints retention keeps (the WAL is kept back to the oldest).
const RETAINED: usize = 2;
/// Segment size: small, so truncation can free WAL at checkpoint granularity.
const SEGMENT_BYTES: u64 = 1 << 20;
/// Multiples of the base volume measured.
const MULTIPLES: [u64; 4] = [1, 2, 4, 8];

/// Applies puts (an 8-byte key, then the value) above the checkpoint.
#[derive(Default)]
struct Puts {
    state: BTreeMap<Bytes, Bytes>,
}

impl Replayer for Puts {
    fn base(&mut self, _: Option<&CheckpointMeta>, state: BTreeMap<Bytes, Bytes>) -> Result<(), String> {
        self.state = state;
        Ok(())
    }

    fn record(&mut self, record: Record, covered: bool) -> Result<(), String> {
        if record.payload.len() != 8 + VALUE_BYTES {
            return Err(format!("a record of {} bytes is no put", record.payload.len()));
        }
        if !covered {
            let (key, value) = record.payload.split_at(8);
            self.state.insert(key.to_vec(), value.to_vec());
        }
        Ok(())
    }
}

fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ckpt"), dir.join("wal"))
}

fn open(dir: &Path, replayer: &mut Puts) -> Result<Recovered<OsEnv>, BenchError> {
    let (checkpoint_dir, wal_dir) = paths(dir);
    let paths = RecoveryPaths {
        checkpoint_dir: &checkpoint_dir,
        checkpoint_options: CheckpointOptions {
            max_retained: RETAINED,
            full_every_incrementals: 0,
            ..CheckpointOptions::default()
        },
        wal_dir: &wal_dir,
        wal_options: WalOptions { segment_size_bytes: SEGMENT_BYTES, ..WalOptions::default() },
    };
    Ok(recover(&OsEnv::new(), paths, replayer)?)
}

/// Writes `bytes` of values into a new store in `dir`, checkpointing or not; returns the
/// number of checkpoints taken.
fn build(dir: &Path, bytes: u64, checkpoints: bool) -> Result<u64, BenchError> {
    std::fs::create_dir(dir)?;
    let mut replayer = Puts::default();
    let Recovered { checkpoints: mut ckpts, mut wal, .. } = open(dir, &mut replayer)?;
    let mut state = replayer.state;
    let (mut taken, mut next_checkpoint) = (0, CHECKPOINT_EVERY_BYTES);
    let mut payload = vec![0; 8 + VALUE_BYTES];
    for n in 0..bytes / VALUE_BYTES as u64 {
        payload[..8].copy_from_slice(&(n % KEYS).to_be_bytes());
        payload[8..16].copy_from_slice(&n.to_le_bytes());
        wal.append(RecordKind::Data, 0, 0, &payload)?;
        state.insert(payload[..8].to_vec(), payload[8..].to_vec());
        if checkpoints && wal.stats().bytes >= next_checkpoint {
            next_checkpoint += CHECKPOINT_EVERY_BYTES;
            let lsn = wal.sync(Durability::Data)?;
            taken += 1;
            let data = CheckpointData::Full(state.clone());
            ckpts.create(taken, lsn, UserMeta::default(), data, None)?;
            ckpts.apply_retention()?;
            if let Some(oldest) = ckpts.min_retained_lsn() {
                wal.truncate_before(oldest + 1)?;
            }
        }
    }
    wal.sync(Durability::Data)?;
    Ok(taken)
}

/// One store and its timed recoveries.
struct Store {
    dir: PathBuf,
    checkpoints: u64,
    times: Vec<Duration>,
    records_replayed: u64,
    wal_mib: f64,
}

impl Store {
    fn built(dir: PathBuf, bytes: u64, checkpoints: bool) -> Result<Self, BenchError> {
        let checkpoints = build(&dir, bytes, checkpoints)?;
        Ok(Self { dir, checkpoints, times: Vec::new(), records_replayed: 0, wal_mib: 0.0 })
    }

    /// Times one recovery.
    fn recover_once(&mut self) -> Result<(), BenchError> {
        let mut replayer = Puts::default();
        let start = Instant::now();
        let recovered = open(&self.dir, &mut replayer)?;
        self.times.push(start.elapsed());
        if replayer.state.len() as u64 > KEYS {
            return Err(format!("recovered {} keys of {KEYS}", replayer.state.len()).into());
        }
        self.records_replayed = recovered.report.records_replayed;
        self.wal_mib = recovered.report.wal_bytes_scanned as f64 / f64::from(1 << 20);
        Ok(())
    }

    fn median(&self) -> Duration {
        let mut times = self.times.clone();
        times.sort();
        times.get(times.len() / 2).copied().unwrap_or_default()
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn cell(store: &Store) -> String {
    format!("{} ({} records, {:.1} MiB WAL)", ms(store.median()), store.records_replayed, store.wal_mib)
}

/// The largest multiple's median time over the smallest's.
fn ratio(stores: &[Store]) -> f64 {
    match (stores.first(), stores.last()) {
        (Some(first), Some(last)) => last.median().as_secs_f64() / first.median().as_secs_f64().max(1e-9),
        _ => 0.0,
    }
}

/// Builds the stores of every multiple of `base_bytes` in `scratch`, times their recovery
/// (`runs` rounds, each recovering every store once, so that all see the same disk weather)
/// and returns the section to print.
pub fn run(scratch: &Scratch, base_bytes: u64, runs: u32) -> Result<String, BenchError> {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for multiple in MULTIPLES {
        let bytes = base_bytes * multiple;
        step(&format!("recovery vs size: writing {} MiB twice, with and without checkpoints", bytes >> 20));
        with.push(Store::built(scratch.path().join(format!("{multiple}x-checkpoints")), bytes, true)?);
        without.push(Store::built(scratch.path().join(format!("{multiple}x-wal-only")), bytes, false)?);
    }
    step("recovery vs size: recovering every store, interleaved");
    for _ in 0..runs.max(1) {
        for store in with.iter_mut().chain(&mut without) {
            store.recover_once()?;
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "recovery vs data size (recovery::recover on OsEnv, warm cache, median of {runs}): {VALUE_BYTES} B \
         values over {KEYS} keys; a full checkpoint every {} KiB of WAL, {RETAINED} retained, WAL truncated \
         to the oldest",
        CHECKPOINT_EVERY_BYTES >> 10
    );
    for ((multiple, with), without) in MULTIPLES.iter().zip(&with).zip(&without) {
        let _ = writeln!(
            out,
            "  {multiple}x = {:>3} MiB of values: with checkpoints ({:>2} taken) {} | without {}",
            (base_bytes * multiple) >> 20,
            with.checkpoints,
            cell(with),
            cell(without)
        );
    }
    let _ = writeln!(
        out,
        "  {}x / {}x recovery time: with checkpoints {:.2}x, without {:.2}x",
        MULTIPLES[MULTIPLES.len() - 1],
        MULTIPLES[0],
        ratio(&with),
        ratio(&without)
    );
    Ok(out)
}
