//! Binary encoding of the entries inside event chunks: collector events and identity answers.
//!
//! This layout is the file format (docs/capture-format.md), so it is written out field by field
//! rather than derived: with a derive the bytes on disk follow the Rust type definitions, and a
//! renamed field or a reordered variant would silently change what old files mean. Every entry
//! carries its length, so a reader skips tags it does not know and fields that newer writers
//! append, and only fields that exist in every version are required.

use crate::event::{Direction, Event, EventBody, Header, PayloadSource};
use crate::event_json::{FAMILIES, TCP_STATES};
#[cfg(test)]
use crate::model::ActorIdentity;
use crate::model::IdentityAnswer;

/// Entry tags (one byte before each entry).
pub const TAG_EVENT: u8 = 1;
pub const TAG_IDENTITY: u8 = 2;

/// Event kinds as stored. Never renumber: old files use these.
mod kind {
    pub const EXEC: u8 = 1;
    pub const FORK: u8 = 2;
    pub const EXIT: u8 = 3;
    pub const OPEN: u8 = 4;
    pub const CONNECT: u8 = 5;
    pub const ACCEPT: u8 = 6;
    pub const TCP_STATE: u8 = 7;
    pub const DNS: u8 = 8;
    pub const DATA: u8 = 9;
    pub const CLOSE: u8 = 10;
    pub const TLS_HELLO: u8 = 11;
    pub const ENFORCE: u8 = 12;
    pub const ESCAPE_SYSCALL: u8 = 13;
    pub const HOST_PATH_WRITE: u8 = 14;
    pub const ENFORCE_POLICY: u8 = 15;
    pub const PACKAGE: u8 = 16;
    pub const CLUSTER_OBJECTS: u8 = 17;
    pub const PAYLOADS_LEFT_OUT: u8 = 18;
}

/// One decoded entry of an event chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Event(Event),
    Identity(IdentityAnswer),
}

/// Why an entry did not decode. `offset` is within the chunk's uncompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry at chunk offset {offset}: {reason}")]
pub struct EntryError {
    pub offset: usize,
    pub reason: String,
}

