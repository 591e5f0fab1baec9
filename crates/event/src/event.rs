//! Decoding of ring-buffer records into [`Event`], the collector's stable event type.
//!
//! Records come from the kernel, but a decoder must still treat them as untrusted bytes: a
//! short, oversized or unknown record is reported as a [`DecodeError`], never a panic. Every
//! record is read the same way: the struct `agentscope_common` declares for its kind, copied
//! out of the bytes the header declares with zerocopy's `FromBytes` (no field offsets written
//! here). The JSON field names of [`Event`] are a public interface (documented in
//! docs/events.md).

use agentscope_common as raw;
use base64::Engine as _;
use raw::zerocopy::FromBytes;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need}-byte {what}")]
    Truncated {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("record kind {0} is unknown (collector and kernel programs from different builds?)")]
    UnknownKind(u32),
    #[error("record says it holds {declared} bytes but {what} allows at most {max}")]
    BadLength {
        what: &'static str,
        declared: usize,
        max: usize,
    },
}

/// Fields every event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    /// Nanoseconds since boot (monotonic, suspend included): orders events.
    pub ts_ns: u64,
    /// Wall-clock time, nanoseconds since the Unix epoch (boot time + `ts_ns`).
    pub time_unix_ns: u64,
    pub pid: u32,
    pub tid: u32,
    /// Parent pid from the process table (0 when unknown).
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub comm: Comm,
}

