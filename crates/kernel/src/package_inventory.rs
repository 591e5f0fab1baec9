//! The collector's package inventory: when a process opens a file inside a package
//! ([`crate::package_location`]), the package's name and version are read from its metadata
//! through the process's own root ([`crate::package_metadata`]) and handed out as a `package`
//! event, once per process and package. The collector is the lowest layer that sees the
//! processes' file systems; the event is what a recording keeps, so the AI-BOM of a replay
//! names the versions the live run read.
//!
//! Bounded: each batch of events may read at most [`READS_PER_BATCH`] packages' metadata (a
//! package not read for want of budget is tried again at its next open), results are cached
//! per root file system and package directory ([`CACHED_PACKAGES`], [`CACHED_DIRS`]), and at
//! most [`PACKAGES_PER_PROCESS`] packages of [`PROCESSES`] processes are remembered as
//! reported. Processes already running when the collector started are inventoried only for
//! the files they open afterwards.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use agentscope_event::package::{PackageEcosystem, PackageFound};

use crate::package_location::{package_location, PackageLocation};
use crate::package_metadata::{read_npm, DistributionIndex};

/// Packages whose metadata may be read per batch of events.
pub const READS_PER_BATCH: usize = 64;
/// Packages remembered as reported per process; later ones are not reported.
pub const PACKAGES_PER_PROCESS: usize = 2048;
/// Processes whose reported packages are remembered (all forgotten at once past this).
pub const PROCESSES: usize = 16_384;
/// Package results cached (all dropped at once past this).
pub const CACHED_PACKAGES: usize = 8192;
/// `site-packages` directory listings cached (all dropped at once past this).
pub const CACHED_DIRS: usize = 256;

/// A root file system, as the device and inode of a process's `/proc/PID/root`.
type RootId = (u64, u64);

/// What a process loaded that was already reported: (ecosystem, packages directory, name).
type Reported = (PackageEcosystem, String, String);

pub struct PackageInventory {
    proc_root: PathBuf,
    reported: HashMap<u32, HashSet<Reported>>,
    results: HashMap<(RootId, PackageEcosystem, String), PackageFound>,
    indexes: HashMap<(RootId, String), Result<DistributionIndex, String>>,
    reads_left: usize,
}

impl PackageInventory {
    pub fn new(proc_root: &Path) -> Self {
        Self {
            proc_root: proc_root.to_path_buf(),
            reported: HashMap::new(),
            results: HashMap::new(),
            indexes: HashMap::new(),
            reads_left: READS_PER_BATCH,
        }
    }

    /// A new batch of events: a new read budget.
    pub fn new_batch(&mut self) {
        self.reads_left = READS_PER_BATCH;
    }

    /// The process exited: its packages may be reported again for a new process of that pid.
    pub fn exit(&mut self, pid: u32) {
        self.reported.remove(&pid);
    }

    /// Process `pid` opened `path`: the package it belongs to, when that is new for the
    /// process and its metadata could be looked at.
    pub fn opened(&mut self, pid: u32, path: &str) -> Option<PackageFound> {
        let location = package_location(path)?;
        let key = (
            location.ecosystem,
            location.packages_dir.clone(),
            location.name.clone(),
        );
        if self
            .reported
            .get(&pid)
            .is_some_and(|seen| seen.contains(&key))
        {
            return None;
        }
        if self.reported.len() >= PROCESSES && !self.reported.contains_key(&pid) {
            self.reported.clear();
        }
        if self
            .reported
            .get(&pid)
            .is_some_and(|seen| seen.len() >= PACKAGES_PER_PROCESS)
        {
            return None;
        }
        let root = self.proc_root.join(pid.to_string()).join("root");
        // The process is gone (nothing to read), or is not ours to see.
        let root_id = std::fs::metadata(&root).map(|m| (m.dev(), m.ino())).ok()?;
        let cache_key = (root_id, location.ecosystem, location.package_dir());
        let found = match self.results.get(&cache_key) {
            Some(found) => found.clone(),
            None => {
                if self.reads_left == 0 {
                    return None;
                }
                self.reads_left -= 1;
                let found = self.read(&root, root_id, &location);
                if self.results.len() >= CACHED_PACKAGES {
                    self.results.clear();
                }
                self.results.insert(cache_key, found.clone());
                found
            }
        };
        self.reported.entry(pid).or_default().insert(key);
        Some(found)
    }

