//! The kernel's workloads: the WAL on `OsEnv`, exactly as a user would drive it. Each is set
//! up once and then measured in slices (see `harness::interleave`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use stormhold::env::OsEnv;
use stormhold::wal::format::{self, Lsn};
use stormhold::wal::shared::SharedWal;
use stormhold::wal::{Durability, RecordKind, Wal, WalOptions};

use crate::harness::{BenchError, Budget, Contender, Rate, Unit, run_writers, timed};

fn open(dir: &Path, options: &WalOptions) -> Result<Wal<OsEnv>, BenchError> {
    Ok(Wal::open(OsEnv::new(), dir, options.clone(), |_| {})?.0)
}

/// Single writer: append a record and `sync(Data)` it, in a loop.
pub fn single_writer(
    dir: &Path,
    options: &WalOptions,
    payload_bytes: usize,
) -> Result<impl FnMut(Budget) -> Result<Rate, BenchError>, BenchError> {
    let mut wal = open(&dir.join("wal-single"), options)?;
    let payload = vec![0x5a; payload_bytes];
    let mut prev: Lsn = 0;
    Ok(move |budget| {
        timed(budget, Unit::PerSecond, || {
            prev = wal.append(RecordKind::Data, 1, prev, &payload)?;
            wal.sync(Durability::Data)?;
            Ok(())
        })
    })
}

/// `threads` writers committing durably through one [`SharedWal`].
pub struct SharedWriters {
    wal: SharedWal<OsEnv>,
    threads: usize,
    payload: Vec<u8>,
    txn: AtomicU64,
}

impl SharedWriters {
    /// A fresh log in `dir` for `threads` writers of `payload_bytes` each.
    pub fn new(
        dir: &Path,
        options: &WalOptions,
        threads: usize,
        payload_bytes: usize,
    ) -> Result<Self, BenchError> {
        let wal_dir = dir.join(format!("wal-shared-{threads}"));
        let (wal, _) = SharedWal::open(OsEnv::new(), &wal_dir, options.clone(), |_| {})?;
        Ok(Self { wal, threads, payload: vec![0x5a; payload_bytes], txn: AtomicU64::new(1) })
    }

    /// Records per sync so far (group-commit batch).
    pub fn average_batch(&self) -> Result<f64, BenchError> {
        Ok(self.wal.stats()?.average_batch())
    }
}

impl Contender for SharedWriters {
    fn slice(&mut self, budget: Budget) -> Result<Rate, BenchError> {
        let this = &*self;
        run_writers(self.threads, budget, || {
            let txn_id = this.txn.fetch_add(1, Ordering::Relaxed);
            this.wal.commit(RecordKind::Data, txn_id, 0, &this.payload, Durability::Data)?;
            Ok(())
        })
    }
}

/// Appends without syncing (`Durability::None`), then one sync per slice. The rate is in log
/// bytes (record slots).
pub fn bulk_append(
    dir: &Path,
    options: &WalOptions,
    payload_bytes: usize,
) -> Result<impl FnMut(Budget) -> Result<Rate, BenchError>, BenchError> {
    let mut wal = open(&dir.join("wal-bulk"), options)?;
    let payload = vec![0x5a; payload_bytes];
    Ok(move |budget| {
        let bytes_before = wal.stats().bytes;
        let start = Instant::now();
        timed(budget, Unit::PerSecond, || {
            wal.append(RecordKind::Data, 1, 0, &payload)?;
            Ok(())
        })?;
        wal.sync(Durability::Data)?;
        let bytes = wal.stats().bytes - bytes_before;
        Ok(Rate { amount: bytes as f64, elapsed: start.elapsed(), unit: Unit::MibPerSecond })
    })
}

/// The bytes a record with `payload_bytes` of payload takes in a segment.
pub fn record_slot_bytes(payload_bytes: usize) -> usize {
    format::record_slot_bytes(payload_bytes) as usize
}

