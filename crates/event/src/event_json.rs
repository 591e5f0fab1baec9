//! Events in their JSON form (docs/events.md): writing one as a JSON line, and reading it back.
//! `collect --json` and `replay --json` write with [`write_json_line`]; test fixtures and
//! imports of that output read with [`event_from_json`], so captures taken by the real
//! collector can be fed to reconstruction again.

use base64::Engine as _;
use serde_json::Value;

use crate::event::{Direction, Event, EventBody, Header, PayloadSource};

/// Appends `event` as one JSON line (with its newline) to `line`.
///
/// Why here and with a concrete buffer: serde's serialisation is generic, so it is compiled in
/// the crate that calls it. Called from the CLI (built without optimisation in the dev profile),
/// escaping a flood's payloads ran at about 45 MB/s and was nearly all of `replay --json`'s time;
/// instantiated here it is compiled with this crate's optimisation.
pub fn write_json_line(event: &Event, line: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let start = line.len();
    serde_json::to_writer(&mut *line, event)?;
    finish_json_line(line, start).map_err(serde::ser::Error::custom)
}

/// Makes the JSON object serialised at `line[start..]` a line as `collect --json` writes every
/// line: `schema_version` as its first field, then a newline. The one place that decides the
/// line's shape, for events ([`write_json_line`]) and for the other lines (the summary).
pub fn finish_json_line(line: &mut Vec<u8>, start: usize) -> Result<(), &'static str> {
    if line.get(start) != Some(&b'{') {
        return Err("a JSON line must be an object");
    }
    let empty = line[start + 1..] == *b"}";
    let mut version = format!("{{\"schema_version\":{SCHEMA_VERSION}");
    if !empty {
        version.push(',');
    }
    line.splice(start..start + 1, version.into_bytes());
    line.push(b'\n');
    Ok(())
}

/// Why a JSON line is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an agentscope event: {0}")]
pub struct JsonEventError(String);

fn err(message: impl Into<String>) -> JsonEventError {
    JsonEventError(message.into())
}

fn u64_field(value: &Value, name: &str) -> Result<u64, JsonEventError> {
    value
        .get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| err(format!("missing or non-integer \"{name}\"")))
}

fn u32_field(value: &Value, name: &str) -> Result<u32, JsonEventError> {
    u32::try_from(u64_field(value, name)?).map_err(|_| err(format!("\"{name}\" out of range")))
}

fn u16_field(value: &Value, name: &str) -> Result<u16, JsonEventError> {
    u16::try_from(u64_field(value, name)?).map_err(|_| err(format!("\"{name}\" out of range")))
}

fn i32_field(value: &Value, name: &str) -> Result<i32, JsonEventError> {
    value
        .get(name)
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| err(format!("missing or non-integer \"{name}\"")))
}

fn str_field(value: &Value, name: &str) -> Result<String, JsonEventError> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| err(format!("missing string \"{name}\"")))
}

