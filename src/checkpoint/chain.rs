//! Building one packed [`Run`] from a checkpoint chain: the full checkpoint's sorted `DATA`
//! stream packed as it is decoded, and every incremental of the chain folded in by one k-way
//! merge (newest increment winning), not entry-by-entry inserts into a map.
//!
//! # Invariants
//!
//! - the merged run equals applying the increments to the full image one by one, oldest first
//!   (a put sets the key, a delete removes it; within one increment no key is both);
//! - memory stays near one copy of the state: the merge consumes the full image from the
//!   front in slices of at most [`MERGE_SLICE_ENTRIES`] entries, so the blocks it copied are
//!   freed as the new run grows (see [`Run::consume`]).

use super::data::DataSink;
use super::run::Run;

/// Entries of the full image copied between two frees of its consumed blocks.
const MERGE_SLICE_ENTRIES: usize = 4096;

/// The entries of one `DATA` file as decoded: its puts and (for an incremental) its deletes,
/// each a packed run (a delete's value is empty).
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub(super) puts: Run,
    pub(super) deletes: Run,
}

impl DataSink for Changes {
    fn counts(&mut self, puts: usize, deletes: usize) {
        self.puts = Run::with_capacity(puts);
        self.deletes = Run::with_capacity(deletes);
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.puts.push(key, value);
    }

    fn is_put(&self, key: &[u8]) -> bool {
        self.puts.get(key).is_some()
    }

    fn delete(&mut self, key: &[u8]) {
        self.deletes.push(key, &[]);
    }
}

/// One sorted source of a merge: the entries left of a puts or a deletes run.
struct Head<'a> {
    entries: std::iter::Peekable<super::run::RunIter<'a>>,
    deletes: bool,
}

/// The state of `base` (a full image) with `changes` (increments, oldest first) applied.
pub(super) fn merge_chain(mut base: Run, changes: &[Changes]) -> Run {
    if changes.iter().all(|c| c.puts.is_empty() && c.deletes.is_empty()) {
        return base;
    }
    let capacity = base.len() + changes.iter().map(|c| c.puts.len()).sum::<usize>();
    let mut out = Run::with_capacity(capacity);
    // Newest first, so the first head holding a key is the one that wins.
    let mut heads: Vec<Head<'_>> = changes
        .iter()
        .rev()
        .flat_map(|c| [(&c.puts, false), (&c.deletes, true)])
        .map(|(run, deletes)| Head { entries: run.iter().peekable(), deletes })
        .collect();
    loop {
        let next = heads.iter_mut().filter_map(|h| h.entries.peek().map(|&(k, _)| k)).min();
        // Copy the base below the next changed key, a slice at a time.
        let below = next.map_or(base.len(), |key| base.lower_bound_from_front(key));
        let slice = below.min(MERGE_SLICE_ENTRIES);
        for (key, value) in base.iter().take(slice) {
            out.push(key, value);
        }
        base.consume(slice);
        if slice < below {
            continue;
        }
        let Some(key) = next else { break };
        let mut newest = None;
        for head in &mut heads {
            if let Some(&(k, value)) = head.entries.peek()
                && k == key
            {
                head.entries.next();
                newest.get_or_insert((!head.deletes).then_some(value));
            }
        }
        if base.iter().next().is_some_and(|(k, _)| k == key) {
            base.consume(1);
        }
        if let Some(Some(value)) = newest {
            out.push(key, value);
        }
    }
    debug_assert!(base.is_empty(), "the whole base was merged");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn changes(puts: &[(&str, &str)], deletes: &[&str]) -> Changes {
        Changes {
            puts: puts.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect(),
            deletes: deletes.iter().map(|k| (k.as_bytes(), &b""[..])).collect(),
        }
    }

    fn entries(run: &Run) -> Vec<(String, String)> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        run.iter().map(|(k, v)| (text(k), text(v))).collect()
    }

    #[test]
    fn a_chain_merges_newest_first_like_applying_it_oldest_first() {
        let base: Run = [("a", "0"), ("b", "0"), ("c", "0"), ("e", "0")].into_iter().collect();
        let chain = [
            changes(&[("b", "1"), ("d", "1")], &["c"]),
            changes(&[("c", "2")], &["b", "e"]),
            changes(&[("f", "3")], &["a", "zz"]),
        ];
        let mut model: BTreeMap<String, String> = entries(&base).into_iter().collect();
        for c in &chain {
            for (k, _) in entries(&c.deletes) {
                model.remove(&k);
            }
            model.extend(entries(&c.puts));
        }
        let merged = merge_chain(base, &chain);
        assert_eq!(entries(&merged), model.into_iter().collect::<Vec<_>>());
        assert_eq!(entries(&merged), [("c", "2"), ("d", "1"), ("f", "3")].map(|(k, v)| (k.into(), v.into())));
    }

    #[test]
    fn a_long_base_is_copied_in_slices_around_the_changes() {
        let keys: Vec<String> = (0..3 * MERGE_SLICE_ENTRIES).map(|i| format!("k{i:08}")).collect();
        let base: Run = keys.iter().map(|k| (k.as_bytes(), &[7u8; 300][..])).collect();
        let last = keys.last().map(String::as_str).unwrap_or_default();
        let chain = [changes(&[(last, "new")], &["k00000000"])];
        let merged = merge_chain(base, &chain);
        assert_eq!(merged.len(), keys.len() - 1);
        assert_eq!(merged.get(last.as_bytes()), Some(&b"new"[..]));
        assert_eq!(merged.get(b"k00000000"), None);
        assert_eq!(merged.entry(0).0, b"k00000001");
    }
}
