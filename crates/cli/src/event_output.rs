//! How events and the graph leave the CLI: one line per event on stdout (text under a header,
//! or JSON lines with `--json`), and the graph JSON file. `collect` and `replay` print the
//! same way.

use std::io::Write as _;

use agentscope_analysis::pipeline::Pipeline;
use agentscope_console::control_chars::escape_controls;
use agentscope_event::event::{Direction, PayloadSource};
use agentscope_event::{Event, EventBody};
use agentscope_files::output_file::PendingCommit;
use anyhow::Context as _;

/// Writes the graph JSON (mode 0600, beside the target then renamed; never over one of
/// `inputs`: agentscope_files::output_file).
pub fn write_graph(
    path: &std::path::Path,
    pipeline: &Pipeline,
    inputs: &agentscope_files::output_file::Inputs,
    selector: &agentscope_analysis::model::agent_selector::AgentSelector,
) -> anyhow::Result<()> {
    start_graph(path, pipeline, inputs, selector)?
        .finish_by(None)
        .with_context(|| format!("cannot write the graph to {}", path.display()))?;
    Ok(())
}

/// As [`write_graph`], returning with the file written and its sync under way: the rename
/// comes with [`PendingCommit::finish_by`], so that a stop need not wait for the disk.
pub fn start_graph(
    path: &std::path::Path,
    pipeline: &Pipeline,
    inputs: &agentscope_files::output_file::Inputs,
    selector: &agentscope_analysis::model::agent_selector::AgentSelector,
) -> anyhow::Result<PendingCommit> {
    let write = || -> std::io::Result<PendingCommit> {
        let mut file = agentscope_files::output_file::AtomicFile::create(path, inputs)?;
        let mut writer = std::io::BufWriter::new(&mut file);
        serde_json::to_writer_pretty(&mut writer, &selector.apply(pipeline.snapshot()))?;
        writer.flush()?;
        drop(writer);
        file.start_commit()
    };
    write().with_context(|| format!("cannot write the graph to {}", path.display()))
}

/// Prints events as they come: JSON lines, or text lines under a header (time, pid, parent,
/// command, what happened). Text holds no Rust debug notation and no raw control characters.
pub struct EventPrinter {
    json: bool,
    header_written: bool,
    /// The JSON line being written, kept to reuse its allocation.
    line: Vec<u8>,
}

/// The columns of a text line: time of day (UTC), pid, parent pid, command, what happened.
fn columns(time: &str, pid: &str, ppid: &str, comm: &str, what: &str) -> String {
    format!("{time:<12} {pid:>7} {ppid:>7} {comm:<15} {what}")
}

impl EventPrinter {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            header_written: false,
            line: Vec::new(),
        }
    }

    pub fn print(&mut self, out: &mut impl std::io::Write, event: &Event) -> std::io::Result<()> {
        if self.json {
            self.line.clear();
            agentscope_event::event_json::write_json_line(event, &mut self.line)?;
            return out.write_all(&self.line);
        }
        if !self.header_written {
            self.header_written = true;
            writeln!(
                out,
                "{}",
                columns("TIME (UTC)", "PID", "PPID", "COMM", "EVENT")
            )?;
        }
        writeln!(out, "{}", text_line(event))
    }
}

/// One JSON line: `value` (an object) with `schema_version` as its first field.
pub fn write_json_line(
    out: &mut impl std::io::Write,
    value: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value)?;
    agentscope_event::event_json::finish_json_line(&mut line, 0).map_err(std::io::Error::other)?;
    out.write_all(&line)
}

