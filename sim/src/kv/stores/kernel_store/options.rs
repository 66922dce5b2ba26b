//! The options of the kernel under test: drawn per seed, recorded in the run configuration.
//!
//! Owns [`KernelStoreOptions`], the plain, serialisable record of what a seed drew (a corpus
//! entry keeps it, so changing the drawing never re-pins old entries), and
//! [`KernelStoreConfig`], those options as the kernel's own option types plus the planted
//! mistake.
//!
//! Invariants: [`KernelStoreOptions::from_seed`] draws from its own stream of the seed
//! ([`crate::config::stream::STORE`]), so the options never depend on the workload's draws;
//! every option it draws builds a valid kernel [`Config`] (a panic otherwise is a bug here).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use stormhold::checkpoint::CheckpointOptions;
use stormhold::checkpoint::epoch::EpochConfig;
use stormhold::wal::WalOptions;
use stormhold::{Config, Router};

use super::KernelBug;

/// What one seed's kernel store is opened with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelStoreOptions {
    /// Shards (= key groups), 1..=4.
    pub shards: u32,
    /// WAL segment size, bytes.
    pub segment_size_bytes: u64,
    /// Whether WAL segments are preallocated.
    pub preallocate: bool,
    /// Checkpoints retained.
    pub max_retained: usize,
    /// Incremental checkpoints between two full ones.
    pub full_every_incrementals: u32,
    /// Epoch trigger: operations.
    pub ops_max: u64,
    /// Epoch trigger: WAL bytes.
    pub wal_bytes_max: u64,
    /// Epoch trigger: milliseconds.
    pub duration_max_ms: u64,
    /// Whether `tick` syncs unsynced commits.
    pub sync_on_tick: bool,
}

impl KernelStoreOptions {
    /// The options of `seed`, drawn from their own stream.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(crate::config::stream::STORE);
        let shards = [1, 2, 2, 3, 3, 3, 4, 4, 4, 4][rng.random_range(0..10)];
        let segment_size_bytes = if rng.random_bool(0.5) { 2 * 4096 } else { 4 * 4096 };
        let preallocate = rng.random_bool(0.3);
        let max_retained = rng.random_range(2..=3);
        let full_every_incrementals = rng.random_range(0..=4);
        let ops_max = rng.random_range(4..=64);
        let wal_bytes_max = rng.random_range(4096..=16_384);
        let duration_max_ms = rng.random_range(5..=200);
        let sync_on_tick = rng.random_bool(0.5);
        Self {
            shards,
            segment_size_bytes,
            preallocate,
            max_retained,
            full_every_incrementals,
            ops_max,
            wal_bytes_max,
            duration_max_ms,
            sync_on_tick,
        }
    }
}

/// The options of one seed's kernel, as the kernel's types.
#[derive(Clone, Debug)]
pub struct KernelStoreConfig {
    /// The planted mistake, if any.
    pub bug: KernelBug,
    /// Shards (= key groups), 1..=4.
    pub shards: u32,
    /// WAL options of every shard.
    pub wal: WalOptions,
    /// Checkpoint retention and cadence.
    pub checkpoint: CheckpointOptions,
    /// Epoch triggers.
    pub epochs: EpochConfig,
    /// Whether `tick` syncs unsynced commits.
    pub sync_on_tick: bool,
}

impl KernelStoreConfig {
    /// The options of `seed` ([`KernelStoreOptions::from_seed`]).
    pub fn from_seed(seed: u64, bug: KernelBug) -> Self {
        Self::from_options(&KernelStoreOptions::from_seed(seed), bug)
    }

    /// The store of `options`, with `bug` planted.
    pub fn from_options(options: &KernelStoreOptions, bug: KernelBug) -> Self {
        let wal = WalOptions {
            segment_size_bytes: options.segment_size_bytes,
            preallocate: options.preallocate,
            ..WalOptions::default()
        };
        let checkpoint = CheckpointOptions {
            max_retained: options.max_retained,
            full_every_incrementals: options.full_every_incrementals,
        };
        let epochs = EpochConfig {
            ops_max: options.ops_max,
            wal_bytes_max: options.wal_bytes_max,
            duration_max_ms: options.duration_max_ms,
            ..EpochConfig::default()
        };
        Self { bug, shards: options.shards, wal, checkpoint, epochs, sync_on_tick: options.sync_on_tick }
    }

    pub(super) fn kernel_config(&self) -> Config {
        Config::builder()
            .shards(self.shards)
            .router(Router::Prefix { len_bytes: 1 })
            .wal_options(self.wal.clone())
            .checkpoint_options(self.checkpoint.clone())
            .epochs(self.epochs.clone())
            .recovery_threads(1)
            .sync_on_tick(self.sync_on_tick)
            .build()
            .unwrap_or_else(|invalid| panic!("the kernel store draws an invalid config: {invalid}"))
    }

    pub(super) fn groups(&self) -> usize {
        self.shards as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_and_rebuild_the_same_store() {
        for seed in 0..20 {
            let options = KernelStoreOptions::from_seed(seed);
            let json = serde_json::to_string(&options).expect("serialise");
            assert_eq!(serde_json::from_str::<KernelStoreOptions>(&json).expect("parse"), options);
            let config = KernelStoreConfig::from_options(&options, KernelBug::None);
            assert_eq!(config.shards, options.shards);
            assert_eq!(config.epochs.ops_max, options.ops_max);
            config.kernel_config();
        }
    }
}
