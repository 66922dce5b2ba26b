//! Loading a version-2 `DATA` file (see `frame`) frame by frame: each frame's body is read
//! from disk straight into a block of its own, checked, and adopted whole by the run being
//! built ([`Run::adopt_block`], or [`Run::adopt_walked`] once the thread that read it checked
//! it): the only copy of an entry is the read's. Every byte read is checksummed on the way,
//! and the rest of a file that fails to decode is still read for its crc32 (a damaged file is
//! reported as a checksum failure first, as `load` has it).
//!
//! Each read takes a frame's body and the 8 bytes after it (the next frame's header), so a
//! file of n frames costs n reads (one, for a file no larger than a read block). Where the
//! caller grants a helper thread (a core is spare, see `load`), the frames are read on both
//! threads at once, the caller's thread checking and adopting them in file order
//! (`parallel`): what loads, and what fails and why, is the same as on one thread. The
//! simulator (parallelism 1) never has a helper.
//!
//! # Invariants
//!
//! - a frame's length is checked against the bytes left in the file before its block is
//!   allocated ([`Sections::frame`]): a crafted length allocates nothing;
//! - the crc32 returned covers every byte of the file, in order, whatever the decoder found.

mod parallel;

use std::io;
use std::path::Path;

use super::chain::Changes;
use super::data::{self, DATA_HEADER_BYTES, DATA_VERSION, DataError, DataSummary};
use super::error::CheckpointError;
use super::frame::{FRAME_HEADER_BYTES, FrameHeader, Section, Sections, walk_frame};
use super::fsio::{BlockSource, READ_BLOCK_BYTES};
use crate::env::EnvFile;

/// Frames read ahead of the decoder on each thread.
const FRAMES_AHEAD_MAX: usize = 4;

/// A frame as read: its section, header, body (in a block of its own) and the body's offset;
/// with its entries, if the thread that read it walked it ([`pre_walk`]).
struct FrameRead {
    section: Section,
    header: FrameHeader,
    block: Vec<u8>,
    body_at: u64,
    walked: Option<Walked>,
}

/// A frame of puts walked on its own (no key before it), by the thread that read it: each
/// entry's offset in the body, their payload bytes, and where its first key lies.
struct Walked {
    offsets: Vec<u32>,
    payload_bytes: u64,
    first_key: Option<std::ops::Range<usize>>,
}

/// Walks a large frame of puts on the thread that just read it, while its bytes are in that
/// core's cache (`parallel`): the decoder then checks only its first key against the run's
/// last and adopts it. A frame that fails its walk is left unwalked: the decoder walks it
/// again in order, which reports the failure exactly as without the pre-walk.
fn pre_walk(frame: &mut FrameRead) {
    if frame.section != Section::Puts || frame.block.len() < ADOPTED_FRAME_BYTES_MIN {
        return;
    }
    let body = frame.block.as_slice();
    let mut walked = Walked {
        offsets: Vec::with_capacity(frame.header.entries as usize),
        payload_bytes: 0,
        first_key: None,
    };
    let walk = walk_frame(body, frame.body_at, frame.header.entries, false, None, |at, key, value| {
        if walked.first_key.is_none() {
            let key_at = key.as_ptr() as usize - body.as_ptr() as usize;
            walked.first_key = Some(key_at..key_at + key.len());
        }
        // A frame's body fits a u32 (its header's length field).
        walked.offsets.push(at as u32);
        walked.payload_bytes += (key.len() + value.len()) as u64;
    });
    if walk.is_ok() {
        frame.walked = Some(walked);
    }
}

/// The front's index of file offset `at` (past the front, and past `usize`, an index no front
/// holds).
fn front_index(at: u64) -> usize {
    usize::try_from(at).unwrap_or(usize::MAX)
}

/// The `len` bytes of `file` at `from`, copied from `front` (the file's first bytes) where they
/// lie in it and read from the file past it, in a fresh block; with how many came from the
/// front (the rest are the fresh bytes a caller checksums).
fn read_past_front<F: EnvFile>(
    file: &F,
    front: &[u8],
    from: u64,
    len: usize,
) -> io::Result<(Vec<u8>, usize)> {
    let mut block = crate::pages::zeroed(len);
    let in_front = front.get(front_index(from)..).map_or(0, |rest| rest.len().min(len));
    if in_front > 0 {
        let at = front_index(from);
        block[..in_front].copy_from_slice(&front[at..at + in_front]);
    }
    if in_front < len {
        file.read_exact_at(&mut block[in_front..], from + in_front as u64)?;
    }
    Ok((block, in_front))
}

/// What stops a read: an I/O failure, or bytes that are not a valid layout.
enum Stop {
    Io(io::Error),
    Data(DataError),
}

