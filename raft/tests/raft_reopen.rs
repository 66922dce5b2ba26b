//! What Raft needs to survive a close and a crash: the vote, the log (with its purge point
//! and no hole), and the applied state, on the simulated disk (a crash drops everything not
//! synced) and on the OS (a close).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, OsEnv};
use stormhold::{Config, Kernel, Router};
use stormhold_raft::{GROUP_PREFIX_BYTES, Options, Request, TypeConfig, open_group};

/// Runs a future that completes without waiting for anything else (every adapter call does).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the adapter call waited"),
    }
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId { leader_id: CommittedLeaderId::new(term, 1), index }
}

fn entry(index: u64) -> Entry<TypeConfig> {
    let request = Request::Set { key: format!("k{}", index % 3), value: format!("v{index}") };
    Entry { log_id: log_id(2, index), payload: EntryPayload::Normal(request) }
}

fn config() -> Config {
    Config::builder().shards(2).router(Router::Prefix { len_bytes: GROUP_PREFIX_BYTES }).build().unwrap()
}

fn write_state<E: Env + Clone + Send + Sync + 'static>(kernel: Arc<Kernel<E>>) {
    let (mut log, mut sm) = open_group(kernel, 3, Options::default()).unwrap();
    ready(log.save_vote(&Vote::new(2, 1))).unwrap();
    ready(log.blocking_append((1..=20).map(entry))).unwrap();
    ready(log.truncate(log_id(2, 16))).unwrap();
    ready(log.purge(log_id(2, 5))).unwrap();
    ready(sm.apply((1..=12).map(entry))).unwrap();
}

fn check_state<E: Env + Clone + Send + Sync + 'static>(kernel: Arc<Kernel<E>>) {
    let (mut log, mut sm) = open_group(kernel, 3, Options::default()).unwrap();
    assert_eq!(ready(log.read_vote()).unwrap(), Some(Vote::new(2, 1)));
    let state = ready(log.get_log_state()).unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 5)));
    assert_eq!(state.last_log_id, Some(log_id(2, 15)));
    let indexes: Vec<u64> =
        ready(log.try_get_log_entries(0..)).unwrap().iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, (6..=15).collect::<Vec<_>>(), "no hole, nothing purged or truncated left");
    let (applied, _) = ready(sm.applied_state()).unwrap();
    assert_eq!(applied, Some(log_id(2, 12)));
    assert_eq!(sm.get("k0").unwrap(), Some("v12".to_owned()));
    assert_eq!(sm.get("k1").unwrap(), Some("v10".to_owned()));
}

#[test]
fn vote_log_purge_point_and_applied_state_survive_a_crash() {
    let env = SimEnv::new(5, FaultOptions::default()).unwrap();
    let kernel = Arc::new(Kernel::open(env.clone(), Path::new("/raft"), config()).unwrap());
    write_state(Arc::clone(&kernel));
    drop(kernel);
    env.crash();
    env.restart();
    check_state(Arc::new(Kernel::open(env, Path::new("/raft"), config()).unwrap()));
}

#[test]
fn vote_log_purge_point_and_applied_state_survive_a_close_on_the_os() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Arc::new(Kernel::open(OsEnv::new(), dir.path(), config()).unwrap());
    write_state(Arc::clone(&kernel));
    Arc::into_inner(kernel).expect("the group handles are dropped").close().unwrap();
    check_state(Arc::new(Kernel::open(OsEnv::new(), dir.path(), config()).unwrap()));
}

#[test]
fn the_planted_unsynced_vote_is_lost_in_a_crash() {
    // The mistake the simulator's `raft-vote-unsynced` workload plants, shown directly.
    // Every unsynced write is lost at the crash.
    let write_fate = stormhold::env::sim::WriteFateWeights { survive: 0, lose: 1, tear: 0 };
    let env = SimEnv::new(6, FaultOptions { write_fate, ..FaultOptions::default() }).unwrap();
    let kernel = Arc::new(Kernel::open(env.clone(), Path::new("/raft"), config()).unwrap());
    let options = Options { bug: stormhold_raft::PlantedBug::VoteUnsynced, ..Options::default() };
    let (mut log, _sm) = open_group(Arc::clone(&kernel), 3, options).unwrap();
    ready(log.save_vote(&Vote::new(2, 1))).unwrap();
    drop((log, kernel));
    env.crash();
    env.restart();
    let kernel = Arc::new(Kernel::open(env, Path::new("/raft"), config()).unwrap());
    let (mut log, _sm) = open_group(kernel, 3, Options::default()).unwrap();
    assert_eq!(ready(log.read_vote()).unwrap(), None);
}
