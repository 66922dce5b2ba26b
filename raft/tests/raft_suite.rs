//! openraft 0.9.25's own storage test suite (`testing::Suite::test_all`, 35 tests) on the
//! adapter over a `Kernel<OsEnv>`, each test on a fresh directory; with the append syncing
//! itself and without (the callback then fires from the kernel's `tick`).

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use stormhold::env::OsEnv;
use stormhold::{Config, Kernel, Router};
use stormhold_raft::{GROUP_PREFIX_BYTES, LogStore, Options, StateMachine, TypeConfig, open_group};

struct Builder {
    options: Options,
}

/// The directory, and the ticker that syncs when the append does not.
type Guard = (tempfile::TempDir, Option<stormhold::Ticker>);

impl StoreBuilder<TypeConfig, LogStore<OsEnv>, StateMachine<OsEnv>, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, LogStore<OsEnv>, StateMachine<OsEnv>), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = Config::builder()
            .shards(2)
            .router(Router::Prefix { len_bytes: GROUP_PREFIX_BYTES })
            .build()
            .unwrap();
        let kernel = Arc::new(Kernel::open(OsEnv::new(), dir.path(), config).expect("open"));
        let ticker = (!self.options.sync_on_append)
            .then(|| Kernel::spawn_ticker(Arc::clone(&kernel), std::time::Duration::from_millis(1)));
        let (log, sm) = open_group(kernel, 7, self.options).expect("a group");
        Ok(((dir, ticker), log, sm))
    }
}

#[test]
fn openraft_suite_passes_with_sync_on_append() {
    Suite::test_all(Builder { options: Options::default() }).expect("openraft's suite");
}

#[test]
fn openraft_suite_passes_with_callbacks_fired_by_the_ticker() {
    Suite::test_all(Builder { options: Options { sync_on_append: false, ..Options::default() } })
        .expect("openraft's suite");
}
