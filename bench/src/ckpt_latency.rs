//! Commit latency while checkpoints run (issue 11, item 2), printed after the table.
//!
//! - **Steady writer**: one shard holding a large state (16-byte keys, 100-byte values; 256 MiB
//!   of keys and values, 64 MiB with `--quick`), every checkpoint full. A writer commits one
//!   durable put at a time (`Durability::Data`) and times each commit. Turns alternate: the
//!   writer alone on an idle machine; the writer beside a thread that keeps a core busy and
//!   does no I/O (the fair baseline); the writer while another thread runs
//!   `Kernel::checkpoint` back to back (each writes the whole state). Printed: p50, p99,
//!   p99.9 and max of each, syncs per commit, and the ratios of the checkpoint turn to both;
//!   for the slowest 1%, where the time went and how many of them synced a WAL length change
//!   (a preallocation step: its `fdatasync` commits the journal, which on ext4 in ordered
//!   mode waits for the data of every file allocated meanwhile, the checkpoint's included).
//!   Why the busy-CPU baseline: on an idle machine a writer blocked in `fdatasync` is woken
//!   late (idle cores, a virtual machine's halted vCPU), so the writer alone has a p50 several
//!   times that of the same writer beside any busy thread; comparing with it alone credits
//!   the checkpointer with a speed-up that a spinning thread gives too.
//! - **Bulk load across the WAL cap**: a fresh shard with a WAL-bytes cap (16 MiB; 4 MiB with
//!   `--quick`; default checkpoint options: incrementals on a full one every 8) loaded with
//!   the same volume in commits of 1,000 puts (`Durability::None`), each commit timed: once
//!   with a ticker thread (`Kernel::spawn_ticker`, 1 ms) writing the checkpoints the commits
//!   freeze, once without one, where commits write them as paced backpressure
//!   (`shard::checkpointing`), and once with no cap pressure (a cap above the load: no
//!   checkpoint). Printed: max and p99.9 commit latency, the load's total time, the time of
//!   one whole full checkpoint of the loaded state (the wait of a commit past the cap when
//!   backpressure wrote a whole checkpoint), and the longest wait's ratios to both.
//!
//! Nothing is asserted; a figure is only ever compared with another of the same run.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stormhold::checkpoint::CheckpointOptions;
use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::{Config, Durability, Kernel};

use crate::counting::{CountingEnv, thread_sync_ns, thread_wal_resizing_syncs};
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

/// Loads keys `0..keys` in commits of 1,000 puts; returns each commit's latency and parts.
fn bulk_load(kernel: &Kernel<CountingEnv>, keys: u64) -> Result<Vec<Timed>, BenchError> {
    let mut value = [7; VALUE_BYTES];
    let mut commits = Vec::new();
    for start in (0..keys).step_by(PUTS_PER_BULK_COMMIT as usize) {
        let mut txn = kernel.begin();
        for k in start..(start + PUTS_PER_BULK_COMMIT).min(keys) {
            value[..8].copy_from_slice(&k.to_le_bytes());
            txn.put(&key(k), &value)?;
        }
        commits.push(timed_commit(|| {
            txn.commit(Durability::None)?;
            Ok(())
        })?);
    }
    kernel.sync(Durability::Data)?;
    Ok(commits)
}

/// One commit's latency, and the parts of it its own thread spent in syncs of WAL files and
/// of other files (checkpoint steps the commit path took), in ns (see `counting.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timed {
    latency: Duration,
    wal_sync_ns: u64,
    other_sync_ns: u64,
    /// The commit's own WAL sync carried a change of the segment's length (a preallocation
    /// step or a new segment), whose `fdatasync` commits the file system's journal.
    wal_resized: bool,
}

/// Times `commit` and splits its latency (see [`Timed`]).
fn timed_commit(commit: impl FnOnce() -> Result<(), BenchError>) -> Result<Timed, BenchError> {
    let (wal_before, other_before) = thread_sync_ns();
    let resizing_before = thread_wal_resizing_syncs();
    let began = Instant::now();
    commit()?;
    let latency = began.elapsed();
    let (wal_after, other_after) = thread_sync_ns();
    Ok(Timed {
        latency,
        wal_sync_ns: wal_after - wal_before,
        other_sync_ns: other_after - other_before,
        wal_resized: thread_wal_resizing_syncs() > resizing_before,
    })
}

/// Durable single puts over existing keys for `duration`; each commit's latency and parts.
fn steady(
    kernel: &Kernel<CountingEnv>,
    keys: u64,
    duration: Duration,
    next: &mut u64,
) -> Result<Vec<Timed>, BenchError> {
    let mut commits = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        *next = (*next + 7919) % keys;
        let n = *next;
        commits.push(timed_commit(|| {
            kernel.put(&key(n), &[3; VALUE_BYTES], Durability::Data)?;
            Ok(())
        })?);
    }
    Ok(commits)
}

