//! Locating aws-lc's `EVP_AEAD_CTX_seal`, `EVP_AEAD_CTX_open` and `EVP_AEAD_CTX_seal_scatter`
//! in a stripped executable that links rustls with the aws-lc-rs provider (Codex CLI 0.171
//! and later, static musl; any glibc PIE built with rustls's default provider), from the
//! binary itself: no table of per-release offsets or hashes.
//!
//! rustls has no function that sees both a connection's plaintext and its socket: it seals
//! and opens each TLS 1.3 record through aws-lc-rs, which calls aws-lc's
//! `EVP_AEAD_CTX_seal(ctx, out, out_len, max_out_len, nonce, nonce_len, in, in_len, ad,
//! ad_len)` and `EVP_AEAD_CTX_open(...)` (same arguments). The kernel programs
//! (`collector-ebpf/src/tls_rustls.rs`) take the plaintext there and bind each record to its
//! socket at the syscall that carries it.
//!
//! aws-lc reports errors as BoringSSL does, `OPENSSL_PUT_ERROR(CIPHER, reason)` →
//! `ERR_put_error(ERR_LIB_CIPHER, 0, reason, __FILE__, __LINE__)`: every error site in
//! `crypto/fipsmodule/cipher/aead.c` loads the library (30, in `edi`), the reason (`edx`),
//! the file name (`rcx`) and the line (`r8d`) before one call. The locator:
//!
//! 1. finds the string `.../crypto/fipsmodule/cipher/aead.c` in `.rodata`;
//! 2. finds the instructions that load it into `rcx` (`lea rcx, [rip + disp32]` in PIE code,
//!    `mov ecx, imm32` otherwise);
//! 3. takes each load's function bounds from `.eh_frame` ([`super::openssl3`]'s reader);
//! 4. decodes each such function with `iced-x86` and keeps its error sites (reason, line):
//!    the constant registers at each branch or call (several sites often jump to one shared
//!    call);
//! 5. recognises the two functions by the reasons of their sites in line order, which follow
//!    the order of the checks in aead.c and are stable across releases (the lines are not):
//!    `EVP_AEAD_CTX_seal` has exactly TOO_LARGE (117), BUFFER_TOO_SMALL (103),
//!    OUTPUT_ALIASES_INPUT (115); `EVP_AEAD_CTX_open` starts with OUTPUT_ALIASES_INPUT (115),
//!    BAD_DECRYPT (101), BUFFER_TOO_SMALL (103) (then `EVP_AEAD_CTX_open_gather`'s 115 and
//!    CTRL_NOT_IMPLEMENTED (104) when the compiler inlined it, as in Codex 0.171.0). Each must
//!    be exactly one function (a second would be a copy inlined into a caller whose calls the
//!    probes would miss), and a direct call or jump target or held by a GOT entry (Rust calls
//!    C through the GOT): an entry point, not a split-off cold block;
//!    `EVP_AEAD_CTX_seal_scatter` (OUTPUT_ALIASES_INPUT (115), INVALID_OPERATION (112)), with
//!    which rustls seals TLS 1.2's AES-GCM records, is located the same way when it can be;
//!    when not, only those records go uncaptured, and the anchors say so. Callers are found
//!    either way the binary links them: a direct call, or a GOT entry (in the file's `.got`,
//!    or as the addend of the `R_X86_64_RELATIVE` relocation that fills it in a glibc PIE);
//! 6. requires rustls in the same binary (its crate source paths in `.rodata`): the binding
//!    of records to sockets follows rustls's own record layout and tokio-rustls's order of
//!    reads and decryptions, so aws-lc used by anything else is not a TLS stack read here.
//!
//! The kernel programs check every call (the `EVP_AEAD_CTX`'s method table in the binary, the
//! AAD a TLS 1.3 record header or a TLS 1.2 AAD whose length matches) before emitting.

use std::collections::BTreeMap;

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use object::{Object as _, ObjectSection as _, RelocationFlags};

use super::boringssl::Code;
use super::openssl3::{direct_references, rustls_version, Unwind};

/// The names the located functions are attached under ([`super::TlsTarget::functions`]).
pub const SEAL: &str = "EVP_AEAD_CTX_seal";
pub const OPEN: &str = "EVP_AEAD_CTX_open";
/// rustls seals TLS 1.2's AES-GCM records with this one (the tag apart, the explicit nonce
/// before the ciphertext).
pub const SEAL_SCATTER: &str = "EVP_AEAD_CTX_seal_scatter";

