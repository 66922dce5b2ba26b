//! Turning pending state into a post-crash disk image.
//!
//! Owns the rules of what may survive a crash or a failed sync:
//! - each pending write survives whole, is lost, or is torn; a torn write keeps its new bytes
//!   in any subset of the sectors it touches, and each other sector holds old bytes, zeros or
//!   garbage; with powersafe overwrite only the written bytes of a sector can change, without
//!   it the whole sector can;
//! - each pending `set_len` survives or is lost;
//! - pending directory operations survive independently, or as a prefix in ordered mode; a
//!   rename within one directory is one operation (its unlink and link survive together), so
//!   an unsynced rename leaves the file under its old name or its new one, never neither;
//! - after a crash, only nodes reachable from the root through durable entries remain, and
//!   the live view equals the durable one.
//!
//! Every choice goes through a [`Chooser`], so the same rules serve random sampling and
//! systematic enumeration of images (`images.rs`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::fs::{DirNode, DirOp, FileNode, Fs, Node, NodeId, PendingWrite, write_into};
use super::options::{DirOrdering, FaultOptions};

/// Makes the choices of one crash image.
pub(crate) trait Chooser {
    /// Picks an index into `weights` with probability proportional to its weight.
    fn pick(&mut self, weights: &[u32]) -> usize;
    /// A garbage byte.
    fn garbage(&mut self) -> u8;
}

/// Draws every choice from a ChaCha stream seeded with the image seed.
pub(crate) struct RandomChooser(ChaCha8Rng);

impl RandomChooser {
    pub fn new(image_seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(image_seed))
    }
}

impl Chooser for RandomChooser {
    fn pick(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        assert!(total > 0, "at least one weight must be positive");
        let mut roll = self.0.random_range(0..total);
        for (index, &weight) in weights.iter().enumerate() {
            if roll < u64::from(weight) {
                return index;
            }
            roll -= u64::from(weight);
        }
        unreachable!("roll below the total weight")
    }

    fn garbage(&mut self) -> u8 {
        self.0.random()
    }
}

/// What happened to pending writes when they were resolved, for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub writes_survived: u64,
    pub writes_lost: u64,
    pub writes_torn: u64,
    pub dir_ops_lost: u64,
}

const FATE_SURVIVE: usize = 0;
const FATE_LOSE: usize = 1;
const FILL_OLD: usize = 0;
const FILL_ZERO: usize = 1;

/// Applies the surviving part of each pending write of `file` to its durable image and
/// clears the pending list. The live view is left alone.
pub(crate) fn resolve_file(
    file: &mut FileNode,
    options: &FaultOptions,
    chooser: &mut dyn Chooser,
) -> Resolution {
    let mut resolution = Resolution::default();
    let fate = options.write_fate;
    for pending in std::mem::take(&mut file.pending) {
        match pending {
            PendingWrite::SetLen { len } => {
                if chooser.pick(&[1, 1]) == 0 {
                    file.durable.resize(len as usize, 0);
                }
            }
            PendingWrite::Write { disk_offset, data, .. } => {
                match chooser.pick(&[fate.survive, fate.lose, fate.tear]) {
                    FATE_SURVIVE => {
                        write_into(&mut file.durable, disk_offset, &data);
                        resolution.writes_survived += 1;
                    }
                    FATE_LOSE => resolution.writes_lost += 1,
                    _ => {
                        tear(&mut file.durable, disk_offset, &data, options, chooser);
                        resolution.writes_torn += 1;
                    }
                }
            }
        }
    }
    resolution
}

/// Writes `data` at `offset` of `durable` sector by sector, each sector independently landing
/// or holding old bytes, zeros or garbage.
fn tear(durable: &mut Vec<u8>, offset: u64, data: &[u8], options: &FaultOptions, chooser: &mut dyn Chooser) {
    let sector = u64::from(options.sector_size_bytes);
    let end = offset + data.len() as u64;
    if (durable.len() as u64) < end {
        durable.resize(end as usize, 0);
    }
    let fill = options.tear_fill;
    let mut sector_start = offset - offset % sector;
    while sector_start < end {
        let sector_end = sector_start + sector;
        let written = sector_start.max(offset)..sector_end.min(end);
        if chooser.pick(&[1, 1]) == 0 {
            let source = (written.start - offset) as usize..(written.end - offset) as usize;
            durable[written.start as usize..written.end as usize].copy_from_slice(&data[source]);
        } else {
            let damaged = if options.powersafe_overwrite {
                written
            } else {
                sector_start..sector_end.min(durable.len() as u64)
            };
            match chooser.pick(&[fill.old, fill.zero, fill.garbage]) {
                FILL_OLD => {}
                FILL_ZERO => durable[damaged.start as usize..damaged.end as usize].fill(0),
                _ => {
                    for byte in &mut durable[damaged.start as usize..damaged.end as usize] {
                        *byte = chooser.garbage();
                    }
                }
            }
        }
        sector_start = sector_end;
    }
}

