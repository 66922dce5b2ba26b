//! Crash-image enumeration: every post-crash disk image the fault model allows at one point of
//! a run, each in its own fork of the machine.
//!
//! The crash rules of `crash.rs` make every choice through a [`Chooser`]. An [`Odometer`] walks
//! the tree of those choices depth first: one run of the rules (a leaf) follows a prefix of
//! choices, takes the first legal option at every choice point past it, and records each
//! point's legal options; the next prefix increments the deepest point that has a legal option
//! left and drops the points after it. Each leaf resolves its own copy of the disk; a disk equal
//! to one seen before is kept once.
//!
//! Invariants:
//! - an option is legal iff its weight is positive, so the walk reaches exactly the images a
//!   `RandomChooser` can draw, except that garbage is one kind of fill, not 256 values per byte:
//!   every garbage byte of an enumerated image comes from [`GARBAGE_PATTERN`];
//! - the rules are deterministic given their choices, so following a prefix meets the same
//!   choice points again (asserted: every followed choice is legal where it is made, and no run
//!   ends inside its prefix);
//! - each leaf is visited once, in lexicographic order of its choice sequence, so the same
//!   machine state gives the same images in the same order;
//! - the walk is bounded: past `images_max` distinct images, or `images_max *
//!   LEAVES_PER_IMAGE_MAX` leaves, it stops and `images_max` images drawn by `RandomChooser`s
//!   take the place of the enumerated ones, their seeds derived from the machine's seed and
//!   call index only (no fault stream is drawn from);
//! - the machine enumerated is never changed: every image is a fork of it.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::SimEnv;
use super::crash::{self, Chooser, RandomChooser, Resolution};
use super::fs::{Fs, Node};
use super::state::State;
use super::trace::StableHasher;

/// What the garbage bytes of an enumerated image cycle through: never zero, so a garbage
/// sector is told apart from a zeroed one.
pub(crate) const GARBAGE_PATTERN: [u8; 4] = [0xDE, 0xAD, 0xBE, 0xEF];

/// Runs of the crash rules a walk may make per image it may return. Leaves outnumber distinct
/// images because different choices can give the same disk: a tear whose every sector landed
/// is the whole write surviving, old bytes past the durable end are zeros, and every choice
/// about a file whose directory entry is lost vanishes with the file.
const LEAVES_PER_IMAGE_MAX: usize = 16;

/// The outcome of enumerating post-crash images.
#[derive(Debug)]
pub struct CrashImages {
    /// One forked machine per image, each already crashed into that image (call `restart()`).
    pub images: Vec<SimEnv>,
    /// `true` if `images` holds every legal image; `false` if there were more than the bound
    /// and they were sampled.
    pub exhaustive: bool,
}

impl SimEnv {
    fn from_state(state: State) -> SimEnv {
        SimEnv { shared: Arc::new(Mutex::new(state)) }
    }

    /// A deep, independent copy of the whole simulated machine (disk, clocks, fault streams
    /// and schedule, trace, stats). Handles and locks of `self` do not carry over: the fork has
    /// none open, so a file that only an open handle of `self` kept alive is gone from it.
    ///
    /// The fork keeps the seed and continues the trace from the fork point: the same calls on
    /// `self` and on its fork draw the same faults and give the same trace.
    pub fn fork(&self) -> SimEnv {
        let state = self.lock();
        SimEnv::from_state(state.fork_with(state.fs.clone()))
    }

    /// Every legal post-crash image of the machine's current pending state, as forks; `self`
    /// is left untouched. Beyond `images_max` images, `images_max` images drawn at random
    /// (deterministically from the seed and the current call index) instead.
    ///
    /// Identical disks are returned once. Garbage fill is one kind of image, not one per byte
    /// value (its bytes cycle through a fixed non-zero pattern). The walk also gives up, and
    /// samples, after `images_max * 16` runs of the crash rules, for when many choices give
    /// the same disk. Sampled images may repeat. A machine down after a machine crash has one
    /// image: a fork of it as it is; down after a process crash, its page cache resolves.
    ///
    /// # Panics
    ///
    /// If `images_max` is 0.
    pub fn crash_images(&self, images_max: usize) -> CrashImages {
        assert!(images_max > 0, "crash_images needs room for at least one image");
        let state = self.lock();
        // After a machine crash nothing is pending; after a process crash the page cache is
        // still there to resolve.
        if state.crashed && !state.cache_kept {
            let image = SimEnv::from_state(state.fork_with(state.fs.clone()));
            return CrashImages { images: vec![image], exhaustive: true };
        }
        let (images, exhaustive) = match enumerate(&state, images_max) {
            Some(disks) => (enumerated(&state, disks), true),
            None => (sampled(&state, images_max), false),
        };
        CrashImages { images: images.into_iter().map(SimEnv::from_state).collect(), exhaustive }
    }
}