    fn read(&mut self, root: &Path, root_id: RootId, location: &PackageLocation) -> PackageFound {
        let package_dir = location.package_dir();
        let metadata = match location.ecosystem {
            PackageEcosystem::Npm => read_npm(root, &package_dir),
            PackageEcosystem::Pypi => {
                if self.indexes.len() >= CACHED_DIRS {
                    self.indexes.clear();
                }
                let index = self
                    .indexes
                    .entry((root_id, location.packages_dir.clone()))
                    .or_insert_with(|| DistributionIndex::read(root, &location.packages_dir));
                match index {
                    Err(error) => Err(error.clone()),
                    Ok(index) => {
                        match index.distribution_of(
                            root,
                            &location.name,
                            location.namespace_child.as_deref(),
                        ) {
                            Some(distribution) => index.read_metadata(root, &distribution),
                            None => Err(format!(
                                "no *.dist-info or *.egg-info in {} provides module {}",
                                location.packages_dir, location.name
                            )),
                        }
                    }
                }
            }
        };
        match metadata {
            Ok(metadata) => PackageFound {
                ecosystem: location.ecosystem,
                name: metadata.name,
                version: Some(metadata.version),
                package_dir,
                metadata_path: Some(metadata.path),
                error: None,
            },
            Err(error) => PackageFound {
                ecosystem: location.ecosystem,
                name: location.name.clone(),
                version: None,
                package_dir,
                metadata_path: None,
                error: Some(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /proc whose process 7 has `root` as its root, and process 8 a second root.
    fn proc_with_roots(roots: &[(u32, &Path)]) -> tempfile::TempDir {
        let proc = tempfile::tempdir().unwrap();
        for (pid, root) in roots {
            std::fs::create_dir_all(proc.path().join(pid.to_string())).unwrap();
            std::os::unix::fs::symlink(root, proc.path().join(pid.to_string()).join("root"))
                .unwrap();
        }
        proc
    }

    fn npm_package(root: &Path, name: &str, version: &str) {
        let dir = root.join("app/node_modules").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            format!(r#"{{"name": "{name}", "version": "{version}"}}"#),
        )
        .unwrap();
    }

    #[test]
    fn once_per_process_and_package_with_a_read_budget() {
        let root = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        for i in 0..READS_PER_BATCH + 2 {
            npm_package(root.path(), &format!("p{i}"), "1.0.0");
        }
        npm_package(other.path(), "p0", "2.0.0");
        let proc = proc_with_roots(&[(7, root.path()), (8, other.path()), (9, root.path())]);
        let mut inventory = PackageInventory::new(proc.path());

        let found = inventory
            .opened(7, "/app/node_modules/p0/index.js")
            .unwrap();
        assert_eq!(
            (found.name.as_str(), found.version.as_deref()),
            ("p0", Some("1.0.0"))
        );
        // The same package again: nothing; another file of it: nothing.
        assert_eq!(inventory.opened(7, "/app/node_modules/p0/index.js"), None);
        assert_eq!(inventory.opened(7, "/app/node_modules/p0/lib/a.js"), None);
        // Another process with its own root reads its own version.
        let theirs = inventory
            .opened(8, "/app/node_modules/p0/index.js")
            .unwrap();
        assert_eq!(theirs.version.as_deref(), Some("2.0.0"));
        // Files outside packages, and processes that do not exist: nothing.
        assert_eq!(inventory.opened(7, "/etc/passwd"), None);
        assert_eq!(
            inventory.opened(4242, "/app/node_modules/p1/index.js"),
            None
        );

        // The budget: two reads spent above, so READS_PER_BATCH - 2 more now.
        let reported = (1..READS_PER_BATCH + 2)
            .filter(|i| {
                inventory
                    .opened(7, &format!("/app/node_modules/p{i}/index.js"))
                    .is_some()
            })
            .count();
        assert_eq!(reported, READS_PER_BATCH - 2);
        // Process 9 shares process 7's root: cached packages cost no read, even now.
        assert!(inventory
            .opened(9, "/app/node_modules/p1/index.js")
            .is_some());
        // Next batch: the ones left out are read at their next open.
        inventory.new_batch();
        let late = format!("/app/node_modules/p{}/index.js", READS_PER_BATCH + 1);
        assert!(inventory.opened(7, &late).is_some());
        // After an exit the pid's packages are reported again.
        inventory.exit(7);
        assert!(inventory
            .opened(7, "/app/node_modules/p0/index.js")
            .is_some());
    }

    #[test]
    fn unreadable_metadata_is_reported_with_its_error() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app/node_modules/broken");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("package.json"), "{not json").unwrap();
        let sp = root.path().join("venv/lib/python3.11/site-packages/loose");
        std::fs::create_dir_all(&sp).unwrap();
        let proc = proc_with_roots(&[(7, root.path())]);
        let mut inventory = PackageInventory::new(proc.path());
        let broken = inventory
            .opened(7, "/app/node_modules/broken/index.js")
            .unwrap();
        assert_eq!(broken.version, None);
        assert!(broken.error.unwrap().contains("not JSON"));
        let loose = inventory
            .opened(7, "/venv/lib/python3.11/site-packages/loose/__init__.py")
            .unwrap();
        assert_eq!((loose.name.as_str(), loose.version), ("loose", None));
        assert!(loose.error.unwrap().contains("no *.dist-info"));
    }
}
