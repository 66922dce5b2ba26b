//! What the timeline's panels draw on the virtual clock: event markers merged per screen
//! column, crash and restart lines, the watermark step lines, and the first divergence with
//! its callout.
//!
//! Invariants: a marker's hover title lists at most [`TITLE_EVENTS_MAX`] events, a step line
//! has at most one point per screen column, so both stay bounded however long the trace; every
//! text is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use stormhold::env::sim::TraceEvent;

use super::super::events::{self, Class, Lane};
use super::super::style::{self, Shape};
use super::super::{escape, ms};
use super::{
    BUCKET_PX, CALLOUT_LINE_PX, CHAR_MONO_PX, Layout, PLOT_LEFT_PX, PLOT_RIGHT_PX, Panel, Picture, Scale,
    TITLE_EVENTS_MAX, divergence_time,
};
use crate::verdict::Violation;

/// Up to [`TITLE_EVENTS_MAX`] of `indices` as hover text, the rest counted.
fn hover(events: &[TraceEvent], indices: &[usize]) -> String {
    let mut text = String::new();
    if indices.len() > 1 {
        let _ = writeln!(text, "{} events:", indices.len());
    }
    for &i in indices.iter().take(TITLE_EVENTS_MAX) {
        let event = &events[i];
        let _ = writeln!(text, "t={} ms #{} {}", ms(event.time_ns), event.call, event.text);
    }
    if indices.len() > TITLE_EVENTS_MAX {
        let _ = writeln!(text, "… and {} more", indices.len() - TITLE_EVENTS_MAX);
    }
    style::title(text.trim_end())
}

/// Indices of events of `kind`, grouped by screen column.
fn columns(picture: &Picture, scale: &Scale, kind: &Class) -> BTreeMap<i64, Vec<usize>> {
    let mut columns: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, class) in picture.classes.iter().enumerate() {
        if class == kind && scale.contains(picture.events[i].time_ns) {
            let column = (scale.x(picture.events[i].time_ns) / BUCKET_PX).floor() as i64;
            columns.entry(column).or_default().push(i);
        }
    }
    columns
}

