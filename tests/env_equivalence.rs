//! SimEnv with faults off behaves like OsEnv: any sequence of Env calls gives the same return
//! values, file contents, lengths, sorted listings and error kinds on both.
//!
//! The generator works over a tiny name space (`a`, `b`, `c`, sometimes `LOCK`, at depth 0–2)
//! so that collisions and error paths are common: a component that is a file, a missing
//! parent, a directory where a file is expected, a second lock of a locked directory.
//! Error *kinds* are compared, never messages.
//!
//! Two things are kept out of the generated calls on purpose:
//! - `remove_dir` of the root and `rename` onto it: the OS side's root is a temporary
//!   directory, not `/`, where Linux answers differently (`rmdir("/")` is `EBUSY`,
//!   `rmdir(tmp)` succeeds). Plain tests below pin what the contract says for both.
//! - removing or replacing a `LOCK` file: the `Env::lock_dir` contract leaves that
//!   unspecified (on Linux the lock lives on the file's inode, not the directory).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, LOCK_FILE_NAME, OpenOptions, OsEnv};

/// Largest file offset the generator uses, so files stay small.
const OFFSET_MAX_BYTES: u64 = 1500;
/// Largest write or read the generator uses.
const IO_LEN_MAX_BYTES: usize = 700;
/// Handles and locks are picked by an index modulo how many are open.
const INDEX_MAX: usize = 8;

/// A path below the root, as names. Empty is the root itself.
type Names = Vec<&'static str>;

#[derive(Clone, Debug)]
enum Op {
    Open { path: Names, options: OpenOptions },
    WriteAt { handle: usize, offset: u64, data: Vec<u8> },
    ReadAt { handle: usize, offset: u64, len: usize },
    Len { handle: usize },
    SetLen { handle: usize, len: u64 },
    SyncData { handle: usize },
    SyncAll { handle: usize },
    Append { handle: usize, data: Vec<u8> },
    DropHandle { handle: usize },
    CreateDir { path: Names },
    RemoveDir { path: Names },
    ListDir { path: Names },
    Rename { from: Names, to: Names },
    RemoveFile { path: Names },
    Exists { path: Names },
    SyncDir { path: Names },
    LockDir { path: Names },
    DropLock { lock: usize },
}

/// What one call returned, comparable across environments.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Unit,
    Bool(bool),
    Count(usize),
    Offset(u64),
    Bytes(Vec<u8>),
    Names(Vec<String>),
    /// The op named a handle or lock and none is open.
    Skipped,
}

type Outcome = Result<Value, io::ErrorKind>;

fn name() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just("a"), 3 => Just("b"), 3 => Just("c"), 1 => Just(LOCK_FILE_NAME)]
}

/// A path at depth 1–2.
fn child_path() -> impl Strategy<Value = Names> {
    prop_oneof![3 => name().prop_map(|name| vec![name]), 2 => proptest::collection::vec(name(), 2)]
}

/// A path at depth 1–2 whose last name is not `LOCK` (for calls that remove or replace it).
fn plain_child_path() -> impl Strategy<Value = Names> {
    child_path().prop_filter("LOCK must stay put", |names| names.last() != Some(&LOCK_FILE_NAME))
}

/// A path at depth 0–2 (the root now and then).
fn any_path() -> impl Strategy<Value = Names> {
    prop_oneof![1 => Just(Vec::new()), 9 => child_path()]
}

/// Like [`any_path`], but never a `LOCK` file.
fn plain_any_path() -> impl Strategy<Value = Names> {
    prop_oneof![1 => Just(Vec::new()), 9 => plain_child_path()]
}

