//! Locating BoringSSL's `SSL_write` and `SSL_read` in a stripped executable that links it in
//! without exporting them (Bun, so Claude Code's native binary), from the binary itself: no
//! table of per-release offsets or hashes.
//!
//! BoringSSL reports errors with `OPENSSL_PUT_ERROR(SSL, reason)`, which passes `__FILE__`
//! (a `.rodata` string ending in `ssl/ssl_lib.cc`; OpenSSL's own file is `ssl_lib.c`), the
//! public reason code (`ERR_R_*`, `SSL_R_*`: part of BoringSSL's ABI, never renumbered) and
//! `__LINE__` to `ERR_put_error(library, unused, reason, file, line)`. Every error site in
//! `ssl_lib.cc` therefore loads the file string's address next to two immediates: the reason
//! in the argument register before the file's, the line in the one after (whatever the
//! compiler did to the unused argument). The locator:
//!
//! 1. finds the file-name string in `.rodata`;
//! 2. finds the instructions that load its address in `.text` (`mov r32, imm32` in a non-PIE
//!    executable such as Bun's, a RIP-relative `lea` otherwise);
//! 3. finds each site's function (the nearest preceding frame-pointer prologue at a 16-byte
//!    boundary after padding: Bun is built with frame pointers) and decodes it with
//!    `iced-x86` from its first instruction, which must reach the site on an instruction
//!    boundary, collecting each error site's (reason, line) and the function's direct calls;
//! 4. recognises the functions by the order of their error reasons, which follows the
//!    source: `SSL_write` checks QUIC (66), then an uninitialised handshake (226), a failed
//!    implicit handshake (215) and a negative length (111); `ssl_read_impl` reports 226 then
//!    215; `SSL_read` (with `SSL_peek` inlined) reports 66 from a line between those two
//!    functions and calls `ssl_read_impl` (or has it inlined).
//!
//! Both functions must be found, each exactly once, and each must be a direct call target in
//! `.text`; otherwise the binary is reported as not recognised, with the reason, and nothing
//! is probed. The kernel programs check the arguments again at run time (see
//! `collector-ebpf/src/tls.rs`).

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use object::{Object as _, ObjectSection as _};

/// `ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED` (the QUIC checks in `SSL_write` and `SSL_peek`).
const ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED: u64 = 66;
/// `SSL_R_UNINITIALIZED`.
const SSL_R_UNINITIALIZED: u64 = 226;
/// `SSL_R_SSL_HANDSHAKE_FAILURE`.
const SSL_R_SSL_HANDSHAKE_FAILURE: u64 = 215;
/// `SSL_R_BAD_LENGTH`.
const SSL_R_BAD_LENGTH: u64 = 111;
/// `ERR_LIB_SSL`: the library argument every `ssl_lib.cc` site passes.
const ERR_LIB_SSL: u64 = 16;

/// The suffix of `__FILE__` for BoringSSL's `ssl/ssl_lib.cc`, NUL-terminated in `.rodata`.
const SSL_LIB_FILE: &[u8] = b"ssl/ssl_lib.cc\0";

/// How far back from an error site its function's first instruction may be.
const MAX_FUNCTION_PREFIX: usize = 64 * 1024;
/// How many bytes of one function are decoded at most.
const MAX_FUNCTION_LEN: usize = 64 * 1024;

/// Argument registers of the System V x86-64 calling convention, in order.
pub(super) const ARGUMENT_REGISTERS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];

/// Where `SSL_write` and `SSL_read` are, and why the locator believes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoringSslFunctions {
    /// Virtual address of `SSL_write`'s first instruction.
    pub ssl_write: u64,
    /// Virtual address of `SSL_read`'s first instruction.
    pub ssl_read: u64,
    /// The same, as offsets in the file (what a uprobe attaches at).
    pub ssl_write_offset: u64,
    pub ssl_read_offset: u64,
    /// The evidence that matched, one line each, for the coverage report and logs.
    pub anchors: Vec<String>,
}

/// Why a binary that carries BoringSSL's `ssl_lib.cc` was not recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRecognised {
    pub why: String,
}

impl std::fmt::Display for NotRecognised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoringSSL found but not located: {}", self.why)
    }
}

