//! The timeline: one inline SVG with the virtual clock on the x axis, a lane per kind of
//! event, crash and restart lines across every lane, the quiet phase and the recovery checks
//! shaded, the durable watermark as a step line, and the first divergence called out.
//!
//! Invariants: the SVG size is bounded whatever the trace length (markers are merged per
//! [`BUCKET_PX`] column, each hover title lists at most [`TITLE_EVENTS_MAX`] events), every
//! element is closed, every text escaped, and the output depends only on its inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;
use stormhold::env::sim::TraceEvent;

use super::events::{self, Class, Lane, Phases};
use super::style::{self, Shape, Swatch};
use super::{escape, ms, wrap};
use crate::runner::Violation;

const SVG_WIDTH_PX: f64 = 1360.0;
const PLOT_LEFT_PX: f64 = 150.0;
const PLOT_RIGHT_PX: f64 = 1335.0;
const STRIP_PX: f64 = 26.0;
const TITLE_PX: f64 = 22.0;
const LANE_PX: f64 = 30.0;
const FAULT_LANE_PX: f64 = 40.0;
const WATERMARK_LANE_PX: f64 = 100.0;
const AXIS_PX: f64 = 44.0;
/// Events closer than this on screen share one marker.
const BUCKET_PX: f64 = 2.0;
/// Events a marker's hover title lists (the rest are counted).
const TITLE_EVENTS_MAX: usize = 6;
/// Callout text wraps at this many characters; 7.2 px each at 12 px monospace.
const CALLOUT_CHARS: usize = 110;
const CALLOUT_LINES_MAX: usize = 8;
const CALLOUT_LINE_PX: f64 = 16.0;
const CHAR_MONO_PX: f64 = 7.2;
/// Width of a character of the 11 px italic strip labels, a little generous.
const STRIP_CHAR_PX: f64 = 6.0;

/// What the timeline draws.
pub(super) struct Picture<'a> {
    pub events: &'a [TraceEvent],
    pub classes: &'a [Class],
    pub violation: Option<&'a Violation>,
    /// The index of the event that broke the promise.
    pub violating: Option<usize>,
    /// The events a zoom panel spreads out (the table's rows), when there is a violation.
    pub zoom: Option<Range<usize>>,
}

/// Virtual time to x, over `start_ns..=end_ns`.
struct Scale {
    start_ns: u64,
    end_ns: u64,
}

impl Scale {
    /// A scale over `start_ns..=end_ns` with a little room on both sides.
    fn padded(start_ns: u64, end_ns: u64) -> Self {
        let pad_ns = (end_ns - start_ns) / 60 + 1;
        Self { start_ns: start_ns.saturating_sub(pad_ns), end_ns: end_ns + pad_ns }
    }

    /// The x of `time_ns`, clamped to the plot.
    fn x(&self, time_ns: u64) -> f64 {
        let offset = time_ns.clamp(self.start_ns, self.end_ns) - self.start_ns;
        PLOT_LEFT_PX + offset as f64 / (self.end_ns - self.start_ns) as f64 * (PLOT_RIGHT_PX - PLOT_LEFT_PX)
    }

    fn contains(&self, time_ns: u64) -> bool {
        (self.start_ns..=self.end_ns).contains(&time_ns)
    }
}

/// Where the bands of one panel sit, top to bottom.
struct Layout {
    strip_top: f64,
    /// Each lane with its top and height.
    lanes: Vec<(Lane, f64, f64)>,
    watermark_top: f64,
    bottom: f64,
}

impl Layout {
    fn new(lanes_shown: &BTreeSet<Lane>, strip_top: f64) -> Self {
        let mut y = strip_top + STRIP_PX;
        let mut lanes = Vec::new();
        for lane in lanes_shown {
            let height = if *lane == Lane::Faults { FAULT_LANE_PX } else { LANE_PX };
            lanes.push((lane.clone(), y, height));
            y += height;
        }
        Self { strip_top, lanes, watermark_top: y, bottom: y + WATERMARK_LANE_PX }
    }

    fn lanes_top(&self) -> f64 {
        self.strip_top + STRIP_PX
    }

    /// The vertical centre of `lane`, if drawn.
    fn centre(&self, lane: &Lane) -> Option<f64> {
        self.lanes.iter().find(|(l, ..)| l == lane).map(|(_, top, height)| top + height / 2.0)
    }
}

fn lanes_shown(classes: &[Class]) -> BTreeSet<Lane> {
    let mut lanes: BTreeSet<Lane> = Lane::FIXED.iter().filter(|l| l.always_shown()).cloned().collect();
    lanes.extend(classes.iter().filter_map(Class::lane));
    lanes
}