/// A task's command name: the kernel keeps at most 15 bytes (`TASK_COMM_LEN`), so it is
/// held inline (up to 24 bytes) and copied, never allocated, as every event and every
/// observation taken from one carries it.
pub type Comm = compact_str::CompactString;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    #[serde(flatten)]
    pub header: Header,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadSource {
    Tls,
    Socket,
    Pipe,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Egress,
    Ingress,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    Exec {
        filename: String,
        argv: Vec<String>,
        argv_truncated: bool,
        filename_truncated: bool,
    },
    Fork {
        child_pid: u32,
        clone_flags: u64,
    },
    Exit {
        /// Status given to exit()/exit_group(); `None` when the process ended another way.
        exit_code: Option<i32>,
    },
    Open {
        syscall: &'static str,
        path: String,
        path_truncated: bool,
        dfd: i32,
        flags: i32,
        mode: u32,
        /// The new fd, or -errno.
        ret: i32,
    },
    Connect {
        fd: i32,
        family: &'static str,
        addr: String,
        port: u16,
        /// 0 or -errno (-115, EINPROGRESS, for non-blocking sockets).
        ret: i32,
        /// The kernel sampled this connection out (`--sample-connections`): none of its
        /// payloads will follow; their bytes are counted in `PayloadsLeftOut`. Written only
        /// when true.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        payloads_sampled_out: bool,
    },
    Accept {
        listen_fd: i32,
        family: &'static str,
        addr: String,
        port: u16,
        /// The new fd, or -errno.
        ret: i32,
        /// As for `Connect`: the accepted connection's payloads are not copied.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        payloads_sampled_out: bool,
    },
    TcpState {
        skaddr: u64,
        family: &'static str,
        saddr: String,
        sport: u16,
        daddr: String,
        dport: u16,
        old_state: &'static str,
        new_state: &'static str,
    },
    Dns {
        fd: i32,
        dport: u16,
        /// Query names parsed from the datagram (empty when it does not parse).
        queries: Vec<String>,
        len: u32,
        #[serde(serialize_with = "as_base64")]
        data: Vec<u8>,
    },
    Data {
        source: PayloadSource,
        direction: Direction,
        fd: i32,
        conn_id: u64,
        call_id: u64,
        seq: u32,
        offset: u64,
        total_len: u64,
        lost_bytes: u64,
        last: bool,
        #[serde(serialize_with = "as_base64", rename = "data_b64")]
        data: Vec<u8>,
    },
    Close {
        fd: i32,
    },
    /// A socket's first write was a TLS ClientHello (once per connection).
    TlsHello {
        fd: i32,
        /// Destination port (0 when unknown).
        dport: u16,
        /// Bytes the write carried; `data` holds at most `TLS_HELLO_LEN` of them.
        len: u32,
        /// The server name (SNI) asked for, lowercased.
        #[serde(skip_serializing_if = "Option::is_none")]
        server_name: Option<String>,
        /// ALPN protocols offered.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        alpn: Vec<String>,
        /// Whether the process's plaintext is seen, filled by the collector from what it
        /// found in the process's binaries (`None` straight out of the decoder).
        #[serde(skip_serializing_if = "Option::is_none")]
        coverage: Option<crate::tls_coverage::TlsCoverage>,
        #[serde(serialize_with = "as_base64", rename = "data_b64")]
        data: Vec<u8>,
    },
    /// A governed agent did something its policy does not allow (audit or enforce mode).
    /// Boxed: a decision is rare, and its fields would make every event larger.
    Enforce(Box<crate::enforcement::EnforceDecision>),
    /// A package the process loaded, its version read from its metadata by the collector
    /// (not a kernel record: see [`crate::package`]). Boxed like `Enforce`: rare.
    Package(Box<crate::package::PackageFound>),
    /// A container-escape syscall (namespaces, mounts, root changes, kernel modules, ptrace
    /// attach). Boxed, like `Enforce`: rare.
    EscapeSyscall(Box<crate::escape_syscall::EscapeSyscall>),
    /// Not a kernel record: the collector found that the open just before (same process) wrote
    /// under a host directory mounted into the process's container (its mount table, read
    /// from /proc; see the kernel crate's `host_mounts`).
    HostPathWrite {
        /// The fd the open returned.
        fd: i32,
        /// The path as the process opened it.
        path: String,
        /// Where the host directory is mounted in the container.
        mount_point: String,
        /// The file's path on the host's file system.
        host_path: String,
    },
    /// Not a kernel record: what the kernel left out of the process's payloads (bytes it moved
    /// that were counted, not copied), read by the collector from the kernel's per-process
    /// counts when the process exits, or when capture stops while it still runs. Counts since
    /// capture started; a later report of the same process replaces an earlier one.
    PayloadsLeftOut {
        /// Bytes of plain sockets found to carry no protocol agentscope reads.
        opaque_socket_bytes: u64,
        /// Bytes left out on request (`--no-payloads-of`, and the children it covers).
        on_request_bytes: u64,
        /// Bytes of its connections sampled out (`--sample-connections`).
        sampled_out_bytes: u64,
        /// The process was still running when capture stopped (it had not exited).
        running: bool,
    },
    /// A governed agent's policy as the kernel applies it, reported by the collector when
    /// enforcement starts, is adopted, changes or is removed (no process did anything).
    EnforcePolicy(Box<crate::enforcement::EnforcePolicy>),
    /// The Kubernetes objects that declare what workloads may do (RBAC, NetworkPolicies, pod
    /// specs), read from the API by the collector at start and when they change, redacted
    /// (no process did anything). Boxed: rare and large.
    ClusterObjects(Box<crate::cluster_objects::ClusterObjects>),
}

fn as_base64<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Kinds the collector makes itself, never read from the kernel's ring buffer: a package it
/// read through a process's root, a write it found under a host path, the policy it applies,
/// the cluster's declared objects it read from the API, the bytes the kernel left out of a
/// process. Counts of records read from the kernel leave them out.
pub const COLLECTOR_MADE_KINDS: [&str; 5] = [
    "package",
    "host_path_write",
    "enforce_policy",
    "cluster_objects",
    "payloads_left_out",
];

impl EventBody {
    /// The payload of one whole call in one record: `data` is everything the call moved,
    /// nothing lost (what a call of at most one chunk's size gives).
    pub fn whole_call(
        source: PayloadSource,
        direction: Direction,
        fd: i32,
        conn_id: u64,
        call_id: u64,
        data: Vec<u8>,
    ) -> EventBody {
        EventBody::Data {
            source,
            direction,
            fd,
            conn_id,
            call_id,
            seq: 0,
            offset: 0,
            total_len: data.len() as u64,
            lost_bytes: 0,
            last: true,
            data,
        }
    }