/// One `OPENSSL_PUT_ERROR` call site in `ssl_lib.cc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ErrorSite {
    line: u64,
    reason: u64,
    address: u64,
}

/// What decoding one function found.
#[derive(Debug, Default)]
struct FunctionFacts {
    /// Error sites, ordered by source line.
    sites: Vec<ErrorSite>,
    /// Targets of direct calls.
    calls: BTreeSet<u64>,
}

/// An executable section: where it is loaded and its bytes.
pub(super) struct Code<'a> {
    pub(super) address: u64,
    pub(super) file_offset: u64,
    pub(super) bytes: &'a [u8],
}

impl Code<'_> {
    pub(super) fn contains(&self, address: u64) -> bool {
        address >= self.address && address - self.address < self.bytes.len() as u64
    }
}

/// Locates the functions in an ELF image. `Ok(None)`: the binary carries no BoringSSL
/// `ssl_lib.cc` (nothing to do); `Err`: it does, but the functions could not be located
/// with confidence (a blind spot to report).
pub fn locate(image: &[u8]) -> Result<Option<BoringSslFunctions>, NotRecognised> {
    let Ok(elf) = object::File::parse(image) else {
        return Ok(None);
    };
    let Some(rodata) = elf.section_by_name(".rodata") else {
        return Ok(None);
    };
    let (Ok(rodata_bytes), rodata_address) = (rodata.data(), rodata.address()) else {
        return Ok(None);
    };
    let strings = file_name_strings(rodata_bytes, rodata_address);
    if strings.is_empty() {
        return Ok(None);
    }
    let not = |why: String| Err(NotRecognised { why });
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
    let mut anchors = vec![format!(
        "__FILE__ string {:?} at {:#x}",
        String::from_utf8_lossy(strings[0].1.strip_suffix(b"\0").unwrap_or(strings[0].1)),
        strings[0].0
    )];

    let string_addresses: Vec<u64> = strings.iter().map(|(a, _)| *a).collect();
    // Position-independent code (ET_DYN: a PIE or a shared library) never loads an address
    // as an absolute immediate.
    let absolute = elf.kind() != object::ObjectKind::Dynamic;
    let loads = string_loads(&code, &string_addresses, absolute);
    if loads.is_empty() {
        // The name alone (in a string table, or a program that mentions it, like this one)
        // is not BoringSSL's code.
        return Ok(None);
    }
    let mut starts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for load in &loads {
        if let Some(start) = function_start(&code, *load) {
            starts.entry(start).or_default().push(*load);
        }
    }
    let mut functions: BTreeMap<u64, FunctionFacts> = BTreeMap::new();
    let mut site_count = 0;
    for (start, loads) in &starts {
        let facts = decode_function(&code, *start, loads, &string_addresses);
        site_count += facts.sites.len();
        if !facts.sites.is_empty() {
            functions.insert(*start, facts);
        }
    }
    if site_count == 0 {
        // Code that mentions the name without passing it to ERR_put_error(ERR_LIB_SSL, ...)
        // is not BoringSSL's (this very module loads it, to search for it).
        return Ok(None);
    }
    anchors.push(format!(
        "{} loads of it in .text, {} decoded as ERR_put_error(ERR_LIB_SSL, reason, file, line) sites in {} functions",
        loads.len(),
        site_count,
        functions.len()
    ));

    let reasons = |f: &FunctionFacts| f.sites.iter().map(|s| s.reason).collect::<Vec<_>>();
    let lines = |f: &FunctionFacts| f.sites.iter().map(|s| s.line).collect::<Vec<_>>();

    // SSL_write: 66, 226, 215, 111 in source order.
    let write_pattern = [
        ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED,
        SSL_R_UNINITIALIZED,
        SSL_R_SSL_HANDSHAKE_FAILURE,
        SSL_R_BAD_LENGTH,
    ];
    let writes: Vec<u64> = functions
        .iter()
        .filter(|(_, f)| is_subsequence(&write_pattern, &reasons(f)))
        .map(|(a, _)| *a)
        .collect();
    let [ssl_write] = writes[..] else {
        return not(format!(
            "{} functions report reasons 66, 226, 215, 111 in source order (SSL_write), expected one",
            writes.len()
        ));
    };
    let write_facts = &functions[&ssl_write];
    let write_first_line = write_facts.sites[0].line;
    anchors.push(format!(
        "SSL_write at {ssl_write:#x}: reasons {:?} at lines {:?}",
        reasons(write_facts),
        lines(write_facts)
    ));

    // ssl_read_impl: 226 then 215, before SSL_write in the source, and not SSL_write itself.
    let read_impl_pattern = [SSL_R_UNINITIALIZED, SSL_R_SSL_HANDSHAKE_FAILURE];
    let read_impls: Vec<u64> = functions
        .iter()
        .filter(|(a, f)| {
            **a != ssl_write
                && is_subsequence(&read_impl_pattern, &reasons(f))
                && !f.sites.iter().any(|s| s.reason == SSL_R_BAD_LENGTH)
                && f.sites.iter().all(|s| s.line < write_first_line)
        })
        .map(|(a, _)| *a)
        .collect();
    let read_impl_last_line = read_impls
        .iter()
        .flat_map(|a| functions[a].sites.iter().map(|s| s.line))
        .max();

    // SSL_read: a QUIC check (66) from a line between ssl_read_impl and SSL_write, in a
    // function that calls ssl_read_impl or has it inlined.
    let reads: Vec<(u64, String)> = functions
        .iter()
        .filter(|(a, _)| **a != ssl_write && !read_impls.contains(a))
        .filter_map(|(a, f)| {
            let quic = f
                .sites
                .iter()
                .find(|s| s.reason == ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED)?;
            if quic.line >= write_first_line {
                return None;
            }
            if let Some(callee) = read_impls.iter().find(|r| f.calls.contains(r)) {
                let impl_facts = &functions[callee];
                (quic.line > read_impl_last_line?).then(|| {
                    (*a, format!(
                        "SSL_read at {a:#x}: reason 66 at line {} (SSL_peek inlined), calls ssl_read_impl at {callee:#x} (reasons {:?} at lines {:?})",
                        quic.line,
                        reasons(impl_facts),
                        lines(impl_facts)
                    ))
                })
            } else {
                let inlined = is_subsequence(
                    &[
                        SSL_R_UNINITIALIZED,
                        SSL_R_SSL_HANDSHAKE_FAILURE,
                        ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED,
                    ],
                    &reasons(f),
                ) && !f.sites.iter().any(|s| s.reason == SSL_R_BAD_LENGTH);
                inlined.then(|| {
                    (*a, format!(
                        "SSL_read at {a:#x}: reasons {:?} at lines {:?} (ssl_read_impl and SSL_peek inlined)",
                        reasons(f),
                        lines(f)
                    ))
                })
            }
        })
        .collect();
    let [(ssl_read, ref read_anchor)] = reads[..] else {
        return not(format!(
            "{} functions look like SSL_read (QUIC check between ssl_read_impl and SSL_write), expected one",
            reads.len()
        ));
    };
    anchors.push(read_anchor.clone());

    let callers = direct_callers(&code, &[ssl_write, ssl_read]);
    for (name, address, count) in [
        ("SSL_write", ssl_write, callers[0]),
        ("SSL_read", ssl_read, callers[1]),
    ] {
        if count == 0 {
            return not(format!(
                "{name} candidate at {address:#x} is never called directly"
            ));
        }
        anchors.push(format!("{name} has {count} direct callers"));
    }
    let offset = |address: u64| address - code.address + code.file_offset;
    Ok(Some(BoringSslFunctions {
        ssl_write,
        ssl_read,
        ssl_write_offset: offset(ssl_write),
        ssl_read_offset: offset(ssl_read),
        anchors,
    }))
}

