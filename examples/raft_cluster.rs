//! Three openraft nodes in one process, each on its own stormhold directory through
//! `stormhold-raft`, over an in-memory network: a few client writes through the leader; one
//! follower killed (its Raft shut down and its kernel dropped without a close) and, while it is
//! down, more writes, after which the others snapshot and purge their logs past everything it
//! has; the follower restarted from its directory (its store reopened: vote, log and applied
//! state as it left them) and caught up by a snapshot, since the log it would need is gone;
//! then every node's state machine is read back and compared with what the client wrote.
//!
//! Run: `cargo run --example raft_cluster [DIR]` (default: a fresh temporary directory). Exits
//! 0 when the three state machines agree with the writes, 1 when they do not or on an error.
//! `raft/tests/raft_cluster.rs` runs the same [`run_blocking`], so CI runs this file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{BasicNode, SnapshotPolicy};
use stormhold::env::OsEnv;
use stormhold::{Config, Kernel, Router};
use stormhold_raft::{GROUP_PREFIX_BYTES, Options, Request, StateMachine, TypeConfig, open_group};

type Raft = openraft::Raft<TypeConfig>;
type BoxError = Box<dyn std::error::Error>;
type Rpc<T, E = openraft::error::Infallible> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

const NODE_IDS: [u64; 3] = [1, 2, 3];
/// The Raft group every node keeps (one group, so one key prefix of each node's kernel).
const GROUP: u32 = 0;
/// Writes before the follower is killed, and while it is down.
const WRITES_BEFORE: u64 = 5;
const WRITES_WHILE_DOWN: u64 = 25;
/// Each node snapshots after this many applied entries and then purges its whole log up to
/// the snapshot (`max_in_snapshot_log_to_keep = 0`), so the writes made while the follower is
/// down outrun the leader's log.
const SNAPSHOT_EVERY: u64 = 10;
/// The longest any wait for the cluster may take.
const WAIT_MAX: Duration = Duration::from_secs(20);
/// Leaders a write is offered to before the run gives up.
const WRITE_ATTEMPTS_MAX: u32 = 40;

/// The in-memory network: every running node's `Raft` handle, and the snapshots delivered.
#[derive(Clone, Default)]
struct Network {
    nodes: Arc<Mutex<BTreeMap<u64, Raft>>>,
    /// Per target node, the snapshots it received and installed (the last chunk accepted).
    snapshots_installed: Arc<Mutex<BTreeMap<u64, u32>>>,
}

impl Network {
    fn set(&self, id: u64, raft: Option<Raft>) {
        let mut nodes = self.nodes.lock().expect("no panic while held");
        match raft {
            Some(raft) => nodes.insert(id, raft),
            None => nodes.remove(&id),
        };
    }

    fn handle(&self, id: u64) -> Result<Raft, Unreachable> {
        let down = || Unreachable::new(&std::io::Error::other(format!("node {id} is down")));
        self.nodes.lock().expect("no panic while held").get(&id).cloned().ok_or_else(down)
    }

    fn snapshots_installed(&self, id: u64) -> u32 {
        self.snapshots_installed.lock().expect("no panic while held").get(&id).copied().unwrap_or(0)
    }
}

/// One node's end of the network towards `target`: calls its `Raft` handle directly.
struct Connection {
    network: Network,
    target: u64,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection { network: self.clone(), target }
    }
}

