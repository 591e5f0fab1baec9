//! A compact byte language for event sequences, so the fuzzer can drive reconstruction, the
//! model and detection with arbitrary streams of [`Event`]s.
//!
//! Hand-made instead of `arbitrary`: seeds are converted from real captures (JSON lines and
//! `.cap` recordings) with [`encode`], and every byte string decodes to *some* sequence
//! ([`decode`] never fails: missing bytes read as zero), so mutations stay meaningful. Data
//! offsets and totals are stored relative to what the stream expects next, which keeps a
//! mutated chunk length from desynchronising every later chunk of the stream.
//!
//! ```text
//! script  := config record*
//! config  := u8                      bit 0: short learning period; bit 1: small model limits
//! record  := op pid ts_delta comm [tid] [uid ppid cgroup] body
//! op      := u8                      low nibble % 10: kind; 0x10: tid follows; 0x20: ids follow
//! pid     := u8                      pid 1000 + byte
//! str     := varint length, bytes    (lossy UTF-8)
//! ```
//! Bodies follow the field order of [`EventBody`]; integers are LEB128 varints (signed ones
//! zigzag-encoded).

use std::collections::HashMap;

use agentscope_event::event::{Direction, Event, EventBody, Header, PayloadSource};

/// Pids in scripts are small indices; this is the first one.
const PID_BASE: u32 = 1000;
/// One string or payload at most (the kernel's chunk size is smaller; JSON-lines input is not).
const MAX_BYTES: usize = 64 * 1024;

const FAMILIES: [&str; 5] = ["inet", "inet6", "unix", "none", "other"];
const SYSCALLS: [&str; 4] = ["open", "openat", "openat2", "unknown"];
const TCP_STATES: [&str; 13] = [
    "UNKNOWN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];
const SOURCES: [PayloadSource; 4] = [
    PayloadSource::Tls,
    PayloadSource::Socket,
    PayloadSource::Pipe,
    PayloadSource::Unknown,
];
const DIRECTIONS: [Direction; 3] = [Direction::Egress, Direction::Ingress, Direction::Unknown];

/// A decoded script: how to configure the pipeline, and the events to feed it.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Baselines stop learning after one second of event time (detection then judges).
    pub short_learning: bool,
    /// The model holds a few dozen nodes (its eviction paths run).
    pub small_model: bool,
    pub events: Vec<Event>,
}

/// Where the next chunk of one direction of one stream is expected (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
struct StreamCursor {
    call_id: u64,
    expected_offset: u64,
}

type StreamKey = (u32, u8, u64, u8);

fn stream_key(pid: u32, source: usize, fd: i32, conn_id: u64, direction: usize) -> StreamKey {
    let id = if source == 0 { conn_id } else { fd as u64 };
    (pid, source as u8, id, direction as u8)
}

fn index_of<T: PartialEq>(table: &[T], value: &T) -> usize {
    table
        .iter()
        .position(|v| v == value)
        .unwrap_or(table.len() - 1)
}

// ---- decoding ----

struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8();
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        value
    }

    fn zigzag(&mut self) -> i64 {
        let v = self.varint();
        ((v >> 1) as i64) ^ -((v & 1) as i64)
    }

    fn i32(&mut self) -> i32 {
        self.zigzag() as i32
    }

    fn bytes(&mut self) -> Vec<u8> {
        let declared = self.varint() as usize;
        let start = self.pos.min(self.bytes.len());
        let len = declared.min(MAX_BYTES).min(self.bytes.len() - start);
        let out = self.bytes[start..start + len].to_vec();
        self.pos = start + len;
        out
    }

    fn string(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn pid(&mut self) -> u32 {
        PID_BASE + u32::from(self.u8())
    }

    fn pick<T: Copy>(&mut self, table: &[T]) -> T {
        table[usize::from(self.u8()) % table.len()]
    }
}