/// Addresses and bytes (NUL included) of the `.rodata` strings that end in `ssl/ssl_lib.cc`.
fn file_name_strings(rodata: &[u8], address: u64) -> Vec<(u64, &[u8])> {
    memchr::memmem::find_iter(rodata, SSL_LIB_FILE)
        .filter_map(|end| {
            let start = memchr::memrchr(0, &rodata[..end]).map_or(0, |nul| nul + 1);
            let string = &rodata[start..end + SSL_LIB_FILE.len()];
            // A path: either the whole string is the suffix or a '/' precedes it.
            (start == end || rodata[end - 1] == b'/').then_some((address + start as u64, string))
        })
        .collect()
}

/// Addresses of instructions that load one of `targets` into a register: `mov r32, imm32`
/// (non-PIE code, searched only when `absolute`) or a RIP-relative `lea` (PIE code).
/// Candidates only: the function decode confirms each one on an instruction boundary.
pub(super) fn string_loads(code: &Code<'_>, targets: &[u64], absolute: bool) -> Vec<u64> {
    let mut loads = BTreeSet::new();
    for target in targets.iter().filter(|_| absolute) {
        let Ok(imm) = u32::try_from(*target) else {
            continue;
        };
        for at in memchr::memmem::find_iter(code.bytes, &imm.to_le_bytes()) {
            // B8+r imm32, optionally after a REX.B prefix (r8d..r15d).
            if at >= 1 && (0xb8..=0xbf).contains(&code.bytes[at - 1]) {
                loads.insert(code.address + at as u64 - 1);
                if at >= 2 && code.bytes[at - 2] == 0x41 {
                    loads.insert(code.address + at as u64 - 2);
                }
            }
        }
    }
    // lea r64, [rip + disp32]: REX.W (48 or 4C) 8D, ModRM mod=00 rm=101.
    for at in memchr::memchr_iter(0x8d, code.bytes) {
        if at == 0 || at + 6 > code.bytes.len() {
            continue;
        }
        if !matches!(code.bytes[at - 1], 0x48 | 0x4c) || code.bytes[at + 1] & 0xc7 != 0x05 {
            continue;
        }
        let disp = i32::from_le_bytes(code.bytes[at + 2..at + 6].try_into().unwrap_or([0; 4]));
        let next = code.address + at as u64 + 6;
        let resolved = next.wrapping_add_signed(i64::from(disp));
        if targets.contains(&resolved) {
            loads.insert(code.address + at as u64 - 1);
        }
    }
    loads.into_iter().collect()
}

