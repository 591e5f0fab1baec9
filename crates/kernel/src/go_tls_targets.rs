//! Finding Go `crypto/tls` in an executable: the file offsets of the uprobes on
//! `(*Conn).Write` and `(*Conn).Read`, placed on instructions the kernel emulates rather than
//! single-steps wherever the code is recognised exactly (see below).
//!
//! Functions are found through the Go function table (`pclntab`, see [`crate::go_pclntab`]),
//! which stripped binaries (`-ldflags='-s -w'`) keep, so symbols are never needed. The code
//! is decoded with `iced-x86`. Uretprobes must never be used on Go code: they replace the
//! return address on the goroutine's stack, and the Go runtime moves and copies goroutine
//! stacks.
//!
//! Only x86-64 binaries built with the register ABI (Go 1.17 and later) are probed: the kernel
//! programs read the receiver, buffer and results from registers (`RAX`, `RBX`, `RCX`; the
//! goroutine from `R14`). Anything else is reported as a [`GoTlsBinary`] that says why
//! plaintext is not seen.
//!
//! ## Why the placement matters: single-stepping
//!
//! A uprobe replaces an instruction with `INT3`; after the kernel program ran, the kernel
//! either emulates the displaced instruction (on x86: `jmp`, `jcc`, `call rel32`, `nop`,
//! `push reg`) or copies it out of line and single-steps it, which costs a second exception,
//! a debug trap that in a virtual machine exits to the hypervisor (arch/x86/kernel/uprobes.c;
//! `ret`, `sub`, `mov` are single-stepped). On the benches' VM the single-stepped probes
//! roughly doubled a Go agent's CPU per request. So each probe goes on an emulated
//! instruction where the code has exactly the expected shape, and on the former placement
//! otherwise.
//!
//! ## Entries: on the stack-growth check's `JBE`
//!
//! A Go function's first instructions check that the goroutine's stack has room for its
//! frame: `CMP RSP, [R14+16]` (`g.stackguard0`) for small frames, `LEA R12, [RSP-N]` then
//! `CMP R12, [R14+16]` for bigger ones, `MOV R12, RSP; SUB R12, N; JB` first for huge ones;
//! then `JBE` to a stub at the function's end that calls `runtime.morestack` and jumps back
//! to the first instruction. So the prologue runs twice for one call whenever the stack must
//! grow, and also whenever the scheduler or the garbage collector asks the goroutine to stop
//! (they set `stackguard0` to `stackPreempt`, from another thread, at any time). A probe on the
//! first instruction captured such a `Write` twice.
//!
//! The probe goes on the `JBE` itself, a conditional jump the kernel emulates, and the kernel
//! program reads the flags the `CMP` left: with `CF` or `ZF` set the branch goes to the stub
//! and the function starts over, so that firing is skipped and the next run's is the real
//! one. Exactly one run per call falls through the `JBE`. The flags are decided before the
//! probe fires and the kernel branches on the same saved flags after it, so nothing can
//! change the outcome in between (`stackguard0`, which other threads write, was read by the
//! `CMP` already). The check only writes `R12` and the flags, so the argument registers are
//! as at the entry, and after a stack growth they hold the moved stack's addresses (the stub
//! spills them where the runtime adjusts them and reloads them).
//!
//! (A former version probed the instruction after the `JBE`, which runs once per call but is
//! the frame's `SUB RSP`, single-stepped; checking `RSP - frame <= stackguard0` in the program
//! at the first instruction was rejected because `stackguard0` can change between the
//! program's read and the function's own `CMP`.)
//!
//! The check is recognised only in exactly those forms, with the `JBE` encoded as the kernel
//! emulates it, the `JBE` (and the huge form's `JB`) going to a stub in the function that
//! calls and then jumps back to the entry, and no other branch in the function going back
//! into the check. Otherwise `Write` is probed at its first instruction and the coverage
//! report and the summary's warnings say so (a call that grows the stack there is then
//! captured twice). `Read` falls back silently: its entry probe only stashes the arguments
//! under the goroutine, and a second firing replaces them with the same call's (post-growth)
//! arguments before they are used.
//!
//! ## `Read`'s result: at the copy into the caller's buffer
//!
//! `Read` returns `n` bytes copied by `c.input.Read(b)`, `bytes.(*Reader).Read` inlined into
//! it: one `CALL runtime.memmove` (to in `RAX`, from in `RBX`, count in `RCX`) whose source is
//! the decrypted record in the connection's buffer and whose count is `n`. A `call rel32` is
//! emulated, so one probe there replaces a probe on every `RET` (each single-stepped, and
//! Go's epilogues, `MOV`, `ADD RSP`, `RET`, hold nothing the kernel emulates). The kernel
//! program only trusts it when the destination is the buffer `Read` was given (moved with the
//! stack if it was on it), which rules out any other copy; it emits the source's bytes. When
//! `Read` does not hold exactly one such call (a build with inlining off, a future
//! `crypto/tls`), its `RET`s are probed as before: `n` in `RAX`, the bytes in the stashed
//! buffer.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use object::{Architecture, Object as _, ObjectSection as _, ObjectSymbol as _};
use serde::Serialize;

