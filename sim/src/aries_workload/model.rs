//! The `aries` workload's reference model: the page data at the last recovery, then the
//! commits since in commit (log) order, and how many of them were acknowledged durable.
//!
//! Deliberately dumb: vectors of bytes and the writes of each committed transaction, nothing
//! from the kernel but the lsn type. Commits are totally ordered by the single log, so the
//! recovered data must equal the state after exactly the first `k` commits, for some `k` at or
//! past the last durable acknowledgement: that one comparison checks durability (no durable
//! commit lost), atomicity (no commit half there) and no invention (no aborted or loser
//! transaction's byte survives: every update writes bytes drawn at random).

use stormhold::wal::Lsn;

use super::pages::{PAGE_DATA_BYTES, PAGES};

/// The writes of one transaction: (page, offset, bytes), in order.
pub type Writes = Vec<(u64, u32, Vec<u8>)>;

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Model {
    base: Vec<Vec<u8>>,
    /// Commits since the base, with their Commit lsn (`Lsn::MAX` while the call is running).
    commits: Vec<(Lsn, Writes)>,
    /// Commits acknowledged durable (a prefix of `commits`).
    durable: usize,
}

impl Default for Model {
    fn default() -> Self {
        Self { base: vec![vec![0; PAGE_DATA_BYTES]; PAGES as usize], commits: Vec::new(), durable: 0 }
    }
}

/// How recovered data failed the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// It equals an older state than the durable one: an acknowledged commit is gone.
    Lost(String),
    /// It equals no committed state: a loser's or aborted transaction's bytes, or half a
    /// commit.
    Invented(String),
}

fn apply(state: &mut [Vec<u8>], writes: &Writes) {
    for (page, offset, bytes) in writes {
        let at = *offset as usize;
        state[*page as usize][at..at + bytes.len()].copy_from_slice(bytes);
    }
}

impl Model {
    /// The state after the first `commits` commits.
    pub fn state_after(&self, commits: usize) -> Vec<Vec<u8>> {
        let mut state = self.base.clone();
        for (_, writes) in &self.commits[..commits] {
            apply(&mut state, writes);
        }
        state
    }

    /// The live view: every commit, then the open transactions' writes (which touch pages
    /// no other open transaction holds).
    pub fn live<'a>(&self, open: impl IntoIterator<Item = &'a Writes>) -> Vec<Vec<u8>> {
        let mut state = self.state_after(self.commits.len());
        for writes in open {
            apply(&mut state, writes);
        }
        state
    }

    /// A commit is being made (its outcome is unknown until [`Model::committed`]).
    pub fn committing(&mut self, writes: Writes) {
        self.commits.push((Lsn::MAX, writes));
    }

    /// The last commit returned `Ok` with lsn `lsn`.
    pub fn committed(&mut self, lsn: Lsn) {
        if let Some(last) = self.commits.last_mut() {
            last.0 = lsn;
        }
    }

    /// The log is durable up to `durable_lsn` (the log's own answer).
    pub fn durable_to(&mut self, durable_lsn: Lsn) {
        self.durable = self.durable.max(self.commits.partition_point(|(lsn, _)| *lsn <= durable_lsn));
    }

    /// Commits acknowledged durable, and commits made.
    pub fn counts(&self) -> (usize, usize) {
        (self.durable, self.commits.len())
    }

    /// Checks recovered `data`; on success the model is rebased on it.
    pub fn check_and_rebase(&mut self, data: Vec<Vec<u8>>) -> Result<(), Mismatch> {
        if (self.durable..=self.commits.len()).any(|k| self.state_after(k) == data) {
            *self = Self { base: data, commits: Vec::new(), durable: 0 };
            return Ok(());
        }
        let (durable, made) = self.counts();
        let differs = |state: &[Vec<u8>]| {
            (0..PAGES as usize).find(|&p| state[p] != data[p]).map_or(String::new(), |p| {
                let at = (0..PAGE_DATA_BYTES).find(|&i| state[p][i] != data[p][i]).unwrap_or(0);
                format!("page {p} byte {at}: expected {}, got {}", state[p][at], data[p][at])
            })
        };
        let first = differs(&self.state_after(durable));
        let detail = format!(
            "recovered pages equal no committed state after {durable}..={made} commits ({durable} durable); first divergence from the durable state: {first}"
        );
        if (0..durable).any(|k| self.state_after(k) == data) {
            Err(Mismatch::Lost(detail))
        } else {
            Err(Mismatch::Invented(detail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovered_data_must_be_a_committed_prefix_at_or_past_the_durable_one() {
        let mut model = Model::default();
        model.committing(vec![(0, 0, vec![1, 2])]);
        model.committed(10);
        model.committing(vec![(1, 5, vec![3])]);
        model.committed(20);
        model.durable_to(15);
        assert_eq!(model.counts(), (1, 2));
        let (none, one, two) = (model.state_after(0), model.state_after(1), model.state_after(2));
        assert!(matches!(model.clone().check_and_rebase(none), Err(Mismatch::Lost(_))));
        let mut half = one.clone();
        half[2][0] = 9;
        assert!(matches!(model.clone().check_and_rebase(half), Err(Mismatch::Invented(_))));
        assert_eq!(model.clone().check_and_rebase(two.clone()), Ok(()));
        assert_eq!(model.check_and_rebase(one.clone()), Ok(()));
        assert_eq!((model.counts(), model.state_after(0)), ((0, 0), one), "rebased on what recovered");
    }
}
