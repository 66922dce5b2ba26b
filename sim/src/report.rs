//! A picture of one run: a single self-contained HTML page with a header (seed, workload,
//! fault classes, result, trace hash, replay command), a timeline of the run on the virtual
//! clock (the `svg` submodule), and the last events before the first divergence as a table.
//!
//! Owns: turning a [`RunReport`] into HTML. It draws whatever events `report.trace_tail` holds;
//! to draw a whole run, build the env with `SimEnv::keep_trace_events(TRACE_EVENTS_MAX)`.
//!
//! Invariants:
//! - Self-contained: inline CSS and one inline SVG; no script, no network reference, no external
//!   font (the only URL is the SVG namespace, which is a name, not a fetch).
//! - Escaped: every piece of text that comes from the run (event texts, violation detail, the
//!   replay command) passes through [`escape`] before it reaches the page.
//! - Deterministic: the page is a pure function of the report and the replay command; nothing
//!   reads the clock, the environment or an unordered map.
//! - Bounded: the SVG merges nearby markers, and the table holds at most [`TABLE_EVENTS_MAX`]
//!   rows, so a million-event trace still gives a page a browser opens.

mod events;
mod style;
mod svg;

use std::fmt::Write as _;
use std::ops::Range;

use crate::runner::RunReport;
use events::Class;

/// Rows of the event table: the events up to the first divergence (or the end of the run).
pub const TABLE_EVENTS_MAX: usize = 40;

/// The report page of `report`; `replay_command` is printed for copying.
pub fn render_html(report: &RunReport, replay_command: &str) -> String {
    let events = &report.trace_tail;
    let classes: Vec<Class> = events.iter().map(|e| events::classify(&e.text)).collect();
    let violating = report.violation.as_ref().and_then(|_| events::violating_event(&classes));
    let rows = table_rows(events.len(), violating);
    let zoom = violating.map(|_| rows.clone());
    let picture =
        svg::Picture { events, classes: &classes, violation: report.violation.as_ref(), violating, zoom };
    let mut page = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        page,
        "<title>stormhold-sim seed {} — {}</title>",
        report.config.seed,
        escape(&verdict(report))
    );
    let _ = writeln!(page, "<style>{CSS}</style>\n</head>\n<body>");
    page.push_str(&header(report, replay_command));
    page.push_str(
        "<section>\n<h2>Timeline</h2>\n<p class=\"hint\">Hover a marker or line for its events.</p>\n",
    );
    page.push_str(&svg::timeline(&picture));
    page.push_str("\n</section>\n");
    let lost = report
        .violation
        .as_ref()
        .zip(violating)
        .and_then(|(v, at)| events::lost_commit(events, &v.detail, at + 1));
    page.push_str(&table(report, &classes, violating, lost));
    page.push_str("</body>\n</html>\n");
    page
}

/// `text` made safe for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Nanoseconds as milliseconds with microsecond precision.
fn ms(time_ns: u64) -> String {
    format!("{:.3}", time_ns as f64 / 1e6)
}

