//! Finding TLS libraries to probe: any ELF file (a shared libssl, or an executable such as
//! Node that embeds OpenSSL) whose dynamic symbols export the OpenSSL read/write API.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

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

/// Remembers which files were inspected (by device and inode, so one library reached through
/// several paths or mount namespaces is probed once).
#[derive(Debug, Default)]
pub struct TlsTargetCache {
    seen: HashMap<(u64, u64), bool>,
}

impl TlsTargetCache {
    /// A target to attach now, or `None` if the file was seen before or exports nothing.
    pub fn check(&mut self, path: &Path) -> Option<TlsTarget> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        if self.seen.contains_key(&key) {
            return None;
        }
        let target = inspect(path).ok().flatten();
        self.seen.insert(key, target.is_some());
        target
    }

    pub fn probed_count(&self) -> usize {
        self.seen.values().filter(|v| **v).count()
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
    fn non_elf_files_export_nothing() {
        let dir = std::env::temp_dir().join(format!("agentscope-tls-{}", std::process::id()));
        std::fs::write(&dir, b"not an elf").unwrap();
        assert_eq!(inspect(&dir).unwrap(), None);
        std::fs::remove_file(&dir).unwrap();
    }
}