/// Every distinct post-crash disk of `state`, in walk order, with what the first leaf that
/// made it did to the pending state; `None` past `images_max` disks or the leaf budget.
fn enumerate(state: &State, images_max: usize) -> Option<Vec<(Fs, Resolution)>> {
    let mut distinct = Distinct::default();
    let finished = walk(images_max.saturating_mul(LEAVES_PER_IMAGE_MAX), |chooser| {
        let mut fs = state.fs.clone();
        let resolution = crash::crash(&mut fs, &state.options, chooser);
        distinct.insert(fs, resolution);
        match distinct.images.len() > images_max {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    });
    finished.then_some(distinct.images)
}

/// Forks of `state`, each crashed into one of `disks`.
fn enumerated(state: &State, disks: Vec<(Fs, Resolution)>) -> Vec<State> {
    let count = disks.len();
    let images = disks.into_iter().enumerate().map(|(index, (fs, resolution))| {
        let text = format!("crash image {}/{count} enumerated {resolution:?}", index + 1);
        die_as_image(state.fork_with(fs), resolution, text)
    });
    images.collect()
}

/// `images_max` forks of `state`, each crashed into an image drawn at random.
fn sampled(state: &State, images_max: usize) -> Vec<State> {
    let mut seeds = sample_rng(state.seed, state.call);
    let images = (0..images_max).map(|index| {
        let image_seed: u64 = seeds.random();
        let mut fs = state.fs.clone();
        let resolution = crash::crash(&mut fs, &state.options, &mut RandomChooser::new(image_seed));
        let text = format!(
            "crash image {}/{images_max} sampled image_seed={image_seed:#x} {resolution:?}",
            index + 1
        );
        die_as_image(state.fork_with(fs), resolution, text)
    });
    images.collect()
}

fn die_as_image(mut image: State, resolution: Resolution, text: String) -> State {
    image.stats.crash_images += 1;
    image.die(resolution, text);
    image
}

/// The seeds of sampled images: a stream of its own, keyed by the machine's seed and call
/// index, so sampling never draws from (and never shifts) a fault stream.
fn sample_rng(seed: u64, call: u64) -> ChaCha8Rng {
    let mut key = [0; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&call.to_le_bytes());
    key[16..].copy_from_slice(b"crash-images-v1\0");
    ChaCha8Rng::from_seed(key)
}

/// Disks kept once each, in the order first seen; equal disks are found by digest first.
#[derive(Default)]
struct Distinct {
    images: Vec<(Fs, Resolution)>,
    by_digest: BTreeMap<u64, Vec<usize>>,
}

impl Distinct {
    fn insert(&mut self, fs: Fs, resolution: Resolution) {
        let same_digest = self.by_digest.entry(digest(&fs)).or_default();
        if same_digest.iter().any(|&index| self.images[index].0 == fs) {
            return;
        }
        same_digest.push(self.images.len());
        self.images.push((fs, resolution));
    }
}

/// A digest of a post-crash disk (where live equals durable and nothing is pending).
fn digest(fs: &Fs) -> u64 {
    let mut hasher = StableHasher::default();
    for (&id, node) in &fs.nodes {
        hasher.write_u64(id);
        match node {
            Node::File(file) => {
                hasher.write_u64(file.durable.len() as u64);
                hasher.write(&file.durable);
            }
            Node::Dir(dir) => {
                for (name, &child) in &dir.durable {
                    hasher.write(name.as_bytes());
                    hasher.write_u64(child);
                }
            }
        }
    }
    hasher.finish()
}

/// Runs `leaf` once per leaf of the choice tree, in order, until it breaks or `leaves_max`
/// leaves ran. Returns whether every leaf ran.
fn walk(leaves_max: usize, mut leaf: impl FnMut(&mut dyn Chooser) -> ControlFlow<()>) -> bool {
    let mut prefix = Vec::new();
    for _ in 0..leaves_max {
        let mut odometer = Odometer::following(prefix);
        if leaf(&mut odometer).is_break() {
            return false;
        }
        match odometer.next_prefix() {
            Some(next) => prefix = next,
            None => return true,
        }
    }
    false
}

/// One choice point met by a run: what was chosen, out of which legal options (ascending).
struct ChoicePoint {
    chosen: usize,
    legal: Vec<usize>,
}

/// A chooser that follows a prefix of choices, then takes the first legal option, recording
/// every choice point.
struct Odometer {
    prefix: Vec<usize>,
    points: Vec<ChoicePoint>,
    garbage_bytes: usize,
}

impl Odometer {
    fn following(prefix: Vec<usize>) -> Self {
        Self { prefix, points: Vec::new(), garbage_bytes: 0 }
    }

    /// The prefix of the next leaf, or `None` after the last one.
    fn next_prefix(&self) -> Option<Vec<usize>> {
        assert!(self.points.len() >= self.prefix.len(), "a run ended inside the prefix it followed");
        let (depth, next) = self.points.iter().enumerate().rev().find_map(|(depth, point)| {
            let next = point.legal.iter().copied().find(|&option| option > point.chosen)?;
            Some((depth, next))
        })?;
        let mut prefix: Vec<usize> = self.points[..depth].iter().map(|point| point.chosen).collect();
        prefix.push(next);
        Some(prefix)
    }
}

impl Chooser for Odometer {
    fn pick(&mut self, weights: &[u32]) -> usize {
        let legal: Vec<usize> = (0..weights.len()).filter(|&index| weights[index] > 0).collect();
        let chosen = match self.prefix.get(self.points.len()) {
            Some(&chosen) => chosen,
            None => *legal.first().expect("at least one weight must be positive"),
        };
        assert!(legal.contains(&chosen), "a followed choice {chosen} is not legal for weights {weights:?}");
        self.points.push(ChoicePoint { chosen, legal });
        chosen
    }

    fn garbage(&mut self) -> u8 {
        let byte = GARBAGE_PATTERN[self.garbage_bytes % GARBAGE_PATTERN.len()];
        self.garbage_bytes += 1;
        byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf's choices, for a tree given by `points` (the weights at each depth).
    fn leaves(points: &[&[u32]], leaves_max: usize) -> (Vec<Vec<usize>>, bool) {
        let mut seen = Vec::new();
        let finished = walk(leaves_max, |chooser| {
            seen.push(points.iter().map(|weights| chooser.pick(weights)).collect());
            ControlFlow::Continue(())
        });
        (seen, finished)
    }

    #[test]
    fn walk_visits_every_legal_leaf_in_order_skipping_zero_weights() {
        let (seen, finished) = leaves(&[&[1, 0, 3], &[2, 2]], 100);
        assert!(finished);
        assert_eq!(seen, vec![vec![0, 0], vec![0, 1], vec![2, 0], vec![2, 1]]);
    }

    #[test]
    fn walk_follows_choice_points_that_depend_on_earlier_choices() {
        let mut seen = Vec::new();
        let finished = walk(100, |chooser| {
            let first = chooser.pick(&[1, 1]);
            let second = if first == 0 { Some(chooser.pick(&[1, 1, 1])) } else { None };
            seen.push((first, second));
            ControlFlow::Continue(())
        });
        assert!(finished);
        assert_eq!(seen, vec![(0, Some(0)), (0, Some(1)), (0, Some(2)), (1, None)]);
    }

    #[test]
    fn walk_without_choices_has_one_leaf_and_stops_at_its_budget() {
        assert_eq!(leaves(&[], 1), (vec![vec![]], true));
        let (seen, finished) = leaves(&[&[1, 1], &[1, 1]], 3);
        assert!(!finished);
        assert_eq!(seen.len(), 3);
    }
}
