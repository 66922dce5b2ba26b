//! `stormhold`: the operator's command for a store directory (RocksDB's `ldb`/`sst_dump` and
//! SQLite's `.recover` are the anchors). It never writes to the store it reads: `inspect`,
//! `verify` and `dump` open it read-only (`Kernel::open_read_only`, a shared lock, every
//! repair in memory), so they work on a read-only directory and beside other readers;
//! `salvage` writes only to the new directory it is given.
//!
//! Exit codes: 0 clean (or done, nothing lost); 1 the store could not be read (not a store,
//! locked by a writer, I/O error); 2 damage found (`verify`) or data lost (`salvage`, `dump`
//! of a store with a failed shard); 64 bad command-line input.

mod files;
mod inspect;
mod salvage;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stormhold::env::OsEnv;
use stormhold::{Kernel, KernelError};

/// Exit code: done, nothing wrong.
pub const EXIT_OK: u8 = 0;
/// Exit code: the store could not be read at all.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: damage found, or data lost.
pub const EXIT_DAMAGE: u8 = 2;
/// Exit code: bad command-line input.
pub const EXIT_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "stormhold",
    version,
    about = "Inspect, verify, dump and salvage a stormhold store; never writes to it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creation config, shards and their state, checkpoints, WAL segments and a dry-run recovery.
    Inspect {
        /// The store directory.
        dir: PathBuf,
    },
    /// Checks every checksum of every file; exit 2 on damage, naming file and offset.
    Verify {
        /// The store directory.
        dir: PathBuf,
    },
    /// Every key and value as JSON lines (bytes escaped as in Rust's `escape_ascii`).
    Dump {
        /// The store directory.
        dir: PathBuf,
        /// Only keys starting with this (as text).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Copies everything recoverable into a new store, failed shards included, and prints
    /// exactly what was lost.
    Salvage {
        /// The damaged store directory (read only).
        dir: PathBuf,
        /// The new store directory (must not hold a store).
        #[arg(long)]
        to: PathBuf,
    },
}

/// A failure that ends the command, with its exit code.
pub struct Fail {
    code: u8,
    message: String,
}

impl Fail {
    /// The store could not be read.
    pub fn error(message: impl std::fmt::Display) -> Self {
        Self { code: EXIT_ERROR, message: message.to_string() }
    }

    /// Damage or loss.
    pub fn damage(message: impl std::fmt::Display) -> Self {
        Self { code: EXIT_DAMAGE, message: message.to_string() }
    }
}

impl From<KernelError> for Fail {
    fn from(error: KernelError) -> Self {
        Fail::error(error)
    }
}

/// Opens `dir` read-only on the real OS.
pub fn open(dir: &std::path::Path) -> Result<Kernel<stormhold::env::OverlayEnv<OsEnv>>, Fail> {
    Kernel::open_read_only(OsEnv::new(), dir)
        .map_err(|e| Fail::error(format!("cannot open {}: {e}", dir.display())))
}

fn dump(dir: &std::path::Path, prefix: Option<&str>) -> Result<u8, Fail> {
    let kernel = open(dir)?;
    let entries = match prefix {
        Some(prefix) => kernel.scan_prefix(prefix.as_bytes()),
        None => kernel.scan::<&[u8]>(..),
    }
    .map_err(|e| Fail::damage(format!("{e} (`stormhold salvage` copies what is recoverable)")))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (key, value) in &entries {
        let line = serde_json::json!({
            "key": key.escape_ascii().to_string(),
            "value": value.escape_ascii().to_string(),
        });
        std::io::Write::write_fmt(&mut out, format_args!("{line}\n")).map_err(Fail::error)?;
    }
    std::io::Write::flush(&mut out).map_err(Fail::error)?;
    eprintln!("{} entries", entries.len());
    Ok(EXIT_OK)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let result = match &cli.command {
        Command::Inspect { dir } => inspect::run(dir),
        Command::Verify { dir } => verify::run(dir),
        Command::Dump { dir, prefix } => dump(dir, prefix.as_deref()),
        Command::Salvage { dir, to } => salvage::run(dir, to),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fail { code, message }) => {
            eprintln!("stormhold: {message}");
            ExitCode::from(code)
        }
    }
}
