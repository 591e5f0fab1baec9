//! Locating OpenSSL 3's `ssl_read_internal` and `ssl_write_internal` in a stripped static
//! executable that links OpenSSL in without exporting it (Codex CLI: Rust, musl, the
//! `openssl` crate with a vendored OpenSSL 3 behind `native-tls`), from the binary itself: no
//! table of per-release offsets or hashes.
//!
//! OpenSSL 3 reports errors with `ERR_raise(ERR_LIB_SSL, reason)`, which expands to
//! `ERR_new(); ERR_set_debug(OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC); ERR_set_error(...)`:
//! every error site in `ssl/ssl_lib.c` passes the file name string (first argument), the line
//! (an immediate, second argument) and the name of the function it is written in (`__func__`,
//! third argument) to one call. The function names are therefore in `.rodata`, and each is
//! loaded next to the file name in exactly the functions that hold its error sites. The
//! locator:
//!
//! 1. finds the strings `.../ssl/ssl_lib.c`, `ssl_read_internal` and `ssl_write_internal` in
//!    `.rodata` (BoringSSL's file is `ssl_lib.cc`, see [`super::boringssl`]);
//! 2. finds the instructions that load the function names into `rdx`, the `func` argument
//!    (`lea rdx, [rip + disp32]` in PIE code, `mov edx, imm32` otherwise);
//! 3. takes each load's function bounds from `.eh_frame` (through `.eh_frame_hdr`'s sorted
//!    table, or every entry when there is none, read with `gimli`): Rust binaries keep it for
//!    unwinding even when stripped, and so do C programs built for x86-64;
//! 4. decodes each such function with `iced-x86` from its first instruction and keeps the
//!    calls made with the file name, a line and the function name in the first three argument
//!    registers (`ERR_set_debug(file, line, func)`);
//! 5. requires each name to be passed from exactly one function (a second one would be a copy
//!    inlined into a caller, whose calls the probe would miss), and that function to be the
//!    target of direct calls or jumps (an entry point, not a split-off cold block).
//!
//! Both internal functions are what every public entry point ends in: `SSL_read`,
//! `SSL_read_ex` (what the `openssl` crate calls) → `ssl_read_internal(s, buf, num,
//! readbytes)`; `SSL_write`, `SSL_write_ex`, `SSL_write_ex2` → `ssl_write_internal(s, buf,
//! num, [flags,] written)`. The `flags` argument exists from OpenSSL 3.3 on (QUIC stream
//! flags): the version text (`OPENSSL_VERSION_TEXT`, "OpenSSL 3.N.M ...") in `.rodata` says
//! which, and must name one minor version. The kernel programs check every call's `SSL*`
//! before emitting (see `collector-ebpf/src/tls_located.rs`).

use std::collections::{BTreeMap, BTreeSet};

use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian, UnwindSection as _};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use object::{Object as _, ObjectSection as _};

use super::boringssl::Code;

/// The names the located functions are attached under ([`super::TlsTarget::functions`]);
/// the kernel program for each follows from it.
pub const READ: &str = "ssl_read_internal";
pub const WRITE: &str = "ssl_write_internal";
/// `ssl_write_internal` with the QUIC `flags` argument (OpenSSL 3.3 and later).
pub const WRITE_WITH_FLAGS: &str = "ssl_write_internal(flags)";
pub const HANDSHAKE: &str = "SSL_do_handshake";
/// The same functions in OpenSSL 3.0 and 3.1, whose `struct ssl_st` starts with `version` and
/// `method` (3.2 split it, putting `type`, `ctx`, `defltmeth` and `method` first): the kernel
/// checks each call's `SSL*` against its own layout.
pub const READ_LEGACY: &str = "ssl_read_internal(3.0)";
pub const WRITE_LEGACY: &str = "ssl_write_internal(3.0)";

