//! The stable driver's mutator: seeded, deterministic byte-string mutations of a seed input
//! (bit flips, byte overwrites with interesting values, truncation, extension, insertion,
//! removal, duplication of a slice), the classic AFL set, bounded in length.
//!
//! Invariant: the same seed and input give the same mutations; an output never exceeds
//! [`INPUT_BYTES_MAX`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest mutated input, in bytes.
pub const INPUT_BYTES_MAX: usize = 256 * 1024;

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x40];

/// A seeded mutator.
pub struct Mutator {
    rng: ChaCha8Rng,
}

impl Mutator {
    /// A mutator drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// A number below `n` (at least 1).
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    /// `input` with one to eight mutations applied.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..self.rng.random_range(1..=8) {
            self.mutate_once(&mut out);
        }
        out.truncate(INPUT_BYTES_MAX);
        out
    }

    fn mutate_once(&mut self, out: &mut Vec<u8>) {
        let len = out.len();
        match self.rng.random_range(0..8) {
            0 if len > 0 => {
                let at = self.below(len);
                out[at] ^= 1 << self.rng.random_range(0..8);
            }
            1 if len > 0 => {
                let at = self.below(len);
                out[at] = INTERESTING[self.below(INTERESTING.len())];
            }
            2 if len > 0 => {
                let at = self.below(len);
                out[at] = self.rng.random();
            }
            3 => out.truncate(self.below(len + 1)),
            4 => {
                let extra = self.below(64);
                out.extend((0..extra).map(|_| self.rng.random::<u8>()));
            }
            5 if len > 0 => {
                let (start, end) = self.range(len);
                out.drain(start..end);
            }
            6 if len > 0 => {
                let (start, end) = self.range(len);
                let slice = out[start..end].to_vec();
                let at = self.below(out.len() + 1);
                out.splice(at..at, slice);
            }
            _ if len >= 4 => {
                // A little-endian u32 field set to an extreme value.
                let at = self.below(len - 3);
                let value = [0u32, 1, u32::MAX, u32::MAX / 2 + 1, 4096][self.below(5)];
                out[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            _ => out.push(self.rng.random()),
        }
    }

    fn range(&mut self, len: usize) -> (usize, usize) {
        let start = self.below(len);
        let end = start + 1 + self.below((len - start).min(64));
        (start, end.min(len))
    }
}
