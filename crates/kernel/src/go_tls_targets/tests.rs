//! The locator on real Go binaries: the test agent (tests/agents/go_agent) built by Debian's
//! `go` with and without `-ldflags='-s -w'`, checked against `go tool objdump`, which reads
//! the same functions through the symbol table.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object as _, ObjectSection as _};

use super::*;

/// Builds both variants with tests/agents/go_agent/build.sh.
fn build_go_agent(out: &Path) -> (PathBuf, PathBuf) {
    let script = Path::new(env!("AGENTSCOPE_REPO")).join("tests/agents/go_agent/build.sh");
    let output = Command::new(&script)
        .arg(out)
        .output()
        .expect("run tests/agents/go_agent/build.sh (needs golang-go: make setup)");
    assert!(
        output.status.success(),
        "building the Go agent failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (out.join("go_agent"), out.join("go_agent_stripped"))
}

fn target_of(path: &Path) -> GoTlsTarget {
    match analyse(path).unwrap() {
        GoTlsAnalysis::Probeable(target) => target,
        other => panic!("{} not probeable: {other:?}", path.display()),
    }
}

/// Virtual address → file offset through the ELF sections, independently of the locator.
fn offset_of(path: &Path, address: u64) -> u64 {
    let data = std::fs::read(path).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    let text = elf.section_by_name(".text").unwrap();
    address - text.address() + text.file_range().unwrap().0
}

/// A function's instructions as `go tool objdump` lists them: (address, Go mnemonic, operands).
fn objdump(binary: &Path, function: &str) -> Vec<(u64, String, String)> {
    let pattern = format!(
        "^{}$",
        function
            .replace('(', r"\(")
            .replace(')', r"\)")
            .replace('*', r"\*")
    );
    let output = Command::new("go")
        .args(["tool", "objdump", "-s", &pattern])
        .arg(binary)
        .output()
        .expect("go tool objdump");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .skip(1) // TEXT name(SB) file
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let address = u64::from_str_radix(fields[1].trim_start_matches("0x"), 16).unwrap();
            (address, fields[3].to_string(), fields[4..].join(" "))
        })
        .collect()
}

/// RET addresses of a function as `go tool objdump` lists them.
fn objdump_returns(binary: &Path, function: &str) -> Vec<u64> {
    objdump(binary, function)
        .into_iter()
        .filter(|(_, mnemonic, _)| mnemonic == "RET")
        .map(|(address, _, _)| address)
        .collect()
}

fn objdump_entry(binary: &Path, function: &str) -> u64 {
    objdump(binary, function)[0].0
}

/// The address of the prologue's stack-growth check's `JBE` as `go tool objdump` lists it.
fn objdump_stack_check_branch(binary: &Path, function: &str) -> u64 {
    let instructions = objdump(binary, function);
    let jbe = instructions
        .iter()
        .position(|(_, mnemonic, _)| mnemonic == "JBE")
        .expect("a JBE in the prologue");
    assert!(jbe <= 4, "the stack check opens {function}");
    instructions[jbe].0
}

/// The addresses of a function's calls to `runtime.memmove` as `go tool objdump` lists them.
fn objdump_memmove_calls(binary: &Path, function: &str) -> Vec<u64> {
    objdump(binary, function)
        .into_iter()
        .filter(|(_, mnemonic, operands)| mnemonic == "CALL" && operands == "runtime.memmove(SB)")
        .map(|(address, _, _)| address)
        .collect()
}