/// Crashes and restarts: lines across every lane, with a marker in the strip to hover.
pub(super) fn process_lines(picture: &Picture, scale: &Scale, layout: &Layout) -> String {
    let mut svg = String::from(r#"<g class="process">"#);
    let (top, bottom) = (layout.strip_top + 14.0, layout.bottom);
    for (kind, colour, dash, width) in
        [(Class::Crash, style::CRASH, "none", 2.0), (Class::Restart, style::RESTART, "3 4", 1.6)]
    {
        let line_class = if kind == Class::Crash { "crash-line" } else { "restart-line" };
        for indices in columns(picture, scale, &kind).values() {
            let x = scale.x(picture.events[indices[0]].time_ns);
            let tip = hover(picture.events, indices);
            let _ = write!(
                svg,
                r#"<line class="{line_class}" x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="{colour}" stroke-width="{width}" stroke-dasharray="{dash}">{tip}</line>"#
            );
            if kind == Class::Crash {
                svg.push_str(&style::shape(Shape::TriangleDown, x, top + 5.0, 5.0, colour, &tip));
            }
        }
    }
    svg.push_str("</g>");
    svg
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mark {
    Ok,
    Failed,
    Note,
    Fault(String),
}

pub(super) fn markers(picture: &Picture, scale: &Scale, layout: &Layout) -> String {
    let mut buckets: BTreeMap<(Lane, Mark, i64), Vec<usize>> = BTreeMap::new();
    for (i, class) in picture.classes.iter().enumerate() {
        let mark = match class {
            Class::Call { ok: true, .. } => Mark::Ok,
            Class::Call { ok: false, .. } => Mark::Failed,
            Class::Note { .. } => Mark::Note,
            Class::Fault { kind } => Mark::Fault(kind.clone()),
            _ => continue,
        };
        let Some(lane) = class.lane().filter(|_| scale.contains(picture.events[i].time_ns)) else {
            continue;
        };
        let column = (scale.x(picture.events[i].time_ns) / BUCKET_PX).floor() as i64;
        buckets.entry((lane, mark, column)).or_default().push(i);
    }
    let mut svg = String::from(r#"<g class="markers">"#);
    for ((lane, mark, _), indices) in &buckets {
        let Some(y) = layout.centre(lane) else { continue };
        let x = scale.x(picture.events[indices[0]].time_ns);
        svg.push_str(&marker(lane, mark, x, y, &hover(picture.events, indices)));
    }
    svg.push_str("</g>");
    svg
}

fn bar(x: f64, top: f64, height: f64, width: f64, colour: &str, tip: &str) -> String {
    format!(
        r#"<rect x="{:.1}" y="{top:.1}" width="{width:.1}" height="{height:.1}" fill="{colour}">{tip}</rect>"#,
        x - width / 2.0
    )
}

fn marker(lane: &Lane, mark: &Mark, x: f64, y: f64, tip: &str) -> String {
    let sync = matches!(lane, Lane::FileSyncs | Lane::DirSyncs);
    match mark {
        Mark::Ok => bar(x, y - 9.0, 13.0, 2.0, style::call_colour(lane), tip),
        Mark::Failed if sync => bar(x, y - 12.0, 24.0, 3.5, style::FAILED_SYNC, tip),
        Mark::Failed => bar(x, y + 5.0, 7.0, 2.0, style::FAILED_CALL, tip),
        Mark::Note => style::shape(Shape::Circle, x, y, 3.5, style::NOTE, tip),
        Mark::Fault(kind) => {
            let (shape, colour, _) = style::fault_style(kind);
            style::shape(shape, x, y, 6.0, colour, tip)
        }
    }
}

/// The step path of one watermark series, one point per screen column.
fn step_path(points: &[(u64, u64)], scale: &Scale, end_x: f64, y_of: impl Fn(u64) -> f64) -> String {
    let mut kept: Vec<(f64, u64)> = Vec::new();
    for &(time_ns, value) in points {
        let x = scale.x(time_ns);
        match kept.last_mut() {
            Some(last) if (x - last.0).abs() < BUCKET_PX / 2.0 => last.1 = value,
            _ => kept.push((x, value)),
        }
    }
    let mut d = String::new();
    for (i, (x, value)) in kept.iter().enumerate() {
        let y = y_of(*value);
        let _ = if i == 0 { write!(d, "M{x:.1},{y:.1}") } else { write!(d, "H{x:.1}V{y:.1}") };
    }
    let _ = write!(d, "H{end_x:.1}");
    d
}

pub(super) fn watermark(picture: &Picture, scale: &Scale, layout: &Layout) -> String {
    let series = events::watermarks(picture.events, picture.classes);
    let (top, bottom) = (layout.watermark_top + 14.0, layout.bottom - 10.0);
    let max = series.values().flatten().map(|p| p.1).max().unwrap_or(0).max(1);
    let y_of = |value: u64| bottom - value as f64 / max as f64 * (bottom - top);
    let end_x = scale.x(picture.events.last().map_or(0, |e| e.time_ns));
    let mut svg = format!(
        r#"<g class="watermarks"><text x="{:.1}" y="{:.1}" class="scale-label">{max}</text><text x="{:.1}" y="{:.1}" class="scale-label">0</text>"#,
        PLOT_LEFT_PX - 4.0,
        top + 4.0,
        PLOT_LEFT_PX - 4.0,
        bottom + 4.0
    );
    if series.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="empty">no watermark reported</text>"#,
            PLOT_LEFT_PX + 8.0,
            top + 30.0
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = style::WATERMARK[i % style::WATERMARK.len()];
        let last = points.last().map_or(0, |p| p.1);
        let tip = style::title(&format!("watermark {name}: {} reports, last {last}", points.len()));
        let _ = write!(
            svg,
            r#"<path class="watermark" d="{}" stroke="{colour}" stroke-width="2" fill="none">{tip}</path><text x="{:.1}" y="{:.1}" class="series-label" fill="{colour}">{}</text>"#,
            step_path(points, scale, end_x, y_of),
            PLOT_LEFT_PX + 6.0,
            top - 2.0 + i as f64 * 13.0,
            escape(&format!("{name} (last {last})"))
        );
    }
    svg.push_str("</g>");
    svg
}

/// The first divergence in one panel: a line and a diamond at its time, and a ring on the
/// violating call.
pub(super) fn divergence(picture: &Picture, panel: &Panel) -> String {
    let Some(violation) = picture.violation else { return String::new() };
    let layout = &panel.layout;
    let x = panel.scale.x(divergence_time(picture));
    let tip = style::title(&format!("first divergence: {violation}"));
    let mut svg = format!(
        r#"<g class="divergence"><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="2.5">{tip}</line>"#,
        panel.divergence_top,
        layout.bottom,
        style::DIVERGENCE
    );
    svg.push_str(&style::shape(Shape::Diamond, x, layout.strip_top + 17.0, 8.0, style::DIVERGENCE, &tip));
    let lane = picture.violating.and_then(|i| picture.classes[i].lane());
    if let Some(y) = lane.and_then(|lane| layout.centre(&lane)) {
        let _ = write!(
            svg,
            r#"<circle class="violating-mark" cx="{x:.1}" cy="{y:.1}" r="11" fill="none" stroke="{}" stroke-width="3">{tip}</circle>"#,
            style::DIVERGENCE
        );
    }
    svg.push_str("</g>");
    svg
}

/// The callout box above the whole-run panel: what broke, expected vs got, and the call.
pub(super) fn callout(violation: &Violation, lines: &[String], time_ns: u64, whole: &Panel) -> String {
    let heading = format!(
        "First divergence: {:?} violation at op {}, t = {} ms",
        violation.kind,
        violation.op_index,
        ms(time_ns)
    );
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0).max(heading.chars().count());
    let width = (widest as f64 * CHAR_MONO_PX + 28.0).min(PLOT_RIGHT_PX - PLOT_LEFT_PX);
    let x = whole.scale.x(time_ns);
    let left = (x - width + 60.0).clamp(PLOT_LEFT_PX, PLOT_RIGHT_PX - width);
    let height = whole.divergence_top - 4.0;
    let mut svg = format!(
        r##"<g class="callout"><rect x="{left:.1}" y="4" width="{width:.1}" height="{height:.1}" rx="4" fill="#fff5f7" stroke="{}" stroke-width="2"/><text x="{:.1}" y="22" class="callout-heading">{}</text>"##,
        style::DIVERGENCE,
        left + 12.0,
        escape(&heading)
    );
    for (i, line) in lines.iter().enumerate() {
        let class = if i == 0 { "callout-label" } else { "callout-text" };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="{class}">{}</text>"#,
            left + 12.0,
            22.0 + (i + 1) as f64 * CALLOUT_LINE_PX + 2.0,
            escape(line)
        );
    }
    svg.push_str("</g>");
    svg
}
