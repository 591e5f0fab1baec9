//! Governed files found again while enforcing (issue 17, docs/enforcement.md "Files").
//!
//! The collector resolves an agent's governed files in the agent's root when enforcement
//! begins, and the kernel then judges opens by those files' inodes (and, for a volume the
//! kubelet writes atomically, by file system and name). A file that is not there yet is not
//! governed by that: a secret written after the agent started, a volume mounted into the
//! agent's mount namespace after the collector looked, or a file replaced by a new one at the
//! same path (`passwd` renames a new `/etc/shadow` into place: a new inode). So every
//! [`REFRESH_INTERVAL`] the collector asks its [`GovernedFileFinder`] (given by the caller,
//! which knows each agent's processes and its policy's allowed files) for the agent's
//! governed files as they are now, governs those not governed yet, and reports them (an
//! `enforce_policy` event, `files_added`). What this leaves open, a file that appears and is
//! opened within one interval, is stated in docs/enforcement.md.

use std::sync::Arc;
use std::time::Duration;

use crate::enforcement_files::GovernedFile;

/// How often each agent's governed files are looked for again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// An agent's governed files as they are now, by the agent's number (`None`: no process of
/// the agent to look in, or its policy governs no files).
pub type FindGovernedFiles = dyn Fn(u32) -> Option<Vec<GovernedFile>> + Send + Sync;

/// The caller's way of finding an agent's governed files (the collector cannot: which files
/// are sensitive, and which a policy allows, is decided above it).
#[derive(Clone)]
pub struct GovernedFileFinder(pub Arc<FindGovernedFiles>);

impl std::fmt::Debug for GovernedFileFinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GovernedFileFinder")
    }
}

/// Those of `found` that `governed` does not cover: a file is covered by a rule for the same
/// file (device and inode, whichever path reached it), and a file of an atomically written
/// volume also by a name rule of the same file system and name (each rotation is a new inode
/// that rule already governs, so rotations add nothing).
pub fn not_yet_governed(governed: &[GovernedFile], found: Vec<GovernedFile>) -> Vec<GovernedFile> {
    let mut out: Vec<GovernedFile> = Vec::new();
    for file in found {
        let covered = governed.iter().chain(out.iter()).any(|rule| {
            rule.id == file.id
                || (file.atomic_name.is_some()
                    && rule.atomic_name == file.atomic_name
                    && rule.id.dev == file.id.dev)
        });
        if !covered {
            out.push(file);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentscope_common::FileId;

    fn file(path: &str, dev: u32, ino: u64, atomic_name: Option<&str>) -> GovernedFile {
        GovernedFile {
            path: path.into(),
            id: FileId { dev, _pad: 0, ino },
            atomic_name: atomic_name.map(str::to_string),
        }
    }

    const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    #[test]
    fn a_file_that_appeared_or_was_replaced_is_new_and_a_rotation_is_not() {
        let governed = vec![
            file("/etc/shadow", 8, 100, None),
            file(TOKEN, 40, 7, Some("token")),
        ];
        let found = vec![
            // Unchanged.
            file("/etc/shadow", 8, 100, None),
            // The token rotated: a new inode, the same file system and name.
            file(TOKEN, 40, 9, Some("token")),
            // The same token through /run (one file, two paths).
            file(
                "/run/secrets/kubernetes.io/serviceaccount/token",
                40,
                9,
                Some("token"),
            ),
            // Written since enforcement began.
            file("/root/.aws/credentials", 8, 300, None),
            // Replaced (a new inode at the same path).
            file("/etc/gshadow", 8, 401, None),
        ];
        let new = not_yet_governed(&governed, found);
        let paths: Vec<&str> = new.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/root/.aws/credentials", "/etc/gshadow"]);
        // A token volume mounted after enforcement began (another file system) is new.
        let remounted = not_yet_governed(&governed, vec![file(TOKEN, 41, 9, Some("token"))]);
        assert_eq!(remounted.len(), 1);
        // And a file found twice in one look is governed once.
        let twice = not_yet_governed(
            &[],
            vec![
                file("/etc/shadow", 8, 100, None),
                file("/etc/shadow", 8, 100, None),
            ],
        );
        assert_eq!(twice.len(), 1);
    }
}