fn open_options() -> impl Strategy<Value = OpenOptions> {
    let presets = prop_oneof![
        1 => Just(OpenOptions::read_only()),
        1 => Just(OpenOptions::read_write()),
        3 => Just(OpenOptions::create()),
        1 => Just(OpenOptions::create_new()),
        1 => Just(OpenOptions::create().truncate(true)),
        1 => Just(OpenOptions::read_write().truncate(true)),
    ];
    // Every flag combination, the invalid ones included.
    let any = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(read, write, create, create_new, truncate)| OpenOptions {
            read,
            write,
            create,
            create_new,
            truncate,
        },
    );
    prop_oneof![3 => presets, 1 => any]
}

/// Mostly small; now and then at the edge of what a Linux file offset can be, where both
/// must refuse the same way (`InvalidInput` past `i64::MAX`, `FileTooLarge` below it).
fn offset(max: u64) -> impl Strategy<Value = u64> {
    let edge = i64::MAX as u64;
    prop_oneof![
        40 => 0..max,
        1 => Just(edge - 1),
        1 => Just(edge),
        1 => Just(edge + 1),
        1 => Just(u64::MAX),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..IO_LEN_MAX_BYTES)
}

fn op() -> impl Strategy<Value = Op> {
    let handle = 0..INDEX_MAX;
    prop_oneof![
        8 => (any_path(), open_options()).prop_map(|(path, options)| Op::Open { path, options }),
        5 => (handle.clone(), offset(OFFSET_MAX_BYTES), data())
            .prop_map(|(handle, offset, data)| Op::WriteAt { handle, offset, data }),
        4 => (handle.clone(), offset(OFFSET_MAX_BYTES), 0..IO_LEN_MAX_BYTES)
            .prop_map(|(handle, offset, len)| Op::ReadAt { handle, offset, len }),
        1 => handle.clone().prop_map(|handle| Op::Len { handle }),
        2 => (handle.clone(), offset(2 * OFFSET_MAX_BYTES)).prop_map(|(handle, len)| Op::SetLen { handle, len }),
        1 => handle.clone().prop_map(|handle| Op::SyncData { handle }),
        1 => handle.clone().prop_map(|handle| Op::SyncAll { handle }),
        2 => (handle.clone(), data()).prop_map(|(handle, data)| Op::Append { handle, data }),
        2 => handle.prop_map(|handle| Op::DropHandle { handle }),
        4 => child_path().prop_map(|path| Op::CreateDir { path }),
        2 => child_path().prop_map(|path| Op::RemoveDir { path }),
        2 => any_path().prop_map(|path| Op::ListDir { path }),
        3 => (plain_any_path(), plain_child_path()).prop_map(|(from, to)| Op::Rename { from, to }),
        2 => plain_any_path().prop_map(|path| Op::RemoveFile { path }),
        1 => any_path().prop_map(|path| Op::Exists { path }),
        1 => any_path().prop_map(|path| Op::SyncDir { path }),
        2 => any_path().prop_map(|path| Op::LockDir { path }),
        1 => (0..INDEX_MAX).prop_map(|lock| Op::DropLock { lock }),
    ]
}

/// One environment with the handles and locks the ops opened on it.
struct Side<E: Env> {
    env: E,
    root: PathBuf,
    handles: Vec<E::File>,
    locks: Vec<E::DirLock>,
}

impl<E: Env> Side<E> {
    fn new(env: E, root: PathBuf) -> Self {
        Self { env, root, handles: Vec::new(), locks: Vec::new() }
    }

    fn path(&self, names: &[&str]) -> PathBuf {
        names.iter().fold(self.root.clone(), |path, name| path.join(name))
    }

    fn handle(&self, index: usize) -> Option<&E::File> {
        if self.handles.is_empty() { None } else { self.handles.get(index % self.handles.len()) }
    }

