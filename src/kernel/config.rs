//! The kernel's configuration: a validated builder, and the router that maps keys to shards.

use std::fmt;
use std::sync::Arc;

use super::KernelError;
use crate::checkpoint::CheckpointOptions;
use crate::checkpoint::epoch::EpochConfig;
use crate::shard::{RecoveryProgress, ShardOptions};
use crate::wal::WalOptions;

/// Most shards a kernel may have.
pub const SHARDS_MAX: u32 = 1024;
/// Longest key, in bytes. The empty key is accepted.
pub const KEY_BYTES_MAX: usize = 16 * 1024;
/// Longest value, in bytes.
pub const VALUE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest transaction (or document chunk), encoded as one WAL record, in bytes: the keys
/// and values plus a few bytes per write; a larger one is refused with
/// [`crate::ShardError::BatchTooLarge`] before anything is written.
pub const TRANSACTION_BYTES_MAX: usize = crate::wal::format::RECORD_PAYLOAD_BYTES_MAX;
/// Longest document id, in bytes (the shortest is 1).
pub const DOCUMENT_ID_BYTES_MAX: usize = 1024;

/// How keys are mapped to shards. Recorded on disk at creation: reopening with another router
/// is an error, since keys would be looked for in the wrong shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Router {
    /// A stable hash (FNV-1a, 64 bits) of the whole key, modulo the shard count.
    Hash,
    /// A stable hash of the key's first `len_bytes` bytes (all of a shorter key): keys with the
    /// same prefix share a shard, so a transaction over them is allowed and a scan of such a
    /// prefix reads one shard.
    Prefix {
        /// The prefix length, 1..=[`KEY_BYTES_MAX`].
        len_bytes: u32,
    },
}

/// FNV-1a, 64 bits: stable across versions, platforms and runs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Router {
    /// The shard of `key` among `shards`.
    pub fn route(&self, key: &[u8], shards: u32) -> u32 {
        assert!(shards > 0, "a kernel has at least one shard");
        let routed = match *self {
            Router::Hash => key,
            Router::Prefix { len_bytes } => &key[..key.len().min(len_bytes as usize)],
        };
        (fnv1a(routed) % u64::from(shards)) as u32
    }
}

/// A callback for recovery progress.
pub type ProgressCallback = Arc<dyn Fn(&RecoveryProgress) + Send + Sync>;

/// The kernel's configuration; build it with [`Config::builder`].
#[derive(Clone)]
pub struct Config {
    pub(super) shards: u32,
    pub(super) router: Router,
    pub(super) shard: ShardOptions,
    pub(super) recovery_threads: usize,
    pub(super) sync_on_tick: bool,
    pub(super) progress: Option<ProgressCallback>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("shards", &self.shards)
            .field("router", &self.router)
            .field("shard", &self.shard)
            .field("recovery_threads", &self.recovery_threads)
            .field("sync_on_tick", &self.sync_on_tick)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            shards: 4,
            router: Router::Hash,
            shard: ShardOptions {
                wal: WalOptions::default(),
                checkpoint: CheckpointOptions::default(),
                epoch: EpochConfig::default(),
            },
            recovery_threads: 0,
            sync_on_tick: true,
            progress: None,
        }
    }
}

impl Config {
    /// A builder starting from the defaults: 4 shards, hash routing, 64 MiB WAL segments,
    /// default epochs (a checkpoint at least every 100 000 operations, 64 MiB of WAL or 5 s),
    /// 3 retained checkpoints, recovery on as many threads as the `Env` allows, and `tick`
    /// syncing unsynced commits.
    ///
    /// ```
    /// use stormhold::{Config, Router};
    /// let config = Config::builder().shards(8).router(Router::Prefix { len_bytes: 4 }).build()?;
    /// assert_eq!(config.shards(), 8);
    /// # Ok::<(), stormhold::KernelError>(())
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder { config: Config::default() }
    }

    /// A builder for tests on `SimEnv` (the simulated disk keeps every byte in memory and
    /// checks every call): 2 shards, 16 KiB WAL segments, epochs of 64 operations or 16 KiB of
    /// WAL or 1 s, and the rest of the defaults. A create, a put and a close then take
    /// milliseconds in a debug build, where the default 64 MiB preallocated segments take
    /// seconds per shard; and checkpoints, segment rotation and WAL truncation all happen
    /// within a few hundred writes, so a crash test reaches them.
    ///
    /// ```
    /// let config = stormhold::Config::for_simulation().build()?;
    /// assert_eq!(config.shard_options().wal.segment_size_bytes, 16 * 1024);
    /// # Ok::<(), stormhold::KernelError>(())
    /// ```
    pub fn for_simulation() -> ConfigBuilder {
        Config::builder().shards(2).segment_size_bytes(16 * 1024).epochs(EpochConfig {
            ops_max: 64,
            wal_bytes_max: 16 * 1024,
            duration_max_ms: 1000,
            ..EpochConfig::default()
        })
    }

    /// The shard count.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The router.
    pub fn router(&self) -> Router {
        self.router
    }

    /// The options every shard gets.
    pub fn shard_options(&self) -> &ShardOptions {
        &self.shard
    }
}

