//! The kernel's workloads: [`Kernel`] on the real OS, driven through its front door exactly as
//! a user would (`put`, `begin`/`commit`, `sync`, `open`), each interleaved with a raw
//! baseline of `raw.rs` so both see the same disk weather.
//!
//! - durable puts, one writer (`Kernel::put(.., Durability::Data)`), on 1 and 4 shards,
//!   against baseline B (overwrite of zeroed, synced space + `fdatasync`), in paired rounds
//!   (`paired.rs`): the row's baseline column adds the median of the per-round ratios and
//!   its interquartile range, the figure to judge the 1.0x target by;
//! - durable puts from 8 and 32 threads sharing one kernel, on 1 shard (the threads share one
//!   group commit) and on 4 shards, against the simple group-commit ideal with the same
//!   threads;
//! - bulk load: transactions of 1,000 puts committed with `Durability::None`, one
//!   `Kernel::sync` per turn, with sequential 16+128 B records and at the peers' shape
//!   (16-byte keys, 100-byte values) with random and with sequential keys, against a raw append loop that writes
//!   each put's log bytes with one write call (both in puts/s). The kernel has the default
//!   epochs, so every 64 MiB of WAL a commit checkpoints inline; the row says how many did;
//! - recovery: `Kernel::open` of a kernel holding a WAL of the configured size and no
//!   checkpoint (one 1 KiB put per record), on 1 shard and on 4 shards (recovered in
//!   parallel), against a sequential read of the same segment files. The page cache is warm.
//!
//! The commit workloads run on [`CountingEnv`] (`counting.rs`), `OsEnv` with a counter of file syncs, so the
//! table can show how many commits each `fdatasync` covered (one atomic add per sync, nothing
//! measurable next to the sync itself).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::env::{Env, OsEnv};
use stormhold::kernel::layout;
use stormhold::wal::WalOptions;
use stormhold::wal::{format, scan};
use stormhold::{Config, Durability, Kernel};

use crate::counting::CountingEnv;
use crate::harness::{
    BenchError, Budget, Contender, Rate, Row, Scratch, Unit, interleave, run_writers, timed,
};
use crate::paired::paired_rounds;
use crate::{WRITER_COUNTS, raw, step};

/// Key length of every workload, in bytes.
const KEY_BYTES: usize = 16;
/// Value length of the commit and bulk workloads, in bytes.
const VALUE_BYTES: usize = 128;
/// Value length of the puts of the recovery kernels, in bytes.
const RECOVERY_VALUE_BYTES: usize = 1024;
/// Puts per transaction of the bulk load.
const BULK_PUTS_PER_TXN: usize = 1000;
/// Distinct keys the commit workloads cycle through (bounds the kernels' memory).
const COMMIT_KEYS: u64 = 1 << 20;
/// Shard counts of the commit and recovery workloads.
const SHARD_COUNTS: [u32; 2] = [1, 4];

/// A 16-byte key: an 8-byte tag and `n` big-endian, so sequential `n` are sequential keys.
fn key(tag: &[u8; 8], n: u64) -> [u8; KEY_BYTES] {
    let mut key = [0; KEY_BYTES];
    key[..8].copy_from_slice(tag);
    key[8..].copy_from_slice(&n.to_be_bytes());
    key
}

/// Bytes one put takes in a shard's WAL record (kind, key and value with their lengths): see
/// `stormhold::shard::record`.
fn put_log_bytes(value_bytes: usize) -> usize {
    1 + 4 + KEY_BYTES + 4 + value_bytes
}

fn kernel_error(error: stormhold::KernelError) -> BenchError {
    Box::new(error)
}

/// Fails unless every shard is serving (a shard that cannot open does not fail `open`).
fn check_serving<E: Env + Clone>(kernel: &Kernel<E>) -> Result<(), BenchError> {
    match kernel.shard_status().into_iter().find(|s| s.failed.is_some()) {
        Some(status) => Err(format!("shard {} is failed: {:?}", status.shard, status.failed).into()),
        None => Ok(()),
    }
}

// --- Durable commits -----------------------------------------------------------------------

/// A kernel the commit workloads share (one per shard count, reused by every writer count).
struct Store {
    kernel: Kernel<CountingEnv>,
    shards: u32,
    next_key: AtomicU64,
}

impl Store {
    fn open(dir: &Path, wal: &WalOptions, shards: u32) -> Result<Arc<Self>, BenchError> {
        let config = Config::builder().shards(shards).wal_options(wal.clone()).build()?;
        let kernel = Kernel::open(CountingEnv::new(), &dir.join(format!("kernel-{shards}")), config)?;
        check_serving(&kernel)?;
        Ok(Arc::new(Self { kernel, shards, next_key: AtomicU64::new(0) }))
    }