fn strings_field(value: &Value, name: &str) -> Vec<String> {
    value
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn bool_field(value: &Value, name: &str) -> bool {
    value.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Maps a string onto the fixed set the decoder produces (the fields are `&'static str`).
fn known(
    value: &Value,
    name: &str,
    choices: &[&'static str],
    fallback: &'static str,
) -> &'static str {
    let text = value.get(name).and_then(Value::as_str).unwrap_or_default();
    choices
        .iter()
        .find(|c| **c == text)
        .copied()
        .unwrap_or(fallback)
}

/// The version of the JSON-lines schema (docs/events.schema.json), carried by every line as
/// `schema_version`: a log shipper that starts mid-stream (`kubectl logs --since`, Fluent
/// Bit after a restart) reads it on whatever line comes first. Raised only when a field
/// changes meaning or goes away; new fields and kinds keep the version.
pub const SCHEMA_VERSION: u32 = 1;

pub const FAMILIES: &[&str] = &["inet", "inet6", "unix", "none", "other"];
pub const TCP_STATES: &[&str] = &[
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

fn bytes_field(value: &Value, name: &str) -> Result<Vec<u8>, JsonEventError> {
    let text = value.get(name).and_then(Value::as_str).unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| err(format!("\"{name}\" is not base64: {e}")))
}

/// Parses one event from its JSON object. Summary lines and other kinds are errors.
pub fn event_from_json(value: &Value) -> Result<Event, JsonEventError> {
    let header = Header {
        ts_ns: u64_field(value, "ts_ns")?,
        time_unix_ns: u64_field(value, "time_unix_ns")?,
        pid: u32_field(value, "pid")?,
        tid: u32_field(value, "tid")?,
        ppid: u32_field(value, "ppid")?,
        uid: u32_field(value, "uid")?,
        gid: u32_field(value, "gid")?,
        cgroup_id: u64_field(value, "cgroup_id")?,
        comm: str_field(value, "comm")?.into(),
    };
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = match kind {
        "exec" => EventBody::Exec {
            filename: str_field(value, "filename")?,
            argv: strings_field(value, "argv"),
            argv_truncated: bool_field(value, "argv_truncated"),
            filename_truncated: bool_field(value, "filename_truncated"),
        },
        "fork" => EventBody::Fork {
            child_pid: u32_field(value, "child_pid")?,
            clone_flags: u64_field(value, "clone_flags")?,
        },
        "exit" => EventBody::Exit {
            exit_code: value
                .get("exit_code")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok()),
        },
        "open" => EventBody::Open {
            syscall: known(value, "syscall", &["open", "openat", "openat2"], "unknown"),
            path: str_field(value, "path")?,
            path_truncated: bool_field(value, "path_truncated"),
            dfd: i32_field(value, "dfd")?,
            flags: i32_field(value, "flags")?,
            mode: u32_field(value, "mode")?,
            ret: i32_field(value, "ret")?,
        },
        "connect" => EventBody::Connect {
            fd: i32_field(value, "fd")?,
            family: known(value, "family", FAMILIES, "other"),
            addr: str_field(value, "addr")?,
            port: u16_field(value, "port")?,
            ret: i32_field(value, "ret")?,
            payloads_sampled_out: bool_field(value, "payloads_sampled_out"),
        },
        "accept" => EventBody::Accept {
            listen_fd: i32_field(value, "listen_fd")?,
            family: known(value, "family", FAMILIES, "other"),
            addr: str_field(value, "addr")?,
            port: u16_field(value, "port")?,
            ret: i32_field(value, "ret")?,
            payloads_sampled_out: bool_field(value, "payloads_sampled_out"),
        },
        "tcp_state" => EventBody::TcpState {
            skaddr: u64_field(value, "skaddr")?,
            family: known(value, "family", FAMILIES, "other"),
            saddr: str_field(value, "saddr")?,
            sport: u16_field(value, "sport")?,
            daddr: str_field(value, "daddr")?,
            dport: u16_field(value, "dport")?,
            old_state: known(value, "old_state", TCP_STATES, "UNKNOWN"),
            new_state: known(value, "new_state", TCP_STATES, "UNKNOWN"),
        },
        "dns" => EventBody::Dns {
            fd: i32_field(value, "fd")?,
            dport: u16_field(value, "dport")?,
            queries: strings_field(value, "queries"),
            len: u32_field(value, "len")?,
            data: bytes_field(value, "data")?,
        },
        "data" => EventBody::Data {
            source: match value.get("source").and_then(Value::as_str) {
                Some("tls") => PayloadSource::Tls,
                Some("socket") => PayloadSource::Socket,
                Some("pipe") => PayloadSource::Pipe,
                _ => PayloadSource::Unknown,
            },
            direction: match value.get("direction").and_then(Value::as_str) {
                Some("egress") => Direction::Egress,
                Some("ingress") => Direction::Ingress,
                _ => Direction::Unknown,
            },
            fd: i32_field(value, "fd")?,
            conn_id: u64_field(value, "conn_id")?,
            call_id: u64_field(value, "call_id")?,
            seq: u32_field(value, "seq")?,
            offset: u64_field(value, "offset")?,
            total_len: u64_field(value, "total_len")?,
            lost_bytes: u64_field(value, "lost_bytes")?,
            last: bool_field(value, "last"),
            data: bytes_field(value, "data_b64")?,
        },
        "tls_hello" => EventBody::TlsHello {
            fd: i32_field(value, "fd")?,
            dport: u16_field(value, "dport")?,
            len: u32_field(value, "len")?,
            server_name: value
                .get("server_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            alpn: strings_field(value, "alpn"),
            coverage: match value.get("coverage") {
                None | Some(Value::Null) => None,
                Some(coverage) => Some(
                    serde_json::from_value(coverage.clone())
                        .map_err(|e| err(format!("\"coverage\": {e}")))?,
                ),
            },
            data: bytes_field(value, "data_b64")?,
        },
        "close" => EventBody::Close {
            fd: i32_field(value, "fd")?,
        },
        "enforce" => EventBody::Enforce(Box::new(
            serde_json::from_value(value.clone())
                .map_err(|e| err(format!("an enforce event: {e}")))?,
        )),
        "package" => EventBody::Package(Box::new(
            serde_json::from_value(value.clone())
                .map_err(|e| err(format!("a package event: {e}")))?,
        )),
        "host_path_write" => EventBody::HostPathWrite {
            fd: i32_field(value, "fd")?,
            path: str_field(value, "path")?,
            mount_point: str_field(value, "mount_point")?,
            host_path: str_field(value, "host_path")?,
        },
        "escape_syscall" => EventBody::EscapeSyscall(Box::new(
            serde_json::from_value(value.clone())
                .map_err(|e| err(format!("an escape_syscall event: {e}")))?,
        )),
        "enforce_policy" => EventBody::EnforcePolicy(Box::new(
            serde_json::from_value(value.clone())
                .map_err(|e| err(format!("an enforce_policy event: {e}")))?,
        )),
        "cluster_objects" => EventBody::ClusterObjects(Box::new(
            serde_json::from_value(value.clone())
                .map_err(|e| err(format!("a cluster_objects event: {e}")))?,
        )),
        "payloads_left_out" => EventBody::PayloadsLeftOut {
            opaque_socket_bytes: u64_field(value, "opaque_socket_bytes")?,
            on_request_bytes: u64_field(value, "on_request_bytes")?,
            // Absent from the lines of versions before connection sampling.
            sampled_out_bytes: value
                .get("sampled_out_bytes")
                .map_or(Ok(0), |_| u64_field(value, "sampled_out_bytes"))?,
            running: bool_field(value, "running"),
        },
        other => return Err(err(format!("unknown kind \"{other}\""))),
    };
    Ok(Event { header, body })
}

/// The text of a JSON-lines file: UTF-8, with a byte-order mark at the start allowed (editors
/// on Windows write one). Invalid UTF-8 is an error naming its line.
pub fn json_lines_text(bytes: &[u8]) -> Result<&str, JsonEventError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        err(format!(
            "line {line}: not UTF-8 (byte {} of the line)",
            valid.len() - line_start + 1
        ))
    })
}

