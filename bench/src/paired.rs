//! Paired rounds: a workload and its baselines measured in many short turns, the order of
//! the turns reversed every other round (A B, B A, ...), and judged by the **median of the
//! per-round ratios** with its interquartile range, not by the ratio of the totals.
//!
//! Why: a virtual disk's sync rate swings by multiples within one run (300 to 8,000 syncs/s
//! seen in one minute on the project's machines). Summed over a run, one slow stretch that
//! fell on the workload's turns and not the baseline's moves the ratio of totals anywhere
//! between 0.3x and 2x. A round's two turns are a few tens of milliseconds apart, so they
//! mostly see the same weather; the median ignores the rounds where the weather changed
//! between them, and the interquartile range says how far to trust it: a row reads as
//! meeting a target of 1.0x when the median is at or above it, and as settled only when the
//! range is narrow next to the distance from the target.

use std::fmt;

use crate::harness::{BenchError, Budget, Contender, Rate};

/// Rounds and budget of a one-writer durable comparison, from the run's `rounds` and
/// per-contender `budget`: eight times the rounds, twice the budget (2 s in 80 turns of 50 ms
/// in a full run), so each turn is short next to the disk's swings and the median has many
/// rounds to stand on.
pub fn one_writer_rounds(rounds: u32, budget: Budget) -> (u32, Budget) {
    (
        rounds.max(1) * 8,
        Budget { count_max: budget.count_max.saturating_mul(2), duration: budget.duration * 2 },
    )
}

/// Every turn's rate, per contender, in the order measured.
pub struct Paired {
    turns: Vec<Vec<Rate>>,
}

/// Measures each contender `rounds` times with `budget` split evenly over its turns, the
/// contenders in order in even rounds and in reverse in odd ones (so neither always runs
/// right after the other's writes).
pub fn paired_rounds(
    rounds: u32,
    budget: Budget,
    contenders: &mut [&mut dyn Contender],
) -> Result<Paired, BenchError> {
    let rounds = rounds.max(1);
    let turn = Budget {
        count_max: budget.count_max.div_ceil(u64::from(rounds)),
        duration: budget.duration / rounds,
    };
    let mut turns = vec![Vec::with_capacity(rounds as usize); contenders.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            turns[i].push(contenders[i].slice(turn)?);
        }
    }
    Ok(Paired { turns })
}

impl Paired {
    /// Contender `i`'s turns summed.
    pub fn total(&self, i: usize) -> Rate {
        let mut turns = self.turns[i].iter();
        let mut total = *turns.next().expect("at least one round");
        for rate in turns {
            total.add(*rate);
        }
        total
    }

    /// The spread of contender `i`'s rate over contender `base`'s, round by round.
    pub fn ratio(&self, i: usize, base: usize) -> RatioSpread {
        let mut ratios: Vec<f64> = self.turns[i]
            .iter()
            .zip(&self.turns[base])
            .map(|(a, b)| a.per_second() / b.per_second().max(1e-9))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
        RatioSpread { median: at(0.5), q1: at(0.25), q3: at(0.75), rounds: ratios.len() }
    }
}

/// The median and quartiles of per-round ratios.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatioSpread {
    /// The median ratio.
    pub median: f64,
    /// The first and third quartiles.
    pub q1: f64,
    /// See `q1`.
    pub q3: f64,
    /// Rounds measured.
    pub rounds: usize,
}

impl fmt::Display for RatioSpread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "per-round median {:.2}x, IQR {:.2}-{:.2}x, {} rounds",
            self.median, self.q1, self.q3, self.rounds
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::harness::Unit;

    /// A contender whose rate follows a schedule of "weather", one entry per turn it runs.
    struct Scripted {
        rates: Vec<f64>,
        turn: usize,
    }

    impl Contender for Scripted {
        fn slice(&mut self, _budget: Budget) -> Result<Rate, BenchError> {
            let rate = self.rates[self.turn];
            self.turn += 1;
            Ok(Rate { amount: rate, elapsed: Duration::from_secs(1), unit: Unit::PerSecond })
        }
    }

    #[test]
    fn the_median_of_per_round_ratios_ignores_weather_that_the_totals_cannot() {
        // The disk is 10x faster in the workload's turn of round 0: the ratio of totals
        // reads 2.72x, while every round but that one says 0.9x.
        let workload = Scripted { rates: vec![10_000.0, 900.0, 900.0, 900.0, 900.0], turn: 0 };
        let baseline = Scripted { rates: vec![1_000.0, 1_000.0, 1_000.0, 1_000.0, 1_000.0], turn: 0 };
        let (mut a, mut b) = (workload, baseline);
        let budget = Budget { count_max: 100, duration: Duration::from_secs(5) };
        let paired = paired_rounds(5, budget, &mut [&mut a, &mut b]).expect("measured");
        let totals = paired.total(0).per_second() / paired.total(1).per_second();
        assert!((totals - 2.72).abs() < 0.01, "totals {totals}");
        let spread = paired.ratio(0, 1);
        assert!((spread.median - 0.9).abs() < 1e-9, "{spread}");
        assert_eq!((spread.q1, spread.rounds), (0.9, 5));
        assert!((spread.q3 - 0.9).abs() < 1e-9, "{spread}");
    }

    #[test]
    fn odd_rounds_run_the_contenders_in_reverse() {
        use std::cell::RefCell;
        use std::rc::Rc;
        struct Logged(usize, Rc<RefCell<Vec<usize>>>);
        impl Contender for Logged {
            fn slice(&mut self, _budget: Budget) -> Result<Rate, BenchError> {
                self.1.borrow_mut().push(self.0);
                Ok(Rate { amount: 1.0, elapsed: Duration::from_secs(1), unit: Unit::PerSecond })
            }
        }
        let log = Rc::new(RefCell::new(Vec::new()));
        let (mut a, mut b) = (Logged(0, Rc::clone(&log)), Logged(1, Rc::clone(&log)));
        let budget = Budget { count_max: 4, duration: Duration::from_secs(1) };
        paired_rounds(3, budget, &mut [&mut a, &mut b]).expect("measured");
        assert_eq!(*log.borrow(), vec![0, 1, 1, 0, 0, 1]);
    }
}
