//! Reading a trace for a picture: which lane each event belongs to, where the quiet phase and
//! the recovery checks lie, the durable watermark series, and which event broke a promise.
//!
//! Invariants: classification looks only at an event's text, never guesses from neighbours
//! (except the phases, which follow the `restart` / `faults enabled=` protocol of the runner),
//! and an unknown text still lands in a lane, so a new workload's notes are drawn, not lost.

use std::collections::BTreeMap;
use stormhold::env::sim::TraceEvent;

/// A horizontal band of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Lane {
    /// Workload notes that name no client (`op N: ...`, `discard ...`, anything unknown).
    Workload,
    /// Notes of one client (`client <id>: ...`); ids sort by length, then text, so 2 < 10.
    Client(usize, String),
    /// `write`, `set_len`.
    Writes,
    /// `read`, `len`.
    Reads,
    /// `sync_data`, `sync_all`.
    FileSyncs,
    /// `sync_dir`.
    DirSyncs,
    /// `open`, `rename`, `remove_file`, `list_dir` and the other namespace calls.
    DirOps,
    /// `now_wall`, `now_monotonic`, `sleep`.
    Clock,
    /// Env calls this module does not know.
    OtherCalls,
    /// Injected faults.
    Faults,
}

impl Lane {
    /// The label drawn left of the lane.
    pub(super) fn label(&self) -> String {
        match self {
            Lane::Workload => "workload ops".into(),
            Lane::Client(_, id) => format!("client {id}"),
            Lane::Writes => "writes".into(),
            Lane::Reads => "reads".into(),
            Lane::FileSyncs => "file syncs".into(),
            Lane::DirSyncs => "dir syncs".into(),
            Lane::DirOps => "dir ops".into(),
            Lane::Clock => "clock".into(),
            Lane::OtherCalls => "other calls".into(),
            Lane::Faults => "faults".into(),
        }
    }

    /// Whether the lane is drawn even when empty (an empty lane says "none of these happened").
    pub(super) fn always_shown(&self) -> bool {
        !matches!(self, Lane::Client(..) | Lane::OtherCalls)
    }

    /// Lanes drawn on every timeline, top to bottom (client lanes go after `Workload`).
    pub(super) const FIXED: [Lane; 9] = [
        Lane::Workload,
        Lane::Writes,
        Lane::Reads,
        Lane::FileSyncs,
        Lane::DirSyncs,
        Lane::DirOps,
        Lane::Clock,
        Lane::OtherCalls,
        Lane::Faults,
    ];
}

/// What one event is, as far as the picture cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// An Env call that returned (`ok` or `err`).
    Call { lane: Lane, ok: bool },
    /// A note of the workload or of one client.
    Note { lane: Lane },
    /// An injected fault; `kind` is the `Fault` variant's name.
    Fault { kind: String },
    /// The process crashed.
    Crash,
    /// A new process started.
    Restart,
    /// Fault drawing switched on or off.
    FaultsEnabled(bool),
    /// A durable watermark series reported a new value.
    Watermark { name: String, value: u64 },
}

impl Class {
    /// The lane the event's marker is drawn in, if it has a marker (lines and the watermark
    /// are drawn apart).
    pub(super) fn lane(&self) -> Option<Lane> {
        match self {
            Class::Call { lane, .. } | Class::Note { lane } => Some(lane.clone()),
            Class::Fault { .. } => Some(Lane::Faults),
            _ => None,
        }
    }

    /// A short name for the table's lane column.
    pub(super) fn column(&self) -> String {
        match self {
            Class::Crash => "crash".into(),
            Class::Restart => "restart".into(),
            Class::FaultsEnabled(_) => "phase".into(),
            Class::Watermark { .. } => "watermark".into(),
            other => other.lane().map_or_else(String::new, |lane| lane.label()),
        }
    }
}

