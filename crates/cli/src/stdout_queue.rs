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
//! the stop's time ([`StdoutQueue::finish`]). Into a pipe, the writer puts a line only when it
//! fits whole ([`LinePipe`]) and gives up at a line's end when a stop's time runs out, so the
//! reader's last line is never cut and every line is either written or counted as dropped.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::stdout_lines::LinePipe;
use crate::stdout_pipe::StdoutPipe;

/// Bytes of lines that may wait for a slow reader. Lines are at most a few tens of KiB (a
/// data event carries at most its captured prefix, base64), so this holds hundreds of lines:
/// seconds of a fast stream, while staying a small part of the collector's fixed overhead.
pub const QUEUE_BYTES: usize = 4 << 20;

/// How long past a stop's point the writer may take to notice it should give up (it looks
/// at least every [`crate::stdout_lines`] poll step while the reader is behind).
const GIVE_UP_GRACE: std::time::Duration = std::time::Duration::from_millis(10);

/// Lines dropped because the reader was behind, and lines still unwritten when the stop's
/// time ran out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StdoutDrops {
    pub lines: u64,
    pub bytes: u64,
}

/// How [`StdoutQueue::finish`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Everything, the summary last, was written.
    pub complete: bool,
    /// Lines dropped over the whole run, those of the stop's end included.
    pub dropped: StdoutDrops,
}

/// Where the writer thread puts lines.
pub trait LineSink {
    /// Writes `lines` (whole lines) and returns how many bytes it wrote: all of them (also
    /// once the reader has gone, which drops them), or fewer when `give_up()` said to stop
    /// while the reader was behind, and then at a line's end.
    fn write_lines(&mut self, lines: &[u8], give_up: &dyn Fn() -> bool) -> io::Result<usize>;

    /// The reader went away.
    fn is_closed(&self) -> bool;
}

/// Standard output as it is (a file, a terminal): a blocking write, which cannot give up; a
/// process that exits in the middle of one can leave a cut line.
impl<W: Write> LineSink for StdoutPipe<W> {
    fn write_lines(&mut self, lines: &[u8], _: &dyn Fn() -> bool) -> io::Result<usize> {
        self.write_all(lines).and_then(|()| self.flush())?;
        Ok(lines.len())
    }

    fn is_closed(&self) -> bool {
        StdoutPipe::is_closed(self)
    }
}

impl LineSink for LinePipe {
    fn write_lines(&mut self, lines: &[u8], give_up: &dyn Fn() -> bool) -> io::Result<usize> {
        LinePipe::write_lines(self, lines, give_up)
    }

    fn is_closed(&self) -> bool {
        LinePipe::is_closed(self)
    }
}

/// `collect`'s standard output: a pipe written a whole line at a time ([`LinePipe`]) when it
/// is one, as it is otherwise.
pub enum Stdout {
    Lines(LinePipe),
    AsItIs(StdoutPipe),
}

impl Stdout {
    /// Standard output, calling `stop` once when its reader goes away.
    pub fn open(stop: fn()) -> Self {
        match LinePipe::stdout() {
            Some(pipe) => Self::Lines(pipe.on_close(stop)),
            None => Self::AsItIs(StdoutPipe::new().on_close(stop)),
        }
    }
}

impl LineSink for Stdout {
    fn write_lines(&mut self, lines: &[u8], give_up: &dyn Fn() -> bool) -> io::Result<usize> {
        match self {
            Self::Lines(pipe) => LineSink::write_lines(pipe, lines, give_up),
            Self::AsItIs(out) => LineSink::write_lines(out, lines, give_up),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Self::Lines(pipe) => LineSink::is_closed(pipe),
            Self::AsItIs(out) => LineSink::is_closed(out),
        }
    }
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
    /// The writer wrote the last chunk (the summary) whole.
    last_written: bool,
    /// The reader went away.
    closed: bool,
    /// When the writer should stop waiting for the reader (at a line's end): a stop's point.
    give_up_at: Option<Instant>,
    dropped: StdoutDrops,
    /// The first error other than a closed pipe (a full disk behind `> file`): handed to the
    /// producer at its next write, as a direct write would have returned it.
    error: Option<io::Error>,
}

