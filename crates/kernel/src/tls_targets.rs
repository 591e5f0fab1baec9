//! Finding TLS libraries to probe: any ELF file (a shared libssl, or an executable such as
//! Node that embeds OpenSSL) whose dynamic symbols export the OpenSSL read/write API, and
//! stripped executables with BoringSSL linked in (Bun, so Claude Code), whose `SSL_write` and
//! `SSL_read` are located from the code itself ([`boringssl`]).

pub mod boringssl;

use std::collections::HashMap;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

/// The OpenSSL functions agentscope probes.
pub const SSL_FUNCTIONS: [&str; 4] = ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"];

/// How the probed functions were found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum TlsMethod {
    /// OpenSSL's API in the dynamic symbol table.
    OpenSslExported,
    /// BoringSSL's `SSL_write`/`SSL_read` located in a stripped binary; the anchors say why
    /// the locator believes it. The kernel programs check every call before emitting.
    BoringSslLocated { anchors: Vec<String> },
}

impl TlsMethod {
    /// The method's name in reports ("openssl (exported symbols)", "boringssl (located)").
    pub fn name(&self) -> &'static str {
        match self {
            TlsMethod::OpenSslExported => "openssl (exported symbols)",
            TlsMethod::BoringSslLocated { .. } => "boringssl (located)",
        }
    }
}

/// A file to attach uprobes to, with each function's file offset.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub functions: Vec<(&'static str, u64)>,
    pub method: TlsMethod,
    /// The file as inspected, kept open: probes attach through `/proc/self/fd/N`, which stays
    /// valid after the process whose `/proc/PID/root/...` path led here has exited (a short
    /// run that exits while a large binary is analysed).
    pub file: Arc<std::fs::File>,
}

impl TlsTarget {
    /// The path to attach probes through.
    pub fn attach_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// What inspecting one file found, kept per file for coverage reports.
#[derive(Debug, Clone)]
pub enum TlsInspection {
    /// Probes can be attached.
    Target(TlsTarget),
    /// The file carries BoringSSL but its functions could not be located with confidence:
    /// its TLS plaintext is not visible (a blind spot), for this reason.
    NotRecognised { path: PathBuf, why: String },
    /// No TLS library recognised in the file.
    Nothing,
}

/// Inspects an ELF file; `Ok(None)` when it exports none of [`SSL_FUNCTIONS`] and carries no
/// BoringSSL that can be located.
pub fn inspect(path: &Path) -> std::io::Result<Option<TlsTarget>> {
    Ok(match inspect_detailed(path)? {
        TlsInspection::Target(target) => Some(target),
        _ => None,
    })
}

/// Inspects an ELF file: OpenSSL's exported API first, then BoringSSL located in the code.
pub fn inspect_detailed(path: &Path) -> std::io::Result<TlsInspection> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    // SAFETY: read-only mapping; a concurrent truncation could fault, which is why only
    // regular files that are mapped executable by a process are inspected.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let Ok(elf) = object::File::parse(&*map) else {
        return Ok(TlsInspection::Nothing);
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
    if !functions.is_empty() {
        return Ok(TlsInspection::Target(TlsTarget {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            functions,
            method: TlsMethod::OpenSslExported,
            file: Arc::new(file),
        }));
    }
    Ok(match boringssl::locate(&map) {
        Ok(None) => TlsInspection::Nothing,
        Ok(Some(found)) => TlsInspection::Target(TlsTarget {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            functions: vec![
                ("SSL_write", found.ssl_write_offset),
                ("SSL_read", found.ssl_read_offset),
            ],
            method: TlsMethod::BoringSslLocated {
                anchors: found.anchors,
            },
            file: Arc::new(file),
        }),
        Err(not) => TlsInspection::NotRecognised {
            path: path.to_path_buf(),
            why: not.to_string(),
        },
    })
}

/// Remembers which files were inspected (by device and inode, so one library reached through
/// several paths or mount namespaces is probed once).
#[derive(Debug, Default)]
pub struct TlsTargetCache {
    seen: HashMap<(u64, u64), TlsInspection>,
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
        let inspection = inspect_detailed(path).unwrap_or(TlsInspection::Nothing);
        let target = match &inspection {
            TlsInspection::Target(target) => Some(target.clone()),
            _ => None,
        };
        self.seen.insert(key, inspection);
        target
    }

    pub fn probed_count(&self) -> usize {
        self.seen
            .values()
            .filter(|v| matches!(v, TlsInspection::Target(_)))
            .count()
    }

    /// Every file inspected that has a TLS library, probed or not (for coverage reports).
    pub fn inspections(&self) -> impl Iterator<Item = &TlsInspection> {
        self.seen
            .values()
            .filter(|v| !matches!(v, TlsInspection::Nothing))
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
        assert!(inspect(&dir).unwrap().is_none());
        std::fs::remove_file(&dir).unwrap();
    }
}
