//! Finding Go `crypto/tls` in an executable: the file offsets of `(*Conn).Write`'s entry,
//! `(*Conn).Read`'s entry and every `RET` in `(*Conn).Read`'s body, for uprobes.
//!
//! Functions are found through the Go function table (`pclntab`, see [`crate::go_pclntab`]),
//! which stripped binaries (`-ldflags='-s -w'`) keep, so symbols are never needed. Return
//! values are read at the `RET` instructions, found by decoding the function's machine code
//! with `iced-x86`: uretprobes must never be used on Go code, because they replace the return
//! address on the goroutine's stack, and the Go runtime moves and copies goroutine stacks.
//!
//! Only x86-64 binaries built with the register ABI (Go 1.17 and later) are probed: the kernel
//! programs read the receiver, buffer and results from registers (`RAX`, `RBX`, `RCX`; the
//! goroutine from `R14`). Anything else is reported as a [`GoTlsBinary`] that says why
//! plaintext is not seen.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use object::{Architecture, Object as _, ObjectSection as _, ObjectSymbol as _};
use serde::Serialize;

use crate::go_buildinfo::{go_version, parse_go_version};
use crate::go_pclntab::{GoFunction, Pclntab, MAGIC_GO116};

/// How plaintext is captured for a probed Go binary (the coverage report's method).
pub const GO_TLS_METHOD: &str = "go crypto/tls (pclntab)";
pub const GO_WRITE: &str = "crypto/tls.(*Conn).Write";
pub const GO_READ: &str = "crypto/tls.(*Conn).Read";
/// More `RET`s than this in `Read` means the decoding went wrong: nothing is attached.
const MAX_RETURNS: usize = 64;
/// Longest function body decoded.
const MAX_FUNCTION_BYTES: u64 = 1 << 20;

/// Where to attach in a Go executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTlsTarget {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub go_version: Option<String>,
    /// Whether the binary still has its symbol table (not built with `-s`).
    pub has_symbols: bool,
    /// File offset of `(*Conn).Write`'s first instruction.
    pub write_entry: u64,
    /// File offset of `(*Conn).Read`'s first instruction.
    pub read_entry: u64,
    /// File offsets of every `RET` in `(*Conn).Read`.
    pub read_returns: Vec<u64>,
}

/// What inspecting a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoTlsAnalysis {
    /// Not a Go executable (or not an ELF file at all).
    NotGo,
    /// A Go executable that does not link `crypto/tls`: nothing to capture.
    NoTls,
    Probeable(GoTlsTarget),
    /// A Go executable with `crypto/tls` whose plaintext cannot be captured, and why.
    Unsupported {
        go_version: Option<String>,
        reason: String,
    },
}

/// A Go binary that does TLS, as the coverage report shows it: how its plaintext is captured,
/// or why it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoTlsBinary {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub go_version: Option<String>,
    /// [`GO_TLS_METHOD`] when plaintext is captured.
    pub method: Option<&'static str>,
    pub has_symbols: bool,
    /// Uprobes attached.
    pub probes: usize,
    /// Why plaintext is not seen (unsupported build, attach failure), when it is not.
    pub blind_spot: Option<String>,
    /// When its probes were attached (CLOCK_BOOTTIME, the clock of event timestamps): a
    /// connection that began before had its first calls missed.
    #[serde(skip)]
    pub attached_at_ns: Option<u64>,
}

fn unsupported(go_version: &Option<String>, reason: impl Into<String>) -> GoTlsAnalysis {
    GoTlsAnalysis::Unsupported {
        go_version: go_version.clone(),
        reason: reason.into(),
    }
}

/// Inspects a file. I/O errors (unreadable file) are returned; anything about its content is
/// an analysis result.
pub fn analyse(path: &Path) -> std::io::Result<GoTlsAnalysis> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(GoTlsAnalysis::NotGo);
    }
    // SAFETY: read-only mapping of a regular file that a process maps executable; a
    // concurrent truncation could fault, as for the OpenSSL targets.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(analyse_bytes(&map, path, meta.dev(), meta.ino()))
}

