//! The locator against the Codex CLI releases `make setup` installs (0.171.0 links rustls with
//! aws-lc-rs; 0.101.0 links rustls with ring, and no aws-lc), against a glibc PIE that links
//! rustls with aws-lc-rs (tests/agents/rustls_tls_loop), against a binary without rustls, and
//! against damaged copies.

use super::*;
use crate::tls_targets::openssl3::tests::codex_binary;

fn map(path: &std::path::Path) -> memmap2::Mmap {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: a read-only mapping of a file nothing writes while the test runs.
    unsafe { memmap2::Mmap::map(&file).unwrap() }
}

/// Ground truth established by hand, independently of the locator: `objdump -d` around the
/// `lea rcx` instructions whose target is the `.../cipher/aead.c` string shows the functions
/// and their `mov edx, reason` / `mov r8d, line` pairs, and uprobes placed by hand through
/// tracefs (`/sys/kernel/tracing/uprobe_events`) at these two addresses fire for every TLS
/// record a `codex exec` run sends and receives (the AAD `17 03 03 len`), while those at
/// `EVP_AEAD_CTX_seal_scatter` (0x1262_9570) and `EVP_AEAD_CTX_open_gather` (0x1262_9850)
/// never do. The locator knows none of these numbers.
const SEAL_0_171_0: u64 = 0x1262_9450;
const OPEN_0_171_0: u64 = 0x1262_9690;
/// `EVP_AEAD_CTX_seal_scatter` (error sites 115, 112 in `objdump -d`), which Codex's rustls
/// uses only for TLS 1.2 AES-GCM.
const SEAL_SCATTER_0_171_0: u64 = 0x1262_9570;

#[test]
fn locates_seal_and_open_in_codex_0_171_0() {
    let image = map(&codex_binary("0.171.0"));
    let found = locate(&image)
        .unwrap_or_else(|e| panic!("Codex 0.171.0: {e}"))
        .expect("Codex 0.171.0: no aws-lc found");
    assert_eq!(
        (found.seal, found.open),
        (SEAL_0_171_0, OPEN_0_171_0),
        "{found:#?}"
    );
    assert_eq!(
        found.seal_scatter.map(|(address, _)| address),
        Some(SEAL_SCATTER_0_171_0),
        "{found:#?}"
    );
    assert_eq!(found.rustls, "0.23.46");
    // A PIE executable whose text is mapped at its file offset plus a page-aligned bias.
    for (address, offset) in [
        (found.seal, found.seal_offset),
        (found.open, found.open_offset),
    ] {
        assert_eq!(address % 4096, offset % 4096);
    }
    let anchors = found.anchors.join("\n");
    assert!(
        anchors.contains("crypto/fipsmodule/cipher/aead.c"),
        "{anchors}"
    );
    assert!(anchors.contains("aws-lc-rs 1.18.1"), "{anchors}");
    // open's own sites, then open_gather's, inlined.
    assert!(
        anchors.contains("(115, 244), (101, 261), (103, 267), (115, 292), (104, 297)"),
        "{anchors}"
    );
}