/// `HH:MM:SS.mmm` of a wall-clock time, UTC.
fn time_of_day(unix_ns: u64) -> String {
    let ms = (unix_ns / 1_000_000) % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// A command line as a shell would take it back: words with spaces or shell syntax quoted.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one event says, after the time and process columns.
fn what_happened(body: &EventBody) -> String {
    match body {
        EventBody::Exec {
            filename,
            argv,
            argv_truncated,
            ..
        } => format!(
            "exec {filename}: {}{}",
            shell_words(argv),
            if *argv_truncated { " …" } else { "" }
        ),
        EventBody::Fork { child_pid, .. } => format!("fork child {child_pid}"),
        EventBody::Exit {
            exit_code: Some(code),
        } => format!("exit {code}"),
        EventBody::Exit { exit_code: None } => "exit (status not known)".into(),
        EventBody::Open { path, ret, .. } if *ret < 0 => format!("open {path} failed ({ret})"),
        EventBody::Open { path, ret, .. } => format!("open {path} fd {ret}"),
        EventBody::Connect {
            addr, port, ret, ..
        } if *ret < 0 && *ret != -115 => format!("connect {addr}:{port} failed ({ret})"),
        EventBody::Connect {
            addr,
            port,
            payloads_sampled_out,
            ..
        } => format!(
            "connect {addr}:{port}{}",
            sampled_out_note(*payloads_sampled_out)
        ),
        EventBody::Accept {
            addr,
            port,
            ret,
            payloads_sampled_out,
            ..
        } => format!(
            "accept {addr}:{port} fd {ret}{}",
            sampled_out_note(*payloads_sampled_out)
        ),
        EventBody::TcpState {
            saddr,
            sport,
            daddr,
            dport,
            old_state,
            new_state,
            ..
        } => format!("tcp {saddr}:{sport} → {daddr}:{dport} {old_state} → {new_state}"),
        EventBody::Dns { queries, .. } => format!("dns {}", queries.join(", ")),
        EventBody::Data {
            source,
            direction,
            fd,
            total_len,
            data,
            ..
        } => {
            let preview: String = String::from_utf8_lossy(&data[..data.len().min(60)])
                .chars()
                .map(|c| if c.is_control() { '.' } else { c })
                .collect();
            let source = match source {
                PayloadSource::Tls => "tls",
                PayloadSource::Socket => "socket",
                PayloadSource::Pipe => "pipe",
                PayloadSource::Unknown => "data",
            };
            let verb = match direction {
                Direction::Egress => "sent",
                Direction::Ingress => "received",
                Direction::Unknown => "moved",
            };
            let size = if data.len() as u64 == *total_len {
                format!("{total_len} bytes")
            } else {
                format!("{} of {total_len} bytes", data.len())
            };
            format!("{source} {verb} fd {fd}, {size}: {preview}")
        }
        EventBody::Close { fd } => format!("close fd {fd}"),
        EventBody::TlsHello {
            server_name,
            alpn,
            coverage,
            ..
        } => {
            let mut text = format!(
                "tls hello to {}",
                server_name.as_deref().unwrap_or("(no SNI)")
            );
            if !alpn.is_empty() {
                text.push_str(&format!(" (ALPN {})", alpn.join(", ")));
            }
            if let Some(coverage) = coverage {
                text.push_str(&format!(": {}", coverage.describe()));
            }
            text
        }
        EventBody::Enforce(decision) => decision.describe(),
        EventBody::Package(package) => format!("package {}", package.describe()),
        EventBody::EscapeSyscall(call) => call.describe(),
        EventBody::HostPathWrite {
            path,
            mount_point,
            host_path,
            ..
        } => format!("write to {path}: host path {host_path} (mounted on {mount_point})"),
        EventBody::EnforcePolicy(policy) => policy.describe(),
        EventBody::ClusterObjects(objects) => objects.describe(),
        EventBody::PayloadsLeftOut {
            opaque_socket_bytes,
            on_request_bytes,
            sampled_out_bytes,
            running,
        } => format!(
            "payloads left out by the kernel{}: {opaque_socket_bytes} bytes of sockets of no \
             protocol agentscope reads, {on_request_bytes} bytes on request, \
             {sampled_out_bytes} bytes of sampled-out connections",
            if *running { " (still running)" } else { "" }
        ),
    }
}

/// What a connect or accept line adds when the kernel sampled the connection out.
fn sampled_out_note(sampled_out: bool) -> &'static str {
    if sampled_out {
        " (payloads sampled out)"
    } else {
        ""
    }
}