fn analyse_bytes(data: &[u8], path: &Path, dev: u64, ino: u64) -> GoTlsAnalysis {
    let Ok(elf) = object::File::parse(data) else {
        return GoTlsAnalysis::NotGo;
    };
    let pclntab_section = elf.section_by_name(".gopclntab");
    let is_go = pclntab_section.is_some()
        || elf.section_by_name(".go.buildinfo").is_some()
        || elf.section_by_name(".note.go.buildid").is_some();
    if !is_go {
        return GoTlsAnalysis::NotGo;
    }
    let version = go_version(&elf);
    if elf.architecture() != Architecture::X86_64 || !elf.is_little_endian() || !elf.is_64() {
        return unsupported(
            &version,
            format!(
                "Go binary for {:?}: only x86-64 Go binaries are probed",
                elf.architecture()
            ),
        );
    }
    let text_address = elf.section_by_name(".text").map_or(0, |s| s.address());
    let wanted = [GO_WRITE, GO_READ];
    let found = match pclntab_section {
        Some(section) => {
            let Ok(table) = section.data() else {
                return unsupported(&version, "the function table (.gopclntab) is unreadable");
            };
            match Pclntab::parse(table, text_address) {
                Ok(tab) => Some((tab.magic, tab.find(&wanted))),
                Err(err) => return unsupported(&version, err.to_string()),
            }
        }
        None => search_pclntab(&elf, text_address, &wanted),
    };
    let Some((magic, functions)) = found else {
        return unsupported(&version, "no Go function table (pclntab) found");
    };
    let (Some(write), Some(read)) = (
        functions.iter().find(|f| f.name == GO_WRITE),
        functions.iter().find(|f| f.name == GO_READ),
    ) else {
        return GoTlsAnalysis::NoTls;
    };
    match version.as_deref().and_then(parse_go_version) {
        Some((1, minor)) if minor >= 17 => {}
        Some(_) => return unsupported(
            &version,
            "built before Go 1.17: arguments are passed on the stack, which the probes do not read",
        ),
        None if magic == MAGIC_GO116 => return unsupported(
            &version,
            "no build information: Go 1.16 (stack arguments) cannot be told from 1.17 (registers)",
        ),
        // Function tables of Go 1.18 and later: the register ABI.
        None => {}
    }
    let Some(write_entry) = file_offset(&elf, write.entry) else {
        return unsupported(&version, format!("{GO_WRITE} is not in the file"));
    };
    let Some(read_entry) = file_offset(&elf, read.entry) else {
        return unsupported(&version, format!("{GO_READ} is not in the file"));
    };
    let read_returns = match return_offsets(data, &elf, read) {
        Ok(offsets) => offsets,
        Err(reason) => return unsupported(&version, reason),
    };
    GoTlsAnalysis::Probeable(GoTlsTarget {
        path: path.to_path_buf(),
        dev,
        ino,
        go_version: version,
        has_symbols: has_symbol(&elf, GO_READ),
        write_entry,
        read_entry,
        read_returns,
    })
}

/// Position-independent builds put the function table in `.data.rel.ro` without a section of
/// its own: look for a header there (and in `.rodata`) that parses and names both functions.
fn search_pclntab(
    elf: &object::File<'_>,
    text_address: u64,
    wanted: &[&str],
) -> Option<(u32, Vec<GoFunction>)> {
    for name in [".data.rel.ro", ".rodata"] {
        let Some(data) = elf.section_by_name(name).and_then(|s| s.data().ok()) else {
            continue;
        };
        // The table is pointer-aligned.
        for start in (0..data.len()).step_by(8) {
            let candidate = &data[start..];
            if !Pclntab::looks_like_header(candidate) {
                continue;
            }
            if let Ok(tab) = Pclntab::parse(candidate, text_address) {
                let functions = tab.find(wanted);
                if !functions.is_empty() {
                    return Some((tab.magic, functions));
                }
            }
        }
    }
    None
}

fn has_symbol(elf: &object::File<'_>, name: &str) -> bool {
    elf.symbols().any(|s| s.name() == Ok(name))
}

/// The file offset of a virtual address in an executable section.
fn file_offset(elf: &object::File<'_>, address: u64) -> Option<u64> {
    elf.sections().find_map(|section| {
        let offset = address.checked_sub(section.address())?;
        if offset >= section.size() || section.kind() != object::SectionKind::Text {
            return None;
        }
        let (file_start, _) = section.file_range()?;
        file_start.checked_add(offset)
    })
}

