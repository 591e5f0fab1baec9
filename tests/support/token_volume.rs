//! A service-account token volume for the privileged tests (tests/enforcement.rs,
//! tests/enforcement_ops.rs): a tmpfs written the way the kubelet's AtomicWriter writes a
//! projected volume, so file enforcement is tested against real symlink swaps and rotations.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A service-account token volume as the kubelet writes one: a tmpfs of its own; each
/// generation in a `..<timestamp>` directory; `..data` linking to the current one, swapped by
/// a rename; `token` and `namespace` linking through `..data` (the kubelet's AtomicWriter).
pub struct TokenVolume {
    dir: PathBuf,
    current: Option<PathBuf>,
    generation: u32,
}

impl TokenVolume {
    pub fn mount(dir: &Path) -> TokenVolume {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {dir:?}");
        TokenVolume {
            dir: dir.to_path_buf(),
            current: None,
            generation: 0,
        }
    }

    /// Writes a new generation, swaps `..data` to it and removes the previous one; returns the
    /// new token's inode.
    pub fn write(&mut self, token: &str) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        self.generation += 1;
        let name = format!(
            "..2026_12_05_06_00_{:02}.{}",
            self.generation,
            41 + self.generation
        );
        let generation = self.dir.join(&name);
        std::fs::create_dir(&generation).unwrap();
        std::fs::write(generation.join("token"), token).unwrap();
        std::fs::write(
            generation.join("namespace"),
            super::kubernetes::SUPPORT_AGENT_NAMESPACE,
        )
        .unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for file in ["token", "namespace"] {
            let link = self.dir.join(file);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
            }
        }
        if let Some(previous) = self.current.replace(generation.clone()) {
            std::fs::remove_dir_all(previous).unwrap();
        }
        std::fs::metadata(generation.join("token")).unwrap().ino()
    }
}

impl Drop for TokenVolume {
    fn drop(&mut self) {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; a lazy unmount of the tmpfs this guard mounted.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    }
}
