//! stormhold: an embeddable key-value store for programs that must not lose data.
//!
//! A [`Kernel`] is a store of several shards in one directory. Open it on the real OS with
//! [`env::OsEnv`], write with the [`Durability`] each write needs, and reopen it after any
//! crash: it recovers every acknowledged durable write, shard by shard.
//!
//! ```
//! use stormhold::{Config, Durability, Kernel, KernelError, Router, env::OsEnv};
//!
//! # fn main() -> Result<(), KernelError> {
//! # let temp = tempfile::tempdir().map_err(|e| KernelError::InvalidInput(e.to_string()))?;
//! # let dir = temp.path().join("store");
//! // Keys sharing their first 5 bytes share a shard, so a transaction may span them.
//! let config = Config::builder().shards(4).router(Router::Prefix { len_bytes: 5 }).build()?;
//! let kernel = Kernel::open(OsEnv::new(), &dir, config)?; // creates or recovers
//! kernel.put(b"user:ada", b"Ada Lovelace", Durability::Data)?; // durable when it returns
//! kernel.increment(b"user:count", 1, Durability::Data)?;
//!
//! let mut txn = kernel.begin(); // atomic within one shard
//! txn.put(b"user:alan", b"Alan Turing")?;
//! txn.increment(b"user:count", 1)?;
//! txn.commit(Durability::Data)?;
//! kernel.close()?;
//!
//! // Reopen with the config it was created with; or read-only, writing nothing at all.
//! let kernel = Kernel::open_read_only(OsEnv::new(), &dir)?;
//! assert_eq!(kernel.get(b"user:alan")?, Some(b"Alan Turing".to_vec()));
//! assert_eq!(kernel.get_counter(b"user:count")?, Some(2));
//! println!("{}", kernel.recovery_reports()[0].as_ref().expect("shard 0 recovered"));
//! # Ok(())
//! # }
//! ```
//!
//! Limits: a key is at most [`KEY_BYTES_MAX`] bytes (16 KiB; the empty key is a key like any
//! other), a value at most [`VALUE_BYTES_MAX`] (8 MiB), a transaction at most
//! [`TRANSACTION_BYTES_MAX`] encoded (16 MiB), a document id 1..=[`DOCUMENT_ID_BYTES_MAX`]
//! bytes (1 KiB), a kernel at most [`SHARDS_MAX`] shards. Transactions span one shard only
//! ([`KernelError::CrossShard`]); a failed shard fails alone ([`Kernel::shard_status`]).
//!
//! Every byte of file I/O and every clock reading of the kernel goes through one trait,
//! [`env::Env`]. [`env::OsEnv`] implements it on the real operating system; with the `sim`
//! feature, `env::sim::SimEnv` implements it as a deterministic, seeded, fault-injecting
//! in-memory disk and virtual clock, so the same kernel code can be crashed at any point and
//! its recovered state compared with a reference model.
//!
//! # Crash-testing your own code
//!
//! Your tests can do the same to your code built on a `Kernel` (feature `sim` in your
//! dev-dependencies): run it on a `SimEnv` that crashes at the Nth Env call, restart the
//! simulated machine, reopen and check what you promised. [`Config::for_simulation`] keeps
//! such a test in milliseconds. The README's "Crash-testing your own code on `SimEnv`" and
//! `tests/user_sim_example.rs` go further; the core of it:
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use std::path::Path;
//! use stormhold::env::sim::{CrashMode, FaultOptions, SimEnv};
//! use stormhold::{Config, Durability, Kernel};
//!
//! let open = |env: &SimEnv| Kernel::open(env.clone(), Path::new("/db"), Config::for_simulation().build()?);
//! for call in (1..300).step_by(25) {
//!     let crash = CrashMode::AtCall { call, after: call % 2 == 0 };
//!     let env = SimEnv::new(call, FaultOptions { crash, ..FaultOptions::default() }).unwrap();
//!     let mut acknowledged = Vec::new();
//!     if let Ok(kernel) = open(&env) {
//!         for i in 0..20u32 {
//!             match kernel.put(&i.to_be_bytes(), b"v", Durability::Data) {
//!                 Ok(_) => acknowledged.push(i),
//!                 Err(_) => break, // the crash: every later call fails until restart
//!             }
//!         }
//!     }
//!     env.set_faults_enabled(false);
//!     env.restart(); // a new process on what the power cut left
//!     let kernel = open(&env)?;
//!     for i in acknowledged {
//!         assert_eq!(kernel.get(&i.to_be_bytes())?, Some(b"v".to_vec()), "crash at call {call}");
//!     }
//! }
//! # }
//! # Ok::<(), stormhold::KernelError>(())
//! ```
//!
//! # The public API
//!
//! An embedder needs only the names at the crate root ([`Kernel`], [`Config`] and its
//! [`ConfigBuilder`], [`Durability`], [`Lsn`], [`KernelError`], [`Transaction`], [`Document`],
//! [`SyncHandle`], [`RecoveryReport`], the stats, status and report types, the bounds of the
//! config) and [`env`](mod@env) ([`env::Env`], [`env::EnvFile`], [`env::OsEnv`],
//! [`env::OverlayEnv`] of a read-only open; `SimEnv` with `sim`). The layers below the kernel
//! are not part of that API and may change in any release.
//!
//! # Features
//!
//! - `sim`: the fault-injecting simulated environment, `env::sim` (`SimEnv`, `FaultOptions`).
//! - `internals`: makes the layer modules public, `wal`, `checkpoint`, `recovery`, `shard`
//!   and `kernel` (with `kernel::layout`, `shard::record`, the on-disk formats). It exists for
//!   the project's own crates (the simulator driver `stormhold-sim`, `stormhold-bench` and
//!   the integration tests in `tests/`), which drive each layer on its own. Without it those
//!   modules are crate-private; no stability promise covers them either way.
//!
//! # Layers
//!
//! Each layer imports only those below it (`tests/tidy.rs` enforces the direction):
//!
//! ```text
//! env  <-  wal, checkpoint  <-  recovery  <-  shard  <-  kernel
//! ```
//!
//! Invariants this crate keeps:
//! - no module outside `src/env/os*` touches `std::fs`, real time or OS randomness (the tidy
//!   test `tests/tidy.rs` enforces it);
//! - nothing in `src/` iterates an unordered collection where the order can reach output.

