//! Reading a `DATA` file's frames on two threads at once, where the caller grants a helper:
//! most of a load's time is the reads (the copy out of the page cache and the faults of the
//! fresh blocks), against which checking and indexing a frame is quick, so one reading
//! thread kept the decoder waiting about half the time. Here both threads claim frames from
//! one cursor and read them in parallel; the caller's thread also checks and adopts them, in
//! file order, and reads one itself whenever the next in order is not there yet. The thread
//! that read a large frame of puts walks it at once (`pre_walk`), while its bytes are in that
//! core's cache, so the caller checks only its first key against the run and adopts it (a
//! walk behind the reads on the other core was a stream of cache misses, 17% of the load).
//!
//! A claim reads the frame's header (under the cursor's lock: it says where the next frame
//! starts) and checks it as the serial reader does; the body is read outside the lock. Each
//! frame carries the crc32 of the bytes read for it, and the caller combines them in file
//! order, so the file's crc32 is the serial reader's. The first claim that fails (a read, a
//! header that does not check) stops the cursor, and is reported when the frames before it
//! are adopted, as the serial reader reports it; a refused frame stops it too, and the frames
//! already claimed are still read (for the crc32) but not adopted.
//!
//! # Invariants
//!
//! - frames are adopted in file order, each once, and none after the first failure;
//! - at most [`FRAMES_AHEAD_MAX`] frames wait for the decoder on each thread's side (the
//!   channel's bound and the decoder's own claims), so memory beyond the run stays bounded;
//! - the crc32 handed back covers the file's bytes `0..end`, in order, where `end` is the end
//!   of the last frame claimed (or the front, if that is further).

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Mutex, PoisonError};

use super::{FRAMES_AHEAD_MAX, FrameRead, FrameReader, Stop, adopt, pre_walk};
use crate::checkpoint::chain::Changes;
use crate::checkpoint::data;
use crate::checkpoint::frame::{FRAME_HEADER_BYTES, FrameHeader, Sections};
use crate::env::EnvFile;

/// A frame claimed and read: its number in file order, what reading it gave, the crc32 of
/// the bytes read for it (past the front) and the offset after them.
struct Claimed {
    number: u64,
    read: Result<FrameRead, Stop>,
    crc: crc32fast::Hasher,
    end: u64,
}

/// The cursor both threads claim frames from.
struct Cursor {
    /// Where the next frame's header is.
    at: u64,
    /// The next frame's number.
    number: u64,
    /// A claim failed or the decoder refused a frame: nothing more is claimed.
    stopped: bool,
    sections: Sections,
}

/// What both threads read from.
struct Shared<'r, F: EnvFile> {
    file: &'r F,
    len_bytes: u64,
    front: &'r [u8],
    cursor: Mutex<Cursor>,
}

impl<F: EnvFile> Shared<'_, F> {
    fn cursor(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `len` bytes at `from`, from the front where they lie in it, and the crc32 of
    /// those read past it.
    fn read_bytes(&self, from: u64, len: usize) -> io::Result<(Vec<u8>, crc32fast::Hasher)> {
        let (block, in_front) = super::read_past_front(self.file, self.front, from, len)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&block[in_front..]);
        Ok((block, crc))
    }

    /// Claims the next frame and reads it; `None` when none is left to claim.
    fn claim(&self) -> Option<Claimed> {
        let mut cursor = self.cursor();
        if cursor.stopped || cursor.sections.is_done() {
            return None;
        }
        let (at, number) = (cursor.at, cursor.number);
        cursor.number += 1;
        let failed = |cursor: &mut Cursor, stop| {
            cursor.stopped = true;
            Some(Claimed { number, read: Err(stop), crc: crc32fast::Hasher::new(), end: at })
        };
        if self.len_bytes - at < FRAME_HEADER_BYTES as u64 {
            return failed(&mut cursor, Stop::Data(data::ends_first(at, FRAME_HEADER_BYTES)));
        }
        let (bytes, mut crc) = match self.read_bytes(at, FRAME_HEADER_BYTES) {
            Ok(read) => read,
            Err(error) => return failed(&mut cursor, Stop::Io(error)),
        };
        let header = FrameHeader::parse(bytes.try_into().unwrap_or_else(|_| unreachable!("read 8 bytes")));
        let body_at = at + FRAME_HEADER_BYTES as u64;
        let section = match cursor.sections.frame(at, header, self.len_bytes - body_at) {
            Ok(section) => section,
            Err(error) => return failed(&mut cursor, Stop::Data(error)),
        };
        let end = body_at + u64::from(header.body_bytes);
        cursor.at = end;
        drop(cursor);
        let read = match self.read_bytes(body_at, header.body_bytes as usize) {
            Ok((block, body_crc)) => {
                crc.combine(&body_crc);
                let mut frame = FrameRead { section, header, block, body_at, walked: None };
                pre_walk(&mut frame);
                Ok(frame)
            }
            Err(error) => {
                self.cursor().stopped = true;
                Err(Stop::Io(error))
            }
        };
        Some(Claimed { number, read, crc, end })
    }
}

