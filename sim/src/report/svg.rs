//! The timeline: one inline SVG holding the callout of the first divergence, a whole-run
//! panel, a zoom panel over the events before the divergence, and the legend. Each panel puts
//! the virtual clock on the x axis, a lane per kind of event, shading for the quiet phase and
//! the recovery checks, and the watermark lane; `marks` draws the events themselves.
//!
//! Invariants: the SVG size is bounded whatever the trace length (markers are merged per
//! [`BUCKET_PX`] column, each hover title lists at most [`TITLE_EVENTS_MAX`] events), every
//! element is closed, every text escaped, and the output depends only on its inputs.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;
use stormhold::env::sim::TraceEvent;

use super::events::{self, Class, Lane, Phases};
use super::style::{self, Shape, Swatch};
use super::{escape, ms, wrap};
use crate::verdict::Violation;
use marks::{callout, divergence, markers, process_lines, watermark};

mod marks;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_steps_labelled_in_ms_with_the_digits_the_step_needs() {
        assert_eq!(tick_step_ns(57_743_000), 10_000_000);
        assert_eq!(tick_step_ns(1_200_000), 200_000);
        assert_eq!(tick_step_ns(0), 1);
        assert_eq!(tick_label(20_000_000, 10_000_000), "20 ms");
        assert_eq!(tick_label(34_100_000, 100_000), "34.1 ms");
        assert_eq!(tick_label(5_050_000, 50_000), "5.05 ms");
    }
}