/// Reads the frames of one `DATA` file front to back (see the module docs).
pub(super) struct FrameReader<'a, F: EnvFile> {
    file: &'a F,
    path: &'a Path,
    len_bytes: u64,
    /// Where the next frame header is (after the last frame handed out).
    at: u64,
    /// Bytes `0..read_to` are read and checksummed.
    read_to: u64,
    /// The header at `at`, if it was read with the frame before it.
    pending: Option<[u8; FRAME_HEADER_BYTES]>,
    /// The first bytes of the file (up to a read block), read by the first read: a small
    /// file is read in one call, as the version-1 path reads it; frames in it are copied out.
    front: Vec<u8>,
    sections: Sections,
    full: bool,
    puts: u64,
    deletes: u64,
    crc: crc32fast::Hasher,
}

/// Opens `file` (`len_bytes` long) as a version-2 `DATA` file: its first read block read
/// and its header checked. `Ok(None)` when it is not one (another version, or a header that
/// does not decode): the caller decodes it the general way, which reports why.
pub(super) fn open<'a, F: EnvFile>(
    file: &'a F,
    path: &'a Path,
    len_bytes: u64,
) -> Result<Option<FrameReader<'a, F>>, CheckpointError> {
    if len_bytes < DATA_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let front_bytes = usize::try_from(len_bytes).map_or(READ_BLOCK_BYTES, |len| len.min(READ_BLOCK_BYTES));
    let mut front = vec![0; front_bytes];
    file.read_exact_at(&mut front, 0).map_err(|e| CheckpointError::io("read", path, e))?;
    let Ok((DATA_VERSION, full, puts, deletes)) = data::decode_header_bytes(&front) else {
        return Ok(None);
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&front);
    Ok(Some(FrameReader {
        file,
        path,
        len_bytes,
        at: DATA_HEADER_BYTES as u64,
        read_to: front.len() as u64,
        pending: None,
        front,
        sections: Sections::new(puts, deletes),
        full,
        puts,
        deletes,
        crc,
    }))
}

impl<F: EnvFile> FrameReader<'_, F> {
    /// The `len` bytes at `from` (never before the last read's end, unless in the front):
    /// copied from the front where they lie in it, the rest read from the file and
    /// checksummed.
    fn read_range(&mut self, from: u64, len: usize) -> Result<Vec<u8>, Stop> {
        let (block, in_front) = read_past_front(self.file, &self.front, from, len).map_err(Stop::Io)?;
        if in_front < len {
            debug_assert_eq!(from + in_front as u64, self.read_to, "the file is read front to back");
            self.crc.update(&block[in_front..]);
            self.read_to = from + len as u64;
            // Past the front for good: free it.
            self.front = Vec::new();
        }
        Ok(block)
    }

    /// The next frame (call only while its sections are not done).
    fn next_frame(&mut self) -> Result<FrameRead, Stop> {
        let at = self.at;
        let header = match self.pending.take() {
            Some(header) => header,
            None if self.len_bytes - at < FRAME_HEADER_BYTES as u64 => {
                return Err(Stop::Data(data::ends_first(at, FRAME_HEADER_BYTES)));
            }
            None => {
                let bytes = self.read_range(at, FRAME_HEADER_BYTES)?;
                bytes.try_into().unwrap_or_else(|_| unreachable!("read 8 bytes"))
            }
        };
        let header = FrameHeader::parse(header);
        let body_at = at + FRAME_HEADER_BYTES as u64;
        let section = self.sections.frame(at, header, self.len_bytes - body_at).map_err(Stop::Data)?;
        let body = header.body_bytes as usize;
        let end = body_at + body as u64;
        // The next frame's header comes with this body, unless this was the last frame.
        let after =
            if self.sections.is_done() { 0 } else { (self.len_bytes - end).min(FRAME_HEADER_BYTES as u64) };
        let mut block = self.read_range(body_at, body + after as usize)?;
        if after == FRAME_HEADER_BYTES as u64 {
            let mut next = [0; FRAME_HEADER_BYTES];
            next.copy_from_slice(&block[body..]);
            self.pending = Some(next);
        }
        block.truncate(body);
        self.at = end;
        Ok(FrameRead { section, header, block, body_at, walked: None })
    }

    /// Reads (and checksums) whatever is left, then returns the crc32 of the whole file.
    fn finish(self) -> Result<u32, CheckpointError> {
        let checksummed = self.read_to.max(self.front.len() as u64);
        BlockSource::resume(self.file, self.path, self.len_bytes, checksummed, self.crc).finish()
    }
}

