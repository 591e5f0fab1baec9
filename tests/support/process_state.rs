//! What a process that did not exit in time was doing, for the failure message: each thread's
//! name, scheduler state, wait channel and kernel stack, its user-space stacks (gdb, bounded),
//! and its child processes. A stop that hangs once in dozens of runs is otherwise a panic
//! message and nothing to go on.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long gdb may take to attach and print every thread's stack.
const GDB_LIMIT: Duration = Duration::from_secs(20);

/// A description of `pid` and its threads and children, as far as /proc and gdb show them.
pub fn describe(pid: u32) -> String {
    let mut out = String::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            let mut tids: Vec<u32> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            tids.sort_unstable();
            tids
        })
        .unwrap_or_default();
    if tasks.is_empty() {
        let _ = writeln!(
            out,
            "pid {pid}: no threads in /proc (exited, or a zombie not reaped)"
        );
    }
    for tid in tasks {
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/{file}"))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let stat = read("stat");
        // The state follows the parenthesised name, which may itself hold spaces or ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?");
        let _ = writeln!(
            out,
            "thread {tid} ({}): state {state}, wchan {}\n  kernel stack:\n    {}",
            read("comm"),
            read("wchan"),
            read("stack").replace('\n', "\n    ")
        );
    }
    let children = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&other| {
            std::fs::read_to_string(format!("/proc/{other}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        });
    for child in children {
        let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
        let _ = writeln!(out, "child {child} ({})", comm.trim());
    }
    let _ = writeln!(out, "user-space stacks:\n{}", gdb_backtraces(pid));
    out
}

/// Every thread's stack from gdb in batch mode, or why there are none.
fn gdb_backtraces(pid: u32) -> String {
    let child = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-p",
            &pid.to_string(),
            "-ex",
            "thread apply all bt 30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => return format!("(gdb did not start: {err})"),
    };
    // Read while gdb writes: a stack dump can outgrow the pipe.
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let deadline = Instant::now() + GDB_LIMIT;
    let finished = loop {
        match child.try_wait() {
            Ok(Some(_)) => break true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => break false,
        }
    };
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = reader.join().unwrap_or_default();
    if finished {
        text
    } else {
        format!("(gdb took longer than {GDB_LIMIT:?}; what it printed:)\n{text}")
    }
}
