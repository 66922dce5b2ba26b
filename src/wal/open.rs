//! Opening a log: create it crash-safely, or recover it and prepare the tail for appends.

use std::path::{Path, PathBuf};

use super::floor;
use super::format::{self, Lsn, Record, RecordRef, SEGMENT_HEADER_BYTES};
use super::scan::{self, ScanReport};
use super::{Segment, Wal, WalError, WalOptions, WalStats, io, segment_header};
use crate::env::{Env, EnvFile, OpenOptions};

impl<E: Env> Wal<E> {
    /// Opens (creating if needed) the log in `dir`, calling `visit` for every recovered record
    /// in lsn order. Before it returns, the recovered log is durable and its torn tail gone.
    pub fn open(
        env: E,
        dir: &Path,
        options: WalOptions,
        mut visit: impl FnMut(Record),
    ) -> Result<(Self, ScanReport), WalError> {
        Self::open_borrowed(env, dir, options, |record| visit(record.to_record()))
    }

    /// [`Wal::open`], handing each recovered record over borrowed from the scan's read window
    /// (valid for the call only), so recovery allocates and copies nothing per record.
    pub fn open_borrowed(
        env: E,
        dir: &Path,
        options: WalOptions,
        visit: impl FnMut(RecordRef<'_>),
    ) -> Result<(Self, ScanReport), WalError> {
        Self::open_covered(env, dir, options, 0, visit)
    }

    /// [`Wal::open`] for a log whose records up to `covered_lsn` a valid checkpoint already
    /// holds (DESIGN.md rule 16): damage wholly among them is skipped and reported in
    /// [`ScanReport::covered_damage`] (see `scan`), and a log cut before `covered_lsn` (with
    /// nothing durable past it lost, by its floor marker) continues in a new segment at
    /// `covered_lsn + 1`, so no lsn the checkpoint covers is handed out again.
    pub fn open_covered(
        env: E,
        dir: &Path,
        options: WalOptions,
        covered_lsn: Lsn,
        visit: impl FnMut(RecordRef<'_>),
    ) -> Result<(Self, ScanReport), WalError> {
        Self::open_covered_with(env, dir, options, covered_lsn, true, visit)
    }

    /// [`Wal::open_covered`], the scan reading each segment ahead on a helper thread only if
    /// `read_ahead` (and the `Env` allows threads): a recovery that runs beside others on
    /// every thread it may use has no core to spare for one.
    pub(crate) fn open_covered_with(
        env: E,
        dir: &Path,
        options: WalOptions,
        covered_lsn: Lsn,
        read_ahead: bool,
        visit: impl FnMut(RecordRef<'_>),
    ) -> Result<(Self, ScanReport), WalError> {
        options.validate()?;
        match env.create_dir(dir) {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(WalError::io("create directory", dir, error));
            }
            _ => {}
        }
        if let Some(parent) = dir.parent() {
            io("sync directory", parent, env.sync_dir(parent))?;
        }
        let read_ahead = read_ahead && env.parallelism() > 1;
        let (floor, mut report) = scan_against_floor(&env, dir, &options, covered_lsn, read_ahead, visit)?;
        let point_in_time = options.recovery_mode == scan::RecoveryMode::PointInTime;
        for &id in report.partial_segments.iter().chain(&report.cut_segments) {
            let path = dir.join(format::segment_file_name(id));
            io("remove segment", &path, env.remove_file(&path))?;
        }
        io("sync directory", dir, env.sync_dir(dir))?;
        let mut active = match &report.end {
            Some(end) => reopen_tail(&env, dir, &options, end.segment_id, end.offset, &report)?,
            None => create_segment(&env, dir, &options, 1, report.next_lsn)?,
        };
        let mut segments = report.segments.clone();
        if segments.is_empty() {
            segments.push((active.id, report.next_lsn));
        }
        if report.end.is_some() && report.next_lsn <= covered_lsn {
            active = continue_past_covered(&env, dir, &options, &active, covered_lsn, &mut report)?;
            segments.push((active.id, report.next_lsn));
        }
        let created = u64::from(report.end.is_none());
        let wal = Wal {
            env,
            dir: dir.to_path_buf(),
            options,
            active,
            segments,
            next_lsn: report.next_lsn,
            // Everything below next_lsn is durable: open synced what it scanned, and truncation
            // removes only sealed (synced) segments. (`report.last_lsn` is 0 when no record is
            // left, which would make the shard report a clean log as not durable.)
            durable_lsn: report.next_lsn - 1,
            poisoned: None,
            stats: WalStats { segments_created: created, ..WalStats::default() },
        };
        // A point-in-time cut, or a partial segment removed, leaves the log behind its marker
        // on purpose: the marker moves to what was recovered (durable, just synced); so does a
        // covered cut, which moved the log to a new segment.
        let moved = floor.is_some_and(|f| f.segment_id != wal.active.id) && !report.covered_damage.is_empty();
        if floor.is_some_and(|f| point_in_time || f.segment_id > wal.active.id) || moved {
            floor::write_floor(&wal.env, dir, &wal.floor(wal.durable_lsn))?;
        }
        Ok((wal, report))
    }
}

/// Reads the log's floor marker and scans the log, refusing a log that ends below the marker
/// (its newest segment lost, cut or zeroed) unless a point-in-time recovery asked for a cut.
/// Records at or below `covered_lsn` count as present (a checkpoint holds them).
fn scan_against_floor<E: Env>(
    env: &E,
    dir: &Path,
    options: &WalOptions,
    covered_lsn: Lsn,
    read_ahead: bool,
    visit: impl FnMut(RecordRef<'_>),
) -> Result<(Option<floor::Floor>, ScanReport), WalError> {
    // Searches past the records stop at the largest segment size the options accept, not at
    // this open's: the size is an option of each open, so a segment written under a larger
    // one may hold records past today's size, and stopping there would take damage that
    // later records vouch for for a torn tail (review finding).
    let expect = scan::Expect {
        segment_size_bytes: super::SEGMENT_SIZE_BYTES_MAX,
        identity: Some(options.identity),
        covered_lsn,
    };
    let floor = floor::read_floor(env, dir, options.identity)?;
    let report = scan::scan_bounded_with(env, dir, options.recovery_mode, expect, read_ahead, visit)?;
    let point_in_time = options.recovery_mode == scan::RecoveryMode::PointInTime;
    // A marker at or below the covered lsn proves durable only what a checkpoint holds.
    if let Some(floor) = &floor
        && !point_in_time
        && floor.lsn > covered_lsn
    {
        let newest =
            report.segments.iter().map(|&(id, _)| id).chain(report.partial_segments.iter().copied()).max();
        floor::check_floor(dir, floor, report.next_lsn - 1, newest)?;
    }
    Ok((floor, report))
}

/// The log was cut before `covered_lsn`, and a checkpoint holds every record cut: reports the
/// cut and returns a new segment that continues the log at `covered_lsn + 1` (`active`, the
/// recovered tail, was just synced, so it is sealed), so no covered lsn is handed out again.
fn continue_past_covered<E: Env>(
    env: &E,
    dir: &Path,
    options: &WalOptions,
    active: &Segment<E::File>,
    covered_lsn: Lsn,
    report: &mut ScanReport,
) -> Result<Segment<E::File>, WalError> {
    let (from_lsn, to_lsn) = (report.next_lsn, covered_lsn);
    let (path, offset) = (active.path.clone(), active.tail);
    report.covered_damage.push(scan::CoveredDamage { path, offset, from_lsn, to_lsn });
    report.next_lsn = covered_lsn + 1;
    create_segment(env, dir, options, active.id + 1, report.next_lsn)
}

/// Creates segment `id` crash-safely: header written, file (pre)sized and synced, directory
/// synced, all before the segment can receive a record.
pub(super) fn create_segment<E: Env>(
    env: &E,
    dir: &Path,
    options: &WalOptions,
    id: u64,
    first_lsn: Lsn,
) -> Result<Segment<E::File>, WalError> {
    let path = dir.join(format::segment_file_name(id));
    let file = io("create segment", &path, env.open(&path, OpenOptions::create().truncate(true)))?;
    io(
        "write segment header",
        &path,
        file.write_all_at(&segment_header(id, first_lsn, options.identity), 0),
    )?;
    io("size segment", &path, file.set_len(SEGMENT_HEADER_BYTES))?;
    let mut preallocated = SEGMENT_HEADER_BYTES;
    if options.preallocate {
        preallocated =
            (SEGMENT_HEADER_BYTES + options.preallocate_step_bytes()).min(options.segment_size_bytes);
        fill_zeros(&file, &path, SEGMENT_HEADER_BYTES, preallocated)?;
    }
    io("sync segment", &path, file.sync_data())?;
    io("sync directory", dir, env.sync_dir(dir))?;
    Ok(Segment {
        id,
        file,
        path,
        tail: SEGMENT_HEADER_BYTES,
        preallocated,
        synced_tail: SEGMENT_HEADER_BYTES,
    })
}

/// Bytes written at a time when preallocating.
const ZERO_FILL_CHUNK_BYTES: usize = 1024 * 1024;

/// The zeros every fill writes from: static, so a fill neither allocates nor clears a
/// mebibyte (it was 44% of a one-writer commit loop's instructions, callgrind).
static ZEROS: [u8; ZERO_FILL_CHUNK_BYTES] = [0; ZERO_FILL_CHUNK_BYTES];

/// Preallocates by writing zeros (not `set_len`, which leaves a sparse file: every commit
/// would then allocate a block and its `fdatasync` would have to journal that).
pub(super) fn fill_zeros<F: EnvFile>(file: &F, path: &Path, from: u64, to: u64) -> Result<(), WalError> {
    let zeros = &ZEROS[..to.saturating_sub(from).min(ZERO_FILL_CHUNK_BYTES as u64) as usize];
    let mut offset = from;
    while offset < to {
        let len = (to - offset).min(zeros.len() as u64) as usize;
        io("preallocate segment", path, file.write_all_at(&zeros[..len], offset))?;
        offset += len as u64;
    }
    Ok(())
}

/// Reopens the last segment for appends: cuts the torn tail (and re-preallocates), then syncs
/// what was recovered, so no new record ever vouches for bytes only in the page cache.
fn reopen_tail<E: Env>(
    env: &E,
    dir: &Path,
    options: &WalOptions,
    id: u64,
    end: u64,
    report: &ScanReport,
) -> Result<Segment<E::File>, WalError> {
    let path: PathBuf = dir.join(format::segment_file_name(id));
    let file = io("open segment", &path, env.open(&path, OpenOptions::read_write()))?;
    // Never write into the sector holding `end` unless it holds garbage: after every sync the
    // writer starts a new sector, so garbage there means no acknowledged record shares it, while
    // zeros there may sit next to the last acknowledged record, which a torn zero-fill (without
    // powersafe overwrite) would destroy.
    let boundary = end.next_multiple_of(format::SYNC_ALIGN_BYTES);
    if report.torn_bytes > 0 || report.dropped.is_some() {
        let len = io("len", &path, file.len())?;
        let upto = boundary.min(len);
        if upto > end {
            let mut sector_rest = vec![0; (upto - end) as usize];
            io("read torn tail", &path, file.read_exact_at(&mut sector_rest, end))?;
            if sector_rest.iter().any(|&b| b != 0) {
                fill_zeros(&file, &path, end, upto)?;
            }
        }
        io("truncate torn tail", &path, file.set_len(boundary))?;
    }
    let mut len = io("len", &path, file.len())?;
    let tail = end.next_multiple_of(format::SYNC_ALIGN_BYTES);
    // One step of zeros past the tail (an old segment preallocated whole keeps its zeros).
    let target = (tail + options.preallocate_step_bytes()).min(options.segment_size_bytes);
    if options.preallocate {
        // Preallocated space ends on a sector boundary: a later fill never shares a sector
        // with a record.
        let from = len.next_multiple_of(format::SYNC_ALIGN_BYTES);
        if from > len {
            io("extend segment", &path, file.set_len(from))?;
            len = from;
        }
        if len < target {
            fill_zeros(&file, &path, len, target)?;
            len = target;
        }
    }
    io("sync recovered segment", &path, file.sync_data())?;
    let preallocated = if options.preallocate { len } else { tail };
    Ok(Segment { id, file, path, tail, preallocated, synced_tail: tail })
}