// ---- writing ----

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths inside an entry are bounded by the entry's u32 length.
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// Appends `tag`, a length placeholder and the body `write` produces, then fills the length.
fn put_entry(out: &mut Vec<u8>, tag: u8, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    put_u32(out, 0);
    write(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends one event as an entry.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    put_entry(out, TAG_EVENT, |out| {
        let h = &event.header;
        out.push(kind_code(&event.body));
        put_u64(out, h.ts_ns);
        put_u64(out, h.time_unix_ns);
        put_u32(out, h.pid);
        put_u32(out, h.tid);
        put_u32(out, h.ppid);
        put_u32(out, h.uid);
        put_u32(out, h.gid);
        put_u64(out, h.cgroup_id);
        put_str(out, &h.comm);
        match &event.body {
            EventBody::Exec {
                filename,
                argv,
                argv_truncated,
                filename_truncated,
            } => {
                put_str(out, filename);
                put_u32(out, argv.len() as u32);
                for arg in argv {
                    put_str(out, arg);
                }
                out.push(*argv_truncated as u8);
                out.push(*filename_truncated as u8);
            }
            EventBody::Fork {
                child_pid,
                clone_flags,
            } => {
                put_u32(out, *child_pid);
                put_u64(out, *clone_flags);
            }
            EventBody::Exit { exit_code } => {
                out.push(exit_code.is_some() as u8);
                put_i32(out, exit_code.unwrap_or(0));
            }
            EventBody::Open {
                syscall,
                path,
                path_truncated,
                dfd,
                flags,
                mode,
                ret,
            } => {
                put_str(out, syscall);
                put_str(out, path);
                out.push(*path_truncated as u8);
                put_i32(out, *dfd);
                put_i32(out, *flags);
                put_u32(out, *mode);
                put_i32(out, *ret);
            }
            EventBody::Connect {
                fd,
                family,
                addr,
                port,
                ret,
                payloads_sampled_out,
            }
            | EventBody::Accept {
                listen_fd: fd,
                family,
                addr,
                port,
                ret,
                payloads_sampled_out,
            } => {
                put_i32(out, *fd);
                put_str(out, family);
                put_str(out, addr);
                put_u16(out, *port);
                put_i32(out, *ret);
                // Appended with connection sampling (format 1.0 readers skip it).
                out.push(*payloads_sampled_out as u8);
            }
            EventBody::TcpState {
                skaddr,
                family,
                saddr,
                sport,
                daddr,
                dport,
                old_state,
                new_state,
            } => {
                put_u64(out, *skaddr);
                put_str(out, family);
                put_str(out, saddr);
                put_u16(out, *sport);
                put_str(out, daddr);
                put_u16(out, *dport);
                put_str(out, old_state);
                put_str(out, new_state);
            }
            EventBody::Dns {
                fd,
                dport,
                queries,
                len,
                data,
            } => {
                put_i32(out, *fd);
                put_u16(out, *dport);
                put_u32(out, queries.len() as u32);
                for query in queries {
                    put_str(out, query);
                }
                put_u32(out, *len);
                put_bytes(out, data);
            }
            EventBody::Data {
                source,
                direction,
                fd,
                conn_id,
                call_id,
                seq,
                offset,
                total_len,
                lost_bytes,
                last,
                data,
            } => {
                out.push(match source {
                    PayloadSource::Tls => 1,
                    PayloadSource::Socket => 2,
                    PayloadSource::Pipe => 3,
                    PayloadSource::Unknown => 0,
                });
                out.push(match direction {
                    Direction::Egress => 1,
                    Direction::Ingress => 2,
                    Direction::Unknown => 0,
                });
                put_i32(out, *fd);
                put_u64(out, *conn_id);
                put_u64(out, *call_id);
                put_u32(out, *seq);
                put_u64(out, *offset);
                put_u64(out, *total_len);
                put_u64(out, *lost_bytes);
                out.push(*last as u8);
                put_bytes(out, data);
            }
            EventBody::Close { fd } => put_i32(out, *fd),
            EventBody::TlsHello {
                fd,
                dport,
                len,
                server_name,
                alpn,
                coverage,
                data,
            } => {
                put_i32(out, *fd);
                put_u16(out, *dport);
                put_u32(out, *len);
                put_str(out, server_name.as_deref().unwrap_or_default());
                put_u32(out, alpn.len() as u32);
                for protocol in alpn {
                    put_str(out, protocol);
                }
                // JSON, like identities: rare (one per connection) and its shape grows with the
                // ways of reading TLS plaintext. Empty: not known.
                let coverage = coverage
                    .as_ref()
                    .map(|c| serde_json::to_vec(c).unwrap_or_default())
                    .unwrap_or_default();
                put_bytes(out, &coverage);
                put_bytes(out, data);
            }
            // JSON: rare (a decision against a policy) and its shape grows with the
            // categories enforced.
            EventBody::Enforce(decision) => {
                put_bytes(out, &serde_json::to_vec(decision).unwrap_or_default());
            }
            // JSON: rare (one per package a process loads), collector-made, and its shape may
            // grow with the ecosystems read.
            EventBody::Package(package) => {
                put_bytes(out, &serde_json::to_vec(package).unwrap_or_default());
            }
            // JSON too: rare, and its arguments differ per syscall.
            EventBody::EscapeSyscall(call) => {
                put_bytes(out, &serde_json::to_vec(call).unwrap_or_default());
            }
            EventBody::HostPathWrite {
                fd,
                path,
                mount_point,
                host_path,
            } => {
                put_i32(out, *fd);
                put_str(out, path);
                put_str(out, mount_point);
                put_str(out, host_path);
            }
            // JSON too: one per governed agent and policy change.
            EventBody::EnforcePolicy(policy) => {
                put_bytes(out, &serde_json::to_vec(policy).unwrap_or_default());
            }
            // JSON too: the API's objects, redacted; one per change of the cluster's objects.
            EventBody::ClusterObjects(objects) => {
                put_bytes(out, &serde_json::to_vec(objects).unwrap_or_default());
            }
            EventBody::PayloadsLeftOut {
                opaque_socket_bytes,
                on_request_bytes,
                sampled_out_bytes,
                running,
            } => {
                put_u64(out, *opaque_socket_bytes);
                put_u64(out, *on_request_bytes);
                out.push(*running as u8);
                // Appended with connection sampling.
                put_u64(out, *sampled_out_bytes);
            }
        }
    });
}

fn kind_code(body: &EventBody) -> u8 {
    match body {
        EventBody::Exec { .. } => kind::EXEC,
        EventBody::Fork { .. } => kind::FORK,
        EventBody::Exit { .. } => kind::EXIT,
        EventBody::Open { .. } => kind::OPEN,
        EventBody::Connect { .. } => kind::CONNECT,
        EventBody::Accept { .. } => kind::ACCEPT,
        EventBody::TcpState { .. } => kind::TCP_STATE,
        EventBody::Dns { .. } => kind::DNS,
        EventBody::Data { .. } => kind::DATA,
        EventBody::Close { .. } => kind::CLOSE,
        EventBody::TlsHello { .. } => kind::TLS_HELLO,
        EventBody::Enforce(_) => kind::ENFORCE,
        EventBody::Package(_) => kind::PACKAGE,
        EventBody::EscapeSyscall(_) => kind::ESCAPE_SYSCALL,
        EventBody::HostPathWrite { .. } => kind::HOST_PATH_WRITE,
        EventBody::EnforcePolicy(_) => kind::ENFORCE_POLICY,
        EventBody::ClusterObjects(_) => kind::CLUSTER_OBJECTS,
        EventBody::PayloadsLeftOut { .. } => kind::PAYLOADS_LEFT_OUT,
    }
}

/// Appends one identity answer as an entry. The identity itself is JSON: it is rare (one per
/// agent process) and its shape grows with the identity sources.
pub fn encode_identity(answer: &IdentityAnswer, out: &mut Vec<u8>) {
    put_entry(out, TAG_IDENTITY, |out| {
        put_u32(out, answer.pid);
        put_u64(out, answer.cgroup_id);
        put_u32(out, answer.uid);
        let json = serde_json::to_vec(&answer.identity).unwrap_or_default();
        put_bytes(out, &json);
    });
}

// ---- reading ----

/// Reads fields from one entry's body; every read is bounds-checked.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Field<T> = Result<T, String>;

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize, what: &str) -> Field<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| format!("{what} runs past the end of the entry"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Field<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    fn u8(&mut self, what: &str) -> Field<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn bool(&mut self, what: &str) -> Field<bool> {
        Ok(self.u8(what)? != 0)
    }
    /// A field appended after the first version of its entry: false in older files, which end
    /// before it.
    fn appended_bool(&mut self, what: &str) -> Field<bool> {
        if self.pos == self.buf.len() {
            return Ok(false);
        }
        self.bool(what)
    }
    /// As [`Fields::appended_bool`]: 0 in older files.
    fn appended_u64(&mut self, what: &str) -> Field<u64> {
        if self.pos == self.buf.len() {
            return Ok(0);
        }
        self.u64(what)
    }
    fn u16(&mut self, what: &str) -> Field<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Field<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn i32(&mut self, what: &str) -> Field<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Field<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn bytes(&mut self, what: &str) -> Field<&'a [u8]> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }
    fn string(&mut self, what: &str) -> Field<String> {
        let bytes = self.bytes(what)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| format!("{what} is not UTF-8"))
    }
    /// A command name: held inline, not allocated ([`agentscope_event::event::Comm`]).
    fn comm(&mut self, what: &str) -> Field<agentscope_event::event::Comm> {
        let bytes = self.bytes(what)?;
        std::str::from_utf8(bytes)
            .map(Into::into)
            .map_err(|_| format!("{what} is not UTF-8"))
    }
    /// A string from a fixed vocabulary (the event fields are `&'static str`).
    fn known(
        &mut self,
        what: &str,
        choices: &[&'static str],
        fallback: &'static str,
    ) -> Field<&'static str> {
        let bytes = self.bytes(what)?;
        Ok(choices
            .iter()
            .find(|c| c.as_bytes() == bytes)
            .copied()
            .unwrap_or(fallback))
    }
    /// A count of following items, checked against the bytes left (each item takes at least
    /// `min_item` bytes) so a damaged count cannot make the reader allocate wildly.
    fn count(&mut self, what: &str, min_item: usize) -> Field<usize> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item) > self.buf.len() - self.pos {
            return Err(format!("{what} ({n}) does not fit in the entry"));
        }
        Ok(n)
    }
}

