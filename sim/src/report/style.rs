//! How things look: the colour and marker shape of every kind of event, SVG shape snippets,
//! and the legend that explains them.
//!
//! Invariants: one place decides each colour, so the legend and the markers cannot disagree;
//! every snippet is a complete, balanced SVG element whose text is escaped.

use std::fmt::Write as _;

use super::escape;
use super::events::Lane;

pub(super) const WRITE: &str = "#2b6cb0";
pub(super) const READ: &str = "#2f855a";
pub(super) const FILE_SYNC: &str = "#6b46c1";
pub(super) const DIR_SYNC: &str = "#9f7aea";
pub(super) const FAILED_SYNC: &str = "#dd6b20";
pub(super) const FAILED_CALL: &str = "#a0aec0";
pub(super) const DIR_OP: &str = "#2c7a7b";
pub(super) const CLOCK: &str = "#718096";
pub(super) const NOTE: &str = "#4a5568";
pub(super) const CRASH: &str = "#9b2c2c";
pub(super) const RESTART: &str = "#38a169";
pub(super) const QUIET: &str = "#dbe7f5";
pub(super) const RECOVERY: &str = "#d9f2df";
pub(super) const NOT_KEPT: &str = "#edf2f7";
pub(super) const DIVERGENCE: &str = "#d53f8c";
/// Colours of the watermark series, in name order (cycled).
pub(super) const WATERMARK: [&str; 4] = ["#2c5282", "#b7791f", "#97266d", "#276749"];

/// The colour of a successful call's bar in `lane`.
pub(super) fn call_colour(lane: &Lane) -> &'static str {
    match lane {
        Lane::Writes => WRITE,
        Lane::Reads => READ,
        Lane::FileSyncs => FILE_SYNC,
        Lane::DirSyncs => DIR_SYNC,
        Lane::DirOps => DIR_OP,
        _ => CLOCK,
    }
}

/// A marker shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    Circle,
    Ring,
    Square,
    TriangleUp,
    TriangleDown,
    Diamond,
    Cross,
    Plus,
    Hexagon,
}

/// Shape, colour and legend words of a fault kind (the `Fault` variant's name).
pub(super) fn fault_style(kind: &str) -> (Shape, &'static str, String) {
    let (shape, colour, words) = match kind {
        "Crash" => (Shape::Cross, CRASH, "crash at a call"),
        "DriverCrash" => (Shape::Cross, "#744210", "driver crash"),
        "IoError" => (Shape::Square, "#dd6b20", "I/O error"),
        "ShortIo" => (Shape::TriangleDown, "#b7791f", "short I/O"),
        "SyncFailure" => (Shape::Diamond, "#e53e3e", "sync failure"),
        "BitRot" => (Shape::Plus, "#805ad5", "bit rot"),
        "Misdirect" => (Shape::TriangleUp, "#319795", "misdirected write"),
        "BadSector" => (Shape::Square, "#1a202c", "bad sector"),
        "ClockJump" => (Shape::Circle, "#3182ce", "clock jump"),
        "SlowIo" => (Shape::Ring, "#718096", "slow I/O"),
        other => return (Shape::Hexagon, NOTE, format!("fault: {other}")),
    };
    (shape, colour, format!("fault: {words}"))
}

/// `shape` centred on (x, y) with radius `r`, filled (or stroked) with `colour`, with `inner`
/// (a `<title>`, or nothing) inside.
pub(super) fn shape(shape: Shape, x: f64, y: f64, r: f64, colour: &str, inner: &str) -> String {
    let points = |pts: &[(f64, f64)]| -> String {
        pts.iter()
            .map(|(dx, dy)| format!("{:.1},{:.1}", x + dx * r, y + dy * r))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let polygon = |pts: &[(f64, f64)]| {
        format!(r#"<polygon points="{}" fill="{colour}">{inner}</polygon>"#, points(pts))
    };
    let stroked = |d: String| {
        format!(r#"<path d="{d}" stroke="{colour}" stroke-width="2.2" fill="none">{inner}</path>"#)
    };
    match shape {
        Shape::Circle => {
            format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="{colour}">{inner}</circle>"#)
        }
        Shape::Ring => format!(
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="white" stroke="{colour}" stroke-width="2">{inner}</circle>"#
        ),
        Shape::Square => polygon(&[(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]),
        Shape::TriangleUp => polygon(&[(0.0, -1.1), (1.0, 0.8), (-1.0, 0.8)]),
        Shape::TriangleDown => polygon(&[(0.0, 1.1), (1.0, -0.8), (-1.0, -0.8)]),
        Shape::Diamond => polygon(&[(0.0, -1.2), (1.0, 0.0), (0.0, 1.2), (-1.0, 0.0)]),
        Shape::Hexagon => {
            polygon(&[(-1.0, 0.0), (-0.5, -0.9), (0.5, -0.9), (1.0, 0.0), (0.5, 0.9), (-0.5, 0.9)])
        }
        Shape::Cross => stroked(format!(
            "M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}",
            x - r,
            y - r,
            x + r,
            y + r,
            x - r,
            y + r,
            x + r,
            y - r
        )),
        Shape::Plus => stroked(format!(
            "M{:.1},{y:.1}H{:.1}M{x:.1},{:.1}V{:.1}",
            x - r * 1.1,
            x + r * 1.1,
            y - r * 1.1,
            y + r * 1.1
        )),
    }
}

/// A `<title>` element holding `text`, escaped.
pub(super) fn title(text: &str) -> String {
    format!("<title>{}</title>", escape(text))
}

/// What a legend entry draws before its words.
pub(super) enum Swatch {
    Bar(&'static str, f64),
    Mark(Shape, &'static str),
    Line(&'static str, &'static str),
    Band(&'static str),
}

const LEGEND_ROW_PX: f64 = 22.0;
const LEGEND_CHAR_PX: f64 = 6.4;

fn swatch(swatch: &Swatch, x: f64, y: f64) -> String {
    match swatch {
        Swatch::Bar(colour, height) => format!(
            r#"<rect x="{:.1}" y="{:.1}" width="3" height="{height:.1}" fill="{colour}"/>"#,
            x + 6.0,
            y - height / 2.0
        ),
        Swatch::Mark(kind, colour) => shape(*kind, x + 7.0, y, 5.0, colour, ""),
        Swatch::Line(colour, dash) => format!(
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}"/>"#,
            x,
            y,
            x + 16.0,
            y
        ),
        Swatch::Band(colour) => format!(
            r##"<rect x="{x:.1}" y="{:.1}" width="16" height="12" fill="{colour}" stroke="#a0aec0" stroke-width="0.5"/>"##,
            y - 6.0
        ),
    }
}

/// The legend laid out in rows from (`left`, `top`) up to `right`; returns the SVG and its
/// height in pixels.
pub(super) fn legend(items: &[(Swatch, String)], left: f64, right: f64, top: f64) -> (String, f64) {
    let mut svg = format!(
        r#"<g class="legend"><text x="{left:.1}" y="{:.1}" class="legend-title">Legend</text>"#,
        top + 12.0
    );
    let (mut x, mut y) = (left + 56.0, top + 8.0);
    for (mark, words) in items {
        let width = 26.0 + words.chars().count() as f64 * LEGEND_CHAR_PX + 18.0;
        if x + width > right {
            x = left + 56.0;
            y += LEGEND_ROW_PX;
        }
        svg.push_str(&swatch(mark, x, y));
        let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x + 22.0, y + 4.0, escape(words));
        x += width;
    }
    svg.push_str("</g>");
    (svg, y - top + LEGEND_ROW_PX)
}