/// File offsets of every `RET` in `function`, decoding its whole body. Go emits no data in
/// its text, so a linear sweep sees every instruction; an undecodable byte before the padding
/// after the last instruction means something else is there, and nothing is attached (a uprobe
/// in the middle of an instruction would corrupt the program).
fn return_offsets(
    data: &[u8],
    elf: &object::File<'_>,
    function: &GoFunction,
) -> Result<Vec<u64>, String> {
    let len = function.end - function.entry;
    if len > MAX_FUNCTION_BYTES {
        return Err(format!(
            "{} is implausibly long ({len} bytes)",
            function.name
        ));
    }
    let start = file_offset(elf, function.entry)
        .ok_or_else(|| format!("{} is not in the file", function.name))?;
    let code = usize::try_from(start)
        .ok()
        .and_then(|s| data.get(s..s.checked_add(len as usize)?))
        .ok_or_else(|| format!("{} extends past the end of the file", function.name))?;
    let mut decoder = Decoder::with_ip(64, code, function.entry, DecoderOptions::NONE);
    let mut returns = Vec::new();
    while decoder.can_decode() {
        let position = decoder.position();
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            // INT3 padding between functions decodes fine; zero or other padding after the
            // last instruction is tolerated only if nothing but padding follows.
            if code[position..].iter().all(|&b| b == 0 || b == 0xcc) {
                break;
            }
            return Err(format!(
                "{} holds undecodable bytes at {:#x}",
                function.name,
                instruction.ip()
            ));
        }
        if instruction.mnemonic() == Mnemonic::Ret {
            returns.push(start + position as u64);
        }
    }
    if returns.is_empty() {
        return Err(format!("no RET found in {}", function.name));
    }
    if returns.len() > MAX_RETURNS {
        return Err(format!(
            "{} RETs found in {}: not trusted",
            returns.len(),
            function.name
        ));
    }
    Ok(returns)
}

/// Remembers which executables were inspected (by device and inode, so one binary reached
/// through several paths or mount namespaces is analysed once), and what was found for those
/// that do TLS.
#[derive(Debug, Default)]
pub struct GoTlsTargetCache {
    seen: HashMap<(u64, u64), Option<usize>>,
    binaries: Vec<GoTlsBinary>,
}

impl GoTlsTargetCache {
    /// A target to attach now, or `None` if the file was seen before, is not a Go binary with
    /// `crypto/tls`, or cannot be probed (then [`GoTlsTargetCache::binaries`] says why).
    /// `path` is where to read it (possibly an opened descriptor under /proc), `shown` the
    /// name the process knows it by, which is what reports show.
    pub fn check(&mut self, path: &Path, shown: &str) -> Option<GoTlsTarget> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        if self.seen.contains_key(&key) {
            return None;
        }
        let analysis = analyse(path).unwrap_or(GoTlsAnalysis::NotGo);
        let (report, target) = match analysis {
            GoTlsAnalysis::NotGo | GoTlsAnalysis::NoTls => {
                self.seen.insert(key, None);
                return None;
            }
            GoTlsAnalysis::Unsupported { go_version, reason } => (
                GoTlsBinary {
                    path: shown.to_string(),
                    dev: key.0,
                    ino: key.1,
                    go_version,
                    method: None,
                    has_symbols: false,
                    probes: 0,
                    blind_spot: Some(reason),
                    attached_at_ns: None,
                },
                None,
            ),
            GoTlsAnalysis::Probeable(target) => (
                GoTlsBinary {
                    path: shown.to_string(),
                    dev: key.0,
                    ino: key.1,
                    go_version: target.go_version.clone(),
                    method: None,
                    has_symbols: target.has_symbols,
                    probes: 0,
                    blind_spot: None,
                    attached_at_ns: None,
                },
                Some(target),
            ),
        };
        self.seen.insert(key, Some(self.binaries.len()));
        self.binaries.push(report);
        target
    }

    /// Records the outcome of attaching to a target [`GoTlsTargetCache::check`] returned.
    pub fn attached(&mut self, target: &GoTlsTarget, outcome: Result<usize, String>) {
        let Some(Some(index)) = self.seen.get(&(target.dev, target.ino)) else {
            return;
        };
        let Some(binary) = self.binaries.get_mut(*index) else {
            return;
        };
        match outcome {
            Ok(probes) => {
                binary.probes = probes;
                binary.method = Some(GO_TLS_METHOD);
                binary.attached_at_ns = Some(crate::collector::clock_ns(libc::CLOCK_BOOTTIME));
            }
            Err(err) => binary.blind_spot = Some(format!("attach failed: {err}")),
        }
    }

    /// Every Go binary with `crypto/tls` seen so far, probed or not.
    pub fn binaries(&self) -> &[GoTlsBinary] {
        &self.binaries
    }
}

#[cfg(test)]
mod tests;