/// The first instruction of the function holding `address`: the nearest preceding
/// [`function_boundary`].
fn function_start(code: &Code<'_>, address: u64) -> Option<u64> {
    let at = usize::try_from(address - code.address).ok()?;
    let floor = at.saturating_sub(MAX_FUNCTION_PREFIX);
    let mut end = at;
    while let Some(found) = memchr::memmem::rfind(&code.bytes[floor..end], PROLOGUE) {
        let found = floor + found;
        for start in [found, found.saturating_sub(ENDBR64.len())] {
            if function_boundary(code, start) {
                return Some(code.address + start as u64);
            }
        }
        end = found;
    }
    None
}

/// `push rbp; mov rbp, rsp`: Bun keeps frame pointers, so every function that calls another
/// starts with it.
const PROLOGUE: &[u8] = &[0x55, 0x48, 0x89, 0xe5];
/// `endbr64`, before the prologue in CET-enabled builds.
const ENDBR64: &[u8] = &[0xf3, 0x0f, 0x1e, 0xfa];

/// Whether a function starts at `offset` in `.text`: a prologue (after an optional
/// `endbr64`) at a 16-byte boundary, right after what ends a function: padding (`int3`,
/// `nop`), `ret`, a jump, or a call (to a function that does not return, such as `abort`).
/// A prologue the compiler moved inside a function (shrink-wrapping) follows other code.
fn function_boundary(code: &Code<'_>, offset: usize) -> bool {
    let bytes = code.bytes;
    let prologue_at = if bytes[offset..].starts_with(ENDBR64) {
        offset + ENDBR64.len()
    } else {
        offset
    };
    if !(code.address + offset as u64).is_multiple_of(16)
        || !bytes[prologue_at..].starts_with(PROLOGUE)
    {
        return false;
    }
    offset == 0
        || matches!(bytes[offset - 1], 0xcc | 0x90 | 0xc3)
        || (offset >= 5 && matches!(bytes[offset - 5], 0xe8 | 0xe9))
        || (offset >= 2 && bytes[offset - 2] == 0xeb)
}

