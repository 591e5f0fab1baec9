//! The first bytes of a socket that starts with a TLS handshake record (`16 03`), emitted once
//! per connection ([`crate::socket_io`] calls this where it marks the socket TLS). Whether or
//! not the process's plaintext is captured at a TLS library, its server name and ALPN are then
//! known, so a process whose TLS stack agentscope cannot read is reported, never invisible.
//! At most `TLS_HELLO_LEN` bytes are kept; userspace parses them.

use agentscope_common::{kind, tls_hello_flags, TlsHelloEvent, TLS_HELLO_LEN};
use aya_ebpf::{
    helpers::generated::bpf_probe_read_user as raw_read_user, macros::map, maps::PerCpuArray,
};

use crate::emit::submit;
use crate::task::fill_header;

/// A 2 KiB record does not fit the 512-byte BPF stack: it is built here.
#[map]
static TLS_HELLO_SCRATCH: PerCpuArray<TlsHelloEvent> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn emit_tls_hello(fd: i32, dport: u16, buf: u64, len: u64) {
    let Some(event) = TLS_HELLO_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut *event };
    fill_header(
        &mut event.header,
        kind::TLS_HELLO,
        core::mem::size_of::<TlsHelloEvent>(),
    );
    event.fd = fd;
    event.dport = dport;
    event.flags = if crate::tls_located::in_located_handshake() {
        tls_hello_flags::IN_LOCATED_HANDSHAKE
    } else {
        0
    };
    event.len = len as u32;
    let mut copy = len;
    if copy > TLS_HELLO_LEN as u64 {
        copy = TLS_HELLO_LEN as u64;
    }
    if copy == 0 {
        return;
    }
    let read = unsafe {
        raw_read_user(
            event.data.as_mut_ptr() as *mut core::ffi::c_void,
            copy as u32,
            buf as *const core::ffi::c_void,
        )
    };
    if read == 0 {
        // As for DNS: the record has a fixed size and `len` says how much of `data` is this
        // hello's (userspace reads no further).
        submit(
            event as *const TlsHelloEvent,
            core::mem::size_of::<TlsHelloEvent>(),
        );
    }
}
