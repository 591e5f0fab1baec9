//! Which package a file a process opened belongs to, from its path alone: a file under a
//! Python `site-packages`/`dist-packages` directory belongs to the top-level module it sits in
//! (`.../site-packages/openai/_client.py` → `openai`; `six.py`, a compiled extension
//! `_cffi_backend.cpython-311-x86_64-linux-gnu.so` and `__pycache__/typing_extensions.*.pyc`
//! are modules of their own), a file under `node_modules` to the package directory it sits in
//! (`@scope/name` for scoped packages; the innermost `node_modules` wins for nested ones).
//! The collector reads the package's metadata from there ([`crate::package_metadata`]).

use agentscope_event::package::PackageEcosystem;

/// Where a package lives, as the process names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageLocation {
    pub ecosystem: PackageEcosystem,
    /// The `site-packages`, `dist-packages` or `node_modules` directory.
    pub packages_dir: String,
    /// The Python module, or the npm package's name (`@scope/name`).
    pub name: String,
    /// For a Python package directory, the directory inside it the file is in (`genai` for
    /// `google/genai/...`): namespace packages are distributed under `google-genai`.
    pub namespace_child: Option<String>,
}

impl PackageLocation {
    /// The package's directory (for a single-file Python module, where it would be).
    pub fn package_dir(&self) -> String {
        format!("{}/{}", self.packages_dir, self.name)
    }
}

/// The package `path` (an absolute path a process opened) is in, if any.
pub fn package_location(path: &str) -> Option<PackageLocation> {
    let python = ["/site-packages/", "/dist-packages/"]
        .iter()
        .filter_map(|marker| path.rfind(marker).map(|at| (at, marker.len())))
        .max();
    let node = path
        .rfind("/node_modules/")
        .map(|at| (at, "/node_modules/".len()));
    match (python, node) {
        (Some(p), Some(n)) if n.0 > p.0 => npm_location(path, n),
        (Some(p), _) => python_location(path, p),
        (None, Some(n)) => npm_location(path, n),
        (None, None) => None,
    }
}

fn usable(component: &str) -> bool {
    !component.is_empty() && !component.starts_with('.')
}

fn npm_location(path: &str, (at, len): (usize, usize)) -> Option<PackageLocation> {
    let packages_dir = &path[..at + len - 1];
    let rest = &path[at + len..];
    let mut parts = rest.split('/');
    let first = parts.next()?;
    let name = if first.starts_with('@') {
        let second = parts.next()?;
        if !usable(second) {
            return None;
        }
        format!("{first}/{second}")
    } else {
        first.to_string()
    };
    // A file inside the package, not the package directory itself (or `.bin`, `.package-lock`).
    parts.next()?;
    if !usable(first) || first == "@" {
        return None;
    }
    Some(PackageLocation {
        ecosystem: PackageEcosystem::Npm,
        packages_dir: packages_dir.to_string(),
        name,
        namespace_child: None,
    })
}

fn python_location(path: &str, (at, len): (usize, usize)) -> Option<PackageLocation> {
    let packages_dir = &path[..at + len - 1];
    let rest = &path[at + len..];
    let mut parts = rest.split('/');
    let first = parts.next()?;
    let second = parts.next();
    let third = parts.next();
    let (module, namespace_child) = match (first, second) {
        // Compiled single-file modules: `__pycache__/six.cpython-311.pyc`.
        ("__pycache__", Some(file)) => (module_of_file(file)?, None),
        (_, None) => (module_of_file(first)?, None),
        (dir, Some(child)) => {
            let child = (third.is_some() && usable(child) && !child.starts_with("__"))
                .then(|| child.to_string());
            (dir, child)
        }
    };
    if !usable(module)
        || module.contains(' ')
        || [".dist-info", ".egg-info", ".data"]
            .iter()
            .any(|suffix| module.ends_with(suffix))
        || module == "__pycache__"
    {
        return None;
    }
    Some(PackageLocation {
        ecosystem: PackageEcosystem::Pypi,
        packages_dir: packages_dir.to_string(),
        name: module.to_string(),
        namespace_child,
    })
}

