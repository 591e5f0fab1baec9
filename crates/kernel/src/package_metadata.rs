//! A package's name and version, read from its own metadata inside a process's root
//! (`/proc/PID/root`): a Python distribution's `*.dist-info/METADATA`, or the `PKG-INFO` of a
//! `*.egg-info` (a directory, or a single file from older distutils; Debian's `python3-*`
//! packages and `setup.py` installs write these), found through the `site-packages` directory's
//! names, then their `top_level.txt`; a Node.js package's `package.json`.
//!
//! The root belongs to a process that may be hostile: every path is resolved inside it
//! (`openat2(RESOLVE_IN_ROOT)`, [`agentscope_event::process_root`]: a symbolic link cannot
//! reach the collector's files), FIFOs and other non-files are refused, and every read is
//! bounded: [`METADATA_PREFIX_BYTES`] of a `METADATA` (its headers come first),
//! [`PACKAGE_JSON_MAX_BYTES`] of a `package.json` (larger is an error, not a truncated
//! parse), [`DIR_ENTRIES_MAX`] names of a directory, [`TOP_LEVEL_READS_MAX`] `top_level.txt`
//! files per directory. Bad content is an error saying what was wrong, never a panic.
//!
//! The `METADATA` and `PKG-INFO` headers (one format) are read by hand: they are RFC 822-style `Name: value` lines up to the
//! first blank line, and only `Name` and `Version` are wanted (a mail-parsing crate would bring
//! a great deal more for two fields). `package.json` is JSON, read with serde_json.

use std::collections::HashMap;
use std::path::Path;

use agentscope_event::process_root::{list_dir_in_root, read_in_root, read_prefix_in_root};

/// How much of a `METADATA` file is read: its headers come before its (long) description.
pub const METADATA_PREFIX_BYTES: u64 = 64 * 1024;
/// The largest `package.json` read (real ones are a few KiB; some reach a few hundred).
pub const PACKAGE_JSON_MAX_BYTES: u64 = 1024 * 1024;
/// Names read from one `site-packages` directory.
pub const DIR_ENTRIES_MAX: usize = 8192;
/// `top_level.txt` files read per `site-packages` directory, and the size of each.
pub const TOP_LEVEL_READS_MAX: usize = 512;
const TOP_LEVEL_MAX_BYTES: u64 = 16 * 1024;
/// Names and versions longer than this (or with spaces or control characters) are refused.
const FIELD_MAX_CHARS: usize = 256;

/// What a package's metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageMetadata {
    pub name: String,
    pub version: String,
    /// The file read, as the process names it.
    pub path: String,
}

/// Python distribution names: `PEP 503` normalisation (lower case, runs of `-_.` → `_`).
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('_') {
                out.push('_');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn plausible(field: &str, what: &str) -> Result<String, String> {
    let field = field.trim();
    if field.is_empty()
        || field.chars().count() > FIELD_MAX_CHARS
        || field.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        let shown: String = field
            .chars()
            .take(40)
            .flat_map(char::escape_default)
            .collect();
        return Err(format!("implausible {what} \"{shown}\""));
    }
    Ok(field.to_string())
}

