//! The simulated file system: nodes with a durable image and pending changes. No faults here.
//!
//! Invariants:
//! - every file has `live == durable` with every pending write applied in order (the
//!   misdirected target of a write matters only for the durable image);
//! - every directory has `live == durable` with every pending entry operation applied in order;
//! - the root directory (node 0) always exists and is never unlinked;
//! - errors carry the kind Linux gives for the same call (see the `Env` docs).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use crate::env::OpenOptions;

/// Identifies a file or directory node (an inode).
pub(crate) type NodeId = u64;

/// The root directory.
pub(crate) const ROOT: NodeId = 0;

/// A change to a file that is visible but not yet durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PendingWrite {
    /// Bytes written at `offset`; when they reach the disk they land at `disk_offset`
    /// (different only for a misdirected write).
    Write { offset: u64, disk_offset: u64, data: Vec<u8> },
    /// A truncate or extend.
    SetLen { len: u64 },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileNode {
    pub durable: Vec<u8>,
    pub live: Vec<u8>,
    pub pending: Vec<PendingWrite>,
    /// Sector indices whose reads fail forever (latent media errors).
    pub bad_sectors: BTreeSet<u64>,
    /// Where the last write before the last successful sync went (its intended range): the
    /// `TargetRegion::LastSyncedWrite` of targeted media faults.
    pub last_synced_write: Option<Range<u64>>,
}

/// A change to a directory entry that is visible but not yet durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DirOp {
    Link { name: String, node: NodeId },
    Unlink { name: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DirNode {
    pub durable: BTreeMap<String, NodeId>,
    pub live: BTreeMap<String, NodeId>,
    pub pending: Vec<DirOp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    File(FileNode),
    Dir(DirNode),
}

pub(crate) fn error(kind: io::ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, message)
}

/// Splits a path into its names; `/`, `.` and a leading root are ignored, `..` is refused.
pub(crate) fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => match name.to_str() {
                Some(name) => names.push(name.to_owned()),
                None => return Err(error(io::ErrorKind::InvalidInput, format!("non-UTF-8 path {path:?}"))),
            },
            Component::ParentDir | Component::Prefix(_) => {
                return Err(error(
                    io::ErrorKind::InvalidInput,
                    format!("unsupported path {}", path.display()),
                ));
            }
        }
    }
    Ok(names)
}

/// The largest file the simulator keeps, in bytes. Files live in memory, so the limit is far
/// below a real file system's (16 TiB on ext4); past it, writes and `set_len` fail with
/// `FileTooLarge` as Linux fails past its limit, instead of exhausting memory on a garbage
/// offset.
pub const FILE_SIZE_MAX_BYTES: u64 = 1 << 30;

/// Checks a byte range the way Linux checks `pread`/`pwrite` before anything else:
/// `InvalidInput` if it ends past `i64::MAX` (Linux file offsets are signed).
pub(crate) fn check_range(offset: u64, len: usize) -> io::Result<()> {
    let end = offset.checked_add(len as u64);
    if end.is_none_or(|end| end > i64::MAX as u64) {
        return Err(error(io::ErrorKind::InvalidInput, format!("range {offset}+{len} ends past i64::MAX")));
    }
    Ok(())
}

/// How many of `len` bytes a write at `offset` may write: all of them, or the part below
/// [`FILE_SIZE_MAX_BYTES`] (a short write, as Linux does at its limit); `FileTooLarge` if
/// none fits, `InvalidInput` as [`check_range`]. Writing nothing is always allowed.
pub(crate) fn writable_len(offset: u64, len: usize) -> io::Result<usize> {
    check_range(offset, len)?;
    if len == 0 {
        return Ok(0);
    }
    if offset >= FILE_SIZE_MAX_BYTES {
        return Err(error(
            io::ErrorKind::FileTooLarge,
            format!("write at {offset} past the simulated file size limit"),
        ));
    }
    Ok(len.min((FILE_SIZE_MAX_BYTES - offset) as usize))
}

