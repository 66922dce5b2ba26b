//! stormhold: a storage kernel for programs that must not lose data.
//!
//! Every byte of file I/O and every clock reading of the kernel goes through one trait,
//! [`env::Env`]. [`env::OsEnv`] implements it on the real operating system; with the `sim`
//! feature, `env::sim::SimEnv` implements it as a deterministic, seeded, fault-injecting
//! in-memory disk and virtual clock, so the same kernel code can be crashed at any point and
//! its recovered state compared with a reference model.
//!
//! Invariants this crate keeps:
//! - no module outside `src/env/os*` touches `std::fs`, real time or OS randomness (the tidy
//!   test `tests/tidy.rs` enforces it);
//! - nothing in `src/` iterates an unordered collection where the order can reach output.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod checkpoint;
pub mod env;
pub mod kernel;
pub mod recovery;
pub mod shard;
pub mod wal;

pub use kernel::{
    CommitInfo, Config, ConfigBuilder, Document, Kernel, KernelError, KernelStats, Router, SyncHandle,
    TickReport, Ticker, Transaction,
};
pub use shard::{ShardStats, ShardStatus, SyncState};
pub use wal::Durability;
