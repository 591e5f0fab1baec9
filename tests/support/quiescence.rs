//! When a process has gone quiet: its CPU time (user and system, from /proc) has stopped
//! growing. A test that stops the collector waits for this first, so what the agent did last
//! has been processed: the collector's stop leaves it 200 ms, and a debug build on a loaded
//! host (three test lanes and clippy beside) was once more than 700 ms behind and printed a
//! conversation without its last response.

use std::time::{Duration, Instant};

/// How long a look at the CPU time spans.
const WINDOW: Duration = Duration::from_millis(200);
/// Clock ticks (10 ms each) a look may add and still count as quiet: an idle debug collector
/// takes about one per 250 ms (its periodic work), a working one one per 10 ms it runs.
const QUIET_TICKS: u64 = 3;

/// User and system CPU time of `pid` in clock ticks; `None` once it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised name, which may itself hold spaces or ')':
    // state is the first, utime the 12th and stime the 13th.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Waits at least `at_least`, then until two looks in a row find `pid` quiet, or `at_most`
/// has passed (a process that never goes quiet is stopped anyway; the test then judges what
/// was captured), or the process is gone.
pub fn wait_until_quiet(pid: u32, at_least: Duration, at_most: Duration) {
    let start = Instant::now();
    std::thread::sleep(at_least);
    let mut quiet_looks = 0;
    let Some(mut before) = cpu_ticks(pid) else {
        return;
    };
    while quiet_looks < 2 && start.elapsed() < at_most {
        std::thread::sleep(WINDOW);
        let Some(now) = cpu_ticks(pid) else {
            return;
        };
        quiet_looks = if now - before <= QUIET_TICKS {
            quiet_looks + 1
        } else {
            0
        };
        before = now;
    }
}