    /// The `kind` name used in JSON and in summaries.
    pub fn kind_name(&self) -> &'static str {
        match self {
            EventBody::Exec { .. } => "exec",
            EventBody::Fork { .. } => "fork",
            EventBody::Exit { .. } => "exit",
            EventBody::Open { .. } => "open",
            EventBody::Connect { .. } => "connect",
            EventBody::Accept { .. } => "accept",
            EventBody::TcpState { .. } => "tcp_state",
            EventBody::Dns { .. } => "dns",
            EventBody::Data { .. } => "data",
            EventBody::Close { .. } => "close",
            EventBody::TlsHello { .. } => "tls_hello",
            EventBody::Enforce(_) => "enforce",
            EventBody::Package(_) => "package",
            EventBody::EscapeSyscall(_) => "escape_syscall",
            EventBody::HostPathWrite { .. } => "host_path_write",
            EventBody::EnforcePolicy(_) => "enforce_policy",
            EventBody::ClusterObjects(_) => "cluster_objects",
            EventBody::PayloadsLeftOut { .. } => "payloads_left_out",
        }
    }
}

/// Copies a `T` out of the front of `record` (the ring buffer gives no alignment guarantee).
fn read_record<T: FromBytes>(record: &[u8], what: &'static str) -> Result<T, DecodeError> {
    T::read_from_prefix(record)
        .map(|(value, _rest)| value)
        .map_err(|_| DecodeError::Truncated {
            what,
            len: record.len(),
            need: std::mem::size_of::<T>(),
        })
}

/// A task's command name from the kernel's NUL-padded bytes, without allocating.
pub fn comm_of(bytes: &[u8]) -> Comm {
    Comm::from_utf8_lossy(until_nul(bytes))
}

pub fn c_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(until_nul(bytes)).into_owned()
}

/// The bytes of a NUL-terminated (or NUL-padded) field before its first NUL.
fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

fn family_name(family: u16) -> &'static str {
    match family as i32 {
        libc::AF_INET => "inet",
        libc::AF_INET6 => "inet6",
        libc::AF_UNIX => "unix",
        0 => "none",
        _ => "other",
    }
}

fn format_addr(family: u16, addr: &[u8; 16]) -> String {
    match family as i32 {
        libc::AF_INET => std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
        libc::AF_INET6 => std::net::Ipv6Addr::from(*addr).to_string(),
        libc::AF_UNIX => c_string(addr),
        _ => String::new(),
    }
}

/// A Unix socket's name: the path, or an abstract name as `@name` (its NUL bytes shown as
/// `@` too, as `ss` and `/proc/net/unix` do).
fn unix_path(path: &[u8], len: u32) -> String {
    let len = (len as usize).min(path.len());
    match path.first() {
        Some(0) => path[..len]
            .iter()
            .map(|&b| if b == 0 { '@' } else { b as char })
            .collect::<String>()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
        _ => String::from_utf8_lossy(&path[..len]).into_owned(),
    }
}

fn tcp_state_name(state: i32) -> &'static str {
    // include/net/tcp_states.h
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

