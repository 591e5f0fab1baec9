//! The collector's own output, as the kernel programs see it.
//!
//! A process that reads what the collector writes (its stdout or stderr, its recording;
//! transitively, whatever such a reader writes to) is a *consumer*: its payloads
//! are not captured, or `collect --json | cat` would capture cat reading JSON, print it bigger,
//! and loop without end. This module names the kernel fields the programs follow to resolve an
//! fd to its file, turns files into the kernel's (dev, ino) keys, and describes consumers for
//! the summary. Consumers are always reported: a process could read the output to hide.

use std::os::unix::fs::MetadataExt as _;

use agentscope_common::{config, FileId};
use serde::Serialize;

/// (struct, member) the kernel programs read, in the order of `config::OFF_*` from
/// `config::OFF_TASK_FILES` on.
pub const KERNEL_FIELDS: [(&str, &str); 10] = [
    ("task_struct", "files"),
    ("files_struct", "fdt"),
    ("fdtable", "max_fds"),
    ("fdtable", "fd"),
    ("file", "f_inode"),
    ("inode", "i_mode"),
    ("inode", "i_ino"),
    ("inode", "i_sb"),
    ("super_block", "s_dev"),
    ("file", "f_flags"),
];

/// `config::OFF_*` index and value for every field, from the running kernel's BTF.
pub fn kernel_offsets() -> Result<Vec<(u32, u64)>, String> {
    let btf = crate::kernel_btf::KernelBtf::from_sys_fs()?;
    KERNEL_FIELDS
        .iter()
        .enumerate()
        .map(|(i, (name, member))| {
            Ok((
                config::OFF_TASK_FILES + i as u32,
                btf.member_offset(name, member)?,
            ))
        })
        .collect()
}

/// The kernel's key for a file: its internal dev_t is `major << 20 | minor`, unlike the
/// userspace encoding `stat` returns.
pub fn file_id(metadata: &std::fs::Metadata) -> FileId {
    FileId {
        dev: kernel_dev(metadata.dev() as libc::dev_t),
        _pad: 0,
        ino: metadata.ino(),
    }
}

fn kernel_dev(dev: libc::dev_t) -> u32 {
    ((libc::major(dev) as u32) << 20) | (libc::minor(dev) as u32 & 0xf_ffff)
}

/// The file an open fd of this process refers to.
pub fn file_id_of_fd(fd: i32) -> Option<FileId> {
    // SAFETY: fstat with a valid out pointer; a bad fd only makes it fail.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return None;
    }
    Some(FileId {
        dev: kernel_dev(stat.st_dev),
        _pad: 0,
        ino: stat.st_ino,
    })
}

/// A process that read the collector's output: its payloads (socket, pipe, TLS) are not
/// captured; its other events are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputConsumer {
    pub pid: u32,
    pub comm: String,
    /// It has exited.
    pub exited: bool,
}

impl OutputConsumer {
    /// The summary's warning about this consumer.
    pub fn warning(&self) -> String {
        format!(
            "pid {} ({}) reads the collector's output; its payloads are not captured",
            self.pid,
            self.comm.escape_debug()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_use_the_kernels_dev_t_encoding() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let metadata = file.as_file().metadata().unwrap();
        let id = file_id(&metadata);
        let dev = metadata.dev() as libc::dev_t;
        assert_eq!(id.dev >> 20, libc::major(dev) as u32);
        assert_eq!(id.dev & 0xf_ffff, libc::minor(dev) as u32);
        assert_eq!(id.ino, metadata.ino());
        use std::os::fd::AsRawFd as _;
        assert_eq!(file_id_of_fd(file.as_file().as_raw_fd()), Some(id));
        assert_eq!(file_id_of_fd(-1), None);
    }
}