/// `six.py` → `six`, `_yaml.cpython-311-x86_64-linux-gnu.so` → `_yaml`; other files (`.pth`,
/// `README`) are no module.
fn module_of_file(file: &str) -> Option<&str> {
    let (module, _) = file.split_once('.')?;
    let is_module = [".py", ".pyc", ".so"].iter().any(|ext| file.ends_with(ext));
    is_module.then_some(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(path: &str) -> Option<(PackageEcosystem, String, String, Option<String>)> {
        package_location(path).map(|l| (l.ecosystem, l.packages_dir, l.name, l.namespace_child))
    }

    #[test]
    fn python_modules() {
        let sp = "/app/venv/lib/python3.11/site-packages";
        let pypi = |name: &str, child: Option<&str>| {
            Some((
                PackageEcosystem::Pypi,
                sp.to_string(),
                name.to_string(),
                child.map(str::to_string),
            ))
        };
        assert_eq!(
            located(&format!("{sp}/openai/__init__.py")),
            pypi("openai", None)
        );
        assert_eq!(
            located(&format!("{sp}/openai/types/chat/x.py")),
            pypi("openai", Some("types"))
        );
        assert_eq!(
            located(&format!("{sp}/google/genai/client.py")),
            pypi("google", Some("genai"))
        );
        assert_eq!(located(&format!("{sp}/six.py")), pypi("six", None));
        assert_eq!(
            located(&format!(
                "{sp}/_cffi_backend.cpython-311-x86_64-linux-gnu.so"
            )),
            pypi("_cffi_backend", None)
        );
        assert_eq!(
            located(&format!(
                "{sp}/__pycache__/typing_extensions.cpython-311.pyc"
            )),
            pypi("typing_extensions", None)
        );
        assert_eq!(
            located(&format!("{sp}/mcp/__pycache__/types.cpython-311.pyc")),
            pypi("mcp", None)
        );
        assert_eq!(
            located("/usr/lib/python3/dist-packages/yaml/__init__.py").map(|l| l.2),
            Some("yaml".to_string())
        );
        for not_a_module in [
            format!("{sp}/openai-1.0.dist-info/METADATA"),
            format!("{sp}/distutils-precedence.pth"),
            format!("{sp}/.hidden/x.py"),
            format!("{sp}/"),
            format!("{sp}/__pycache__"),
            "/usr/lib/python3.11/json/__init__.py".to_string(),
        ] {
            assert_eq!(located(&not_a_module), None, "{not_a_module}");
        }
    }

    #[test]
    fn npm_packages() {
        let npm = |dir: &str, name: &str| {
            Some((
                PackageEcosystem::Npm,
                dir.to_string(),
                name.to_string(),
                None,
            ))
        };
        assert_eq!(
            located("/app/node_modules/openai/index.js"),
            npm("/app/node_modules", "openai")
        );
        assert_eq!(
            located("/app/node_modules/@modelcontextprotocol/sdk/dist/cjs/client/index.js"),
            npm("/app/node_modules", "@modelcontextprotocol/sdk")
        );
        assert_eq!(
            located("/app/node_modules/a/node_modules/b/package.json"),
            npm("/app/node_modules/a/node_modules", "b")
        );
        // A Python package vendored inside a Node package, and the other way round.
        assert_eq!(
            located("/app/node_modules/x/py/site-packages/yaml/a.py").map(|l| l.0),
            Some(PackageEcosystem::Pypi)
        );
        for not_a_package in [
            "/app/node_modules/openai",
            "/app/node_modules/.bin/tsc",
            "/app/node_modules/@scope/",
            "/app/node_modules/@scope",
            "/app/node_modules/.package-lock.json",
        ] {
            assert_eq!(located(not_a_package), None, "{not_a_package}");
        }
    }

    /// Every file under `root` (symbolic links not followed below it), at most `limit`.
    fn files_under(root: &std::path::Path, limit: usize, found: &mut Vec<String>) {
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if found.len() >= limit {
                    return;
                }
                let path = entry.path();
                if let Some(text) = path.to_str() {
                    found.push(text.to_string());
                }
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(path);
                }
            }
        }
    }

    /// The kernel leaves out no open this collector reads packages (the AI-BOM) or TLS
    /// libraries from (nor agent frameworks, which analysis finds under the same package
    /// directories): on the installed Python packages and libraries of this machine and on
    /// adversarial names under every droppable prefix.
    #[test]
    fn the_kernel_noise_filter_keeps_packages_and_tls_libraries() {
        use agentscope_common::noise_paths;
        let mut paths = Vec::new();
        for root in [
            "/usr/lib/python3",
            "/usr/local/lib",
            "/usr/lib/x86_64-linux-gnu",
        ] {
            files_under(std::path::Path::new(root), paths.len() + 50_000, &mut paths);
        }
        if let Ok(home) = std::env::var("HOME") {
            let pyenv = std::path::Path::new(&home).join(".pyenv/versions");
            files_under(&pyenv, paths.len() + 100_000, &mut paths);
        }
        let real_packages = paths
            .iter()
            .filter(|p| package_location(p).is_some())
            .count();
        for prefix in noise_paths::DROPPABLE_PREFIXES {
            let prefix = std::str::from_utf8(prefix).unwrap();
            for tail in noise_paths::ADVERSARIAL_TAILS {
                paths.push(format!("{prefix}{tail}"));
            }
        }
        for path in &paths {
            if noise_paths::is_droppable(path.as_bytes()) {
                assert!(
                    package_location(path).is_none(),
                    "the kernel would leave out {path}, a package's file"
                );
                assert!(
                    !crate::tls_targets::looks_like_tls_library(path),
                    "the kernel would leave out {path}, a TLS library"
                );
            }
        }
        assert!(
            paths
                .iter()
                .any(|p| crate::tls_targets::looks_like_tls_library(p)),
            "no libssl found to check"
        );
        assert!(
            real_packages > 100,
            "only {real_packages} package files found to check"
        );
    }
}
