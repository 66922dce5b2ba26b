//! The key-value stores under test, each an adapter that implements [`super::KvStore`].
//!
//! Owns the adapters only: [`toy`] (a one-file log with planted bugs, the checker's power
//! test), [`wal_store`] (the real WAL, its record format and replay in [`replay`]), [`ckpt_store`] (the WAL plus epoch checkpoints, with the
//! audit of checkpoint directories the kernel store shares) and [`kernel_store`] (the whole
//! kernel, its shards as key groups). The workload and the model that judge them live beside
//! this folder ([`super::workload`], [`super::model`], [`super::groups`]).
//!
//! Invariants: a store uses the kernel's decisions, never re-derives them (its audit reads what
//! the code under test wrote); a store reports data loss only as [`super::StoreError::DataLoss`].

pub mod ckpt_store;
pub mod kernel_store;
pub mod replay;
pub mod toy;
pub mod wal_store;
