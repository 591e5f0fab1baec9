//! `collect`'s standard output, written by a thread of its own.
//!
//! A reader that falls behind (a log shipper under load, a paused `| less`) must not stall
//! capture, detection and the recording, and must not delay a stop: a write into a full pipe
//! blocks, and while the collector is blocked the kernel's ring buffer overflows for every
//! consumer, not only this one. So lines wait in a bounded queue that a writer thread empties
//! into [`StdoutPipe`] (which keeps handling a reader that goes away). When the reader is so
//! far behind that the queue is full, whole lines are dropped and counted, the way the ring
//! buffer counts its drops; the summary line and stderr say how many.
//!
//! At a stop the queue gets a bounded time to empty ([`StdoutQueue::settle`]); what is still
//! queued after that is dropped and counted, and the summary, written last, gets the rest of
//! the stop's time ([`StdoutQueue::finish`]).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::stdout_pipe::StdoutPipe;

/// Bytes of lines that may wait for a slow reader. Lines are at most a few tens of KiB (a
/// data event carries at most its captured prefix, base64), so this holds hundreds of lines:
/// seconds of a fast stream, while staying a small part of the collector's fixed overhead.
pub const QUEUE_BYTES: usize = 4 << 20;

/// Lines dropped because the reader was behind, and lines still unwritten when the stop's
/// time ran out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StdoutDrops {
    pub lines: u64,
    pub bytes: u64,
}

pub struct StdoutQueue {
    /// What was written since the last hand-over: whole lines go to the queue, a partial
    /// last line waits here for its end.
    pending: Vec<u8>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    limit: usize,
}

struct Shared {
    state: Mutex<State>,
    /// The queue has a chunk, or the writer should end.
    work: Condvar,
    /// The writer finished a chunk (or ended).
    progress: Condvar,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// The writer holds a chunk it is writing.
    writing: bool,
    ending: bool,
    ended: bool,
    /// The reader went away.
    closed: bool,
    dropped: StdoutDrops,
    /// The first error other than a closed pipe (a full disk behind `> file`): handed to the
    /// producer at its next write, as a direct write would have returned it.
    error: Option<io::Error>,
}

impl StdoutQueue {
    /// Starts the writer thread, which makes its output with `open` (standard output's lock
    /// belongs to the thread that takes it).
    pub fn start<W, F>(open: F, limit: usize) -> io::Result<Self>
    where
        W: Write,
        F: FnOnce() -> StdoutPipe<W> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("stdout-writer".into())
                .spawn(move || write_chunks(open(), &shared))?
        };
        Ok(Self {
            pending: Vec::new(),
            shared,
            writer: Some(writer),
            limit,
        })
    }

    /// Lines dropped so far because the reader was behind.
    #[cfg(test)]
    pub fn dropped(&self) -> StdoutDrops {
        self.shared.lock().dropped
    }

    /// The reader went away (see [`StdoutPipe`]): what is written now is dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Waits until the queue is empty or `until`, then drops (and counts) what is still
    /// queued, so the summary written next is not stuck behind a slow reader.
    pub fn settle(&mut self, until: Instant) -> io::Result<StdoutDrops> {
        self.hand_over(true)?;
        let (mut state, _) = self.shared.wait_until(until, |state| {
            (state.chunks.is_empty() && !state.writing) || state.ended
        });
        while let Some(chunk) = state.chunks.pop_front() {
            state.dropped.lines += lines_in(&chunk);
            state.dropped.bytes += chunk.len() as u64;
        }
        state.queued_bytes = 0;
        Ok(state.dropped)
    }

    /// Queues what was written last (the summary) whatever the queue's size, and waits until
    /// the writer has written everything or `until`. Returns whether everything was written;
    /// if not, the writer is left blocked on the reader and ends with the process.
    pub fn finish(mut self, until: Instant) -> io::Result<bool> {
        if let Some(err) = self.shared.lock().error.take() {
            return Err(err);
        }
        let last = std::mem::take(&mut self.pending);
        self.push(last, true);
        self.shared.lock().ending = true;
        self.shared.work.notify_one();
        let (mut state, ended) = self.shared.wait_until(until, |state| state.ended);
        if !ended {
            return Ok(false);
        }
        if let Some(err) = state.error.take() {
            return Err(err);
        }
        drop(state);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        Ok(true)
    }

    /// Moves the whole lines written so far to the queue (everything, with `all`), and
    /// returns an error the writer met.
    fn hand_over(&mut self, all: bool) -> io::Result<()> {
        if let Some(err) = self.shared.lock().error.take() {
            return Err(err);
        }
        let end = if all {
            self.pending.len()
        } else {
            match last_newline(&self.pending) {
                Some(at) => at + 1,
                None => return Ok(()),
            }
        };
        if end == 0 {
            return Ok(());
        }
        let rest = self.pending.split_off(end);
        let chunk = std::mem::replace(&mut self.pending, rest);
        self.push(chunk, false);
        Ok(())
    }

    fn push(&self, chunk: Vec<u8>, always: bool) {
        if chunk.is_empty() {
            return;
        }
        let mut state = self.shared.lock();
        if !always && state.queued_bytes + chunk.len() > self.limit {
            state.dropped.lines += lines_in(&chunk);
            state.dropped.bytes += chunk.len() as u64;
            return;
        }
        state.queued_bytes += chunk.len();
        state.chunks.push_back(chunk);
        self.shared.work.notify_one();
    }
}

