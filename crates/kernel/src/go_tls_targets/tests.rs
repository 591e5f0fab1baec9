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

/// RET addresses of a function as `go tool objdump` lists them.
fn objdump_returns(binary: &Path, function: &str) -> Vec<u64> {
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
        .filter(|line| line.split_whitespace().nth(3) == Some("RET"))
        .map(|line| {
            let address = line.split_whitespace().nth(1).unwrap();
            u64::from_str_radix(address.trim_start_matches("0x"), 16).unwrap()
        })
        .collect()
}

fn objdump_entry(binary: &Path, function: &str) -> u64 {
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
    let text = String::from_utf8(output.stdout).unwrap();
    let first = text.lines().nth(1).expect("an instruction after TEXT");
    u64::from_str_radix(
        first
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap()
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
    // The entries and every RET agree with what the Go toolchain's disassembler finds through
    // the symbol table.
    assert_eq!(
        with_symbols.write_entry,
        offset_of(&full, objdump_entry(&full, GO_WRITE))
    );
    assert_eq!(
        with_symbols.read_entry,
        offset_of(&full, objdump_entry(&full, GO_READ))
    );
    let expected: Vec<u64> = objdump_returns(&full, GO_READ)
        .into_iter()
        .map(|address| offset_of(&full, address))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(with_symbols.read_returns, expected);

    // Without symbols: found through the function table alone, at the same code.
    let without = target_of(&stripped);
    assert!(!without.has_symbols, "-s removes the symbol table");
    assert_eq!(without.go_version, with_symbols.go_version);
    let full_bytes = std::fs::read(&full).unwrap();
    let stripped_bytes = std::fs::read(&stripped).unwrap();
    let code = |bytes: &[u8], at: u64| bytes[at as usize..at as usize + 32].to_vec();
    assert_eq!(
        code(&stripped_bytes, without.write_entry),
        code(&full_bytes, with_symbols.write_entry)
    );
    assert_eq!(
        code(&stripped_bytes, without.read_entry),
        code(&full_bytes, with_symbols.read_entry)
    );
    assert_eq!(without.read_returns.len(), with_symbols.read_returns.len());
    for (a, b) in without.read_returns.iter().zip(&with_symbols.read_returns) {
        assert_eq!(a - without.read_entry, b - with_symbols.read_entry);
        assert_eq!(stripped_bytes[*a as usize], 0xc3, "a RET at {a:#x}");
    }

    // Cached per inode, and reported for the coverage view.
    let mut cache = GoTlsTargetCache::default();
    let target = cache.check(&stripped).expect("a target the first time");
    assert_eq!(cache.check(&stripped), None, "analysed once per binary");
    cache.attached(&target, Ok(9));
    assert_eq!(cache.binaries().len(), 1);
    assert_eq!(cache.binaries()[0].method, Some(GO_TLS_METHOD));
    assert_eq!(cache.binaries()[0].probes, 9);
    assert_eq!(cache.binaries()[0].blind_spot, None);
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
    assert_eq!(cache.check(Path::new("/bin/true")), None);
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
            for offset in [target.write_entry, target.read_entry]
                .iter()
                .chain(&target.read_returns)
            {
                assert!((*offset as usize) < damaged.len());
            }
        }
    }
}