/// Decodes one ring-buffer record. `boot_time_ns` converts boot-relative timestamps to wall
/// clock. `ppid` is left 0; the collector fills it from its process table.
pub fn decode(bytes: &[u8], boot_time_ns: u64) -> Result<Event, DecodeError> {
    let h: raw::EventHeader = read_record(bytes, "event header")?;
    let declared = h.size as usize;
    if declared > bytes.len() {
        return Err(DecodeError::Truncated {
            what: "declared record",
            len: bytes.len(),
            need: declared,
        });
    }
    // Only the bytes the header declares belong to the record: a record that declares fewer
    // than its kind's struct is damaged, and nothing is read past what it declares.
    let record = &bytes[..declared];
    let header = Header {
        ts_ns: h.ts_ns,
        time_unix_ns: boot_time_ns.saturating_add(h.ts_ns),
        pid: h.pid,
        tid: h.tid,
        ppid: 0,
        uid: h.uid,
        gid: h.gid,
        cgroup_id: h.cgroup_id,
        comm: comm_of(&h.comm),
    };
    let body = match h.kind {
        raw::kind::EXEC => {
            let e: raw::ExecEvent = read_record(record, "exec record")?;
            let used = (e.argv_len as usize).min(raw::ARGV_LEN);
            let argv = e.argv[..used]
                .split(|&b| b == 0)
                .take(e.argc as usize)
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect();
            EventBody::Exec {
                filename: c_string(&e.filename),
                argv,
                argv_truncated: e.flags & raw::exec_flags::ARGV_TRUNCATED != 0,
                filename_truncated: e.flags & raw::exec_flags::FILENAME_TRUNCATED != 0,
            }
        }
        raw::kind::FORK => {
            let e: raw::ForkEvent = read_record(record, "fork record")?;
            EventBody::Fork {
                child_pid: e.child_pid,
                clone_flags: e.clone_flags,
            }
        }
        raw::kind::EXIT => {
            let e: raw::ExitEvent = read_record(record, "exit record")?;
            let known = e.flags & raw::exit_flags::CODE_KNOWN != 0;
            EventBody::Exit {
                exit_code: known.then_some(e.exit_code),
            }
        }
        raw::kind::OPEN => {
            let e: raw::OpenEvent = read_record(record, "open record")?;
            let len = (e.path_len as usize).min(raw::PATH_LEN);
            EventBody::Open {
                syscall: match e.syscall {
                    raw::open_syscall::OPEN => "open",
                    raw::open_syscall::OPENAT => "openat",
                    raw::open_syscall::OPENAT2 => "openat2",
                    _ => "unknown",
                },
                path: c_string(&e.path[..len]),
                path_truncated: e.path_len as usize >= raw::PATH_LEN,
                dfd: e.dfd,
                flags: e.flags,
                mode: e.mode,
                ret: e.ret,
            }
        }
        raw::kind::CONNECT | raw::kind::ACCEPT => {
            let e: raw::SockAddrEvent = read_record(record, "socket address record")?;
            let family = family_name(e.family);
            let addr = match e.family as i32 {
                // A Unix socket's record carries its whole path after the address (records
                // of older collectors do not: their 16 bytes are all there is).
                libc::AF_UNIX if declared >= std::mem::size_of::<raw::UnixSockAddrEvent>() => {
                    let u: raw::UnixSockAddrEvent = read_record(record, "unix address record")?;
                    unix_path(&u.path, u.path_len)
                }
                _ => format_addr(e.family, &e.addr),
            };
            let payloads_sampled_out = e.flags & raw::sock_flags::PAYLOADS_SAMPLED_OUT != 0;
            if h.kind == raw::kind::CONNECT {
                EventBody::Connect {
                    fd: e.fd,
                    family,
                    addr,
                    port: e.port,
                    ret: e.ret,
                    payloads_sampled_out,
                }
            } else {
                EventBody::Accept {
                    listen_fd: e.fd,
                    family,
                    addr,
                    port: e.port,
                    ret: e.ret,
                    payloads_sampled_out,
                }
            }
        }
        raw::kind::TCP_STATE => {
            let e: raw::TcpStateEvent = read_record(record, "tcp state record")?;
            EventBody::TcpState {
                skaddr: e.skaddr,
                family: family_name(e.family),
                saddr: format_addr(e.family, &e.saddr),
                sport: e.sport,
                daddr: format_addr(e.family, &e.daddr),
                dport: e.dport,
                old_state: tcp_state_name(e.oldstate),
                new_state: tcp_state_name(e.newstate),
            }
        }
        raw::kind::DNS => {
            let e: raw::DnsEvent = read_record(record, "dns record")?;
            let kept = (e.len as usize).min(raw::DNS_LEN);
            let data = e.data[..kept].to_vec();
            EventBody::Dns {
                fd: e.fd,
                dport: e.dport,
                queries: crate::dns::query_names(&data),
                len: e.len,
                data,
            }
        }
        raw::kind::DATA => {
            let e: raw::DataPrefix = read_record(record, "data record prefix")?;
            let data_len = e.data_len as usize;
            if data_len > raw::CHUNK_LEN {
                return Err(DecodeError::BadLength {
                    what: "a data chunk",
                    declared: data_len,
                    max: raw::CHUNK_LEN,
                });
            }
            let need = raw::DATA_PREFIX_LEN + data_len;
            let Some(data) = record.get(raw::DATA_PREFIX_LEN..need) else {
                return Err(DecodeError::Truncated {
                    what: "data record payload",
                    len: record.len(),
                    need,
                });
            };
            EventBody::Data {
                source: match e.source {
                    // Go's crypto/tls and rustls: the same TLS streams, keyed by the
                    // `*tls.Conn` and by rustls's socket.
                    raw::source::TLS_OPENSSL | raw::source::TLS_GO | raw::source::TLS_RUSTLS => {
                        PayloadSource::Tls
                    }
                    raw::source::SOCKET => PayloadSource::Socket,
                    raw::source::PIPE => PayloadSource::Pipe,
                    _ => PayloadSource::Unknown,
                },
                direction: match e.direction {
                    raw::direction::EGRESS => Direction::Egress,
                    raw::direction::INGRESS => Direction::Ingress,
                    _ => Direction::Unknown,
                },
                fd: e.fd,
                conn_id: e.conn_id,
                call_id: e.call_id,
                seq: e.seq,
                offset: e.offset,
                total_len: e.total_len,
                lost_bytes: e.lost_bytes,
                last: e.flags & raw::data_flags::LAST != 0,
                data: data.to_vec(),
            }
        }
        raw::kind::CLOSE => {
            let e: raw::CloseEvent = read_record(record, "close record")?;
            EventBody::Close { fd: e.fd }
        }
        raw::kind::TLS_HELLO => {
            let e: raw::TlsHelloEvent = read_record(record, "tls hello record")?;
            let kept = (e.len as usize).min(raw::TLS_HELLO_LEN);
            let data = e.data[..kept].to_vec();
            let hello = crate::tls_hello::parse_client_hello(&data).unwrap_or_default();
            EventBody::TlsHello {
                fd: e.fd,
                dport: e.dport,
                len: e.len,
                server_name: hello.server_name,
                alpn: hello.alpn,
                coverage: None,
                data,
            }
        }
        raw::kind::ESCAPE_SYSCALL => {
            let e: raw::EscapeSyscallEvent = read_record(record, "escape syscall record")?;
            EventBody::EscapeSyscall(Box::new(crate::escape_syscall::EscapeSyscall::from_raw(&e)))
        }
        raw::kind::ENFORCE => {
            let e: raw::EnforceEvent = read_record(record, "enforce record")?;
            EventBody::Enforce(Box::new(crate::enforcement::EnforceDecision::from_raw(&e)))
        }
        raw::kind::ENFORCE_FILE => {
            let e: raw::EnforceFileEvent = read_record(record, "enforce file record")?;
            EventBody::Enforce(Box::new(
                crate::enforcement::EnforceDecision::from_raw_file(&e),
            ))
        }
        raw::kind::ENFORCE_EXEC => {
            let e: raw::EnforceExecEvent = read_record(record, "enforce exec record")?;
            EventBody::Enforce(Box::new(
                crate::enforcement::EnforceDecision::from_raw_exec(&e),
            ))
        }
        other => return Err(DecodeError::UnknownKind(other)),
    };
    Ok(Event { header, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raw::zerocopy::{FromZeros, Immutable, IntoBytes};

    fn header(kind: u32, size: usize) -> raw::EventHeader {
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"python");
        raw::EventHeader {
            kind,
            size: size as u32,
            ts_ns: 5,
            cgroup_id: 9,
            pid: 100,
            tid: 101,
            uid: 0,
            gid: 0,
            comm,
        }
    }

    fn exec_record() -> Vec<u8> {
        let mut e = raw::ExecEvent::new_zeroed();
        e.header = header(raw::kind::EXEC, std::mem::size_of::<raw::ExecEvent>());
        e.filename[..9].copy_from_slice(b"/bin/echo");
        let argv = b"/bin/echo\0hello world\0";
        e.argv[..argv.len()].copy_from_slice(argv);
        e.argv_len = argv.len() as u32;
        e.argc = 2;
        e.flags = raw::exec_flags::ARGV_TRUNCATED;
        e.as_bytes().to_vec()
    }

    fn data_record(payload: &[u8]) -> Vec<u8> {
        let mut e = Box::new(raw::DataEvent::new_zeroed());
        e.prefix.header = header(raw::kind::DATA, raw::DATA_PREFIX_LEN + payload.len());
        e.prefix.source = raw::source::TLS_OPENSSL;
        e.prefix.direction = raw::direction::EGRESS;
        e.prefix.fd = 7;
        e.prefix.conn_id = 0xdead;
        e.prefix.total_len = 40000;
        e.prefix.offset = 16384;
        e.prefix.seq = 1;
        e.prefix.data_len = payload.len() as u32;
        e.data[..payload.len()].copy_from_slice(payload);
        e.as_bytes()[..raw::DATA_PREFIX_LEN + payload.len()].to_vec()
    }

    /// The record of a fixed-size kind, its header declaring the whole struct.
    fn fixed_record<T>(kind: u32, fill: impl FnOnce(&mut T)) -> Vec<u8>
    where
        T: IntoBytes + Immutable + FromZeros,
    {
        let mut e = T::new_zeroed();
        fill(&mut e);
        let mut bytes = e.as_bytes().to_vec();
        bytes[..std::mem::size_of::<raw::EventHeader>()]
            .copy_from_slice(header(kind, std::mem::size_of::<T>()).as_bytes());
        bytes
    }

    /// Sets the size the record's header declares.
    fn declare_size(record: &mut [u8], size: usize) {
        let at = std::mem::offset_of!(raw::EventHeader, size);
        record[at..at + 4].copy_from_slice(&(size as u32).to_ne_bytes());
    }

    #[test]
    fn decodes_exec_with_argv_and_flags() {
        let event = decode(&exec_record(), 1_000).unwrap();
        assert_eq!(event.header.pid, 100);
        assert_eq!(event.header.time_unix_ns, 1_005);
        assert_eq!(event.header.comm, "python");
        match event.body {
            EventBody::Exec {
                filename,
                argv,
                argv_truncated,
                filename_truncated,
            } => {
                assert_eq!(filename, "/bin/echo");
                assert_eq!(argv, vec!["/bin/echo", "hello world"]);
                assert!(argv_truncated);
                assert!(!filename_truncated);
            }
            other => panic!("wrong body {other:?}"),
        }
    }

    #[test]
    fn decodes_variable_size_data_record() {
        let event = decode(&data_record(b"GET / HTTP/1.1\r\n"), 0).unwrap();
        match event.body {
            EventBody::Data {
                data,
                seq,
                offset,
                conn_id,
                source,
                last,
                ..
            } => {
                assert_eq!(data, b"GET / HTTP/1.1\r\n");
                assert_eq!((seq, offset, conn_id), (1, 16384, 0xdead));
                assert_eq!(source, PayloadSource::Tls);
                assert!(!last);
            }
            other => panic!("wrong body {other:?}"),
        }
    }

    #[test]
    fn truncated_records_are_errors() {
        let exec = exec_record();
        for cut in [0, 10, 55, 56, 100, exec.len() - 1] {
            assert!(
                matches!(decode(&exec[..cut], 0), Err(DecodeError::Truncated { .. })),
                "cut at {cut}"
            );
        }
        let data = data_record(b"0123456789");
        assert!(matches!(
            decode(&data[..data.len() - 1], 0),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_chunk_length_is_rejected() {
        let mut data = data_record(b"abc");
        let at = std::mem::offset_of!(raw::DataPrefix, data_len);
        data[at..at + 4].copy_from_slice(&(raw::CHUNK_LEN as u32 + 1).to_ne_bytes());
        assert!(matches!(
            decode(&data, 0),
            Err(DecodeError::BadLength { .. })
        ));
    }

    #[test]
    fn unknown_kind_is_reported() {
        let mut exec = exec_record();
        exec[..4].copy_from_slice(&999u32.to_ne_bytes());
        assert_eq!(decode(&exec, 0), Err(DecodeError::UnknownKind(999)));
    }

    #[test]
    fn every_fixed_kind_decodes_its_fields() {
        let body = |record: Vec<u8>| decode(&record, 0).unwrap().body;

        let fork = body(fixed_record(raw::kind::FORK, |e: &mut raw::ForkEvent| {
            e.child_pid = 4242;
            e.clone_flags = 0x11_0000_0011;
        }));
        assert_eq!(
            fork,
            EventBody::Fork {
                child_pid: 4242,
                clone_flags: 0x11_0000_0011
            }
        );

        let exit = |flags| {
            body(fixed_record(raw::kind::EXIT, |e: &mut raw::ExitEvent| {
                e.exit_code = -3;
                e.flags = flags;
            }))
        };
        assert_eq!(
            exit(raw::exit_flags::CODE_KNOWN),
            EventBody::Exit {
                exit_code: Some(-3)
            }
        );
        assert_eq!(exit(0), EventBody::Exit { exit_code: None });

        let open = body(fixed_record(raw::kind::OPEN, |e: &mut raw::OpenEvent| {
            e.dfd = -100;
            e.flags = 0o2_000_101;
            e.mode = 0o644;
            e.ret = -2;
            e.syscall = raw::open_syscall::OPENAT2;
            e.path[..11].copy_from_slice(b"/etc/passwd");
            e.path_len = 11;
        }));
        assert_eq!(
            open,
            EventBody::Open {
                syscall: "openat2",
                path: "/etc/passwd".into(),
                path_truncated: false,
                dfd: -100,
                flags: 0o2_000_101,
                mode: 0o644,
                ret: -2,
            }
        );

        let connect = body(fixed_record(
            raw::kind::CONNECT,
            |e: &mut raw::SockAddrEvent| {
                e.fd = 5;
                e.ret = -115;
                e.family = libc::AF_INET as u16;
                e.port = 443;
                e.flags = raw::sock_flags::PAYLOADS_SAMPLED_OUT;
                e.addr[..4].copy_from_slice(&[10, 0, 0, 7]);
            },
        ));
        assert_eq!(
            connect,
            EventBody::Connect {
                fd: 5,
                family: "inet",
                addr: "10.0.0.7".into(),
                port: 443,
                ret: -115,
                payloads_sampled_out: true,
            }
        );
        let accept = body(fixed_record(
            raw::kind::ACCEPT,
            |e: &mut raw::SockAddrEvent| {
                e.fd = 3;
                e.ret = 9;
                e.family = libc::AF_INET6 as u16;
                e.port = 8080;
                e.addr[15] = 1;
            },
        ));
        assert_eq!(
            accept,
            EventBody::Accept {
                listen_fd: 3,
                family: "inet6",
                addr: "::1".into(),
                port: 8080,
                ret: 9,
                payloads_sampled_out: false,
            }
        );

        let tcp = body(fixed_record(
            raw::kind::TCP_STATE,
            |e: &mut raw::TcpStateEvent| {
                e.skaddr = 0xffff_8880_1234_5678;
                e.oldstate = 2;
                e.newstate = 1;
                e.sport = 40000;
                e.dport = 443;
                e.family = libc::AF_INET as u16;
                e.protocol = 6;
                e.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
                e.daddr[..4].copy_from_slice(&[127, 0, 0, 2]);
            },
        ));
        assert_eq!(
            tcp,
            EventBody::TcpState {
                skaddr: 0xffff_8880_1234_5678,
                family: "inet",
                saddr: "127.0.0.1".into(),
                sport: 40000,
                daddr: "127.0.0.2".into(),
                dport: 443,
                old_state: "SYN_SENT",
                new_state: "ESTABLISHED",
            }
        );

        // A query for example.com: header (id, flags, one question), name, type A, class IN.
        let query: Vec<u8> = [
            &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
            b"\x07example\x03com\x00",
            &[0, 1, 0, 1],
        ]
        .concat();
        let dns = |len: usize| {
            body(fixed_record(raw::kind::DNS, |e: &mut raw::DnsEvent| {
                e.fd = 6;
                e.dport = 53;
                e.len = len as u32;
                e.data[..query.len()].copy_from_slice(&query);
            }))
        };
        assert_eq!(
            dns(query.len()),
            EventBody::Dns {
                fd: 6,
                dport: 53,
                queries: vec!["example.com".into()],
                len: query.len() as u32,
                data: query.clone(),
            }
        );
        // A datagram longer than what the kernel keeps: the kept bytes, and the sent length.
        match dns(600) {
            EventBody::Dns { len, data, .. } => assert_eq!((len, data.len()), (600, raw::DNS_LEN)),
            other => panic!("wrong body {other:?}"),
        }

        let close = body(fixed_record(raw::kind::CLOSE, |e: &mut raw::CloseEvent| {
            e.fd = 11
        }));
        assert_eq!(close, EventBody::Close { fd: 11 });

        let hello = std::fs::read(format!(
            "{}/tests/fixtures/client_hello/python.bin",
            env!("AGENTSCOPE_REPO")
        ))
        .unwrap();
        let tls_hello = |len: usize| {
            body(fixed_record(
                raw::kind::TLS_HELLO,
                |e: &mut raw::TlsHelloEvent| {
                    e.fd = 5;
                    e.dport = 443;
                    e.len = len as u32;
                    e.data[..hello.len()].copy_from_slice(&hello);
                },
            ))
        };
        assert_eq!(
            tls_hello(hello.len()),
            EventBody::TlsHello {
                fd: 5,
                dport: 443,
                len: hello.len() as u32,
                server_name: Some("api.openai.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
                coverage: None,
                data: hello.clone(),
            }
        );
        // A write longer than what the kernel keeps: the kept bytes, and the written length.
        match tls_hello(70_000) {
            EventBody::TlsHello { len, data, .. } => {
                assert_eq!((len, data.len()), (70_000, raw::TLS_HELLO_LEN))
            }
            other => panic!("wrong body {other:?}"),
        }
    }

    #[test]
    fn nothing_is_read_past_the_declared_size() {
        // A header that declares fewer bytes than its kind's struct: a damaged record, even
        // when the ring buffer handed over more bytes.
        let mut exec = exec_record();
        declare_size(&mut exec, std::mem::size_of::<raw::EventHeader>() + 16);
        assert!(matches!(
            decode(&exec, 0),
            Err(DecodeError::Truncated { .. })
        ));
        // A payload that runs past the declared end of its record.
        let mut data = data_record(b"0123456789");
        declare_size(&mut data, raw::DATA_PREFIX_LEN + 5);
        assert!(matches!(
            decode(&data, 0),
            Err(DecodeError::Truncated { .. })
        ));
        // Bytes after the declared end are not part of the record.
        let mut data = data_record(b"0123456789");
        data.extend_from_slice(b"trailing");
        match decode(&data, 0).unwrap().body {
            EventBody::Data { data, .. } => assert_eq!(data, b"0123456789"),
            other => panic!("wrong body {other:?}"),
        }
    }

    #[test]
    fn json_field_names_are_stable() {
        let event = decode(&exec_record(), 0).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        for key in [
            "kind",
            "ts_ns",
            "time_unix_ns",
            "pid",
            "tid",
            "ppid",
            "uid",
            "gid",
            "cgroup_id",
            "comm",
            "filename",
            "argv",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["kind"], "exec");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20000)) {
            let _ = decode(&bytes, 0);
        }

        #[test]
        fn damaged_known_records_never_panic(cut in 0usize..3000, flip in 0usize..3000, bit in 0u8..8) {
            let mut exec = exec_record();
            let flip = flip % exec.len();
            exec[flip] ^= 1 << bit;
            let cut = cut.min(exec.len());
            let _ = decode(&exec[..cut], 0);
            let mut data = data_record(&[7u8; 300]);
            let flip = flip % data.len();
            data[flip] ^= 1 << bit;
            let _ = decode(&data[..cut.min(data.len())], 0);
        }
    }
}
