//! The base entries that WAL replay overwrote in place, and how an incremental checkpoint
//! lists them beside the frozen layer.
//!
//! Replay writes a same-length overwrite of a key the recovered base holds into the base run
//! itself ([`crate::checkpoint::run::Run::overwrite_value`]) instead of the delta memtable:
//! the run is uniquely owned then, and the value needs no second copy (issue 11, recovery
//! memory). The base then differs from the checkpoint it came from, so the keys changed since
//! that checkpoint are the delta's **and** the base positions marked here: a bitmap over the
//! base's live positions, one bit an entry (an eighth of a byte against the entry's 100 B or
//! more), allocated at the first mark.
//!
//! # Invariants
//!
//! - every marked position is below the base's length, and the base is never consumed or
//!   replaced while a mark is set (marks are taken only with no frozen layer and no merge,
//!   and [`super::State::freeze`] moves them into the view with the base they index);
//! - `count` is the number of set bits.

use std::iter::Peekable;

/// A set of base positions (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Touched {
    words: Vec<u64>,
    count: usize,
}

impl Touched {
    /// Marks position `n` of a base of `len` entries.
    pub fn mark(&mut self, n: usize, len: usize) {
        debug_assert!(n < len, "position {n} of a base of {len}");
        if self.words.is_empty() {
            self.words = vec![0; len.div_ceil(64)];
        }
        let (word, bit) = (&mut self.words[n / 64], 1u64 << (n % 64));
        if *word & bit == 0 {
            *word |= bit;
            self.count += 1;
        }
    }

    /// Marked positions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no position is marked.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The marked positions at or past `from`, ascending.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        let first_word = from / 64;
        self.words.iter().enumerate().skip(first_word).flat_map(move |(w, &word)| {
            // Bits below `from` in its own word are masked off.
            let word = if w == first_word { word & (u64::MAX << (from % 64)) } else { word };
            BitsOf(word).map(move |bit| w * 64 + bit)
        })
    }
}

/// The set bits of a word, lowest first.
struct BitsOf(u64);

impl Iterator for BitsOf {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

/// Two sorted change streams as one, `newer` winning a key both hold: the frozen layer over
/// the base entries overwritten in place.
pub struct Changes<N: Iterator, O: Iterator> {
    /// The frozen layer's changes.
    pub newer: Peekable<N>,
    /// The base entries overwritten in place.
    pub older: Peekable<O>,
}

impl<'a, N, O> Iterator for Changes<N, O>
where
    N: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    O: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.newer.peek(), self.older.peek()) {
            (Some(&(n, _)), Some(&(o, _))) if o < n => self.older.next(),
            (Some(&(n, _)), Some(&(o, _))) => {
                if o == n {
                    self.older.next();
                }
                self.newer.next()
            }
            (Some(_), None) => self.newer.next(),
            (None, _) => self.older.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_counted_once_and_listed_in_order_from_any_position() {
        let mut touched = Touched::default();
        assert!(touched.is_empty());
        let marks = [0usize, 1, 63, 64, 65, 127, 128, 200, 299];
        for &n in marks.iter().rev().chain(&marks) {
            touched.mark(n, 300);
        }
        assert_eq!(touched.len(), marks.len());
        for from in 0..=300 {
            let expected: Vec<usize> = marks.iter().copied().filter(|&n| n >= from).collect();
            assert_eq!(touched.iter_from(from).collect::<Vec<_>>(), expected, "from {from}");
        }
    }

    #[test]
    fn the_newer_stream_wins_a_key_both_hold() {
        let newer: Vec<(&[u8], Option<&[u8]>)> = vec![(b"b", Some(b"n")), (b"c", None), (b"e", Some(b"n"))];
        let older: Vec<(&[u8], Option<&[u8]>)> =
            vec![(b"a", Some(b"o")), (b"c", Some(b"o")), (b"f", Some(b"o"))];
        let merged: Vec<_> =
            Changes { newer: newer.into_iter().peekable(), older: older.into_iter().peekable() }.collect();
        let expected: Vec<(&[u8], Option<&[u8]>)> = vec![
            (b"a", Some(b"o")),
            (b"b", Some(b"n")),
            (b"c", None),
            (b"e", Some(b"n")),
            (b"f", Some(b"o")),
        ];
        assert_eq!(merged, expected);
    }
}