#[test]
fn go_agent_is_located_with_and_without_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let (full, stripped) = build_go_agent(dir.path());

    let with_symbols = target_of(&full);
    assert!(with_symbols.has_symbols);
    assert_eq!(
        with_symbols
            .go_version
            .as_deref()
            .map(|v| v.starts_with("go1.")),
        Some(true)
    );
    // The entry probes on the stack checks' JBEs and the result probe on Read's one copy
    // agree with what the Go toolchain's disassembler finds through the symbol table.
    assert_eq!(
        with_symbols.write_probe,
        EntryProbe::StackCheck(offset_of(
            &full,
            objdump_stack_check_branch(&full, GO_WRITE)
        ))
    );
    assert_eq!(with_symbols.write_probe_weakness, None);
    assert_eq!(
        with_symbols.read_probe,
        EntryProbe::StackCheck(offset_of(&full, objdump_stack_check_branch(&full, GO_READ)))
    );
    let copies = objdump_memmove_calls(&full, GO_READ);
    assert_eq!(copies.len(), 1, "Read copies into the caller's buffer once");
    assert_eq!(
        with_symbols.read_result,
        ReadResultProbe::Copy(offset_of(&full, copies[0]))
    );
    let full_bytes = std::fs::read(&full).unwrap();
    let byte_at = |bytes: &[u8], probe: u64| bytes[probe as usize];
    // What the kernel emulates: a JBE (rel32 here) and a CALL rel32.
    assert_eq!(
        full_bytes[with_symbols.write_probe.offset() as usize..][..2],
        [0x0f, 0x86]
    );
    assert_eq!(
        byte_at(&full_bytes, with_symbols.read_result.offsets()[0]),
        0xe8
    );

    // Without symbols: found through the function table alone, at the same code.
    let without = target_of(&stripped);
    assert!(!without.has_symbols, "-s removes the symbol table");
    assert_eq!(without.go_version, with_symbols.go_version);
    let stripped_bytes = std::fs::read(&stripped).unwrap();
    let code = |bytes: &[u8], at: u64| bytes[at as usize..at as usize + 32].to_vec();
    assert!(matches!(without.write_probe, EntryProbe::StackCheck(_)));
    assert_eq!(
        code(&stripped_bytes, without.write_probe.offset()),
        code(&full_bytes, with_symbols.write_probe.offset())
    );
    assert_eq!(without.write_probe_weakness, None);
    assert!(matches!(without.read_probe, EntryProbe::StackCheck(_)));
    assert_eq!(
        code(&stripped_bytes, without.read_probe.offset()),
        code(&full_bytes, with_symbols.read_probe.offset())
    );
    let ReadResultProbe::Copy(copy) = without.read_result else {
        panic!("{:?}", without.read_result);
    };
    // The call's target differs between the builds (memmove moves), the distance from Read's
    // start does not.
    assert_eq!(
        copy - without.read_probe.offset(),
        with_symbols.read_result.offsets()[0] - with_symbols.read_probe.offset()
    );
    assert_eq!(byte_at(&stripped_bytes, copy), 0xe8);

    // Cached per inode, and reported for the coverage view.
    let mut cache = GoTlsTargetCache::default();
    let shown = stripped.display().to_string();
    let target = cache
        .check(&stripped, &shown)
        .expect("a target the first time");
    assert_eq!(
        cache.check(&stripped, &shown),
        None,
        "analysed once per binary"
    );
    cache.attached(&target, Ok(9));
    assert_eq!(cache.binaries().len(), 1);
    assert_eq!(cache.binaries()[0].method, Some(GO_TLS_METHOD));
    assert_eq!(cache.binaries()[0].probes, 9);
    assert_eq!(cache.binaries()[0].blind_spot, None);
    assert_eq!(cache.binaries()[0].warning, None);
}

#[test]
fn other_files_are_not_go_tls() {
    assert_eq!(
        analyse(Path::new("/bin/true")).unwrap(),
        GoTlsAnalysis::NotGo
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"\x7fELF not really").unwrap();
    assert_eq!(analyse(&junk).unwrap(), GoTlsAnalysis::NotGo);
    let mut cache = GoTlsTargetCache::default();
    assert_eq!(cache.check(Path::new("/bin/true"), "/bin/true"), None);
    assert!(
        cache.binaries().is_empty(),
        "non-Go files are not TLS blind spots"
    );
}

