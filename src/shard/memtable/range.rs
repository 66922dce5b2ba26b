//! [`MemRange`]: a memtable's entries in key order, the merge of its two sorted key-number
//! lists (`sorted` and `recent`, see the parent module's docs), walked from either end.

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::RwLockReadGuard;

use super::{KeyHash, Memtable, Order, SeededHash};

/// Entries of a memtable in key order, a merge of its two sorted lists; holds the order's
/// read lock.
pub struct MemRange<'a, H = SeededHash> {
    pub(super) table: &'a Memtable<H>,
    pub(super) order: RwLockReadGuard<'a, Order>,
    pub(super) sorted: Range<usize>,
    pub(super) recent: Range<usize>,
}

impl<H> std::fmt::Debug for MemRange<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemRange").field("sorted", &self.sorted).field("recent", &self.recent).finish()
    }
}

impl<'a, H: KeyHash> MemRange<'a, H> {
    /// The next key number from the front (`back`: from the back) of the merge.
    fn take(&mut self, back: bool) -> Option<u32> {
        let (sorted, recent) = (&self.order.sorted, &self.order.recent);
        let pick = |r: &Range<usize>| {
            if back {
                r.end.checked_sub(1).filter(|&e| e >= r.start)
            } else {
                (r.start < r.end).then_some(r.start)
            }
        };
        let from_sorted = match (pick(&self.sorted), pick(&self.recent)) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(r)) => (self.table.cmp_keys(sorted[s], recent[r]) == Ordering::Less) != back,
        };
        let (list, range) = if from_sorted { (sorted, &mut self.sorted) } else { (recent, &mut self.recent) };
        let at = if back {
            range.end -= 1;
            range.end
        } else {
            range.start += 1;
            range.start - 1
        };
        Some(list[at])
    }

    fn item(&self, number: u32) -> (&'a [u8], Option<&'a [u8]>) {
        let table: &'a Memtable<H> = self.table;
        table.entry(table.keys[number as usize])
    }
}

impl<'a, H: KeyHash> Iterator for MemRange<'a, H> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        self.take(false).map(|n| self.item(n))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.sorted.len() + self.recent.len();
        (len, Some(len))
    }
}

impl<H: KeyHash> DoubleEndedIterator for MemRange<'_, H> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.take(true).map(|n| self.item(n))
    }
}

impl<H: KeyHash> ExactSizeIterator for MemRange<'_, H> {}
