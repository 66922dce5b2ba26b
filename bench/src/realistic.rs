//! Recovery and footprint of a realistic store (issue 11): 16-byte keys, 100-byte values,
//! loaded with one put per commit (`Durability::None`, one sync at the end of each round), one
//! checkpoint, then a WAL tail that overwrites a quarter of the keys.
//!
//! - `Kernel::open` MiB/s of such a store on 1 and on 4 shards, against a warm sequential read
//!   of the same bytes (the checkpoint files plus the WAL up to its end); the rate of both is
//!   those bytes over the time taken;
//! - disk footprint (allocated blocks, `st_blocks * 512`, of every file under the store) of an
//!   empty 4-shard store and of a 4-shard store holding a given volume of live data;
//! - peak RSS of recovery at two WAL lengths with the same live data: a child process (this
//!   binary re-run with `--rss-child`) opens the store and reports `VmHWM` from
//!   `/proc/self/status`; the parent subtracts the `VmHWM` of a child that opens an empty store
//!   (the process's own baseline), so the figure is what recovery added.
//!
//! Nothing here is asserted about speed; the figures are printed with their ratios.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::env::OsEnv;
use stormhold::kernel::layout;
use stormhold::{Config, Durability, Kernel};

use crate::child::{self, mib};
use crate::harness::{BenchError, Budget, Rate, Row, Scratch, Unit, interleave};
use crate::{raw, step};

/// Key length, in bytes.
const KEY_BYTES: usize = 16;
/// Value length, in bytes.
const VALUE_BYTES: usize = 100;

/// Epochs that never fire: the benchmark places its checkpoints itself.
fn quiet_epochs() -> EpochConfig {
    EpochConfig {
        ops_max: 1_000_000_000,
        wal_bytes_max: 64 << 30,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    }
}

fn config(shards: u32) -> Result<Config, BenchError> {
    config_threads(shards, 0)
}

/// [`config`] recovering on `threads` threads (0: as many as the machine has).
fn config_threads(shards: u32, threads: usize) -> Result<Config, BenchError> {
    Ok(Config::builder().shards(shards).epochs(quiet_epochs()).recovery_threads(threads).build()?)
}

fn key(n: u64) -> [u8; KEY_BYTES] {
    let mut key = [0; KEY_BYTES];
    key[..8].copy_from_slice(b"realist:");
    key[8..].copy_from_slice(&n.to_be_bytes());
    key
}

/// Puts keys `from..to` (each value derived from its key and `round`), then syncs.
fn load(kernel: &Kernel<OsEnv>, from: u64, to: u64, round: u8) -> Result<(), BenchError> {
    let mut value = [round; VALUE_BYTES];
    for k in from..to {
        value[..8].copy_from_slice(&k.to_le_bytes());
        kernel.put(&key(k), &value, Durability::None)?;
    }
    kernel.sync(Durability::Data)?;
    Ok(())
}

/// A closed store built for a measurement.
pub struct Built {
    dir: PathBuf,
    shards: u32,
    keys: u64,
    /// The files recovery reads, with the bytes of each it reads.
    files: Vec<(PathBuf, u64)>,
}

impl Built {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, len)| len).sum()
    }
}

/// Every regular file under `dir` with its length, sorted by path.
fn files_under(dir: &Path) -> Result<Vec<(PathBuf, u64)>, BenchError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Allocated bytes (`st_blocks * 512`) of every file under `dir`.
pub fn footprint(dir: &Path) -> Result<u64, BenchError> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for (path, _) in files_under(dir)? {
        total += std::fs::metadata(&path)?.blocks() * 512;
    }
    Ok(total)
}

/// The checkpoint files and WAL records recovery of `dir` reads (WAL segments up to the end of
/// their records, as the scan reports it).
fn recovery_files(dir: &Path, shards: u32) -> Result<Vec<(PathBuf, u64)>, BenchError> {
    let mut files = Vec::new();
    for shard in 0..shards {
        let shard_dir = layout::shard_dir(dir, shard);
        files.extend(files_under(&shard_dir.join("ckpt"))?);
        files.extend(crate::kernel::wal_files(&shard_dir.join("wal"), &Default::default())?);
    }
    Ok(files)
}

/// Builds a store of `keys` keys on `shards` shards: a load, a checkpoint, then
/// `tail_rounds` overwrites of the first quarter of the keys (the WAL tail).
pub fn build(
    parent: &Path,
    name: &str,
    shards: u32,
    keys: u64,
    tail_rounds: u8,
) -> Result<Built, BenchError> {
    let dir = parent.join(name);
    let kernel = Kernel::open(OsEnv::new(), &dir, config(shards)?)?;
    load(&kernel, 0, keys, 0)?;
    kernel.checkpoint()?;
    for round in 1..=tail_rounds {
        load(&kernel, 0, keys / 4, round)?;
    }
    kernel.close()?;
    let files = recovery_files(&dir, shards)?;
    Ok(Built { dir, shards, keys, files })
}

