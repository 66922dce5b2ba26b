//! Loading a checkpoint with a helper thread readying the run's arena blocks
//! (`CheckpointStore::load_latest_valid_run_with(true)` on `OsEnv`, which allows threads): the
//! run must hold exactly what the plain load holds, an entry larger than a block included,
//! and a damaged file must fail the same way with the helper as without it.

use std::collections::BTreeMap;
use std::path::Path;

use stormhold::checkpoint::run::Run;
use stormhold::checkpoint::{CheckpointData, CheckpointError, CheckpointOptions, CheckpointStore, UserMeta};
use stormhold::env::{Env, EnvFile, OpenOptions, OsEnv};

fn store(dir: &Path) -> CheckpointStore<OsEnv> {
    let options =
        CheckpointOptions { max_retained: 3, full_every_incrementals: 0, ..CheckpointOptions::default() };
    CheckpointStore::open(OsEnv::new(), dir, options).expect("open").0
}

/// About 12 MiB of entries of odd sizes (past the size below which no helper is used), with
/// one value of 2.5 MiB (larger than a block: it gets a block of its own, never a readied one).
fn state() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state: BTreeMap<Vec<u8>, Vec<u8>> = (0..100_000u32)
        .map(|i| (format!("key-{i:07}").into_bytes(), vec![(i % 251) as u8; 97 + (i % 13) as usize]))
        .collect();
    state.insert(b"key-0050000-huge".to_vec(), (0..(5u32 << 19)).map(|i| (i % 241) as u8).collect());
    state
}

fn entries(run: &Run) -> Vec<(Vec<u8>, Vec<u8>)> {
    run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

fn load(dir: &Path, helper: bool) -> Result<Run, CheckpointError> {
    Ok(store(dir).load_latest_valid_run_with(helper)?.expect("a checkpoint").run)
}

#[test]
fn a_run_loaded_with_the_helper_holds_what_the_plain_load_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = state();
    store(dir.path())
        .create(1, 1, UserMeta::default(), CheckpointData::Full(written.clone()), None)
        .expect("create");
    let helped = load(dir.path(), true).expect("helped load");
    let plain = load(dir.path(), false).expect("plain load");
    let expected: Vec<_> = written.into_iter().collect();
    assert_eq!(helped.len(), expected.len());
    assert!(entries(&helped) == expected, "the helped load returns the state that was written");
    assert!(entries(&plain) == expected, "the plain load returns the state that was written");
    assert_eq!(helped.get(b"key-0050000-huge").map(<[u8]>::len), Some(5 << 19));
}

#[test]
fn a_damaged_file_fails_the_helped_load_as_it_fails_the_plain_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = store(dir.path())
        .create(1, 1, UserMeta::default(), CheckpointData::Full(state()), None)
        .expect("create")
        .id;
    let data = dir.path().join(stormhold::checkpoint::format::checkpoint_dir_name(id)).join("DATA");
    let file = OsEnv::new().open(&data, OpenOptions::read_write()).expect("open DATA");
    let mut byte = [0];
    file.read_exact_at(&mut byte, 5 << 20).expect("read");
    file.write_all_at(&[byte[0] ^ 0x10], 5 << 20).expect("damage");
    let plain = load(dir.path(), false).map(|run| run.len());
    let helped = load(dir.path(), true).map(|run| run.len());
    assert!(
        matches!(&plain, Err(CheckpointError::NoLoadableCheckpoint { .. })),
        "the damaged checkpoint does not load: {plain:?}"
    );
    assert_eq!(format!("{helped:?}"), format!("{plain:?}"), "the same failure, the same reason");
}

#[test]
fn a_helper_is_granted_only_where_the_budget_holds_a_spare_thread_per_recovery() {
    use stormhold::recovery::Helpers;
    // (threads the kernel may use, shards recovering at once): 1 shard on 2 cores gets one;
    // 4 shards on 2 threads, or anything on 1 thread, gets none.
    for (budget, at_once, helped) in
        [(2, 1, true), (4, 2, true), (8, 1, true), (1, 1, false), (2, 2, false), (3, 2, false), (0, 0, false)]
    {
        let want = if helped { Helpers::One } else { Helpers::None };
        assert_eq!(Helpers::for_budget(budget, at_once), want, "budget {budget}, {at_once} at once");
    }
}
