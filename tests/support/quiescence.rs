//! When a process has gone quiet: its CPU clock (user and system time of all its threads,
//! from the kernel) has stopped moving. A test that stops the collector waits for this first,
//! so what the agent did last has been processed: the collector's stop leaves it 200 ms, and a
//! debug build on a loaded host (three test lanes and clippy beside) was once more than 700 ms
//! behind and printed a conversation without its last response. The `agent_overhead` bench
//! (`crates/cli/benches/agent_overhead.rs`, which includes this file) waits for it before
//! reading the collector's CPU of a window, and reads every process's CPU with
//! [`process_cpu_ns`].

use std::time::{Duration, Instant};

/// The kernel's CPU clock of a whole process: user and system time of all its threads, in
/// nanoseconds; `None` once it is gone.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: clock_getcpuclockid writes one clockid_t to a valid pointer.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return None;
    }
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
}

/// What counts as quiet.
pub struct Quiet {
    /// Waited before the first look.
    pub at_least: Duration,
    /// How long a look at the CPU clock spans.
    pub look: Duration,
    /// A look that adds less CPU time than this is quiet.
    pub less_cpu_than: Duration,
    /// Quiet looks in a row that end the wait.
    pub looks_in_a_row: u32,
    /// The wait ends by then whatever the process does (counted from the start).
    pub at_most: Duration,
}

/// Waits until `pid` is [`Quiet`], or `at_most` has passed (a process that never goes quiet
/// is measured or stopped anyway), or the process is gone.
pub fn wait_until_quiet(pid: u32, quiet: &Quiet) {
    let start = Instant::now();
    std::thread::sleep(quiet.at_least);
    let less_cpu_than = quiet.less_cpu_than.as_nanos() as u64;
    let mut quiet_looks = 0;
    let Some(mut before) = process_cpu_ns(pid) else {
        return;
    };
    while quiet_looks < quiet.looks_in_a_row && start.elapsed() < quiet.at_most {
        std::thread::sleep(quiet.look);
        let Some(now) = process_cpu_ns(pid) else {
            return;
        };
        quiet_looks = if now - before < less_cpu_than {
            quiet_looks + 1
        } else {
            0
        };
        before = now;
    }
}
