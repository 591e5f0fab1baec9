//! Containers for the end-to-end tests: podman as this machine runs it (rootful, runc: crun
//! refuses its hybrid cgroups), a container removed however a test ends, and a base image
//! that runs the host's own programs (no registry is reachable, so images are imported from a
//! rootfs built here).

use std::path::Path;
use std::process::{Command, Stdio};

/// Every podman command of the tests.
pub fn podman() -> Command {
    let mut command = Command::new("podman");
    command.arg("--runtime").arg("runc");
    command
}

/// Runs `podman ARGS`, asserts it succeeded, returns its trimmed standard output.
pub fn podman_output(args: &[&str]) -> String {
    let output = podman().args(args).output().expect("podman (make setup)");
    assert!(
        output.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The limits `podman run` is given: runc can set these here, and podman's defaults it cannot.
pub const RUN_LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=4096:4096",
];

/// A container removed however the test ends.
pub struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Imports, as `tag`, an image with nothing but the merged-/usr symlinks and the directories
/// `mount_points` (e.g. `usr`, `etc`, `tmp`): a container mounts the host's /usr and /etc
/// read-only over them, so it runs the host's programs in a cgroup and namespaces of its own.
pub fn host_programs_image(dir: &Path, tag: &str, mount_points: &[&str]) -> String {
    let name = tag.rsplit('/').next().unwrap_or(tag).replace(':', "-");
    let rootfs = dir.join(format!("{name}-rootfs"));
    for sub in mount_points {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(target, rootfs.join(link)).unwrap();
    }
    let tar = dir.join(format!("{name}-rootfs.tar"));
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    podman_output(&["import", tar.to_str().unwrap(), tag]);
    tag.to_string()
}
