//! The `env` workload: raw Env calls under every fault, checked against the model.
//!
//! The workload creates, writes, truncates, syncs, renames and removes files in two
//! directories, reads them back and lists the directories, and crashes (when the fault
//! options or the workload itself decide). After every crash it restarts the process and checks
//! each surviving entry and byte against [`model`]: synced data present, unsynced data absent or
//! a legal tear, nothing invented. Then it adopts what survived as the new known state.
//!
//! A call that failed with a crash may or may not have taken effect (the crash can come after
//! the call), so the model records it as an unsynced change: the check accepts both outcomes.
//!
//! A process crash (drawn, or the workload's own) keeps the page cache: after the restart
//! every unsynced change must still read back (see `process.rs`), and the model goes on from
//! where it was, so a later machine crash keeps only what was synced, before or after.

pub mod model;
pub mod ops;
mod process;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use stormhold::env::sim::{CrashKind, SimEnv, SimFile, SyncFailureProfile, is_crash};
use stormhold::env::{Env, EnvFile, OpenOptions};

use crate::config::{RunConfig, stream};
use crate::verdict::{Violation, ViolationKind};
use model::{DirChange, DirModel, FileId, FileModel};
use ops::EnvOp;

const DIRS: [&str; 2] = ["d0", "d1"];
const NAMES: [&str; 5] = ["a", "b", "c", "d", "tmp"];
/// Open handles the workload keeps at most.
const HANDLES_MAX: usize = 4;
/// Files never grow past this, so a run stays small.
const FILE_SIZE_BYTES_MAX: u64 = 16 * 1024;
const WRITE_SIZE_BYTES_MAX: u64 = 1500;

struct Handle {
    file: FileId,
    io: SimFile,
}

/// The outcome of one operation: the process crashed, or a check failed.
enum Stop {
    Crashed,
    Violation(Violation),
}

type OpResult = Result<(), Stop>;

fn crashed_or_ignore(error: io::Error) -> OpResult {
    if is_crash(&error) { Err(Stop::Crashed) } else { Ok(()) }
}

/// Drives one seed of the env workload.
pub struct EnvWorkload {
    env: SimEnv,
    config: RunConfig,
    rng: ChaCha8Rng,
    dirs: BTreeMap<&'static str, DirModel>,
    files: BTreeMap<FileId, FileModel>,
    next_file: FileId,
    handles: Vec<Handle>,
    op_index: u64,
    /// The latest monotonic reading: the clock must never go below it.
    monotonic_seen: Duration,
    /// Successful file and directory syncs: the durable watermark a report draws.
    syncs_acknowledged: u64,
    /// Completed crash recoveries (each one checked).
    pub recoveries: u64,
    /// Crash images checked at enumerated crash points.
    pub images_explored: u64,
    /// Decides which crash points enumerate their images (its own stream).
    images_rng: ChaCha8Rng,
    /// Decides which of the workload's crashes are process crashes, and which process crashes
    /// are followed by a power loss before the restart (its own stream).
    process_rng: ChaCha8Rng,
    /// Recoveries from a process crash, on the page cache (also counted in `recoveries`).
    pub process_recoveries: u64,
    /// What the operation running now may change, while process crashes can interrupt it.
    in_flight: Option<process::InFlight>,
    /// Operations to replay instead of drawing (`None`: draw).
    replay: Option<std::vec::IntoIter<EnvOp>>,
    /// Every operation executed, for the corpus.
    pub recorded: Vec<EnvOp>,
}

/// A directory and an entry name of the workload's tables.
type Entry = (&'static str, &'static str);

fn entry((dir, name): (usize, usize)) -> Entry {
    (DIRS[dir % DIRS.len()], NAMES[name % NAMES.len()])
}

fn path(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(format!("/{dir}/{name}"))
}