/// Decodes any bytes into a script (see the module doc for the format).
pub fn decode(bytes: &[u8]) -> Script {
    let mut input = Input { bytes, pos: 0 };
    let config = input.u8();
    let mut script = Script {
        short_learning: config & 1 != 0,
        small_model: config & 2 != 0,
        events: Vec::new(),
    };
    let mut ts_ns: u64 = 1_000_000_000;
    let mut cursors: HashMap<StreamKey, StreamCursor> = HashMap::new();
    while !input.done() {
        let op = input.u8();
        let pid = input.pid();
        ts_ns = ts_ns.saturating_add(input.varint());
        let comm = input.string();
        let tid = if op & 0x10 != 0 { input.pid() } else { pid };
        let (uid, ppid, cgroup_id) = if op & 0x20 != 0 {
            let uid = input.varint() as u32;
            let ppid = match input.u8() {
                0 => 0,
                b => PID_BASE + u32::from(b - 1),
            };
            (uid, ppid, input.varint())
        } else {
            (0, 0, 1)
        };
        let header = Header {
            ts_ns,
            time_unix_ns: 1_700_000_000_000_000_000u64.saturating_add(ts_ns),
            pid,
            tid,
            ppid,
            uid,
            gid: uid,
            cgroup_id,
            comm,
        };
        let body = match (op & 0x0f) % 10 {
            0 => {
                let filename = input.string();
                let argc = input.u8();
                let argv = (0..argc).map(|_| input.string()).collect();
                let flags = input.u8();
                EventBody::Exec {
                    filename,
                    argv,
                    argv_truncated: flags & 1 != 0,
                    filename_truncated: flags & 2 != 0,
                }
            }
            1 => EventBody::Fork {
                child_pid: input.pid(),
                clone_flags: input.varint(),
            },
            2 => EventBody::Exit {
                exit_code: (input.u8() != 0).then(|| input.i32()),
            },
            3 => EventBody::Open {
                syscall: input.pick(&SYSCALLS),
                path: input.string(),
                path_truncated: input.u8() != 0,
                dfd: input.i32(),
                flags: input.i32(),
                mode: input.varint() as u32,
                ret: input.i32(),
            },
            4 => EventBody::Connect {
                fd: input.i32(),
                family: input.pick(&FAMILIES),
                addr: input.string(),
                port: input.varint() as u16,
                ret: input.i32(),
                payloads_sampled_out: input.u8() & 1 != 0,
            },
            5 => EventBody::Accept {
                listen_fd: input.i32(),
                family: input.pick(&FAMILIES),
                addr: input.string(),
                port: input.varint() as u16,
                ret: input.i32(),
                payloads_sampled_out: input.u8() & 1 != 0,
            },
            6 => EventBody::TcpState {
                skaddr: input.varint(),
                family: input.pick(&FAMILIES),
                saddr: input.string(),
                sport: input.varint() as u16,
                daddr: input.string(),
                dport: input.varint() as u16,
                old_state: input.pick(&TCP_STATES),
                new_state: input.pick(&TCP_STATES),
            },
            7 => {
                let fd = input.i32();
                let dport = input.varint() as u16;
                let count = input.u8();
                let queries = (0..count).map(|_| input.string()).collect();
                EventBody::Dns {
                    fd,
                    dport,
                    queries,
                    len: input.varint() as u32,
                    data: input.bytes(),
                }
            }
            8 => {
                let flags = input.u8();
                let source = usize::from(flags & 3);
                let direction = usize::from((flags >> 2) & 3) % DIRECTIONS.len();
                let last = flags & 0x10 != 0;
                let fd = input.i32();
                let conn_id = input.varint();
                let call_id = input.varint();
                let seq = input.varint() as u32;
                let offset_delta = input.zigzag();
                let total_delta = input.zigzag();
                let lost_bytes = input.varint();
                let data = input.bytes();
                let cursor = cursors
                    .entry(stream_key(pid, source, fd, conn_id, direction))
                    .or_default();
                if cursor.call_id != call_id {
                    *cursor = StreamCursor {
                        call_id,
                        expected_offset: 0,
                    };
                }
                let offset = cursor.expected_offset.saturating_add_signed(offset_delta);
                let end = offset.saturating_add(data.len() as u64);
                cursor.expected_offset = end;
                EventBody::Data {
                    source: SOURCES[source],
                    direction: DIRECTIONS[direction],
                    fd,
                    conn_id,
                    call_id,
                    seq,
                    offset,
                    total_len: end.saturating_add_signed(total_delta),
                    lost_bytes,
                    last,
                    data,
                }
            }
            _ => EventBody::Close { fd: input.i32() },
        };
        script.events.push(Event { header, body });
    }
    script
}