fn callout_lines(violation: &Violation, picture: &Picture) -> Vec<String> {
    let mut lines = vec!["expected vs got:".to_owned()];
    lines.extend(wrap(&violation.detail, CALLOUT_CHARS, CALLOUT_LINES_MAX));
    if let Some(event) = picture.violating.map(|i| &picture.events[i]) {
        lines.extend(wrap(
            &format!("last call before the check failed (#{}): {}", event.call, event.text),
            CALLOUT_CHARS,
            2,
        ));
    }
    lines
}

/// Everything a panel draws besides its events.
struct Panel<'a> {
    scale: Scale,
    layout: Layout,
    phases: &'a Phases,
    /// Where the divergence line starts (the callout's bottom, or the panel's strip).
    divergence_top: f64,
    /// A window to outline in the strip (the zoom panel's span, drawn on the whole run).
    outline: Option<(u64, u64)>,
}

/// The whole timeline as one `<svg>` element: the callout, the whole run, the zoom, the legend.
pub(super) fn timeline(picture: &Picture) -> String {
    let lines = picture.violation.map(|v| callout_lines(v, picture)).unwrap_or_default();
    let callout_px = if lines.is_empty() { 0.0 } else { 24.0 + lines.len() as f64 * CALLOUT_LINE_PX + 16.0 };
    let lanes = lanes_shown(picture.classes);
    let phases = events::phases(picture.events, picture.classes);
    let zoom = zoom_span(picture);
    let end_ns = picture.events.last().map_or(0, |e| e.time_ns);
    let mut body = panel_title(callout_px + TITLE_PX - 6.0, "Whole run");
    let whole = Panel {
        scale: Scale::padded(0, end_ns),
        layout: Layout::new(&lanes, callout_px + TITLE_PX),
        phases: &phases,
        divergence_top: callout_px - 10.0,
        outline: zoom,
    };
    body.push_str(&panel(picture, &whole));
    if let Some(violation) = picture.violation {
        body.push_str(&callout(violation, &lines, divergence_time(picture), &whole));
    }
    let mut bottom = whole.layout.bottom + AXIS_PX;
    if let Some((start_ns, end_ns)) = zoom {
        let title = format!(
            "Zoom: the last events before the first divergence ({} ms to {} ms)",
            ms(start_ns),
            ms(end_ns)
        );
        body.push_str(&panel_title(bottom + TITLE_PX - 6.0, &title));
        let strip_top = bottom + TITLE_PX;
        let layout = Layout::new(&lanes, strip_top);
        let zoomed = Panel {
            scale: Scale::padded(start_ns, end_ns),
            layout,
            phases: &phases,
            divergence_top: strip_top,
            outline: None,
        };
        body.push_str(&panel(picture, &zoomed));
        bottom = zoomed.layout.bottom + AXIS_PX;
    }
    let (legend, legend_px) =
        style::legend(&legend_items(picture), PLOT_LEFT_PX - 140.0, PLOT_RIGHT_PX, bottom);
    body.push_str(&legend);
    let height = bottom + legend_px + 8.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{SVG_WIDTH_PX}" height="{height:.0}" viewBox="0 0 {SVG_WIDTH_PX} {height:.0}" role="img" aria-label="timeline of the run">{body}</svg>"#
    )
}

/// The time span of the zoom panel's events, if it spreads something out.
fn zoom_span(picture: &Picture) -> Option<(u64, u64)> {
    let range = picture.zoom.clone()?;
    let first = picture.events.get(range.start)?;
    let last = picture.events.get(range.end.checked_sub(1)?)?;
    Some((first.time_ns, last.time_ns.max(first.time_ns + 1)))
}

fn divergence_time(picture: &Picture) -> u64 {
    let event = picture.violating.map(|i| &picture.events[i]).or(picture.events.last());
    event.map_or(0, |e| e.time_ns)
}

