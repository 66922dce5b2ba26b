//! Commit latency while checkpoints run (issue 11, item 2), printed after the table.
//!
//! - **Steady writer**: one shard holding a large state (16-byte keys, 100-byte values; 256 MiB
//!   of keys and values, 32 MiB with `--quick`), every checkpoint full. A writer commits one
//!   durable put at a time (`Durability::Data`) and times each commit. Turns alternate: the
//!   writer alone, then the writer while another thread runs `Kernel::checkpoint` back to back
//!   (each writes the whole state). Printed: p50, p99, p99.9 and max of each, the ratio of the
//!   two p99s, and how many checkpoints completed under the writer.
//! - **Bulk load across the WAL cap**: a fresh shard with a WAL-bytes cap (16 MiB; 4 MiB with
//!   `--quick`; default checkpoint options: incrementals on a full one every 8) loaded with
//!   the same volume in commits of 1,000 puts (`Durability::None`),
//!   each commit timed: once with a ticker thread (`Kernel::spawn_ticker`, 1 ms) writing the
//!   checkpoints the commits freeze, once without one, where the commit path itself writes
//!   them (the backpressure of `shard::checkpointing`; the old inline behaviour). Printed: max
//!   and p99.9 commit latency and the load's total time.
//!
//! Nothing is asserted; a figure is only ever compared with another of the same run.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stormhold::checkpoint::CheckpointOptions;
use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::env::OsEnv;
use stormhold::{Config, Durability, Kernel};

use crate::harness::{BenchError, Scratch};
use crate::step;

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
const PUTS_PER_BULK_COMMIT: u64 = 1000;

fn key(n: u64) -> [u8; KEY_BYTES] {
    let mut key = [0; KEY_BYTES];
    key[..8].copy_from_slice(b"latency:");
    key[8..].copy_from_slice(&n.to_be_bytes());
    key
}

fn config(wal_bytes_max: u64, checkpoints: CheckpointOptions) -> Result<Config, BenchError> {
    let epochs = EpochConfig {
        ops_max: 1_000_000_000,
        wal_bytes_max,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    Ok(Config::builder().shards(1).epochs(epochs).checkpoint_options(checkpoints).build()?)
}

/// Loads keys `0..keys` in commits of 1,000 puts; returns each commit's latency.
fn bulk_load(kernel: &Kernel<OsEnv>, keys: u64) -> Result<Vec<Duration>, BenchError> {
    let mut value = [7; VALUE_BYTES];
    let mut latencies = Vec::new();
    for start in (0..keys).step_by(PUTS_PER_BULK_COMMIT as usize) {
        let mut txn = kernel.begin();
        for k in start..(start + PUTS_PER_BULK_COMMIT).min(keys) {
            value[..8].copy_from_slice(&k.to_le_bytes());
            txn.put(&key(k), &value)?;
        }
        let began = Instant::now();
        txn.commit(Durability::None)?;
        latencies.push(began.elapsed());
    }
    kernel.sync(Durability::Data)?;
    Ok(latencies)
}

/// Durable single puts over existing keys for `duration`; each commit's latency.
fn steady(
    kernel: &Kernel<OsEnv>,
    keys: u64,
    duration: Duration,
    next: &mut u64,
) -> Result<Vec<Duration>, BenchError> {
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        *next = (*next + 7919) % keys;
        let began = Instant::now();
        kernel.put(&key(*next), &[3; VALUE_BYTES], Durability::Data)?;
        latencies.push(began.elapsed());
    }
    Ok(latencies)
}

/// p50, p99, p99.9 and max of `latencies`, in ms.
fn percentiles(latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} commits)",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(0.999)),
        ms(latencies[latencies.len() - 1]),
        latencies.len()
    )
}

/// The p99 of sorted `latencies`, in seconds.
fn p99(latencies: &[Duration]) -> f64 {
    latencies[((latencies.len() as f64 * 0.99) as usize).min(latencies.len() - 1)].as_secs_f64()
}

