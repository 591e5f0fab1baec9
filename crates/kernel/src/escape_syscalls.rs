//! The container-escape syscall tracepoints (`collector-ebpf/src/escape.rs`): entry and exit
//! of `setns`, `unshare`, `mount`, `chroot`, `pivot_root`, `init_module`, `finit_module` and
//! `ptrace`, attached with the others. None is required: a kernel without one of them (or a
//! syscall an architecture lacks) loses that observation only, with a warning, except the
//! module-loading ones on a kernel built without module support (see [`absence_is_a_blind_spot`]).

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

/// Whether tracepoint `name` being absent hides something. On a kernel built without module
/// support (`CONFIG_MODULES=n`: no /proc/modules) `init_module` and `finit_module` do not exist
/// (the calls fail with ENOSYS) and neither do their tracepoints: no module can be loaded, so
/// there is nothing to watch and nothing to warn about.
pub(crate) fn absence_is_a_blind_spot(name: &str, proc_modules_exists: bool) -> bool {
    !name.ends_with("init_module") || proc_modules_exists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_tracepoints_are_missed_only_where_modules_can_be_loaded() {
        assert!(!absence_is_a_blind_spot("sys_enter_finit_module", false));
        assert!(!absence_is_a_blind_spot("sys_exit_init_module", false));
        assert!(absence_is_a_blind_spot("sys_enter_init_module", true));
        assert!(absence_is_a_blind_spot("sys_enter_setns", false));
    }
}