    fn on_handle(&self, index: usize, call: impl FnOnce(&E::File) -> io::Result<Value>) -> Outcome {
        match self.handle(index) {
            Some(file) => call(file).map_err(|error| error.kind()),
            None => Ok(Value::Skipped),
        }
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Open { path, options } => {
                let file = self.env.open(&self.path(path), *options).map_err(|error| error.kind())?;
                self.handles.push(file);
                Ok(Value::Unit)
            }
            Op::WriteAt { handle, offset, data } => {
                self.on_handle(*handle, |file| file.write_at(data, *offset).map(Value::Count))
            }
            Op::ReadAt { handle, offset, len } => self.on_handle(*handle, |file| {
                let mut buf = vec![0; *len];
                let read = file.read_at(&mut buf, *offset)?;
                buf.truncate(read);
                Ok(Value::Bytes(buf))
            }),
            Op::Len { handle } => self.on_handle(*handle, |file| file.len().map(Value::Offset)),
            Op::SetLen { handle, len } => {
                self.on_handle(*handle, |file| file.set_len(*len).map(|()| Value::Unit))
            }
            Op::SyncData { handle } => self.on_handle(*handle, |file| file.sync_data().map(|()| Value::Unit)),
            Op::SyncAll { handle } => self.on_handle(*handle, |file| file.sync_all().map(|()| Value::Unit)),
            Op::Append { handle, data } => {
                self.on_handle(*handle, |file| file.append(data).map(Value::Offset))
            }
            Op::DropHandle { handle } => {
                if self.handles.is_empty() {
                    return Ok(Value::Skipped);
                }
                self.handles.remove(handle % self.handles.len());
                Ok(Value::Unit)
            }
            Op::DropLock { lock } => {
                if self.locks.is_empty() {
                    return Ok(Value::Skipped);
                }
                self.locks.remove(lock % self.locks.len());
                Ok(Value::Unit)
            }
            _ => self.apply_path_op(op).map_err(|error| error.kind()),
        }
    }

    fn apply_path_op(&mut self, op: &Op) -> io::Result<Value> {
        let env = &self.env;
        match op {
            Op::CreateDir { path } => env.create_dir(&self.path(path)).map(|()| Value::Unit),
            Op::RemoveDir { path } => env.remove_dir(&self.path(path)).map(|()| Value::Unit),
            Op::ListDir { path } => env.list_dir(&self.path(path)).map(Value::Names),
            Op::Rename { from, to } => env.rename(&self.path(from), &self.path(to)).map(|()| Value::Unit),
            Op::RemoveFile { path } => env.remove_file(&self.path(path)).map(|()| Value::Unit),
            Op::Exists { path } => env.exists(&self.path(path)).map(Value::Bool),
            Op::SyncDir { path } => env.sync_dir(&self.path(path)).map(|()| Value::Unit),
            Op::LockDir { path } => {
                let lock = env.lock_dir(&self.path(path))?;
                self.locks.push(lock);
                Ok(Value::Unit)
            }
            _ => unreachable!("handle ops are applied by `apply`"),
        }
    }

    /// Every entry below the root, read through the Env: a directory's listing or a file's
    /// bytes.
    fn tree(&self) -> io::Result<BTreeMap<String, Value>> {
        let mut tree = BTreeMap::new();
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            let names = self.env.list_dir(&self.root.join(&dir))?;
            for name in &names {
                let relative = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
                let path = self.root.join(&relative);
                match self.env.list_dir(&path) {
                    Ok(_) => stack.push(relative.clone()),
                    Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
                        let file = self.env.open(&path, OpenOptions::read_only())?;
                        let mut bytes = vec![0; usize::try_from(file.len()?).expect("small file")];
                        file.read_exact_at(&mut bytes, 0)?;
                        tree.insert(relative, Value::Bytes(bytes));
                        continue;
                    }
                    Err(error) => return Err(error),
                }
                tree.insert(relative, Value::Unit);
            }
            tree.insert(format!("{dir}/"), Value::Names(names));
        }
        Ok(tree)
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(256)
}

fn sim_env() -> SimEnv {
    SimEnv::new(7, FaultOptions::default()).expect("default fault options are valid")
}

