//! Reading the state that existed before the collector started, from /proc: processes with
//! their parents, executables and command lines, and the files each one has mapped (for
//! finding TLS libraries to probe).

use std::path::{Path, PathBuf};

/// A process as seen in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: String,
    pub exe: Option<PathBuf>,
    pub argv: Vec<String>,
}

/// Parses `/proc/PID/stat` content into (comm, ppid). The comm sits in parentheses and may
/// itself hold spaces and parentheses, so the fields after it are found from the last ')'.
pub fn parse_stat(stat: &str) -> Option<(String, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    if close < open {
        return None;
    }
    let comm = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, ppid))
}

fn parse_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Reads one process; `None` if it vanished meanwhile.
pub fn read_process(proc_root: &Path, pid: u32) -> Option<ProcEntry> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, ppid) = parse_stat(&stat)?;
    let uid = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| parse_uid(&s))
        .unwrap_or(0);
    let exe = std::fs::read_link(dir.join("exe")).ok();
    let argv = std::fs::read(dir.join("cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(ProcEntry {
        pid,
        ppid,
        uid,
        comm,
        exe,
        argv,
    })
}

/// Every process currently in /proc. Kernel threads are included (their exe is `None`).
pub fn list_processes(proc_root: &Path) -> Vec<ProcEntry> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| read_process(proc_root, pid))
        .collect()
}

/// Files mapped by a process (from /proc/PID/maps), deduplicated, in first-seen order.
pub fn mapped_files(proc_root: &Path, pid: u32) -> Vec<PathBuf> {
    let Ok(maps) = std::fs::read_to_string(proc_root.join(pid.to_string()).join("maps")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode pathname
        let path = line
            .splitn(6, ' ')
            .nth(5)
            .map(str::trim_start)
            .unwrap_or("");
        if path.starts_with('/') && !path.ends_with(" (deleted)") {
            let path = PathBuf::from(path);
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files
}

/// `pids` and all their current descendants.
pub fn with_descendants(processes: &[ProcEntry], pids: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = pids.to_vec();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        for p in processes {
            if p.ppid == parent && !out.contains(&p.pid) {
                out.push(p.pid);
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let stat = "1234 (my (weird) prog) S 77 1234 1234 0 -1 4194560 100";
        assert_eq!(parse_stat(stat), Some(("my (weird) prog".to_string(), 77)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 ) x ("), None);
    }

    #[test]
    fn reads_own_process() {
        let me = read_process(Path::new("/proc"), std::process::id()).expect("own /proc entry");
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.exe.is_some());
        assert!(!mapped_files(Path::new("/proc"), me.pid).is_empty());
    }

    #[test]
    fn descendants_are_collected_transitively() {
        let entry = |pid, ppid| ProcEntry {
            pid,
            ppid,
            uid: 0,
            comm: String::new(),
            exe: None,
            argv: vec![],
        };
        let procs = vec![entry(10, 1), entry(11, 10), entry(12, 11), entry(13, 1)];
        let mut got = with_descendants(&procs, &[10]);
        got.sort();
        assert_eq!(got, vec![10, 11, 12]);
    }
}
