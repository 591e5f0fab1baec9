//! Enforcement of governed agents' file policies (issue 17): at the exit of `open`, `openat`
//! and `openat2`, a successful open by a governed agent is judged by the file it produced,
//! read from the kernel's own objects (the returned fd through the task's file table to the
//! `struct file`, its inode and its dentry), never from the path the caller passed (a user
//! pointer another thread could rewrite, or a symlink). A governed sensitive file the policy
//! does not allow is reported; in enforce mode the process is killed there
//! (`bpf_send_signal(SIGKILL)`: delivered before the syscall returns to user space, so no
//! instruction of the caller sees the fd). kprobes and BPF-LSM, which could refuse the open
//! itself, are not available on the target kernels.
//!
//! Two rule maps, filled by the collector when enforcement begins (docs/enforcement.md):
//! `FILE_INODE_RULES` by (agent, device, inode) for an ordinary file, and `FILE_NAME_RULES` by
//! (agent, device, file name) for a file in a volume the kubelet writes atomically (the
//! service-account token): each rotation writes a new inode under the same name in the same
//! file system, and swaps the `..data` link to it; the name rule matches every generation,
//! whichever link or directory the open went through.

use agentscope_common::{
    config,
    enforce::{self, FILE_NAME_LEN, MAX_FILE_RULES, OFFSETS_COUNT, SIGKILL},
    kind, EnforceFileEvent, FileInodeRuleKey, FileNameRuleKey,
};
use aya_ebpf::{
    helpers::{bpf_probe_read_kernel_str_bytes, generated::bpf_send_signal},
    macros::{map, tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::TracePointContext,
};

use crate::emit::submit_value_urgent;
use crate::enforce::{governed_agent, AGENT_POLICIES};
use crate::fd_file::{fd_file_ptr, kernel_read};
use crate::task::{config, fill_header, tp_ret};

/// Governed files by inode → the rule's index in the collector's list.
#[map]
static FILE_INODE_RULES: HashMap<FileInodeRuleKey, u32> =
    HashMap::with_max_entries(MAX_FILE_RULES, 0);

/// Governed files of atomically written volumes by file system and name → the rule's index.
#[map]
static FILE_NAME_RULES: HashMap<FileNameRuleKey, u32> =
    HashMap::with_max_entries(MAX_FILE_RULES, 0);

/// Struct field offsets from the running kernel's BTF (`enforce::OFF_*`), written by the
/// collector. Shared with the exec check's interpreter arguments.
#[map]
pub(crate) static ENFORCE_OFFSETS: Array<u64> = Array::with_max_entries(OFFSETS_COUNT, 0);

#[map]
static FILE_NAME_SCRATCH: PerCpuArray<FileNameRuleKey> = PerCpuArray::with_max_entries(1, 0);

/// `O_PATH`: an fd that cannot read or write the file (reopening it goes through open again).
const O_PATH: u32 = 0o10000000;

#[inline(always)]
pub(crate) fn offset(index: u32) -> u64 {
    ENFORCE_OFFSETS.get(index).copied().unwrap_or(0)
}

#[tracepoint]
pub fn enforce_sys_exit_open(ctx: TracePointContext) -> u32 {
    judge_open(&ctx, enforce::FILE_SYSCALL_OPEN);
    0
}

#[tracepoint]
pub fn enforce_sys_exit_openat(ctx: TracePointContext) -> u32 {
    judge_open(&ctx, enforce::FILE_SYSCALL_OPENAT);
    0
}

#[tracepoint]
pub fn enforce_sys_exit_openat2(ctx: TracePointContext) -> u32 {
    judge_open(&ctx, enforce::FILE_SYSCALL_OPENAT2);
    0
}

#[inline(always)]
fn judge_open(ctx: &TracePointContext, syscall: u16) -> Option<()> {
    let fd = tp_ret(ctx);
    if fd < 0 {
        return None;
    }
    let agent = governed_agent()?;
    let policy = unsafe { AGENT_POLICIES.get(&agent) }?;
    let mode = policy.files;
    if mode == enforce::MODE_OFF {
        return None;
    }
    let revision = policy.revision;
    let file = fd_file_ptr(fd as i32)?;
    let flags: u32 = kernel_read(file + config(config::OFF_FILE_FLAGS))?;
    if flags & O_PATH != 0 {
        return None;
    }
    let inode: u64 = kernel_read(file + config(config::OFF_FILE_INODE))?;
    let ino: u64 = kernel_read(inode + config(config::OFF_INODE_INO))?;
    let sb: u64 = kernel_read(inode + config(config::OFF_INODE_SB))?;
    let dev: u32 = kernel_read(sb + config(config::OFF_SB_DEV))?;
    let by_inode = FileInodeRuleKey { agent, dev, ino };
    let rule = match unsafe { FILE_INODE_RULES.get(&by_inode) } {
        Some(rule) => *rule,
        None => {
            let dentry: u64 = kernel_read(file + offset(enforce::OFF_FILE_DENTRY))?;
            let name: u64 = kernel_read(dentry + offset(enforce::OFF_DENTRY_NAME))?;
            let key = FILE_NAME_SCRATCH.get_ptr_mut(0)?;
            // SAFETY: a per-CPU slot only this program uses while it runs on this CPU.
            let key = unsafe { &mut *key };
            key.agent = agent;
            key.dev = dev;
            // The whole key is hashed: the rest of the name must be zeros. Volatile stores,
            // so the compiler does not emit a `memset` the BPF target lacks.
            let words = key.name.as_mut_ptr() as *mut u64;
            for i in 0..FILE_NAME_LEN / 8 {
                // SAFETY: within `name` (FILE_NAME_LEN bytes, 8-byte aligned in the value).
                unsafe { core::ptr::write_volatile(words.add(i), 0) };
            }
            // A name longer than the key is cut here; the collector never inserts a name that
            // long, so a cut name cannot match another file's rule.
            unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, &mut key.name) }.ok()?;
            *unsafe { FILE_NAME_RULES.get(&*key) }?
        }
    };
    let enforcing = mode == enforce::MODE_ENFORCE;
    let mut event = EnforceFileEvent {
        header: unsafe { core::mem::zeroed() },
        agent,
        revision,
        action: if enforcing {
            enforce::ACTION_BLOCKED
        } else {
            enforce::ACTION_WOULD_BLOCK
        },
        syscall,
        fd: fd as i32,
        rule,
        dev,
        ino,
    };
    fill_header(
        &mut event.header,
        kind::ENFORCE_FILE,
        core::mem::size_of::<EnforceFileEvent>(),
    );
    submit_value_urgent(&event);
    if enforcing {
        // SAFETY: a helper call; it signals the current process, which has not returned
        // from the open yet.
        unsafe { bpf_send_signal(SIGKILL) };
    }
    Some(())
}
