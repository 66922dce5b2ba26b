//! The run report page (`stormhold-sim run --report`): one self-contained, well-formed HTML
//! page with escaped text, that shows what a colleague needs to read a run, and is the same
//! every time for the same report.

use std::process::{Command, Output};
use stormhold::env::sim::{CrashMode, FaultOptions, SimEnv, TRACE_EVENTS_MAX, TearFillWeights, TraceEvent};
use stormhold_sim::config::{FaultClass, RunConfig, WorkloadKind};
use stormhold_sim::report::render_html;
use stormhold_sim::runner::{self, RunReport, Violation, ViolationKind};

const REPLAY: &str = "cargo run --release -p stormhold-sim -- run --seed 7";
const SEEDS_MAX: u64 = 200;
/// Elements that HTML never closes.
const VOID: [&str; 2] = ["meta", "br"];

/// Runs `config` on a disk with `real` options, keeping every trace event.
fn run_keeping_trace(config: &RunConfig, real: FaultOptions) -> RunReport {
    let env = SimEnv::new(config.seed, real).expect("valid fault options");
    env.keep_trace_events(TRACE_EVENTS_MAX);
    runner::run_with_env(config, env)
}

/// An honest run with crashes and failed syncs.
fn passing_report() -> RunReport {
    let mut config = RunConfig::from_seed(7, WorkloadKind::Env, 200);
    config.restrict_faults(&[FaultClass::Crash, FaultClass::Sync]);
    let report = run_keeping_trace(&config, config.faults.clone());
    assert_eq!(report.violation, None);
    assert!(report.sim.crashes > 0, "the run must crash");
    report
}

/// A deliberate checker-power setup: the model believes torn sectors hold old bytes or
/// zeros, the disk fills them with garbage. The first seed that gets caught.
fn failing_report() -> RunReport {
    (0..SEEDS_MAX)
        .map(|seed| {
            let mut config = RunConfig::from_seed(seed, WorkloadKind::Env, 300);
            config.restrict_faults(&[]);
            config.faults.crash = CrashMode::Random { probability: 0.01 };
            config.faults.tear_fill = TearFillWeights { old: 1, zero: 1, garbage: 0 };
            let mut real = config.faults.clone();
            real.tear_fill = TearFillWeights { old: 0, zero: 0, garbage: 1 };
            run_keeping_trace(&config, real)
        })
        .find(|report| report.violation.is_some())
        .expect("garbage tears are caught within the seed budget")
}

/// Checks every tag of `markup` is closed in order and every `&` starts an entity.
fn check_well_formed(markup: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = markup;
    while let Some(start) = rest.find('<') {
        check_text(&rest[..start]);
        let end = start + rest[start..].find('>').expect("every < has its >");
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        let name = tag.trim_start_matches('/').split(|c: char| c.is_whitespace() || c == '/').next();
        let name = name.expect("a tag name");
        if tag.starts_with('!') || tag.ends_with('/') || VOID.contains(&name) {
            continue;
        }
        if tag.starts_with('/') {
            assert_eq!(open.pop(), Some(name), "</{name}> closes the element opened last");
        } else {
            open.push(name);
        }
    }
    check_text(rest);
    assert!(open.is_empty(), "unclosed elements: {open:?}");
}

fn check_text(text: &str) {
    assert!(!text.contains('>'), "a raw > in text: {text:?}");
    for (i, _) in text.match_indices('&') {
        let entity = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|e| text[i..].starts_with(e));
        assert!(entity, "a raw & in text: {:?}", &text[i..(i + 20).min(text.len())]);
    }
}

#[test]
fn page_is_one_self_contained_well_formed_document() {
    for report in [passing_report(), failing_report()] {
        let page = render_html(&report, REPLAY);
        assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..40]);
        assert_eq!(page.matches("<svg").count(), 1, "exactly one svg");
        assert_eq!(page.matches("</svg>").count(), 1, "exactly one svg");
        check_well_formed(&page);
        let svg = &page[page.find("<svg").expect("svg")..page.find("</svg>").expect("svg end")];
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
        let urls = page.matches("http://").count() + page.matches("https://").count();
        assert_eq!(urls, 1, "the SVG namespace is the only URL");
        assert!(!page.contains("<script"), "no script");
        assert!(!page.contains("url("), "no fetched resource in CSS");
        assert!(!page.contains("@import") && !page.contains("@font-face"), "no external font");
    }
}