/// The rustls + aws-lc-rs echo loop, built by its build.sh (cached, see there).
pub(crate) fn rustls_loop_binary() -> std::path::PathBuf {
    let script =
        std::path::Path::new(env!("AGENTSCOPE_REPO")).join("tests/agents/rustls_tls_loop/build.sh");
    let output = std::process::Command::new(&script)
        .output()
        .expect("run tests/agents/rustls_tls_loop/build.sh");
    assert!(
        output.status.success(),
        "building the rustls loop failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::path::PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// A glibc PIE (rustls 0.23.46, aws-lc-rs 1.18.1, built by rustc's default linker): its
/// `.got` holds zeros in the file, each entry filled at load by an `R_X86_64_RELATIVE`
/// relocation. The functions are those `objdump -d` shows with aead.c's error sites (seal:
/// `mov edx, 0x75 / 0x67 / 0x73`; open: `0x73 / 0x65 / 0x67`, calling open_gather directly),
/// each called only through a GOT slot whose relocation's addend is its address (`readelf
/// -r`). The addresses change with every build of the loop, so they are checked against that
/// evidence read independently here rather than written down.
#[test]
fn locates_seal_and_open_in_a_glibc_pie() {
    let binary = rustls_loop_binary();
    let image = map(&binary);
    let found = locate(&image)
        .unwrap_or_else(|e| panic!("rustls loop: {e}"))
        .expect("rustls loop: no aws-lc found");
    assert_eq!(found.rustls, "0.23.46");
    let elf = object::File::parse(&*image).unwrap();
    let got = elf.section_by_name(".got").unwrap();
    assert!(
        got.data().unwrap().iter().all(|b| *b == 0),
        "the GOT is filled by relocations only"
    );
    // Each function is the addend of a RELATIVE relocation of a GOT slot, and that slot is
    // what the code calls (`ff 15 disp32`, call [rip + disp32]).
    let text = elf.section_by_name(".text").unwrap();
    let code = text.data().unwrap();
    let (seal_scatter, _) = found.seal_scatter.expect("seal_scatter located");
    for function in [found.seal, found.open, seal_scatter] {
        let slot = elf
            .dynamic_relocations()
            .unwrap()
            .find(|(offset, r)| {
                got.address() <= *offset
                    && *offset < got.address() + got.size()
                    && r.addend() as u64 == function
            })
            .map(|(offset, _)| offset)
            .unwrap_or_else(|| panic!("{function:#x} in no GOT slot"));
        let calls = memchr::memmem::find_iter(code, &[0xff, 0x15])
            .filter(|at| {
                let Some(disp) = code.get(at + 2..at + 6) else {
                    return false;
                };
                let next = text.address() + *at as u64 + 6;
                next.wrapping_add_signed(i64::from(i32::from_le_bytes(disp.try_into().unwrap())))
                    == slot
            })
            .count();
        assert!(calls > 0, "no call through {slot:#x}");
    }
    let anchors = found.anchors.join("\n");
    assert!(anchors.contains("its address in the GOT"), "{anchors}");
    assert!(anchors.contains("aws-lc-rs 1.18.1"), "{anchors}");
    // seal's three sites; open's three, open_gather not inlined this time.
    let sites = |label: &str| {
        let line = found.anchors.iter().find(|a| a.starts_with(label)).unwrap();
        line.split("(reason, line) ")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    let reasons = |sites: String| {
        sites
            .split("), (")
            .map(|pair| pair.trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')'))
            .map(|pair| {
                pair.split(',')
                    .next()
                    .unwrap()
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(reasons(sites("EVP_AEAD_CTX_seal ")), [117, 103, 115]);
    assert_eq!(reasons(sites("EVP_AEAD_CTX_open ")), [115, 101, 103]);
    assert_eq!(reasons(sites("EVP_AEAD_CTX_seal_scatter ")), [115, 112]);
}

/// 0.101.0 links rustls with ring, and OpenSSL 3: no aws-lc, nothing to locate here.
#[test]
fn rustls_with_ring_is_not_aws_lc() {
    let image = map(&codex_binary("0.101.0"));
    assert_eq!(locate(&image), Ok(None));
}

/// No rustls: the system's own executables.
#[test]
fn binaries_without_rustls_have_nothing() {
    let image = map(std::path::Path::new("/bin/ls"));
    assert_eq!(locate(&image), Ok(None));
    assert_eq!(locate(b"not an elf"), Ok(None));
}

/// Damaged copies of 0.171.0 are reported, never located wrongly: a second function with
/// seal's error sites (its `lea rcx` turned into another's), and one whose error sites lose
/// their file name (the sites cannot be read).
#[test]
fn damaged_copies_are_not_located() {
    let original = map(&codex_binary("0.171.0"));
    let elf = object::File::parse(&*original).unwrap();
    let text = elf.section_by_name(".text").unwrap();
    let (text_offset, _) = text.file_range().unwrap();
    let to_file = |address: u64| (address - text.address() + text_offset) as usize;
    let found = locate(&original).unwrap().unwrap();

    // The file name's loads in open point elsewhere: open cannot be recognised.
    let mut image = original.to_vec();
    let open = to_file(found.open);
    let mut cut = 0;
    for at in memchr::memmem::find_iter(&original[open..open + 0x1c0], &LEA_RCX_RIP) {
        image[open + at + 3] ^= 0x40;
        cut += 1;
    }
    assert!(cut >= 3, "{cut}");
    let err = locate(&image).unwrap_err();
    assert!(err.why.contains("EVP_AEAD_CTX_open"), "{err}");
    drop(image);

    // Seal's code copied over the function just after it (seal_scatter, 0x120 bytes on):
    // two functions with seal's sites, so neither is trusted.
    let mut image = original.to_vec();
    let seal = to_file(found.seal);
    let scatter = seal + 0x120;
    let copy: Vec<u8> = original[seal..seal + 0x110].to_vec();
    // The copy's RIP-relative loads must still reach the string: shift their displacements.
    image[scatter..scatter + copy.len()].copy_from_slice(&copy);
    for at in memchr::memmem::find_iter(&copy, &LEA_RCX_RIP) {
        let disp = i32::from_le_bytes(copy[at + 3..at + 7].try_into().unwrap()) - 0x120;
        image[scatter + at + 3..scatter + at + 7].copy_from_slice(&disp.to_le_bytes());
    }
    let err = locate(&image).unwrap_err();
    assert!(
        err.why.contains("2 functions have EVP_AEAD_CTX_seal"),
        "{err}"
    );
}