use crate::go_buildinfo::{go_version, parse_go_version};
use crate::go_pclntab::{GoFunction, Pclntab, MAGIC_GO116};

/// How plaintext is captured for a probed Go binary (the coverage report's method).
pub const GO_TLS_METHOD: &str = "go crypto/tls (pclntab)";
pub const GO_WRITE: &str = "crypto/tls.(*Conn).Write";
pub const GO_READ: &str = "crypto/tls.(*Conn).Read";
/// The runtime's copy, called by `Read` to fill the caller's buffer (see the module doc).
const GO_MEMMOVE: &str = "runtime.memmove";
/// More `RET`s than this in `Read` means the decoding went wrong: nothing is attached.
const MAX_RETURNS: usize = 64;
/// Longest function body decoded.
const MAX_FUNCTION_BYTES: u64 = 1 << 20;
/// Go's stack-growth check takes at most this many instructions (the huge-frame form).
const STACK_CHECK_INSTRUCTIONS: usize = 5;
/// Instructions followed through the morestack stub (argument spills, the call, reloads, the
/// jump back): a register-ABI function spills at most its 9 integer and 15 float registers
/// twice.
const MAX_STUB_INSTRUCTIONS: usize = 64;
/// Offset of `stackguard0` in the runtime's `g`.
const G_STACKGUARD0: u64 = 16;

/// Where an entry probe sits (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryProbe {
    /// File offset of the prologue's stack-check `JBE`: it fires on every run of the
    /// prologue, and the kernel program skips the runs that branch to morestack.
    StackCheck(u64),
    /// File offset of the function's first instruction (its stack check was not recognised):
    /// every run of the prologue counts.
    FirstInstruction(u64),
}

impl EntryProbe {
    pub fn offset(self) -> u64 {
        match self {
            EntryProbe::StackCheck(offset) | EntryProbe::FirstInstruction(offset) => offset,
        }
    }
}

/// Where `(*Conn).Read`'s result is taken (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResultProbe {
    /// File offset of the `CALL runtime.memmove` that copies the plaintext into the caller's
    /// buffer.
    Copy(u64),
    /// File offsets of every `RET`.
    Returns(Vec<u64>),
}

impl ReadResultProbe {
    /// The file offsets to attach to.
    pub fn offsets(&self) -> &[u64] {
        match self {
            ReadResultProbe::Copy(offset) => std::slice::from_ref(offset),
            ReadResultProbe::Returns(offsets) => offsets,
        }
    }
}