/// Runs `ops` on both environments and returns what each op gave (the same on both), or
/// the first divergence, described.
fn run_both(ops: &[Op]) -> Result<Vec<Outcome>, String> {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut sim = Side::new(sim_env(), PathBuf::from("/"));
    let mut os = Side::new(OsEnv::new(), tmp.path().to_path_buf());
    let mut outcomes = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let (sim_outcome, os_outcome) = (sim.apply(op), os.apply(op));
        if sim_outcome != os_outcome {
            return Err(format!("op {index} {op:?}: sim {sim_outcome:?}, os {os_outcome:?}"));
        }
        outcomes.push(sim_outcome);
    }
    let (sim_tree, os_tree) = (sim.tree().map_err(|e| e.kind()), os.tree().map_err(|e| e.kind()));
    if sim_tree != os_tree {
        return Err(format!("final trees differ:\nsim {sim_tree:?}\nos  {os_tree:?}"));
    }
    Ok(outcomes)
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise (a long hunt: PROPTEST_CASES=20000).
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn env_sim_and_os_agree_on_any_call_sequence(ops in proptest::collection::vec(op(), 1..40)) {
        if let Err(divergence) = run_both(&ops) {
            prop_assert!(false, "{}", divergence);
        }
    }
}

/// `a/b` as names; `""` is the root.
fn p(path: &'static str) -> Names {
    path.split('/').filter(|name| !name.is_empty()).collect()
}

fn create(path: &'static str) -> Op {
    Op::Open { path: p(path), options: OpenOptions::create() }
}

fn mkdir(path: &'static str) -> Op {
    Op::CreateDir { path: p(path) }
}

/// Runs `ops` on both environments, asserts they agree, and returns the last op's outcome.
fn last_outcome(ops: &[Op]) -> Outcome {
    match run_both(ops) {
        Ok(outcomes) => outcomes.last().cloned().expect("at least one op"),
        Err(divergence) => panic!("{divergence}"),
    }
}

// Found by the property test: SimEnv refused the root with `InvalidInput` ("the root has no
// parent") where OsEnv said `IsADirectory`.
#[test]
fn env_open_of_the_root_is_a_directory() {
    use io::ErrorKind::{AlreadyExists, IsADirectory};
    assert_eq!(
        last_outcome(&[Op::Open { path: p(""), options: OpenOptions::read_only() }]),
        Err(IsADirectory)
    );
    assert_eq!(last_outcome(&[Op::Open { path: p(""), options: OpenOptions::create() }]), Err(IsADirectory));
    assert_eq!(
        last_outcome(&[Op::Open { path: p(""), options: OpenOptions::create_new() }]),
        Err(AlreadyExists)
    );
}

// Linux answers `O_CREAT | O_EXCL` on a directory with `EEXIST`; both Envs used to say
// `IsADirectory` first.
#[test]
fn env_create_new_on_a_directory_is_already_exists() {
    let open = |options| Op::Open { path: p("a"), options };
    assert_eq!(
        last_outcome(&[mkdir("a"), open(OpenOptions::create_new())]),
        Err(io::ErrorKind::AlreadyExists)
    );
    assert_eq!(last_outcome(&[mkdir("a"), open(OpenOptions::create())]), Err(io::ErrorKind::IsADirectory));
    assert_eq!(last_outcome(&[mkdir("a"), open(OpenOptions::read_only())]), Err(io::ErrorKind::IsADirectory));
}

// Found by the property test: Linux refuses to rename a file onto a directory that holds it
// with `ENOTEMPTY` (it checks ancestry before `EISDIR`); the contract says `IsADirectory`.
#[test]
fn env_rename_of_a_file_onto_its_own_directory_is_a_directory() {
    let rename = Op::Rename { from: p("c/x"), to: p("c") };
    assert_eq!(last_outcome(&[mkdir("c"), create("c/x"), rename]), Err(io::ErrorKind::IsADirectory));
}

