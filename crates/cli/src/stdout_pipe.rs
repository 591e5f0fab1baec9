//! Standard output whose reader may go away: `agentscope collect --json | head`.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE instead of killing the
//! process. That is decided here, once: [`StdoutPipe`] notices the closed pipe, drops what is
//! written after it (a command may still have files to finish) and says so through
//! [`StdoutPipe::is_closed`]; anything else that hits the closed pipe returns the EPIPE
//! error up to `main`, which [`is_broken_pipe`] recognises so the command exits 0 without a
//! message, as `cat` or `grep` do.

use std::io::{self, BufWriter, StdoutLock, Write};

/// Whether `err` comes from writing to a pipe nobody reads any more.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|kind| kind == io::ErrorKind::BrokenPipe)
    })
}

/// Buffered standard output (or, in tests, any writer) that turns a closed pipe into a state
/// instead of an error.
pub struct StdoutPipe<W: Write = BufWriter<StdoutLock<'static>>> {
    out: W,
    closed: bool,
    on_close: Option<fn()>,
}

impl StdoutPipe {
    pub fn new() -> Self {
        Self::over(BufWriter::new(io::stdout().lock()))
    }
}

impl<W: Write> StdoutPipe<W> {
    pub fn over(out: W) -> Self {
        Self {
            out,
            closed: false,
            on_close: None,
        }
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

    /// Passes other errors on; a closed pipe becomes the closed state.
    fn absorb<T>(&mut self, result: io::Result<T>, dropped: T) -> io::Result<T> {
        match result {
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                if !self.closed {
                    self.closed = true;
                    if let Some(stop) = self.on_close {
                        stop();
                    }
                }
                Ok(dropped)
            }
            other => other,
        }
    }
}

impl Default for StdoutPipe {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: Write> Write for StdoutPipe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let result = self.out.write(buf);
        self.absorb(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.out.flush();
        self.absorb(result, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_found_anywhere_in_the_chain() {
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        let err = anyhow::Error::from(pipe).context("writing standard output");
        assert!(is_broken_pipe(&err));
        let json = serde_json::Error::io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&anyhow::Error::from(json)));
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
        assert!(!is_broken_pipe(&anyhow::anyhow!("broken pipe")));
    }

    /// A pipe whose reader leaves after `room` bytes.
    struct ClosingPipe {
        room: usize,
        written: Vec<u8>,
    }

    impl Write for ClosingPipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written.len() + buf.len() > self.room {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    static STOPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn a_closed_pipe_stops_once_and_drops_the_rest() {
        let mut out = StdoutPipe::over(ClosingPipe {
            room: 10,
            written: Vec::new(),
        })
        .on_close(|| {
            STOPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        writeln!(out, "line one").unwrap();
        assert!(!out.is_closed());
        writeln!(out, "line two").unwrap();
        writeln!(out, "line three").unwrap();
        out.flush().unwrap();
        assert!(out.is_closed());
        assert_eq!(STOPS.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(out.out.written, b"line one\n");
    }

    #[test]
    fn other_errors_pass_through() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = StdoutPipe::over(Full);
        assert!(writeln!(out, "x").is_err());
        assert!(!out.is_closed());
    }
}
