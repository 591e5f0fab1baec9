//! Which sensitive files an agent's file policy governs, found in the agent's own root when
//! enforcement begins (docs/enforcement.md, "Files").
//!
//! The kernel cannot run the file classifier on every open, so the collector gives it the
//! concrete files: the well-known secret locations of [`CATALOGUE`] (under `/root` and each
//! `/home/*` for the per-user ones), kept when the file classifier rates them a secret of
//! medium or high sensitivity (so enforcement and detection agree on what is sensitive),
//! present in the agent's root, and not one the policy allows (`enforcement.allow.files`,
//! compared by the file they resolve to, so `/run/…` and `/var/run/…` are one file).
//!
//! Each is resolved with `openat2(RESOLVE_IN_ROOT)` (links are resolved inside the agent's
//! root, never the collector's) to its device and inode. A file whose directory holds the
//! kubelet's `..data` link to the same file (a service-account token, a projected secret) is
//! also governed by its file system and name, so a rotation (a new inode in a new
//! `..<timestamp>` directory, `..data` swapped to it) is governed too.

use std::collections::BTreeSet;
use std::path::Path;

use agentscope_identity::process_root::open_in_root;
use agentscope_kernel::enforcement_files::{GovernedFile, MAX_RULE_NAME};
use agentscope_kernel::output_tracking::file_id;
use agentscope_reconstruct::file_access::{classify, FileCategory, Sensitivity};

/// Secret files at fixed places.
pub const CATALOGUE: &[&str] = &[
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/run/secrets/kubernetes.io/serviceaccount/token",
    "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    "/var/run/secrets/azure/tokens/azure-identity-token",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
];

/// Secret files in each home directory.
pub const HOME_CATALOGUE: &[&str] = &[
    ".ssh/id_rsa",
    ".ssh/id_ecdsa",
    ".ssh/id_ed25519",
    ".ssh/id_dsa",
    ".aws/credentials",
    ".kube/config",
    ".docker/config.json",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".config/gcloud/application_default_credentials.json",
    ".azure/accessTokens.json",
];

/// At most this many home directories are looked into.
const MAX_HOMES: usize = 256;

/// Whether the file classifier calls `path` a secret worth enforcing.
fn sensitive(path: &str) -> bool {
    let class = classify(path);
    matches!(class.category, FileCategory::Secret(_))
        && matches!(class.sensitivity, Sensitivity::Medium | Sensitivity::High)
}

/// The catalogue's paths for a root: the fixed ones, then each home's.
fn candidates(root: &Path) -> Vec<String> {
    let mut homes = vec!["/root".to_string()];
    if let Ok(entries) = std::fs::read_dir(root.join("home")) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !name.contains('/'))
            .collect();
        names.sort();
        homes.extend(
            names
                .into_iter()
                .take(MAX_HOMES)
                .map(|n| format!("/home/{n}")),
        );
    }
    let mut out: Vec<String> = CATALOGUE.iter().map(|p| p.to_string()).collect();
    for home in homes {
        out.extend(HOME_CATALOGUE.iter().map(|file| format!("{home}/{file}")));
    }
    out.retain(|path| sensitive(path));
    out
}

/// Resolves one path in `root`; `None` when it is not there (or not a regular file).
fn resolve(root: &Path, path: &str) -> Option<GovernedFile> {
    let (_, meta) = open_in_root(root, path).ok()?;
    let id = file_id(&meta);
    let (dir, name) = path.rsplit_once('/')?;
    // The kubelet's atomic writer: DIR/NAME → ..data/NAME, ..data → ..<timestamp>.
    let atomic = open_in_root(root, &format!("{dir}/..data/{name}"))
        .ok()
        .is_some_and(|(_, data)| file_id(&data) == id);
    Some(GovernedFile {
        path: path.to_string(),
        id,
        atomic_name: (atomic && name.len() <= MAX_RULE_NAME).then(|| name.to_string()),
    })
}

/// The governed files of an agent whose processes see `root` (`/proc/PID/root`), without
/// those `allowed` names; one per file (the first path that reaches it).
pub fn governed_files(root: &Path, allowed: &BTreeSet<String>) -> Vec<GovernedFile> {
    let allowed_ids: Vec<_> = allowed
        .iter()
        .filter_map(|path| resolve(root, path))
        .map(|file| file.id)
        .collect();
    let mut out: Vec<GovernedFile> = Vec::new();
    for path in candidates(root) {
        if allowed.contains(&path) {
            continue;
        }
        let Some(file) = resolve(root, &path) else {
            continue;
        };
        if allowed_ids.contains(&file.id) || out.iter().any(|f| f.id == file.id) {
            continue;
        }
        out.push(file);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_entry_is_a_secret_to_the_classifier() {
        for path in CATALOGUE {
            assert!(sensitive(path), "{path}");
        }
        for file in HOME_CATALOGUE {
            assert!(sensitive(&format!("/home/ada/{file}")), "{file}");
        }
    }

    /// A kubelet-style volume in a directory standing for a process root: the token is
    /// governed by inode and by name; an allowed file is left out; the `/run` and `/var/run`
    /// paths to one file give one rule.
    #[test]
    fn tokens_in_atomic_volumes_are_governed_by_name_and_allowed_files_are_not() {
        let root = tempfile::tempdir().unwrap();
        let account = root.path().join("run/secrets/kubernetes.io/serviceaccount");
        let generation = account.join("..2026_12_05_06_00_00.000000001");
        std::fs::create_dir_all(&generation).unwrap();
        std::fs::create_dir_all(root.path().join("var")).unwrap();
        std::os::unix::fs::symlink("../run", root.path().join("var/run")).unwrap();
        std::fs::write(generation.join("token"), "eyJ...").unwrap();
        std::os::unix::fs::symlink(generation.file_name().unwrap(), account.join("..data"))
            .unwrap();
        std::os::unix::fs::symlink("..data/token", account.join("token")).unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/shadow"), "root:*:1::::::\n").unwrap();

        let files = governed_files(root.path(), &BTreeSet::new());
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                "/etc/shadow"
            ]
        );
        assert_eq!(files[0].atomic_name.as_deref(), Some("token"));
        assert_eq!(files[1].atomic_name, None);

        let allowed = BTreeSet::from(["/run/secrets/kubernetes.io/serviceaccount/token".into()]);
        let files = governed_files(root.path(), &allowed);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/etc/shadow"]);
    }
}
