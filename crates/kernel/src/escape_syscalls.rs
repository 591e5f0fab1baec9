//! The container-escape syscall tracepoints (`collector-ebpf/src/escape.rs`): entry and exit
//! of `setns`, `unshare`, `mount`, `chroot`, `pivot_root`, `init_module`, `finit_module` and
//! `ptrace`, attached with the others. None is required: a kernel without one of them (or a
//! syscall an architecture lacks) loses that observation only, with a warning.

/// (program, tracepoint category, tracepoint, required), as `kernel.rs` lists its own.
pub(crate) const TRACEPOINTS: &[(&str, &str, &str, bool)] = &[
    ("sys_enter_setns", "syscalls", "sys_enter_setns", false),
    ("sys_exit_setns", "syscalls", "sys_exit_setns", false),
    ("sys_enter_unshare", "syscalls", "sys_enter_unshare", false),
    ("sys_exit_unshare", "syscalls", "sys_exit_unshare", false),
    ("sys_enter_mount", "syscalls", "sys_enter_mount", false),
    ("sys_exit_mount", "syscalls", "sys_exit_mount", false),
    ("sys_enter_chroot", "syscalls", "sys_enter_chroot", false),
    ("sys_exit_chroot", "syscalls", "sys_exit_chroot", false),
    (
        "sys_enter_pivot_root",
        "syscalls",
        "sys_enter_pivot_root",
        false,
    ),
    (
        "sys_exit_pivot_root",
        "syscalls",
        "sys_exit_pivot_root",
        false,
    ),
    (
        "sys_enter_init_module",
        "syscalls",
        "sys_enter_init_module",
        false,
    ),
    (
        "sys_exit_init_module",
        "syscalls",
        "sys_exit_init_module",
        false,
    ),
    (
        "sys_enter_finit_module",
        "syscalls",
        "sys_enter_finit_module",
        false,
    ),
    (
        "sys_exit_finit_module",
        "syscalls",
        "sys_exit_finit_module",
        false,
    ),
    ("sys_enter_ptrace", "syscalls", "sys_enter_ptrace", false),
    ("sys_exit_ptrace", "syscalls", "sys_exit_ptrace", false),
];
