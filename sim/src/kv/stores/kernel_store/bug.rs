//! The planted mistakes of the kernel store: each one a crash-safety mistake a real engineer
//! could make in a store over the kernel, named `kernel-<mistake>` as a workload, so that a
//! sweep proves the kernel workload's checks can fail (each has a shrunk case in `corpus/`).

use std::path::Path;
use stormhold::env::sim::SimEnv;
use stormhold::kernel::layout;

/// A crash-safety mistake planted in the store's use of the kernel, to prove the per-shard
/// checker can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum KernelBug {
    /// None: the kernel as it is.
    None,
    /// A commit asked to be durable is committed with `Durability::None` and acknowledged
    /// durable anyway.
    AckUnsynced,
    /// A whole-store sync syncs the first shard only, and is acknowledged for every shard.
    SyncFirstShardOnly,
    /// A read inside a transaction ignores the transaction's own writes (reads the committed
    /// value): the checker of `txn.get` must catch it.
    TxnGetCommittedOnly,
    /// An open whose recovery passed over a damaged checkpoint (a fallback, or damaged
    /// metadata) reports that shard lost, though an older intact checkpoint and the WAL kept
    /// back to it recover everything: only damage is there, so only the honest-loss check of
    /// [`crate::kv::damage_audit`], which knows what was damaged, can call it dishonest.
    LossWithoutDamage,
    /// Before each open, a stray write flips a byte of the newest checkpoint's `META` in every
    /// shard holding two or more checkpoints, so recovery passes over a checkpoint the
    /// simulator never damaged: the damage audit must refuse the fallback even when the
    /// simulator damaged other files.
    ClobberNewestMeta,
    /// An increment inside a transaction is resolved when it is written, against the value
    /// the transaction reads then, and buffered as a put of the sum (read-modify-write instead
    /// of the kernel's delta): a commit of another transaction to that key before this one
    /// commits is lost. Only increments inside multi-key transactions expose it.
    TxnIncrementStaleRead,
    /// A shard that failed at open without data loss (an I/O error during its recovery) is
    /// served as an empty shard, as a store that takes a shard it could not recover for a new
    /// one would: listed as serving reads, its reads answer from nothing. Only an open that
    /// leaves shards failed while the others serve exposes it, and only if the judge judges
    /// the groups such an open reports readable.
    FailedShardServedEmpty,
}

impl KernelBug {
    /// Every variant, the correct store first.
    pub const ALL: [KernelBug; 8] = [
        KernelBug::None,
        KernelBug::AckUnsynced,
        KernelBug::SyncFirstShardOnly,
        KernelBug::TxnGetCommittedOnly,
        KernelBug::LossWithoutDamage,
        KernelBug::ClobberNewestMeta,
        KernelBug::TxnIncrementStaleRead,
        KernelBug::FailedShardServedEmpty,
    ];

    /// The workload name: `kernel`, `kernel-ack-unsynced`.
    pub fn workload_name(self) -> &'static str {
        match self {
            KernelBug::None => "kernel",
            KernelBug::AckUnsynced => "kernel-ack-unsynced",
            KernelBug::SyncFirstShardOnly => "kernel-sync-first-shard-only",
            KernelBug::TxnGetCommittedOnly => "kernel-txn-get-committed-only",
            KernelBug::LossWithoutDamage => "kernel-loss-without-damage",
            KernelBug::ClobberNewestMeta => "kernel-clobber-newest-meta",
            KernelBug::TxnIncrementStaleRead => "kernel-txn-increment-stale-read",
            KernelBug::FailedShardServedEmpty => "kernel-failed-shard-served-empty",
        }
    }
}

/// The planted stray write of [`KernelBug::ClobberNewestMeta`]; its own I/O errors are
/// ignored (a stray write does not report).
pub(super) fn clobber_newest_meta(env: &SimEnv, root: &Path, shard: u32) {
    use stormhold::checkpoint::META_FILE_NAME;
    use stormhold::checkpoint::format::parse_checkpoint_dir_name;
    use stormhold::env::{Env, EnvFile, OpenOptions};
    let dir = layout::shard_dir(root, shard).join("ckpt");
    let Ok(names) = env.list_dir(&dir) else { return };
    let mut whole: Vec<String> = names
        .into_iter()
        .filter(|name| parse_checkpoint_dir_name(name).is_some())
        .filter(|name| env.exists(&dir.join(name).join(META_FILE_NAME)).unwrap_or(false))
        .collect();
    whole.sort_by_key(|name| parse_checkpoint_dir_name(name));
    let [.., _, newest] = whole.as_slice() else { return };
    let Ok(file) = env.open(&dir.join(newest).join(META_FILE_NAME), OpenOptions::read_write()) else {
        return;
    };
    let mut byte = [0u8; 1];
    if file.read_exact_at(&mut byte, 0).is_ok() && file.write_all_at(&[!byte[0]], 0).is_ok() {
        let _ = file.sync_data();
    }
}
