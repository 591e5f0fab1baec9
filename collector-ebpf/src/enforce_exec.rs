//! Enforcement of governed agents' exec policies (issue 17): `sched_process_exec` fires in
//! the new image's task after the exec has succeeded and before it returns to user space, so
//! a `SIGKILL` sent there (`bpf_send_signal`) ends the process before one instruction of the
//! new program runs (kprobes and BPF-LSM, which could refuse the exec itself, are not
//! available on the target kernels; this is Tetragon's Sigkill approach). The executable is
//! the path the exec was given (the tracepoint's `filename`, from the kernel's own copy),
//! looked up in `EXEC_ALLOW` with the agent's id; a script is judged by its own path.
//! Ungoverned processes return at once (the same lookups as `enforce.rs`).

use agentscope_common::{
    enforce::{self, MAX_EXEC_RULES, SIGKILL},
    kind, EnforceExecEvent, ExecAllowKey, PATH_LEN,
};
use aya_ebpf::{
    helpers::{bpf_probe_read_kernel_str_bytes, generated::bpf_send_signal},
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::TracePointContext,
    EbpfContext as _,
};

use crate::emit::submit_value;
use crate::enforce::{governed_agent, AGENT_POLICIES};
use crate::task::fill_header;

/// (agent, executable path) pairs the policies allow.
#[map]
static EXEC_ALLOW: HashMap<ExecAllowKey, u8> = HashMap::with_max_entries(MAX_EXEC_RULES, 0);

/// The lookup key and the event do not fit the 512-byte stack together.
#[map]
static EXEC_KEY_SCRATCH: PerCpuArray<ExecAllowKey> = PerCpuArray::with_max_entries(1, 0);
#[map]
static EXEC_EVENT_SCRATCH: PerCpuArray<EnforceExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Offset of the `__data_loc char[] filename` field in the tracepoint's record.
const FILENAME_LOC: usize = 8;

#[tracepoint]
pub fn enforce_sched_process_exec(ctx: TracePointContext) -> u32 {
    let Some(agent) = governed_agent() else {
        return 0;
    };
    let Some(policy) = (unsafe { AGENT_POLICIES.get(&agent) }) else {
        return 0;
    };
    let mode = policy.exec;
    if mode == enforce::MODE_OFF {
        return 0;
    }
    let revision = policy.revision;
    let Some(key) = EXEC_KEY_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a per-CPU slot only this program uses while it runs on this CPU.
    let key = unsafe { &mut *key };
    key.agent = agent;
    key._pad = 0;
    // The rest of the path must be zeros: the whole key is hashed. Volatile stores, so the
    // compiler does not turn the loop into a `memset` call the BPF target lacks.
    let words = key.path.as_mut_ptr() as *mut u64;
    for i in 0..PATH_LEN / 8 {
        // SAFETY: within `path`, which is PATH_LEN bytes; map values are 8-byte aligned and
        // `path` starts 8 bytes in.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
    let loc: u32 = unsafe { ctx.read_at::<u32>(FILENAME_LOC) }.unwrap_or(0);
    let offset = (loc & 0xffff) as usize;
    let source = (ctx.as_ptr() as *const u8).wrapping_add(offset);
    let len = match unsafe { bpf_probe_read_kernel_str_bytes(source, &mut key.path) } {
        Ok(bytes) => bytes.len(),
        Err(_) => return 0,
    };
    if unsafe { EXEC_ALLOW.get(&*key) }.is_some() {
        return 0;
    }
    let enforcing = mode == enforce::MODE_ENFORCE;
    if let Some(event) = EXEC_EVENT_SCRATCH.get_ptr_mut(0) {
        // SAFETY: as the key's slot.
        let event = unsafe { &mut *event };
        fill_header(
            &mut event.header,
            kind::ENFORCE_EXEC,
            core::mem::size_of::<EnforceExecEvent>(),
        );
        event.agent = agent;
        event.revision = revision;
        event.action = if enforcing {
            enforce::ACTION_BLOCKED
        } else {
            enforce::ACTION_WOULD_BLOCK
        };
        event._pad = 0;
        event.path_len = len as u32;
        let (from, to) = (
            key.path.as_ptr() as *const u64,
            event.path.as_mut_ptr() as *mut u64,
        );
        for i in 0..PATH_LEN / 8 {
            // SAFETY: both are PATH_LEN bytes, 8-byte aligned in their map values.
            unsafe { core::ptr::write_volatile(to.add(i), core::ptr::read_volatile(from.add(i))) };
        }
        submit_value(event);
    }
    if enforcing {
        // SAFETY: a helper call; it signals the current task (the new image).
        unsafe { bpf_send_signal(SIGKILL) };
    }
    0
}