impl Write for StdoutQueue {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        // A batch's lines are handed over at its flush; a very long run of writes without one
        // is handed over as it grows, so `pending` stays small.
        if self.pending.len() >= 1 << 16 {
            self.hand_over(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over(false)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the writer's progress until `done` holds or `until` passes; says which.
    fn wait_until(
        &self,
        until: Instant,
        done: impl Fn(&State) -> bool,
    ) -> (MutexGuard<'_, State>, bool) {
        let mut state = self.lock();
        loop {
            if done(&state) {
                return (state, true);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (state, false);
            }
            state = self
                .progress
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The writer thread: writes chunks in order until told to end with an empty queue.
fn write_chunks<W: Write>(mut out: StdoutPipe<W>, shared: &Shared) {
    loop {
        let chunk = {
            let mut state = shared.lock();
            loop {
                if let Some(chunk) = state.chunks.pop_front() {
                    state.queued_bytes -= chunk.len();
                    state.writing = true;
                    break Some(chunk);
                }
                if state.ending {
                    break None;
                }
                state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some(chunk) = chunk else {
            break;
        };
        let result = out.write_all(&chunk).and_then(|()| out.flush());
        let mut state = shared.lock();
        state.writing = false;
        state.closed = out.is_closed();
        if let Err(err) = result {
            state.error.get_or_insert(err);
        }
        shared.progress.notify_all();
    }
    let mut state = shared.lock();
    state.ended = true;
    shared.progress.notify_all();
}

fn lines_in(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|&&b| b == b'\n').count() as u64
}

fn last_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A reader that takes nothing until released, then everything.
    struct HeldPipe {
        release: mpsc::Receiver<()>,
        released: bool,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for HeldPipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !self.released {
                let _ = self.release.recv();
                self.released = true;
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn held() -> (HeldPipe, mpsc::Sender<()>, Arc<Mutex<Vec<u8>>>) {
        let (tx, rx) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let pipe = HeldPipe {
            release: rx,
            released: false,
            written: written.clone(),
        };
        (pipe, tx, written)
    }

    #[test]
    fn a_stalled_reader_costs_lines_not_time() {
        let (pipe, release, written) = held();
        let mut out = StdoutQueue::start(move || StdoutPipe::over(pipe), 100).unwrap();
        let started = Instant::now();
        // The writer takes the first line and blocks on the reader; 100 bytes of lines wait.
        for n in 0..1000 {
            writeln!(out, "line {n:04}").unwrap();
            out.flush().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writes blocked on the reader"
        );
        let dropped = out.dropped();
        assert!(dropped.lines > 900, "{dropped:?}");
        assert_eq!(dropped.bytes, dropped.lines * 10);
        // At the stop: the queue cannot empty, so it is dropped; the summary still goes last.
        let settled = out
            .settle(Instant::now() + Duration::from_millis(50))
            .unwrap();
        assert_eq!(settled.lines, 999, "every line but the one being written");
        writeln!(out, "summary").unwrap();
        release.send(()).unwrap();
        assert!(out.finish(Instant::now() + Duration::from_secs(5)).unwrap());
        assert_eq!(&*written.lock().unwrap(), b"line 0000\nsummary\n");
    }

    #[test]
    fn a_reader_that_keeps_up_gets_every_line_in_order() {
        let (pipe, release, written) = held();
        release.send(()).unwrap();
        let mut out = StdoutQueue::start(move || StdoutPipe::over(pipe), QUEUE_BYTES).unwrap();
        let mut expected = Vec::new();
        for n in 0..10_000 {
            // Partial lines are held until their end.
            write!(out, "line ").unwrap();
            out.flush().unwrap();
            writeln!(out, "{n}").unwrap();
            writeln!(expected, "line {n}").unwrap();
        }
        let settled = out.settle(Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(settled, StdoutDrops::default());
        writeln!(out, "summary").unwrap();
        expected.extend_from_slice(b"summary\n");
        assert!(out.finish(Instant::now() + Duration::from_secs(5)).unwrap());
        assert_eq!(*written.lock().unwrap(), expected);
    }

    #[test]
    fn a_reader_that_never_reads_does_not_hold_the_stop() {
        let (pipe, _release, _written) = held();
        let mut out = StdoutQueue::start(move || StdoutPipe::over(pipe), QUEUE_BYTES).unwrap();
        writeln!(out, "event").unwrap();
        out.flush().unwrap();
        let started = Instant::now();
        out.settle(Instant::now() + Duration::from_millis(20))
            .unwrap();
        writeln!(out, "summary").unwrap();
        assert!(!out
            .finish(Instant::now() + Duration::from_millis(20))
            .unwrap());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_write_error_reaches_the_producer() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = StdoutQueue::start(|| StdoutPipe::over(Full), QUEUE_BYTES).unwrap();
        writeln!(out, "x").unwrap();
        out.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = loop {
            if let Err(err) = out.flush() {
                break err;
            }
            assert!(Instant::now() < deadline, "the error never came back");
            writeln!(out, "x").unwrap();
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(err.raw_os_error(), Some(28));
    }
}