// ---- encoding (seeds) ----

/// Writes events in the script language, the inverse of [`decode`] up to what the language
/// cannot say: pids are renumbered in order of appearance (at most 256 distinct ones),
/// timestamps become deltas (an earlier timestamp becomes a zero delta).
pub struct Encoder {
    out: Vec<u8>,
    pids: HashMap<u32, u8>,
    last_ts_ns: Option<u64>,
    cursors: HashMap<StreamKey, StreamCursor>,
}

impl Encoder {
    /// `config` is the script's first byte (see the module doc).
    pub fn new(config: u8) -> Self {
        Self {
            out: vec![config],
            pids: HashMap::new(),
            last_ts_ns: None,
            cursors: HashMap::new(),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.out
    }

    fn u8(&mut self, b: u8) {
        self.out.push(b);
    }

    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.out.push(b);
                return;
            }
            self.out.push(b | 0x80);
        }
    }

    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let bytes = &bytes[..bytes.len().min(MAX_BYTES)];
        self.varint(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }

    fn pid_index(&mut self, pid: u32) -> u8 {
        let next = self.pids.len() as u8;
        *self.pids.entry(pid).or_insert(next)
    }

    fn pid(&mut self, pid: u32) {
        let index = self.pid_index(pid);
        self.u8(index);
    }

    pub fn push(&mut self, event: &Event) {
        let h = &event.header;
        let kind: u8 = match &event.body {
            EventBody::Exec { .. } => 0,
            EventBody::Fork { .. } => 1,
            EventBody::Exit { .. } => 2,
            EventBody::Open { .. } => 3,
            EventBody::Connect { .. } => 4,
            EventBody::Accept { .. } => 5,
            EventBody::TcpState { .. } => 6,
            EventBody::Dns { .. } => 7,
            EventBody::Data { .. } => 8,
            EventBody::Close { .. } => 9,
            // The language has no kind for events that came after it (ClientHellos,
            // enforcement, packages, escapes, policies, cluster objects, left-out reports):
            // seeds skip them.
            _ => return,
        };
        let with_tid = h.tid != h.pid;
        let with_ids = h.uid != 0 || h.ppid != 0 || h.cgroup_id != 1;
        self.u8(kind | if with_tid { 0x10 } else { 0 } | if with_ids { 0x20 } else { 0 });
        self.pid(h.pid);
        let delta = self
            .last_ts_ns
            .map_or(0, |last| h.ts_ns.saturating_sub(last));
        self.last_ts_ns = Some(self.last_ts_ns.unwrap_or(0).max(h.ts_ns));
        self.varint(delta);
        self.bytes(h.comm.as_bytes());
        if with_tid {
            self.pid(h.tid);
        }
        if with_ids {
            self.varint(u64::from(h.uid));
            let ppid = if h.ppid == 0 {
                0
            } else {
                self.pid_index(h.ppid).saturating_add(1)
            };
            self.u8(ppid);
            self.varint(h.cgroup_id);
        }
        match &event.body {
            EventBody::Exec {
                filename,
                argv,
                argv_truncated,
                filename_truncated,
            } => {
                self.bytes(filename.as_bytes());
                let argv = &argv[..argv.len().min(255)];
                self.u8(argv.len() as u8);
                for arg in argv {
                    self.bytes(arg.as_bytes());
                }
                self.u8(u8::from(*argv_truncated) | u8::from(*filename_truncated) << 1);
            }
            EventBody::Fork {
                child_pid,
                clone_flags,
            } => {
                self.pid(*child_pid);
                self.varint(*clone_flags);
            }
            EventBody::Exit { exit_code } => match exit_code {
                Some(code) => {
                    self.u8(1);
                    self.zigzag(i64::from(*code));
                }
                None => self.u8(0),
            },
            EventBody::Open {
                syscall,
                path,
                path_truncated,
                dfd,
                flags,
                mode,
                ret,
            } => {
                self.u8(index_of(&SYSCALLS, syscall) as u8);
                self.bytes(path.as_bytes());
                self.u8(u8::from(*path_truncated));
                self.zigzag(i64::from(*dfd));
                self.zigzag(i64::from(*flags));
                self.varint(u64::from(*mode));
                self.zigzag(i64::from(*ret));
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
                self.zigzag(i64::from(*fd));
                self.u8(index_of(&FAMILIES, family) as u8);
                self.bytes(addr.as_bytes());
                self.varint(u64::from(*port));
                self.zigzag(i64::from(*ret));
                self.u8(u8::from(*payloads_sampled_out));
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
                self.varint(*skaddr);
                self.u8(index_of(&FAMILIES, family) as u8);
                self.bytes(saddr.as_bytes());
                self.varint(u64::from(*sport));
                self.bytes(daddr.as_bytes());
                self.varint(u64::from(*dport));
                self.u8(index_of(&TCP_STATES, old_state) as u8);
                self.u8(index_of(&TCP_STATES, new_state) as u8);
            }
            EventBody::Dns {
                fd,
                dport,
                queries,
                len,
                data,
            } => {
                self.zigzag(i64::from(*fd));
                self.varint(u64::from(*dport));
                let queries = &queries[..queries.len().min(255)];
                self.u8(queries.len() as u8);
                for query in queries {
                    self.bytes(query.as_bytes());
                }
                self.varint(u64::from(*len));
                self.bytes(data);
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
                let source = index_of(&SOURCES, source);
                let direction = index_of(&DIRECTIONS, direction);
                self.u8(source as u8 | (direction as u8) << 2 | u8::from(*last) << 4);
                self.zigzag(i64::from(*fd));
                self.varint(*conn_id);
                self.varint(*call_id);
                self.varint(u64::from(*seq));
                let key = stream_key(h.pid, source, *fd, *conn_id, direction);
                let cursor = self.cursors.entry(key).or_default();
                if cursor.call_id != *call_id {
                    *cursor = StreamCursor {
                        call_id: *call_id,
                        expected_offset: 0,
                    };
                }
                let offset_delta = offset.wrapping_sub(cursor.expected_offset) as i64;
                let len = data.len().min(MAX_BYTES) as u64;
                let end = offset.saturating_add(len);
                cursor.expected_offset = end;
                self.zigzag(offset_delta);
                self.zigzag(total_len.wrapping_sub(end) as i64);
                self.varint(*lost_bytes);
                self.bytes(data);
            }
            EventBody::Close { fd } => self.zigzag(i64::from(*fd)),
            // Skipped above.
            _ => {}
        }
    }
}

