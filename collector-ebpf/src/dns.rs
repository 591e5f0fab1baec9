//! DNS queries as sent: datagrams to port 53 through `sendto`/`write` (via
//! [`crate::socket_io`]), `sendmsg` (whose other messages are payloads for
//! [`crate::socket_io`]) and `sendmmsg` (glibc's resolver sends its A and AAAA
//! queries together with sendmmsg on a connected UDP socket). At most `DNS_LEN` bytes are kept.

use agentscope_common::{direction, kind, DnsEvent, DNS_LEN};
use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated::bpf_probe_read_user as raw_read_user},
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};

use crate::emit::submit;
use crate::maps::{SockKey, SOCKS};
use crate::sockets::read_sockaddr;
use crate::task::{current_ids, fill_header, tp_arg, traced};

pub(crate) const DNS_PORT: u16 = 53;

#[map]
static DNS_SCRATCH: PerCpuArray<DnsEvent> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn emit_dns(fd: i32, dport: u16, buf: u64, len: u64) {
    let Some(event) = DNS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut *event };
    fill_header(
        &mut event.header,
        kind::DNS,
        core::mem::size_of::<DnsEvent>(),
    );
    event.fd = fd;
    event.dport = dport;
    event.len = len as u32;
    let mut copy = len;
    if copy > DNS_LEN as u64 {
        copy = DNS_LEN as u64;
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
        submit(event as *const DnsEvent, core::mem::size_of::<DnsEvent>());
    }
}

/// DNS in a `struct msghdr` (sendmsg, and each message of sendmmsg): glibc's resolver sends
/// its A and AAAA queries together with sendmmsg on a connected UDP socket. Returns whether
/// the message goes to port 53 (and so is not a payload for [`crate::socket_io`]).
#[inline(always)]
fn dns_from_msghdr(tgid: u32, fd: i32, msg: u64) -> bool {
    // x86_64 struct msghdr: msg_name @0, msg_iov @16, msg_iovlen @24.
    let name: u64 = unsafe { bpf_probe_read_user(msg as *const u64) }.unwrap_or(0);
    let iov: u64 = unsafe { bpf_probe_read_user((msg + 16) as *const u64) }.unwrap_or(0);
    let iovlen: u64 = unsafe { bpf_probe_read_user((msg + 24) as *const u64) }.unwrap_or(0);
    if iov == 0 || iovlen == 0 {
        return false;
    }
    let dport = match read_sockaddr(name) {
        Some((_, port, _)) => port,
        None => unsafe { SOCKS.get(&SockKey { tgid, fd }) }
            .map(|s| s.dport)
            .unwrap_or(0),
    };
    if dport != DNS_PORT {
        return false;
    }
    // A DNS query fits one iovec; struct iovec { base @0, len @8 }.
    let base: u64 = unsafe { bpf_probe_read_user(iov as *const u64) }.unwrap_or(0);
    let len: u64 = unsafe { bpf_probe_read_user((iov + 8) as *const u64) }.unwrap_or(0);
    if base != 0 {
        emit_dns(fd, dport, base, len);
    }
    true
}

#[tracepoint]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    let fd = tp_arg::<i64>(&ctx, 0) as i32;
    let msg: u64 = tp_arg(&ctx, 1);
    if traced(tgid) && dns_from_msghdr(tgid, fd, msg) {
        return 0;
    }
    // Anything else is a payload, as for sendto.
    crate::socket_io::msg_enter(fd, msg, direction::EGRESS);
    0
}

/// Messages of one sendmmsg inspected for DNS (glibc sends two: A and AAAA).
const MMSG_DNS_MAX: u64 = 4;

#[tracepoint]
pub fn sys_enter_sendmmsg(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    if !traced(tgid) {
        return 0;
    }
    let fd = tp_arg::<i64>(&ctx, 0) as i32;
    let msgs: u64 = tp_arg(&ctx, 1);
    let count: u64 = tp_arg::<u64>(&ctx, 2);
    for i in 0..MMSG_DNS_MAX {
        if i >= count {
            break;
        }
        // struct mmsghdr { struct msghdr msg_hdr; unsigned msg_len; } is 64 bytes.
        let _ = dns_from_msghdr(tgid, fd, msgs + 64 * i);
    }
    0
}
