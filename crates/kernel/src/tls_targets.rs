//! Finding TLS libraries to probe: any ELF file (a shared libssl, or an executable such as
//! Node that embeds OpenSSL) whose dynamic symbols export the OpenSSL read/write API, and
//! stripped executables with BoringSSL linked in (Bun, so Claude Code), whose `SSL_write` and
//! `SSL_read` are located from the code itself ([`boringssl`]), or with OpenSSL 3 linked in
//! (Codex CLI 0.101), whose `ssl_write_internal` and `ssl_read_internal` are ([`openssl3`]),
//! or with rustls and aws-lc linked in (Codex CLI 0.171), whose AEAD seal and open are
//! ([`aws_lc`]).

pub mod aws_lc;
pub mod boringssl;
pub mod openssl3;
mod probe_points;

use std::collections::HashMap;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use crate::tls_coverage::{AnalysedObject, ObjectTls};
use agentscope_event::PlaintextMethod;

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
    /// OpenSSL 3's `ssl_write_internal`/`ssl_read_internal` located in a stripped static
    /// binary (every public read/write entry point ends in them); checked like BoringSSL's.
    OpenSsl3Located {
        anchors: Vec<String>,
        /// The version of rustls linked in beside it: a ClientHello the located
        /// `SSL_do_handshake` did not write is its.
        rustls_beside: Option<String>,
        /// rustls's connections are probed too (aws-lc's AEAD located, [`aws_lc`]), or why
        /// not (then they are not visible).
        rustls_probed: Result<(), String>,
    },
    /// rustls with aws-lc in a stripped static binary: aws-lc's `EVP_AEAD_CTX_seal`/`open`
    /// located; the kernel checks every call and binds each record to its socket.
    RustlsLocated { anchors: Vec<String> },
}

impl TlsMethod {
    /// The method's name in reports ("openssl (exported symbols)", "boringssl (located)").
    pub fn name(&self) -> &'static str {
        match self {
            TlsMethod::OpenSslExported => "openssl (exported symbols)",
            TlsMethod::BoringSslLocated { .. } => "boringssl (located)",
            TlsMethod::OpenSsl3Located { .. } => "openssl (located)",
            TlsMethod::RustlsLocated { .. } => "rustls (aws-lc located)",
        }
    }

    /// Why the locator believes it (empty for exported symbols).
    pub fn anchors(&self) -> &[String] {
        match self {
            TlsMethod::OpenSslExported => &[],
            TlsMethod::BoringSslLocated { anchors }
            | TlsMethod::OpenSsl3Located { anchors, .. }
            | TlsMethod::RustlsLocated { anchors } => anchors,
        }
    }

    /// The coverage verdict's name for it.
    pub fn plaintext_method(&self) -> PlaintextMethod {
        match self {
            TlsMethod::OpenSslExported => PlaintextMethod::OpensslSymbols,
            TlsMethod::BoringSslLocated { .. } => PlaintextMethod::BoringsslLocated,
            TlsMethod::OpenSsl3Located { .. } => PlaintextMethod::OpensslLocated,
            TlsMethod::RustlsLocated { .. } => PlaintextMethod::RustlsLocated,
        }
    }
}

/// A file to attach uprobes to, with each function's file offset.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Each function's programs and the file offset they attach at: for exported OpenSSL, the
    /// function's, past an `endbr64`, or the internal function it hands its arguments to
    /// ([`probe_points`]).
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
    /// The file carries BoringSSL or OpenSSL 3 but its functions could not be located with
    /// confidence: its TLS plaintext is not visible (a blind spot), for this reason (which
    /// names the library).
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

