//! The sweep's progress on stderr: a bar redrawn in place (with rate and ETA) on a terminal, and
//! a plain line every few seconds elsewhere, so batch-job logs stay readable.
//!
//! Invariants: the plain form never writes a carriage return or an escape sequence, and writes
//! at most one line per [`PLAIN_INTERVAL`] plus one closing line; the terminal form is drawn by
//! `indicatif` at its own bounded rate.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::fmt;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::sweep::SweepSummary;

/// How often the plain form writes a line.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// Where progress goes.
pub enum Progress {
    /// A bar redrawn in place.
    Bar(ProgressBar),
    /// One line every [`PLAIN_INTERVAL`].
    Plain {
        /// When the sweep started.
        started: Instant,
        /// When the last line was written.
        last: Instant,
    },
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr(total: u64) -> Self {
        if std::io::stderr().is_terminal() { Progress::bar(total) } else { Progress::plain() }
    }

    fn bar(total: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        // Under 80 columns, so that a narrow terminal does not wrap it into a scroll of copies.
        let template = "[sweep] {bar:24} {pos}/{len} seeds  {msg}  {rate}  ETA {eta}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            let rate = |state: &ProgressState, out: &mut dyn fmt::Write| {
                let _ = write!(out, "{:.1} seeds/s", state.per_sec());
            };
            bar.set_style(style.progress_chars("#>-").with_key("rate", rate));
        }
        bar.set_message("0 violations");
        Progress::Bar(bar)
    }

    /// The plain form, whatever stderr is.
    pub fn plain() -> Self {
        let now = Instant::now();
        Progress::Plain { started: now, last: now }
    }

    /// Reports the summary so far.
    pub fn update(&mut self, summary: &SweepSummary, total: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(summary.seeds);
                bar.set_message(format!("{} violations", summary.failures.len()));
            }
            Progress::Plain { started, last } => {
                if last.elapsed() >= PLAIN_INTERVAL {
                    *last = Instant::now();
                    eprintln!(
                        "{}",
                        plain_line(summary.seeds, total, summary.failures.len(), started.elapsed())
                    );
                }
            }
        }
    }

    /// Ends the progress display: the bar stays as its last state, the plain form writes a
    /// closing line.
    pub fn finish(self, summary: &SweepSummary, total: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(summary.seeds);
                bar.abandon();
            }
            Progress::Plain { started, .. } => {
                eprintln!("{}", plain_line(summary.seeds, total, summary.failures.len(), started.elapsed()));
            }
        }
    }
}

/// One progress line: bar, counts, rate and ETA, no control characters.
pub fn plain_line(done: u64, total: u64, violations: usize, elapsed: Duration) -> String {
    const WIDTH: u64 = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH).min(WIDTH) as usize;
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    let eta = if done >= total {
        "done".to_owned()
    } else if done == 0 {
        "ETA ?".to_owned()
    } else {
        format!("ETA {}", clock(Duration::from_secs_f64(total.saturating_sub(done) as f64 / rate)))
    };
    format!(
        "[sweep] [{}{}] {done}/{total} seeds  {violations} violations  {rate:.1} seeds/s  {eta}",
        "#".repeat(filled),
        "-".repeat(WIDTH as usize - filled),
    )
}

fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    format!("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_shows_rate_and_eta_without_control_characters() {
        let line = plain_line(25, 100, 1, Duration::from_secs(10));
        assert_eq!(
            line,
            "[sweep] [#######-----------------------] 25/100 seeds  1 violations  2.5 seeds/s  ETA 0:00:30"
        );
        assert!(!line.chars().any(|c| c.is_control()));
        assert!(plain_line(0, 100, 0, Duration::ZERO).ends_with("ETA ?"));
        assert!(plain_line(100, 100, 0, Duration::from_secs(1)).ends_with("done"));
        assert_eq!(clock(Duration::from_secs(3 * 3600 + 61)), "3:01:01");
    }
}
