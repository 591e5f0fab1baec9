//! Enforcement of governed agents' network policies (issue 17): cgroup v2 socket-address hooks
//! on `connect` (TCP, and UDP's connect) and on `sendmsg`/`sendto` of unconnected UDP, for
//! IPv4 and IPv6. They are attached once, at the cgroup v2 root, so they run on every socket
//! of the node: the first thing each does is look the caller up (its cgroup id in
//! `GOVERNED_CGROUPS`, then its tgid in `GOVERNED_TGIDS`, which `task_newtask` extends to the
//! children of a governed process) and allow at once when it is not a governed agent, or when
//! the agent's network mode is off.
//!
//! A governed destination is allowed when `NET_ALLOW` (an LPM trie keyed by agent, port,
//! protocol and address prefix) holds it with its port or with port 0 (any port). IPv4-mapped
//! IPv6 destinations (`::ffff:a.b.c.d`) are looked up and reported as IPv4, so a dual-stack
//! socket cannot reach what an IPv4 one may not. Anything else is reported in an
//! [`EnforceEvent`]: "would block" in audit mode (and allowed), "blocked" in enforce mode
//! (denied: the syscall fails with `EPERM`).

use agentscope_common::{
    enforce::{self, MAX_AGENTS, MAX_GOVERNED_TGIDS, MAX_NET_RULES, NET_KEY_FIXED_BITS},
    kind, AgentPolicy, EnforceEvent, NetAllowKey,
};
use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid},
    macros::{cgroup_sock_addr, map},
    maps::{lpm_trie::Key, HashMap, LpmTrie},
    programs::SockAddrContext,
};

use crate::emit::submit_value_urgent;
use crate::task::fill_header;

/// Cgroup v2 id (a container's cgroup) → agent id.
#[map]
pub(crate) static GOVERNED_CGROUPS: HashMap<u64, u32> = HashMap::with_max_entries(MAX_AGENTS, 0);

/// tgid → agent id, for agents governed as a process tree (host processes); `task_newtask`
/// adds each child of a governed process, `sched_process_exit` removes it.
#[map]
pub(crate) static GOVERNED_TGIDS: HashMap<u32, u32> =
    HashMap::with_max_entries(MAX_GOVERNED_TGIDS, 0);

/// Agent id → its modes and revision.
#[map]
pub(crate) static AGENT_POLICIES: HashMap<u32, AgentPolicy> =
    HashMap::with_max_entries(MAX_AGENTS, 0);

/// What governed agents may reach (see [`NetAllowKey`]).
#[map]
static NET_ALLOW: LpmTrie<NetAllowKey, u8> = LpmTrie::with_max_entries(MAX_NET_RULES, 0);

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
/// What the hook returns to let the call go on; 0 makes it fail with `EPERM`.
const ALLOW: i32 = 1;
const DENY: i32 = 0;

/// The governed agent the current task belongs to.
#[inline(always)]
pub(crate) fn governed_agent() -> Option<u32> {
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    if let Some(agent) = unsafe { GOVERNED_CGROUPS.get(&cgroup) } {
        return Some(*agent);
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    unsafe { GOVERNED_TGIDS.get(&tgid) }.copied()
}

#[cgroup_sock_addr(connect4)]
pub fn enforce_connect4(ctx: SockAddrContext) -> i32 {
    decide::<false>(&ctx, enforce::HOOK_CONNECT4)
}

#[cgroup_sock_addr(connect6)]
pub fn enforce_connect6(ctx: SockAddrContext) -> i32 {
    decide::<true>(&ctx, enforce::HOOK_CONNECT6)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn enforce_sendmsg4(ctx: SockAddrContext) -> i32 {
    decide::<false>(&ctx, enforce::HOOK_SENDMSG4)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn enforce_sendmsg6(ctx: SockAddrContext) -> i32 {
    decide::<true>(&ctx, enforce::HOOK_SENDMSG6)
}

#[inline(always)]
fn allowed(agent: u32, port: u16, protocol: u8, addr: [u8; 16]) -> bool {
    let mut key = Key::new(
        NET_KEY_FIXED_BITS + 128,
        NetAllowKey {
            agent,
            port,
            protocol,
            _pad: 0,
            addr,
        },
    );
    if NET_ALLOW.get(&key).is_some() {
        return true;
    }
    key.data.port = 0;
    NET_ALLOW.get(&key).is_some()
}

/// `V6`: the program is attached to an IPv6 hook. The verifier lets each hook read only its
/// own family's address field, so which one is read is decided at compile time.
#[inline(always)]
fn decide<const V6: bool>(ctx: &SockAddrContext, hook: u16) -> i32 {
    let Some(agent) = governed_agent() else {
        return ALLOW;
    };
    let Some(policy) = (unsafe { AGENT_POLICIES.get(&agent) }) else {
        return ALLOW;
    };
    let mode = policy.network;
    if mode == enforce::MODE_OFF {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
    // Context fields are read whole (the verifier rewrites these loads).
    let (user_family, protocol, raw_port) =
        unsafe { ((*sa).user_family, (*sa).protocol, (*sa).user_port) };
    // `user_port` holds the port in network byte order in its low 16 bits.
    let port = u16::from_be(raw_port as u16);
    let mut addr = [0u8; 16];
    let mut family = user_family as u16;
    if !V6 && user_family == AF_INET {
        let ip4 = unsafe { (*sa).user_ip4 };
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12..16].copy_from_slice(&ip4.to_ne_bytes());
    } else if V6 && user_family == AF_INET6 {
        let words = unsafe {
            [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ]
        };
        addr[0..4].copy_from_slice(&words[0].to_ne_bytes());
        addr[4..8].copy_from_slice(&words[1].to_ne_bytes());
        addr[8..12].copy_from_slice(&words[2].to_ne_bytes());
        addr[12..16].copy_from_slice(&words[3].to_ne_bytes());
        if words[0] == 0 && words[1] == 0 && words[2] == u32::to_be(0xffff) {
            family = AF_INET as u16;
        }
    } else {
        return ALLOW;
    }
    // An address an answer to one of the policy's DNS names gave the agent (enforce_dns.rs).
    if allowed(agent, port, protocol as u8, addr) || crate::enforce_dns::dns_allowed(agent, addr) {
        return ALLOW;
    }
    let enforcing = mode == enforce::MODE_ENFORCE;
    let mut event = EnforceEvent {
        header: unsafe { core::mem::zeroed() },
        agent,
        revision: policy.revision,
        category: enforce::CATEGORY_NETWORK,
        action: if enforcing {
            enforce::ACTION_BLOCKED
        } else {
            enforce::ACTION_WOULD_BLOCK
        },
        hook,
        protocol: protocol as u16,
        family,
        port,
        _pad: 0,
        addr: [0; 16],
    };
    if family == AF_INET as u16 {
        event.addr[0..4].copy_from_slice(&addr[12..16]);
    } else {
        event.addr = addr;
    }
    fill_header(
        &mut event.header,
        kind::ENFORCE,
        core::mem::size_of::<EnforceEvent>(),
    );
    submit_value_urgent(&event);
    if enforcing {
        DENY
    } else {
        ALLOW
    }
}
