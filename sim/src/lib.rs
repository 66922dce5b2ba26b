//! stormhold-sim: the simulator driver.
//!
//! Owns: run configuration from a seed (swarm testing), the workloads, their reference models
//! and checkers, the runner that turns a config into a report with a trace hash, sweeps over
//! many seeds, their JSON documents and the merge of sweep pieces, and the `stormhold-sim`
//! command line.
//!
//! The dependency arrow points one way: this crate uses the public API of `stormhold` (with its
//! `sim` feature); the kernel knows nothing of it. The models import only value types from the
//! kernel, never its logic.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aries_workload;
pub mod config;
pub mod corpus;
pub mod cpu_time;
pub mod env_workload;
pub mod images;
pub mod kv;
pub mod merge;
pub mod progress;
pub mod raft_workload;
pub mod report;
pub mod runner;
pub mod seeds;
pub mod shrink;
pub mod sweep;
pub mod sweep_doc;
pub mod verdict;
