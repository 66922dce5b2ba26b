//! Peak memory of a bulk load, printed after the table: a child process (this binary re-run
//! with `--bulk-rss-child`) opens a new 1-shard kernel with the default configuration, loads
//! `puts` random 16-byte keys with 100-byte values in transactions of 1,000 puts
//! (`Durability::None`, one final sync) and reports its `VmHWM` from `/proc/self/status`;
//! the parent subtracts the `VmHWM` of a child that loads nothing and divides by the live
//! data (keys plus values). Issue #12's target: at most 1.5x the live data.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;

use stormhold::env::OsEnv;
use stormhold::{Config, Durability, Kernel};

use crate::child::{self, mib, vmhwm_kib};
use crate::harness::{BenchError, Scratch};
use crate::step;

/// Key length of the load, in bytes.
const KEY_BYTES: usize = 16;
/// Value length of the load, in bytes.
const VALUE_BYTES: usize = 100;
/// Puts per transaction.
const PUTS_PER_TXN: u64 = 1000;

/// The n-th key: n scrambled by an invertible mix, so keys are distinct and in random order.
fn key(n: u64) -> [u8; KEY_BYTES] {
    let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let mut key = [0; KEY_BYTES];
    key[..8].copy_from_slice(b"bulkrss:");
    key[8..].copy_from_slice(&(x ^ (x >> 31)).to_be_bytes());
    key
}

/// The child side: loads `puts` puts into a new kernel in `dir`, prints
/// `entries=<n> vmhwm_kib=<n>`.
pub fn child(dir: &Path, puts: u64) -> Result<String, BenchError> {
    let kernel = Kernel::open(OsEnv::new(), dir, Config::builder().shards(1).build()?)?;
    let value = [0x5a; VALUE_BYTES];
    let mut n = 0;
    while n < puts {
        let mut txn = kernel.begin();
        for _ in 0..PUTS_PER_TXN.min(puts - n) {
            txn.put(&key(n), &value)?;
            n += 1;
        }
        txn.commit(Durability::None)?;
    }
    kernel.sync(Durability::Data)?;
    let entries = kernel.stats().total.entries;
    let hwm = vmhwm_kib()?;
    drop(kernel);
    Ok(format!("entries={entries} vmhwm_kib={hwm}"))
}

/// Runs the child on a new directory under `scratch`; returns (entries, VmHWM in bytes).
fn run_child(scratch: &Path, name: &str, puts: u64) -> Result<(u64, u64), BenchError> {
    let dir = scratch.join(name);
    let text = child::run_self(
        "bulk rss",
        [OsStr::new("--bulk-rss-child"), dir.as_os_str(), OsStr::new(&puts.to_string())],
    )?;
    std::fs::remove_dir_all(&dir)?;
    Ok((child::field(&text, "entries=")?, child::field(&text, "vmhwm_kib=")? * 1024))
}

/// The bulk-load memory section.
pub fn section(scratch: &Scratch, puts: u64) -> Result<String, BenchError> {
    let mut out =
        String::from("bulk-load memory (1 shard, 16 B random keys, 100 B values, 1,000 puts/commit):\n");
    if !child::can_rerun_self()? {
        out.push_str("  peak RSS: skipped (needs the stormhold-bench binary to re-run as a child)\n");
        return Ok(out);
    }
    step(&format!("peak RSS of a bulk load of {puts} puts (child processes)"));
    let (_, base) = run_child(scratch.path(), "empty", 0)?;
    let (entries, hwm) = run_child(scratch.path(), "loaded", puts)?;
    if entries != puts {
        return Err(format!("bulk rss child holds {entries} entries, not {puts}").into());
    }
    let live = puts * (KEY_BYTES + VALUE_BYTES) as u64;
    let added = hwm.saturating_sub(base);
    let _ = writeln!(
        out,
        "  {puts} puts, live {}: peak RSS {} (child VmHWM minus an empty load's {}) = {:.2}x live (target <= 1.5x)",
        mib(live),
        mib(added),
        mib(base),
        added as f64 / live as f64
    );
    Ok(out)
}
