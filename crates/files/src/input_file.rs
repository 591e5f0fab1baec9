//! Opening the files agentscope reads (captures, JSON lines), so that a path naming something
//! that is not a regular file gets one clear line instead of a hang or a stray OS error.
//!
//! A FIFO blocks `open` until a writer comes, forever if none does, and cannot be mapped; a
//! directory opens and then fails with "No such device" (mmap) or "Is a directory" (read).
//! The file is opened non-blocking (so a FIFO cannot hang the open), its type checked on the
//! open descriptor (no race with a rename), and anything but a regular file refused with what
//! it is.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// What a path names when it is not a regular file ("a FIFO", "a directory", ...).
fn kind_of(file_type: &std::fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_dir() {
        Some("a directory")
    } else if file_type.is_fifo() {
        Some("a FIFO")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    }
}

/// Why a path cannot be read as `what`.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// One line, the OS error text once.
    /// (`error`, not `source`: the text is already in the message.)
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("{path} is {kind}, not {what}")]
    NotAFile {
        path: String,
        kind: &'static str,
        what: &'static str,
    },
}

/// Reads all of `path` if it is a regular file (JSON lines); `what` as for [`open_regular`].
pub fn read_regular(path: &Path, what: &'static str) -> Result<Vec<u8>, InputError> {
    let mut file = open_regular(path, what)?;
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes).map_err(|error| InputError::Io {
        path: path.display().to_string(),
        error,
    })?;
    Ok(bytes)
}

/// Opens `path` for reading if it is a regular file; `what` names what it should hold ("a
/// capture file") for the error.
pub fn open_regular(path: &Path, what: &'static str) -> Result<File, InputError> {
    let name = || path.display().to_string();
    let io = |error| InputError::Io {
        path: name(),
        error,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let file_type = file.metadata().map_err(io)?.file_type();
    if let Some(kind) = kind_of(&file_type) {
        return Err(InputError::NotAFile {
            path: name(),
            kind,
            what,
        });
    }
    // Regular files ignore O_NONBLOCK; nothing to undo.
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_directory_is_named_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("events.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = open_regular(&fifo, "a capture file")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("{} is a FIFO, not a capture file", fifo.display())
        );
        let err = open_regular(dir.path(), "a capture file")
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("is a directory, not a capture file"), "{err}");
        let err = open_regular(&dir.path().join("missing"), "a capture file")
            .unwrap_err()
            .to_string();
        assert_eq!(err.matches("No such file").count(), 1, "{err}");
        let file = dir.path().join("ok");
        std::fs::write(&file, b"x").unwrap();
        assert!(open_regular(&file, "a capture file").is_ok());
    }
}
