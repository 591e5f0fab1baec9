//! Syncing a file to disk without waiting for the disk: `fdatasync` runs in a small helper
//! process, and the writer only asks and later reads the answers.
//!
//! Why not inline: `fdatasync` waits for the disk, and behind another program's writeback
//! (a build beside the collector) one took 780 ms: the recorder's periodic sync stalled the
//! collector's event loop and its final one most of the stop's second.
//!
//! Why a process and not a thread: a thread inside `fdatasync` sleeps uninterruptibly, and a
//! process has exited only once every thread has. A sync left running on a thread at the
//! stop holds the process's exit until the disk answers. A forked helper's sync holds only the
//! helper: the writer exits when it is done, and the helper finishes the sync after it (the
//! data is in the page cache either way; the sync only makes it survive a machine failure).
//!
//! The helper keeps nothing of the parent but its copy of the file: it closes every other fd
//! (output pipes, eBPF links, sockets), so it holds no reader waiting for end of file and no
//! probe attached. It serves sync requests over a pipe, answers each with a byte (0, or the
//! `errno` of a failed sync), and exits when the request pipe closes.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::time::Instant;

/// A helper process syncing one file on request (see the module's doc).
pub struct DiskSync {
    pid: libc::pid_t,
    /// Write end of the request pipe (non-blocking).
    requests: OwnedFd,
    /// Read end of the answer pipe (non-blocking).
    answers: OwnedFd,
    /// Syncs asked for, and answered.
    asked: u64,
    answered: u64,
    /// The first failure an answer reported, until taken.
    error: Option<io::Error>,
    /// The helper is gone (its answer pipe closed) with syncs unanswered.
    lost: bool,
}

/// Where each fd sits in the helper once it has moved them out of the way of its closing.
const HELPER_FILE: RawFd = 0;
const HELPER_REQUESTS: RawFd = 1;
const HELPER_ANSWERS: RawFd = 2;

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl DiskSync {
    /// Forks the helper for `file`. Nothing is synced until [`DiskSync::request`].
    pub fn start(file: &File) -> io::Result<Self> {
        let (request_read, request_write) = pipe()?;
        let (answer_read, answer_write) = pipe()?;
        let fds = [
            file.as_raw_fd(),
            request_read.as_raw_fd(),
            answer_write.as_raw_fd(),
        ];
        // SAFETY: the child makes only async-signal-safe system calls (fcntl, dup2, close,
        // close_range, getrlimit, sigaction through signal, prctl, read, write, fdatasync,
        // _exit) on values computed before the fork: the parent's other threads may hold
        // locks (the allocator's) that stay held forever in the child's copy.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe { helper(fds) },
            pid => {
                drop(request_read);
                drop(answer_write);
                set_nonblocking(&request_write)?;
                set_nonblocking(&answer_read)?;
                Ok(Self {
                    pid,
                    requests: request_write,
                    answers: answer_read,
                    asked: 0,
                    answered: 0,
                    error: None,
                    lost: false,
                })
            }
        }
    }

    /// Asks for a sync of everything written to the file so far, without waiting.
    pub fn request(&mut self) -> io::Result<()> {
        self.collect();
        if self.lost {
            return Err(self.helper_gone());
        }
        let byte = [1u8];
        loop {
            // SAFETY: writes one byte from a live buffer to an fd we own.
            let n = unsafe { libc::write(self.requests.as_raw_fd(), byte.as_ptr().cast(), 1) };
            if n == 1 {
                self.asked += 1;
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                // A full pipe (64 Ki requests unanswered) or a helper gone: either way syncs
                // are no longer being made.
                return Err(err);
            }
        }
    }

    /// Whether every sync asked for has been answered (after reading the answers that came).
    pub fn is_idle(&mut self) -> bool {
        self.collect();
        self.answered >= self.asked
    }

    /// The first sync failure reported since the last call, or the helper's disappearance.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.collect();
        if let Some(err) = self.error.take() {
            return Some(err);
        }
        (self.lost && self.answered < self.asked).then(|| self.helper_gone())
    }

    /// Waits until every sync asked for so far is answered, or until `deadline` (`None`: for
    /// as long as it takes). `Ok(true)`: on disk; `Ok(false)`: not yet at the deadline.
    pub fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            if let Some(err) = self.take_error() {
                return Err(err);
            }
            if self.answered >= self.asked {
                return Ok(true);
            }
            let timeout = match deadline {
                None => -1,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    // Rounded up: a 0 would poll without waiting until the deadline.
                    i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
                }
            };
            let mut watched = libc::pollfd {
                fd: self.answers.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: polls one pollfd that lives on this stack frame.
            unsafe { libc::poll(&mut watched, 1, timeout) };
        }
    }

    /// Reads the answers that have arrived, without waiting.
    fn collect(&mut self) {
        let mut buffer = [0u8; 256];
        loop {
            // SAFETY: reads into a live buffer of the length given, from an fd we own.
            let n = unsafe {
                libc::read(
                    self.answers.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            match n {
                0 => {
                    self.lost = true;
                    return;
                }
                n if n > 0 => {
                    for &code in &buffer[..n as usize] {
                        self.answered += 1;
                        if code != 0 && self.error.is_none() {
                            self.error = Some(io::Error::from_raw_os_error(i32::from(code)));
                        }
                    }
                }
                _ => {
                    if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                        // EAGAIN: nothing more for now.
                        return;
                    }
                }
            }
        }
    }

    fn helper_gone(&self) -> io::Error {
        io::Error::other(format!(
            "the process syncing the file to disk (pid {}) is gone",
            self.pid
        ))
    }
}