    fn put(&self, value: &[u8]) -> Result<(), BenchError> {
        let n = self.next_key.fetch_add(1, Ordering::Relaxed) % COMMIT_KEYS;
        self.kernel.put(&key(b"commits:", n), value, Durability::Data).map_err(kernel_error)?;
        Ok(())
    }
}

/// `threads` threads (the calling thread alone for 1) putting durably through one kernel.
struct Writers {
    store: Arc<Store>,
    threads: usize,
    value: Vec<u8>,
    /// Commits and file syncs over the measured slices.
    commits: u64,
    syncs: u64,
}

impl Writers {
    fn new(store: &Arc<Store>, threads: usize) -> Self {
        Self { store: Arc::clone(store), threads, value: vec![0x5a; VALUE_BYTES], commits: 0, syncs: 0 }
    }

    /// Commits per file sync over the measured slices.
    fn average_batch(&self) -> f64 {
        self.commits as f64 / self.syncs.max(1) as f64
    }

    fn name(&self) -> String {
        let shards = self.store.shards;
        format!(
            "Kernel::put Data, {} writer{}, {shards} shard{}, {:.1}/sync",
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            if shards == 1 { "" } else { "s" },
            self.average_batch()
        )
    }
}

impl Contender for Writers {
    fn slice(&mut self, budget: Budget) -> Result<Rate, BenchError> {
        let syncs_before = self.store.kernel.env().syncs();
        let (store, value) = (&*self.store, self.value.as_slice());
        let rate = if self.threads == 1 {
            timed(budget, Unit::PerSecond, || store.put(value))?
        } else {
            run_writers(self.threads, budget, || store.put(value))?
        };
        self.commits += rate.amount as u64;
        self.syncs += store.kernel.env().syncs() - syncs_before;
        Ok(rate)
    }
}

/// Durable puts through a kernel of 1 and of 4 shards: from one writer against baseline B,
/// then from 8 and 32 threads against the group-commit ideal with as many threads. The same
/// two kernels serve every writer count.
pub fn commits(config: &crate::Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let stores: Vec<Arc<Store>> = SHARD_COUNTS
        .iter()
        .map(|&shards| Store::open(scratch.path(), &config.wal, shards))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();

    step("Kernel durable puts, 1 writer, 1 and 4 shards, and baseline B, in paired rounds");
    let mut writers: Vec<Writers> = stores.iter().map(|s| Writers::new(s, 1)).collect();
    let mut b = raw::overwrite_fdatasync(scratch.path(), VALUE_BYTES)?;
    let mut contenders: Vec<&mut dyn Contender> =
        writers.iter_mut().map(|w| w as &mut dyn Contender).collect();
    contenders.push(&mut b);
    // One sync per commit: the disk's weather is the whole figure, so many short paired
    // rounds and the median of their ratios (see `paired.rs`).
    let (rounds, budget) = crate::paired::one_writer_rounds(config.rounds, config.commits);
    let paired = paired_rounds(rounds, budget, &mut contenders)?;
    let base = writers.len();
    for (i, w) in writers.iter().enumerate() {
        rows.push(Row {
            workload: w.name(),
            rate: paired.total(i),
            baseline: format!("B: overwrite zeroed + fdatasync, {VALUE_BYTES} B; {}", paired.ratio(i, base)),
            baseline_rate: paired.total(base),
        });
    }

    for threads in WRITER_COUNTS {
        step(&format!("Kernel durable puts, {threads} writers, 1 and 4 shards, and the group-commit ideal"));
        let mut writers: Vec<Writers> = stores.iter().map(|s| Writers::new(s, threads)).collect();
        let mut ideal = raw::GroupCommit::new(scratch.path(), threads, VALUE_BYTES)?;
        let mut contenders: Vec<&mut dyn Contender> =
            writers.iter_mut().map(|w| w as &mut dyn Contender).collect();
        contenders.push(&mut ideal);
        let rates = interleave(config.rounds, config.commits, &mut contenders)?;
        for (w, &rate) in writers.iter().zip(&rates) {
            rows.push(Row {
                workload: w.name(),
                rate,
                baseline: format!("group-commit ideal, {threads} writers, {:.1}/sync", ideal.average_batch()),
                baseline_rate: rates[writers.len()],
            });
        }
    }
    Ok(rows)
}

// --- Bulk load ----------------------------------------------------------------------------

