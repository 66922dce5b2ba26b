//! stormhold: a storage kernel for programs that must not lose data.
//!
//! Every byte of file I/O and every clock reading of the kernel goes through one trait,
//! [`env::Env`]. [`env::OsEnv`] implements it on the real operating system; with the `sim`
//! feature, `env::sim::SimEnv` implements it as a deterministic, seeded, fault-injecting
//! in-memory disk and virtual clock, so the same kernel code can be crashed at any point and
//! its recovered state compared with a reference model.
//!
//! # The public API
//!
//! An embedder needs only the names at the crate root ([`Kernel`], [`Config`] and its
//! [`ConfigBuilder`], [`Durability`], [`Lsn`], [`KernelError`], [`Transaction`], [`Document`],
//! [`SyncHandle`], the stats, status and report types, the bounds of the config) and
//! [`env`](mod@env) ([`env::Env`], [`env::EnvFile`], [`env::OsEnv`]; `SimEnv` with `sim`).
//! The layers below the kernel are not part of that API and may change in any release.
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

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod env;

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
pub use kernel::{
    CommitInfo, Config, ConfigBuilder, DOCUMENT_ID_BYTES_MAX, Document, DurableResult, Entries,
    KEY_BYTES_MAX, Kernel, KernelError, KernelStats, ProgressCallback, Router, SHARDS_MAX, SyncHandle,
    TickReport, Ticker, Transaction, VALUE_BYTES_MAX,
};
pub use recovery::{CheckpointUsed, RecoveryError, RecoveryReport};
pub use shard::{Failure, RecoveryProgress, ShardError, ShardOptions, ShardStats, ShardStatus, SyncState};
pub use wal::{
    Dropped, Durability, Lsn, RecoveryMode, SEGMENT_SIZE_BYTES_MAX, SEGMENT_SIZE_BYTES_MIN, WalError,
    WalOptions,
};