const SYSCALLS: &[&str] = &["open", "openat", "openat2"];

/// Splits an uncompressed chunk into entries. Stops at the first entry whose framing is
/// broken (the rest of the chunk cannot be located), returning what was read and the error.
pub fn decode_entries(chunk: &[u8]) -> (Vec<Entry>, Option<EntryError>) {
    // Sized first (a walk over the frames' lengths): an entry is a few hundred bytes, and a
    // vector grown by doubling moved each of a chunk's hundreds of entries about twice. At
    // most RESERVED_ENTRIES up front: a damaged chunk's frames can promise entries whose
    // bodies do not decode.
    let mut entries = Vec::with_capacity(count_entries(chunk).min(RESERVED_ENTRIES));
    let mut pos = 0;
    while pos < chunk.len() {
        match next_entry(chunk, pos) {
            Ok((entry, next)) => {
                entries.extend(entry);
                pos = next;
            }
            Err(err) => return (entries, Some(err)),
        }
    }
    (entries, None)
}

/// Entries a chunk's vector is sized for before decoding (a recorder's chunk of 256 KiB
/// holds a few thousand).
const RESERVED_ENTRIES: usize = 16_384;

/// How many whole entry frames (tag and length-prefixed body) `chunk` holds, up to the first
/// that runs past its end.
fn count_entries(chunk: &[u8]) -> usize {
    let mut frames = Fields { buf: chunk, pos: 0 };
    let mut count = 0;
    while frames.pos < chunk.len() && frames.u8("").and_then(|_| frames.bytes("")).is_ok() {
        count += 1;
    }
    count
}

