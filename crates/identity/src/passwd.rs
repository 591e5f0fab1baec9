//! User names for uids, as the process itself would see them.
//!
//! A uid means whatever the process's own `/etc/passwd` says, and containers ship their own,
//! so the file is read through `/proc/PID/root` (links resolved inside that root). Parsed files are cached by (device, inode,
//! modification time): all processes of one container image share one parse, and an edited
//! file is read again. Which file a running process reads is remembered until its exit, so a
//! lookup made after the process is gone (the collector runs behind the kernel on a loaded
//! node) still names its users.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::process_root;
use crate::remembered_processes::RememberedProcesses;

/// Files larger than this are not read (a passwd file with ten thousand users is ~1 MiB).
const MAX_PASSWD_BYTES: u64 = 8 * 1024 * 1024;

/// Cached passwd files beyond this many are dropped all at once (one per image in practice).
const MAX_CACHED_FILES: usize = 1024;

/// uid to name from passwd(5) content. Malformed lines are skipped; the first entry of a uid
/// wins, as with getpwuid.
pub fn parse_passwd(content: &str) -> HashMap<u32, String> {
    let mut users = HashMap::new();
    for line in content.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(':');
        let (Some(name), Some(_password), Some(uid)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        if !name.is_empty() {
            users.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    users
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileVersion {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// User-name lookups through each process's own root.
#[derive(Debug)]
pub struct PasswdCache {
    proc_root: PathBuf,
    files: HashMap<FileVersion, HashMap<u32, String>>,
    /// The file each process read while it ran, until [`PasswdCache::forget`].
    file_of_process: RememberedProcesses<FileVersion>,
}

impl PasswdCache {
    pub fn new(proc_root: &Path) -> PasswdCache {
        PasswdCache {
            proc_root: proc_root.to_path_buf(),
            files: HashMap::new(),
            file_of_process: RememberedProcesses::default(),
        }
    }

    /// `pid` exited: its pid may be reused by a process with another root.
    pub fn forget(&mut self, pid: u32) {
        self.file_of_process.forget(pid);
    }

    /// The name of `uid` in `pid`'s /etc/passwd; `None` if it has no passwd file or the uid is
    /// not in it, or the process is gone and was never looked up while it ran.
    pub fn user_name(&mut self, pid: u32, uid: u32) -> Option<String> {
        let process = self.proc_root.join(pid.to_string());
        let opened = process_root::open_in_root(&process.join("root"), "/etc/passwd");
        let (file, meta) = match opened {
            Ok(opened) => opened,
            Err(_) if !process.exists() => {
                // Gone: the file it read while it ran, if that parse is still cached.
                let version = self.file_of_process.get(pid)?;
                return self.files.get(version)?.get(&uid).cloned();
            }
            Err(_) => return None,
        };
        let version = FileVersion {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        };
        if !self.files.contains_key(&version) {
            let content = process_root::read_limited(file, MAX_PASSWD_BYTES).ok()?;
            if self.files.len() >= MAX_CACHED_FILES {
                self.files.clear();
            }
            self.files
                .insert(version, parse_passwd(&String::from_utf8_lossy(&content)));
        }
        self.file_of_process.note(pid, version);
        self.files.get(&version)?.get(&uid).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\nnobody:x:65534:65534::/:/sbin/nologin\n\
             bad:x:notanumber:0::/:\n:x:5:5::/:\nagent:x:1000:1000::/home/agent:/bin/sh\ntoor:x:0:0::/:\n",
        );
        assert_eq!(users.get(&0).map(String::as_str), Some("root"));
        assert_eq!(users.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(users.get(&1000).map(String::as_str), Some("agent"));
        assert_eq!(users.get(&5), None);
        assert_eq!(users.len(), 3);
    }

    /// A /proc with process 7, whose root's /etc/passwd names uid 1000 `agent`.
    fn process_7_with_an_agent_user() -> (tempfile::TempDir, PasswdCache) {
        let proc_root = tempfile::tempdir().unwrap();
        let etc = proc_root.path().join("7/root/etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("passwd"), "agent:x:1000:1000::/:/bin/sh\n").unwrap();
        let cache = PasswdCache::new(proc_root.path());
        (proc_root, cache)
    }

    #[test]
    fn reads_through_the_process_root_and_notices_edits() {
        let (proc_root, mut cache) = process_7_with_an_agent_user();
        let etc = proc_root.path().join("7/root/etc");
        assert_eq!(cache.user_name(7, 1000).as_deref(), Some("agent"));
        assert_eq!(cache.user_name(7, 1001), None);
        assert_eq!(cache.user_name(8, 1000), None);
        // A replaced file is a new inode: read again.
        std::fs::write(etc.join("passwd.new"), "renamed:x:1000:1000::/:/bin/sh\n").unwrap();
        std::fs::rename(etc.join("passwd.new"), etc.join("passwd")).unwrap();
        assert_eq!(cache.user_name(7, 1000).as_deref(), Some("renamed"));
    }

    #[test]
    fn a_process_gone_keeps_the_names_it_had_until_its_exit_is_told() {
        let (proc_root, mut cache) = process_7_with_an_agent_user();
        assert_eq!(cache.user_name(7, 1000).as_deref(), Some("agent"));
        // Exited and reaped (its /proc entry, root and all, is gone) before the lookup.
        std::fs::remove_dir_all(proc_root.path().join("7")).unwrap();
        assert_eq!(cache.user_name(7, 1000).as_deref(), Some("agent"));
        assert_eq!(cache.user_name(7, 0), None);
        // Its exit came through: the pid is free for another process.
        cache.forget(7);
        assert_eq!(cache.user_name(7, 1000), None);
        // A running process without a passwd file is not answered from another's.
        std::fs::create_dir_all(proc_root.path().join("7/root")).unwrap();
        assert_eq!(cache.user_name(7, 1000), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_content_never_panics(content in "\\PC{0,300}") {
            let _ = parse_passwd(&content);
        }
    }
}