/// Encodes a whole sequence.
pub fn encode(events: &[Event], config: u8) -> Vec<u8> {
    let mut encoder = Encoder::new(config);
    for event in events {
        encoder.push(event);
    }
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_events() -> Vec<Event> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/capture");
        let text = std::fs::read_to_string(format!("{dir}/python_chat.jsonl")).unwrap();
        agentscope_event::event_json::events_from_json_lines(&text).unwrap()
    }

    /// What survives the language: everything but pid numbering and absolute time.
    fn comparable(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{:?} {} {}", e.body, e.header.comm, e.header.uid))
            .collect()
    }

    #[test]
    fn fixture_round_trips() {
        let events = fixture_events();
        assert!(events.len() > 10);
        let script = decode(&encode(&events, 1));
        assert!(script.short_learning);
        // Fork child pids are renumbered too: compare all but those fields.
        let original = comparable(&events);
        let decoded = comparable(&script.events);
        assert_eq!(original.len(), decoded.len());
        for (a, b) in original.iter().zip(&decoded) {
            if !a.starts_with("Fork") {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn any_bytes_decode() {
        for bytes in [&[][..], &[0xff; 40][..], &[8, 0, 0xff, 0xff, 0xff][..]] {
            let _ = decode(bytes);
        }
    }
}
