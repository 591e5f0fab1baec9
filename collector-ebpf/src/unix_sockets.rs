//! The whole `sun_path` of a Unix socket connected or accepted by a traced process: the record
//! of [`crate::sockets`] keeps 16 address bytes, enough for an IP address and too few for
//! `/var/run/docker.sock` or `/run/containerd/containerd.sock`. A Unix socket's record is a
//! [`UnixSockAddrEvent`], the same record with the path after it; inet sockets' records do not
//! grow. Abstract names (a NUL first byte) are kept with the length the caller gave.

use agentscope_common::{SockAddrEvent, UnixSockAddrEvent, UNIX_PATH_LEN};
use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated::bpf_probe_read_user as raw_read_user},
    macros::map,
    maps::PerCpuArray,
};

use crate::emit::submit;

#[map]
static UNIX_ADDR_SCRATCH: PerCpuArray<UnixSockAddrEvent> = PerCpuArray::with_max_entries(1, 0);

/// `offsetof(struct sockaddr_un, sun_path)`.
const SUN_PATH_OFFSET: u64 = 2;

/// Emits `sock` with the path at `addr`. `addrlen` is the address length the caller passed
/// (connect) or the kernel wrote back (accept); negative when unknown.
#[inline(always)]
pub(crate) fn emit_unix(sock: &SockAddrEvent, addr: u64, addrlen: i64) {
    let Some(event) = UNIX_ADDR_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut *event };
    event.sock = *sock;
    event.sock.header.size = core::mem::size_of::<UnixSockAddrEvent>() as u32;
    event.path_len = 0;
    event.path[0] = 0;
    if addr != 0 {
        let read = unsafe {
            raw_read_user(
                event.path.as_mut_ptr() as *mut core::ffi::c_void,
                UNIX_PATH_LEN as u32,
                (addr + SUN_PATH_OFFSET) as *const core::ffi::c_void,
            )
        };
        if read != 0 {
            // Shorter than the whole sun_path (a short sockaddr at the end of a page): the
            // 16 bytes already in `sock` are what there is.
            event.path_len = 0;
        } else if event.path[0] == 0 {
            let mut len = addrlen - SUN_PATH_OFFSET as i64;
            if len < 0 {
                len = 0;
            }
            if len > UNIX_PATH_LEN as i64 {
                len = UNIX_PATH_LEN as i64;
            }
            event.path_len = len as u32;
        } else {
            let mut len = UNIX_PATH_LEN as u32;
            let mut i = 0usize;
            while i < UNIX_PATH_LEN {
                if event.path[i] == 0 {
                    len = i as u32;
                    break;
                }
                i += 1;
            }
            event.path_len = len;
        }
    }
    submit(
        event as *const UnixSockAddrEvent,
        core::mem::size_of::<UnixSockAddrEvent>(),
    );
}

/// The address length an accept wrote back at `addrlen_ptr`.
#[inline(always)]
pub(crate) fn written_addrlen(addrlen_ptr: u64) -> i64 {
    if addrlen_ptr == 0 {
        return -1;
    }
    unsafe { bpf_probe_read_user(addrlen_ptr as *const u32) }
        .map(|n| n as i64)
        .unwrap_or(-1)
}
