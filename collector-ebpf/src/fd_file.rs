//! The pipe or regular file behind an fd of the current process
//! (`task->files->fdt->fd[fd]->f_inode`), by device and inode. Rust BPF has no CO-RE field
//! access, so the struct offsets come from the running kernel's BTF: the collector reads them
//! from `/sys/kernel/btf/vmlinux` and passes them in the `CONFIG` map (`config::OFF_*`);
//! without them (`config::OUTPUT_TRACKING` unset) no fd resolves.

use agentscope_common::{config, FileId};
use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task};

use crate::task::config;

const S_IFMT: u16 = 0o170000;
pub(crate) const S_IFIFO: u16 = 0o010000;
const S_IFREG: u16 = 0o100000;

#[inline(always)]
pub(crate) fn kernel_read<T>(addr: u64) -> Option<T> {
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// A pipe or regular file an fd refers to.
pub(crate) struct OpenFile {
    pub(crate) id: FileId,
    /// `S_IFIFO` or `S_IFREG`.
    pub(crate) file_type: u16,
    /// `file->f_flags` (`O_APPEND`, ...).
    pub(crate) flags: u32,
}

/// The pipe or regular file behind `fd` of the current process
/// (`task->files->fdt->fd[fd]->f_inode`), by device and inode.
#[inline(always)]
pub(crate) fn fd_file_id(fd: i32) -> Option<FileId> {
    fd_file(fd).map(|file| file.id)
}

/// The `struct file` behind `fd` of the current process, from the kernel's own fd table.
#[inline(always)]
pub(crate) fn fd_file_ptr(fd: i32) -> Option<u64> {
    if fd < 0 || config(config::OUTPUT_TRACKING) == 0 {
        return None;
    }
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = kernel_read(task + config(config::OFF_TASK_FILES))?;
    if files == 0 {
        return None;
    }
    let fdt: u64 = kernel_read(files + config(config::OFF_FILES_FDT))?;
    let max_fds: u32 = kernel_read(fdt + config(config::OFF_FDTABLE_MAX_FDS))?;
    if fd as u32 >= max_fds {
        return None;
    }
    let fds: u64 = kernel_read(fdt + config(config::OFF_FDTABLE_FD))?;
    let file: u64 = kernel_read(fds + 8 * fd as u64)?;
    if file == 0 {
        return None;
    }
    Some(file)
}

#[inline(always)]
pub(crate) fn fd_file(fd: i32) -> Option<OpenFile> {
    let file = fd_file_ptr(fd)?;
    let inode: u64 = kernel_read(file + config(config::OFF_FILE_INODE))?;
    let mode: u16 = kernel_read(inode + config(config::OFF_INODE_MODE))?;
    let file_type = mode & S_IFMT;
    if file_type != S_IFIFO && file_type != S_IFREG {
        return None;
    }
    let ino: u64 = kernel_read(inode + config(config::OFF_INODE_INO))?;
    let sb: u64 = kernel_read(inode + config(config::OFF_INODE_SB))?;
    let dev: u32 = kernel_read(sb + config(config::OFF_SB_DEV))?;
    let flags: u32 = kernel_read(file + config(config::OFF_FILE_FLAGS))?;
    Some(OpenFile {
        id: FileId { dev, _pad: 0, ino },
        file_type,
        flags,
    })
}