/// The end of OpenSSL 3's `__FILE__` for `ssl/ssl_lib.c`, NUL-terminated in `.rodata`.
const SSL_LIB_FILE: &[u8] = b"ssl/ssl_lib.c\0";
/// The located functions' names: index 0 read, 1 write (as in [`ErrorSite::name`]).
const LABELS: [&str; 2] = [READ, WRITE];
const READ_NAME: &[u8] = b"ssl_read_internal\0";
const WRITE_NAME: &[u8] = b"ssl_write_internal\0";
const HANDSHAKE_NAME: &[u8] = b"SSL_do_handshake\0";
const VERSION_PREFIX: &[u8] = b"OpenSSL 3.";
/// The longest function decoded (OpenSSL's internal read/write functions are a few hundred
/// bytes; `.eh_frame` gives the exact length).
const MAX_FUNCTION_LEN: u64 = 64 * 1024;

/// Where the two functions are, their shape, and why the locator believes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSsl3Functions {
    /// Virtual address of `ssl_read_internal`'s first instruction.
    pub read_internal: u64,
    /// Virtual address of `ssl_write_internal`'s first instruction.
    pub write_internal: u64,
    /// The same, as offsets in the file (what a uprobe attaches at).
    pub read_offset: u64,
    pub write_offset: u64,
    /// `ssl_write_internal(s, buf, num, flags, written)` (OpenSSL 3.3 and later) rather than
    /// `(s, buf, num, written)`: where the byte count is stored.
    pub write_has_flags: bool,
    /// OpenSSL 3.0 or 3.1: `struct ssl_st` in its old layout ([`READ_LEGACY`]).
    pub legacy_ssl_st: bool,
    /// The evidence that matched, one line each, for the coverage report and logs.
    pub anchors: Vec<String>,
    /// The version of rustls linked into the same binary, if any (its crate source paths in
    /// `.rodata`): connections made through it are not seen by these probes.
    pub rustls_beside: Option<String>,
    /// File offsets of `SSL_do_handshake` (and of any copy inlined into a caller): entry and
    /// return probes there mark the ClientHellos this OpenSSL writes.
    pub handshake_offsets: Vec<u64>,
}

/// Why a binary that carries OpenSSL 3's `ssl_lib.c` was not recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRecognised {
    pub why: String,
}

impl std::fmt::Display for NotRecognised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenSSL 3 found but not located: {}", self.why)
    }
}

/// One `ERR_set_debug(file, line, func)` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ErrorSite {
    line: u64,
    /// Which function name: 0 read, 1 write, 2 handshake.
    name: usize,
}

/// Function bounds from `.eh_frame`: through `.eh_frame_hdr`'s sorted search table when the
/// linker wrote one, otherwise (a static executable linked without `--eh-frame-hdr`) from
/// every entry of `.eh_frame`, read once and sorted.
pub(super) struct Unwind<'a> {
    bases: BaseAddresses,
    eh_frame: EhFrame<gimli::EndianSlice<'a, LittleEndian>>,
    table: Option<gimli::ParsedEhFrameHdr<gimli::EndianSlice<'a, LittleEndian>>>,
    /// `(start, end)` of every function, sorted, when there is no search table.
    sorted: Vec<(u64, u64)>,
}

/// The most `.eh_frame` entries read without a search table (Codex 0.171.0 has 335,000).
const MAX_FRAME_ENTRIES: usize = 4_000_000;