/// `Kernel::open` of `built` on `threads` recovery threads (0: as many as the machine has),
/// checked to hold every key; the rate is in recovered bytes.
fn reopen(built: &Built, threads: usize) -> impl FnMut(Budget) -> Result<Rate, BenchError> + '_ {
    move |_budget| {
        let start = Instant::now();
        let kernel = Kernel::open(OsEnv::new(), &built.dir, config_threads(built.shards, threads)?)?;
        let elapsed = start.elapsed();
        if let Some(status) = kernel.shard_status().into_iter().find(|s| s.failed.is_some()) {
            return Err(format!("shard {} is failed: {:?}", status.shard, status.failed).into());
        }
        let entries = kernel.stats().total.entries;
        if entries != built.keys {
            return Err(format!("recovered {entries} keys, not {}", built.keys).into());
        }
        drop(kernel);
        Ok(Rate { amount: built.bytes() as f64, elapsed, unit: Unit::MibPerSecond })
    }
}

/// `Kernel::open` of `built` on `threads` recovery threads in a fresh child process (the
/// child's own open time), so no open inherits the allocator state another left: in one
/// process, opens on one thread and on several alternate between malloc's main arena and
/// its thread arenas, each keeping the memory the other freed (peak RSS doubled, and the
/// parallel open measured slower than the serial one, 0.74x and 0.78x). In-process where
/// the binary cannot re-run itself (under `cargo test`).
fn reopen_in_child(built: &Built, threads: usize) -> impl FnMut(Budget) -> Result<Rate, BenchError> + '_ {
    let mut in_process = reopen(built, threads);
    move |budget| {
        if !child::can_rerun_self()? {
            return in_process(budget);
        }
        let out = std::process::Command::new(std::env::current_exe()?)
            .args([OsStr::new("--rss-child"), built.dir.as_os_str(), OsStr::new(&built.shards.to_string())])
            .env("STORMHOLD_BENCH_RECOVERY_THREADS", threads.to_string())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("open child failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        if child::field(&text, "keys=")? != built.keys {
            return Err(format!("the open child recovered {text:?}, not {} keys", built.keys).into());
        }
        let elapsed = std::time::Duration::from_micros(child::field(&text, "open_us=")?);
        Ok(Rate { amount: built.bytes() as f64, elapsed, unit: Unit::MibPerSecond })
    }
}

/// `Kernel::open` of a realistic store of `bytes` of live data, 1 and 4 shards, against a
/// sequential read of the same bytes; and the 4-shard open on every core against the same
/// store recovered on one thread (the parallel speedup, same data, same run).
pub fn recovery(config: &crate::Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let keys = config.recovery_bytes / (KEY_BYTES + VALUE_BYTES) as u64;
    let mut rows = Vec::new();
    for shards in [1, 4] {
        step(&format!("building a realistic store: {keys} keys, checkpoint + WAL tail, {shards} shard(s)"));
        let built = build(scratch.path(), &format!("realistic-{shards}"), shards, keys, 1)?;
        step("Kernel::open and a sequential read of the same files, interleaved");
        let mut open = reopen(&built, 0);
        let mut read = raw::sequential_read(built.files.clone());
        let rates = interleave(config.rounds, config.commits, &mut [&mut open, &mut read])?;
        let mut parallel_row = None;
        if shards > 1 {
            step("Kernel::open on every core and on one recovery thread, interleaved, each in a child");
            let mut serial = reopen_in_child(&built, 1);
            let mut parallel = reopen_in_child(&built, 0);
            let pair = interleave(config.rounds, config.commits, &mut [&mut parallel, &mut serial])?;
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            parallel_row = Some(Row {
                workload: format!(
                    "recovery, Kernel::open, {shards} shards on {} threads (target >= {:.1}x one thread)",
                    cores.min(shards as usize),
                    cores.min(shards as usize) as f64 * 0.8
                ),
                rate: pair[0],
                baseline: "the same store, 1 recovery thread (each open in a child)".into(),
                baseline_rate: pair[1],
            });
        }
        rows.push(Row {
            workload: format!(
                "recovery, Kernel::open, {shards} shard{}, {} MiB checkpoint + WAL tail, 16 B keys, 100 B values",
                if shards == 1 { "" } else { "s" },
                built.bytes() >> 20
            ),
            rate: rates[0],
            baseline: "sequential read, same bytes (warm)".into(),
            baseline_rate: rates[1],
        });
        rows.extend(parallel_row);
        std::fs::remove_dir_all(&built.dir)?;
    }
    Ok(rows)
}