impl EnvWorkload {
    /// A workload over `env`, drawing its operations from the seed's workload stream.
    pub fn new(env: SimEnv, config: RunConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(stream::WORKLOAD);
        let dirs = DIRS.iter().map(|&dir| (dir, DirModel::default())).collect();
        let mut images_rng = ChaCha8Rng::seed_from_u64(config.seed);
        images_rng.set_stream(stream::IMAGES);
        let mut process_rng = ChaCha8Rng::seed_from_u64(config.seed);
        process_rng.set_stream(stream::PROCESS_CRASHES);
        Self {
            env,
            config,
            rng,
            dirs,
            files: BTreeMap::new(),
            next_file: 1,
            handles: Vec::new(),
            op_index: 0,
            monotonic_seen: Duration::ZERO,
            syncs_acknowledged: 0,
            recoveries: 0,
            images_explored: 0,
            images_rng,
            process_rng,
            process_recoveries: 0,
            in_flight: None,
            replay: None,
            recorded: Vec::new(),
        }
    }

    /// Replays `ops` instead of drawing operations; the run ends when they run out.
    pub fn replaying(mut self, ops: Vec<EnvOp>) -> Self {
        self.replay = Some(ops.into_iter());
        self
    }

    /// Operations executed so far.
    pub fn ops(&self) -> u64 {
        self.op_index
    }

    fn violation(&self, kind: ViolationKind, detail: String) -> Stop {
        Stop::Violation(Violation { kind, op_index: self.op_index, detail })
    }

    /// Runs setup, the chaos phase, the quiet phase, a last crash check and the liveness probe.
    pub fn run(&mut self) -> Result<(), Violation> {
        self.setup()?;
        let total = self.config.ops + self.config.quiet_ops;
        while self.op_index < total {
            if self.op_index == self.config.ops {
                self.env.set_faults_enabled(false);
            }
            let Some(op) = self.next_op() else { break };
            self.op_index += 1;
            self.recorded.push(op.clone());
            self.in_flight = self.in_flight_of(&op);
            let result = self.step(op);
            self.settle(result)?;
            self.in_flight = None;
        }
        self.settle(Err(Stop::Crashed))?;
        self.liveness_probe()
    }

    fn settle(&mut self, result: OpResult) -> Result<(), Violation> {
        match result {
            Ok(()) => Ok(()),
            Err(Stop::Violation(violation)) => Err(violation),
            Err(Stop::Crashed) => match self.recover() {
                Ok(()) => Ok(()),
                Err(Stop::Violation(violation)) => Err(violation),
                Err(Stop::Crashed) => unreachable!("recovery runs without faults"),
            },
        }
    }

    fn setup(&mut self) -> Result<(), Violation> {
        self.env.set_faults_enabled(false);
        let made = DIRS
            .iter()
            .try_for_each(|dir| self.env.create_dir(&PathBuf::from(format!("/{dir}"))))
            .and_then(|()| self.env.sync_dir(&PathBuf::from("/")));
        self.env.set_faults_enabled(true);
        made.map_err(|error| Violation {
            kind: ViolationKind::Liveness,
            op_index: 0,
            detail: format!("setup failed on a quiet disk: {error}"),
        })
    }

    /// The next operation: replayed, or drawn.
    fn next_op(&mut self) -> Option<EnvOp> {
        match &mut self.replay {
            Some(replay) => replay.next(),
            None => Some(self.draw_op()),
        }
    }

    /// The open handle an operation's index names, if any is open.
    fn handle_index(&self, handle: usize) -> Option<usize> {
        (!self.handles.is_empty()).then(|| handle % self.handles.len())
    }