/// Classifies one event by its text.
pub(super) fn classify(text: &str) -> Class {
    if let Some(rest) = text.strip_prefix("fault ") {
        let kind: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        return Class::Fault { kind: if kind.is_empty() { "Unknown".into() } else { kind } };
    }
    if text.starts_with("crash image_seed=") || text == "crash" {
        return Class::Crash;
    }
    if text == "restart" {
        return Class::Restart;
    }
    if let Some(flag) = text.strip_prefix("faults enabled=") {
        return Class::FaultsEnabled(flag.trim() == "true");
    }
    if let Some(class) = watermark(text) {
        return class;
    }
    if let Some(id) = client_id(text) {
        return Class::Note { lane: Lane::Client(id.len(), id.to_owned()) };
    }
    if is_op_note(text) {
        return Class::Note { lane: Lane::Workload };
    }
    match call_outcome(text) {
        Some(ok) => Class::Call { lane: call_lane(text), ok },
        None => Class::Note { lane: Lane::Workload },
    }
}

fn watermark(text: &str) -> Option<Class> {
    let (name, value) = text.strip_prefix("watermark ")?.split_once('=')?;
    let value = value.trim().parse().ok()?;
    Some(Class::Watermark { name: name.trim().to_owned(), value })
}

/// The `<id>` of a note shaped `client <id>: ...`.
fn client_id(text: &str) -> Option<&str> {
    let (id, _) = text.strip_prefix("client ")?.split_once(':')?;
    (!id.is_empty() && !id.contains(char::is_whitespace)).then_some(id)
}

/// Whether `text` is a workload note shaped `op <N>: ...` (which may quote an outcome).
fn is_op_note(text: &str) -> bool {
    text.strip_prefix("op ")
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `Some(ok)` for an Env call's text (`<call> ... -> ok ...` or `-> err ...`).
fn call_outcome(text: &str) -> Option<bool> {
    let (_, outcome) = text.rsplit_once(" -> ")?;
    if outcome.starts_with("ok") {
        Some(true)
    } else if outcome.starts_with("err") {
        Some(false)
    } else {
        None
    }
}

fn call_lane(text: &str) -> Lane {
    match text.split_whitespace().next().unwrap_or_default() {
        "write" | "set_len" => Lane::Writes,
        "read" | "len" => Lane::Reads,
        "sync_data" | "sync_all" => Lane::FileSyncs,
        "sync_dir" => Lane::DirSyncs,
        "open" | "create_dir" | "remove_dir" | "list_dir" | "rename" | "remove_file" | "exists"
        | "lock_dir" => Lane::DirOps,
        "now_wall" | "now_monotonic" | "sleep" => Lane::Clock,
        _ => Lane::OtherCalls,
    }
}

/// Closed-open spans of virtual time, in nanoseconds.
pub(super) type Spans = Vec<(u64, u64)>;

/// The phases of a run, read from its `restart` and `faults enabled=` events.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Phases {
    /// Fault drawing switched off outside recovery and on again later (setup, pauses).
    pub faults_off: Spans,
    /// Fault drawing switched off outside recovery for good: the quiet phase, to the end.
    pub quiet: Option<(u64, u64)>,
    /// A recovery check: a `restart` followed at once by `faults enabled=false`, up to the
    /// next `faults enabled=` (the env workload's protocol; other workloads show none).
    pub recoveries: Spans,
}

#[derive(Default)]
struct PhaseScan {
    phases: Phases,
    /// Set by a `restart`, for the one event after it.
    restarted_at: Option<u64>,
    recovery_since: Option<u64>,
    off_since: Option<u64>,
}

impl PhaseScan {
    fn step(&mut self, class: &Class, time_ns: u64) {
        let restarted_at = self.restarted_at.take();
        match class {
            Class::Restart => {
                self.close_recovery(time_ns);
                self.restarted_at = Some(time_ns);
            }
            Class::FaultsEnabled(false) if restarted_at.is_some() => self.recovery_since = restarted_at,
            Class::FaultsEnabled(enabled) => {
                self.close_recovery(time_ns);
                self.toggle(*enabled, time_ns);
            }
            _ => {}
        }
    }