// Three exceptions: in `env/os.rs`, `writeback`, the `sync_file_range` call behind
// `EnvFile::start_writeback`, and `readahead`, the `posix_fadvise` calls behind
// `EnvFile::advise_sequential_read`; in `pages.rs`, the `madvise` call that maps a fresh
// block's pages at once. std exposes none of them. Nothing else may allow it.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod env;
mod identity;
mod pages;

// The layer modules: public with `internals`, crate-private without (see the crate docs).
// Without `internals` the kernel uses only part of each layer's API; the rest serves the
// project's own crates, so dead code there is expected rather than a finding.
#[cfg(feature = "internals")]
pub mod checkpoint;
#[cfg(not(feature = "internals"))]
#[allow(
    dead_code,
    unused_imports,
    reason = "the layer's full API serves sim/, bench/ and tests/ via `internals`"
)]
mod checkpoint;
#[cfg(feature = "internals")]
pub mod kernel;
#[cfg(not(feature = "internals"))]
#[allow(
    dead_code,
    unused_imports,
    reason = "the layer's full API serves sim/, bench/ and tests/ via `internals`"
)]
mod kernel;
#[cfg(feature = "internals")]
pub mod recovery;
#[cfg(not(feature = "internals"))]
#[allow(
    dead_code,
    unused_imports,
    reason = "the layer's full API serves sim/, bench/ and tests/ via `internals`"
)]
mod recovery;
#[cfg(feature = "internals")]
pub mod shard;
#[cfg(not(feature = "internals"))]
#[allow(
    dead_code,
    unused_imports,
    reason = "the layer's full API serves sim/, bench/ and tests/ via `internals`"
)]
mod shard;
#[cfg(feature = "internals")]
pub mod wal;
#[cfg(not(feature = "internals"))]
#[allow(
    dead_code,
    unused_imports,
    reason = "the layer's full API serves sim/, bench/ and tests/ via `internals`"
)]
mod wal;

// The embedder's API. Everything a `Kernel` method takes or returns is nameable from here.
pub use checkpoint::epoch::{
    DURATION_MAX_MS_RANGE, EpochConfig, EpochError, HISTORY_LEN_MAX_RANGE, OPS_MAX_RANGE, REPLAY_BYTES_MAX,
    SEALING_MAX_RANGE, WAL_BYTES_MAX_RANGE,
};
pub use checkpoint::{
    CheckpointError, CheckpointKind, CheckpointOptions, Fallback, FallbackReason, INCREMENTALS_MAX,
    RETAINED_MAX, Unusable,
};
#[cfg(feature = "sim")]
pub use env::sim::SimEnv;
pub use identity::StoreIdentity;
pub use kernel::{
    CommitInfo, Config, ConfigBuilder, DOCUMENT_ID_BYTES_MAX, Document, DurableResult, Entries,
    KEY_BYTES_MAX, Kernel, KernelError, KernelStats, ProgressCallback, ReopenRefusal, Router, SHARDS_MAX,
    SyncHandle, TRANSACTION_BYTES_MAX, TickReport, Ticker, Transaction, VALUE_BYTES_MAX,
};
pub use recovery::{CheckpointUsed, RecoveryError, RecoveryReport};
pub use shard::{Failure, RecoveryProgress, ShardError, ShardOptions, ShardStats, ShardStatus, SyncState};
pub use wal::{
    Dropped, Durability, Lsn, RecoveryMode, SEGMENT_SIZE_BYTES_MAX, SEGMENT_SIZE_BYTES_MIN, WalError,
    WalOptions,
};