/// The end of aws-lc's (and BoringSSL's) `__FILE__` for the generic AEAD functions.
const AEAD_FILE: &[u8] = b"crypto/fipsmodule/cipher/aead.c\0";
/// `ERR_LIB_CIPHER`.
const LIB_CIPHER: u64 = 30;
const OUTPUT_ALIASES_INPUT: u64 = 115;
const TOO_LARGE: u64 = 117;
const BUFFER_TOO_SMALL: u64 = 103;
const BAD_DECRYPT: u64 = 101;
const CTRL_NOT_IMPLEMENTED: u64 = 104;
const INVALID_OPERATION: u64 = 112;
/// Reasons of `EVP_AEAD_CTX_seal`'s error sites, in line order.
const SEAL_REASONS: [u64; 3] = [TOO_LARGE, BUFFER_TOO_SMALL, OUTPUT_ALIASES_INPUT];
/// Reasons of `EVP_AEAD_CTX_open`'s own error sites, in line order.
const OPEN_REASONS: [u64; 3] = [OUTPUT_ALIASES_INPUT, BAD_DECRYPT, BUFFER_TOO_SMALL];
/// `EVP_AEAD_CTX_seal_scatter`'s.
const SEAL_SCATTER_REASONS: [u64; 2] = [OUTPUT_ALIASES_INPUT, INVALID_OPERATION];
/// `EVP_AEAD_CTX_open_gather`'s, which may be inlined after them.
const OPEN_GATHER_REASONS: [u64; 2] = [OUTPUT_ALIASES_INPUT, CTRL_NOT_IMPLEMENTED];
/// The longest function decoded (aead.c's functions are a few hundred bytes).
const MAX_FUNCTION_LEN: u64 = 16 * 1024;

/// Where the two functions are and why the locator believes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsLcAead {
    /// Virtual addresses of the functions' first instructions.
    pub seal: u64,
    pub open: u64,
    /// The same, as offsets in the file (what a uprobe attaches at).
    pub seal_offset: u64,
    pub open_offset: u64,
    /// `EVP_AEAD_CTX_seal_scatter`'s address and file offset, when located (with the same
    /// evidence as the other two); without it, TLS 1.2 AES-GCM records sent are not captured
    /// (the anchors say why).
    pub seal_scatter: Option<(u64, u64)>,
    /// The rustls version linked in (its crate source paths).
    pub rustls: String,
    /// The evidence that matched, one line each.
    pub anchors: Vec<String>,
}

/// Why a binary that carries aws-lc's `aead.c` and rustls was not recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRecognised {
    pub why: String,
}

impl std::fmt::Display for NotRecognised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rustls with aws-lc found but aws-lc's AEAD not located: {}",
            self.why
        )
    }
}

/// One `ERR_put_error(ERR_LIB_CIPHER, 0, reason, file, line)` site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ErrorSite {
    line: u64,
    reason: u64,
}

