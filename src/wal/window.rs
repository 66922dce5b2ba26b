//! Reading a segment through a bounded window, for the recovery scan (`super::scan`), with an
//! optional read-ahead thread.
//!
//! The window holds the bytes of one stretch of the file; a read the window cannot serve
//! replaces it with [`READ_WINDOW_BYTES`] (or one record, if larger) from the asked offset.
//! Memory stays bounded whatever the segment's length.
//!
//! # Read-ahead (only where the `Env` allows threads)
//!
//! The scan of a warm log spent about two thirds of its time copying the file out of the page
//! cache and one third checking and parsing it, one after the other. With a read-ahead, a
//! helper thread (scoped to the segment's scan) reads the segment front to back in chunks of
//! [`READ_WINDOW_BYTES`] while the scan checks the chunk before, so the two overlap. What the
//! scan sees does not change: the window holds the same bytes at the same offsets either way,
//! and a read error surfaces when the scan reaches the chunk it hit (as the direct read at
//! that offset would report it), never earlier; an error past where the scan stops is never
//! seen, as it would never have been read.
//!
//! The chunks follow one another; the window continues the stream when the scan asks for
//! bytes at or past its start. The bytes of the window from the asked offset on (the front of
//! a record that straddles the chunk boundary) are copied into headroom ([`HEADROOM_BYTES`])
//! reserved in front of the next chunk, so no chunk is copied again; a record longer than the
//! headroom or the chunk is assembled by copying. A read behind the window (a search that
//! went ahead and comes back) ends the read-ahead for the segment: from there the window
//! reads directly, as without a helper. The helper stops when the window is dropped (its
//! next send fails), at the end of the file, or after a failed read.
//!
//! # Invariants
//!
//! - The window's bytes are `bytes[lo..]`, the file's bytes at `start..start + bytes.len() -
//!   lo`.
//! - With a read-ahead, the window ends where the next chunk starts (`Ahead::next`).
//! - A read-ahead's buffers are bounded whatever the segment's length: the window's, one the
//!   helper reads into, [`CHUNKS_AHEAD`] filled, [`FREE_BUFFERS_MAX`] handed back (and one
//!   being assembled, only for a record longer than a chunk).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::Scope;

use super::error::WalError;
use crate::env::EnvFile;

/// Bytes the scan reads at a time (and the read-ahead's chunk).
pub const READ_WINDOW_BYTES: usize = 1024 * 1024;

/// Room in front of each read-ahead chunk for the part of a record the window before held:
/// a chunk's worth, so a record no longer than a chunk (a batch of 1,000 puts of 1 KiB
/// values is just under one) is never assembled by copying. With 256 KiB, each such record
/// was copied into a fresh buffer, and a 260 MiB log of them took 196 MB over the state.
const HEADROOM_BYTES: usize = READ_WINDOW_BYTES;

/// Buffers the scan hands back for the helper to read into; more are dropped. With every
/// buffer handed back kept, each record assembled left one more waiting (the helper takes one
/// per chunk), until the segment's scan ended.
const FREE_BUFFERS_MAX: usize = 2;

/// Chunks the helper may have read ahead of the scan, besides the one it is reading.
const CHUNKS_AHEAD: usize = 1;

/// A chunk read by the helper: its offset in the file and its bytes at `HEADROOM_BYTES..`.
struct Chunk {
    offset: u64,
    buf: Vec<u8>,
    result: io::Result<()>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.buf.len() - HEADROOM_BYTES
    }

    fn end(&self) -> u64 {
        self.offset + self.len() as u64
    }
}

/// The scan's end of a read-ahead.
struct Ahead {
    filled: Receiver<Chunk>,
    free: SyncSender<Vec<u8>>,
    /// The offset of the next chunk to arrive.
    next: u64,
    /// Buffers allocated for the stream (the helper's fresh ones, records assembled).
    allocated: Arc<AtomicUsize>,
}

impl Ahead {
    /// Hands `buf` back to the helper, or drops it if [`FREE_BUFFERS_MAX`] wait already.
    fn give_back(&self, buf: Vec<u8>) {
        let _ = self.free.try_send(buf);
    }
}

