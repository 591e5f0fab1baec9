//! Where to put the probes of an exported OpenSSL API so that a hit costs one trap, not a trap
//! and a single-step.
//!
//! A uprobe replaces an instruction with a breakpoint. On a hit the kernel either emulates the
//! instruction it replaced (a `call`, a jump, a `push` of a register, a nop) or copies it out
//! of line and single-steps it, which is a second exception; in a VM that debug exception
//! exits to the hypervisor. Measured on the benches' 2-CPU VM (Linux 6.18): a uprobe on
//! Debian's `SSL_write_ex` and `SSL_read_ex`, whose first instruction is `sub $8,%rsp`, cost
//! the Python agent of `agent_overhead` about 80 µs of CPU per request (three hits, its own
//! CPU being about 85 µs); on the `call` that follows, or a uprobe and a uretprobe on the
//! function it calls (which starts with `push`), about 5 µs.
//!
//! A uretprobe is armed by the entry hit and takes the return address from the top of the
//! stack, so the entry may move past `endbr64` (it changes nothing) but not past
//! `sub $N,%rsp`. Debian's OpenSSL 3.0 builds `SSL_write_ex` as `sub $8,%rsp; call
//! ssl_write_internal` with its four arguments untouched, and `SSL_read_ex` likewise; `SSL_write`
//! and `SSL_read` call the same internal functions with a pointer to a local byte count. There
//! one entry probe and one return probe on each internal function see every call of both API
//! functions with the `_ex` contract (returns 1, the byte count through the fourth argument),
//! so the probes move there and `SSL_write`/`SSL_read` lose theirs (each call would be seen
//! twice). Any other shape keeps the probes on the exported symbols.

/// An exported function: its name, file offset and size (0 if the symbol gives none), and the
/// file range of the section that holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exported {
    pub name: &'static str,
    pub offset: u64,
    pub size: u64,
    pub section: (u64, u64),
}

/// `endbr64`: a landing pad for indirect branches; it changes no register.
const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// Bytes of a function scanned for a call when its symbol gives no size.
const SCAN_WITHOUT_SIZE: u64 = 256;

