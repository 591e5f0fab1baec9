//! `collect`'s standard output into a pipe, written so that the pipe only ever holds whole
//! lines: whenever the process ends (a stop whose time ran out while the reader was behind),
//! the reader's last line is complete.
//!
//! A blocking write of a chunk of lines into a pipe that is full returns only once all of it
//! is in; a process that exits meanwhile leaves the part already in the pipe, usually ending
//! in the middle of a JSON line. So the writer here has the pipe opened anew, non-blocking
//! (its own open file description: whoever else shares standard output is not switched to
//! non-blocking), and writes a line only when it fits whole:
//! - a write of at most `PIPE_BUF` bytes into a pipe is atomic: all of it or, non-blocking,
//!   nothing (EAGAIN);
//! - for longer runs of lines it keeps the kernel's count of pipe buffers (pages) an upper
//!   bound of its own: every write it made that the reader has not finished takes at most
//!   `ceil(len / page)` buffers, plus one for the buffer the oldest of them began in. Free
//!   buffers times the page size can be written without blocking.
//!
//! Lines longer than the pipe can ever take are written as room comes (the pipe is enlarged for
//! them first, as far as `/proc/sys/fs/pipe-max-size` allows); such a line can still be cut.
//! The bound assumes the collector is the pipe's only writer; another one makes it loose, which
//! can cut a line too, and never loses or reorders one.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// How long the writer waits for the reader between checks of whether to give up.
const POLL_STEP: Duration = Duration::from_millis(5);

/// The non-blocking pipe behind standard output.
pub struct LinePipe {
    fd: OwnedFd,
    page: usize,
    /// The pipe's capacity in pages (`F_GETPIPE_SZ`).
    pages: usize,
    /// Bytes written so far.
    written: u64,
    /// The writes the reader may not have finished: where each ends (in `written`'s count)
    /// and how many pages it can take.
    unread: VecDeque<(u64, usize)>,
    closed: bool,
    on_close: Option<fn()>,
}

impl LinePipe {
    /// Standard output, if it is a pipe (or FIFO) that can be opened anew; otherwise (a file,
    /// a terminal, a socket, no reader left) standard output is written as it is.
    pub fn stdout() -> Option<Self> {
        // SAFETY: fstat(2) into a zeroed struct stat.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(libc::STDOUT_FILENO, &mut stat) } != 0
            || stat.st_mode & libc::S_IFMT != libc::S_IFIFO
        {
            return None;
        }
        // SAFETY: open(2) of a NUL-terminated path; the descriptor is owned below.
        let fd = unsafe {
            libc::open(
                c"/proc/self/fd/1".as_ptr(),
                libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a descriptor just opened and owned by nothing else.
        Some(Self::over(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Writes into `fd`, the write end of a pipe opened non-blocking.
    pub fn over(fd: OwnedFd) -> Self {
        // SAFETY: sysconf(3) has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|&p| p > 0)
            .unwrap_or(4096);
        let mut pipe = Self {
            fd,
            page,
            pages: 0,
            written: 0,
            unread: VecDeque::new(),
            closed: false,
            on_close: None,
        };
        pipe.pages = pipe.capacity() / page;
        pipe
    }

    /// Calls `stop` once, when the reader goes away.
    pub fn on_close(mut self, stop: fn()) -> Self {
        self.on_close = Some(stop);
        self
    }

    /// The reader went away: what is written now is dropped.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Writes the whole lines at the start of `lines`, waiting for the reader as long as it
    /// takes or until `give_up()` says to stop at a line's end. Returns how many bytes were
    /// written (all of them once the reader has gone: they are dropped); fewer only at the end
    /// of a line.
    pub fn write_lines(&mut self, lines: &[u8], give_up: &dyn Fn() -> bool) -> io::Result<usize> {
        let mut done = 0;
        while done < lines.len() {
            if self.closed {
                return Ok(lines.len());
            }
            let rest = &lines[done..];
            let first = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |at| at + 1);
            if first > self.pages * self.page {
                self.enlarge(first);
            }
            let room = self.room()?;
            let mid_line = done > 0 && lines[done - 1] != b'\n';
            let take = if mid_line || first > self.pages * self.page {
                // The end of a line already begun (a bound made loose by another writer), or
                // a line longer than the pipe takes at once: whatever fits.
                rest[..first].len()
            } else if first <= room {
                // As many whole lines as fit.
                rest.iter()
                    .take(room)
                    .rposition(|&b| b == b'\n')
                    .map_or(first, |at| at + 1)
                    .max(first)
            } else if first <= libc::PIPE_BUF {
                // Atomic: all of it or nothing.
                first
            } else {
                0
            };
            if take > 0 {
                match self.write(&rest[..take]) {
                    Ok(n) => {
                        done += n;
                        continue;
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                        self.close();
                        return Ok(lines.len());
                    }
                    Err(err) => return Err(err),
                }
            }
            if !mid_line && give_up() {
                return Ok(done);
            }
            self.wait(take == 0)?;
        }
        Ok(done)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: write(2) from a live slice.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        self.written += n as u64;
        self.unread.push_back((self.written, n.div_ceil(self.page)));
        Ok(n)
    }

    /// Bytes that can be written now without blocking, at least (see the module's doc).
    fn room(&mut self) -> io::Result<usize> {
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD into a c_int.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::FIONREAD, &mut unread) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let unread = unread.max(0) as u64;
        if unread == 0 {
            self.unread.clear();
            return Ok(self.pages * self.page);
        }
        let read_to = self.written.saturating_sub(unread);
        while self.unread.front().is_some_and(|&(end, _)| end <= read_to) {
            self.unread.pop_front();
        }
        let used = 1 + self.unread.iter().map(|&(_, pages)| pages).sum::<usize>();
        Ok(self.pages.saturating_sub(used) * self.page)
    }

    /// Waits for the reader to take something: until the pipe is no longer full (poll), at
    /// most [`POLL_STEP`]; or a millisecond when it is not full but the bound says the next
    /// line would not fit (`short`).
    fn wait(&mut self, short: bool) -> io::Result<()> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: poll(2) on one live pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, POLL_STEP.as_millis() as libc::c_int) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        if poll.revents & libc::POLLERR != 0 {
            // The reader is gone: the next write says so (EPIPE).
            return Ok(());
        }
        if ready > 0 && short {
            // Writable but not for what waits: poll would return at once again.
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            if let Some(stop) = self.on_close {
                stop();
            }
        }
    }

    /// Makes the pipe large enough for a line of `len` bytes, as far as the kernel lets it.
    fn enlarge(&mut self, len: usize) {
        let wanted = len.next_power_of_two().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: F_SETPIPE_SZ on a descriptor we own; a refusal leaves the pipe as it was.
        unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) };
        self.pages = self.capacity() / self.page;
    }

    /// The pipe's capacity in bytes.
    fn capacity(&self) -> usize {
        // SAFETY: F_GETPIPE_SZ on a descriptor we own.
        let size = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
        usize::try_from(size).unwrap_or(0)
    }
}