impl Drop for DiskSync {
    /// Closes the request pipe: the helper finishes the sync it is making, if any, and exits.
    /// It is reaped by a thread left waiting for it (a thread waiting in `waitpid` does not
    /// hold this process's exit; if this process goes first, init reaps it).
    fn drop(&mut self) {
        let pid = self.pid;
        let mut status = 0;
        // SAFETY: waitpid on our own child, without blocking.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
            let _ = std::thread::Builder::new()
                .name("disk-sync-reaper".into())
                .spawn(move || {
                    let mut status = 0;
                    // SAFETY: waitpid on our own child.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                });
        }
    }
}

/// The helper process: serve sync requests until the request pipe closes. Never returns.
///
/// # Safety
///
/// Only in the child of a fork: it closes every fd but the three it is given.
unsafe fn helper(fds: [RawFd; 3]) -> ! {
    // Ctrl-C reaches the whole process group: the collector stops cleanly on it and asks
    // for a last sync, which this process must still make.
    libc::signal(libc::SIGINT, libc::SIG_IGN);
    libc::signal(libc::SIGTERM, libc::SIG_IGN);
    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    libc::prctl(libc::PR_SET_NAME, c"agentscope-sync".as_ptr());
    // Above 2 first, so that moving them to 0, 1 and 2 overwrites none of them.
    let mut high = [0; 3];
    for (slot, fd) in high.iter_mut().zip(fds) {
        *slot = libc::fcntl(fd, libc::F_DUPFD, 3);
        if *slot < 0 {
            libc::_exit(1);
        }
    }
    for (fd, target) in high
        .into_iter()
        .zip([HELPER_FILE, HELPER_REQUESTS, HELPER_ANSWERS])
    {
        if libc::dup2(fd, target) < 0 {
            libc::_exit(1);
        }
    }
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
        // A kernel before 5.9: one by one, up to the fd limit.
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let highest = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(1 << 20) as RawFd
        } else {
            1 << 16
        };
        for fd in 3..highest {
            libc::close(fd);
        }
    }
    let mut requests = [0u8; 64];
    loop {
        let n = libc::read(
            HELPER_REQUESTS,
            requests.as_mut_ptr().cast(),
            requests.len(),
        );
        if n == 0 {
            libc::_exit(0);
        }
        if n < 0 {
            if *libc::__errno_location() == libc::EINTR {
                continue;
            }
            libc::_exit(1);
        }
        // One sync covers every request read: each was made after its data was written.
        let code = if libc::fdatasync(HELPER_FILE) == 0 {
            0
        } else {
            (*libc::__errno_location()).clamp(1, 255) as u8
        };
        let answers = [code; 64];
        let mut left = n as usize;
        while left > 0 {
            let written = libc::write(HELPER_ANSWERS, answers.as_ptr().cast(), left);
            if written < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                // The writer is gone: nothing to answer to.
                libc::_exit(0);
            }
            left -= written as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::time::Duration;

    fn helper_pid_alive(pid: libc::pid_t) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                // State is the field after the parenthesised command.
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            })
            .unwrap_or(false)
    }

    #[test]
    fn requested_syncs_are_answered_and_the_helper_exits_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::create(dir.path().join("data")).unwrap();
        let mut sync = DiskSync::start(&file).unwrap();
        // Nothing asked yet: idle, and a wait returns at once.
        assert!(sync.is_idle());
        for round in 0..3 {
            file.write_all(&[round; 4096]).unwrap();
            sync.request().unwrap();
            sync.request().unwrap();
            assert!(sync
                .wait_until(Some(Instant::now() + Duration::from_secs(30)))
                .unwrap());
            assert!(sync.is_idle());
        }
        assert_eq!((sync.asked, sync.answered), (6, 6));
        assert!(sync.take_error().is_none());
        // The helper holds its copy of the file and nothing else of ours: not the directory
        // handle tempdir has, not our standard output.
        let fds: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", sync.pid))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(fds.len(), 3, "{fds:?}");
        let pid = sync.pid;
        drop(sync);
        let gone_by = Instant::now() + Duration::from_secs(10);
        while helper_pid_alive(pid) {
            assert!(Instant::now() < gone_by, "the helper outlived its writer");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_failing_sync_is_reported() {
        // fdatasync on a pipe fails with EINVAL: the error comes back as the answer.
        let (read_end, _write_end) = pipe().unwrap();
        let file = File::from(read_end);
        let mut sync = DiskSync::start(&file).unwrap();
        sync.request().unwrap();
        let err = sync.wait_until(None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        // Reported once; the next sync is asked for and fails again.
        assert!(sync.take_error().is_none());
        sync.request().unwrap();
        assert!(sync.wait_until(None).is_err());
    }

    #[test]
    fn a_wait_ends_at_its_deadline_when_the_helper_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("data")).unwrap();
        let mut sync = DiskSync::start(&file).unwrap();
        // Stop the helper so it cannot answer, as a disk that takes its time would.
        // SAFETY: kill on our own child.
        unsafe { libc::kill(sync.pid, libc::SIGSTOP) };
        sync.request().unwrap();
        let began = Instant::now();
        let on_disk = sync
            .wait_until(Some(began + Duration::from_millis(100)))
            .unwrap();
        assert!(!on_disk);
        assert!(began.elapsed() >= Duration::from_millis(100));
        assert!(!sync.is_idle());
        // SAFETY: as above.
        unsafe { libc::kill(sync.pid, libc::SIGCONT) };
        assert!(sync.wait_until(None).unwrap());
    }
}