/// Reads a file through a bounded window.
pub(super) struct Window<'a, F: EnvFile> {
    file: &'a F,
    pub(super) path: &'a Path,
    pub(super) len: u64,
    /// Where the writer may have started a record: searches past the records stop here.
    pub(super) extent: u64,
    start: u64,
    bytes: Vec<u8>,
    lo: usize,
    ahead: Option<Ahead>,
}

impl<'a, F: EnvFile> Window<'a, F> {
    /// A window on `file` that reads into `buffer` (its allocation reused: one buffer serves
    /// every segment of a scan, instead of a fresh mebibyte faulted in per segment). With a
    /// `scope`, a helper thread on it reads the file ahead of the scan (see the module docs);
    /// if the thread cannot start, the window reads directly.
    pub(super) fn new<'scope>(
        file: &'a F,
        path: &'a Path,
        extent: u64,
        mut buffer: Vec<u8>,
        scope: Option<&'scope Scope<'scope, '_>>,
    ) -> Result<Self, WalError>
    where
        'a: 'scope,
    {
        let len = file.len().map_err(|e| WalError::io("len", path, e))?;
        // The scan reads the segment front to back: on a cold cache, ask for it ahead of the
        // checksums. Only a hint (nothing a read returns depends on it), so its error is
        // not the log's: a read that fails still fails the scan.
        let _ = file.advise_sequential_read(0, len.min(extent));
        buffer.clear();
        let ahead = scope.and_then(|scope| {
            let (filled_tx, filled) = mpsc::sync_channel(CHUNKS_AHEAD);
            let (free, free_rx) = mpsc::sync_channel(FREE_BUFFERS_MAX);
            let allocated = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&allocated);
            let helper = move || read_ahead(file, len, &filled_tx, &free_rx, &counted);
            let spawned =
                std::thread::Builder::new().name("stormhold-wal-read".into()).spawn_scoped(scope, helper);
            #[cfg(test)]
            if spawned.is_ok() {
                READ_AHEAD_HELPERS.with(|started| started.set(started.get() + 1));
            }
            spawned.ok().map(|_| Ahead { filled, free, next: 0, allocated })
        });
        Ok(Self { file, path, len, extent, start: 0, bytes: buffer, lo: 0, ahead })
    }

    /// The bytes at `offset..offset + len` if the window holds all of them (no read).
    #[inline]
    pub(super) fn held(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let from = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        self.bytes[self.lo..].get(from..from.checked_add(len)?)
    }

    /// The buffer, for the next window.
    pub(super) fn into_buffer(mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file).
    #[inline]
    pub(super) fn get(&mut self, offset: u64, len: usize) -> Result<&[u8], WalError> {
        // Past the end of the file there is nothing (a segment can be shorter than its header
        // sector if the process died while creating it).
        if offset >= self.len {
            return Ok(&[]);
        }
        let end = (offset + len as u64).min(self.len);
        let held = self.bytes.len() - self.lo;
        if offset < self.start || end > self.start + held as u64 {
            self.read_at(offset, len)?;
        }
        let bytes = &self.bytes[self.lo..];
        let from = (offset - self.start) as usize;
        let to = (end.saturating_sub(self.start) as usize).max(from);
        Ok(&bytes[from..to])
    }

    /// The window becomes the bytes at `offset`: at least `len` of them, or what the file
    /// holds there. Out of line: one call in thousands of `get`s reads.
    #[inline(never)]
    fn read_at(&mut self, offset: u64, len: usize) -> Result<(), WalError> {
        if self.ahead.is_some() {
            // After a failed chunk the stream is not continued: nothing reads from it again.
            if offset >= self.start && self.continue_stream(offset, len).inspect_err(|_| self.ahead = None)? {
                return Ok(());
            }
            // Behind the window, or the helper is gone: direct reads from here on.
            self.ahead = None;
        }
        let want = (self.len.saturating_sub(offset)).min(len.max(READ_WINDOW_BYTES) as u64) as usize;
        self.lo = 0;
        self.bytes.resize(want, 0);
        self.file.read_exact_at(&mut self.bytes, offset).map_err(|e| WalError::io("read", self.path, e))?;
        self.start = offset;
        Ok(())
    }

    /// The window continued from the read-ahead so that it starts at `offset` (at or past its
    /// start) and holds `len` bytes or the rest of the file; `false` if the helper stopped
    /// without the bytes (the caller reads them directly).
    fn continue_stream(&mut self, offset: u64, len: usize) -> Result<bool, WalError> {
        let need_end = (offset + len as u64).min(self.len);
        let Some(ahead) = &mut self.ahead else { return Ok(false) };
        debug_assert_eq!(
            ahead.next,
            self.start + (self.bytes.len() - self.lo) as u64,
            "the window ends where the stream goes on"
        );
        // The window's bytes from `offset` on (none if `offset` is past its end).
        let kept_from = self.lo
            + usize::try_from(offset - self.start).unwrap_or(usize::MAX).min(self.bytes.len() - self.lo);
        let mut assembled: Option<(Vec<u8>, usize)> = None;
        while assembled.as_ref().is_none_or(|(buf, lo)| offset + ((buf.len() - lo) as u64) < need_end) {
            let Ok(mut chunk) = ahead.filled.recv() else { return Ok(false) };
            debug_assert_eq!(chunk.offset, ahead.next, "chunks come in order");
            ahead.next = chunk.end();
            if let Err(error) = std::mem::replace(&mut chunk.result, Ok(())) {
                return Err(WalError::io("read", self.path, error));
            }
            match &mut assembled {
                // Wholly before `offset` (a search skipped ahead): dropped.
                None if chunk.end() <= offset => ahead.give_back(chunk.buf),
                None => {
                    let tail = &self.bytes[kept_from..];
                    let lo = if offset >= chunk.offset {
                        HEADROOM_BYTES + (offset - chunk.offset) as usize
                    } else if tail.len() <= HEADROOM_BYTES {
                        let lo = HEADROOM_BYTES - tail.len();
                        chunk.buf[lo..HEADROOM_BYTES].copy_from_slice(tail);
                        lo
                    } else {
                        ahead.allocated.fetch_add(1, Ordering::Relaxed);
                        let mut joined = Vec::with_capacity(tail.len() + chunk.len());
                        joined.extend_from_slice(tail);
                        joined.extend_from_slice(&chunk.buf[HEADROOM_BYTES..]);
                        ahead.give_back(std::mem::replace(&mut chunk.buf, joined));
                        0
                    };
                    assembled = Some((chunk.buf, lo));
                }
                Some((buf, _)) => {
                    buf.extend_from_slice(&chunk.buf[HEADROOM_BYTES..]);
                    ahead.give_back(chunk.buf);
                }
            }
        }
        let Some((buf, lo)) = assembled else { return Ok(false) };
        let old = std::mem::replace(&mut self.bytes, buf);
        if old.capacity() >= HEADROOM_BYTES + READ_WINDOW_BYTES {
            ahead.give_back(old);
        }
        (self.lo, self.start) = (lo, offset);
        Ok(true)
    }
}

/// The helper: reads `file` front to back in chunks until the end, a failed read, or the
/// window is gone.
fn read_ahead<F: EnvFile>(
    file: &F,
    len: u64,
    filled: &SyncSender<Chunk>,
    free: &Receiver<Vec<u8>>,
    allocated: &AtomicUsize,
) {
    let mut offset = 0;
    while offset < len {
        let want = (len - offset).min(READ_WINDOW_BYTES as u64) as usize;
        let mut buf = free.try_recv().unwrap_or_else(|_| {
            allocated.fetch_add(1, Ordering::Relaxed);
            Vec::new()
        });
        // Every byte past the headroom is read over; only a new buffer is zeroed.
        buf.resize(HEADROOM_BYTES + want, 0);
        let result = file.read_exact_at(&mut buf[HEADROOM_BYTES..], offset);
        let failed = result.is_err();
        if filled.send(Chunk { offset, buf, result }).is_err() || failed {
            return;
        }
        offset += want as u64;
    }
}

#[cfg(test)]
std::thread_local! {
    /// Read-ahead helpers this thread started (tests see whether a scan used one).
    pub(crate) static READ_AHEAD_HELPERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests;
