//! The locator against the Codex CLI releases `make setup` installs (0.171.0 links rustls with
//! aws-lc-rs; 0.101.0 links rustls with ring, and no aws-lc), against a binary without rustls,
//! and against damaged copies.

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