/// Puts per bulk transaction: 1,000, unless a record of that many would not fit in a WAL
/// segment (only with the tiny segments of the harness's own test).
fn bulk_puts_per_txn(wal: &WalOptions) -> usize {
    let room = wal.segment_size_bytes.saturating_sub(2 * format::SEGMENT_HEADER_BYTES) as usize;
    BULK_PUTS_PER_TXN.min(room / put_log_bytes(VALUE_BYTES)).max(1)
}

/// Value length of the peers' bulk loads (`../shared/peers/` w4), in bytes.
const PEER_VALUE_BYTES: usize = 100;

/// One bulk-load workload: value size, and whether keys are random (a scrambled counter) or
/// sequential.
#[derive(Clone, Copy, Debug)]
struct BulkShape {
    value_bytes: usize,
    random: bool,
}

/// The n-th key of a load: sequential, or n scrambled by an invertible mix (so every key is
/// distinct and the order is random).
fn bulk_key(shape: BulkShape, n: u64) -> [u8; KEY_BYTES] {
    if !shape.random {
        return key(b"bulkload", n);
    }
    let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    key(b"bulkrand", x ^ (x >> 31))
}

/// Bulk loads against a raw append loop of the same log bytes per put, both in puts/s: the
/// sequential 128 B load, and the peers' shape (16 B keys, 100 B values), random and
/// sequential.
pub fn bulk(config: &crate::Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let shapes = [
        BulkShape { value_bytes: VALUE_BYTES, random: false },
        BulkShape { value_bytes: PEER_VALUE_BYTES, random: true },
        BulkShape { value_bytes: PEER_VALUE_BYTES, random: false },
    ];
    let mut rows = Vec::new();
    for (n, shape) in shapes.into_iter().enumerate() {
        rows.push(bulk_one(config, scratch, shape, n)?);
    }
    Ok(rows)
}

fn bulk_one(
    config: &crate::Config,
    scratch: &Scratch,
    shape: BulkShape,
    n: usize,
) -> Result<Row, BenchError> {
    let per_txn = bulk_puts_per_txn(&config.wal);
    let put_bytes = put_log_bytes(shape.value_bytes);
    let keys = if shape.random { "random" } else { "sequential" };
    step(&format!(
        "Kernel bulk load, {per_txn} puts per commit, {keys} keys, and a raw append loop, interleaved"
    ));
    let kernel_config = Config::builder().shards(1).wal_options(config.wal.clone()).build()?;
    let dir = Scratch::new(scratch.path(), &format!("kernel-bulk-{n}"))?;
    let kernel = Kernel::open(OsEnv::new(), &dir.path().join("kernel"), kernel_config)?;
    check_serving(&kernel)?;
    let value = vec![0x5a; shape.value_bytes];
    let mut next = 0u64;
    let mut load = |budget: Budget| -> Result<Rate, BenchError> {
        let start = Instant::now();
        let mut puts = 0;
        while puts < budget.count_max && start.elapsed() < budget.duration {
            let mut txn = kernel.begin();
            for _ in 0..per_txn {
                txn.put(&bulk_key(shape, next), &value)?;
                next += 1;
            }
            txn.commit(Durability::None)?;
            puts += per_txn as u64;
        }
        kernel.sync(Durability::Data)?;
        Ok(Rate { amount: puts as f64, elapsed: start.elapsed(), unit: Unit::PerSecond })
    };
    let mut bytes_loop = raw::append_loop(dir.path(), put_bytes)?;
    let mut raw_puts = |budget: Budget| -> Result<Rate, BenchError> {
        let bytes = bytes_loop(budget)?;
        Ok(Rate { amount: bytes.amount / put_bytes as f64, elapsed: bytes.elapsed, unit: Unit::PerSecond })
    };
    let rates = interleave(config.rounds, config.bulk, &mut [&mut load, &mut raw_puts])?;
    // With the default epochs, the commit that crosses 64 MiB of WAL checkpoints inline: a
    // short (--quick) load may never pay for one, a long one does.
    let checkpoints = kernel.stats().total.checkpoints;
    Ok(Row {
        workload: format!(
            "Kernel bulk load, {per_txn} puts/commit, {keys} {KEY_BYTES}+{} B, None + 1 sync, {checkpoints} ckpt",
            shape.value_bytes
        ),
        rate: rates[0],
        baseline: format!("raw append loop, {put_bytes} B write per put, puts"),
        baseline_rate: rates[1],
    })
}

// --- Recovery -----------------------------------------------------------------------------

/// A kernel written for the recovery measurement, closed.
struct BuiltKernel {
    dir: PathBuf,
    config: Config,
    /// Every WAL segment file of every shard with the bytes that hold records (the last
    /// segment of a shard is preallocated beyond its end).
    files: Vec<(PathBuf, u64)>,
    puts: u64,
}

