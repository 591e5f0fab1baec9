//! Finding Go `crypto/tls` in an executable: the file offsets where `(*Conn).Write` and
//! `(*Conn).Read` start their work (just past the prologue's stack-growth check, see below)
//! and of every `RET` in `(*Conn).Read`'s body, for uprobes.
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
//!
//! ## Why not the first instruction
//!
//! A Go function's first instructions check that the goroutine's stack has room for its
//! frame: `CMP RSP, [R14+16]` (`g.stackguard0`) for small frames, `LEA R12, [RSP-N]` then
//! `CMP R12, [R14+16]` for bigger ones, `MOV R12, RSP; SUB R12, N; JB` first for huge ones;
//! then `JBE` to a stub at the function's end that calls `runtime.morestack` and jumps back
//! to the first instruction. So the first instruction runs twice for one call whenever the
//! stack must grow, and also whenever the scheduler or the garbage collector asks the
//! goroutine to stop (they set `stackguard0` to `stackPreempt`, from another thread, at any
//! time). A probe there captured such a `Write` twice. The probe goes instead on the
//! instruction after the `JBE`, which runs once per call: the check has been decided by then.
//! The check only writes `R12` and the flags, so the argument registers are as at the entry,
//! and after a stack growth they hold the moved stack's addresses (the stub spills them where
//! the runtime adjusts them and reloads them).
//!
//! Checking in the probe instead (skip when `RSP - frame <= stackguard0`: the function is
//! about to re-enter) was rejected: the frame size must be decoded from the same prologue
//! anyway, and `stackguard0` is written by other threads, so it can change between the
//! probe's read and the function's own `CMP` (the probe runs, then the displaced instruction
//! is single-stepped): a preemption request landing there is a double capture again, or a
//! missed one. Past the check there is nothing to race with.
//!
//! The check is recognised only in exactly those forms, with the `JBE` (and the huge form's
//! `JB`) going to a stub in the function that calls and then jumps back to the entry, and
//! with no branch in the function going to the chosen instruction. Otherwise `Write` is probed
//! at its first instruction and the coverage report and the summary's warnings say so (a call
//! that grows the stack there is then captured twice). `Read` falls back silently: its entry
//! probe only stashes the arguments under the goroutine, and a second firing replaces them
//! with the same call's (post-growth) arguments before the `RET` probe reads them.

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

/// Where to attach in a Go executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTlsTarget {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub go_version: Option<String>,
    /// Whether the binary still has its symbol table (not built with `-s`).
    pub has_symbols: bool,
    /// File offset of the `(*Conn).Write` probe: the instruction after the stack-growth
    /// check, or the first one if the check was not recognised (see the module doc).
    pub write_probe: u64,
    /// Why `write_probe` is `Write`'s first instruction, when it is: a call that grows the
    /// stack there is captured twice.
    pub write_probe_weakness: Option<String>,
    /// File offset of the `(*Conn).Read` entry probe, placed as `write_probe` is (the first
    /// instruction when the check is not recognised, which is harmless for `Read`).
    pub read_probe: u64,
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
    let (write_probe, write_probe_weakness) =
        match DecodedFunction::decode(data, &elf, write).and_then(|f| f.after_stack_check()) {
            Ok(offset) => (offset, None),
            Err(why) => (
                write_entry,
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
    let read_returns = match read_code.returns() {
        Ok(offsets) => offsets,
        Err(reason) => return unsupported(&version, reason),
    };
    let read_probe = read_code.after_stack_check().unwrap_or(read_entry);
    GoTlsAnalysis::Probeable(GoTlsTarget {
        path: path.to_path_buf(),
        dev,
        ino,
        go_version: version,
        has_symbols: has_symbol(&elf, GO_READ),
        write_probe,
        write_probe_weakness,
        read_probe,
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

/// A function's machine code, decoded whole. Go emits no data in its text, so a linear sweep
/// sees every instruction; an undecodable byte before the padding after the last instruction
/// means something else is there, and the function is refused (a uprobe in the middle of an
/// instruction would corrupt the program).
struct DecodedFunction<'a> {
    function: &'a GoFunction,
    /// File offset of the first instruction.
    file_start: u64,
    instructions: Vec<Instruction>,
}

impl<'a> DecodedFunction<'a> {
    fn decode(
        data: &[u8],
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

    fn from_code(function: &'a GoFunction, file_start: u64, code: &[u8]) -> Result<Self, String> {
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
            instructions,
        })
    }

    fn file_offset_of(&self, ip: u64) -> u64 {
        self.file_start + (ip - self.function.entry)
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

    /// File offset of the instruction after the prologue's stack-growth check, which runs
    /// once per call (see the module doc), or why the check was not recognised.
    fn after_stack_check(&self) -> Result<u64, String> {
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
        let stub = jbe.near_branch_target();
        if carry.is_some_and(|jb| jb.near_branch_target() != stub) {
            return Err("its stack-growth check branches to two places".into());
        }
        let probe = jbe.next_ip();
        if stub <= probe || stub >= self.function.end {
            return Err(format!(
                "its stack-growth check branches to {stub:#x}, outside its body"
            ));
        }
        if !self.restarts_after_call(stub) {
            return Err(format!(
                "the code at {stub:#x} does not call morestack and jump back to the entry"
            ));
        }
        // The chosen instruction must run once per call: nothing else may jump there.
        if self
            .instructions
            .iter()
            .any(|i| i.near_branch_target() == probe)
        {
            return Err(format!("a branch in its body goes to {probe:#x}"));
        }
        Ok(self.file_offset_of(probe))
    }

    /// Whether the code at `stub` is Go's morestack stub: register spills, a call, reloads,
    /// then a jump back to the function's first instruction.
    fn restarts_after_call(&self, stub: u64) -> bool {
        let Ok(start) = self
            .instructions
            .binary_search_by_key(&stub, Instruction::ip)
        else {
            return false;
        };
        let mut called = false;
        for instruction in self.instructions[start..]
            .iter()
            .take(MAX_STUB_INSTRUCTIONS)
        {
            match instruction.flow_control() {
                FlowControl::Next => {}
                FlowControl::Call if !called => called = true,
                FlowControl::UnconditionalBranch => {
                    return called && instruction.near_branch_target() == self.function.entry;
                }
                _ => return false,
            }
        }
        false
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
