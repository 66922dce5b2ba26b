//! Retrying one shard's recovery in the same process: [`Kernel::reopen_shard`].
//!
//! A shard whose recovery failed at open (an I/O error: a read that failed, a full disk while
//! preallocating) holds nothing (no WAL, no checkpoint store, no state), so recovering it again
//! is what a new open of the kernel would do for it, without stopping the other shards.
//!
//! Invariants: a shard is reopened only if it failed at open (it never served in this
//! process) and no sync failed in it ([`Failure::after_failed_sync`]): after a failed sync the
//! page cache may hold pages marked clean that never reached the disk (fsyncgate, see
//! [`crate::wal`]), and a recovery in this process would read them, acknowledge new writes on
//! top of them and lose both at the next power loss. Every other case is a typed refusal
//! ([`KernelError::ReopenRefused`]); the retry is then a new process.

use super::{Kernel, KernelError, ReopenRefusal};
use crate::env::Env;
use crate::shard::{Failure, ShardError};

impl<E: Env + Clone> Kernel<E> {
    /// Retries the recovery of shard `id`, which failed at open, in this process, while the
    /// other shards keep serving. `Ok` once it serves (also if it already did); an error
    /// naming its new failure if the recovery failed again ([`KernelError::Shard`]; data loss
    /// is reported there as at open). Refused ([`KernelError::ReopenRefused`]) for a shard
    /// that failed while serving, or in which a sync failed: see the module docs. A read-only
    /// kernel refuses it ([`KernelError::ReadOnly`]).
    ///
    /// ```
    /// # use stormhold::{Config, Durability, Kernel, env::OsEnv};
    /// # let dir = tempfile::tempdir()?;
    /// let mut kernel = Kernel::open(OsEnv::new(), dir.path(), Config::builder().shards(2).build()?)?;
    /// kernel.reopen_shard(1)?; // serving: nothing to retry
    /// assert!(kernel.reopen_shard(2).is_err()); // no such shard
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reopen_shard(&mut self, id: u32) -> Result<(), KernelError> {
        self.check_writable()?;
        let shard = self.shard_checked(id)?;
        let Some(failure) = shard.status().failed else { return Ok(()) };
        if let Some(reason) = refusal(shard.recovery_report().is_some(), &failure) {
            return Err(KernelError::ReopenRefused { shard: id, reason, failure });
        }
        let reopened = Self::open_shard(&self.env, &self.dir, &self.config, self.store_id, id);
        // Postcondition: the shard in its place is the one just recovered, serving or failed.
        debug_assert_eq!(reopened.id(), id, "the reopened shard keeps its index");
        let failed = reopened.status().failed;
        self.shards[id as usize] = reopened;
        match failed {
            None => Ok(()),
            Some(failure) => {
                Err(KernelError::Shard { shard: id, error: ShardError::Failed { shard: id, failure } })
            }
        }
    }
}

/// Why a failed shard must not be recovered again in this process, if it must not.
fn refusal(served: bool, failure: &Failure) -> Option<ReopenRefusal> {
    if served {
        Some(ReopenRefusal::FailedWhileServing)
    } else if failure.after_failed_sync() {
        Some(ReopenRefusal::AfterFailedSync)
    } else {
        None
    }
}
