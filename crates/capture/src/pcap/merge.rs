//! Merging several inputs by time, as `mergecap` does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::error::{ReadError, ReadWarning};
use super::file::{CaptureFile, Head};
use super::stats::FileStats;
use crate::packet::{Block, Packet};
use crate::time::Ts;

/// Reads several [`CaptureFile`]s as one capture, merged by timestamp.
///
/// Each input is assumed to be in its own time order (as `mergecap`
/// assumes); the reader always hands out the pending frame with the
/// smallest timestamp, ties going to the input given first. Frames are
/// numbered from 1 in the merged order, and [`Packet::source`] is the
/// input's index in the vector given to [`PacketReader::new`].
///
/// Frames are not copied: each input keeps its next frame in its own
/// buffer until it is handed out.
#[derive(Debug)]
pub struct PacketReader {
    files: Vec<CaptureFile>,
    /// Next frame of each input, if it has one.
    heads: Vec<Option<Head>>,
    /// Inputs with a pending frame, smallest (time, input index) first.
    queue: BinaryHeap<Reverse<(Ts, usize)>>,
    /// Inputs whose first frame has been fetched.
    primed: usize,
    /// Input whose frame was handed out last; it moves on at the next call.
    last: Option<usize>,
    /// Frames handed out.
    frame: u64,
}

impl PacketReader {
    /// A reader over `files`, in this order (which breaks timestamp ties
    /// and gives [`Packet::source`]). With more than 65535 inputs, the
    /// later ones all get source 65535.
    pub fn new(files: Vec<CaptureFile>) -> PacketReader {
        let n = files.len();
        PacketReader {
            files,
            heads: vec![None; n],
            queue: BinaryHeap::with_capacity(n),
            primed: 0,
            last: None,
            frame: 0,
        }
    }

    /// The next frame in time order over all inputs, or `Ok(None)` when
    /// every input is done.
    ///
    /// # Errors
    ///
    /// `Err(e)`: one input stopped early with `e` (its frames so far were
    /// delivered and counted, and `e` is noted in its [`FileStats::error`]).
    /// Calling again continues with the other inputs.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        Ok(self.next_shared()?.map(|(pkt, _)| pkt))
    }

    /// As [`PacketReader::next_packet`], with the [`Block`] the frame's
    /// bytes lie in (always given: it is an `Option` as in
    /// [`PacketSource::next_shared`](crate::PacketSource::next_shared)):
    /// holding it keeps them, instead of copying them.
    ///
    /// # Errors
    ///
    /// As for [`PacketReader::next_packet`].
    pub fn next_shared(&mut self) -> Result<Option<(Packet<'_>, Option<&Block>)>, ReadError> {
        if self.files.len() == 1 {
            // One input, the usual case: nothing to merge, and no queue
            // to keep for every frame.
            let Some(file) = self.files.first_mut() else { return Ok(None) };
            let Some(head) = file.advance()? else { return Ok(None) };
            self.frame += 1;
            return Ok(Some((file.packet(&head, self.frame, 0), Some(file.block()))));
        }
        while self.primed < self.files.len() {
            let i = self.primed;
            self.primed += 1;
            self.fetch(i)?;
        }
        if let Some(i) = self.last.take() {
            self.fetch(i)?;
        }
        let Some(Reverse((_, i))) = self.queue.pop() else {
            return Ok(None);
        };
        let (Some(file), Some(Some(head))) = (self.files.get(i), self.heads.get(i)) else {
            return Ok(None);
        };
        self.last = Some(i);
        self.frame += 1;
        let source = u16::try_from(i).unwrap_or(u16::MAX);
        Ok(Some((file.packet(head, self.frame, source), Some(file.block()))))
    }

    /// Moves input `i` to its next frame and queues it.
    fn fetch(&mut self, i: usize) -> Result<(), ReadError> {
        let (Some(file), Some(slot)) = (self.files.get_mut(i), self.heads.get_mut(i)) else {
            return Ok(());
        };
        *slot = None;
        if let Some(head) = file.advance()? {
            self.queue.push(Reverse((head.ts, i)));
            *slot = Some(head);
        }
        Ok(())
    }

    /// Statistics of each input, in input order.
    pub fn files(&self) -> impl Iterator<Item = &FileStats> {
        self.files.iter().map(CaptureFile::stats)
    }

    /// Warnings of all inputs, in input order.
    pub fn warnings(&self) -> Vec<&ReadWarning> {
        self.files.iter().flat_map(|f| f.warnings()).collect()
    }

    /// Raw bytes read from all inputs (compressed bytes for gzip input),
    /// for progress reporting.
    pub fn bytes_read(&self) -> u64 {
        self.files.iter().map(CaptureFile::bytes_read).sum()
    }

    /// Total raw size of the inputs, if known for every one of them.
    pub fn size_hint(&self) -> Option<u64> {
        self.files.iter().map(CaptureFile::size_hint).sum()
    }

    /// Frames handed out so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }
}