    fn close_recovery(&mut self, time_ns: u64) {
        if let Some(start) = self.recovery_since.take() {
            self.phases.recoveries.push((start, time_ns));
        }
    }

    fn toggle(&mut self, enabled: bool, time_ns: u64) {
        match (enabled, self.off_since) {
            (true, Some(start)) => {
                self.phases.faults_off.push((start, time_ns));
                self.off_since = None;
            }
            (false, None) => self.off_since = Some(time_ns),
            _ => {}
        }
    }

    fn finish(mut self, end_ns: u64) -> Phases {
        self.close_recovery(end_ns);
        self.phases.quiet = self.off_since.map(|start| (start, end_ns));
        self.phases
    }
}

/// The phases of the classified `events` (in trace order).
pub(super) fn phases(events: &[TraceEvent], classes: &[Class]) -> Phases {
    let mut scan = PhaseScan::default();
    for (event, class) in events.iter().zip(classes) {
        scan.step(class, event.time_ns);
    }
    scan.finish(events.last().map_or(0, |e| e.time_ns))
}

/// Each watermark series by name: its (time, value) points in trace order.
pub(super) fn watermarks(events: &[TraceEvent], classes: &[Class]) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut series: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for (event, class) in events.iter().zip(classes) {
        if let Class::Watermark { name, value } = class {
            series.entry(name.clone()).or_default().push((event.time_ns, *value));
        }
    }
    series
}

/// The event that broke the promise: the last Env call before the run stopped, because the
/// checker stops a run at the first call whose result disagrees with the model.
pub(super) fn violating_event(classes: &[Class]) -> Option<usize> {
    classes.iter().rposition(|class| matches!(class, Class::Call { .. }))
}

/// The acknowledged commit a violation says was lost, and where it was acknowledged durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LostCommit {
    /// The successful `commit [...]` note that wrote the missing value.
    pub commit: usize,
    /// The successful `sync` (or later durable commit) that acknowledged it, when the commit
    /// itself was not durable.
    pub synced_by: Option<usize>,
}

/// The acknowledged commit the violation says was lost: the last successful `commit [...]`
/// note before event `before` that wrote the first `key K: expected Some(V)` of the
/// violation's detail, and, for a `durable=false` commit, the first successful `sync` or
/// durable commit after it.
/// `None` when the detail names no such write or no note made it.
pub(super) fn lost_commit(events: &[TraceEvent], detail: &str, before: usize) -> Option<LostCommit> {
    let write = expected_write(detail)?;
    let before = before.min(events.len());
    let commit = events[..before].iter().rposition(|e| {
        e.text.contains(": commit [") && e.text.contains(&write) && e.text.ends_with("-> ok")
    })?;
    let synced_by = (!events[commit].text.contains("durable=true"))
        .then(|| (commit + 1..before).find(|&i| acknowledges_durable(&events[i].text)))
        .flatten();
    Some(LostCommit { commit, synced_by })
}

/// Whether a note acknowledges every commit so far durable: a successful `sync`, or a
/// successful durable commit (the log is a prefix, so it covers the commits before it).
fn acknowledges_durable(text: &str) -> bool {
    text.ends_with(": sync -> ok") || (text.contains(": commit [") && text.ends_with("durable=true -> ok"))
}

