//! Decoding of ring-buffer records into [`Event`], the collector's stable event type.
//!
//! Records come from the kernel, but a decoder must still treat them as untrusted bytes: a
//! short, oversized or unknown record is reported as a [`DecodeError`], never a panic. The JSON
//! field names of [`Event`] are a public interface (documented in docs/events.md).

use agentscope_common as raw;
use base64::Engine as _;
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
    pub comm: String,
}

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
    },
    Accept {
        listen_fd: i32,
        family: &'static str,
        addr: String,
        port: u16,
        /// The new fd, or -errno.
        ret: i32,
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
}

fn as_base64<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl EventBody {
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
        }
    }
}

/// Reads a `T` from the front of `bytes` after checking the length.
fn read_record<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Truncated {
            what,
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: length checked above; every `T` used here is a repr(C) struct of integers and
    // byte arrays, valid for any bit pattern; read_unaligned copes with the ring's alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
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
    let header = Header {
        ts_ns: h.ts_ns,
        time_unix_ns: boot_time_ns.saturating_add(h.ts_ns),
        pid: h.pid,
        tid: h.tid,
        ppid: 0,
        uid: h.uid,
        gid: h.gid,
        cgroup_id: h.cgroup_id,
        comm: c_string(&h.comm),
    };
    let body = match h.kind {
        raw::kind::EXEC => {
            let e: raw::ExecEvent = read_record(bytes, "exec record")?;
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
            let e: raw::ForkEvent = read_record(bytes, "fork record")?;
            EventBody::Fork {
                child_pid: e.child_pid,
                clone_flags: e.clone_flags,
            }
        }
        raw::kind::EXIT => {
            let e: raw::ExitEvent = read_record(bytes, "exit record")?;
            let known = e.flags & raw::exit_flags::CODE_KNOWN != 0;
            EventBody::Exit {
                exit_code: known.then_some(e.exit_code),
            }
        }
        raw::kind::OPEN => {
            let e: raw::OpenEvent = read_record(bytes, "open record")?;
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
            let e: raw::SockAddrEvent = read_record(bytes, "socket address record")?;
            let family = family_name(e.family);
            let addr = format_addr(e.family, &e.addr);
            if h.kind == raw::kind::CONNECT {
                EventBody::Connect {
                    fd: e.fd,
                    family,
                    addr,
                    port: e.port,
                    ret: e.ret,
                }
            } else {
                EventBody::Accept {
                    listen_fd: e.fd,
                    family,
                    addr,
                    port: e.port,
                    ret: e.ret,
                }
            }
        }
        raw::kind::TCP_STATE => {
            let e: raw::TcpStateEvent = read_record(bytes, "tcp state record")?;
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
            let e: raw::DnsEvent = read_record(bytes, "dns record")?;
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
            let prefix_len = raw::DATA_PREFIX_LEN;
            if bytes.len() < prefix_len {
                return Err(DecodeError::Truncated {
                    what: "data record prefix",
                    len: bytes.len(),
                    need: prefix_len,
                });
            }
            // The record is variable-size: only the prefix is read as a struct.
            let mut prefix = [0u8; raw::DATA_PREFIX_LEN];
            prefix.copy_from_slice(&bytes[..prefix_len]);
            let field = |offset: usize, len: usize| &prefix[offset..offset + len];
            let u32_at =
                |offset: usize| u32::from_ne_bytes(field(offset, 4).try_into().unwrap_or_default());
            let u64_at =
                |offset: usize| u64::from_ne_bytes(field(offset, 8).try_into().unwrap_or_default());
            use std::mem::offset_of;
            let data_len = u32_at(offset_of!(raw::DataEvent, data_len)) as usize;
            if data_len > raw::CHUNK_LEN {
                return Err(DecodeError::BadLength {
                    what: "a data chunk",
                    declared: data_len,
                    max: raw::CHUNK_LEN,
                });
            }
            if bytes.len() < prefix_len + data_len {
                return Err(DecodeError::Truncated {
                    what: "data record payload",
                    len: bytes.len(),
                    need: prefix_len + data_len,
                });
            }
            EventBody::Data {
                source: match u32_at(offset_of!(raw::DataEvent, source)) {
                    raw::source::TLS_OPENSSL => PayloadSource::Tls,
                    raw::source::SOCKET => PayloadSource::Socket,
                    raw::source::PIPE => PayloadSource::Pipe,
                    _ => PayloadSource::Unknown,
                },
                direction: match u32_at(offset_of!(raw::DataEvent, direction)) {
                    raw::direction::EGRESS => Direction::Egress,
                    raw::direction::INGRESS => Direction::Ingress,
                    _ => Direction::Unknown,
                },
                fd: u32_at(offset_of!(raw::DataEvent, fd)) as i32,
                conn_id: u64_at(offset_of!(raw::DataEvent, conn_id)),
                call_id: u64_at(offset_of!(raw::DataEvent, call_id)),
                seq: u32_at(offset_of!(raw::DataEvent, seq)),
                offset: u64_at(offset_of!(raw::DataEvent, offset)),
                total_len: u64_at(offset_of!(raw::DataEvent, total_len)),
                lost_bytes: u64_at(offset_of!(raw::DataEvent, lost_bytes)),
                last: u32_at(offset_of!(raw::DataEvent, flags)) & raw::data_flags::LAST != 0,
                data: bytes[prefix_len..prefix_len + data_len].to_vec(),
            }
        }
        raw::kind::CLOSE => {
            let e: raw::CloseEvent = read_record(bytes, "close record")?;
            EventBody::Close { fd: e.fd }
        }
        other => return Err(DecodeError::UnknownKind(other)),
    };
    Ok(Event { header, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    fn bytes_of<T>(value: &T) -> Vec<u8> {
        // SAFETY: test values are repr(C) PODs.
        unsafe {
            std::slice::from_raw_parts(value as *const T as *const u8, std::mem::size_of::<T>())
        }
        .to_vec()
    }

    fn exec_record() -> Vec<u8> {
        let mut e: raw::ExecEvent = unsafe { std::mem::zeroed() };
        e.header = header(raw::kind::EXEC, std::mem::size_of::<raw::ExecEvent>());
        e.filename[..9].copy_from_slice(b"/bin/echo");
        let argv = b"/bin/echo\0hello world\0";
        e.argv[..argv.len()].copy_from_slice(argv);
        e.argv_len = argv.len() as u32;
        e.argc = 2;
        e.flags = raw::exec_flags::ARGV_TRUNCATED;
        bytes_of(&e)
    }

    fn data_record(payload: &[u8]) -> Vec<u8> {
        let mut e: Box<raw::DataEvent> = Box::new(unsafe { std::mem::zeroed() });
        e.header = header(raw::kind::DATA, raw::DATA_PREFIX_LEN + payload.len());
        e.source = raw::source::TLS_OPENSSL;
        e.direction = raw::direction::EGRESS;
        e.fd = 7;
        e.conn_id = 0xdead;
        e.total_len = 40000;
        e.offset = 16384;
        e.seq = 1;
        e.data_len = payload.len() as u32;
        e.data[..payload.len()].copy_from_slice(payload);
        bytes_of(&*e)[..raw::DATA_PREFIX_LEN + payload.len()].to_vec()
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
        let at = std::mem::offset_of!(raw::DataEvent, data_len);
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