// SimEnv used to look for the source before resolving the target's parent; Linux resolves
// both parents first.
#[test]
fn env_rename_resolves_the_target_parent_before_the_source() {
    let rename = Op::Rename { from: p("b"), to: p("a/x") };
    assert_eq!(last_outcome(&[create("a"), rename]), Err(io::ErrorKind::NotADirectory));
    let rename = Op::Rename { from: p("b"), to: p("c/x") };
    assert_eq!(last_outcome(&[rename]), Err(io::ErrorKind::NotFound));
}

#[test]
fn env_rename_of_a_directory_is_unsupported_whatever_the_target() {
    use io::ErrorKind::Unsupported;
    assert_eq!(last_outcome(&[mkdir("a"), Op::Rename { from: p("a"), to: p("b/x") }]), Err(Unsupported));
    assert_eq!(
        last_outcome(&[mkdir("a"), create("b"), Op::Rename { from: p("a"), to: p("b/x") }]),
        Err(Unsupported)
    );
    assert_eq!(last_outcome(&[Op::Rename { from: p(""), to: p("a") }]), Err(Unsupported));
}

#[test]
fn env_rename_onto_the_root_or_a_directory_is_a_directory() {
    use io::ErrorKind::IsADirectory;
    assert_eq!(last_outcome(&[create("a"), Op::Rename { from: p("a"), to: p("") }]), Err(IsADirectory));
    assert_eq!(
        last_outcome(&[create("a"), mkdir("b"), Op::Rename { from: p("a"), to: p("b") }]),
        Err(IsADirectory)
    );
}

#[test]
fn env_rename_of_a_file_onto_itself_does_nothing() {
    let ops =
        [create("a"), Op::Append { handle: 0, data: b"x".to_vec() }, Op::Rename { from: p("a"), to: p("a") }];
    assert_eq!(last_outcome(&ops), Ok(Value::Unit));
}

// Found by the property test: SimEnv refused the root with `InvalidInput`.
#[test]
fn env_remove_file_of_the_root_is_a_directory() {
    assert_eq!(last_outcome(&[Op::RemoveFile { path: p("") }]), Err(io::ErrorKind::IsADirectory));
}

#[test]
fn env_exists_below_a_file_is_not_a_directory() {
    assert_eq!(
        last_outcome(&[create("a"), Op::Exists { path: p("a/b") }]),
        Err(io::ErrorKind::NotADirectory)
    );
    assert_eq!(last_outcome(&[Op::Exists { path: p("a/b") }]), Ok(Value::Bool(false)));
}

#[test]
fn env_second_lock_of_a_directory_would_block_until_the_first_drops() {
    let lock = || Op::LockDir { path: p("a") };
    let ops = [mkdir("a"), lock(), lock()];
    assert_eq!(last_outcome(&ops), Err(io::ErrorKind::WouldBlock));
    let ops = [mkdir("a"), lock(), Op::DropLock { lock: 0 }, lock()];
    assert_eq!(last_outcome(&ops), Ok(Value::Unit));
    // The lock file stays, so the directory is no longer empty.
    let ops = [mkdir("a"), lock(), Op::DropLock { lock: 0 }, Op::RemoveDir { path: p("a") }];
    assert_eq!(last_outcome(&ops), Err(io::ErrorKind::DirectoryNotEmpty));
}

#[test]
fn env_lock_of_a_file_or_over_a_lock_directory_fails() {
    assert_eq!(last_outcome(&[create("a"), Op::LockDir { path: p("a") }]), Err(io::ErrorKind::NotADirectory));
    assert_eq!(last_outcome(&[mkdir("LOCK"), Op::LockDir { path: p("") }]), Err(io::ErrorKind::IsADirectory));
}