/// `text` in lines of at most `width` characters (breaking at spaces where it can), at most
/// `lines_max` lines; a cut is marked with `…`.
fn wrap(text: &str, width: usize, lines_max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while !word.is_empty() {
            let used = line.chars().count();
            let separator = usize::from(used > 0);
            let room = width.saturating_sub(used + separator);
            if word.len() <= room {
                if separator == 1 {
                    line.push(' ');
                }
                line.extend(word.drain(..));
            } else if used > 0 && (word.len() <= width || room == 0) {
                lines.push(std::mem::take(&mut line));
            } else {
                let head: String = word.drain(..room.max(1).min(word.len())).collect();
                if separator == 1 {
                    line.push(' ');
                }
                line.push_str(&head);
                lines.push(std::mem::take(&mut line));
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    if lines.len() > lines_max {
        lines.truncate(lines_max);
        if let Some(last) = lines.last_mut() {
            last.push_str(" …");
        }
    }
    lines
}

fn verdict(report: &RunReport) -> String {
    match &report.violation {
        None => "pass".to_owned(),
        Some(violation) => format!("{:?} violation at op {}", violation.kind, violation.op_index),
    }
}

fn header(report: &RunReport, replay_command: &str) -> String {
    let config = &report.config;
    let classes: Vec<&str> = config.enabled_classes().iter().map(|c| c.name()).collect();
    let classes = if classes.is_empty() { "none".to_owned() } else { classes.join(", ") };
    let result = match &report.violation {
        None => r#"<span class="badge pass">PASS</span> no violation"#.to_owned(),
        Some(v) => format!(
            r#"<span class="badge fail">{}</span> at op {}<div class="detail">{}</div>"#,
            escape(&format!("{:?} violation", v.kind)),
            v.op_index,
            escape(&v.detail)
        ),
    };
    let s = &report.sim;
    let rows = [
        ("seed", config.seed.to_string()),
        (
            "workload",
            format!("{} ({} chaos ops + {} quiet ops)", config.workload, config.ops, config.quiet_ops),
        ),
        ("fault classes on", classes),
        ("trace hash", format!("{:016x}", report.trace_hash)),
        ("run", run_summary(report, s.crashes)),
    ];
    let mut html = format!("<header>\n<h1>stormhold-sim run report: seed {}</h1>\n<dl>\n", config.seed);
    let _ = writeln!(html, "<dt>result</dt><dd class=\"result\">{result}</dd>");
    for (name, value) in rows {
        let _ = writeln!(html, "<dt>{name}</dt><dd>{}</dd>", escape(&value));
    }
    let _ = writeln!(html, "<dt>replay</dt><dd><pre class=\"replay\">{}</pre></dd>", escape(replay_command));
    html.push_str("</dl>\n</header>\n");
    html
}

fn run_summary(report: &RunReport, crashes: u64) -> String {
    let first = report.trace_tail.first().map_or(0, |e| e.call);
    let kept = if first > 1 { format!(" (trace kept from call #{first} on)") } else { String::new() };
    format!(
        "{} ops, {} recoveries checked, {} crashes, {} faults, {} ms simulated, {} events drawn{kept}",
        report.ops,
        report.recoveries,
        crashes,
        report.faults(),
        ms(report.simulated_ns),
        report.trace_tail.len()
    )
}

fn row_class(class: &Class, violating: bool) -> &'static str {
    match class {
        _ if violating => "violating",
        Class::Fault { .. } => "fault",
        Class::Crash | Class::Restart => "crash",
        Class::Call { ok: false, .. } => "failed",
        _ => "",
    }
}

/// The events the table lists: up to the violating one, or to the end of the run.
fn table_rows(len: usize, violating: Option<usize>) -> Range<usize> {
    let end = violating.map_or(len, |i| i + 1);
    end.saturating_sub(TABLE_EVENTS_MAX)..end
}

/// The line naming the acknowledged commit that was lost, above the table.
fn lost_line(report: &RunReport, lost: Option<events::LostCommit>) -> String {
    let Some(lost) = lost else { return String::new() };
    let at = |i: usize| {
        let event = &report.trace_tail[i];
        format!("#{} at {:.6} ms: {}", event.call, event.time_ns as f64 / 1e6, escape(&event.text))
    };
    let synced = lost.synced_by.map_or(String::new(), |i| format!("; acknowledged durable by {}", at(i)));
    format!(
        "<p class=\"lost-line\"><span class=\"key lost\">lost</span> the acknowledged commit that was lost: {}{synced}</p>\n",
        at(lost.commit)
    )
}

fn table(
    report: &RunReport,
    classes: &[Class],
    violating: Option<usize>,
    lost: Option<events::LostCommit>,
) -> String {
    let events = &report.trace_tail;
    let Range { start, end } = table_rows(events.len(), violating);
    let (heading, violating_key) = match violating {
        Some(_) => (
            format!("The last {} events up to the first divergence", end - start),
            r#" <span class="key violating">violating op: the last call before the check failed</span>"#,
        ),
        None => (format!("The last {} events of the run", end - start), ""),
    };
    let mut html = format!(
        "<section>\n<h2>{heading}</h2>\n<p class=\"hint\"><span class=\"key fault\">fault</span> <span class=\"key crash\">crash / restart</span> <span class=\"key failed\">failed call</span>{violating_key}</p>\n"
    );
    html.push_str(&lost_line(report, lost));
    html.push_str("<table class=\"events\">\n<thead><tr><th>call</th><th>t (ms)</th><th>lane</th><th>event</th></tr></thead>\n<tbody>\n");
    for i in start..end {
        let (event, class) = (&events[i], &classes[i]);
        let _ = writeln!(
            html,
            "<tr class=\"{}\"><td>#{}</td><td>{:.6}</td><td>{}</td><td>{}</td></tr>",
            if lost.is_some_and(|l| l.commit == i || l.synced_by == Some(i)) {
                "lost"
            } else {
                row_class(class, Some(i) == violating)
            },
            event.call,
            event.time_ns as f64 / 1e6,
            escape(&class.column()),
            escape(&event.text)
        );
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
    html
}

const CSS: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a202c; margin: 16px auto; max-width: 1380px; padding: 0 10px; }
h1 { font-size: 22px; margin: 4px 0 10px; }
h2 { font-size: 17px; margin: 22px 0 6px; }
dl { display: grid; grid-template-columns: 140px 1fr; gap: 4px 12px; margin: 0; font-size: 14px; }
dt { font-weight: 600; color: #4a5568; }
dd { margin: 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 4px; font-weight: 700; color: white; }
.badge.pass { background: #2f855a; }
.badge.fail { background: #d53f8c; }
.detail { margin-top: 4px; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 13px; background: #fff5f7; border-left: 4px solid #d53f8c; padding: 4px 8px; white-space: pre-wrap; }
pre.replay { margin: 0; padding: 6px 8px; background: #edf2f7; border-radius: 4px; white-space: pre-wrap; font-size: 13px; }
.hint { color: #718096; font-size: 12px; margin: 2px 0 6px; }
svg.timeline { display: block; max-width: 100%; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; font-size: 12px; fill: #2d3748; }
svg .lane-label { text-anchor: end; font-weight: 600; }
svg .tick { text-anchor: middle; font-size: 11px; }
svg .axis-title { text-anchor: end; font-size: 12px; fill: #4a5568; }
svg .strip-label { font-size: 11px; font-style: italic; fill: #2c5282; }
svg .scale-label { text-anchor: end; font-size: 10px; fill: #718096; }
svg .series-label { font-size: 11px; font-weight: 600; }
svg .empty { font-style: italic; fill: #a0aec0; }
svg .legend-title { font-weight: 700; }
svg .panel-title { font-weight: 700; font-size: 13px; fill: #1a202c; }
svg .callout-heading { font-weight: 700; font-size: 13px; fill: #97266d; }
svg .callout-label { font-size: 12px; font-weight: 600; fill: #97266d; }
svg .callout-text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; }
table.events { border-collapse: collapse; width: 100%; font-size: 12px; }
table.events th { text-align: left; background: #edf2f7; padding: 3px 6px; }
table.events td { padding: 2px 6px; border-bottom: 1px solid #edf2f7; vertical-align: top; }
table.events td:nth-child(1), table.events td:nth-child(2) { white-space: nowrap; font-variant-numeric: tabular-nums; }
table.events td:nth-child(4) { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; word-break: break-all; }
.key { padding: 0 6px; border-radius: 3px; }
tr.fault, .key.fault { background: #feebc8; }
tr.crash, .key.crash { background: #fed7d7; }
tr.failed, .key.failed { background: #f7fafc; color: #718096; }
tr.lost, .key.lost { background: #2b6cb0; color: white; font-weight: 700; }
.lost-line { font-size: 13px; margin: 2px 0 6px; }
tr.violating, .key.violating { background: #d53f8c; color: white; font-weight: 700; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_splits_long_words_and_marks_a_cut() {
        assert_eq!(wrap("aa bb cc", 5, 9), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3, 9), ["abc", "def", "gh"]);
        assert_eq!(wrap("a b c d", 1, 2), ["a", "b …"]);
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