/// The steady-writer comparison (see the module docs).
fn steady_writer(
    dir: &Path,
    state_bytes: u64,
    duration: Duration,
    rounds: u32,
) -> Result<String, BenchError> {
    let keys = state_bytes / (KEY_BYTES + VALUE_BYTES) as u64;
    step(&format!("checkpoint latency: loading {} MiB", state_bytes >> 20));
    let every_one_full = CheckpointOptions { max_retained: 2, full_every_incrementals: 0 };
    let kernel = Arc::new(Kernel::open(OsEnv::new(), dir, config(64 << 30, every_one_full)?)?);
    bulk_load(&kernel, keys)?;
    kernel.checkpoint()?;
    step("checkpoint latency: a steady durable writer, alone and beside back-to-back checkpoints");
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    let checkpoints = Arc::new(AtomicU64::new(0));
    let mut next = 0;
    for _ in 0..rounds {
        alone.extend(steady(&kernel, keys, duration / rounds, &mut next)?);
        let stop = Arc::new(AtomicBool::new(false));
        let checkpointer = {
            let (kernel, stop, checkpoints) =
                (Arc::clone(&kernel), Arc::clone(&stop), Arc::clone(&checkpoints));
            std::thread::spawn(move || -> Result<(), String> {
                while !stop.load(Ordering::Acquire) {
                    kernel.checkpoint().map_err(|e| e.to_string())?;
                    checkpoints.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        };
        // At least one whole checkpoint under the writer, however long it takes.
        let before = checkpoints.load(Ordering::Relaxed);
        let began = Instant::now();
        while began.elapsed() < duration / rounds || checkpoints.load(Ordering::Relaxed) < before + 1 {
            beside.extend(steady(&kernel, keys, Duration::from_millis(50), &mut next)?);
        }
        stop.store(true, Ordering::Release);
        checkpointer.join().map_err(|_| "the checkpointer panicked")??;
    }
    alone.sort_unstable();
    beside.sort_unstable();
    let ratio = p99(&beside) / p99(&alone);
    let mut out = String::new();
    let _ =
        writeln!(out, "commit latency, 1 durable writer, state {} MiB, full checkpoints:", state_bytes >> 20);
    let _ = writeln!(out, "  alone:                   {}", percentiles(&mut alone));
    let _ = writeln!(out, "  beside checkpoints:      {}", percentiles(&mut beside));
    let _ = writeln!(
        out,
        "  p99 beside / alone: {ratio:.2}x, {} checkpoints completed under the writer",
        checkpoints.load(Ordering::Relaxed)
    );
    Ok(out)
}

/// One bulk load across the cap, with or without a ticker; max, p99.9, total.
fn capped_load(dir: &Path, keys: u64, wal_bytes_max: u64, ticker: bool) -> Result<String, BenchError> {
    let kernel =
        Arc::new(Kernel::open(OsEnv::new(), dir, config(wal_bytes_max, CheckpointOptions::default())?)?);
    let ticker = ticker.then(|| Kernel::spawn_ticker(Arc::clone(&kernel), Duration::from_millis(1)));
    let began = Instant::now();
    let mut latencies = bulk_load(&kernel, keys)?;
    let total = began.elapsed();
    drop(ticker);
    let checkpoints = kernel.stats().total.checkpoints;
    latencies.sort_unstable();
    let at = latencies[((latencies.len() as f64 * 0.999) as usize).min(latencies.len() - 1)];
    Ok(format!(
        "max {:.1} ms  p99.9 {:.1} ms  total {:.2} s  ({} commits, {checkpoints} checkpoints)",
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
        at.as_secs_f64() * 1e3,
        total.as_secs_f64(),
        latencies.len()
    ))
}

/// The whole section (see the module docs).
pub fn section(
    scratch: &Scratch,
    state_bytes: u64,
    duration: Duration,
    rounds: u32,
) -> Result<String, BenchError> {
    let mut out = steady_writer(&scratch.path().join("steady"), state_bytes, duration, rounds)?;
    let keys = state_bytes / (KEY_BYTES + VALUE_BYTES) as u64;
    let cap = if state_bytes >= 256 << 20 { 16 << 20 } else { 4 << 20 };
    step("checkpoint latency: a bulk load across the WAL cap, with a ticker and without");
    let with = capped_load(&scratch.path().join("ticker"), keys, cap, true)?;
    let without = capped_load(&scratch.path().join("inline"), keys, cap, false)?;
    let _ = writeln!(
        out,
        "bulk load of {} MiB, 1,000 puts per commit, WAL cap {} MiB, per-commit latency:",
        state_bytes >> 20,
        cap >> 20
    );
    let _ = writeln!(out, "  ticker writes checkpoints: {with}");
    let _ = writeln!(out, "  no ticker (commit writes): {without}");
    Ok(out)
}