/// Decodes the entry at `pos`; returns it and where the next one starts. An entry of a tag
/// this reader does not know (written by a newer version) is skipped: `None`, and nothing is
/// held for it. (It was once kept as a placeholder every reader then skipped; a damaged chunk
/// of 5-byte frames of an unknown tag made a placeholder of a few hundred bytes from each, up
/// to gigabytes for one block.)
pub fn next_entry(chunk: &[u8], pos: usize) -> Result<(Option<Entry>, usize), EntryError> {
    let fail = |reason: String| EntryError {
        offset: pos,
        reason,
    };
    let mut frame = Fields { buf: chunk, pos };
    let tag = frame.u8("entry tag").map_err(fail)?;
    let body = frame.bytes("entry").map_err(fail)?;
    let next = frame.pos;
    let entry = match tag {
        TAG_EVENT => Some(Entry::Event(decode_event(body).map_err(fail)?)),
        TAG_IDENTITY => Some(Entry::Identity(decode_identity(body).map_err(fail)?)),
        _ => None,
    };
    Ok((entry, next))
}

fn decode_identity(body: &[u8]) -> Field<IdentityAnswer> {
    let mut f = Fields { buf: body, pos: 0 };
    let pid = f.u32("pid")?;
    let cgroup_id = f.u64("cgroup id")?;
    let uid = f.u32("uid")?;
    let json = f.bytes("identity")?;
    let identity =
        serde_json::from_slice(json).map_err(|e| format!("identity is not valid JSON: {e}"))?;
    Ok(IdentityAnswer {
        pid,
        cgroup_id,
        uid,
        identity,
    })
}

