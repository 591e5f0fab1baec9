//! How events and the graph leave the CLI: one line per event on stdout (text, or JSON lines
//! with `--json`), and the graph JSON file. `collect` and `replay` print the same way.

use std::io::Write as _;

use agentscope_analysis::pipeline::Pipeline;
use agentscope_console::control_chars::escape_controls;
use agentscope_event::{Event, EventBody};
use anyhow::Context as _;

/// Writes the graph JSON (mode 0600, beside the target then renamed; never over one of
/// `inputs`: agentscope_files::output_file).
pub fn write_graph(
    path: &std::path::Path,
    pipeline: &Pipeline,
    inputs: &agentscope_files::output_file::Inputs,
) -> anyhow::Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = agentscope_files::output_file::AtomicFile::create(path, inputs)?;
        let mut writer = std::io::BufWriter::new(&mut file);
        serde_json::to_writer_pretty(&mut writer, &pipeline.snapshot())?;
        writer.flush()?;
        drop(writer);
        file.commit()
    };
    write().with_context(|| format!("cannot write the graph to {}", path.display()))
}

pub fn print_event(
    out: &mut impl std::io::Write,
    event: &Event,
    json: bool,
) -> std::io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, event)?;
        return writeln!(out);
    }
    let h = &event.header;
    let what = match &event.body {
        EventBody::Exec { filename, argv, .. } => format!("exec {filename} {argv:?}"),
        EventBody::Fork { child_pid, .. } => format!("fork child={child_pid}"),
        EventBody::Exit { exit_code } => format!("exit code={exit_code:?}"),
        EventBody::Open { path, ret, .. } => format!("open {path} -> {ret}"),
        EventBody::Connect {
            addr, port, ret, ..
        } => format!("connect {addr}:{port} -> {ret}"),
        EventBody::Accept {
            addr, port, ret, ..
        } => format!("accept {addr}:{port} -> {ret}"),
        EventBody::TcpState {
            saddr,
            sport,
            daddr,
            dport,
            old_state,
            new_state,
            ..
        } => {
            format!("tcp {saddr}:{sport} -> {daddr}:{dport} {old_state} -> {new_state}")
        }
        EventBody::Dns { queries, .. } => format!("dns {queries:?}"),
        EventBody::Data {
            source,
            direction,
            fd,
            seq,
            total_len,
            data,
            ..
        } => {
            let preview: String = String::from_utf8_lossy(&data[..data.len().min(60)])
                .chars()
                .map(|c| if c.is_control() { '.' } else { c })
                .collect();
            format!(
                "{source:?} {direction:?} fd={fd} seq={seq} {}/{total_len} bytes {preview}",
                data.len()
            )
        }
        EventBody::Close { fd } => format!("close fd={fd}"),
        EventBody::TlsHello {
            fd,
            server_name,
            alpn,
            coverage,
            ..
        } => format!(
            "tls_hello fd={fd} sni={} alpn={alpn:?} {}",
            server_name.as_deref().unwrap_or("-"),
            coverage.as_ref().map(|c| c.describe()).unwrap_or_default()
        ),
    };
    // comm, paths, argv and addresses are the traced processes' choice: no raw controls.
    let line = format!("{:>7} {:>7} {:<15} {what}", h.pid, h.ppid, h.comm);
    writeln!(out, "{}", escape_controls(&line))
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
            },
        ];
        for body in bodies {
            let mut out = Vec::new();
            print_event(&mut out, &event(body), false).unwrap();
            let line = String::from_utf8(out).unwrap();
            let line = line.strip_suffix('\n').unwrap();
            assert!(!line.chars().any(char::is_control), "{line:?}");
            assert!(line.contains("\\x1b]0;pwned\\x07\\x1b[2J\\x9b"), "{line}");
        }
    }
}