/// The child side of the RSS measurement: opens the store in `dir` with `shards` shards and
/// prints `keys=<n> vmhwm_kib=<n> open_us=<n>` (the time of `Kernel::open`).
pub fn rss_child(dir: &Path, shards: u32) -> Result<String, BenchError> {
    // For profiling: STORMHOLD_BENCH_RECOVERY_THREADS sets the recovery threads (default all).
    let threads = std::env::var("STORMHOLD_BENCH_RECOVERY_THREADS").ok().and_then(|t| t.parse().ok());
    // STORMHOLD_BENCH_OPENS opens (and drops) the store that many times first, as the
    // interleaved rows do in one process.
    let opens = std::env::var("STORMHOLD_BENCH_OPENS").ok().and_then(|t| t.parse().ok()).unwrap_or(0);
    for n in 0..opens {
        // Odd opens on one thread with STORMHOLD_BENCH_ALTERNATE (as the parallel row does).
        let alternate = std::env::var_os("STORMHOLD_BENCH_ALTERNATE").is_some() && n % 2 == 1;
        let open_threads = if alternate { 1 } else { threads.unwrap_or(0) };
        let start = Instant::now();
        drop(Kernel::open(OsEnv::new(), dir, config_threads(shards, open_threads)?)?);
        eprintln!("threads={open_threads} open_us={}", start.elapsed().as_micros());
    }
    let start = Instant::now();
    let kernel = Kernel::open(OsEnv::new(), dir, config_threads(shards, threads.unwrap_or(0))?)?;
    let open_us = start.elapsed().as_micros();
    let keys = kernel.stats().total.entries;
    let hwm = child::vmhwm_kib()?;
    drop(kernel);
    Ok(format!("keys={keys} vmhwm_kib={hwm} open_us={open_us}"))
}

/// Runs the child on `dir`; returns (keys, VmHWM in bytes).
fn child_hwm(dir: &Path, shards: u32) -> Result<(u64, u64), BenchError> {
    let text = child::run_self(
        "rss",
        [OsStr::new("--rss-child"), dir.as_os_str(), OsStr::new(&shards.to_string())],
    )?;
    Ok((child::field(&text, "keys=")?, child::field(&text, "vmhwm_kib=")? * 1024))
}

/// The footprint and recovery-memory section, printed after the table.
pub fn section(scratch: &Scratch, live_bytes: u64) -> Result<String, BenchError> {
    let mut out = String::from("footprint and recovery memory (16 B keys, 100 B values, 4 shards):\n");
    step("footprint of an empty 4-shard store");
    let empty = scratch.path().join("empty");
    Kernel::open(OsEnv::new(), &empty, config(4)?)?.close()?;
    let empty_bytes = footprint(&empty)?;
    let _ = writeln!(out, "  empty store on disk: {} (target <= 8 MiB)", mib(empty_bytes));
    let keys = live_bytes / (KEY_BYTES + VALUE_BYTES) as u64;
    let live = keys * (KEY_BYTES + VALUE_BYTES) as u64;
    step(&format!("footprint of a 4-shard store holding {} of keys and values", mib(live)));
    let full = build(scratch.path(), "full", 4, keys, 1)?;
    let full_bytes = footprint(&full.dir)?;
    let _ = writeln!(
        out,
        "  store holding {} live (checkpoint + WAL tail of a quarter): {} on disk = {:.2}x live",
        mib(live),
        mib(full_bytes),
        full_bytes as f64 / live as f64
    );
    std::fs::remove_dir_all(&full.dir)?;
    if !child::can_rerun_self()? {
        out.push_str(
            "  peak RSS of recovery: skipped (needs the stormhold-bench binary to re-run as a child)\n",
        );
        return Ok(out);
    }
    let (_, base_hwm) = child_hwm(&empty, 4)?;
    let _ = writeln!(
        out,
        "  peak RSS of recovery (child VmHWM minus an empty store's {}), same live data {}:",
        mib(base_hwm),
        mib(live)
    );
    for (name, rounds) in [("short", 1u8), ("long", 8)] {
        step(&format!("recovery memory, {name} WAL tail"));
        let built = build(scratch.path(), &format!("rss-{name}"), 4, keys, rounds)?;
        let wal: u64 =
            built.files.iter().filter(|(p, _)| p.to_string_lossy().contains("/wal/")).map(|f| f.1).sum();
        let (got, hwm) = child_hwm(&built.dir, 4)?;
        if got != keys {
            return Err(format!("rss child recovered {got} keys, not {keys}").into());
        }
        let added = hwm.saturating_sub(base_hwm);
        let _ = writeln!(
            out,
            "    WAL tail {} ({rounds} overwrite rounds of a quarter): peak RSS {} = {:.2}x live",
            mib(wal),
            mib(added),
            added as f64 / live as f64
        );
        std::fs::remove_dir_all(&built.dir)?;
    }
    Ok(out)
}