/// Decodes the frames of `reader` into `sink` (see the module docs), with a helper thread
/// reading ahead if `helper`. Returns what decoding found (the sink may be used only if the
/// crc matches too) and the crc32 of the whole file; an I/O failure is an error.
pub(super) fn load<F: EnvFile>(
    mut reader: FrameReader<'_, F>,
    sink: &mut Changes,
    helper: bool,
) -> Result<(Result<DataSummary, DataError>, u32), CheckpointError> {
    let helped = if helper { parallel::decode_on_two_threads(&mut reader, sink) } else { None };
    let decoded = helped.unwrap_or_else(|| {
        let mut stopped = false;
        let frames = std::iter::from_fn(|| {
            if stopped || reader.sections.is_done() {
                return None;
            }
            let next = reader.next_frame();
            stopped = next.is_err();
            Some(next)
        });
        decode(frames, sink)
    });
    let summary = match decoded {
        Ok(()) => {
            // Every entry was read: the file must end there.
            let at = reader.at;
            if at != reader.len_bytes {
                Err(DataError { offset: at, detail: format!("{} trailing bytes", reader.len_bytes - at) })
            } else {
                Ok(DataSummary { full: reader.full, entries: reader.puts + reader.deletes })
            }
        }
        Err(Stop::Data(error)) => Err(error),
        Err(Stop::Io(error)) => return Err(CheckpointError::io("read", reader.path, error)),
    };
    let crc = reader.finish()?;
    Ok((summary, crc))
}

/// Checks and adopts each frame into `sink`'s runs, until the first failure or the end of
/// `frames`.
fn decode(frames: impl Iterator<Item = Result<FrameRead, Stop>>, sink: &mut Changes) -> Result<(), Stop> {
    for frame in frames {
        adopt(frame?, sink)?;
    }
    Ok(())
}

/// Frames smaller than this are copied into the run's blocks, not adopted as blocks of their
/// own: a crafted file of one-entry frames of a few bytes (or a simulated store's, whose
/// writer ends a frame at each chunk of a few entries) would otherwise cost an allocation and
/// an index slot per frame, several times the bytes it holds.
const ADOPTED_FRAME_BYTES_MIN: usize = 16 << 10;

/// The block small frames' entries are copied into when the run's last block has no room
/// for them (an adopted frame leaves at most the 8 bytes of the header read with it): a file
/// of full frames, each followed by a frame of the entry or two a writer's chunk ended on,
/// took a whole run block per small frame, its pages mapped (twice the file's bytes in
/// memory, and twice its page faults).
const SMALL_FRAMES_BLOCK_BYTES: usize = 2 * ADOPTED_FRAME_BYTES_MIN;

/// Checks one frame and adopts it into the run of its section (or copies its entries there,
/// if it is small).
fn adopt(mut frame: FrameRead, sink: &mut Changes) -> Result<(), Stop> {
    if frame.block.len() < ADOPTED_FRAME_BYTES_MIN {
        return copy_small(frame, sink);
    }
    let Changes { puts, deletes } = sink;
    if let Some(walked) = frame.walked.take() {
        let first = walked.first_key.clone().map(|key| &frame.block[key]);
        if puts.last_key().is_none_or(|last| first.is_none_or(|first| last < first)) {
            puts.adopt_walked(frame.block, &walked.offsets, walked.payload_bytes);
            return Ok(());
        }
        // Out of order with the run: walked again below, which reports it.
    }
    let FrameRead { section, header, block, body_at, .. } = frame;
    let adopted = match section {
        Section::Puts => puts.adopt_block(block, |body, last, entry| {
            walk_frame(body, body_at, header.entries, false, last, |at, key, value| {
                entry(at, key.len() + value.len());
            })
        }),
        Section::Deletes => deletes.adopt_block(block, |body, last, entry| {
            let mut also_put = None;
            walk_frame(body, body_at, header.entries, true, last, |at, key, _| {
                if also_put.is_none() && puts.get(key).is_some() {
                    also_put = Some(at);
                }
                entry(at, key.len());
            })?;
            match also_put {
                Some(at) => {
                    Err(DataError { offset: body_at + at as u64, detail: "a deleted key is also put".into() })
                }
                None => Ok(()),
            }
        }),
    };
    adopted.map_err(Stop::Data)
}

/// [`adopt`] of a small frame: checked as it is, its entries pushed into the run (copied into
/// its last block). A frame that fails the check leaves entries before the failure pushed:
/// the load fails and the run is dropped.
fn copy_small(frame: FrameRead, sink: &mut Changes) -> Result<(), Stop> {
    let Changes { puts, deletes } = sink;
    let FrameRead { section, header, block, body_at, .. } = frame;
    let deleting = section == Section::Deletes;
    let run = if deleting { &mut *deletes } else { &mut *puts };
    let before = run.last_key().map(<[u8]>::to_vec);
    let mut entries = Vec::with_capacity(header.entries as usize);
    walk_frame(&block, body_at, header.entries, deleting, before.as_deref(), |at, key, value| {
        entries.push((at, key, value));
    })
    .map_err(Stop::Data)?;
    for (at, key, value) in entries {
        if deleting && puts.get(key).is_some() {
            let detail = "a deleted key is also put".into();
            return Err(Stop::Data(DataError { offset: body_at + at as u64, detail }));
        }
        let run = if deleting { &mut *deletes } else { &mut *puts };
        run.push_in_blocks_of(key, value, SMALL_FRAMES_BLOCK_BYTES);
    }
    Ok(())
}