/// Where the slowest 1% of `commits` (sorted) spent their time: the shares in WAL syncs, in
/// other syncs, and elsewhere (lock waits, CPU, a group sync another thread ran).
fn tail_split(commits: &[Timed]) -> String {
    let tail = &commits[(commits.len() * 99 / 100).min(commits.len() - 1)..];
    let total: u128 = tail.iter().map(|c| c.latency.as_nanos()).sum();
    let wal: u128 = tail.iter().map(|c| u128::from(c.wal_sync_ns)).sum();
    let other: u128 = tail.iter().map(|c| u128::from(c.other_sync_ns)).sum();
    let share = |part: u128| 100.0 * part as f64 / total.max(1) as f64;
    let resized = tail.iter().filter(|c| c.wal_resized).count();
    let resized_all = commits.iter().filter(|c| c.wal_resized).count();
    format!(
        "slowest 1%: {:.0}% in WAL fdatasync, {:.0}% in checkpoint syncs, {:.0}% elsewhere; \
         {resized} of {} synced a WAL length change ({resized_all} of all {})",
        share(wal),
        share(other),
        share(total.saturating_sub(wal + other)),
        tail.len(),
        commits.len()
    )
}

/// p50, p99, p99.9 and max of sorted `latencies`, in ms.
fn percentiles(latencies: &[Duration]) -> String {
    let ms = |q: f64| quantile(latencies, q).as_secs_f64() * 1e3;
    format!(
        "p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} commits)",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        ms(1.0),
        latencies.len()
    )
}

/// The `q` quantile of sorted `latencies`.
fn quantile(latencies: &[Duration], q: f64) -> Duration {
    latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)]
}

/// `a / b` at p50, p99 and p99.9, both sorted.
fn ratios(a: &[Duration], b: &[Duration]) -> String {
    let at = |q: f64| quantile(a, q).as_secs_f64() / quantile(b, q).as_secs_f64();
    format!("p50 {:.2}x  p99 {:.2}x  p99.9 {:.2}x", at(0.5), at(0.99), at(0.999))
}

/// Runs `work` on a thread until the returned stop function is called; it returns how many
/// times `work` completed.
fn beside<F>(work: F) -> impl FnOnce() -> Result<u64, BenchError>
where
    F: Fn() -> Result<(), String> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let thread = {
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Acquire) {
                work()?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    move || {
        stop.store(true, Ordering::Release);
        thread.join().map_err(|_| "the thread beside the writer panicked")??;
        Ok(done.load(Ordering::Relaxed))
    }
}

/// A writer's latencies and the syncs and commits the shard counted meanwhile.
#[derive(Default)]
struct Side {
    commits_timed: Vec<Timed>,
    latencies: Vec<Duration>,
    syncs: u64,
    commits: u64,
}

impl Side {
    /// Runs the steady writer for at least `duration` and until `enough` holds.
    fn run(
        &mut self,
        kernel: &Kernel<CountingEnv>,
        keys: u64,
        duration: Duration,
        next: &mut u64,
        enough: impl Fn() -> bool,
    ) -> Result<(), BenchError> {
        let before = kernel.stats().total;
        let began = Instant::now();
        while began.elapsed() < duration || !enough() {
            self.commits_timed.extend(steady(kernel, keys, Duration::from_millis(50), next)?);
        }
        let after = kernel.stats().total;
        self.syncs += after.syncs - before.syncs;
        self.commits += after.commits - before.commits;
        Ok(())
    }