/// Checks a new file length: `InvalidInput` past `i64::MAX`, `FileTooLarge` past
/// [`FILE_SIZE_MAX_BYTES`].
pub(crate) fn check_len(len_bytes: u64) -> io::Result<()> {
    check_range(len_bytes, 0)?;
    if len_bytes > FILE_SIZE_MAX_BYTES {
        return Err(error(
            io::ErrorKind::FileTooLarge,
            format!("length {len_bytes} past the simulated file size limit"),
        ));
    }
    Ok(())
}

/// Writes `data` at `offset` of `bytes`, zero-filling any gap.
pub(crate) fn write_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

/// Where the last name of a path lives.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot<'a> {
    /// The path is the root directory itself.
    Root,
    /// `name` in the directory `parent` (which may or may not hold it).
    Entry { parent: NodeId, name: &'a str },
}

/// Equality compares whole disks, pending state included: crash images are deduplicated by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fs {
    pub nodes: BTreeMap<NodeId, Node>,
    next_id: NodeId,
}

impl Fs {
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        Self { nodes, next_id: ROOT + 1 }
    }

    pub fn dir(&self, id: NodeId) -> &DirNode {
        match self.nodes.get(&id) {
            Some(Node::Dir(dir)) => dir,
            _ => panic!("node {id} is not a directory"),
        }
    }

    pub fn dir_mut(&mut self, id: NodeId) -> &mut DirNode {
        match self.nodes.get_mut(&id) {
            Some(Node::Dir(dir)) => dir,
            _ => panic!("node {id} is not a directory"),
        }
    }

    pub fn file(&self, id: NodeId) -> &FileNode {
        match self.nodes.get(&id) {
            Some(Node::File(file)) => file,
            _ => panic!("node {id} is not a file"),
        }
    }

    pub fn file_mut(&mut self, id: NodeId) -> &mut FileNode {
        match self.nodes.get_mut(&id) {
            Some(Node::File(file)) => file,
            _ => panic!("node {id} is not a file"),
        }
    }

    pub fn is_dir(&self, id: NodeId) -> bool {
        matches!(self.nodes.get(&id), Some(Node::Dir(_)))
    }

    /// Resolves `names` in the live tree.
    pub fn resolve(&self, names: &[String], path: &Path) -> io::Result<NodeId> {
        let mut at = ROOT;
        for name in names {
            if !self.is_dir(at) {
                return Err(error(
                    io::ErrorKind::NotADirectory,
                    format!("{}: not a directory", path.display()),
                ));
            }
            at = *self.dir(at).live.get(name).ok_or_else(|| {
                error(io::ErrorKind::NotFound, format!("{}: no such file or directory", path.display()))
            })?;
        }
        Ok(at)
    }

    /// Resolves the directory that holds the last name of `names` (the root holds itself).
    /// `NotFound` or `NotADirectory` if a component before the last is missing or a file.
    pub fn slot<'a>(&self, names: &'a [String], path: &Path) -> io::Result<Slot<'a>> {
        let Some((last, parents)) = names.split_last() else { return Ok(Slot::Root) };
        let parent = self.resolve(parents, path)?;
        if !self.is_dir(parent) {
            return Err(error(io::ErrorKind::NotADirectory, format!("{}: not a directory", path.display())));
        }
        Ok(Slot::Entry { parent, name: last })
    }

    /// The node a slot names in the live tree, if any.
    pub fn node_at(&self, slot: Slot<'_>) -> Option<NodeId> {
        match slot {
            Slot::Root => Some(ROOT),
            Slot::Entry { parent, name } => self.dir(parent).live.get(name).copied(),
        }
    }

    fn new_node(&mut self, node: Node) -> NodeId {
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.insert(id, node);
        id
    }

    fn link(&mut self, dir: NodeId, name: &str, node: NodeId) {
        let dir = self.dir_mut(dir);
        dir.live.insert(name.to_owned(), node);
        dir.pending.push(DirOp::Link { name: name.to_owned(), node });
    }

    fn unlink(&mut self, dir: NodeId, name: &str) {
        let dir = self.dir_mut(dir);
        dir.live.remove(name);
        dir.pending.push(DirOp::Unlink { name: name.to_owned() });
    }

    /// Opens (and maybe creates or truncates) a file; returns its node. Like Linux `open`,
    /// `create_new` on any existing entry, a directory included, is `AlreadyExists`.
    pub fn open(&mut self, names: &[String], path: &Path, options: OpenOptions) -> io::Result<NodeId> {
        let slot = self.slot(names, path)?;
        let node = match (self.node_at(slot), slot) {
            (Some(_), _) if options.create_new => {
                return Err(error(
                    io::ErrorKind::AlreadyExists,
                    format!("{} already exists", path.display()),
                ));
            }
            (Some(id), _) if self.is_dir(id) => {
                return Err(error(io::ErrorKind::IsADirectory, format!("{} is a directory", path.display())));
            }
            (Some(id), _) => id,
            (None, Slot::Entry { parent, name }) if options.create || options.create_new => {
                let id = self.new_node(Node::File(FileNode::default()));
                self.link(parent, name, id);
                id
            }
            (None, _) => {
                return Err(error(io::ErrorKind::NotFound, format!("{}: no such file", path.display())));
            }
        };
        if options.truncate && !self.file(node).live.is_empty() {
            self.set_len(node, 0);
        }
        Ok(node)
    }

    pub fn write(&mut self, node: NodeId, offset: u64, data: &[u8], disk_offset: u64) {
        let file = self.file_mut(node);
        write_into(&mut file.live, offset, data);
        file.pending.push(PendingWrite::Write { offset, disk_offset, data: data.to_vec() });
    }

    pub fn set_len(&mut self, node: NodeId, len: u64) {
        let file = self.file_mut(node);
        file.live.resize(len as usize, 0);
        file.pending.push(PendingWrite::SetLen { len });
    }

    pub fn create_dir(&mut self, names: &[String], path: &Path) -> io::Result<()> {
        let slot = self.slot(names, path)?;
        match (self.node_at(slot), slot) {
            (None, Slot::Entry { parent, name }) => {
                let id = self.new_node(Node::Dir(DirNode::default()));
                self.link(parent, name, id);
                Ok(())
            }
            _ => Err(error(io::ErrorKind::AlreadyExists, format!("{} already exists", path.display()))),
        }
    }

    /// Removes an empty directory. The root is never removed: `ResourceBusy`, as Linux
    /// answers `rmdir("/")`.
    pub fn remove_dir(&mut self, names: &[String], path: &Path) -> io::Result<()> {
        let slot = self.slot(names, path)?;
        let Slot::Entry { parent, name } = slot else {
            return Err(error(
                io::ErrorKind::ResourceBusy,
                format!("{}: the root cannot be removed", path.display()),
            ));
        };
        match self.node_at(slot).map(|id| &self.nodes[&id]) {
            None => Err(error(io::ErrorKind::NotFound, format!("{}: no such directory", path.display()))),
            Some(Node::Dir(dir)) if !dir.live.is_empty() => {
                Err(error(io::ErrorKind::DirectoryNotEmpty, format!("{} is not empty", path.display())))
            }
            Some(Node::Dir(_)) => {
                self.unlink(parent, name);
                Ok(())
            }
            Some(Node::File(_)) => {
                Err(error(io::ErrorKind::NotADirectory, format!("{} is not a directory", path.display())))
            }
        }
    }

    pub fn list(&self, names: &[String], path: &Path) -> io::Result<Vec<String>> {
        let id = self.resolve(names, path)?;
        match self.nodes.get(&id) {
            Some(Node::Dir(dir)) => Ok(dir.live.keys().cloned().collect()),
            _ => Err(error(io::ErrorKind::NotADirectory, format!("{} is not a directory", path.display()))),
        }
    }

    /// Renames a file, checking in Linux's order: both parents (`NotFound`, `NotADirectory`),
    /// then the source (`NotFound`), then the target (`IsADirectory`). A directory source is
    /// `Unsupported` as soon as its parent resolves, as on `OsEnv`, whatever the target.
    pub fn rename(&mut self, from: (&[String], &Path), to: (&[String], &Path)) -> io::Result<()> {
        let from_slot = self.slot(from.0, from.1)?;
        let node = self.node_at(from_slot);
        if node.is_some_and(|id| self.is_dir(id)) {
            return Err(error(
                io::ErrorKind::Unsupported,
                format!("Env renames files only; {} is a directory", from.1.display()),
            ));
        }
        let to_slot = self.slot(to.0, to.1)?;
        let node = node
            .ok_or_else(|| error(io::ErrorKind::NotFound, format!("{}: no such file", from.1.display())))?;
        match self.node_at(to_slot) {
            Some(id) if self.is_dir(id) => {
                return Err(error(io::ErrorKind::IsADirectory, format!("{} is a directory", to.1.display())));
            }
            Some(id) if id == node => return Ok(()),
            _ => {}
        }
        // Neither slot is the root: the root is a directory.
        let (
            Slot::Entry { parent: from_parent, name: from_name },
            Slot::Entry { parent: to_parent, name: to_name },
        ) = (from_slot, to_slot)
        else {
            unreachable!("a file is never the root");
        };
        self.unlink(from_parent, from_name);
        self.link(to_parent, to_name, node);
        Ok(())
    }

    pub fn remove_file(&mut self, names: &[String], path: &Path) -> io::Result<()> {
        let slot = self.slot(names, path)?;
        match (self.node_at(slot), slot) {
            (None, _) => Err(error(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))),
            (Some(id), Slot::Entry { parent, name }) if !self.is_dir(id) => {
                self.unlink(parent, name);
                Ok(())
            }
            _ => Err(error(io::ErrorKind::IsADirectory, format!("{} is a directory", path.display()))),
        }
    }

    /// Every name each node has, live or durable (a name in both counts once), with the path
    /// of its parent: in node order, names in path order.
    pub fn names(&self) -> BTreeMap<NodeId, Vec<(PathBuf, String)>> {
        let mut names: BTreeMap<NodeId, Vec<(PathBuf, String)>> = BTreeMap::new();
        let mut stack = vec![(ROOT, PathBuf::from("/"))];
        let mut seen = BTreeSet::new();
        while let Some((id, path)) = stack.pop() {
            let Some(Node::Dir(dir)) = self.nodes.get(&id) else { continue };
            if !seen.insert(id) {
                continue;
            }
            let entries: BTreeSet<(&String, NodeId)> =
                dir.live.iter().chain(dir.durable.iter()).map(|(name, &node)| (name, node)).collect();
            for (name, node) in entries {
                let slot = names.entry(node).or_default();
                if !slot.iter().any(|(parent, other)| *parent == path && other == name) {
                    slot.push((path.clone(), name.clone()));
                }
                stack.push((node, path.join(name)));
            }
        }
        names
    }

    /// Bytes the live files take: what `disk_bytes_max` limits. Files no longer reachable
    /// from the live tree count while `open` holds them.
    pub fn used_bytes(&self, open: &BTreeSet<NodeId>) -> u64 {
        let reachable = self.reachable(|dir| dir.live.values().copied().collect(), open);
        reachable
            .iter()
            .filter_map(|id| match self.nodes.get(id) {
                Some(Node::File(file)) => Some(file.live.len() as u64),
                _ => None,
            })
            .sum()
    }

    /// Nodes reachable from the root through the entries `entries` gives for each directory,
    /// plus `extra` roots.
    pub fn reachable(
        &self,
        entries: impl Fn(&DirNode) -> Vec<NodeId>,
        extra: &BTreeSet<NodeId>,
    ) -> BTreeSet<NodeId> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<NodeId> = vec![ROOT];
        stack.extend(extra.iter().copied());
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(Node::Dir(dir)) = self.nodes.get(&id) {
                stack.extend(entries(dir));
            }
        }
        seen
    }

    /// Drops nodes that nothing can reach any more: not the live tree, the durable tree, a
    /// pending link, nor an open handle in `open`.
    pub fn collect_garbage(&mut self, open: &BTreeSet<NodeId>) {
        let keep = self.reachable(
            |dir| {
                let pending = dir.pending.iter().filter_map(|op| match op {
                    DirOp::Link { node, .. } => Some(*node),
                    DirOp::Unlink { .. } => None,
                });
                dir.live.values().chain(dir.durable.values()).copied().chain(pending).collect()
            },
            open,
        );
        self.nodes.retain(|id, _| keep.contains(id));
    }
}