/// Builds a [`Config`]; [`ConfigBuilder::build`] validates every value.
#[derive(Debug)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Number of shards, 1..=[`SHARDS_MAX`]. Fixed when the kernel is created.
    pub fn shards(mut self, shards: u32) -> Self {
        self.config.shards = shards;
        self
    }

    /// How keys map to shards. Fixed when the kernel is created.
    pub fn router(mut self, router: Router) -> Self {
        self.config.router = router;
        self
    }

    /// WAL segment size in bytes (see [`WalOptions::segment_size_bytes`]).
    pub fn segment_size_bytes(mut self, bytes: u64) -> Self {
        self.config.shard.wal.segment_size_bytes = bytes;
        self
    }

    /// Every WAL option at once.
    pub fn wal_options(mut self, options: WalOptions) -> Self {
        self.config.shard.wal = options;
        self
    }

    /// Checkpoint retention and the full-checkpoint cadence.
    pub fn checkpoint_options(mut self, options: CheckpointOptions) -> Self {
        self.config.shard.checkpoint = options;
        self
    }

    /// Epoch triggers; each shard checkpoints on `tick` when one fires, which bounds the WAL
    /// to replay after a crash (`wal_bytes_max` is the cap of DESIGN.md rule 13).
    pub fn epochs(mut self, epochs: EpochConfig) -> Self {
        self.config.shard.epoch = epochs;
        self
    }

    /// Threads for recovering shards in parallel at open; 0 (default) means as many as
    /// [`crate::env::Env::parallelism`] allows (1 in the simulator, so it stays deterministic).
    pub fn recovery_threads(mut self, threads: usize) -> Self {
        self.config.recovery_threads = threads;
        self
    }

    /// Whether [`crate::Kernel::tick`] syncs shards with unsynced commits (default true):
    /// what completes `Durability::None` commits' sync handles in the background.
    pub fn sync_on_tick(mut self, sync: bool) -> Self {
        self.config.sync_on_tick = sync;
        self
    }

    /// Called as shards recover (every 65 536 records replayed, and when each is done).
    pub fn progress(mut self, progress: ProgressCallback) -> Self {
        self.config.progress = Some(progress);
        self
    }

    /// Validates and returns the config.
    pub fn build(self) -> Result<Config, KernelError> {
        let config = self.config;
        let invalid = |what: String| Err(KernelError::InvalidConfig(what));
        if !(1..=SHARDS_MAX).contains(&config.shards) {
            return invalid(format!("shards {} is not in 1..={SHARDS_MAX}", config.shards));
        }
        if let Router::Prefix { len_bytes } = config.router
            && !(1..=KEY_BYTES_MAX as u32).contains(&len_bytes)
        {
            return invalid(format!("prefix router length {len_bytes} is not in 1..={KEY_BYTES_MAX}"));
        }
        config.shard.wal.validate().map_err(|e| KernelError::InvalidConfig(e.to_string()))?;
        config.shard.checkpoint.validate().map_err(|e| KernelError::InvalidConfig(e.to_string()))?;
        if config.shard.checkpoint.max_retained < 2 {
            // The WAL is kept back to the oldest retained checkpoint: with one, a damaged
            // latest checkpoint would have no fallback (DESIGN.md rule 13).
            return invalid(format!(
                "max_retained {} leaves no fallback checkpoint; keep at least 2",
                config.shard.checkpoint.max_retained
            ));
        }
        config.shard.epoch.validate().map_err(|e| KernelError::InvalidConfig(e.to_string()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_prefix_routing_groups_keys() {
        // Pinned values: changing the hash would send existing keys to the wrong shard.
        assert_eq!(Router::Hash.route(b"", 7), (0xcbf2_9ce4_8422_2325u64 % 7) as u32);
        assert_eq!(Router::Hash.route(b"a", 1000), (0xaf63_dc4c_8601_ec8cu64 % 1000) as u32);
        let prefix = Router::Prefix { len_bytes: 3 };
        assert_eq!(prefix.route(b"usr-1", 16), prefix.route(b"usr-2", 16));
        assert_eq!(prefix.route(b"us", 16), Router::Hash.route(b"us", 16));
        let spread: std::collections::BTreeSet<u32> =
            (0..200u32).map(|i| Router::Hash.route(&i.to_le_bytes(), 8)).collect();
        assert_eq!(spread.len(), 8, "200 keys reach every one of 8 shards");
    }

    #[test]
    fn build_refuses_out_of_range_values() {
        for builder in [
            Config::builder().shards(0),
            Config::builder().shards(SHARDS_MAX + 1),
            Config::builder().router(Router::Prefix { len_bytes: 0 }),
            Config::builder().segment_size_bytes(100),
            Config::builder()
                .checkpoint_options(CheckpointOptions { max_retained: 1, full_every_incrementals: 8 }),
        ] {
            let error = builder.build().unwrap_err();
            assert!(matches!(error, KernelError::InvalidConfig(_)), "{error}");
        }
        assert!(Config::builder().build().is_ok());
    }
}