fn text_line(event: &Event) -> String {
    let h = &event.header;
    // comm, paths, argv and addresses are the traced processes' choice: no raw controls.
    escape_controls(&columns(
        &time_of_day(h.time_unix_ns),
        &h.pid.to_string(),
        &h.ppid.to_string(),
        &h.comm,
        &what_happened(&event.body),
    ))
    .into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use agentscope_event::event::Header;

    /// A terminal title change, a screen clear and a C1 control: what a hostile process names itself.
    pub(crate) const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J\u{9b}";

    fn event(body: EventBody) -> Event {
        Event {
            header: Header {
                ts_ns: 1,
                time_unix_ns: 1,
                pid: 42,
                tid: 42,
                ppid: 1,
                uid: 0,
                gid: 0,
                cgroup_id: 1,
                comm: HOSTILE.into(),
            },
            body,
        }
    }

    #[test]
    fn text_lines_hold_no_control_character() {
        let bodies = [
            EventBody::Exec {
                filename: format!("/tmp/{HOSTILE}"),
                argv: vec!["sh".into(), HOSTILE.into()],
                argv_truncated: false,
                filename_truncated: false,
            },
            EventBody::Open {
                syscall: "openat",
                path: format!("/tmp/{HOSTILE}"),
                path_truncated: false,
                dfd: -100,
                flags: 0,
                mode: 0,
                ret: 3,
            },
            EventBody::Connect {
                fd: 3,
                family: "unix",
                addr: format!("/run/{HOSTILE}"),
                port: 0,
                ret: 0,
                payloads_sampled_out: false,
            },
        ];
        for body in bodies {
            let line = text_line(&event(body));
            assert!(!line.chars().any(char::is_control), "{line:?}");
            assert!(line.contains("\\x1b]0;pwned\\x07\\x1b[2J\\x9b"), "{line}");
        }
    }

    /// Every JSON line starts with the schema version, and the event after it is unchanged.
    #[test]
    fn json_lines_say_their_schema_version_first() {
        let mut printer = EventPrinter::new(true);
        let mut out = Vec::new();
        let event = event(EventBody::Close { fd: 3 });
        printer.print(&mut out, &event).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("{\"schema_version\":1,\"ts_ns\":1,"),
            "{text}"
        );
        assert!(text.ends_with("}\n"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["kind"], "close");
        let back = agentscope_event::event_json::event_from_json(&value).unwrap();
        assert_eq!(back.header.pid, event.header.pid);
        let mut empty = Vec::new();
        write_json_line(&mut empty, &serde_json::json!({})).unwrap();
        assert_eq!(empty, b"{\"schema_version\":1}\n");
        let not_an_object = write_json_line(&mut Vec::new(), &serde_json::json!([1]));
        assert!(not_an_object.is_err());
    }

    /// Every kind of event reads as words: no `Some(0)`, no enum names, no `[..]` lists.
    #[test]
    fn text_lines_use_words_not_debug_notation() {
        let cases = [
            (EventBody::Exit { exit_code: Some(0) }, "exit 0"),
            (
                EventBody::Exit { exit_code: None },
                "exit (status not known)",
            ),
            (
                EventBody::Exec {
                    filename: "/usr/bin/psql".into(),
                    argv: vec!["psql".into(), "-c".into(), "SELECT 1".into(), "it's".into()],
                    argv_truncated: false,
                    filename_truncated: false,
                },
                "exec /usr/bin/psql: psql -c 'SELECT 1' 'it'\\''s'",
            ),
            (
                EventBody::Data {
                    source: PayloadSource::Pipe,
                    direction: Direction::Egress,
                    fd: 1,
                    conn_id: 0,
                    call_id: 0,
                    seq: 0,
                    offset: 0,
                    total_len: 3,
                    lost_bytes: 0,
                    last: true,
                    data: b"ok\n".to_vec(),
                },
                "pipe sent fd 1, 3 bytes: ok.",
            ),
            (
                EventBody::Dns {
                    queries: vec!["api.openai.com".into(), "example.org".into()],
                    fd: 3,
                    dport: 53,
                    len: 40,
                    data: vec![],
                },
                "dns api.openai.com, example.org",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(what_happened(&body), expected);
        }
        let mut printer = EventPrinter::new(false);
        let mut out = Vec::new();
        for _ in 0..2 {
            let mut e = event(EventBody::Close { fd: 3 });
            e.header.comm = "python3".into();
            e.header.time_unix_ns = 1_764_890_684_714_000_000;
            printer.print(&mut out, &e).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            3,
            "one header, then one line per event: {text}"
        );
        assert!(lines[0].starts_with("TIME (UTC)"), "{text}");
        assert!(lines[1].starts_with("23:24:44.714 "), "{text}");
        assert!(lines[1].ends_with("python3         close fd 3"), "{text}");
    }
}