/// A damaged Go binary never panics the locator and never yields offsets outside the file.
#[test]
fn damaged_go_binaries_are_refused_or_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stripped) = build_go_agent(dir.path());
    let original = std::fs::read(&stripped).unwrap();
    let elf = object::File::parse(&*original).unwrap();
    let pclntab = elf.section_by_name(".gopclntab").unwrap();
    let (start, size) = pclntab.file_range().unwrap();
    // Damage the function table's header and the start of its functab, a byte at a time.
    for at in (start..start + 128.min(size)).chain(start + 0x60..start + 0x80) {
        let mut damaged = original.clone();
        damaged[at as usize] ^= 0xa5;
        let outcome = analyse_bytes(&damaged, &stripped, 0, 0);
        if let GoTlsAnalysis::Probeable(target) = outcome {
            for offset in [target.write_probe.offset(), target.read_probe.offset()]
                .iter()
                .chain(target.read_result.offsets())
            {
                assert!((*offset as usize) < damaged.len());
            }
        }
    }
}

/// A Write whose stack check is not recognised (here: its CMP patched to read another field
/// of `g`) is still probed, at its first instruction, and the coverage report says what that
/// costs; an unrecognised check in Read falls back to its entry without a warning.
#[test]
fn an_unrecognised_stack_check_falls_back_to_the_entry_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (full, _) = build_go_agent(dir.path());
    let original = std::fs::read(&full).unwrap();
    let target = target_of(&full);
    let mut patched = original.clone();
    let mut unrecognised = 0;
    for function in [GO_WRITE, GO_READ] {
        let jbe = offset_of(&full, objdump_stack_check_branch(&full, function)) as usize;
        // CMP reg, [R14+0x10] (its last byte the displacement) right before the JBE.
        let displacement = jbe - 1;
        assert_eq!(
            original[displacement - 2..=displacement],
            [0x3b, 0x66, 0x10]
        );
        patched[displacement] = 0x18;
        unrecognised += 1;
    }
    assert_eq!(unrecognised, 2);
    let GoTlsAnalysis::Probeable(fallback) = analyse_bytes(&patched, &full, 0, 0) else {
        panic!("still probeable");
    };
    let entry = |function: &str| offset_of(&full, objdump_entry(&full, function));
    assert_eq!(
        fallback.write_probe,
        EntryProbe::FirstInstruction(entry(GO_WRITE))
    );
    assert_eq!(
        fallback.read_probe,
        EntryProbe::FirstInstruction(entry(GO_READ))
    );
    assert_eq!(fallback.read_result, target.read_result);
    let weakness = fallback.write_probe_weakness.as_deref().unwrap();
    assert!(
        weakness.contains("first instruction") && weakness.contains("captured twice"),
        "{weakness}"
    );

    // The coverage report carries it.
    let patched_path = dir.path().join("go_agent_patched");
    std::fs::write(&patched_path, &patched).unwrap();
    let mut cache = GoTlsTargetCache::default();
    let shown = patched_path.display().to_string();
    let checked = cache.check(&patched_path, &shown).expect("a target");
    cache.attached(&checked, Ok(3));
    assert_eq!(cache.binaries()[0].blind_spot, None);
    assert_eq!(cache.binaries()[0].warning.as_deref(), Some(weakness));
}

/// A Read without its one copy into the caller's buffer (here: the call patched to go
/// elsewhere, as in a build where `bytes.(*Reader).Read` is not inlined) is probed at every
/// `RET` instead, each found where the Go disassembler lists them.
#[test]
fn a_read_without_its_copy_is_probed_at_its_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (full, _) = build_go_agent(dir.path());
    let mut patched = std::fs::read(&full).unwrap();
    let copies = objdump_memmove_calls(&full, GO_READ);
    assert_eq!(copies.len(), 1);
    let call = offset_of(&full, copies[0]) as usize;
    assert_eq!(patched[call], 0xe8);
    // CALL rel32 to 16 bytes further on: no longer runtime.memmove.
    patched[call + 1..call + 5].copy_from_slice(&16i32.to_le_bytes());
    let GoTlsAnalysis::Probeable(fallback) = analyse_bytes(&patched, &full, 0, 0) else {
        panic!("still probeable");
    };
    let expected: Vec<u64> = objdump_returns(&full, GO_READ)
        .into_iter()
        .map(|address| offset_of(&full, address))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        fallback.read_result,
        ReadResultProbe::Returns(expected.clone())
    );
    for ret in &expected {
        assert_eq!(patched[*ret as usize], 0xc3, "a RET at {ret:#x}");
    }
    // The rest is placed as before.
    let target = target_of(&full);
    assert_eq!(fallback.write_probe, target.write_probe);
    assert_eq!(fallback.read_probe, target.read_probe);
}