/// Locates the functions in an ELF image. `Ok(None)`: no rustls, or no aws-lc `aead.c` error
/// sites (nothing to do); `Err`: both are there but the functions could not be located with
/// confidence (a blind spot to report).
pub fn locate(image: &[u8]) -> Result<Option<AwsLcAead>, NotRecognised> {
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
    let Some(rustls) = rustls_version(rodata_bytes) else {
        return Ok(None);
    };
    let files = file_name_strings(rodata_bytes, rodata_address);
    if files.is_empty() {
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
    let file_addresses: Vec<u64> = files.iter().map(|(a, _)| *a).collect();
    let absolute = elf.kind() != object::ObjectKind::Dynamic;
    let loads = fourth_argument_loads(&code, &file_addresses, absolute);
    if loads.is_empty() {
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
    let mut reasons: BTreeMap<u64, Vec<ErrorSite>> = BTreeMap::new();
    for (start, end) in &bounds {
        let sites = error_sites(&code, *start, *end, &file_addresses);
        if !sites.is_empty() {
            reasons.insert(*start, sites);
        }
    }
    let in_order = |sites: &[ErrorSite]| sites.iter().map(|s| s.reason).collect::<Vec<_>>();
    let seals: Vec<u64> = reasons
        .iter()
        .filter(|(_, sites)| in_order(sites) == SEAL_REASONS)
        .map(|(start, _)| *start)
        .collect();
    let opens: Vec<u64> = reasons
        .iter()
        .filter(|(_, sites)| {
            let order = in_order(sites);
            order == OPEN_REASONS || order == [&OPEN_REASONS[..], &OPEN_GATHER_REASONS[..]].concat()
        })
        .map(|(start, _)| *start)
        .collect();
    let [seal] = seals[..] else {
        return not(format!(
            "{} functions have EVP_AEAD_CTX_seal's error sites (reasons {SEAL_REASONS:?}), expected one",
            seals.len()
        ));
    };
    let [open] = opens[..] else {
        return not(format!(
            "{} functions have EVP_AEAD_CTX_open's error sites (reasons {OPEN_REASONS:?}), expected one",
            opens.len()
        ));
    };
    let mut anchors = vec![format!(
        "__FILE__ string {:?} at {:#x}; rustls {rustls} linked in (its source paths in .rodata)",
        String::from_utf8_lossy(files[0].1.strip_suffix(b"\0").unwrap_or(files[0].1)),
        files[0].0
    )];
    let scatters: Vec<u64> = reasons
        .iter()
        .filter(|(_, sites)| in_order(sites) == SEAL_SCATTER_REASONS)
        .map(|(start, _)| *start)
        .collect();
    let scatter_candidate = match scatters[..] {
        [one] => Ok(one),
        _ => Err(format!(
            "{} functions have its error sites (reasons {SEAL_SCATTER_REASONS:?}), expected one",
            scatters.len()
        )),
    };
    let mut targets = vec![seal, open];
    targets.extend(scatter_candidate.as_ref().ok());
    let references = direct_references(&code, &targets);
    let through_got = in_got(&elf, &targets);
    for (((label, start), direct), got) in [(SEAL, seal), (OPEN, open)]
        .iter()
        .zip(&references)
        .zip(&through_got)
    {
        if *direct == 0 && !got {
            return not(format!(
                "{label} candidate at {start:#x} is neither called or jumped to directly nor in the GOT"
            ));
        }
        let sites = &reasons[start];
        anchors.push(format!(
            "{label} at {start:#x} (.eh_frame bounds, {} bytes): ERR_put_error(CIPHER, reason, aead.c, line) with (reason, line) {:?}; {direct} direct calls or jumps to it{}",
            bounds[start] - start,
            sites.iter().map(|s| (s.reason, s.line)).collect::<Vec<_>>(),
            if *got { ", its address in the GOT (Rust calls it through that)" } else { "" }
        ));
    }
    let offset = |address: u64| address - code.address + code.file_offset;
    let seal_scatter = match scatter_candidate {
        Ok(start) if references[2] > 0 || through_got[2] => {
            anchors.push(format!(
                "{SEAL_SCATTER} at {start:#x} (.eh_frame bounds, {} bytes): error sites (reason, line) {:?}; {} direct calls or jumps to it{}",
                bounds[&start] - start,
                reasons[&start].iter().map(|s| (s.reason, s.line)).collect::<Vec<_>>(),
                references[2],
                if through_got[2] { ", its address in the GOT" } else { "" }
            ));
            Some((start, offset(start)))
        }
        Ok(start) => {
            anchors.push(format!(
                "{SEAL_SCATTER} not probed (TLS 1.2 AES-GCM records sent are not captured): candidate at {start:#x} is neither called directly nor in the GOT"
            ));
            None
        }
        Err(why) => {
            anchors.push(format!(
                "{SEAL_SCATTER} not probed (TLS 1.2 AES-GCM records sent are not captured): {why}"
            ));
            None
        }
    };
    if let Some(version) = crate_version(rodata_bytes, b"/aws-lc-rs-") {
        anchors.push(format!("aws-lc-rs {version} (its source paths in .rodata)"));
    }
    Ok(Some(AwsLcAead {
        seal,
        open,
        seal_offset: offset(seal),
        open_offset: offset(open),
        seal_scatter,
        rustls,
        anchors,
    }))
}

/// Whether each of `targets` is held by a `.got` entry: how Rust code in a PIE calls a C
/// function (aws-lc-rs calls aws-lc with `call [rip + disp32]` through its GOT entry, nowhere
/// near it, so a search for direct calls finds none). Only an entry point has its address
/// taken (a split-off cold block never does). The entry's value is read where the linker put
/// it: in the file's `.got` itself (Codex's static musl PIE), or only as the addend of the
/// `R_X86_64_RELATIVE` relocation the dynamic loader applies to that entry (a glibc PIE, whose
/// `.got` holds zeros in the file). Reading either (170 KB of GOT in Codex 0.171.0, a few
/// thousand relocations in a small binary) costs nothing next to a scan of `.text` for calls.
fn in_got(elf: &object::File<'_>, targets: &[u64]) -> Vec<bool> {
    let mut found = vec![false; targets.len()];
    let Some(got) = elf.section_by_name(".got") else {
        return found;
    };
    let mut mark = |value: u64| {
        for (found, target) in found.iter_mut().zip(targets) {
            *found |= value == *target;
        }
    };
    if let Ok(data) = got.data() {
        for slot in data.chunks_exact(8) {
            mark(u64::from_le_bytes(slot.try_into().unwrap_or([0; 8])));
        }
    }
    let entries = got.address()..got.address() + got.size();
    for (offset, relocation) in elf.dynamic_relocations().into_iter().flatten() {
        if entries.contains(&offset)
            && relocation.flags()
                == (RelocationFlags::Elf {
                    r_type: object::elf::R_X86_64_RELATIVE,
                })
        {
            mark(relocation.addend() as u64);
        }
    }
    found
}

/// The version in the first `.../NAME-X.Y.Z/src/...` path in `.rodata`.
fn crate_version(rodata: &[u8], name: &[u8]) -> Option<String> {
    memchr::memmem::find_iter(rodata, name).find_map(|at| {
        let rest = &rodata[at + name.len()..];
        let len = rest
            .iter()
            .take(32)
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        (len > 0 && rest.get(len..len + 5) == Some(b"/src/".as_slice()))
            .then(|| String::from_utf8_lossy(&rest[..len]).into_owned())
    })
}

/// Addresses and bytes (NUL included) of the `.rodata` strings that end in
/// `crypto/fipsmodule/cipher/aead.c`.
fn file_name_strings(rodata: &[u8], address: u64) -> Vec<(u64, &[u8])> {
    memchr::memmem::find_iter(rodata, AEAD_FILE)
        .filter_map(|end| {
            let start = memchr::memrchr(0, &rodata[..end]).map_or(0, |nul| nul + 1);
            let string = &rodata[start..end + AEAD_FILE.len()];
            (start == end || rodata[end - 1] == b'/').then_some((address + start as u64, string))
        })
        .collect()
}

/// `lea rcx, [rip + disp32]`: how PIE code passes an address as the fourth argument.
const LEA_RCX_RIP: [u8; 3] = [0x48, 0x8d, 0x0d];
/// `mov ecx, imm32`: how non-PIE code does.
const MOV_ECX_IMM32: u8 = 0xb9;

/// Addresses of instructions that load one of `targets` into `rcx` (`ERR_put_error`'s `file`
/// argument). Candidates only: the function decode confirms each.
fn fourth_argument_loads(code: &Code<'_>, targets: &[u64], absolute: bool) -> Vec<u64> {
    let mut loads = std::collections::BTreeSet::new();
    for at in memchr::memmem::find_iter(code.bytes, &LEA_RCX_RIP) {
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
        let mut pattern = [MOV_ECX_IMM32, 0, 0, 0, 0];
        pattern[1..].copy_from_slice(&imm.to_le_bytes());
        for at in memchr::memmem::find_iter(code.bytes, &pattern) {
            loads.insert(code.address + at as u64);
        }
    }
    loads.into_iter().collect()
}

/// Decodes the function `[start, end)` and returns its `ERR_put_error(ERR_LIB_CIPHER, _,
/// reason, file, line)` sites, sorted by line: the registers' constant values are taken at
/// every call or branch (an error site often loads its arguments and jumps to a call shared
/// with the other sites), then forgotten.
fn error_sites(code: &Code<'_>, start: u64, end: u64, files: &[u64]) -> Vec<ErrorSite> {
    let mut sites = Vec::new();
    if !code.contains(start) || end - start > MAX_FUNCTION_LEN {
        return sites;
    }
    let offset = (start - code.address) as usize;
    let stop = ((end - code.address) as usize).min(code.bytes.len());
    let mut decoder = Decoder::with_ip(64, &code.bytes[offset..stop], start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut values: BTreeMap<Register, u64> = BTreeMap::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        if instruction.flow_control() != FlowControl::Next {
            let value = |r: Register| values.get(&r).copied();
            if let (Some(LIB_CIPHER), Some(reason), Some(file), Some(line)) = (
                value(Register::RDI),
                value(Register::RDX),
                value(Register::RCX),
                value(Register::R8),
            ) {
                if files.contains(&file) && line < 1_000_000 && reason < 4096 {
                    sites.push(ErrorSite { line, reason });
                }
            }
            values.clear();
            continue;
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
    sites.dedup();
    sites
}

#[cfg(test)]
mod tests;