#[test]
fn passing_page_shows_seed_result_lanes_crash_lines_and_watermark() {
    let report = passing_report();
    let page = render_html(&report, REPLAY);
    assert!(page.contains("run report: seed 7</h1>"));
    assert!(page.contains(r#"<span class="badge pass">PASS</span>"#));
    assert!(page.contains(&format!("{:016x}", report.trace_hash)), "trace hash");
    assert!(page.contains(REPLAY), "replay command");
    assert!(page.contains("crash, sync"), "fault classes on");
    for lane in ["workload ops", "writes", "reads", "file syncs", "dir syncs", "dir ops", "faults"] {
        assert!(page.contains(&format!(r#"class="lane-label">{lane}</text>"#)), "lane {lane}");
    }
    assert!(page.contains(r#"class="lane-label">durable watermark</text>"#));
    assert!(page.contains(r#"<line class="crash-line""#), "a crash line");
    assert!(page.contains(r#"<line class="restart-line""#), "a restart line");
    assert!(page.contains(r#"<path class="watermark" d="M"#), "the watermark step line");
    assert!(page.contains("quiet phase: no new faults"), "the quiet phase");
    assert!(page.contains("<title>"), "hover titles");
    assert!(!page.contains("First divergence"), "no callout on a pass");
}

#[test]
fn failing_page_calls_out_the_first_divergence_and_tables_the_events_before_it() {
    let report = failing_report();
    let violation = report.violation.clone().expect("a violation");
    let page = render_html(&report, REPLAY);
    assert!(page.contains(r#"<span class="badge fail">Durability violation</span>"#));
    assert!(page.contains("First divergence: Durability violation at op"), "the callout");
    assert!(page.contains("expected vs got:"));
    let detail_start: String = violation.detail.chars().take(40).collect();
    assert!(page.contains(&detail_start), "the detail: {detail_start}");
    assert!(page.contains(r#"class="violating-mark""#), "the ring on the violating call");
    assert!(page.contains("Zoom: the last events before the first divergence"));
    assert_eq!(page.matches(r#"<tr class="violating">"#).count(), 1, "one violating row");
    assert!(page.contains(r#"<tr class="fault">"#) || page.contains(r#"<tr class="crash">"#));
    let rows = page.matches("<tr class=").count();
    assert!(rows <= stormhold_sim::report::TABLE_EVENTS_MAX, "{rows} rows");
    let last_row = page.rfind("<tr class=").expect("rows");
    assert!(page[last_row..].starts_with(r#"<tr class="violating">"#), "the table ends at the violating op");
}

#[test]
fn failing_page_marks_the_acknowledged_commit_that_was_lost() {
    let workload: WorkloadKind = "toy-ack-before-sync".parse().expect("a planted-bug workload");
    let report = (0..SEEDS_MAX)
        .map(|seed| {
            let config = RunConfig::from_seed(seed, workload, 40);
            run_keeping_trace(&config, config.faults.clone())
        })
        .find(|r| r.violation.as_ref().is_some_and(|v| v.detail.contains(": expected Some(")))
        .expect("the planted bug loses an acknowledged write within the seed budget");
    let detail = &report.violation.as_ref().expect("a violation").detail;
    let at = detail.find("key ").expect("a key") + 4;
    let (key, rest) = detail[at..].split_once(": expected Some(").expect("an expected value");
    let write = format!("({key}, Some({}))", rest.split_once(')').expect("a value").0);
    let page = render_html(&report, REPLAY);
    let line = page.find(r#"<p class="lost-line">"#).expect("the lost commit is named");
    let line = &page[line..page[line..].find("</p>").expect("closed") + line];
    assert!(line.contains(": commit [") && line.contains(&write), "{line} names {write}");
    let acknowledged = line.contains("durable=true -&gt; ok")
        || (line.contains("durable=false -&gt; ok; acknowledged durable by #")
            && (line.ends_with(": sync -&gt; ok") || line.ends_with("durable=true -&gt; ok")));
    assert!(acknowledged, "an acknowledged commit: {line}");
    let lost_row = page.find(r#"<tr class="lost">"#).expect("its row is marked");
    assert!(page[lost_row..].split("</tr>").next().expect("a row").contains(&write));
    let marked = if line.contains("acknowledged durable by") { 1..=2 } else { 1..=1 };
    assert!(marked.contains(&page.matches(r#"<tr class="lost">"#).count()), "commit (and its sync) marked");
    check_well_formed(&page);
    assert!(
        !render_html(&passing_report(), REPLAY).contains(r#"<p class="lost-line">"#),
        "a passing run loses nothing"
    );
}

#[test]
fn text_from_the_run_is_escaped() {
    let mut report = passing_report();
    report.violation =
        Some(Violation { kind: ViolationKind::Read, op_index: 3, detail: "got <script>& not \"x\"".into() });
    report.trace_tail.push(TraceEvent {
        call: 9_999,
        time_ns: report.simulated_ns,
        text: "op 9: <b>&'".into(),
    });
    let page = render_html(&report, "replay --note '<i>'");
    assert!(page.contains("got &lt;script&gt;&amp; not &quot;x&quot;"), "the detail, escaped");
    assert!(page.contains("op 9: &lt;b&gt;&amp;&#39;"), "an event text, escaped");
    assert!(page.contains("replay --note &#39;&lt;i&gt;&#39;"), "the replay command, escaped");
    assert!(!page.contains("<script") && !page.contains("<b>") && !page.contains("<i>"));
    check_well_formed(&page);
}

#[test]
fn rendering_the_same_report_twice_gives_the_same_page() {
    let report = failing_report();
    assert_eq!(render_html(&report, REPLAY), render_html(&report, REPLAY));
    let again = failing_report();
    assert_eq!(render_html(&report, REPLAY), render_html(&again, REPLAY), "same seed, same page");
}

#[test]
fn client_notes_get_one_lane_per_client_in_numeric_order() {
    let mut report = passing_report();
    let time_ns = report.simulated_ns;
    for text in ["client 10: get k1 -> ok", "client 2: put k1 -> ok", "client 2: get k1 -> err"] {
        report.trace_tail.push(TraceEvent { call: 0, time_ns, text: text.into() });
    }
    let page = render_html(&report, REPLAY);
    let lane = |id: &str| page.find(&format!(r#"class="lane-label">client {id}</text>"#));
    let (two, ten) = (lane("2").expect("lane client 2"), lane("10").expect("lane client 10"));
    assert!(two < ten, "client 2 above client 10");
    assert_eq!(page.matches(r#"class="lane-label">client 2</text>"#).count(), 1, "one lane per client");
}

#[test]
fn a_trace_that_kept_only_its_tail_says_so() {
    let config = RunConfig::from_seed(7, WorkloadKind::Env, 200);
    let report = runner::run(&config, None);
    let page = render_html(&report, REPLAY);
    assert!(page.contains("earlier events not kept"));
    check_well_formed(&page);
}

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stormhold-sim")).args(args).output().expect("run stormhold-sim")
}

#[test]
fn report_flag_writes_the_page_and_leaves_the_printed_report_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out.html");
    let path = path.to_str().expect("UTF-8 path");
    let plain = sim(&["run", "--seed", "7", "--ops", "120"]);
    let with_report = sim(&["run", "--seed", "7", "--ops", "120", "--report", path]);
    assert_eq!(plain.status.code(), with_report.status.code());
    let plain = String::from_utf8(plain.stdout).expect("UTF-8");
    let with_report = String::from_utf8(with_report.stdout).expect("UTF-8");
    assert_eq!(with_report, format!("{plain}report: written to {path}\n"));
    let page = std::fs::read_to_string(path).expect("the page");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("cargo run --release -p stormhold-sim -- run --seed 7 --ops 120"), "replay");
}