/// Where to attach in a Go executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTlsTarget {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub go_version: Option<String>,
    /// Whether the binary still has its symbol table (not built with `-s`).
    pub has_symbols: bool,
    /// The `(*Conn).Write` probe, where the buffer is complete.
    pub write_probe: EntryProbe,
    /// Why `write_probe` is `Write`'s first instruction, when it is: a call that grows the
    /// stack there is captured twice.
    pub write_probe_weakness: Option<String>,
    /// The `(*Conn).Read` entry probe, which stashes the receiver and the buffer (the first
    /// instruction when the check is not recognised, which is harmless for `Read`).
    pub read_probe: EntryProbe,
    /// Where `Read`'s bytes are taken once their count is known.
    pub read_result: ReadResultProbe,
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
    /// What is captured imperfectly although it is captured: `Write` probed at its first
    /// instruction (its stack-growth check was not recognised), so a call that grows the
    /// goroutine's stack there is captured twice.
    pub warning: Option<String>,
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
    let wanted = [GO_WRITE, GO_READ, GO_MEMMOVE];
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
    let (write_probe, write_probe_weakness) =
        match DecodedFunction::decode(data, &elf, write).and_then(|f| f.stack_check_branch()) {
            Ok(offset) => (EntryProbe::StackCheck(offset), None),
            Err(why) => (
                EntryProbe::FirstInstruction(write_entry),
                Some(format!(
                    "{GO_WRITE} probed at its first instruction ({why}): a call that grows \
                     its goroutine's stack or is preempted there is captured twice"
                )),
            ),
        };
    let read_code = match DecodedFunction::decode(data, &elf, read) {
        Ok(code) => code,
        Err(reason) => return unsupported(&version, reason),
    };
    let memmove = functions.iter().find(|f| f.name == GO_MEMMOVE);
    let read_result = match memmove.map(|m| read_code.copy_call(m.entry)) {
        Some(Ok(offset)) => ReadResultProbe::Copy(offset),
        None | Some(Err(_)) => match read_code.returns() {
            Ok(offsets) => ReadResultProbe::Returns(offsets),
            Err(reason) => return unsupported(&version, reason),
        },
    };
    let read_probe = read_code.stack_check_branch().map_or(
        EntryProbe::FirstInstruction(read_entry),
        EntryProbe::StackCheck,
    );
    GoTlsAnalysis::Probeable(GoTlsTarget {
        path: path.to_path_buf(),
        dev,
        ino,
        go_version: version,
        has_symbols: has_symbol(&elf, GO_READ),
        write_probe,
        write_probe_weakness,
        read_probe,
        read_result,
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

/// A function's machine code, decoded whole. Go emits no data in its text, so a linear sweep
/// sees every instruction; an undecodable byte before the padding after the last instruction
/// means something else is there, and the function is refused (a uprobe in the middle of an
/// instruction would corrupt the program).
struct DecodedFunction<'a> {
    function: &'a GoFunction,
    /// File offset of the first instruction.
    file_start: u64,
    code: &'a [u8],
    instructions: Vec<Instruction>,
}

impl<'a> DecodedFunction<'a> {
    fn decode(
        data: &'a [u8],
        elf: &object::File<'_>,
        function: &'a GoFunction,
    ) -> Result<Self, String> {
        let len = function.end.saturating_sub(function.entry);
        if len > MAX_FUNCTION_BYTES {
            return Err(format!(
                "{} is implausibly long ({len} bytes)",
                function.name
            ));
        }
        let file_start = file_offset(elf, function.entry)
            .ok_or_else(|| format!("{} is not in the file", function.name))?;
        let code = usize::try_from(file_start)
            .ok()
            .and_then(|s| data.get(s..s.checked_add(len as usize)?))
            .ok_or_else(|| format!("{} extends past the end of the file", function.name))?;
        Self::from_code(function, file_start, code)
    }

    fn from_code(
        function: &'a GoFunction,
        file_start: u64,
        code: &'a [u8],
    ) -> Result<Self, String> {
        let mut decoder = Decoder::with_ip(64, code, function.entry, DecoderOptions::NONE);
        let mut instructions = Vec::new();
        while decoder.can_decode() {
            let position = decoder.position();
            let instruction = decoder.decode();
            if instruction.is_invalid() {
                // INT3 padding between functions decodes fine; zero or other padding after
                // the last instruction is tolerated only if nothing but padding follows.
                if code[position..].iter().all(|&b| b == 0 || b == 0xcc) {
                    break;
                }
                return Err(format!(
                    "{} holds undecodable bytes at {:#x}",
                    function.name,
                    instruction.ip()
                ));
            }
            instructions.push(instruction);
        }
        Ok(Self {
            function,
            file_start,
            code,
            instructions,
        })
    }

    fn file_offset_of(&self, ip: u64) -> u64 {
        self.file_start + (ip - self.function.entry)
    }

    /// An instruction's bytes (decoded from `code`, so always inside it).
    fn bytes_of(&self, instruction: &Instruction) -> &[u8] {
        let start = (instruction.ip() - self.function.entry) as usize;
        &self.code[start..start + instruction.len()]
    }

    /// File offsets of every `RET`.
    fn returns(&self) -> Result<Vec<u64>, String> {
        let returns: Vec<u64> = self
            .instructions
            .iter()
            .filter(|i| i.mnemonic() == Mnemonic::Ret)
            .map(|i| self.file_offset_of(i.ip()))
            .collect();
        if returns.is_empty() {
            return Err(format!("no RET found in {}", self.function.name));
        }
        if returns.len() > MAX_RETURNS {
            return Err(format!(
                "{} RETs found in {}: not trusted",
                returns.len(),
                self.function.name
            ));
        }
        Ok(returns)
    }

    /// File offset of the one `CALL rel32` to `memmove` (the function at `memmove`), or why
    /// there is not exactly one.
    fn copy_call(&self, memmove: u64) -> Result<u64, String> {
        let mut calls = self
            .instructions
            .iter()
            .filter(|i| i.flow_control() == FlowControl::Call && i.near_branch_target() == memmove);
        let (Some(call), None) = (calls.next(), calls.next()) else {
            return Err(format!(
                "not exactly one call to {GO_MEMMOVE} in {}",
                self.function.name
            ));
        };
        // `E8 rel32` with no prefix is what the kernel emulates.
        if self.bytes_of(call).first() != Some(&0xe8) || call.len() != 5 {
            return Err(format!(
                "the call to {GO_MEMMOVE} is not a plain CALL rel32"
            ));
        }
        Ok(self.file_offset_of(call.ip()))
    }

    /// File offset of the prologue's stack-growth check's `JBE`, on which the kernel program
    /// can tell the run that goes on into the body (see the module doc), or why the check
    /// was not recognised.
    fn stack_check_branch(&self) -> Result<u64, String> {
        let head = &self.instructions[..self.instructions.len().min(STACK_CHECK_INSTRUCTIONS)];
        // Where the CMP with stackguard0 is, and the JB of the huge-frame form, if any.
        let (compare, carry) = match head {
            [cmp, ..] if compares_with_stack_guard(cmp, Register::RSP) => (0, None),
            [lea, cmp, ..]
                if is_r12_below_sp(lea) && compares_with_stack_guard(cmp, Register::R12) =>
            {
                (1, None)
            }
            [mov, sub, jb, cmp, ..]
                if is_r12_from_sp(mov)
                    && is_r12_minus_constant(sub)
                    && jb.mnemonic() == Mnemonic::Jb
                    && compares_with_stack_guard(cmp, Register::R12) =>
            {
                (3, Some(jb))
            }
            _ => return Err("no stack-growth check at its entry".into()),
        };
        let Some(jbe) = head
            .get(compare + 1)
            .filter(|i| i.mnemonic() == Mnemonic::Jbe)
        else {
            return Err("no JBE after its stack-growth check".into());
        };
        // `76 rel8` or `0F 86 rel32`, no prefix: the encodings the kernel emulates (it refuses
        // an operand-size prefix, and anything else would be single-stepped).
        if !matches!(self.bytes_of(jbe), [0x76, _] | [0x0f, 0x86, _, _, _, _]) {
            return Err("its JBE has an unusual encoding".into());
        }
        let stub = jbe.near_branch_target();
        if carry.is_some_and(|jb| jb.near_branch_target() != stub) {
            return Err("its stack-growth check branches to two places".into());
        }
        if stub <= jbe.ip() || stub >= self.function.end {
            return Err(format!(
                "its stack-growth check branches to {stub:#x}, outside its body"
            ));
        }
        let Some(restart) = self.restart_after_call(stub) else {
            return Err(format!(
                "the code at {stub:#x} does not call morestack and jump back to the entry"
            ));
        };
        // The check must run once per run of the prologue: nothing but the stub's jump back
        // may branch into it.
        if let Some(branch) = self.instructions.iter().find(|i| {
            let target = i.near_branch_target();
            target >= self.function.entry && target <= jbe.ip() && i.ip() != restart
        }) {
            return Err(format!(
                "a branch at {:#x} goes back into its stack-growth check",
                branch.ip()
            ));
        }
        Ok(self.file_offset_of(jbe.ip()))
    }

    /// If the code at `stub` is Go's morestack stub (register spills, a call, reloads, then a
    /// jump back to the function's first instruction), the address of that jump.
    fn restart_after_call(&self, stub: u64) -> Option<u64> {
        let start = self
            .instructions
            .binary_search_by_key(&stub, Instruction::ip)
            .ok()?;
        let mut called = false;
        for instruction in self.instructions[start..]
            .iter()
            .take(MAX_STUB_INSTRUCTIONS)
        {
            match instruction.flow_control() {
                FlowControl::Next => {}
                FlowControl::Call if !called => called = true,
                FlowControl::UnconditionalBranch => {
                    return (called && instruction.near_branch_target() == self.function.entry)
                        .then_some(instruction.ip());
                }
                _ => return None,
            }
        }
        None
    }
}

/// `CMP reg, [R14+16]`: `reg` against the goroutine's `stackguard0`.
fn compares_with_stack_guard(instruction: &Instruction, reg: Register) -> bool {
    instruction.mnemonic() == Mnemonic::Cmp
        && instruction.op_count() == 2
        && instruction.op0_kind() == OpKind::Register
        && instruction.op0_register() == reg
        && instruction.op1_kind() == OpKind::Memory
        && instruction.memory_base() == Register::R14
        && instruction.memory_index() == Register::None
        && instruction.segment_prefix() == Register::None
        && instruction.memory_displacement64() == G_STACKGUARD0
}

/// `LEA R12, [RSP-N]`.
fn is_r12_below_sp(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Lea
        && instruction.op0_register() == Register::R12
        && instruction.op1_kind() == OpKind::Memory
        && instruction.memory_base() == Register::RSP
        && instruction.memory_index() == Register::None
}

/// `MOV R12, RSP`.
fn is_r12_from_sp(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Mov
        && instruction.op_count() == 2
        && instruction.op0_kind() == OpKind::Register
        && instruction.op0_register() == Register::R12
        && instruction.op1_kind() == OpKind::Register
        && instruction.op1_register() == Register::RSP
}

/// `SUB R12, imm`.
fn is_r12_minus_constant(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Sub
        && instruction.op_count() == 2
        && instruction.op0_kind() == OpKind::Register
        && instruction.op0_register() == Register::R12
        && matches!(
            instruction.op1_kind(),
            OpKind::Immediate32to64 | OpKind::Immediate8to64
        )
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
                    warning: None,
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
                    warning: target.write_probe_weakness.clone(),
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