impl<'a> Unwind<'a> {
    pub(super) fn new(elf: &object::File<'a>, text: u64) -> Option<Unwind<'a>> {
        let frame = elf.section_by_name(".eh_frame")?;
        let hdr = elf.section_by_name(".eh_frame_hdr");
        let mut bases = BaseAddresses::default()
            .set_eh_frame(frame.address())
            .set_text(text);
        if let Some(hdr) = &hdr {
            bases = bases.set_eh_frame_hdr(hdr.address());
        }
        let eh_frame = EhFrame::new(frame.data().ok()?, LittleEndian);
        let table = hdr
            .and_then(|hdr| {
                EhFrameHdr::new(hdr.data().ok()?, LittleEndian)
                    .parse(&bases, 8)
                    .ok()
            })
            .filter(|parsed| parsed.table().is_some());
        let mut sorted = Vec::new();
        if table.is_none() {
            let mut entries = eh_frame.entries(&bases);
            while let Ok(Some(entry)) = entries.next() {
                if sorted.len() >= MAX_FRAME_ENTRIES {
                    return None;
                }
                if let gimli::CieOrFde::Fde(partial) = entry {
                    if let Ok(fde) = partial.parse(EhFrame::cie_from_offset) {
                        let start = fde.initial_address();
                        if let Some(end) = start.checked_add(fde.len()) {
                            sorted.push((start, end));
                        }
                    }
                }
            }
            sorted.sort_unstable();
            if sorted.is_empty() {
                return None;
            }
        }
        Some(Unwind {
            bases,
            eh_frame,
            table,
            sorted,
        })
    }

    /// `[start, end)` of the function whose code holds `address`.
    pub(super) fn function(&self, address: u64) -> Option<(u64, u64)> {
        let (start, end) = match &self.table {
            Some(table) => {
                let fde = table
                    .table()?
                    .fde_for_address(
                        &self.eh_frame,
                        &self.bases,
                        address,
                        EhFrame::cie_from_offset,
                    )
                    .ok()?;
                let start = fde.initial_address();
                (start, start.checked_add(fde.len())?)
            }
            None => {
                let at = self.sorted.partition_point(|(start, _)| *start <= address);
                *self.sorted.get(at.checked_sub(1)?)?
            }
        };
        (start <= address && address < end).then_some((start, end))
    }
}

/// Locates the functions in an ELF image. `Ok(None)`: the binary carries no OpenSSL 3
/// `ssl_lib.c` error sites (nothing to do); `Err`: it does, but the functions could not be
/// located with confidence (a blind spot to report).
pub fn locate(image: &[u8]) -> Result<Option<OpenSsl3Functions>, NotRecognised> {
    let Ok(elf) = object::File::parse(image) else {
        return Ok(None);
    };
    if elf.architecture() != object::Architecture::X86_64 {
        return Ok(None);
    }
    let Some(rodata) = elf.section_by_name(".rodata") else {
        return Ok(None);
    };
    let (Ok(rodata_bytes), rodata_address) = (rodata.data(), rodata.address()) else {
        return Ok(None);
    };
    let files = file_name_strings(rodata_bytes, rodata_address);
    if files.is_empty() {
        return Ok(None);
    }
    let not = |why: String| Err(NotRecognised { why });
    let names: [Vec<u64>; 3] = [READ_NAME, WRITE_NAME, HANDSHAKE_NAME]
        .map(|name| suffix_strings(rodata_bytes, rodata_address, name));
    let Some(text) = elf.section_by_name(".text") else {
        return not("no .text section".into());
    };
    let (Ok(bytes), Some((file_offset, _))) = (text.data(), text.file_range()) else {
        return not(".text has no bytes in the file".into());
    };
    let code = Code {
        address: text.address(),
        file_offset,
        bytes,
    };
    let all_names: Vec<u64> = names.iter().flatten().copied().collect();
    // Position-independent code (ET_DYN: a PIE or a shared library) never loads an address
    // as an absolute immediate.
    let absolute = elf.kind() != object::ObjectKind::Dynamic;
    let loads = third_argument_loads(&code, &all_names, absolute);
    if loads.is_empty() {
        // The file name alone (in a string table, or a program that mentions it) is not
        // OpenSSL's code.
        return Ok(None);
    }
    let Some(unwind) = Unwind::new(&elf, code.address) else {
        return not("no usable .eh_frame (function bounds unknown)".into());
    };
    let mut bounds: BTreeMap<u64, u64> = BTreeMap::new();
    for load in &loads {
        if let Some((start, end)) = unwind.function(*load) {
            bounds.insert(start, end);
        }
    }
    let file_addresses: Vec<u64> = files.iter().map(|(a, _)| *a).collect();
    let mut sites: BTreeMap<u64, Vec<ErrorSite>> = BTreeMap::new();
    for (start, end) in &bounds {
        let found = error_sites(&code, *start, *end, &file_addresses, &names);
        if !found.is_empty() {
            sites.insert(*start, found);
        }
    }
    if sites.is_empty() {
        return Ok(None);
    }
    let mut anchors = vec![format!(
        "__FILE__ string {:?} at {:#x}",
        String::from_utf8_lossy(files[0].1.strip_suffix(b"\0").unwrap_or(files[0].1)),
        files[0].0
    )];
    let mut found = [0u64; 2];
    let mut site_lines: [Vec<u64>; 2] = Default::default();
    for (index, label) in LABELS.iter().enumerate() {
        let holders: Vec<(&u64, Vec<u64>)> = sites
            .iter()
            .map(|(start, s)| {
                (
                    start,
                    s.iter()
                        .filter(|site| site.name == index)
                        .map(|site| site.line)
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, lines)| !lines.is_empty())
            .collect();
        let [(start, ref lines)] = holders[..] else {
            return not(format!(
                "{} functions pass __func__ {label:?} to ERR_set_debug, expected one",
                holders.len()
            ));
        };
        found[index] = *start;
        site_lines[index] = lines.clone();
    }
    let references = direct_references(&code, &found);
    for (index, label) in LABELS.iter().enumerate() {
        let start = found[index];
        let entries = references[index];
        if entries == 0 {
            return not(format!(
                "{label} candidate at {start:#x} is never called or jumped to directly"
            ));
        }
        anchors.push(format!(
            "{label} at {start:#x} (.eh_frame bounds, {} bytes): ERR_set_debug(ssl_lib.c, line, {label:?}) at lines {:?}; {entries} direct calls or jumps to it",
            bounds[&start] - start,
            site_lines[index]
        ));
    }
    let versions = version_minors(rodata_bytes);
    let [(minor, version)] = versions.iter().collect::<Vec<_>>()[..] else {
        return not(format!(
            "OpenSSL version texts name minor versions {:?}, expected one",
            versions.keys().collect::<Vec<_>>()
        ));
    };
    let write_has_flags = *minor >= 3;
    let legacy_ssl_st = *minor < 2;
    anchors.push(format!(
        "version text {version:?}: ssl_write_internal takes {}; struct ssl_st {}",
        if write_has_flags {
            "(s, buf, num, flags, written) (3.3 and later)"
        } else {
            "(s, buf, num, written) (before 3.3)"
        },
        if legacy_ssl_st {
            "starts with version, method (3.0, 3.1)"
        } else {
            "starts with type, ctx, defltmeth, method (3.2 and later)"
        }
    ));
    let rustls_beside = rustls_version(rodata_bytes);
    if let Some(rustls) = &rustls_beside {
        anchors.push(format!(
            "rustls {rustls} is linked in too (its source paths in .rodata): the connections it makes are told apart by their ClientHellos (not written inside SSL_do_handshake)"
        ));
    }
    // SSL_do_handshake, wherever it (or a copy inlined into SSL_connect or SSL_accept) passes
    // its name: a ClientHello written inside it is this OpenSSL's. Only entry points (direct
    // calls or jumps to them): a return probe anywhere else would corrupt the stack.
    let candidates: Vec<u64> = sites
        .iter()
        .filter(|(_, s)| s.iter().any(|site| site.name == 2))
        .map(|(start, _)| *start)
        .collect();
    let handshakes: Vec<u64> = candidates
        .iter()
        .zip(direct_references(&code, &candidates))
        .filter(|(_, references)| *references > 0)
        .map(|(start, _)| *start)
        .collect();
    if !handshakes.is_empty() {
        anchors.push(format!(
            "SSL_do_handshake (ERR_set_debug(ssl_lib.c, line, \"SSL_do_handshake\")) at {:x?}: a ClientHello written inside it is this OpenSSL's",
            handshakes
        ));
    }
    let offset = |address: u64| address - code.address + code.file_offset;
    Ok(Some(OpenSsl3Functions {
        read_internal: found[0],
        write_internal: found[1],
        read_offset: offset(found[0]),
        write_offset: offset(found[1]),
        write_has_flags,
        legacy_ssl_st,
        anchors,
        rustls_beside,
        handshake_offsets: handshakes.iter().map(|a| offset(*a)).collect(),
    }))
}

/// The version in the first `.../rustls-X.Y.Z/src/...` path in `.rodata` (Rust keeps crate
/// source paths for panic locations even in stripped binaries).
pub(super) fn rustls_version(rodata: &[u8]) -> Option<String> {
    const CRATE: &[u8] = b"/rustls-";
    memchr::memmem::find_iter(rodata, CRATE).find_map(|at| {
        let rest = &rodata[at + CRATE.len()..];
        let len = rest
            .iter()
            .take(32)
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        (len > 0 && rest.get(len..len + 5) == Some(b"/src/".as_slice()))
            .then(|| String::from_utf8_lossy(&rest[..len]).into_owned())
    })
}

/// Addresses and bytes (NUL included) of the `.rodata` strings that end in `ssl/ssl_lib.c`.
fn file_name_strings(rodata: &[u8], address: u64) -> Vec<(u64, &[u8])> {
    memchr::memmem::find_iter(rodata, SSL_LIB_FILE)
        .filter_map(|end| {
            let start = memchr::memrchr(0, &rodata[..end]).map_or(0, |nul| nul + 1);
            let string = &rodata[start..end + SSL_LIB_FILE.len()];
            (start == end || rodata[end - 1] == b'/').then_some((address + start as u64, string))
        })
        .collect()
}

/// Addresses of `name` (NUL-terminated) in `.rodata`, whole or as the tail of a longer string
/// (a linker that merges string tails points `__func__` into the middle of another).
fn suffix_strings(rodata: &[u8], address: u64, name: &[u8]) -> Vec<u64> {
    memchr::memmem::find_iter(rodata, name)
        .map(|at| address + at as u64)
        .collect()
}

/// The minor versions named by "OpenSSL 3.N.M ..." texts in `.rodata`, each with its text.
fn version_minors(rodata: &[u8]) -> BTreeMap<u32, String> {
    memchr::memmem::find_iter(rodata, VERSION_PREFIX)
        .filter_map(|at| {
            let rest = &rodata[at + VERSION_PREFIX.len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            // "3.N.M " (a version text), not "3.N" inside some other message.
            let after = rest.get(digits..)?;
            let patch = after.strip_prefix(b".")?;
            let patch_digits = patch.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0
                || digits > 3
                || patch_digits == 0
                || patch.get(patch_digits) != Some(&b' ')
            {
                return None;
            }
            let minor = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
            let end = memchr::memchr(0, &rodata[at..]).map_or(rodata.len(), |n| at + n);
            let text = String::from_utf8_lossy(&rodata[at..end.min(at + 64)]).into_owned();
            Some((minor, text))
        })
        .collect()
}

/// Decodes the function `[start, end)` and returns its `ERR_set_debug(file, line, func)`
/// calls for the wanted function names (`names[0]` read, `names[1]` write, `names[2]`
/// handshake).
fn error_sites(
    code: &Code<'_>,
    start: u64,
    end: u64,
    files: &[u64],
    names: &[Vec<u64>],
) -> Vec<ErrorSite> {
    let mut sites = Vec::new();
    if !code.contains(start) || end - start > MAX_FUNCTION_LEN {
        return sites;
    }
    let offset = (start - code.address) as usize;
    let stop = ((end - code.address) as usize).min(code.bytes.len());
    let mut decoder = Decoder::with_ip(64, &code.bytes[offset..stop], start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    // Known constant value of each general-purpose register (by full register), reset at
    // every call and branch target is not tracked: a value loaded before a call is only
    // trusted for that call.
    let mut values: BTreeMap<Register, u64> = BTreeMap::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        match instruction.flow_control() {
            FlowControl::Call => {
                let file = values.get(&Register::RDI);
                let line = values.get(&Register::RSI);
                let func = values.get(&Register::RDX);
                if let (Some(file), Some(line), Some(func)) = (file, line, func) {
                    if files.contains(file) && *line < 1_000_000 {
                        for (name, addresses) in names.iter().enumerate() {
                            if addresses.contains(func) {
                                sites.push(ErrorSite { line: *line, name });
                            }
                        }
                    }
                }
                values.clear();
                continue;
            }
            FlowControl::Return
            | FlowControl::IndirectBranch
            | FlowControl::UnconditionalBranch
            | FlowControl::ConditionalBranch => {
                values.clear();
                continue;
            }
            _ => {}
        }
        let destination = (instruction.op_count() > 0
            && instruction.op0_kind() == OpKind::Register)
            .then(|| instruction.op0_register().full_register())
            .filter(|r| r.is_gpr64());
        let Some(destination) = destination else {
            continue;
        };
        let constant = match instruction.mnemonic() {
            Mnemonic::Mov
                if matches!(
                    instruction.op1_kind(),
                    OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate64
                ) =>
            {
                Some(instruction.immediate(1))
            }
            Mnemonic::Lea if instruction.is_ip_rel_memory_operand() => {
                Some(instruction.ip_rel_memory_address())
            }
            _ => None,
        };
        match constant {
            Some(value) => {
                values.insert(destination, value);
            }
            None => {
                values.remove(&destination);
            }
        }
    }
    sites.sort();
    sites
}

/// `lea rdx, [rip + disp32]`: how PIE code passes an address as the third argument.
const LEA_RDX_RIP: [u8; 3] = [0x48, 0x8d, 0x15];
/// `mov edx, imm32`: how non-PIE code does.
const MOV_EDX_IMM32: u8 = 0xba;

/// Addresses of instructions that load one of `targets` into `rdx`, the register of
/// `ERR_set_debug`'s `func` argument: only these are sites the decode can confirm, and an
/// exact byte pattern makes the search of a few hundred MB of `.text` a fast substring
/// search rather than a walk over every `lea`. Candidates only: the function decode confirms
/// each on an instruction boundary.
fn third_argument_loads(code: &Code<'_>, targets: &[u64], absolute: bool) -> Vec<u64> {
    let mut loads = BTreeSet::new();
    for at in memchr::memmem::find_iter(code.bytes, &LEA_RDX_RIP) {
        let Some(disp) = code.bytes.get(at + 3..at + 7) else {
            break;
        };
        let disp = i32::from_le_bytes(disp.try_into().unwrap_or([0; 4]));
        let next = code.address + at as u64 + 7;
        if targets.contains(&next.wrapping_add_signed(i64::from(disp))) {
            loads.insert(code.address + at as u64);
        }
    }
    for target in targets.iter().filter(|_| absolute) {
        let Ok(imm) = u32::try_from(*target) else {
            continue;
        };
        let mut pattern = [MOV_EDX_IMM32, 0, 0, 0, 0];
        pattern[1..].copy_from_slice(&imm.to_le_bytes());
        for at in memchr::memmem::find_iter(code.bytes, &pattern) {
            loads.insert(code.address + at as u64);
        }
    }
    loads.into_iter().collect()
}

/// How far from a located function its direct callers are searched: `SSL_read`,
/// `SSL_read_ex` and `SSL_write_ex2` are in the same source file (`ssl_lib.c`), so the
/// compiler and linker place them next to it; searching all of a 300 MB `.text` for calls
/// took most of the analysis time.
const CALLER_WINDOW: u64 = 4 << 20;

/// How many `call rel32` or `jmp rel32` instructions within [`CALLER_WINDOW`] of them target
/// each of `targets` (a byte scan: an `E8`/`E9` inside another instruction can add a false
/// reference, never remove a real one; a tail call from `SSL_write_ex2` is a jump).
pub(super) fn direct_references(code: &Code<'_>, targets: &[u64]) -> Vec<usize> {
    let mut counts = vec![0; targets.len()];
    let low = targets.iter().min().copied().unwrap_or(0);
    let high = targets.iter().max().copied().unwrap_or(0);
    let from = low.saturating_sub(CALLER_WINDOW).max(code.address) - code.address;
    let to = (high.saturating_add(CALLER_WINDOW) - code.address).min(code.bytes.len() as u64);
    let (from, to) = (from as usize, to as usize);
    let window = code.bytes.get(from..to).unwrap_or_default();
    let window_address = code.address + from as u64;
    for at in memchr::memchr2_iter(0xe8, 0xe9, window) {
        let Some(rel) = window.get(at + 1..at + 5) else {
            break;
        };
        let rel = i32::from_le_bytes(rel.try_into().unwrap_or([0; 4]));
        let target = (window_address + at as u64 + 5).wrapping_add_signed(i64::from(rel));
        for (count, wanted) in counts.iter_mut().zip(targets) {
            if target == *wanted {
                *count += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
pub(super) mod tests;