/// The first `key K: expected Some(V)` of a violation's detail, as the commit note writes it:
/// `(K, Some(V))`.
fn expected_write(detail: &str) -> Option<String> {
    detail.match_indices("key ").find_map(|(at, _)| {
        let (key, rest) = detail[at + 4..].split_once(": expected Some(")?;
        let value = rest.split_once(')')?.0;
        let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
        (digits(key) && digits(value)).then(|| format!("({key}, Some({value}))"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_commit_is_the_acknowledged_commit_of_the_missing_write() {
        let events = [
            event(0, "op 1: commit [(7, Some(5))] durable=true -> ok"),
            event(1, "op 2: commit [(12, Some(70)), (7, Some(9))] durable=true -> ok"),
            event(2, "op 3: commit [(7, Some(9))] durable=true -> err I/O error"),
            event(3, "op 4: commit [(8, Some(1))] durable=false -> ok"),
            event(4, "sync_data fd3 -> ok ()"),
            event(5, "op 5: sync -> ok"),
            event(6, "op 6: commit [(9, Some(2))] durable=false -> ok"),
            event(7, "op 7: commit [(3, Some(4))] durable=true -> ok"),
        ];
        let detail = "no legal prefix; against the durable prefix: key 7: expected Some(9), got None; key 8: expected Some(1), got None";
        let lost = |commit, synced_by| Some(LostCommit { commit, synced_by });
        assert_eq!(lost_commit(&events, detail, 4), lost(1, None));
        assert_eq!(lost_commit(&events, detail, 1), None, "only events before the check");
        assert_eq!(lost_commit(&events, "key 7: expected None, got Some(9)", 4), None);
        assert_eq!(lost_commit(&events, "key 8: expected Some(1), got None", 6), lost(3, Some(5)));
        assert_eq!(lost_commit(&events, "key 8: expected Some(1), got None", 5), lost(3, None));
        assert_eq!(lost_commit(&events, "key 9: expected Some(2), got None", 8), lost(6, Some(7)));
    }

    fn event(time_ns: u64, text: &str) -> TraceEvent {
        TraceEvent { call: 0, time_ns, text: text.into() }
    }

    #[test]
    fn texts_land_in_their_lanes() {
        let lane = |text: &str| classify(text).lane();
        assert_eq!(lane("write fd3 @4096+512 data=ab -> ok 512"), Some(Lane::Writes));
        assert_eq!(classify("sync_dir /d0 -> err Other"), Class::Call { lane: Lane::DirSyncs, ok: false });
        assert_eq!(lane("client 12: put k -> ok"), Some(Lane::Client(2, "12".into())));
        assert_eq!(lane("op 55: driver crash"), Some(Lane::Workload));
        assert_eq!(lane("fault SyncFailure { image_seed: 3 }"), Some(Lane::Faults));
        assert_eq!(classify("fault SlowIo"), Class::Fault { kind: "SlowIo".into() });
        assert_eq!(
            classify("watermark durable-syncs=5"),
            Class::Watermark { name: "durable-syncs".into(), value: 5 }
        );
        assert_eq!(classify("crash image_seed=0x1 Resolution { }"), Class::Crash);
    }

    #[test]
    fn env_workload_phases_give_setup_recoveries_and_the_quiet_phase() {
        let events = [
            event(0, "faults enabled=false"),
            event(1, "faults enabled=true"),
            event(5, "restart"),
            event(5, "faults enabled=false"),
            event(7, "faults enabled=true"),
            event(9, "faults enabled=false"),
            event(12, "restart"),
            event(12, "faults enabled=false"),
            event(14, "faults enabled=false"),
            event(20, "len fd1 -> ok 0"),
        ];
        let classes: Vec<Class> = events.iter().map(|e| classify(&e.text)).collect();
        let phases = phases(&events, &classes);
        assert_eq!(phases.faults_off, vec![(0, 1)], "setup");
        assert_eq!(phases.quiet, Some((9, 20)));
        assert_eq!(phases.recoveries, vec![(5, 7), (12, 14)]);
    }

    #[test]
    fn a_restart_without_faults_off_is_no_recovery_check_and_quiet_needs_no_prior_toggle() {
        let events = [
            event(3, "restart"),
            event(3, "exists /toy/log -> ok true"),
            event(8, "faults enabled=false"),
            event(9, "restart"),
            event(11, "op 40: sync -> ok"),
        ];
        let classes: Vec<Class> = events.iter().map(|e| classify(&e.text)).collect();
        let phases = phases(&events, &classes);
        assert_eq!(phases, Phases { faults_off: vec![], quiet: Some((8, 11)), recoveries: vec![] });
        assert_eq!(classes[4], Class::Note { lane: Lane::Workload }, "a workload note, not a call");
    }
}
