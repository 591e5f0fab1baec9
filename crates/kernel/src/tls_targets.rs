//! Finding TLS libraries to probe: any ELF file (a shared libssl, or an executable such as
//! Node that embeds OpenSSL) whose dynamic symbols export the OpenSSL read/write API.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use crate::tls_coverage::{AnalysedObject, ObjectTls};
use agentscope_event::PlaintextMethod;

/// The OpenSSL functions agentscope probes.
pub const SSL_FUNCTIONS: [&str; 4] = ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"];

/// A file to attach uprobes to, with each exported function's file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub functions: Vec<(&'static str, u64)>,
}

/// Inspects an ELF file; `Ok(None)` when it exports none of [`SSL_FUNCTIONS`].
pub fn inspect(path: &Path) -> std::io::Result<Option<TlsTarget>> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    // SAFETY: read-only mapping; a concurrent truncation could fault, which is why only
    // regular files that are mapped executable by a process are inspected.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let Ok(elf) = object::File::parse(&*map) else {
        return Ok(None);
    };
    let mut functions = Vec::new();
    for symbol in elf.dynamic_symbols() {
        let Ok(name) = symbol.name() else { continue };
        let Some(wanted) = SSL_FUNCTIONS.iter().find(|f| **f == name) else {
            continue;
        };
        if symbol.is_undefined()
            || symbol.address() == 0
            || functions.iter().any(|(f, _)| f == wanted)
        {
            continue;
        }
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = elf.section_by_index(index) else {
            continue;
        };
        let Some((file_offset, _)) = section.file_range() else {
            continue;
        };
        functions.push((*wanted, symbol.address() - section.address() + file_offset));
    }
    if functions.is_empty() {
        return Ok(None);
    }
    Ok(Some(TlsTarget {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        functions,
    }))
}

/// Remembers which files were analysed and what came of it, by device and inode: one library
/// reached through several paths or mount namespaces, or one executable run a thousand times,
/// is analysed and probed once, and every later process that uses it gets the same answer.
#[derive(Debug, Default)]
pub struct TlsTargetCache {
    seen: HashMap<(u64, u64), ObjectTls>,
    /// Files analysed (each once).
    pub analysed: u64,
}

impl TlsTargetCache {
    /// What the file at `path` (named `shown` in reports) holds: analysed on first sight,
    /// when `attach` is called for a file with a TLS stack and its outcome remembered; from
    /// the cache afterwards. `None` when the file cannot be read (gone, not a regular file).
    pub fn analyse(
        &mut self,
        path: &Path,
        shown: &str,
        attach: impl FnOnce(&TlsTarget) -> Result<(), String>,
    ) -> Option<AnalysedObject> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        let tls = match self.seen.get(&key) {
            Some(tls) => tls.clone(),
            None => {
                self.analysed += 1;
                let tls = match inspect(path) {
                    Ok(Some(target)) => match attach(&target) {
                        Ok(()) => ObjectTls::Probed(PlaintextMethod::OpensslSymbols),
                        Err(err) => ObjectTls::AttachFailed(err),
                    },
                    Ok(None) => ObjectTls::NoTlsStack,
                    Err(_) => return None,
                };
                self.seen.insert(key, tls.clone());
                tls
            }
        };
        Some(AnalysedObject {
            path: shown.to_string(),
            tls,
        })
    }

    /// Files whose probes are attached.
    pub fn probed_count(&self) -> usize {
        self.seen
            .values()
            .filter(|tls| matches!(tls, ObjectTls::Probed(_)))
            .count()
    }
}

/// Whether a path looks like a TLS library worth inspecting when a process opens it.
pub fn looks_like_tls_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("libssl") && name.contains(".so")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        assert!(looks_like_tls_library(
            "/usr/lib/x86_64-linux-gnu/libssl.so.3"
        ));
        assert!(looks_like_tls_library("libssl.so"));
        assert!(!looks_like_tls_library("/usr/lib/libcrypto.so.3"));
        assert!(!looks_like_tls_library("/home/libssl/notes.txt"));
    }

    #[test]
    fn each_file_is_analysed_and_attached_once() {
        let dir = std::env::temp_dir().join(format!("agentscope-tls-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let libssl = [
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/lib/x86_64-linux-gnu/libssl.so.3",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("the system libssl (make setup installs it)");
        let link = dir.join("libssl-again.so");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(libssl, &link).unwrap();
        let mut cache = TlsTargetCache::default();
        let mut attaches = 0;
        for path in [libssl, link.as_path(), libssl] {
            let object = cache
                .analyse(path, "libssl", |target| {
                    attaches += 1;
                    assert!(!target.functions.is_empty());
                    Ok(())
                })
                .unwrap();
            assert_eq!(
                object.tls,
                ObjectTls::Probed(PlaintextMethod::OpensslSymbols)
            );
        }
        assert_eq!((cache.analysed, attaches, cache.probed_count()), (1, 1, 1));
        let plain = dir.join("plain");
        std::fs::write(&plain, b"not an elf").unwrap();
        for _ in 0..2 {
            let object = cache
                .analyse(&plain, "plain", |_| panic!("nothing to attach"))
                .unwrap();
            assert_eq!(object.tls, ObjectTls::NoTlsStack);
        }
        assert_eq!(cache.analysed, 2);
        assert!(cache
            .analyse(&dir.join("missing"), "missing", |_| Ok(()))
            .is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_elf_files_export_nothing() {
        let dir = std::env::temp_dir().join(format!("agentscope-tls-{}", std::process::id()));
        std::fs::write(&dir, b"not an elf").unwrap();
        assert_eq!(inspect(&dir).unwrap(), None);
        std::fs::remove_file(&dir).unwrap();
    }
}