impl Connection {
    fn remote<E: std::error::Error>(
        &self,
        error: RaftError<u64, E>,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, error))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>> {
        let raft = self.network.handle(self.target)?;
        raft.append_entries(rpc).await.map_err(|e| self.remote(e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        let raft = self.network.handle(self.target)?;
        let done = rpc.done;
        let response = raft.install_snapshot(rpc).await.map_err(|e| self.remote(e))?;
        if done {
            let mut installed = self.network.snapshots_installed.lock().expect("no panic while held");
            *installed.entry(self.target).or_default() += 1;
        }
        Ok(response)
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, _option: RPCOption) -> Rpc<VoteResponse<u64>> {
        let raft = self.network.handle(self.target)?;
        raft.vote(rpc).await.map_err(|e| self.remote(e))
    }
}

/// A running node: its Raft, its kernel and a handle on its state machine for reading.
struct Node {
    id: u64,
    dir: PathBuf,
    raft: Raft,
    kernel: Arc<Kernel<OsEnv>>,
    state_machine: StateMachine<OsEnv>,
}

fn raft_config() -> Result<Arc<openraft::Config>, BoxError> {
    let config = openraft::Config {
        cluster_name: "stormhold-raft-cluster".to_owned(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..openraft::Config::default()
    };
    Ok(Arc::new(config.validate()?))
}

/// Opens (or reopens) node `id`'s kernel in `dir` and starts its Raft on it; returns the node
/// and a line saying what its store held when opened.
async fn start(id: u64, dir: PathBuf, network: &Network) -> Result<(Node, String), BoxError> {
    let router = Router::Prefix { len_bytes: GROUP_PREFIX_BYTES };
    let config = Config::builder().shards(2).router(router).build()?;
    let kernel = Arc::new(Kernel::open(OsEnv::new(), &dir, config)?);
    let (mut log_store, mut state_machine) = open_group(Arc::clone(&kernel), GROUP, Options::default())?;
    let vote = log_store.read_vote().await?;
    let log = log_store.get_log_state().await?;
    let (applied, _) = state_machine.applied_state().await?;
    let opened = format!(
        "node {id}: opened {} (vote {}, last log {}, purged to {}, applied {})",
        dir.display(),
        vote.map_or("none".to_owned(), |v| v.to_string()),
        index(log.last_log_id),
        index(log.last_purged_log_id),
        index(applied),
    );
    let raft = Raft::new(id, raft_config()?, network.clone(), log_store, state_machine.clone()).await?;
    network.set(id, Some(raft.clone()));
    Ok((Node { id, dir, raft, kernel, state_machine }, opened))
}

fn index(log_id: Option<openraft::LogId<u64>>) -> String {
    log_id.map_or("-".to_owned(), |id| id.index.to_string())
}

/// Kills `node`: off the network, its Raft shut down, its kernel dropped without a close (as
/// a killed process leaves it). Returns its directory.
async fn kill(node: Node, network: &Network) -> Result<PathBuf, BoxError> {
    network.set(node.id, None);
    node.raft.shutdown().await?;
    let Node { id, dir, raft, kernel, state_machine } = node;
    drop((raft, state_machine));
    // openraft's tasks drop their handles on the store as they end; the directory lock goes
    // with the last one.
    for _ in 0..WAIT_MAX.as_millis() / 10 {
        if Arc::strong_count(&kernel) == 1 {
            drop(kernel);
            return Ok(dir);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("node {id}: openraft still holds its store after the shutdown").into())
}

/// The current leader among `nodes`, once there is one.
async fn leader(nodes: &[Node]) -> Result<&Node, BoxError> {
    let metrics =
        nodes[0].raft.wait(Some(WAIT_MAX)).metrics(|m| m.current_leader.is_some(), "a leader").await?;
    let id = metrics.current_leader.ok_or("no leader")?;
    nodes.iter().find(|n| n.id == id).ok_or_else(|| format!("the leader {id} is not running").into())
}

/// Write `i` of the run: mostly sets over a few keys, every sixth a delete.
fn request(i: u64) -> Request {
    match i % 6 {
        5 => Request::Delete { key: format!("k{}", (i + 1) % 7) },
        _ => Request::Set { key: format!("k{}", i % 7), value: format!("v{i}") },
    }
}

/// Sends `request` to the leader; if leadership moved meanwhile, again to the new one (safe:
/// every request is idempotent, and it is retried before any other is sent). Returns the
/// entry's index.
async fn send(nodes: &[Node], request: &Request) -> Result<u64, BoxError> {
    for _ in 0..WRITE_ATTEMPTS_MAX {
        match leader(nodes).await?.raft.client_write(request.clone()).await {
            Ok(response) => return Ok(response.log_id.index),
            Err(e) if e.forward_to_leader::<BasicNode>().is_some() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(format!("{request:?}: no leader accepted it in {WRITE_ATTEMPTS_MAX} attempts").into())
}

/// Writes `writes` through the leader, applying each to `model` once acknowledged; returns the
/// index of the last entry.
async fn write(nodes: &[Node], writes: std::ops::Range<u64>, model: &mut Model) -> Result<u64, BoxError> {
    let mut last = 0;
    for i in writes {
        let request = request(i);
        last = send(nodes, &request).await?;
        match request {
            Request::Set { key, value } => model.insert(key, Some(value)),
            Request::Delete { key } => model.insert(key, None),
        };
    }
    Ok(last)
}

/// Waits until every node in `nodes` applied the entry at `index`.
async fn applied(nodes: &[Node], index: u64) -> Result<(), BoxError> {
    for node in nodes {
        let msg = format!("node {} applies {index}", node.id);
        node.raft.wait(Some(WAIT_MAX)).applied_index_at_least(Some(index), msg).await?;
    }
    Ok(())
}

/// Every key the client touched, with its value (`None`: deleted).
pub type Model = BTreeMap<String, Option<String>>;

/// Every difference between what the client wrote (`model`) and what a node's state machine
/// holds (`readings`, per node id, the same keys read back).
pub fn disagreements(model: &Model, readings: &BTreeMap<u64, Model>) -> Vec<String> {
    let mut out = Vec::new();
    for (id, reading) in readings {
        let keys: BTreeSet<&String> = model.keys().chain(reading.keys()).collect();
        for key in keys {
            let (want, got) = (model.get(key).cloned().flatten(), reading.get(key).cloned().flatten());
            if want != got {
                out.push(format!("node {id}: key {key} holds {got:?}, the client wrote {want:?}"));
            }
        }
    }
    out
}

fn read(node: &Node, model: &Model) -> Result<Model, BoxError> {
    model.keys().map(|key| Ok((key.clone(), node.state_machine.get(key)?))).collect()
}

/// What a run did and found.
pub struct Outcome {
    /// What happened, step by step, for printing.
    pub lines: Vec<String>,
    /// The node that was killed and restarted.
    pub restarted: u64,
    /// Snapshots the restarted node received and installed.
    pub snapshots_installed: u32,
    /// What the client wrote.
    pub model: Model,
    /// Each node's state machine, the model's keys read back.
    pub readings: BTreeMap<u64, Model>,
    /// [`disagreements`] of the readings with the model; empty when all agree.
    pub disagreements: Vec<String>,
}

/// Starts the three nodes (in `base/node-<id>`), writes, kills a follower, writes and purges,
/// restarts it, and reads every state machine back.
pub async fn run(base: &Path) -> Result<Outcome, BoxError> {
    let network = Network::default();
    let (mut nodes, mut lines) = (Vec::new(), Vec::new());
    for id in NODE_IDS {
        let (node, opened) = start(id, base.join(format!("node-{id}")), &network).await?;
        nodes.push(node);
        lines.push(opened);
    }
    let members: BTreeMap<u64, BasicNode> =
        NODE_IDS.iter().map(|&id| (id, BasicNode::new(format!("in-memory:{id}")))).collect();
    nodes[0].raft.initialize(members).await?;
    let mut model = Model::new();
    let last = write(&nodes, 0..WRITES_BEFORE, &mut model).await?;
    applied(&nodes, last).await?;
    let leader_id = leader(&nodes).await?.id;
    lines.push(format!(
        "leader: node {leader_id}; {WRITES_BEFORE} writes applied on all three (log index {last})"
    ));

    let victim = nodes.iter().position(|n| n.id != leader_id).ok_or("no follower")?;
    let victim = nodes.remove(victim);
    let (restarted, victim_last) = (victim.id, victim.raft.metrics().borrow().last_log_index);
    let dir = kill(victim, &network).await?;
    lines.push(format!("node {restarted}: killed with its log at index {}", victim_last.unwrap_or(0)));
    let last = write(&nodes, WRITES_BEFORE..WRITES_BEFORE + WRITES_WHILE_DOWN, &mut model).await?;
    applied(&nodes, last).await?;
    let past_victim = |m: &openraft::RaftMetrics<u64, BasicNode>| m.purged.map(|p| p.index) > victim_last;
    let metrics = leader(&nodes).await?.raft.wait(Some(WAIT_MAX)).metrics(past_victim, "a purge").await?;
    lines.push(format!(
        "{WRITES_WHILE_DOWN} more writes (log index {last}); the leader snapshotted at {} and purged its log to {}",
        index(metrics.snapshot),
        index(metrics.purged),
    ));

    let (node, opened) = start(restarted, dir, &network).await?;
    lines.push(format!("restarted {opened}"));
    nodes.push(node);
    applied(&nodes, last).await?;
    let snapshots_installed = network.snapshots_installed(restarted);
    lines.push(format!(
        "node {restarted}: caught up to {last} after installing {snapshots_installed} snapshot(s)"
    ));
    finish(nodes, network, model, restarted, lines).await
}

/// Reads every state machine back, compares, and stops the nodes.
async fn finish(
    nodes: Vec<Node>,
    network: Network,
    model: Model,
    restarted: u64,
    mut lines: Vec<String>,
) -> Result<Outcome, BoxError> {
    let mut readings = BTreeMap::new();
    for node in &nodes {
        readings.insert(node.id, read(node, &model)?);
    }
    let disagreements = disagreements(&model, &readings);
    lines.push(format!(
        "{} state machines read back, {} keys each: {}",
        readings.len(),
        model.len(),
        if disagreements.is_empty() { "all agree with the writes" } else { "they DISAGREE" }
    ));
    for node in nodes {
        kill(node, &network).await?;
    }
    let snapshots_installed = network.snapshots_installed(restarted);
    Ok(Outcome { lines, restarted, snapshots_installed, model, readings, disagreements })
}

/// [`run`] on a current-thread tokio runtime.
pub fn run_blocking(base: &Path) -> Result<Outcome, BoxError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(base))
}

fn main() -> ExitCode {
    let (_temp, base) = match std::env::args_os().nth(1) {
        Some(dir) => (None, PathBuf::from(dir)),
        None => match tempfile::tempdir() {
            Ok(temp) => {
                let path = temp.path().to_owned();
                (Some(temp), path)
            }
            Err(e) => {
                eprintln!("raft_cluster: a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match run_blocking(&base) {
        Ok(outcome) => {
            outcome.lines.iter().for_each(|line| println!("{line}"));
            outcome.disagreements.iter().for_each(|line| eprintln!("raft_cluster: {line}"));
            if outcome.disagreements.is_empty() && outcome.snapshots_installed > 0 {
                ExitCode::SUCCESS
            } else {
                if outcome.snapshots_installed == 0 {
                    eprintln!("raft_cluster: node {} caught up without a snapshot", outcome.restarted);
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("raft_cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
