//! Durable Raft appends through `stormhold-raft` (openraft's `RaftLogStorage::append`, each
//! append one entry, returning once its callback fired, i.e. once it is synced) next to the
//! kernel's own durable put with as many writers, measured interleaved in the same run on the
//! same kind of kernel (4 shards, the prefix router the adapter needs, real OS).
//!
//! Rows: 1 group and 1 writer against `Kernel::put` Data with 1 writer; 4 groups with 4
//! writers (each append locks a group, so the groups' appends share the shards' group syncs)
//! against `Kernel::put` Data with 4 writers.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use openraft::storage::RaftLogStorageExt;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use stormhold::env::OsEnv;
use stormhold::{Config, Durability, Kernel, Router};
use stormhold_raft::{GROUP_PREFIX_BYTES, LogStore, Options, Request, open_group};

use crate::harness::{
    BenchError, Budget, Contender, Rate, Row, Scratch, Unit, interleave, run_writers, timed,
};
use crate::step;

/// Value bytes of an entry's request and of a kernel put.
const VALUE_BYTES: usize = 128;
/// Groups of the many-group row (also its writer count).
const GROUPS: u32 = 4;

fn open(dir: &Path, wal: &stormhold::WalOptions) -> Result<Arc<Kernel<OsEnv>>, BenchError> {
    let router = Router::Prefix { len_bytes: GROUP_PREFIX_BYTES };
    let config = Config::builder().shards(4).router(router).wal_options(wal.clone()).build()?;
    Ok(Arc::new(Kernel::open(OsEnv::new(), dir, config)?))
}

/// One group's log and its next index.
struct Group {
    log: LogStore<OsEnv>,
    next: u64,
}

impl Group {
    fn append(&mut self, value: &str) -> Result<(), BenchError> {
        let id = LogId { leader_id: CommittedLeaderId::new(1, 1), index: self.next };
        let request = Request::Set { key: format!("k{}", self.next % 1024), value: value.to_owned() };
        let entry = Entry { log_id: id, payload: EntryPayload::Normal(request) };
        let mut flushed = std::pin::pin!(self.log.blocking_append([entry]));
        match flushed.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result?,
            Poll::Pending => return Err("an append with sync_on_append did not complete".into()),
        }
        self.next += 1;
        Ok(())
    }
}

struct Appenders {
    groups: Vec<Mutex<Group>>,
    turn: AtomicU64,
    value: String,
}

impl Contender for Appenders {
    fn slice(&mut self, budget: Budget) -> Result<Rate, BenchError> {
        let append = || {
            let g = (self.turn.fetch_add(1, Ordering::Relaxed) % self.groups.len() as u64) as usize;
            let mut group = self.groups[g].lock().map_err(|_| "a writer panicked")?;
            group.append(&self.value)
        };
        if self.groups.len() == 1 {
            timed(budget, Unit::PerSecond, append)
        } else {
            run_writers(self.groups.len(), budget, append)
        }
    }
}

struct Puts {
    kernel: Arc<Kernel<OsEnv>>,
    threads: usize,
    next: AtomicU64,
}

impl Contender for Puts {
    fn slice(&mut self, budget: Budget) -> Result<Rate, BenchError> {
        let value = [0x5a; VALUE_BYTES];
        let put = || {
            let n = self.next.fetch_add(1, Ordering::Relaxed) % 1024;
            self.kernel.put(format!("puts:{n:08}").as_bytes(), &value, Durability::Data)?;
            Ok(())
        };
        if self.threads == 1 {
            timed(budget, Unit::PerSecond, put)
        } else {
            run_writers(self.threads, budget, put)
        }
    }
}

/// The two rows; see the module docs.
pub fn appends(config: &crate::Config, scratch: &Scratch) -> Result<Vec<Row>, BenchError> {
    let mut rows = Vec::new();
    for groups in [1, GROUPS] {
        step(&format!("durable Raft appends, {groups} group(s), and Kernel::put Data, interleaved"));
        let kernel = open(&scratch.path().join(format!("raft-{groups}")), &config.wal)?;
        let mut appenders =
            Appenders { groups: Vec::new(), turn: AtomicU64::new(0), value: "v".repeat(VALUE_BYTES) };
        for g in 0..groups {
            let (log, _sm) = open_group(Arc::clone(&kernel), g, Options::default())?;
            appenders.groups.push(Mutex::new(Group { log, next: 1 }));
        }
        let mut puts =
            Puts { kernel: Arc::clone(&kernel), threads: groups as usize, next: AtomicU64::new(0) };
        let rates = interleave(config.rounds, config.commits, &mut [&mut appenders, &mut puts])?;
        rows.push(Row {
            workload: format!(
                "Raft append (1 entry, durable), {groups} group{}",
                if groups == 1 { "" } else { "s" }
            ),
            rate: rates[0],
            baseline: format!("Kernel::put Data, {groups} writer{}", if groups == 1 { "" } else { "s" }),
            baseline_rate: rates[1],
        });
    }
    Ok(rows)
}