    fn step(&mut self, op: EnvOp) -> OpResult {
        match op {
            EnvOp::Crash { check_images, process } => {
                let (kind, what) =
                    if process { (CrashKind::Process, " (process)") } else { (CrashKind::Machine, "") };
                self.env.note(format!("op {}: driver crash{what}", self.op_index));
                if check_images {
                    self.check_images()?;
                }
                // Nothing is in flight between operations.
                self.in_flight = None;
                self.env.crash_with(kind);
                Err(Stop::Crashed)
            }
            EnvOp::Open { dir, name, create } => {
                self.op_open(DIRS[dir % DIRS.len()], NAMES[name % NAMES.len()], create)
            }
            EnvOp::Write { handle, offset, len, data_seed } => match self.handle_index(handle) {
                Some(handle) => self.op_write(handle, offset, &ops::write_data(data_seed, len)),
                None => Ok(()),
            },
            EnvOp::SetLen { handle, len } => match self.handle_index(handle) {
                Some(handle) => self.op_set_len(handle, len),
                None => Ok(()),
            },
            EnvOp::Sync { handle, all } => match self.handle_index(handle) {
                Some(handle) => self.op_sync(handle, all),
                None => Ok(()),
            },
            EnvOp::Read { handle, offset, len } => match self.handle_index(handle) {
                Some(handle) => self.op_read(handle, offset, len),
                None => Ok(()),
            },
            EnvOp::Close { handle } => {
                if let Some(handle) = self.handle_index(handle) {
                    self.handles.remove(handle);
                }
                Ok(())
            }
            EnvOp::Rename { from, to } => self.op_rename(entry(from), entry(to)),
            EnvOp::Remove { dir, name } => self.op_remove(DIRS[dir % DIRS.len()], NAMES[name % NAMES.len()]),
            EnvOp::SyncDir { dir } => self.op_sync_dir(DIRS[dir % DIRS.len()]),
            EnvOp::List { dir } => self.op_list(DIRS[dir % DIRS.len()]),
            EnvOp::Clock { sleep_us } => self.op_clock(sleep_us),
        }
    }

    fn dir(&mut self, dir: &str) -> &mut DirModel {
        self.dirs.get_mut(dir).unwrap_or_else(|| unreachable!("the workload only uses DIRS"))
    }

    fn file(&mut self, file: FileId) -> &mut FileModel {
        self.files.get_mut(&file).unwrap_or_else(|| unreachable!("file models live until a crash"))
    }

    /// Links a new file model under `dir/name` (a create that happened, or may have).
    fn link_new(&mut self, dir: &'static str, name: &str) -> FileId {
        let file = self.next_file;
        self.next_file += 1;
        self.files.insert(file, FileModel::default());
        self.dir(dir).apply(DirChange::Link { name: name.to_owned(), file });
        file
    }