impl StdoutQueue {
    /// Starts the writer thread, which makes its output with `open` (standard output's lock
    /// belongs to the thread that takes it).
    pub fn start<S, F>(open: F, limit: usize) -> io::Result<Self>
    where
        S: LineSink,
        F: FnOnce() -> S + Send + 'static,
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
    /// queued, so the summary written next is not stuck behind a slow reader. The line being
    /// written is finished; the rest of its chunk is dropped (and counted) too.
    pub fn settle(&mut self, until: Instant) -> io::Result<StdoutDrops> {
        self.hand_over(true)?;
        self.shared.lock().give_up_at = Some(until);
        let (mut state, _) = self.shared.wait_until(until + GIVE_UP_GRACE, |state| {
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
    /// the writer has written everything or `until`, when it gives up at a line's end. Says
    /// whether everything was written. A writer that cannot give up (standard output as it
    /// is, or a line longer than the pipe) is left blocked on the reader and ends with the
    /// process.
    pub fn finish(mut self, until: Instant) -> io::Result<Finished> {
        let last = std::mem::take(&mut self.pending);
        {
            let mut state = self.shared.lock();
            if let Some(err) = state.error.take() {
                return Err(err);
            }
            // The summary's own time, set as it is queued (the writer drops a chunk it takes
            // past the point it was given), and the end, so the writer knows it for the last.
            state.give_up_at = Some(until);
            state.last_written = last.is_empty();
            if !last.is_empty() {
                state.queued_bytes += last.len();
                state.chunks.push_back(last);
            }
            state.ending = true;
        }
        self.shared.work.notify_one();
        let (mut state, ended) = self
            .shared
            .wait_until(until + GIVE_UP_GRACE, |state| state.ended);
        let dropped = state.dropped;
        if !ended {
            return Ok(Finished {
                complete: false,
                dropped,
            });
        }
        if let Some(err) = state.error.take() {
            return Err(err);
        }
        drop(state);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        Ok(Finished {
            complete: self.shared.lock().last_written,
            dropped,
        })
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
        self.push(chunk);
        Ok(())
    }

    fn push(&self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        let mut state = self.shared.lock();
        if state.queued_bytes + chunk.len() > self.limit {
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
fn write_chunks(mut out: impl LineSink, shared: &Shared) {
    let give_up = || {
        shared
            .lock()
            .give_up_at
            .is_some_and(|at| Instant::now() >= at)
    };
    loop {
        let chunk = {
            let mut state = shared.lock();
            loop {
                if let Some(chunk) = state.chunks.pop_front() {
                    state.queued_bytes -= chunk.len();
                    if state.give_up_at.is_some_and(|at| Instant::now() >= at) {
                        // Past the stop's point: not begun, so dropped whole (and counted).
                        state.dropped.lines += lines_in(&chunk);
                        state.dropped.bytes += chunk.len() as u64;
                        continue;
                    }
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
        let result = out.write_lines(&chunk, &give_up);
        let mut state = shared.lock();
        state.writing = false;
        state.closed = out.is_closed();
        match result {
            Ok(written) => {
                if written >= chunk.len() && state.ending && state.chunks.is_empty() {
                    state.last_written = true;
                }
                let unwritten = &chunk[written.min(chunk.len())..];
                state.dropped.lines += lines_in(unwritten);
                state.dropped.bytes += unwritten.len() as u64;
            }
            Err(err) => {
                state.error.get_or_insert(err);
            }
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
    use std::io::Read as _;
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
        assert!(
            out.finish(Instant::now() + Duration::from_secs(5))
                .unwrap()
                .complete
        );
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
        assert!(
            out.finish(Instant::now() + Duration::from_secs(5))
                .unwrap()
                .complete
        );
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
        assert!(
            !out.finish(Instant::now() + Duration::from_millis(20))
                .unwrap()
                .complete
        );
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

    /// A pipe: its write end non-blocking for [`LinePipe`], and its read end.
    fn pipe() -> (LinePipe, std::fs::File) {
        use std::os::fd::FromRawFd as _;
        let mut fds = [0; 2];
        // SAFETY: pipe2(2) into a two-element array.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
            0
        );
        // SAFETY: both descriptors were just made and are owned by nothing else.
        let (read, write) = unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        // SAFETY: F_SETFL on the read end: reads block.
        unsafe { libc::fcntl(fds[0], libc::F_SETFL, 0) };
        (LinePipe::over(write), read)
    }

    /// JSON-like lines of many lengths, some longer than PIPE_BUF, a few longer than 16 KiB.
    fn varied_lines(count: usize) -> Vec<Vec<u8>> {
        let mut state: u32 = 7;
        (0..count)
            .map(|n| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let len = match (state >> 16) % 10 {
                    0..=5 => 40 + (state >> 8) as usize % 400,
                    6..=8 => 3000 + (state >> 8) as usize % 9000,
                    _ => 16_000 + (state >> 8) as usize % 20_000,
                };
                let mut line = format!("{{\"n\":{n},\"pad\":\"").into_bytes();
                line.resize(len - 3, b'x');
                line.extend_from_slice(b"\"}\n");
                line
            })
            .collect()
    }

    /// The stop of a reader that fell behind: the queue over a real pipe that nobody reads
    /// (its 64 KiB fill up at once) gets many lines, some of which the writer is in the
    /// middle of when the stop's time runs out. The pipe then holds whole lines only, in
    /// order, and every line is either in it or counted as dropped.
    #[test]
    fn a_stop_leaves_a_stalled_pipe_whole_lines_and_counts_the_rest() {
        let (pipe, mut read) = pipe();
        let mut out = StdoutQueue::start(move || pipe, QUEUE_BYTES).unwrap();
        let lines = varied_lines(400);
        let mut expected = Vec::new();
        for line in &lines {
            out.write_all(line).unwrap();
            expected.extend_from_slice(line);
            out.flush().unwrap();
        }
        let started = Instant::now();
        let settled = out
            .settle(Instant::now() + Duration::from_millis(100))
            .unwrap();
        writeln!(out, "{{\"kind\":\"summary\"}}").unwrap();
        let finished = out
            .finish(Instant::now() + Duration::from_millis(100))
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the stop waited for the reader"
        );
        assert!(settled.lines > 0, "the stalled pipe took every line");
        assert!(finished.dropped.lines >= settled.lines);
        // The writer has ended (it gave up at a line's end), so the write end is closed and
        // the pipe can be read to its end.
        let mut taken = Vec::new();
        read.read_to_end(&mut taken).unwrap();
        assert!(!taken.is_empty());
        assert!(taken.ends_with(b"\n"), "the last line is cut");
        // The lines from the first, then (when the line given up left it room) the summary.
        let summary = b"{\"kind\":\"summary\"}\n";
        let events = taken.strip_suffix(summary).unwrap_or(&taken);
        assert!(expected.starts_with(events), "lines lost or reordered");
        assert_eq!(finished.complete, taken.ends_with(summary));
        let written = taken.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(
            written + finished.dropped.lines,
            lines.len() as u64 + 1,
            "every line (the summary too) written or counted"
        );
        assert_eq!(
            taken.len() as u64 + finished.dropped.bytes,
            (expected.len() + summary.len()) as u64
        );
    }

    /// A reader that takes a little at a time keeps up in the end: it gets every line, whole,
    /// in order, long ones included.
    #[test]
    fn a_slow_reader_of_a_pipe_gets_every_line() {
        let (mut pipe, mut read) = pipe();
        let reader = std::thread::spawn(move || {
            let mut taken = Vec::new();
            let mut buffer = [0u8; 1500];
            loop {
                match read.read(&mut buffer) {
                    Ok(0) => return taken,
                    Ok(n) => taken.extend_from_slice(&buffer[..n]),
                    Err(err) => panic!("{err}"),
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let lines: Vec<u8> = varied_lines(300).concat();
        let written = pipe.write_lines(&lines, &|| false).unwrap();
        assert_eq!(written, lines.len());
        drop(pipe);
        assert!(reader.join().unwrap() == lines, "lines lost or reordered");
    }

    /// A line longer than the pipe (64 KiB): the pipe is enlarged for it, and it is written
    /// whole even while the reader holds the pipe half full.
    #[test]
    fn a_line_longer_than_the_pipe_is_written_whole() {
        let (mut pipe, mut read) = pipe();
        let small = b"{\"small\":1}\n".repeat(3000);
        let mut long = vec![b'y'; 200_000];
        long.push(b'\n');
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let mut taken = Vec::new();
            read.read_to_end(&mut taken).unwrap();
            taken
        });
        assert_eq!(pipe.write_lines(&small, &|| false).unwrap(), small.len());
        assert_eq!(pipe.write_lines(&long, &|| false).unwrap(), long.len());
        drop(pipe);
        assert!(reader.join().unwrap() == [small, long].concat());
    }

    /// The reader goes away: what follows is dropped (reported written) and the stop is asked
    /// for once.
    #[test]
    fn a_pipe_whose_reader_left_drops_lines_and_stops_once() {
        static STOPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let (pipe, read) = pipe();
        let mut pipe = pipe.on_close(|| {
            STOPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        drop(read);
        let lines = varied_lines(50).concat();
        assert_eq!(pipe.write_lines(&lines, &|| false).unwrap(), lines.len());
        assert_eq!(pipe.write_lines(&lines, &|| false).unwrap(), lines.len());
        assert!(pipe.is_closed());
        assert_eq!(STOPS.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