fn apply(entries: &mut BTreeMap<String, NodeId>, op: &DirOp) {
    match op {
        DirOp::Link { name, node } => {
            entries.insert(name.clone(), *node);
        }
        DirOp::Unlink { name } => {
            entries.remove(name);
        }
    }
}

/// Splits the pending operations of a directory into the entry operations that survive or
/// vanish whole: one `DirOp` each, except a rename within the directory, which the file
/// system records as an `Unlink` of a name directly followed by a `Link` of the node that
/// name held. (Resolving those two apart could lose a durable file under both names, which
/// no journaling file system does.)
fn entry_operations(durable: &BTreeMap<String, NodeId>, pending: &[DirOp]) -> Vec<Range<usize>> {
    let mut entries = durable.clone();
    let mut operations = Vec::new();
    let mut start = 0;
    while start < pending.len() {
        let renamed = match (&pending[start], pending.get(start + 1)) {
            (DirOp::Unlink { name }, Some(DirOp::Link { node, .. })) => entries.get(name) == Some(node),
            _ => false,
        };
        let end = start + if renamed { 2 } else { 1 };
        pending[start..end].iter().for_each(|op| apply(&mut entries, op));
        operations.push(start..end);
        start = end;
    }
    operations
}

/// Applies the surviving pending operations of `dir` to its durable entries.
pub(crate) fn resolve_dir(dir: &mut DirNode, ordering: DirOrdering, chooser: &mut dyn Chooser) -> Resolution {
    let pending = std::mem::take(&mut dir.pending);
    let operations = entry_operations(&dir.durable, &pending);
    let kept: Vec<bool> = match ordering {
        DirOrdering::Independent => operations.iter().map(|_| chooser.pick(&[1, 1]) == 0).collect(),
        DirOrdering::Ordered => {
            let weights = vec![1; operations.len() + 1];
            let prefix = chooser.pick(&weights);
            (0..operations.len()).map(|index| index < prefix).collect()
        }
    };
    let mut resolution = Resolution::default();
    for (operation, keep) in operations.into_iter().zip(kept) {
        if keep {
            pending[operation].iter().for_each(|op| apply(&mut dir.durable, op));
        } else {
            resolution.dir_ops_lost += operation.len() as u64;
        }
    }
    resolution
}

/// Crashes the whole file system: resolves every pending change, then keeps only what the
/// durable tree reaches and makes the live view equal the durable one.
pub(crate) fn crash(fs: &mut Fs, options: &FaultOptions, chooser: &mut dyn Chooser) -> Resolution {
    let mut total = Resolution::default();
    let ids: Vec<NodeId> = fs.nodes.keys().copied().collect();
    for id in ids {
        let resolution = match fs.nodes.get_mut(&id) {
            Some(Node::File(file)) => resolve_file(file, options, chooser),
            Some(Node::Dir(dir)) => resolve_dir(dir, options.dir_ordering, chooser),
            None => continue,
        };
        total.writes_survived += resolution.writes_survived;
        total.writes_lost += resolution.writes_lost;
        total.writes_torn += resolution.writes_torn;
        total.dir_ops_lost += resolution.dir_ops_lost;
    }
    let keep = fs.reachable(|dir| dir.durable.values().copied().collect(), &BTreeSet::new());
    fs.nodes.retain(|id, _| keep.contains(id));
    for node in fs.nodes.values_mut() {
        match node {
            Node::File(file) => file.live = file.durable.clone(),
            Node::Dir(dir) => dir.live = dir.durable.clone(),
        }
    }
    total
}