fn panel_title(y: f64, text: &str) -> String {
    format!(r#"<text x="{:.1}" y="{y:.1}" class="panel-title">{}</text>"#, PLOT_LEFT_PX - 140.0, escape(text))
}

fn panel(picture: &Picture, panel: &Panel) -> String {
    let (scale, layout) = (&panel.scale, &panel.layout);
    let mut svg = lanes_background(layout);
    svg.push_str(&shading(picture, panel.phases, scale, layout));
    svg.push_str(&axis(scale, layout));
    if let Some(span) = panel.outline {
        svg.push_str(&outline(span, scale, layout));
    }
    svg.push_str(&process_lines(picture, scale, layout));
    svg.push_str(&markers(picture, scale, layout));
    svg.push_str(&watermark(picture, scale, layout));
    svg.push_str(&divergence(picture, panel));
    svg
}

fn outline(span: (u64, u64), scale: &Scale, layout: &Layout) -> String {
    let x = scale.x(span.0) - 3.0;
    let width = scale.x(span.1) - x + 3.0;
    format!(
        r##"<rect class="zoom-window" x="{x:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="none" stroke="#4a5568" stroke-width="1" stroke-dasharray="4 2">{}</rect>"##,
        layout.lanes_top() - 2.0,
        layout.bottom - layout.lanes_top() + 4.0,
        style::title(&format!("zoomed below: {} ms to {} ms", ms(span.0), ms(span.1)))
    )
}

fn lanes_background(layout: &Layout) -> String {
    let mut svg = String::from(r#"<g class="lanes">"#);
    let width = PLOT_RIGHT_PX - PLOT_LEFT_PX;
    let rows = layout.lanes.iter().map(|(lane, top, h)| (lane.label(), *top, *h));
    let watermark = ("durable watermark".to_owned(), layout.watermark_top, WATERMARK_LANE_PX);
    for (i, (label, top, height)) in rows.chain([watermark]).enumerate() {
        let fill = if i % 2 == 0 { "#ffffff" } else { "#f7fafc" };
        let _ = write!(
            svg,
            r##"<rect x="{PLOT_LEFT_PX}" y="{top:.1}" width="{width:.1}" height="{height:.1}" fill="{fill}" stroke="#e2e8f0" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" class="lane-label">{}</text>"##,
            PLOT_LEFT_PX - 10.0,
            top + height / 2.0 + 4.0,
            escape(&label)
        );
    }
    svg.push_str("</g>");
    svg
}

fn band(
    scale: &Scale,
    span: (u64, u64),
    top: f64,
    bottom: f64,
    colour: &str,
    min_px: f64,
    tip: &str,
) -> String {
    if span.1 < scale.start_ns || span.0 > scale.end_ns {
        return String::new();
    }
    let x = scale.x(span.0);
    let width = (scale.x(span.1) - x).max(min_px);
    format!(
        r#"<rect x="{x:.1}" y="{top:.1}" width="{width:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.75">{}</rect>"#,
        bottom - top,
        style::title(tip)
    )
}

fn shading(picture: &Picture, phases: &Phases, scale: &Scale, layout: &Layout) -> String {
    let (top, bottom) = (layout.lanes_top(), layout.bottom);
    let mut svg = String::from(r#"<g class="phases">"#);
    if let Some(first) = picture.events.first().filter(|e| e.call > 0 && e.time_ns > 0) {
        let tip = format!("the trace kept only the events from call #{} on", first.call);
        svg.push_str(&band(scale, (0, first.time_ns), top, bottom, style::NOT_KEPT, 0.0, &tip));
        svg.push_str(&strip_label(scale.x(0) + 4.0, layout, "earlier events not kept"));
    }
    for &span in &phases.faults_off {
        let tip = format!("faults off (setup or a pause): {} ms to {} ms", ms(span.0), ms(span.1));
        svg.push_str(&band(scale, span, top, bottom, style::QUIET, 1.0, &tip));
    }
    if let Some(span) = phases.quiet {
        let tip = format!("quiet phase: no new faults, {} ms to the end ({} ms)", ms(span.0), ms(span.1));
        svg.push_str(&band(scale, span, top, bottom, style::QUIET, 1.0, &tip));
        if span.1 >= scale.start_ns && span.0 <= scale.end_ns {
            svg.push_str(&strip_label(scale.x(span.0) + 4.0, layout, "quiet phase: no new faults"));
        }
    }
    for &span in &phases.recoveries {
        let tip = format!("recovery check: {} ms to {} ms", ms(span.0), ms(span.1));
        svg.push_str(&band(scale, span, top, bottom, style::RECOVERY, 2.0, &tip));
    }
    svg.push_str("</g>");
    svg
}

fn strip_label(x: f64, layout: &Layout, text: &str) -> String {
    // Kept inside the plot: a label that would run past the right edge ends there instead.
    let width = text.chars().count() as f64 * STRIP_CHAR_PX;
    let (x, anchor) = if x + width > PLOT_RIGHT_PX { (PLOT_RIGHT_PX, "end") } else { (x, "start") };
    format!(
        r#"<text x="{x:.1}" y="{:.1}" class="strip-label" text-anchor="{anchor}">{}</text>"#,
        layout.strip_top + 10.0,
        escape(text)
    )
}

/// A round step of about a tenth of `end_ns`: 1, 2 or 5 times a power of ten.
fn tick_step_ns(end_ns: u64) -> u64 {
    let raw = (end_ns / 10).max(1);
    let mut magnitude = 1u64;
    while magnitude.saturating_mul(10) <= raw {
        magnitude *= 10;
    }
    [1, 2, 5, 10].iter().map(|m| m * magnitude).find(|step| *step >= raw).unwrap_or(10 * magnitude)
}

fn tick_label(time_ns: u64, step_ns: u64) -> String {
    let decimals = match step_ns {
        1_000_000.. => 0,
        100_000.. => 1,
        10_000.. => 2,
        1_000.. => 3,
        100.. => 4,
        10.. => 5,
        _ => 6,
    };
    format!("{:.*} ms", decimals, time_ns as f64 / 1e6)
}

fn axis(scale: &Scale, layout: &Layout) -> String {
    let step = tick_step_ns(scale.end_ns - scale.start_ns);
    let (top, bottom) = (layout.lanes_top(), layout.bottom);
    let mut svg = format!(
        r##"<g class="axis"><line x1="{PLOT_LEFT_PX}" y1="{bottom:.1}" x2="{PLOT_RIGHT_PX}" y2="{bottom:.1}" stroke="#4a5568"/>"##
    );
    let mut tick = scale.start_ns.div_ceil(step) * step;
    while tick <= scale.end_ns {
        let x = scale.x(tick);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{:.1}" stroke="#cbd5e0" stroke-width="0.6" stroke-dasharray="2 3"/><line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#4a5568"/><text x="{x:.1}" y="{:.1}" class="tick">{}</text>"##,
            bottom,
            bottom + 5.0,
            bottom + 18.0,
            tick_label(tick, step)
        );
        tick += step;
    }
    let _ = write!(
        svg,
        r#"<text x="{PLOT_RIGHT_PX}" y="{:.1}" class="axis-title">simulated time (virtual clock) →</text></g>"#,
        bottom + 36.0
    );
    svg
}

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
fn process_lines(picture: &Picture, scale: &Scale, layout: &Layout) -> String {
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

fn markers(picture: &Picture, scale: &Scale, layout: &Layout) -> String {
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

fn watermark(picture: &Picture, scale: &Scale, layout: &Layout) -> String {
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
fn divergence(picture: &Picture, panel: &Panel) -> String {
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
fn callout(violation: &Violation, lines: &[String], time_ns: u64, whole: &Panel) -> String {
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

fn legend_items(picture: &Picture) -> Vec<(Swatch, String)> {
    let mut items = vec![
        (Swatch::Bar(style::WRITE, 13.0), "write / set_len".to_owned()),
        (Swatch::Bar(style::READ, 13.0), "read / len".to_owned()),
        (Swatch::Bar(style::FILE_SYNC, 13.0), "file sync ok".to_owned()),
        (Swatch::Bar(style::DIR_SYNC, 13.0), "dir sync ok".to_owned()),
        (Swatch::Bar(style::FAILED_SYNC, 18.0), "failed sync".to_owned()),
        (Swatch::Bar(style::DIR_OP, 13.0), "dir op (open, rename, list…)".to_owned()),
        (Swatch::Bar(style::CLOCK, 13.0), "clock call".to_owned()),
        (Swatch::Bar(style::FAILED_CALL, 7.0), "failed call (low bar)".to_owned()),
        (Swatch::Mark(Shape::Circle, style::NOTE), "workload / client note".to_owned()),
        (Swatch::Line(style::CRASH, "none"), "crash".to_owned()),
        (Swatch::Line(style::RESTART, "3 4"), "restart".to_owned()),
        (Swatch::Band(style::QUIET), "quiet phase (no new faults)".to_owned()),
        (Swatch::Band(style::RECOVERY), "recovery check".to_owned()),
        (Swatch::Line(style::WATERMARK[0], "none"), "durable watermark".to_owned()),
    ];
    let kinds: BTreeSet<&str> = picture
        .classes
        .iter()
        .filter_map(|c| match c {
            Class::Fault { kind } => Some(kind.as_str()),
            _ => None,
        })
        .collect();
    for kind in kinds {
        let (shape, colour, words) = style::fault_style(kind);
        items.push((Swatch::Mark(shape, colour), words));
    }
    if picture.violation.is_some() {
        items.push((Swatch::Mark(Shape::Diamond, style::DIVERGENCE), "first divergence".to_owned()));
    }
    items
}