    fn line(&mut self, name: &str) -> String {
        self.commits_timed.sort_unstable();
        self.latencies = self.commits_timed.iter().map(|c| c.latency).collect();
        let per_commit = self.syncs as f64 / self.commits.max(1) as f64;
        format!(
            "  {name:<24} {}, {per_commit:.2} syncs per commit\n  {:<24} {}\n",
            percentiles(&self.latencies),
            "",
            tail_split(&self.commits_timed)
        )
    }
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
    let every_one_full =
        CheckpointOptions { max_retained: 2, full_every_incrementals: 0, ..CheckpointOptions::default() };
    let kernel = Arc::new(Kernel::open(CountingEnv::new(), dir, config(64 << 30, every_one_full)?)?);
    bulk_load(&kernel, keys)?;
    kernel.checkpoint()?;
    step("checkpoint latency: a steady durable writer: alone, beside a busy CPU, beside checkpoints");
    let (mut alone, mut spun, mut checkpointed) = (Side::default(), Side::default(), Side::default());
    let (mut next, mut checkpoints) = (0, 0);
    let turn = duration / rounds;
    for _ in 0..rounds {
        alone.run(&kernel, keys, turn, &mut next, || true)?;
        // The fair baseline: a thread that keeps a core busy, as the checkpointer does, but
        // does no I/O (an idle machine wakes a writer blocked in fdatasync late).
        let stop = beside(|| {
            let began = Instant::now();
            while began.elapsed() < Duration::from_millis(1) {
                std::hint::spin_loop();
            }
            Ok(())
        });
        spun.run(&kernel, keys, turn, &mut next, || true)?;
        stop()?;
        let counter = Arc::new(AtomicU64::new(0));
        let stop = {
            let (kernel, counter) = (Arc::clone(&kernel), Arc::clone(&counter));
            beside(move || {
                kernel.checkpoint().map_err(|e| e.to_string())?;
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
        };
        // At least one whole checkpoint under the writer, however long it takes.
        checkpointed.run(&kernel, keys, turn, &mut next, || counter.load(Ordering::Relaxed) >= 1)?;
        checkpoints += stop()?;
    }
    let mut out =
        format!("commit latency, 1 durable writer, state {} MiB, full checkpoints:\n", state_bytes >> 20);
    out.push_str(&alone.line("alone (idle machine):"));
    out.push_str(&spun.line("beside a busy CPU:"));
    out.push_str(&checkpointed.line("beside checkpoints:"));
    let _ = writeln!(
        out,
        "  beside checkpoints / beside a busy CPU: {}",
        ratios(&checkpointed.latencies, &spun.latencies)
    );
    let _ =
        writeln!(out, "  beside checkpoints / alone: {}", ratios(&checkpointed.latencies, &alone.latencies));
    let _ = writeln!(out, "  {checkpoints} checkpoints completed under the writer");
    Ok(out)
}

/// One bulk load across the cap, with or without a ticker; max, p99.9, total (and the max,
/// in seconds).
fn capped_load(dir: &Path, keys: u64, wal_bytes_max: u64, ticker: bool) -> Result<(String, f64), BenchError> {
    let kernel = Arc::new(Kernel::open(
        CountingEnv::new(),
        dir,
        config(wal_bytes_max, CheckpointOptions::default())?,
    )?);
    let ticker = ticker.then(|| Kernel::spawn_ticker(Arc::clone(&kernel), Duration::from_millis(1)));
    let began = Instant::now();
    let mut commits = bulk_load(&kernel, keys)?;
    let total = began.elapsed();
    drop(ticker);
    let stats = kernel.stats().total;
    commits.sort_unstable();
    let latencies: Vec<Duration> = commits.iter().map(|c| c.latency).collect();
    let at = latencies[((latencies.len() as f64 * 0.999) as usize).min(latencies.len() - 1)];
    let max = latencies[latencies.len() - 1].as_secs_f64();
    let line = format!(
        "max {:.1} ms  p99.9 {:.1} ms  total {:.2} s  ({} commits, {} checkpoints, {} backpressure steps)\n  {:<27} {}",
        max * 1e3,
        at.as_secs_f64() * 1e3,
        total.as_secs_f64(),
        latencies.len(),
        stats.checkpoints,
        stats.backpressure_steps,
        "",
        tail_split(&commits)
    );
    Ok((line, max))
}

/// Reopens the store in `dir` and times one full checkpoint of it, in seconds.
fn whole_checkpoint(dir: &Path) -> Result<f64, BenchError> {
    let every_one_full =
        CheckpointOptions { max_retained: 2, full_every_incrementals: 0, ..CheckpointOptions::default() };
    let kernel = Kernel::open(CountingEnv::new(), dir, config(64 << 30, every_one_full)?)?;
    let began = Instant::now();
    kernel.checkpoint()?;
    Ok(began.elapsed().as_secs_f64())
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
    let (with, _) = capped_load(&scratch.path().join("ticker"), keys, cap, true)?;
    let (without, without_max) = capped_load(&scratch.path().join("inline"), keys, cap, false)?;
    // The same load with no cap pressure: a cap above the load, so no checkpoint runs; then
    // one whole full checkpoint of the loaded state, what a commit past the cap waited for
    // when backpressure wrote a whole checkpoint.
    let (free, free_max) = capped_load(&scratch.path().join("uncapped"), keys, 64 << 30, false)?;
    let whole = whole_checkpoint(&scratch.path().join("uncapped"))?;
    let _ = writeln!(
        out,
        "bulk load of {} MiB, 1,000 puts per commit, WAL cap {} MiB, per-commit latency:",
        state_bytes >> 20,
        cap >> 20
    );
    let _ = writeln!(out, "  ticker writes checkpoints: {with}");
    let _ = writeln!(out, "  no ticker (commit writes): {without}");
    let _ = writeln!(out, "  no cap pressure (no ckpt): {free}");
    let _ = writeln!(out, "  one whole full checkpoint of the loaded state: {:.1} ms", whole * 1e3);
    let _ = writeln!(
        out,
        "  longest commit wait, no ticker past the cap / no cap pressure: {:.2}x; / a whole checkpoint: {:.2}x",
        without_max / free_max,
        without_max / whole
    );
    Ok(out)
}