/// Decodes the function at `start` (through `int3` padding or the next function's prologue)
/// and collects its error sites and direct calls. `loads` are the candidate string loads in
/// it; a site counts only if decoding reaches it on an instruction boundary.
fn decode_function(code: &Code<'_>, start: u64, loads: &[u64], strings: &[u64]) -> FunctionFacts {
    let mut facts = FunctionFacts::default();
    let Some(offset) = usize::try_from(start - code.address).ok() else {
        return facts;
    };
    let last_load = loads.iter().copied().max().unwrap_or(start);
    let end = (offset + MAX_FUNCTION_LEN).min(code.bytes.len());
    let mut decoder = Decoder::with_ip(64, &code.bytes[offset..end], start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    // Known constant value of each general-purpose register (by full register).
    let mut values: BTreeMap<Register, u64> = BTreeMap::new();
    // The register holding the file name, and the address of the instruction that loaded it.
    let mut file_in: Option<(Register, u64)> = None;
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        let ip = instruction.ip();
        if ip != start && ip > last_load {
            // Past the last site: stop at padding or at the next function.
            if instruction.mnemonic() == Mnemonic::Int3
                || function_boundary(code, (ip - code.address) as usize)
            {
                break;
            }
        }
        match instruction.flow_control() {
            FlowControl::Call | FlowControl::UnconditionalBranch => {
                if instruction.flow_control() == FlowControl::Call
                    && instruction.op0_kind() == OpKind::NearBranch64
                {
                    facts.calls.insert(instruction.near_branch_target());
                }
                if let Some((register, load)) = file_in.take() {
                    if let Some(site) = error_site(&values, register, load) {
                        facts.sites.push(site);
                    }
                }
                values.clear();
                continue;
            }
            FlowControl::Return | FlowControl::IndirectBranch => {
                file_in = None;
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
            Mnemonic::Xor
                if instruction.op1_kind() == OpKind::Register
                    && instruction.op1_register() == instruction.op0_register() =>
            {
                Some(0)
            }
            Mnemonic::Lea if instruction.is_ip_rel_memory_operand() => {
                Some(instruction.ip_rel_memory_address())
            }
            _ => None,
        };
        match constant {
            Some(value) => {
                values.insert(destination, value);
                if loads.contains(&ip) && strings.contains(&value) {
                    file_in = Some((destination, ip));
                }
            }
            None => {
                values.remove(&destination);
                if file_in.is_some_and(|(r, _)| r == destination) {
                    file_in = None;
                }
            }
        }
    }
    facts.sites.sort();
    facts
}

/// The (reason, line) of an `ERR_put_error` call whose file argument is in `file_register`.
fn error_site(
    values: &BTreeMap<Register, u64>,
    file_register: Register,
    address: u64,
) -> Option<ErrorSite> {
    let index = ARGUMENT_REGISTERS
        .iter()
        .position(|r| *r == file_register)?;
    if index < 2 || index + 1 >= ARGUMENT_REGISTERS.len() {
        return None;
    }
    // The library is the first argument.
    if values.get(&Register::RDI) != Some(&ERR_LIB_SSL) {
        return None;
    }
    let reason = *values.get(&ARGUMENT_REGISTERS[index - 1])?;
    let line = *values.get(&ARGUMENT_REGISTERS[index + 1])?;
    (reason < 4096 && line < 1_000_000).then_some(ErrorSite {
        line,
        reason,
        address,
    })
}

/// Whether `pattern` occurs in `sequence` in order (not necessarily adjacent).
fn is_subsequence(pattern: &[u64], sequence: &[u64]) -> bool {
    let mut rest = sequence.iter();
    pattern.iter().all(|p| rest.any(|s| s == p))
}

/// How many `call rel32` instructions in `.text` target each of `targets` (a byte scan: an
/// `E8` inside another instruction can add a false caller, never remove a real one).
fn direct_callers(code: &Code<'_>, targets: &[u64]) -> Vec<usize> {
    let mut counts = vec![0; targets.len()];
    for at in memchr::memchr_iter(0xe8, code.bytes) {
        let Some(rel) = code.bytes.get(at + 1..at + 5) else {
            break;
        };
        let rel = i32::from_le_bytes(rel.try_into().unwrap_or([0; 4]));
        let target = (code.address + at as u64 + 5).wrapping_add_signed(i64::from(rel));
        if !code.contains(target) {
            continue;
        }
        for (count, wanted) in counts.iter_mut().zip(targets) {
            if target == *wanted {
                *count += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests;