    fn op_open(&mut self, dir: &'static str, name: &'static str, create: bool) -> OpResult {
        let options = if create { OpenOptions::create() } else { OpenOptions::read_write() };
        let existing = self.dirs[dir].expected.get(name).copied();
        match self.env.open(&path(dir, name), options) {
            Ok(io) => {
                let file = existing.unwrap_or_else(|| self.link_new(dir, name));
                if self.handles.len() == HANDLES_MAX {
                    self.handles.remove(0);
                }
                self.handles.push(Handle { file, io });
                Ok(())
            }
            Err(error) if is_crash(&error) => {
                if create && existing.is_none() {
                    self.link_new(dir, name);
                }
                Err(Stop::Crashed)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound && existing.is_some() => Err(self
                .violation(
                    ViolationKind::Read,
                    format!("open {dir}/{name}: NotFound, but the entry exists"),
                )),
            Err(_) => Ok(()),
        }
    }

    fn op_write(&mut self, handle: usize, offset: u64, data: &[u8]) -> OpResult {
        let file = self.handles[handle].file;
        match self.handles[handle].io.write_at(data, offset) {
            Ok(written) => {
                self.file(file).write(offset, &data[..written]);
                Ok(())
            }
            Err(error) if is_crash(&error) => {
                self.file(file).write(offset, data);
                Err(Stop::Crashed)
            }
            Err(_) => Ok(()),
        }
    }

    fn op_set_len(&mut self, handle: usize, len: u64) -> OpResult {
        let file = self.handles[handle].file;
        match self.handles[handle].io.set_len(len) {
            Ok(()) => {
                self.file(file).set_len(len);
                Ok(())
            }
            Err(error) if is_crash(&error) => {
                self.file(file).set_len(len);
                Err(Stop::Crashed)
            }
            Err(_) => Ok(()),
        }
    }

    fn op_sync(&mut self, handle: usize, all: bool) -> OpResult {
        let file = self.handles[handle].file;
        let io = &self.handles[handle].io;
        let result = if all { io.sync_all() } else { io.sync_data() };
        let cache_kept = self.config.faults.sync_failure_profile == SyncFailureProfile::Keep;
        match result {
            Ok(()) => {
                self.file(file).synced();
                self.acknowledge_sync();
                Ok(())
            }
            Err(error) if is_crash(&error) => Err(Stop::Crashed),
            Err(_) => {
                self.file(file).sync_failed(cache_kept);
                Ok(())
            }
        }
    }

    fn op_read(&mut self, handle: usize, offset: u64, len: u64) -> OpResult {
        let file = self.handles[handle].file;
        let model = &self.files[&file];
        let mut buf = vec![0; len as usize];
        let read = self.handles[handle].io.read_at(&mut buf, offset);
        match read {
            Ok(got) if !model.reads_unreliable => {
                let start = (offset as usize).min(model.expected.len());
                let expected = &model.expected[start..(start + got).min(model.expected.len())];
                if got == 0 && start < model.expected.len() || &buf[..got] != expected {
                    return Err(self.violation(
                        ViolationKind::Read,
                        format!("read file#{file} @{offset}: got {got} bytes that differ from the model"),
                    ));
                }
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) => crashed_or_ignore(error),
        }
    }

    fn op_rename(&mut self, (from_dir, from): Entry, (to_dir, to): Entry) -> OpResult {
        let source = self.dirs[from_dir].expected.get(from).copied();
        let result = self.env.rename(&path(from_dir, from), &path(to_dir, to));
        let took_effect = match &result {
            Ok(()) => true,
            Err(error) => is_crash(error),
        };
        // POSIX: renaming one link of a file onto another link of the same file does nothing.
        let same_file = source.is_some() && self.dirs[to_dir].expected.get(to).copied() == source;
        if let (true, false, Some(file)) = (took_effect, same_file, source) {
            self.dir(from_dir).apply(DirChange::Unlink { name: from.to_owned() });
            self.dir(to_dir).apply(DirChange::Link { name: to.to_owned(), file });
        }
        result.or_else(crashed_or_ignore)
    }

    fn op_remove(&mut self, dir: &'static str, name: &'static str) -> OpResult {
        let exists = self.dirs[dir].expected.contains_key(name);
        let result = self.env.remove_file(&path(dir, name));
        let took_effect = match &result {
            Ok(()) => true,
            Err(error) => is_crash(error),
        };
        if took_effect && exists {
            self.dir(dir).apply(DirChange::Unlink { name: name.to_owned() });
        }
        result.or_else(crashed_or_ignore)
    }

    fn op_sync_dir(&mut self, dir: &'static str) -> OpResult {
        match self.env.sync_dir(&PathBuf::from(format!("/{dir}"))) {
            Ok(()) => {
                self.dir(dir).synced();
                self.acknowledge_sync();
                Ok(())
            }
            Err(error) if is_crash(&error) => Err(Stop::Crashed),
            Err(_) => {
                self.dir(dir).sync_failed();
                Ok(())
            }
        }
    }

    /// Counts a sync that returned `Ok` and notes the new durable watermark in the trace.
    fn acknowledge_sync(&mut self) {
        self.syncs_acknowledged += 1;
        self.env.note(format!("watermark durable-syncs={}", self.syncs_acknowledged));
    }

    /// Reads both clocks and sometimes sleeps: the wall clock may jump, even backwards, but
    /// the monotonic clock must never go back, crashes included.
    fn op_clock(&mut self, sleep_us: Option<u64>) -> OpResult {
        if let Some(sleep_us) = sleep_us {
            self.env.sleep(Duration::from_micros(sleep_us));
        }
        let wall = self.env.now_wall();
        let now = self.env.now_monotonic();
        if now < self.monotonic_seen {
            return Err(self.violation(
                ViolationKind::Read,
                format!("monotonic clock went back from {:?} to {now:?}", self.monotonic_seen),
            ));
        }
        self.monotonic_seen = now;
        self.env.note(format!("op {}: wall clock {wall:?}", self.op_index));
        Ok(())
    }

    fn op_list(&mut self, dir: &'static str) -> OpResult {
        match self.env.list_dir(&PathBuf::from(format!("/{dir}"))) {
            Ok(names) => {
                let expected: Vec<&String> = self.dirs[dir].expected.keys().collect();
                if names.iter().collect::<Vec<_>>() != expected {
                    return Err(self.violation(
                        ViolationKind::Read,
                        format!("list /{dir}: got {names:?}, the model has {expected:?}"),
                    ));
                }
                Ok(())
            }
            Err(error) => crashed_or_ignore(error),
        }
    }
}

mod recovery;
