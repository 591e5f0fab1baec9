//! Reading a file as a process sees it, inside its own root filesystem.
//!
//! `/proc/PID/root/<path>` reaches a container's files, but symbolic links met on the way are
//! resolved against the *collector's* root: a container could point its token file at a host
//! file. `openat2(RESOLVE_IN_ROOT)` resolves every link inside the process's root instead. The
//! file is opened non-blocking and must be a regular file, so a FIFO planted in its place
//! cannot hang the collector. Kernels before 5.6 lack openat2; there the plain path is used.
//! Directories are listed the same way ([`list_dir_in_root`]), for the collector's package
//! inventory.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` (absolute, as the process names it) inside the root directory `root`
/// (normally `/proc/PID/root`), and returns the file with its metadata.
pub fn open_in_root(root: &Path, path: &str) -> io::Result<(File, std::fs::Metadata)> {
    let relative = path.trim_start_matches('/');
    let root_dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)?;
    let file = match openat2_in_root(&root_dir, relative, 0) {
        Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(root.join(relative))?,
        other => other?,
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path} is not a regular file"),
        ));
    }
    Ok((file, meta))
}

/// Reads at most `max` bytes of `path` inside `root`; a longer file is an error, not a
/// truncated read, since every caller parses whole files.
pub fn read_in_root(root: &Path, path: &str, max: u64) -> io::Result<Vec<u8>> {
    let (file, _) = open_in_root(root, path)?;
    read_limited(file, max)
}

/// The first `max` bytes of `path` inside `root` (all of it when shorter), and whether there
/// was more: for files whose interesting part comes first (a Python `METADATA`'s headers).
pub fn read_prefix_in_root(root: &Path, path: &str, max: u64) -> io::Result<(Vec<u8>, bool)> {
    let (file, _) = open_in_root(root, path)?;
    let mut content = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut content)?;
    let more = content.len() as u64 > max;
    content.truncate(max as usize);
    Ok((content, more))
}

/// Reads at most `max` bytes of an open file (error if it holds more).
pub fn read_limited(file: File, max: u64) -> io::Result<Vec<u8>> {
    let mut content = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut content)?;
    if content.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(content)
}

/// The names in directory `path` inside `root`, at most `max` of them (in the directory's
/// order, which is the file system's), and whether there were more. `.` and `..` are left out;
/// names that are not UTF-8 are skipped.
pub fn list_dir_in_root(root: &Path, path: &str, max: usize) -> io::Result<(Vec<String>, bool)> {
    let relative = path.trim_start_matches('/');
    let root_dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)?;
    let dir = match openat2_in_root(&root_dir, relative, libc::O_DIRECTORY) {
        Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(root.join(relative))?,
        other => other?,
    };
    // Listed through the descriptor: the walk that found it stayed inside the root.
    let mut names = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
        if names.len() == max {
            return Ok((names, true));
        }
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok((names, false))
}

fn openat2_in_root(root_dir: &File, relative: &str, extra_flags: i32) -> io::Result<File> {
    let c_path = std::ffi::CString::new(relative)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: open_how is plain integers, for which all-zero is valid (and means "no
    // options" to the kernel); libc marks it non-exhaustive, so it cannot be built literally.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | extra_flags) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the directory fd is open for the whole call, the path is NUL-terminated, and
    // `how` is a valid open_how whose size is passed along.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root_dir.as_raw_fd(),
            c_path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("openat2 returned a bad fd"))?;
    // SAFETY: openat2 just returned this fd, and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/own"), "inside").unwrap();
        // An absolute link: inside the root it names root/etc/own, never the host's file.
        std::os::unix::fs::symlink("/etc/own", root.path().join("etc/link")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            root.path().join("etc/escape"),
        )
        .unwrap();
        std::os::unix::fs::symlink("../../../../../../..", root.path().join("up")).unwrap();

        assert_eq!(
            read_in_root(root.path(), "/etc/link", 100).unwrap(),
            b"inside"
        );
        assert!(read_in_root(root.path(), "/etc/escape", 100).is_err());
        assert_eq!(
            read_in_root(root.path(), "/up/etc/own", 100).unwrap(),
            b"inside"
        );
        assert!(read_in_root(root.path(), "/etc/own", 3).is_err());
        assert_eq!(
            read_prefix_in_root(root.path(), "/etc/own", 3).unwrap(),
            (b"ins".to_vec(), true)
        );
        assert_eq!(
            read_prefix_in_root(root.path(), "/etc/link", 100).unwrap(),
            (b"inside".to_vec(), false)
        );
        assert!(read_prefix_in_root(root.path(), "/etc/escape", 100).is_err());
        assert!(read_in_root(root.path(), "/etc", 100).is_err());
        assert!(read_in_root(root.path(), "/missing", 100).is_err());
        assert!(read_in_root(root.path(), "/etc/own\0x", 100).is_err());
    }

    #[test]
    fn directories_are_listed_inside_the_root_and_bounded() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("host-only"), "").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("lib/pkgs")).unwrap();
        for name in ["a", "b", "c"] {
            std::fs::write(root.path().join("lib/pkgs").join(name), "").unwrap();
        }
        std::os::unix::fs::symlink(outside.path(), root.path().join("lib/escape")).unwrap();
        std::os::unix::fs::symlink("/lib/pkgs", root.path().join("lib/inside")).unwrap();

        let (mut names, more) = list_dir_in_root(root.path(), "/lib/pkgs", 10).unwrap();
        names.sort();
        assert_eq!(
            (names, more),
            (vec!["a".into(), "b".into(), "c".into()], false)
        );
        let (names, more) = list_dir_in_root(root.path(), "/lib/pkgs", 2).unwrap();
        assert_eq!((names.len(), more), (2, true));
        // An absolute link resolves inside the root: /lib/inside is the root's /lib/pkgs.
        assert_eq!(
            list_dir_in_root(root.path(), "/lib/inside", 10)
                .unwrap()
                .0
                .len(),
            3
        );
        // A link to a host directory names nothing inside the root.
        assert!(list_dir_in_root(root.path(), "/lib/escape", 10).is_err());
        assert!(list_dir_in_root(root.path(), "/lib/pkgs/a", 10).is_err());
    }

    #[test]
    fn a_fifo_does_not_block() {
        let root = tempfile::tempdir().unwrap();
        let fifo = std::ffi::CString::new(root.path().join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(read_in_root(root.path(), "/fifo", 100).is_err());
    }
}