/// Hand-assembled prologues: each form of Go's stack check is recognised and the probe goes
/// on its JBE; anything that is not exactly that falls back. And the one copy in a body.
mod stack_check {
    use super::*;

    /// x86-64 machine code with rel32 branches to named places.
    enum Part {
        Raw(&'static [u8]),
        Jbe(&'static str),
        /// `76 rel8`.
        JbeShort(&'static str),
        /// `3E 0F 86 rel32`: a branch hint prefix the kernel would not refuse, but not the
        /// exact form.
        JbeHinted(&'static str),
        Jb(&'static str),
        Jmp(&'static str),
        Call(&'static str),
        Label(&'static str),
    }
    use Part::*;

    const ENTRY: u64 = 0x40_1000;
    const FILE_START: u64 = 0x1000;

    fn assemble(parts: &[Part]) -> (Vec<u8>, HashMap<&'static str, u64>) {
        let mut labels = HashMap::new();
        let mut at = 0u64;
        for part in parts {
            match part {
                Raw(bytes) => at += bytes.len() as u64,
                JbeShort(_) => at += 2,
                JbeHinted(_) => at += 7,
                Jbe(_) | Jb(_) => at += 6,
                Jmp(_) | Call(_) => at += 5,
                Label(name) => {
                    labels.insert(*name, at);
                }
            }
        }
        let mut code = Vec::new();
        let rel = |code: &Vec<u8>, size: usize, to: &str| -> [u8; 4] {
            let next = (code.len() + size) as i64;
            ((labels[to] as i64 - next) as i32).to_le_bytes()
        };
        for part in parts {
            match part {
                Raw(bytes) => code.extend_from_slice(bytes),
                Jbe(to) => {
                    let r = rel(&code, 6, to);
                    code.extend_from_slice(&[0x0f, 0x86]);
                    code.extend_from_slice(&r);
                }
                JbeShort(to) => {
                    let r = rel(&code, 2, to);
                    code.extend_from_slice(&[
                        0x76,
                        i8::try_from(i32::from_le_bytes(r)).unwrap() as u8,
                    ]);
                }
                JbeHinted(to) => {
                    let r = rel(&code, 7, to);
                    code.extend_from_slice(&[0x3e, 0x0f, 0x86]);
                    code.extend_from_slice(&r);
                }
                Jb(to) => {
                    let r = rel(&code, 6, to);
                    code.extend_from_slice(&[0x0f, 0x82]);
                    code.extend_from_slice(&r);
                }
                Call(to) => {
                    let r = rel(&code, 5, to);
                    code.push(0xe8);
                    code.extend_from_slice(&r);
                }
                Jmp(to) => {
                    let r = rel(&code, 5, to);
                    code.push(0xe9);
                    code.extend_from_slice(&r);
                }
                Label(_) => {}
            }
        }
        (code, labels)
    }

    const CMP_SP_GUARD: &[u8] = &[0x49, 0x3b, 0x66, 0x10]; // cmp rsp, [r14+0x10]
    const LEA_R12: &[u8] = &[0x4c, 0x8d, 0x64, 0x24, 0x98]; // lea r12, [rsp-0x68]
    const CMP_R12_GUARD: &[u8] = &[0x4d, 0x3b, 0x66, 0x10]; // cmp r12, [r14+0x10]
    const MOV_R12_SP: &[u8] = &[0x49, 0x89, 0xe4]; // mov r12, rsp
    const SUB_R12: &[u8] = &[0x49, 0x81, 0xec, 0xc0, 0x26, 0x00, 0x00]; // sub r12, 0x26c0
                                                                        // sub rsp, 0x68; mov [rsp+0x60], rbp; add rsp, 0x68; ret
    const BODY: &[u8] = &[
        0x48, 0x83, 0xec, 0x68, 0x48, 0x89, 0x6c, 0x24, 0x60, 0x48, 0x83, 0xc4, 0x68, 0xc3,
    ];
    const SPILL: &[u8] = &[0x48, 0x89, 0x44, 0x24, 0x08]; // mov [rsp+8], rax
    const CALL: &[u8] = &[0xe8, 0x00, 0x00, 0x00, 0x00]; // call (morestack)
    const RELOAD: &[u8] = &[0x48, 0x8b, 0x44, 0x24, 0x08]; // mov rax, [rsp+8]

    fn stub() -> [Part; 5] {
        [
            Label("stub"),
            Raw(SPILL),
            Raw(CALL),
            Raw(RELOAD),
            Jmp("entry"),
        ]
    }

    /// `body` followed by the morestack stub it branches to.
    fn with_stub(mut body: Vec<Part>) -> Vec<Part> {
        body.extend(stub());
        body
    }

    /// What `find` finds in `parts` assembled and decoded as a function at `ENTRY` (given the
    /// labels' offsets), with the labels' offsets.
    fn find_in(
        parts: &[Part],
        find: impl FnOnce(&DecodedFunction, &HashMap<&'static str, u64>) -> Result<u64, String>,
    ) -> (Result<u64, String>, HashMap<&'static str, u64>) {
        let (code, labels) = assemble(parts);
        let function = GoFunction {
            name: "test".into(),
            entry: ENTRY,
            end: ENTRY + code.len() as u64,
        };
        let decoded = DecodedFunction::from_code(&function, FILE_START, &code).unwrap();
        (find(&decoded, &labels), labels)
    }

    /// The probe's file offset, or why there is none.
    fn probe(parts: &[Part]) -> (Result<u64, String>, HashMap<&'static str, u64>) {
        find_in(parts, |decoded, _| decoded.stack_check_branch())
    }

    /// The copy call's file offset in the code, with memmove at the label `memmove`, or why
    /// there is none.
    fn copy(parts: &[Part]) -> (Result<u64, String>, HashMap<&'static str, u64>) {
        find_in(parts, |decoded, labels| {
            decoded.copy_call(ENTRY + labels["memmove"])
        })
    }

    fn expect_probe(parts: &[Part]) {
        let (found, labels) = probe(parts);
        assert_eq!(found, Ok(FILE_START + labels["probe"]));
    }

    fn expect_none(parts: &[Part], why: &str) {
        let (found, _) = probe(parts);
        let err = found.expect_err("no probe");
        assert!(err.contains(why), "{err}");
    }

    #[test]
    fn small_big_and_huge_frames_are_recognised() {
        expect_probe(&with_stub(vec![
            Label("entry"),
            Raw(CMP_SP_GUARD),
            Label("probe"),
            Jbe("stub"),
            Raw(BODY),
        ]));
        expect_probe(&with_stub(vec![
            Label("entry"),
            Raw(LEA_R12),
            Raw(CMP_R12_GUARD),
            Label("probe"),
            Jbe("stub"),
            Raw(BODY),
        ]));
        expect_probe(&with_stub(vec![
            Label("entry"),
            Raw(MOV_R12_SP),
            Raw(SUB_R12),
            Jb("stub"),
            Raw(CMP_R12_GUARD),
            Label("probe"),
            Jbe("stub"),
            Raw(BODY),
        ]));
        // The short JBE, as a function whose stub is near emits it.
        expect_probe(&[
            Label("entry"),
            Raw(CMP_SP_GUARD),
            Label("probe"),
            JbeShort("stub"),
            Raw(BODY),
            Label("stub"),
            Raw(SPILL),
            Raw(CALL),
            Raw(RELOAD),
            Jmp("entry"),
        ]);
    }

    #[test]
    fn anything_else_is_not_trusted() {
        // No check (a NOSPLIT-like function).
        expect_none(
            &with_stub(vec![Label("entry"), Raw(BODY)]),
            "no stack-growth check",
        );
        // Compared with another field of g.
        expect_none(
            &with_stub(vec![
                Label("entry"),
                Raw(&[0x49, 0x3b, 0x66, 0x18]),
                Jbe("stub"),
                Raw(BODY),
            ]),
            "no stack-growth check",
        );
        // An argument register changed before the check.
        expect_none(
            &with_stub(vec![
                Label("entry"),
                Raw(&[0x4c, 0x8d, 0x63, 0x98]), // lea r12, [rbx-0x68]
                Raw(CMP_R12_GUARD),
                Jbe("stub"),
                Raw(BODY),
            ]),
            "no stack-growth check",
        );
        // The check is not followed by a JBE.
        expect_none(
            &with_stub(vec![
                Label("entry"),
                Raw(CMP_SP_GUARD),
                Jb("stub"),
                Raw(BODY),
            ]),
            "no JBE",
        );
        // The huge form's JB and JBE go to different places.
        expect_none(
            &with_stub(vec![
                Label("entry"),
                Raw(MOV_R12_SP),
                Raw(SUB_R12),
                Jb("probe"),
                Raw(CMP_R12_GUARD),
                Jbe("stub"),
                Label("probe"),
                Raw(BODY),
            ]),
            "two places",
        );
        // The stub returns instead of starting the function again.
        expect_none(
            &[
                Label("entry"),
                Raw(CMP_SP_GUARD),
                Jbe("stub"),
                Raw(BODY),
                Label("stub"),
                Raw(SPILL),
                Raw(CALL),
                Raw(&[0xc3]),
            ],
            "does not call morestack",
        );
        // The stub jumps back past the check.
        expect_none(
            &[
                Label("entry"),
                Raw(CMP_SP_GUARD),
                Jbe("stub"),
                Label("probe"),
                Raw(BODY),
                Label("stub"),
                Raw(SPILL),
                Raw(CALL),
                Raw(RELOAD),
                Jmp("probe"),
            ],
            "does not call morestack",
        );
        // A loop in the body comes back to the check.
        for back_to in ["entry", "jbe"] {
            expect_none(
                &with_stub(vec![
                    Label("entry"),
                    Raw(CMP_SP_GUARD),
                    Label("jbe"),
                    Jbe("stub"),
                    Label("body"),
                    Raw(&[0x48, 0xff, 0xc8]), // dec rax
                    Jbe(back_to),
                    Raw(BODY),
                ]),
                "goes back into its stack-growth check",
            );
        }
        // A JBE in a form other than the kernel emulates exactly.
        expect_none(
            &with_stub(vec![
                Label("entry"),
                Raw(CMP_SP_GUARD),
                JbeHinted("stub"),
                Raw(BODY),
            ]),
            "unusual encoding",
        );
    }

    /// `Read`'s result probe: its one direct `CALL` to memmove, never an indirect call, and
    /// nothing when there are two.
    #[test]
    fn the_one_copy_is_found() {
        let (found, labels) = copy(&[
            Raw(BODY),
            Raw(&[0xff, 0xd0]), // call rax: not counted
            Label("copy"),
            Call("memmove"),
            Raw(&[0xc3]),
            Label("memmove"),
            Raw(&[0xc3]),
        ]);
        assert_eq!(found, Ok(FILE_START + labels["copy"]));
        for parts in [
            vec![Raw(BODY), Label("memmove"), Raw(&[0xc3])],
            vec![
                Call("memmove"),
                Call("memmove"),
                Raw(&[0xc3]),
                Label("memmove"),
                Raw(&[0xc3]),
            ],
        ] {
            let (found, _) = copy(&parts);
            let err = found.expect_err("no copy");
            assert!(
                err.contains("not exactly one call to runtime.memmove"),
                "{err}"
            );
        }
    }
}