// SimEnv used to panic (or exhaust memory) on an offset no Linux file can have.
#[test]
fn env_offsets_past_i64_max_are_invalid_input() {
    use io::ErrorKind::InvalidInput;
    let past = i64::MAX as u64 + 1;
    let write = |offset, data: &[u8]| Op::WriteAt { handle: 0, offset, data: data.to_vec() };
    assert_eq!(last_outcome(&[create("a"), write(past, b"x")]), Err(InvalidInput));
    assert_eq!(last_outcome(&[create("a"), write(past, b"")]), Err(InvalidInput));
    assert_eq!(last_outcome(&[create("a"), write(past - 2, b"xyz")]), Err(InvalidInput));
    assert_eq!(
        last_outcome(&[create("a"), Op::ReadAt { handle: 0, offset: past, len: 1 }]),
        Err(InvalidInput)
    );
    assert_eq!(last_outcome(&[create("a"), Op::SetLen { handle: 0, len: past }]), Err(InvalidInput));
    // Within range, reading far past the end is just the end of the file.
    assert_eq!(
        last_outcome(&[create("a"), Op::ReadAt { handle: 0, offset: 1 << 62, len: 1 }]),
        Ok(Value::Bytes(vec![]))
    );
}

#[test]
fn env_access_the_handle_was_not_opened_for_is_permission_denied() {
    use io::ErrorKind::PermissionDenied;
    let read_only = Op::Open { path: p("a"), options: OpenOptions::read_only() };
    let write_only =
        Op::Open { path: p("a"), options: OpenOptions { write: true, ..OpenOptions::default() } };
    let write = Op::WriteAt { handle: 1, offset: 0, data: b"x".to_vec() };
    assert_eq!(last_outcome(&[create("a"), read_only.clone(), write]), Err(PermissionDenied));
    assert_eq!(
        last_outcome(&[create("a"), read_only.clone(), Op::SetLen { handle: 1, len: 0 }]),
        Err(PermissionDenied)
    );
    assert_eq!(last_outcome(&[create("a"), read_only, Op::SyncData { handle: 1 }]), Ok(Value::Unit));
    assert_eq!(
        last_outcome(&[create("a"), write_only, Op::ReadAt { handle: 1, offset: 0, len: 1 }]),
        Err(PermissionDenied)
    );
}

#[test]
fn env_handle_of_a_removed_file_keeps_its_bytes() {
    let ops = [
        create("a"),
        Op::WriteAt { handle: 0, offset: 3, data: b"xyz".to_vec() },
        Op::RemoveFile { path: p("a") },
        Op::ReadAt { handle: 0, offset: 0, len: 10 },
    ];
    assert_eq!(last_outcome(&ops), Ok(Value::Bytes(b"\0\0\0xyz".to_vec())));
}

// Not comparable with OsEnv, whose root here is a temporary directory (removable) rather
// than `/` (`EBUSY` on Linux).
#[test]
fn env_sim_root_cannot_be_removed() {
    let sim = sim_env();
    assert_eq!(sim.remove_dir(Path::new("/")).map_err(|e| e.kind()), Err(io::ErrorKind::ResourceBusy));
    assert!(sim.exists(Path::new("/")).expect("exists"));
}

// The simulator keeps files in memory, so it stops far below a real file system's limit,
// with Linux's error rather than by exhausting memory.
#[test]
fn env_sim_files_past_the_size_limit_are_file_too_large() {
    use stormhold::env::sim::FILE_SIZE_MAX_BYTES;
    let sim = sim_env();
    let file = sim.open(Path::new("/a"), OpenOptions::create()).expect("open");
    let kind = |result: io::Result<()>| result.map_err(|e| e.kind());
    assert_eq!(kind(file.write_at(b"x", FILE_SIZE_MAX_BYTES).map(drop)), Err(io::ErrorKind::FileTooLarge));
    assert_eq!(kind(file.set_len(FILE_SIZE_MAX_BYTES + 1)), Err(io::ErrorKind::FileTooLarge));
    assert_eq!(file.write_at(b"", FILE_SIZE_MAX_BYTES).expect("empty write"), 0);
    assert_eq!(file.len().expect("len"), 0);
}