/// Inspects an ELF file: OpenSSL's exported API first, then BoringSSL located in the code,
/// then OpenSSL 3 located in the code.
pub fn inspect_detailed(path: &Path) -> std::io::Result<TlsInspection> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    // SAFETY: read-only mapping; a concurrent truncation could fault, which is why only
    // regular files that are mapped executable by a process are inspected.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let Ok(elf) = object::File::parse(&*map) else {
        return Ok(TlsInspection::Nothing);
    };
    let mut exported: Vec<probe_points::Exported> = Vec::new();
    for symbol in elf.dynamic_symbols() {
        let Ok(name) = symbol.name() else { continue };
        let Some(wanted) = SSL_FUNCTIONS.iter().find(|f| **f == name) else {
            continue;
        };
        if symbol.is_undefined()
            || symbol.address() == 0
            || exported.iter().any(|f| f.name == *wanted)
        {
            continue;
        }
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = elf.section_by_index(index) else {
            continue;
        };
        let Some((file_offset, file_len)) = section.file_range() else {
            continue;
        };
        exported.push(probe_points::Exported {
            name: wanted,
            offset: symbol.address() - section.address() + file_offset,
            size: symbol.size(),
            section: (file_offset, file_offset + file_len),
        });
    }
    if !exported.is_empty() {
        return Ok(TlsInspection::Target(TlsTarget {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            functions: probe_points::place(&map, &exported),
            method: TlsMethod::OpenSslExported,
            file: Arc::new(file),
        }));
    }
    let target = |functions, method| {
        TlsInspection::Target(TlsTarget {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            functions,
            method,
            file: Arc::new(file),
        })
    };
    let not_recognised = |why: String| TlsInspection::NotRecognised {
        path: path.to_path_buf(),
        why,
    };
    match boringssl::locate(&map) {
        Ok(None) => {}
        Ok(Some(found)) => {
            return Ok(target(
                vec![
                    ("SSL_write", found.ssl_write_offset),
                    ("SSL_read", found.ssl_read_offset),
                ],
                TlsMethod::BoringSslLocated {
                    anchors: found.anchors,
                },
            ))
        }
        Err(not) => return Ok(not_recognised(not.to_string())),
    }
    // rustls with aws-lc, alone or beside OpenSSL 3 (Codex CLI 0.171 links both).
    let rustls = aws_lc::locate(&map);
    let rustls_functions = |found: &aws_lc::AwsLcAead| {
        [
            (aws_lc::SEAL, found.seal_offset),
            (aws_lc::OPEN, found.open_offset),
        ]
        .into_iter()
        .chain(
            found
                .seal_scatter
                .map(|(_, offset)| (aws_lc::SEAL_SCATTER, offset)),
        )
        .collect::<Vec<_>>()
    };
    Ok(match openssl3::locate(&map) {
        Ok(None) => match rustls {
            Ok(None) => TlsInspection::Nothing,
            Ok(Some(found)) => target(
                rustls_functions(&found),
                TlsMethod::RustlsLocated {
                    anchors: found.anchors,
                },
            ),
            Err(not) => not_recognised(not.to_string()),
        },
        Ok(Some(found)) => {
            let mut anchors = found.anchors;
            let mut functions: Vec<(&'static str, u64)> = vec![
                (
                    match (found.legacy_ssl_st, found.write_has_flags) {
                        (true, _) => openssl3::WRITE_LEGACY,
                        (false, true) => openssl3::WRITE_WITH_FLAGS,
                        (false, false) => openssl3::WRITE,
                    },
                    found.write_offset,
                ),
                (
                    if found.legacy_ssl_st {
                        openssl3::READ_LEGACY
                    } else {
                        openssl3::READ
                    },
                    found.read_offset,
                ),
            ];
            functions.extend(
                found
                    .handshake_offsets
                    .iter()
                    .map(|offset| (openssl3::HANDSHAKE, *offset)),
            );
            let rustls_probed = match (&found.rustls_beside, rustls) {
                (_, Ok(Some(aead))) => {
                    functions.extend(rustls_functions(&aead));
                    anchors.extend(aead.anchors);
                    Ok(())
                }
                (_, Err(not)) => Err(not.to_string()),
                (Some(_), Ok(None)) => {
                    Err("its crypto provider is not aws-lc (ring, or aws-lc not found)".to_string())
                }
                (None, Ok(None)) => Ok(()),
            };
            if let Err(why) = &rustls_probed {
                anchors.push(format!("rustls not probed: {why}"));
            }
            target(
                functions,
                TlsMethod::OpenSsl3Located {
                    anchors,
                    rustls_beside: found.rustls_beside,
                    rustls_probed,
                },
            )
        }
        Err(not) => not_recognised(not.to_string()),
    })
}

/// Remembers which files were analysed and what came of it, by device and inode: one library
/// reached through several paths or mount namespaces, or one executable run a thousand times,
/// is analysed and probed once, and every later process that uses it gets the same answer.
#[derive(Debug, Default)]
pub struct TlsTargetCache {
    seen: HashMap<(u64, u64), AnalysedFile>,
    /// Files analysed (each once).
    pub analysed: u64,
}

/// One analysed file: what inspecting it found (for the summary's `tls_libraries`), under the
/// name its first user knew it by, and what that means for coverage (probed, or why not).
#[derive(Debug)]
struct AnalysedFile {
    shown: String,
    inspection: TlsInspection,
    tls: ObjectTls,
    /// When its probes were attached (CLOCK_BOOTTIME, the clock of event timestamps).
    attached_at_ns: Option<u64>,
}

/// A file with a TLS library, as the summary's `tls_libraries` lists it.
pub struct InspectedLibrary<'a> {
    /// The name its first user knew it by.
    pub shown: &'a str,
    pub inspection: &'a TlsInspection,
    /// When its probes were attached (CLOCK_BOOTTIME, the clock of event timestamps): a
    /// connection that began before cannot have had its first calls captured.
    pub attached_at_ns: Option<u64>,
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
            Some(analysed) => analysed.tls.clone(),
            None => {
                self.analysed += 1;
                let inspection = inspect_detailed(path).ok()?;
                let mut attached_at_ns = None;
                let tls = match &inspection {
                    TlsInspection::Target(target) => match attach(target) {
                        Ok(()) => {
                            attached_at_ns = Some(crate::collector::clock_ns(libc::CLOCK_BOOTTIME));
                            ObjectTls::Probed(target.method.plaintext_method())
                        }
                        Err(err) => ObjectTls::AttachFailed(err),
                    },
                    // BoringSSL or OpenSSL 3 is there but its functions were not located with
                    // confidence: nothing is probed rather than a guess.
                    TlsInspection::NotRecognised { why, .. } => {
                        ObjectTls::ValidationFailed(why.clone())
                    }
                    TlsInspection::Nothing => ObjectTls::NoTlsStack,
                };
                self.seen.insert(
                    key,
                    AnalysedFile {
                        shown: shown.to_string(),
                        inspection,
                        tls: tls.clone(),
                        attached_at_ns,
                    },
                );
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
            .filter(|analysed| matches!(analysed.tls, ObjectTls::Probed(_)))
            .count()
    }

    /// Every file inspected that has a TLS library, probed or not (for coverage reports).
    pub fn inspections(&self) -> impl Iterator<Item = InspectedLibrary<'_>> {
        self.seen
            .values()
            .filter(|analysed| !matches!(analysed.inspection, TlsInspection::Nothing))
            .map(|analysed| InspectedLibrary {
                shown: &analysed.shown,
                inspection: &analysed.inspection,
                attached_at_ns: analysed.attached_at_ns,
            })
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
        assert!(inspect(&dir).unwrap().is_none());
        std::fs::remove_file(&dir).unwrap();
    }
}