/// Reads `<package_dir>/package.json` inside `root`.
pub fn read_npm(root: &Path, package_dir: &str) -> Result<PackageMetadata, String> {
    let path = format!("{package_dir}/package.json");
    let bytes = read_in_root(root, &path, PACKAGE_JSON_MAX_BYTES)
        .map_err(|e| format!("package.json: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("package.json is not JSON ({e})"))?;
    let field = |key: &str| match json.get(key) {
        Some(serde_json::Value::String(value)) => plausible(value, key),
        Some(_) => Err(format!("package.json's \"{key}\" is not a string")),
        None => Err(format!("package.json has no \"{key}\"")),
    };
    Ok(PackageMetadata {
        name: field("name")?,
        version: field("version")?,
        path,
    })
}

/// The installed distributions of one `site-packages` directory (their `*.dist-info` and
/// `*.egg-info` names), and which modules they provide.
#[derive(Debug, Default)]
pub struct DistributionIndex {
    packages_dir: String,
    /// Normalised distribution name → its `*.dist-info` or `*.egg-info` name. A `*.dist-info`
    /// wins over an `*.egg-info` of the same name (pip's metadata over a leftover).
    by_name: HashMap<String, String>,
    /// Normalised top-level module → `*.dist-info` or `*.egg-info` name, from `top_level.txt`;
    /// filled on the first module no distribution is named after.
    by_module: Option<HashMap<String, String>>,
}

impl DistributionIndex {
    /// Lists `packages_dir` inside `root`.
    pub fn read(root: &Path, packages_dir: &str) -> Result<DistributionIndex, String> {
        let (names, _more) = list_dir_in_root(root, packages_dir, DIR_ENTRIES_MAX)
            .map_err(|e| format!("listing {packages_dir}: {e}"))?;
        let mut by_name = HashMap::new();
        let mut egg_infos = Vec::new();
        for entry in names {
            if let Some(stem) = entry.strip_suffix(".dist-info") {
                // `name-version`; the name never holds a `-` (wheels write `_`).
                let name = stem.split('-').next().unwrap_or(stem);
                by_name.insert(normalise(name), entry.clone());
            } else if let Some(stem) = entry.strip_suffix(".egg-info") {
                // `name-version[-pyX.Y]`, or `name` alone (setuptools escapes a `-` in the
                // name as `_` too).
                let name = stem.split('-').next().unwrap_or(stem);
                egg_infos.push((normalise(name), entry.clone()));
            }
        }
        for (name, entry) in egg_infos {
            by_name.entry(name).or_insert(entry);
        }
        Ok(DistributionIndex {
            packages_dir: packages_dir.to_string(),
            by_name,
            by_module: None,
        })
    }

    /// The `*.dist-info` or `*.egg-info` of the distribution that provides `module` (with
    /// `namespace_child` for a namespace package: `google` + `genai` is `google-genai`).
    pub fn distribution_of(
        &mut self,
        root: &Path,
        module: &str,
        namespace_child: Option<&str>,
    ) -> Option<String> {
        if let Some(dir) = self.by_name.get(&normalise(module)) {
            return Some(dir.clone());
        }
        if let Some(child) = namespace_child {
            if let Some(dir) = self.by_name.get(&normalise(&format!("{module}_{child}"))) {
                return Some(dir.clone());
            }
        }
        let by_module = self.by_module.get_or_insert_with(|| {
            let mut by_module = HashMap::new();
            let mut dirs: Vec<&String> = self.by_name.values().collect();
            dirs.sort();
            for dir in dirs.into_iter().take(TOP_LEVEL_READS_MAX) {
                let path = format!("{}/{dir}/top_level.txt", self.packages_dir);
                // Most wheels have none: not an error.
                let Ok(bytes) = read_in_root(root, &path, TOP_LEVEL_MAX_BYTES) else {
                    continue;
                };
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let top = line.trim().split('/').next().unwrap_or_default();
                    if !top.is_empty() {
                        by_module
                            .entry(normalise(top))
                            .or_insert_with(|| dir.clone());
                    }
                }
            }
            by_module
        });
        by_module.get(&normalise(module)).cloned()
    }

    /// Reads the metadata of `distribution` (a name [`Self::distribution_of`] gave): a
    /// `*.dist-info`'s `METADATA`, an `*.egg-info` directory's `PKG-INFO`, or an `*.egg-info`
    /// file itself.
    pub fn read_metadata(
        &self,
        root: &Path,
        distribution: &str,
    ) -> Result<PackageMetadata, String> {
        let dir = format!("{}/{distribution}", self.packages_dir);
        let candidates = if distribution.ends_with(".egg-info") {
            vec![format!("{dir}/PKG-INFO"), dir]
        } else {
            vec![format!("{dir}/METADATA")]
        };
        let mut last_error = String::new();
        let mut read = None;
        for path in candidates {
            match read_prefix_in_root(root, &path, METADATA_PREFIX_BYTES) {
                Ok((bytes, _more)) => {
                    read = Some((path, bytes));
                    break;
                }
                Err(e) => last_error = format!("{path}: {e}"),
            }
        }
        let Some((path, bytes)) = read else {
            return Err(last_error);
        };
        let file = path
            .strip_prefix(&format!("{}/", self.packages_dir))
            .unwrap_or(&path)
            .to_string();
        let text = String::from_utf8_lossy(&bytes);
        let (mut name, mut version) = (None, None);
        for line in text.lines() {
            if line.trim().is_empty() {
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.eq_ignore_ascii_case("name") && name.is_none() {
                    name = Some(value);
                } else if key.eq_ignore_ascii_case("version") && version.is_none() {
                    version = Some(value);
                }
            }
        }
        let missing = |what: &str| {
            format!("{file} has no {what} header in its first {METADATA_PREFIX_BYTES} bytes")
        };
        Ok(PackageMetadata {
            name: plausible(name.ok_or_else(|| missing("Name"))?, "name")?,
            version: plausible(version.ok_or_else(|| missing("Version"))?, "version")?,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, path: &str, content: &[u8]) {
        let path = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    const SP: &str = "/venv/lib/python3.11/site-packages";

    #[test]
    fn dist_info_by_name_namespace_and_top_level() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        write(
            root,
            &format!("{SP}/openai-1.54.3.dist-info/METADATA"),
            b"Metadata-Version: 2.3\nName: openai\nVersion: 1.54.3\n\nVersion: 9 (the description)\n",
        );
        write(
            root,
            &format!("{SP}/google_genai-1.2.0.dist-info/METADATA"),
            b"Name: google-genai\r\nVersion: 1.2.0\r\n\r\n",
        );
        write(
            root,
            &format!("{SP}/pyyaml-6.0.4.dist-info/METADATA"),
            b"Name: PyYAML\nVersion: 6.0.4\n",
        );
        write(
            root,
            &format!("{SP}/pyyaml-6.0.4.dist-info/top_level.txt"),
            b"_yaml\nyaml\n",
        );
        let mut index = DistributionIndex::read(root, SP).unwrap();
        let read = |index: &mut DistributionIndex, module: &str, child: Option<&str>| {
            let dir = index.distribution_of(root, module, child)?;
            Some(index.read_metadata(root, &dir))
        };
        assert_eq!(
            read(&mut index, "openai", None),
            Some(Ok(PackageMetadata {
                name: "openai".into(),
                version: "1.54.3".into(),
                path: format!("{SP}/openai-1.54.3.dist-info/METADATA"),
            }))
        );
        let genai = read(&mut index, "google", Some("genai")).unwrap().unwrap();
        assert_eq!(
            (genai.name.as_str(), genai.version.as_str()),
            ("google-genai", "1.2.0")
        );
        let yaml = read(&mut index, "yaml", None).unwrap().unwrap();
        assert_eq!(
            (yaml.name.as_str(), yaml.version.as_str()),
            ("PyYAML", "6.0.4")
        );
        assert_eq!(read(&mut index, "requests", None), None);
    }

    #[test]
    fn hostile_python_metadata_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("METADATA"), "Name: host\nVersion: 1\n").unwrap();
        // A METADATA that is a link to a host file: resolved inside the root, so missing.
        fs::create_dir_all(root.join(&SP[1..]).join("escape-1.dist-info")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("METADATA"),
            root.join(&SP[1..]).join("escape-1.dist-info/METADATA"),
        )
        .unwrap();
        // A huge one whose headers come first is read (its prefix); one whose Version comes
        // after the prefix is an error.
        let mut late = b"Name: late\n".to_vec();
        late.extend(std::iter::repeat_n(b'x', 200 * 1024));
        late.extend(b"\nVersion: 1\n");
        write(root, &format!("{SP}/late-1.dist-info/METADATA"), &late);
        let mut long = b"Name: long\nVersion: 2.0\n\n".to_vec();
        long.extend(std::iter::repeat_n(b'y', 10 * 1024 * 1024));
        write(root, &format!("{SP}/long-2.0.dist-info/METADATA"), &long);
        write(
            root,
            &format!("{SP}/spaced-1.dist-info/METADATA"),
            b"Name: spaced\nVersion: 1.0 rm -rf\n",
        );
        write(
            root,
            &format!("{SP}/binary-1.dist-info/METADATA"),
            &[0xff, 0xfe, 0, 1, 2],
        );
        // A FIFO in METADATA's place must not block.
        let fifo = root.join(&SP[1..]).join("fifo-1.dist-info");
        fs::create_dir_all(&fifo).unwrap();
        let c_path = std::ffi::CString::new(fifo.join("METADATA").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

        let mut index = DistributionIndex::read(root, SP).unwrap();
        let mut read = |module: &str| {
            let dir = index.distribution_of(root, module, None).unwrap();
            index.read_metadata(root, &dir)
        };
        let error =
            |module: &str, read: &mut dyn FnMut(&str) -> Result<PackageMetadata, String>| {
                read(module).unwrap_err()
            };
        assert!(error("escape", &mut read).contains("METADATA"));
        assert!(error("late", &mut read).contains("no Version header"));
        assert_eq!(read("long").unwrap().version, "2.0");
        assert!(error("spaced", &mut read).contains("implausible version"));
        assert!(error("binary", &mut read).contains("no Name header"));
        assert!(error("fifo", &mut read).contains("not a regular file"));
        // The site-packages directory itself a link out of the root: nothing listed.
        std::os::unix::fs::symlink(outside.path(), root.join("escaped")).unwrap();
        assert!(DistributionIndex::read(root, "/escaped").is_err());
    }

    #[test]
    fn top_level_reads_are_bounded() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for i in 0..TOP_LEVEL_READS_MAX + 10 {
            write(
                root,
                &format!("{SP}/d{i:04}-1.dist-info/top_level.txt"),
                format!("m{i}\n").as_bytes(),
            );
        }
        let mut index = DistributionIndex::read(root, SP).unwrap();
        assert!(index.distribution_of(root, "m0", None).is_some());
        // Past the bound: not read, so not found (rather than read without end).
        assert_eq!(
            index.distribution_of(root, &format!("m{}", TOP_LEVEL_READS_MAX + 5), None),
            None
        );
    }

    #[test]
    fn npm_package_json() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let nm = "/app/node_modules";
        write(
            root,
            &format!("{nm}/@modelcontextprotocol/sdk/package.json"),
            br#"{"name": "@modelcontextprotocol/sdk", "version": "1.20.2", "main": "x"}"#,
        );
        assert_eq!(
            read_npm(root, &format!("{nm}/@modelcontextprotocol/sdk")),
            Ok(PackageMetadata {
                name: "@modelcontextprotocol/sdk".into(),
                version: "1.20.2".into(),
                path: format!("{nm}/@modelcontextprotocol/sdk/package.json"),
            })
        );
        let cases: &[(&str, &[u8], &str)] = &[
            ("bad", b"{\"name\": \"bad\", ", "is not JSON"),
            (
                "number",
                br#"{"name": "number", "version": 3}"#,
                "is not a string",
            ),
            (
                "noversion",
                br#"{"name": "noversion"}"#,
                "has no \"version\"",
            ),
            ("array", b"[1, 2]", "has no \"name\""),
            ("deep", &[b'['; 100_000], "is not JSON"),
            (
                "control",
                b"{\"name\": \"a\\u0007\", \"version\": \"1\"}",
                "implausible name",
            ),
        ];
        for (name, content, expected) in cases {
            write(root, &format!("{nm}/{name}/package.json"), content);
            let error = read_npm(root, &format!("{nm}/{name}")).unwrap_err();
            assert!(error.contains(expected), "{name}: {error}");
        }
        let mut huge = br#"{"name": "huge", "version": "1.0.0", "pad": ""#.to_vec();
        huge.extend(std::iter::repeat_n(b'z', PACKAGE_JSON_MAX_BYTES as usize));
        huge.extend(b"\"}");
        write(root, &format!("{nm}/huge/package.json"), &huge);
        let error = read_npm(root, &format!("{nm}/huge")).unwrap_err();
        assert!(error.contains("larger than"), "{error}");
        assert!(read_npm(root, &format!("{nm}/missing")).is_err());
        // package.json a link to a host file: resolved inside the root.
        let outside = tempfile::tempdir().unwrap();
        fs::write(
            outside.path().join("package.json"),
            r#"{"name": "host", "version": "6.6.6"}"#,
        )
        .unwrap();
        fs::create_dir_all(root.join("app/node_modules/link")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("package.json"),
            root.join("app/node_modules/link/package.json"),
        )
        .unwrap();
        assert!(read_npm(root, &format!("{nm}/link")).is_err());
    }

    #[test]
    fn egg_info_directories_and_files() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        // Debian's python3-jwt: a directory named after the distribution, its module `jwt`.
        write(
            root,
            &format!("{SP}/PyJWT-2.6.0.egg-info/PKG-INFO"),
            b"Metadata-Version: 2.1\nName: PyJWT\nVersion: 2.6.0\n",
        );
        write(
            root,
            &format!("{SP}/PyJWT-2.6.0.egg-info/top_level.txt"),
            b"jwt\n",
        );
        // distutils' single file, with the interpreter tag.
        write(
            root,
            &format!("{SP}/crcmod-1.7-py3.11.egg-info"),
            b"Metadata-Version: 1.1\nName: crcmod\nVersion: 1.7\n",
        );
        // Both for one name: pip's *.dist-info over a leftover *.egg-info.
        write(
            root,
            &format!("{SP}/six-1.16.0.egg-info/PKG-INFO"),
            b"Name: six\nVersion: 1.16.0\n",
        );
        write(
            root,
            &format!("{SP}/six-1.17.0.dist-info/METADATA"),
            b"Name: six\nVersion: 1.17.0\n",
        );
        // No version in the name (Debian's python3-cryptography), and no PKG-INFO in it.
        fs::create_dir_all(root.join(&SP[1..]).join("cryptography.egg-info")).unwrap();
        let mut index = DistributionIndex::read(root, SP).unwrap();
        let mut read = |module: &str| {
            let found = index.distribution_of(root, module, None)?;
            Some(index.read_metadata(root, &found))
        };
        assert_eq!(
            read("jwt"),
            Some(Ok(PackageMetadata {
                name: "PyJWT".into(),
                version: "2.6.0".into(),
                path: format!("{SP}/PyJWT-2.6.0.egg-info/PKG-INFO"),
            }))
        );
        assert_eq!(
            read("crcmod"),
            Some(Ok(PackageMetadata {
                name: "crcmod".into(),
                version: "1.7".into(),
                path: format!("{SP}/crcmod-1.7-py3.11.egg-info"),
            }))
        );
        let six = read("six").unwrap().unwrap();
        assert_eq!(six.version, "1.17.0");
        let error = read("cryptography").unwrap().unwrap_err();
        assert!(error.contains("cryptography.egg-info"), "{error}");
    }

    /// An `*.egg-info` as setuptools itself writes it (`setup.py egg_info`, with the test
    /// venv's setuptools: `make setup`), read as the collector reads it.
    #[test]
    fn an_egg_info_written_by_setuptools() {
        let python = std::env::var("AGENTSCOPE_TEST_PYTHON").unwrap_or_else(|_| {
            format!(
                "{}/.cache/agentscope/test-venv/bin/python",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into())
            )
        });
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let source = root.join("src/ticket_tools");
        fs::create_dir_all(source.join("ticket_tools")).unwrap();
        fs::write(source.join("ticket_tools/__init__.py"), "").unwrap();
        fs::write(
            source.join("setup.py"),
            "from setuptools import setup\n\
             setup(name='ticket-tools', version='0.4.2', packages=['ticket_tools'])\n",
        )
        .unwrap();
        let site = root.join(&SP[1..]);
        fs::create_dir_all(&site).unwrap();
        let output = std::process::Command::new(&python)
            .args(["setup.py", "-q", "egg_info", "--egg-base"])
            .arg(&site)
            .current_dir(&source)
            .output()
            .unwrap_or_else(|e| panic!("{python} (make setup): {e}"));
        assert!(
            output.status.success(),
            "setup.py egg_info: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut index = DistributionIndex::read(root, SP).unwrap();
        let found = index
            .distribution_of(root, "ticket_tools", None)
            .expect("the egg-info provides ticket_tools");
        let metadata = index.read_metadata(root, &found).unwrap();
        assert_eq!(
            (metadata.name.as_str(), metadata.version.as_str()),
            ("ticket-tools", "0.4.2")
        );
        assert!(
            metadata.path.ends_with(".egg-info/PKG-INFO"),
            "{metadata:?}"
        );
    }
}