/// Parses `agentscope collect --json` output: events in order, skipping the summary line. A
/// byte-order mark at the start is skipped.
pub fn events_from_json_lines(text: &str) -> Result<Vec<Event>, JsonEventError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut events = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| err(format!("line {}: {e}", number + 1)))?;
        if value.get("kind").and_then(Value::as_str) == Some("summary") {
            continue;
        }
        events.push(
            event_from_json(&value).map_err(|e| err(format!("line {}: {}", number + 1, e.0)))?,
        );
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_its_line_and_a_bom_is_accepted() {
        let line = r#"{"kind":"close","ts_ns":1,"time_unix_ns":2,"pid":3,"tid":3,"ppid":1,"uid":0,"gid":0,"cgroup_id":0,"comm":"sh","fd":4}"#;
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(format!("{line}\n{line}\n").as_bytes());
        let events = events_from_json_lines(json_lines_text(&bytes).unwrap()).unwrap();
        assert_eq!(events.len(), 2);
        // The BOM also when the caller decoded the text itself.
        assert_eq!(
            events_from_json_lines(&format!("\u{feff}{line}\n"))
                .unwrap()
                .len(),
            1
        );
        bytes.extend_from_slice(b"{\"kind\":\"cl\xFFose\"}\n");
        let err = json_lines_text(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("line 3: not UTF-8 (byte 12 of the line)"),
            "{err}"
        );
    }

    #[test]
    fn every_kind_round_trips_through_json() {
        let header = Header {
            ts_ns: 5,
            time_unix_ns: 1_795_300_272_137_263_165,
            pid: 10,
            tid: 11,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            cgroup_id: 4242,
            comm: "agent".into(),
        };
        let bodies = vec![
            EventBody::Exec {
                filename: "/bin/echo".into(),
                argv: vec!["echo".into(), "hi".into()],
                argv_truncated: false,
                filename_truncated: true,
            },
            EventBody::Fork {
                child_pid: 12,
                clone_flags: 17,
            },
            EventBody::Exit { exit_code: Some(3) },
            EventBody::Exit { exit_code: None },
            EventBody::Open {
                syscall: "openat2",
                path: "/etc/x".into(),
                path_truncated: false,
                dfd: -100,
                flags: 0,
                mode: 0,
                ret: 4,
            },
            EventBody::Connect {
                fd: 3,
                family: "inet6",
                addr: "::1".into(),
                port: 443,
                ret: -115,
                payloads_sampled_out: true,
            },
            EventBody::Accept {
                listen_fd: 3,
                family: "inet",
                addr: "127.0.0.1".into(),
                port: 5555,
                ret: 7,
                payloads_sampled_out: false,
            },
            EventBody::TcpState {
                skaddr: u64::MAX,
                family: "inet",
                saddr: "a".into(),
                sport: 1,
                daddr: "b".into(),
                dport: 2,
                old_state: "SYN_SENT",
                new_state: "ESTABLISHED",
            },
            EventBody::Dns {
                fd: 4,
                dport: 53,
                queries: vec!["x.example".into()],
                len: 3,
                data: vec![1, 2, 3],
            },
            EventBody::Data {
                source: PayloadSource::Pipe,
                direction: Direction::Ingress,
                fd: 0,
                conn_id: 0,
                call_id: u64::MAX - 1,
                seq: 2,
                offset: 32768,
                total_len: 40000,
                lost_bytes: 9,
                last: true,
                data: b"{\"jsonrpc\":\"2.0\"}".to_vec(),
            },
            EventBody::Close { fd: 3 },
            EventBody::TlsHello {
                fd: 7,
                dport: 443,
                len: 517,
                server_name: Some("api.openai.com".into()),
                alpn: vec!["h2".into()],
                coverage: Some(crate::TlsCoverage::NotVisible {
                    reason: crate::NotVisibleReason::StackNotRecognised,
                }),
                data: vec![0x16, 3, 1],
            },
            EventBody::TlsHello {
                fd: 7,
                dport: 0,
                len: 3,
                server_name: None,
                alpn: vec![],
                coverage: None,
                data: vec![0x16, 3, 1],
            },
            EventBody::Enforce(Box::new(crate::enforcement::EnforceDecision {
                agent_id: 1,
                baseline: Some("host:python agent.py".into()),
                revision: 3,
                category: crate::enforcement::EnforceCategory::Network,
                action: crate::enforcement::EnforceAction::Blocked,
                hook: "connect4".into(),
                protocol: "tcp".into(),
                family: "inet".into(),
                addr: "127.0.0.2".into(),
                port: 8080,
                path: None,
                reason: None,
                inode: None,
                rule: None,
                blocks_last_minute: None,
            })),
            EventBody::Enforce(Box::new(crate::enforcement::EnforceDecision {
                agent_id: 2,
                baseline: None,
                revision: 1,
                category: crate::enforcement::EnforceCategory::Exec,
                action: crate::enforcement::EnforceAction::WouldBlock,
                hook: "sched_process_exec".into(),
                protocol: String::new(),
                family: String::new(),
                addr: String::new(),
                port: 0,
                path: Some("/bin/sh".into()),
                reason: Some("program from standard input".into()),
                inode: None,
                rule: None,
                blocks_last_minute: None,
            })),
            EventBody::Enforce(Box::new(crate::enforcement::EnforceDecision {
                agent_id: 3,
                baseline: Some("k8s:support/Deployment/support-agent/agent:python".into()),
                revision: 2,
                category: crate::enforcement::EnforceCategory::Files,
                action: crate::enforcement::EnforceAction::Blocked,
                hook: "sys_exit_openat".into(),
                protocol: String::new(),
                family: String::new(),
                addr: String::new(),
                port: 0,
                path: Some("/var/run/secrets/kubernetes.io/serviceaccount/token".into()),
                reason: None,
                inode: Some("25:1234".into()),
                rule: None,
                blocks_last_minute: None,
            })),
            EventBody::Package(Box::new(crate::package::PackageFound {
                ecosystem: crate::package::PackageEcosystem::Pypi,
                name: "openai".into(),
                version: Some("1.54.3".into()),
                package_dir: "/app/lib/python3.11/site-packages/openai".into(),
                metadata_path: Some(
                    "/app/lib/python3.11/site-packages/openai-1.54.3.dist-info/METADATA".into(),
                ),
                error: None,
            })),
            EventBody::Package(Box::new(crate::package::PackageFound {
                ecosystem: crate::package::PackageEcosystem::Npm,
                name: "@scope/thing".into(),
                version: None,
                package_dir: "/app/node_modules/@scope/thing".into(),
                metadata_path: None,
                error: Some("package.json is not JSON".into()),
            })),
            EventBody::ClusterObjects(Box::new(crate::cluster_objects::ClusterObjects {
                objects: vec![serde_json::json!({"kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": "support", "labels": {"team": "ops"}}})],
                counts: [("Namespace".to_string(), 1)].into(),
                omitted: [("Pod".to_string(), 3)].into(),
                truncated: true,
                bytes: 77,
                node_name: Some("node-a".into()),
            })),
            EventBody::PayloadsLeftOut {
                opaque_socket_bytes: 4_915_200,
                on_request_bytes: 5_107,
                sampled_out_bytes: 81_920,
                running: true,
            },
        ];
        for body in bodies {
            let event = Event {
                header: header.clone(),
                body,
            };
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(event_from_json(&json).unwrap(), event);
        }
    }

    #[test]
    fn bad_lines_say_where_and_what() {
        let error = events_from_json_lines("{\"kind\":\"summary\"}\n{\"ts_ns\":1}\n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(events_from_json_lines("not json").is_err());
    }
}
