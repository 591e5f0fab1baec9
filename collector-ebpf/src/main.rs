//! agentscope's kernel programs.
//!
//! Only tracepoints, raw tracepoints, uprobes and cgroup socket-address hooks (enforcement): kprobes are not compiled into the kernels we
//! target and fentry/fexit/LSM loads are refused there. Syscall tracepoints stash their arguments
//! per thread on entry and emit one record on exit, when the result is known. Payloads (TLS
//! plaintext at the OpenSSL API and at Go's `crypto/tls`, plain socket reads and writes, JSON
//! over pipes) are split into `CHUNK_LEN` records; whatever cannot be delivered is counted,
//! never silently cut.
//!
//! One module per hook family; the programs and maps keep the names the collector looks them
//! up by (`#[map]` and the program macros export them unmangled, whatever the module).
#![no_std]
#![no_main]

// What every family builds on.
mod connection_sampling;
mod emit;
mod fd_file;
mod left_out;
mod maps;
mod payload_reserve;
mod payload_switch;
mod task;

// The hook families.
mod dns;
mod enforce;
mod enforce_dns;
mod enforce_exec;
mod enforce_file;
mod enforce_labels;
mod enforce_tree;
mod escape;
mod files;
mod go_tls;
mod output_tracking;
mod pipe_payload;
mod pipes;
mod process;
mod socket_io;
mod sockets;
mod stream_gaps;
mod tcp_state;
mod tls;
mod tls_hello;
mod tls_located;
mod tls_rustls;
mod unix_sockets;
mod vectored_io;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic path, so this is dead code.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