fn decode_event(body: &[u8]) -> Field<Event> {
    let mut f = Fields { buf: body, pos: 0 };
    let code = f.u8("event kind")?;
    let header = Header {
        ts_ns: f.u64("ts_ns")?,
        time_unix_ns: f.u64("time_unix_ns")?,
        pid: f.u32("pid")?,
        tid: f.u32("tid")?,
        ppid: f.u32("ppid")?,
        uid: f.u32("uid")?,
        gid: f.u32("gid")?,
        cgroup_id: f.u64("cgroup_id")?,
        comm: f.comm("comm")?,
    };
    let body = match code {
        kind::EXEC => {
            let filename = f.string("filename")?;
            let argc = f.count("argc", 4)?;
            let mut argv = Vec::with_capacity(argc);
            for _ in 0..argc {
                argv.push(f.string("argument")?);
            }
            EventBody::Exec {
                filename,
                argv,
                argv_truncated: f.bool("argv_truncated")?,
                filename_truncated: f.bool("filename_truncated")?,
            }
        }
        kind::FORK => EventBody::Fork {
            child_pid: f.u32("child_pid")?,
            clone_flags: f.u64("clone_flags")?,
        },
        kind::EXIT => {
            let known = f.bool("exit code flag")?;
            let code = f.i32("exit_code")?;
            EventBody::Exit {
                exit_code: known.then_some(code),
            }
        }
        kind::OPEN => EventBody::Open {
            syscall: f.known("syscall", SYSCALLS, "unknown")?,
            path: f.string("path")?,
            path_truncated: f.bool("path_truncated")?,
            dfd: f.i32("dfd")?,
            flags: f.i32("flags")?,
            mode: f.u32("mode")?,
            ret: f.i32("ret")?,
        },
        kind::CONNECT | kind::ACCEPT => {
            let fd = f.i32("fd")?;
            let family = f.known("family", FAMILIES, "other")?;
            let addr = f.string("addr")?;
            let port = f.u16("port")?;
            let ret = f.i32("ret")?;
            let payloads_sampled_out = f.appended_bool("payloads_sampled_out")?;
            if code == kind::CONNECT {
                EventBody::Connect {
                    fd,
                    family,
                    addr,
                    port,
                    ret,
                    payloads_sampled_out,
                }
            } else {
                EventBody::Accept {
                    listen_fd: fd,
                    family,
                    addr,
                    port,
                    ret,
                    payloads_sampled_out,
                }
            }
        }
        kind::TCP_STATE => EventBody::TcpState {
            skaddr: f.u64("skaddr")?,
            family: f.known("family", FAMILIES, "other")?,
            saddr: f.string("saddr")?,
            sport: f.u16("sport")?,
            daddr: f.string("daddr")?,
            dport: f.u16("dport")?,
            old_state: f.known("old_state", TCP_STATES, "UNKNOWN")?,
            new_state: f.known("new_state", TCP_STATES, "UNKNOWN")?,
        },
        kind::DNS => {
            let fd = f.i32("fd")?;
            let dport = f.u16("dport")?;
            let count = f.count("query count", 4)?;
            let mut queries = Vec::with_capacity(count);
            for _ in 0..count {
                queries.push(f.string("query")?);
            }
            EventBody::Dns {
                fd,
                dport,
                queries,
                len: f.u32("len")?,
                data: f.bytes("data")?.to_vec(),
            }
        }
        kind::DATA => EventBody::Data {
            source: match f.u8("source")? {
                1 => PayloadSource::Tls,
                2 => PayloadSource::Socket,
                3 => PayloadSource::Pipe,
                _ => PayloadSource::Unknown,
            },
            direction: match f.u8("direction")? {
                1 => Direction::Egress,
                2 => Direction::Ingress,
                _ => Direction::Unknown,
            },
            fd: f.i32("fd")?,
            conn_id: f.u64("conn_id")?,
            call_id: f.u64("call_id")?,
            seq: f.u32("seq")?,
            offset: f.u64("offset")?,
            total_len: f.u64("total_len")?,
            lost_bytes: f.u64("lost_bytes")?,
            last: f.bool("last")?,
            data: f.bytes("data")?.to_vec(),
        },
        kind::CLOSE => EventBody::Close { fd: f.i32("fd")? },
        kind::TLS_HELLO => {
            let fd = f.i32("fd")?;
            let dport = f.u16("dport")?;
            let len = f.u32("len")?;
            let server_name = Some(f.string("server_name")?).filter(|s| !s.is_empty());
            let count = f.count("alpn count", 4)?;
            let mut alpn = Vec::with_capacity(count);
            for _ in 0..count {
                alpn.push(f.string("alpn protocol")?);
            }
            let coverage = match f.bytes("coverage")? {
                [] => None,
                json => Some(
                    serde_json::from_slice(json)
                        .map_err(|e| format!("coverage is not a TLS coverage verdict: {e}"))?,
                ),
            };
            EventBody::TlsHello {
                fd,
                dport,
                len,
                server_name,
                alpn,
                coverage,
                data: f.bytes("data")?.to_vec(),
            }
        }
        kind::ENFORCE => EventBody::Enforce(Box::new(
            serde_json::from_slice(f.bytes("decision")?)
                .map_err(|e| format!("not an enforcement decision: {e}"))?,
        )),
        kind::PACKAGE => EventBody::Package(Box::new(
            serde_json::from_slice(f.bytes("package")?)
                .map_err(|e| format!("not a package: {e}"))?,
        )),
        kind::HOST_PATH_WRITE => EventBody::HostPathWrite {
            fd: f.i32("fd")?,
            path: f.string("path")?,
            mount_point: f.string("mount_point")?,
            host_path: f.string("host_path")?,
        },
        kind::ESCAPE_SYSCALL => EventBody::EscapeSyscall(Box::new(
            serde_json::from_slice(f.bytes("escape syscall")?)
                .map_err(|e| format!("not an escape syscall: {e}"))?,
        )),
        kind::ENFORCE_POLICY => EventBody::EnforcePolicy(Box::new(
            serde_json::from_slice(f.bytes("policy")?)
                .map_err(|e| format!("not an enforcement policy: {e}"))?,
        )),
        kind::CLUSTER_OBJECTS => EventBody::ClusterObjects(Box::new(
            serde_json::from_slice(f.bytes("objects")?)
                .map_err(|e| format!("not cluster objects: {e}"))?,
        )),
        kind::PAYLOADS_LEFT_OUT => EventBody::PayloadsLeftOut {
            opaque_socket_bytes: f.u64("opaque_socket_bytes")?,
            on_request_bytes: f.u64("on_request_bytes")?,
            running: f.bool("running")?,
            sampled_out_bytes: f.appended_u64("sampled_out_bytes")?,
        },
        other => return Err(format!("unknown event kind {other}")),
    };
    // Bytes left over are fields appended by a newer writer: ignored on purpose.
    Ok(Event { header, body })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> impl Strategy<Value = Header> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            "[a-z0-9 ]{0,15}",
        )
            .prop_map(
                |(ts_ns, time_unix_ns, pid, tid, ppid, uid, cgroup_id, comm)| Header {
                    ts_ns,
                    time_unix_ns,
                    pid,
                    tid,
                    ppid,
                    uid,
                    gid: uid ^ 1,
                    cgroup_id,
                    comm: comm.into(),
                },
            )
    }

    fn one_of(choices: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
        proptest::sample::select(choices)
    }

    pub(crate) fn body() -> impl Strategy<Value = EventBody> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..300);
        prop_oneof![
            (
                ".{0,40}",
                proptest::collection::vec(".{0,20}", 0..5),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(filename, argv, a, b)| EventBody::Exec {
                    filename,
                    argv,
                    argv_truncated: a,
                    filename_truncated: b,
                }),
            (any::<u32>(), any::<u64>()).prop_map(|(child_pid, clone_flags)| EventBody::Fork {
                child_pid,
                clone_flags
            }),
            any::<Option<i32>>().prop_map(|exit_code| EventBody::Exit { exit_code }),
            (
                one_of(&["open", "openat", "openat2", "unknown"]),
                ".{0,60}",
                any::<bool>(),
                any::<i32>(),
                any::<i32>(),
                any::<u32>(),
                any::<i32>()
            )
                .prop_map(|(syscall, path, path_truncated, dfd, flags, mode, ret)| {
                    EventBody::Open {
                        syscall,
                        path,
                        path_truncated,
                        dfd,
                        flags,
                        mode,
                        ret,
                    }
                }),
            (
                any::<i32>(),
                one_of(FAMILIES),
                ".{0,20}",
                any::<u16>(),
                any::<i32>(),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(
                    |(fd, family, addr, port, ret, accept, payloads_sampled_out)| if accept {
                        EventBody::Accept {
                            listen_fd: fd,
                            family,
                            addr,
                            port,
                            ret,
                            payloads_sampled_out,
                        }
                    } else {
                        EventBody::Connect {
                            fd,
                            family,
                            addr,
                            port,
                            ret,
                            payloads_sampled_out,
                        }
                    }
                ),
            (
                any::<u64>(),
                one_of(FAMILIES),
                ".{0,20}",
                any::<u16>(),
                one_of(TCP_STATES),
                one_of(TCP_STATES)
            )
                .prop_map(|(skaddr, family, addr, port, old_state, new_state)| {
                    EventBody::TcpState {
                        skaddr,
                        family,
                        saddr: addr.clone(),
                        sport: port,
                        daddr: addr,
                        dport: port.wrapping_add(1),
                        old_state,
                        new_state,
                    }
                }),
            (
                any::<i32>(),
                any::<u16>(),
                proptest::collection::vec("[a-z.]{0,30}", 0..3),
                any::<u32>(),
                bytes.clone()
            )
                .prop_map(|(fd, dport, queries, len, data)| EventBody::Dns {
                    fd,
                    dport,
                    queries,
                    len,
                    data,
                }),
            (
                (0u8..4, 0u8..3, any::<i32>(), any::<u64>(), any::<u64>()),
                (
                    any::<u32>(),
                    any::<u64>(),
                    any::<u64>(),
                    any::<u64>(),
                    any::<bool>()
                ),
                bytes.clone()
            )
                .prop_map(
                    |(
                        (source, direction, fd, conn_id, call_id),
                        (seq, offset, total_len, lost_bytes, last),
                        data,
                    )| {
                        EventBody::Data {
                            source: [
                                PayloadSource::Unknown,
                                PayloadSource::Tls,
                                PayloadSource::Socket,
                                PayloadSource::Pipe,
                            ][source as usize],
                            direction: [Direction::Unknown, Direction::Egress, Direction::Ingress]
                                [direction as usize],
                            fd,
                            conn_id,
                            call_id,
                            seq,
                            offset,
                            total_len,
                            lost_bytes,
                            last,
                            data,
                        }
                    }
                ),
            any::<i32>().prop_map(|fd| EventBody::Close { fd }),
            (
                (any::<i32>(), any::<u16>(), any::<u32>()),
                proptest::option::of("[a-z.]{1,30}"),
                proptest::collection::vec("[a-z0-9/.]{0,10}", 0..3),
                0u8..3,
                bytes
            )
                .prop_map(|((fd, dport, len), server_name, alpn, coverage, data)| {
                    EventBody::TlsHello {
                        fd,
                        dport,
                        len,
                        server_name,
                        alpn,
                        coverage: match coverage {
                            0 => None,
                            1 => Some(agentscope_event::TlsCoverage::Seen {
                                method: agentscope_event::PlaintextMethod::OpensslSymbols,
                                object: "/usr/lib/libssl.so.3".into(),
                            }),
                            _ => Some(agentscope_event::TlsCoverage::NotVisible {
                                reason: agentscope_event::NotVisibleReason::StackNotRecognised,
                            }),
                        },
                        data,
                    }
                }),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u16>(),
                "[0-9.]{0,15}",
                any::<bool>()
            )
                .prop_map(|(agent_id, revision, port, addr, blocked)| {
                    use agentscope_event::enforcement::{
                        EnforceAction, EnforceCategory, EnforceDecision,
                    };
                    EventBody::Enforce(Box::new(EnforceDecision {
                        agent_id,
                        baseline: blocked.then(|| "host:python agent.py".to_string()),
                        revision,
                        category: EnforceCategory::Network,
                        action: if blocked {
                            EnforceAction::Blocked
                        } else {
                            EnforceAction::WouldBlock
                        },
                        hook: "connect4".into(),
                        protocol: "tcp".into(),
                        family: "inet".into(),
                        addr,
                        port,
                        path: (!blocked).then(|| "/bin/sh".to_string()),
                        reason: None,
                        inode: blocked.then(|| "25:1234".to_string()),
                        rule: None,
                        blocks_last_minute: None,
                    }))
                }),
            (
                "[a-z@/_-]{1,20}",
                proptest::option::of("[0-9.]{1,10}"),
                any::<bool>()
            )
                .prop_map(|(name, version, npm)| {
                    use agentscope_event::package::{PackageEcosystem, PackageFound};
                    EventBody::Package(Box::new(PackageFound {
                        ecosystem: if npm {
                            PackageEcosystem::Npm
                        } else {
                            PackageEcosystem::Pypi
                        },
                        package_dir: format!("/app/node_modules/{name}"),
                        metadata_path: version
                            .is_some()
                            .then(|| format!("/app/node_modules/{name}/package.json")),
                        error: version.is_none().then(|| "package.json is not JSON".into()),
                        name,
                        version,
                    }))
                }),
            (any::<i32>(), ".{0,60}", ".{0,20}", ".{0,60}").prop_map(
                |(fd, path, mount_point, host_path)| EventBody::HostPathWrite {
                    fd,
                    path,
                    mount_point,
                    host_path,
                }
            ),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
                |(opaque_socket_bytes, on_request_bytes, sampled_out_bytes, running)| {
                    EventBody::PayloadsLeftOut {
                        opaque_socket_bytes,
                        on_request_bytes,
                        sampled_out_bytes,
                        running,
                    }
                }
            ),
            (any::<i64>(), any::<u64>(), ".{0,60}", any::<Option<u32>>()).prop_map(
                |(ret, flags, path, target_pid)| {
                    use agentscope_event::escape_syscall::{EscapeSyscall, EscapeSyscallName};
                    EventBody::EscapeSyscall(Box::new(EscapeSyscall {
                        syscall: if target_pid.is_some() {
                            EscapeSyscallName::Ptrace
                        } else {
                            EscapeSyscallName::Mount
                        },
                        ret,
                        namespaces: vec!["mnt".into()],
                        path: Some(path),
                        path2: None,
                        fstype: Some("proc".into()),
                        flags,
                        fd: None,
                        target_pid,
                        request: target_pid.map(|_| "seize".to_string()),
                        path_truncated: false,
                    }))
                }
            ),
            (any::<u32>(), any::<u32>(), any::<bool>(), 0..3u8).prop_map(
                |(agent_id, revision, tree, change)| {
                    use agentscope_event::enforcement::{EnforcePolicy, PolicyChange, PolicyMode};
                    EventBody::EnforcePolicy(Box::new(EnforcePolicy {
                        agent_id,
                        baseline: "host:python agent.py".into(),
                        revision,
                        scope: if tree { "pid:42" } else { "cgroup:7" }.into(),
                        scope_pid: tree.then_some(42),
                        scope_cgroup_id: (!tree).then_some(7),
                        network: PolicyMode::Enforce,
                        exec: PolicyMode::Audit,
                        files: PolicyMode::Off,
                        change: [
                            PolicyChange::Started,
                            PolicyChange::Disarmed,
                            PolicyChange::FilesAdded,
                        ][change as usize],
                        files_added: if change == 2 {
                            vec!["/etc/shadow".into()]
                        } else {
                            Vec::new()
                        },
                    }))
                },
            ),
            (".{0,20}", "[a-z-]{1,20}", any::<u16>(), any::<bool>()).prop_map(
                |(name, namespace, n, truncated)| {
                    use agentscope_event::cluster_objects::ClusterObjects;
                    let objects = vec![serde_json::json!({
                        "kind": "Role",
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "metadata": {"name": name, "namespace": namespace},
                        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
                    })];
                    EventBody::ClusterObjects(Box::new(ClusterObjects {
                        bytes: serde_json::to_vec(&objects).map_or(0, |b| b.len() as u64),
                        objects,
                        counts: [("Role".to_string(), 1)].into(),
                        omitted: if truncated {
                            [("Pod".to_string(), u64::from(n))].into()
                        } else {
                            Default::default()
                        },
                        truncated,
                        node_name: truncated.then(|| "node-1".into()),
                    }))
                }
            ),
        ]
    }

    pub(crate) fn event() -> impl Strategy<Value = Event> {
        (header(), body()).prop_map(|(header, body)| Event { header, body })
    }

    fn identity_answer() -> IdentityAnswer {
        IdentityAnswer {
            pid: 42,
            cgroup_id: 7,
            uid: 1000,
            identity: ActorIdentity {
                workload: "k8s:shop/Deployment/support-agent/agent".into(),
                uid: 1000,
                user: Some("app".into()),
                container_id: Some("abc".into()),
                pod: Some("shop/support-agent-1".into()),
                service_account: Some("shop/support".into()),
                cloud_roles: vec!["aws:arn:aws:iam::1:role/support".into()],
                details: serde_json::json!({"pod": {"name": "support-agent-1"}}),
            },
        }
    }

    #[test]
    fn identity_answers_round_trip() {
        let answer = identity_answer();
        let mut buf = Vec::new();
        encode_identity(&answer, &mut buf);
        let (entries, err) = decode_entries(&buf);
        assert_eq!(err, None);
        assert_eq!(entries, vec![Entry::Identity(answer)]);
    }

    fn sh_header() -> Header {
        Header {
            ts_ns: 1,
            time_unix_ns: 2,
            pid: 3,
            tid: 3,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 9,
            comm: "sh".into(),
        }
    }

    #[test]
    fn unknown_tags_and_appended_fields_are_skipped() {
        let mut buf = Vec::new();
        // A newer writer's entry type, then an event with two extra trailing bytes.
        put_entry(&mut buf, 99, |out| out.extend_from_slice(b"future"));
        let event = Event {
            header: sh_header(),
            body: EventBody::Close { fd: 4 },
        };
        put_entry(&mut buf, TAG_EVENT, |out| {
            let mut inner = Vec::new();
            encode_event(&event, &mut inner);
            out.extend_from_slice(&inner[5..]);
            out.extend_from_slice(&[0xAB, 0xCD]);
        });
        let (entries, err) = decode_entries(&buf);
        assert_eq!(err, None);
        assert_eq!(entries, vec![Entry::Event(event)]);
    }

    /// A chunk of a million empty frames of an unknown tag (a damaged block, 5 MB) decodes to
    /// nothing held for them: the event after them is the only entry, and the vector kept
    /// no more room than it reserved up front.
    #[test]
    fn a_flood_of_unknown_frames_holds_nothing() {
        let mut buf = Vec::new();
        for _ in 0..1_000_000 {
            put_entry(&mut buf, 0xEE, |_| {});
        }
        let event = Event {
            header: sh_header(),
            body: EventBody::Close { fd: 4 },
        };
        encode_event(&event, &mut buf);
        let (entries, err) = decode_entries(&buf);
        assert_eq!(err, None);
        assert_eq!(entries, vec![Entry::Event(event)]);
        assert!(
            entries.capacity() <= RESERVED_ENTRIES,
            "{}",
            entries.capacity()
        );
    }

    /// Entries written before connection sampling end before its fields: they read as a
    /// connection kept and no bytes sampled out, and a cut inside an appended field is an
    /// error, not a guess.
    #[test]
    fn entries_of_files_before_connection_sampling_read_as_nothing_sampled_out() {
        let header = sh_header();
        let older = |body: EventBody, appended: usize| {
            let mut inner = Vec::new();
            encode_event(
                &Event {
                    header: header.clone(),
                    body,
                },
                &mut inner,
            );
            let mut buf = Vec::new();
            put_entry(&mut buf, TAG_EVENT, |out| {
                out.extend_from_slice(&inner[5..inner.len() - appended])
            });
            decode_entries(&buf)
        };
        let connect = EventBody::Connect {
            fd: 5,
            family: "inet",
            addr: "10.0.0.7".into(),
            port: 443,
            ret: 0,
            payloads_sampled_out: true,
        };
        let (entries, err) = older(connect.clone(), 1);
        assert_eq!(err, None);
        let Entry::Event(event) = &entries[0] else {
            panic!("{entries:?}")
        };
        assert!(matches!(
            event.body,
            EventBody::Connect {
                payloads_sampled_out: false,
                ..
            }
        ));
        let left_out = EventBody::PayloadsLeftOut {
            opaque_socket_bytes: 7,
            on_request_bytes: 8,
            sampled_out_bytes: 9,
            running: true,
        };
        let (entries, err) = older(left_out.clone(), 8);
        assert_eq!(err, None);
        assert_eq!(
            entries,
            vec![Entry::Event(Event {
                header: header.clone(),
                body: EventBody::PayloadsLeftOut {
                    opaque_socket_bytes: 7,
                    on_request_bytes: 8,
                    sampled_out_bytes: 0,
                    running: true,
                },
            })]
        );
        let (entries, err) = older(left_out, 3);
        assert!(entries.is_empty() && err.is_some(), "{entries:?} {err:?}");
    }

    #[test]
    fn a_huge_count_is_an_error_not_an_allocation() {
        let mut buf = Vec::new();
        put_entry(&mut buf, TAG_EVENT, |out| {
            out.push(kind::EXEC);
            out.extend_from_slice(&[0u8; 44]);
            put_str(out, "comm");
            put_str(out, "/bin/sh");
            put_u32(out, u32::MAX);
        });
        let (entries, err) = decode_entries(&buf);
        assert!(entries.is_empty());
        assert!(err.unwrap().reason.contains("argc"), "wrong reason");
    }

    proptest! {
        #[test]
        fn events_round_trip(events in proptest::collection::vec(event(), 1..20)) {
            let mut buf = Vec::new();
            for event in &events {
                encode_event(event, &mut buf);
            }
            let (entries, err) = decode_entries(&buf);
            prop_assert_eq!(err, None);
            let decoded: Vec<Event> = entries
                .into_iter()
                .map(|e| match e {
                    Entry::Event(event) => event,
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            prop_assert_eq!(decoded, events);
        }

        #[test]
        fn damaged_entries_never_panic(event in event(), cut in 0usize..400, flip in 0usize..400, bit in 0u8..8) {
            let mut buf = Vec::new();
            encode_event(&event, &mut buf);
            encode_identity(&identity_answer(), &mut buf);
            let flip = flip % buf.len();
            buf[flip] ^= 1 << bit;
            let cut = cut.min(buf.len());
            let _ = decode_entries(&buf[..cut]);
            let _ = decode_entries(&buf);
        }
    }
}