impl BuiltKernel {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, len)| len).sum()
    }
}

/// The segment files of the WAL in `dir`, up to its end, as `wal::build_log` finds them. A
/// read-only scan that accepts any store identity: `dir` may be a kernel shard's WAL, whose
/// segments name their store, or a standalone log.
pub fn wal_files(dir: &Path, options: &WalOptions) -> Result<Vec<(PathBuf, u64)>, BenchError> {
    let report = scan::scan(&OsEnv::new(), dir, options.recovery_mode, |_| {})?;
    let Some(end) = report.end else { return Ok(Vec::new()) };
    let mut files = Vec::new();
    for &(id, _) in &report.segments {
        let path = dir.join(format::segment_file_name(id));
        let len = if id == end.segment_id { end.offset } else { std::fs::metadata(&path)?.len() };
        files.push((path, len));
    }
    Ok(files)
}

/// Writes about `bytes` of WAL into a new kernel of `shards` shards with one 1 KiB put per
/// commit (`Durability::None`, one sync at the end) and epochs long enough that no checkpoint
/// is ever due, then closes it.
fn build_kernel(parent: &Path, wal: &WalOptions, shards: u32, bytes: u64) -> Result<BuiltKernel, BenchError> {
    let epochs = EpochConfig {
        ops_max: 1_000_000_000,
        wal_bytes_max: 64 << 30,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    let config = Config::builder().shards(shards).wal_options(wal.clone()).epochs(epochs).build()?;
    let dir = parent.join(format!("kernel-recovery-{shards}"));
    let kernel = Kernel::open(OsEnv::new(), &dir, config.clone())?;
    check_serving(&kernel)?;
    let value = vec![0x5a; RECOVERY_VALUE_BYTES];
    let record_payload = 1 + 1 + 4 + put_log_bytes(RECOVERY_VALUE_BYTES);
    let puts = bytes.div_ceil(format::record_slot_bytes(record_payload));
    for n in 0..puts {
        kernel.put(&key(b"recovery", n), &value, Durability::None)?;
    }
    kernel.close()?;
    let mut files = Vec::new();
    for shard in 0..shards {
        files.extend(wal_files(&layout::shard_dir(&dir, shard).join("wal"), wal)?);
    }
    Ok(BuiltKernel { dir, config, files, puts })
}

/// `Kernel::open` of `built`, once per slice; the rate is in WAL bytes.
fn reopen(built: &BuiltKernel) -> impl FnMut(Budget) -> Result<Rate, BenchError> + '_ {
    move |_budget| {
        let start = Instant::now();
        let kernel = Kernel::open(OsEnv::new(), &built.dir, built.config.clone())?;
        let elapsed = start.elapsed();
        check_serving(&kernel)?;
        let reports = kernel.recovery_reports();
        if let Some(report) = reports.iter().flatten().find(|r| r.checkpoint.is_some()) {
            return Err(format!("recovery used a checkpoint: {report}").into());
        }
        let replayed: u64 = reports.iter().flatten().map(|r| r.records_replayed).sum();
        let entries = kernel.stats().total.entries;
        if replayed != built.puts || entries != built.puts {
            return Err(format!("replayed {replayed} records into {entries} keys, not {}", built.puts).into());
        }
        drop(kernel);
        Ok(Rate { amount: built.bytes() as f64, elapsed, unit: Unit::MibPerSecond })
    }
}

/// Recovery of a kernel of 1 and of 4 shards against a sequential read of its WAL files.
pub fn recovery(config: &crate::Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let mut rows = Vec::new();
    for shards in SHARD_COUNTS {
        let mib = config.recovery_bytes >> 20;
        step(&format!("building a kernel of {shards} shard(s) with {mib} MiB of WAL, no checkpoint"));
        let built = build_kernel(scratch.path(), &config.wal, shards, config.recovery_bytes)?;
        step("Kernel::open and a sequential read of the same WAL files, interleaved");
        let mut open = reopen(&built);
        let mut read = raw::sequential_read(built.files.clone());
        let rates = interleave(config.rounds, config.commits, &mut [&mut open, &mut read])?;
        rows.push(Row {
            workload: format!(
                "recovery, Kernel::open, {shards} shard{}, {} MiB WAL, {RECOVERY_VALUE_BYTES} B puts (warm)",
                if shards == 1 { "" } else { "s" },
                built.bytes() >> 20
            ),
            rate: rates[0],
            baseline: "sequential read, same files (warm)".into(),
            baseline_rate: rates[1],
        });
    }
    Ok(rows)
}