/// The file offsets to probe for `functions` (exported `SSL_write`, `SSL_write_ex`,
/// `SSL_read`, `SSL_read_ex`), under the names of the programs that serve them.
pub(crate) fn place(code: &[u8], functions: &[Exported]) -> Vec<(&'static str, u64)> {
    let mut placed: Vec<(&'static str, u64)> = Vec::new();
    let mut covered: Vec<&'static str> = Vec::new();
    for (extended, plain) in [("SSL_write_ex", "SSL_write"), ("SSL_read_ex", "SSL_read")] {
        let Some(ex) = functions.iter().find(|f| f.name == extended) else {
            continue;
        };
        let Some(plain_fn) = functions.iter().find(|f| f.name == plain) else {
            continue;
        };
        let Some(internal) = internal_callee(code, ex) else {
            continue;
        };
        if calls(code, plain_fn, internal) {
            placed.push((extended, skip_endbr64(code, internal)));
            covered.extend([extended, plain]);
        }
    }
    for function in functions {
        if !covered.contains(&function.name) {
            placed.push((function.name, skip_endbr64(code, function.offset)));
        }
    }
    placed
}

/// The function `ex` hands its own arguments to, when `ex` is `[endbr64;] sub $N,%rsp; call
/// F` and F starts with an instruction the kernel emulates: F's file offset.
fn internal_callee(code: &[u8], ex: &Exported) -> Option<u64> {
    let start = skip_endbr64(code, ex.offset);
    let at = bytes(code, start, 9)?;
    // sub $imm8,%rsp: the arguments' registers are untouched.
    if at[..3] != [0x48, 0x83, 0xec] || at[4] != 0xe8 {
        return None;
    }
    let rel = i32::from_le_bytes([at[5], at[6], at[7], at[8]]);
    let target = (start + 9).checked_add_signed(i64::from(rel))?;
    if target < ex.section.0 || target >= ex.section.1 {
        return None;
    }
    emulated(code, skip_endbr64(code, target)).then_some(target)
}

/// Whether `function`'s code holds a `call` to `target`.
fn calls(code: &[u8], function: &Exported, target: u64) -> bool {
    let len = if function.size > 0 {
        function.size
    } else {
        SCAN_WITHOUT_SIZE
    };
    let end = (function.offset + len).min(function.section.1);
    let mut at = function.offset;
    while at + 5 <= end {
        if let Some(call) = bytes(code, at, 5) {
            if call[0] == 0xe8 {
                let rel = i32::from_le_bytes([call[1], call[2], call[3], call[4]]);
                if (at + 5).checked_add_signed(i64::from(rel)) == Some(target) {
                    return true;
                }
            }
        }
        at += 1;
    }
    false
}

/// Whether the instruction at `offset` is one the kernel's uprobes emulate rather than
/// single-step: `push` of a register (with or without a REX.B prefix), `call rel32`, `jmp`.
fn emulated(code: &[u8], offset: u64) -> bool {
    matches!(
        bytes(code, offset, 2),
        Some([0x50..=0x57, _] | [0x41, 0x50..=0x57] | [0xe8 | 0xe9 | 0xeb, _])
    )
}

fn skip_endbr64(code: &[u8], offset: u64) -> u64 {
    match bytes(code, offset, 4) {
        Some(at) if at == ENDBR64 => offset + 4,
        _ => offset,
    }
}

fn bytes(code: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    code.get(start..start.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's OpenSSL 3.0.19 shapes at small offsets: `SSL_write_ex` at 0x10 calls the
    /// internal function at 0x40, `SSL_write` at 0x20 calls it too.
    fn debian_like() -> (Vec<u8>, Vec<Exported>) {
        let mut code = vec![0xccu8; 0x80];
        let call = |code: &mut Vec<u8>, at: usize, target: usize| {
            code[at] = 0xe8;
            let rel = (target as i64 - (at as i64 + 5)) as i32;
            code[at + 1..at + 5].copy_from_slice(&rel.to_le_bytes());
        };
        // SSL_write_ex: sub $0x8,%rsp; call internal
        code[0x10..0x14].copy_from_slice(&[0x48, 0x83, 0xec, 0x08]);
        call(&mut code, 0x14, 0x40);
        // SSL_write: sub $0x18,%rsp; mov %rsp,%rcx (48 89 e1); call internal
        code[0x20..0x24].copy_from_slice(&[0x48, 0x83, 0xec, 0x18]);
        code[0x24..0x27].copy_from_slice(&[0x48, 0x89, 0xe1]);
        call(&mut code, 0x27, 0x40);
        // internal: push %r14
        code[0x40..0x42].copy_from_slice(&[0x41, 0x56]);
        let section = (0, code.len() as u64);
        let exported = |name, offset, size| Exported {
            name,
            offset,
            size,
            section,
        };
        (
            code,
            vec![
                exported("SSL_write_ex", 0x10, 0x10),
                exported("SSL_write", 0x20, 0x10),
            ],
        )
    }

    #[test]
    fn a_wrapper_of_an_emulated_function_is_probed_there_once() {
        let (code, functions) = debian_like();
        assert_eq!(place(&code, &functions), vec![("SSL_write_ex", 0x40)]);
    }

    #[test]
    fn the_plain_function_keeps_its_probe_unless_it_calls_the_same_function() {
        let (mut code, functions) = debian_like();
        // SSL_write no longer calls the internal function (say it inlined it).
        code[0x27] = 0x90;
        assert_eq!(
            place(&code, &functions),
            vec![("SSL_write_ex", 0x10), ("SSL_write", 0x20)]
        );
    }

    #[test]
    fn a_callee_the_kernel_would_single_step_keeps_the_exported_probes() {
        let (mut code, functions) = debian_like();
        // internal: sub $0x28,%rsp
        code[0x40..0x44].copy_from_slice(&[0x48, 0x83, 0xec, 0x28]);
        assert_eq!(
            place(&code, &functions),
            vec![("SSL_write_ex", 0x10), ("SSL_write", 0x20)]
        );
    }

    #[test]
    fn arguments_moved_before_the_call_keep_the_exported_probes() {
        let (mut code, functions) = debian_like();
        // SSL_write_ex: xor %ecx,%ecx before the call (OpenSSL 3.2's flags argument): not a
        // plain `sub $N,%rsp; call`.
        code[0x10..0x14].copy_from_slice(&[0x31, 0xc9, 0x90, 0x90]);
        assert_eq!(
            place(&code, &functions),
            vec![("SSL_write_ex", 0x10), ("SSL_write", 0x20)]
        );
    }

    #[test]
    fn a_call_out_of_the_section_is_not_followed() {
        let (code, mut functions) = debian_like();
        for f in &mut functions {
            f.section = (0, 0x30);
        }
        assert_eq!(
            place(&code, &functions),
            vec![("SSL_write_ex", 0x10), ("SSL_write", 0x20)]
        );
    }

    #[test]
    fn endbr64_is_stepped_over_and_nothing_else_is() {
        let mut code = vec![0xccu8; 0x20];
        code[0..4].copy_from_slice(&ENDBR64);
        code[4] = 0x55; // push %rbp
        code[0x10..0x14].copy_from_slice(&[0x48, 0x83, 0xec, 0x08]);
        let section = (0, code.len() as u64);
        let functions = [
            Exported {
                name: "SSL_read",
                offset: 0,
                size: 0x10,
                section,
            },
            Exported {
                name: "SSL_read_ex",
                offset: 0x10,
                size: 0x10,
                section,
            },
        ];
        assert_eq!(
            place(&code, &functions),
            vec![("SSL_read", 4), ("SSL_read_ex", 0x10)]
        );
    }

    /// The system libssl `make setup` installs: where its probes go, whatever its build.
    #[test]
    fn system_libssl_probes_stay_on_its_read_and_write_paths() {
        let Some(path) = [
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/lib/x86_64-linux-gnu/libssl.so.3",
        ]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.exists()) else {
            return;
        };
        let target = crate::tls_targets::inspect(path).unwrap().unwrap();
        let names: Vec<&str> = target.functions.iter().map(|(name, _)| *name).collect();
        // Both directions are probed, each function at most once.
        assert!(
            names.iter().any(|n| n.starts_with("SSL_write")),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n.starts_with("SSL_read")), "{names:?}");
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
    }
}