/// A log built for the recovery measurement.
pub struct BuiltLog {
    /// Its directory.
    pub dir: PathBuf,
    /// The options it was written with.
    pub options: WalOptions,
    /// The segment files and the bytes of each that hold records (the last one is
    /// preallocated beyond its end).
    pub files: Vec<(PathBuf, u64)>,
    /// Records in it.
    pub records: u64,
}

impl BuiltLog {
    /// The bytes of all segment files up to the end of the log.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, len)| len).sum()
    }
}

/// Builds a log of about `bytes` of `payload_bytes` records, synced and closed.
pub fn build_log(
    dir: &Path,
    options: &WalOptions,
    bytes: u64,
    payload_bytes: usize,
) -> Result<BuiltLog, BenchError> {
    let dir = dir.join("wal-recovery");
    let mut wal = open(&dir, options)?;
    let payload = vec![0x5a; payload_bytes];
    while wal.stats().bytes < bytes {
        wal.append(RecordKind::Data, 1, 0, &payload)?;
    }
    wal.sync(Durability::Data)?;
    let records = wal.stats().records;
    drop(wal);
    let (_, report) = Wal::open(OsEnv::new(), &dir, options.clone(), |_| {})?;
    let end = report.end.ok_or("the built log has no segment")?;
    let mut files = Vec::new();
    for &(id, _) in &report.segments {
        let path = dir.join(format::segment_file_name(id));
        let len = if id == end.segment_id { end.offset } else { std::fs::metadata(&path)?.len() };
        files.push((path, len));
    }
    Ok(BuiltLog { dir, options: options.clone(), files, records })
}

/// Reopens the log with [`Wal::open_borrowed`] (the recovery scan as recovery runs it: records
/// borrowed from the read window), once per slice; the rate is in log bytes.
pub fn recover(log: &BuiltLog) -> impl FnMut(Budget) -> Result<Rate, BenchError> + '_ {
    move |_budget| {
        let mut records = 0;
        let start = Instant::now();
        // The borrowed scan, as `recovery::recover` (every shard) runs it.
        let (wal, report) = Wal::open_borrowed(OsEnv::new(), &log.dir, log.options.clone(), |record| {
            records += 1;
            std::hint::black_box(record);
        })?;
        let elapsed = start.elapsed();
        drop(wal);
        if records != log.records || report.records != log.records {
            return Err(format!("recovered {records} of {} records", log.records).into());
        }
        Ok(Rate { amount: log.bytes() as f64, elapsed, unit: Unit::MibPerSecond })
    }
}

/// For profiling (`--scan-wal DIR MIB ROUNDS`): builds a log of `mib` MiB of 1 KiB records in
/// `dir` unless one is there, then scans it `rounds` times with [`Wal::open_borrowed`]; returns
/// a line with the records and the rate of the last round.
pub fn scan_child(dir: &Path, mib: u64, rounds: u32) -> Result<String, BenchError> {
    let options = WalOptions::default();
    let log_dir = dir.join("wal-recovery");
    let log = if log_dir.exists() {
        let (wal, report) = Wal::open(OsEnv::new(), &log_dir, options.clone(), |_| {})?;
        drop(wal);
        let end = report.end.ok_or("the log has no segment")?;
        let mut files = Vec::new();
        for &(id, _) in &report.segments {
            let path = log_dir.join(format::segment_file_name(id));
            let len = if id == end.segment_id { end.offset } else { std::fs::metadata(&path)?.len() };
            files.push((path, len));
        }
        BuiltLog { dir: log_dir, options, files, records: report.records }
    } else {
        build_log(dir, &options, mib << 20, 1024)?
    };
    let (mut scan, mut read) = (recover(&log), crate::raw::sequential_read(log.files.clone()));
    let budget = Budget { count_max: 1, duration: std::time::Duration::from_secs(1) };
    let (mut scans, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        scans.push(scan(budget)?.per_second() / f64::from(1 << 20));
        reads.push(read(budget)?.per_second() / f64::from(1 << 20));
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    };
    let (scan, read) = (median(&mut scans), median(&mut reads));
    Ok(format!("records={} scan MiB/s={scan:.0} read MiB/s={read:.0} ratio={:.2}", log.records, scan / read))
}