/// Decodes the frames of `reader` into `sink`, read on this thread and a helper (see the
/// module docs); leaves `reader` where the serial reader would be for its end checks and
/// [`FrameReader::finish`]. `None` if the helper did not start (then nothing was read).
pub(super) fn decode_on_two_threads<F: EnvFile>(
    reader: &mut FrameReader<'_, F>,
    sink: &mut Changes,
) -> Option<Result<(), Stop>> {
    let cursor = Cursor { at: reader.at, number: 0, stopped: false, sections: reader.sections.clone() };
    let shared = Shared {
        file: reader.file,
        len_bytes: reader.len_bytes,
        front: &reader.front,
        cursor: Mutex::new(cursor),
    };
    let (mut crc, mut end) = (reader.crc.clone(), reader.at);
    let decoded = std::thread::scope(|scope| {
        let (send, received) = mpsc::sync_channel::<Claimed>(FRAMES_AHEAD_MAX);
        let helper = {
            let shared = &shared;
            std::thread::Builder::new().name("stormhold-ckpt-read".into()).spawn_scoped(scope, move || {
                while let Some(claimed) = shared.claim() {
                    if send.send(claimed).is_err() {
                        return;
                    }
                }
            })
        };
        let helper = helper.ok()?;
        let decoded = take_in_order(&shared, &received, sink, &mut crc, &mut end);
        drop(received);
        if let Err(panic) = helper.join() {
            std::panic::resume_unwind(panic);
        }
        Some(decoded)
    })?;
    let cursor = shared.cursor.into_inner().unwrap_or_else(PoisonError::into_inner);
    (reader.at, reader.sections, reader.crc) = (cursor.at, cursor.sections, crc);
    reader.read_to = end.max(reader.read_to);
    Some(decoded)
}

/// The decoder's side of [`decode_on_two_threads`]: takes every claimed frame in file order
/// (from `received`, or claimed and read here while the next one is not there yet), folds
/// its crc32 into `crc` and its end into `end`, and adopts it into `sink` until one fails.
fn take_in_order<F: EnvFile>(
    shared: &Shared<'_, F>,
    received: &mpsc::Receiver<Claimed>,
    sink: &mut Changes,
    crc: &mut crc32fast::Hasher,
    end: &mut u64,
) -> Result<(), Stop> {
    let mut waiting: BTreeMap<u64, Claimed> = BTreeMap::new();
    let (mut next, mut decoded) = (0, Ok(()));
    loop {
        if let Some(claimed) = waiting.remove(&next) {
            next += 1;
            crc.combine(&claimed.crc);
            *end = claimed.end;
            if decoded.is_ok() {
                decoded = claimed.read.and_then(|frame| adopt(frame, sink));
                if decoded.is_err() {
                    shared.cursor().stopped = true;
                }
            }
            continue;
        }
        match received.try_recv() {
            Ok(claimed) => {
                waiting.insert(claimed.number, claimed);
                continue;
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        }
        // The next frame is still being read: read a later one meanwhile, a few at most.
        if waiting.len() < FRAMES_AHEAD_MAX
            && let Some(claimed) = shared.claim()
        {
            waiting.insert(claimed.number, claimed);
            continue;
        }
        match received.recv() {
            Ok(claimed) => drop(waiting.insert(claimed.number, claimed)),
            // The helper is done and every frame it read was taken.
            Err(_) => break,
        }
    }
    debug_assert!(waiting.is_empty(), "every claimed frame is taken in order");
    decoded
}
