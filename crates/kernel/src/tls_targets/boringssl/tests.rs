//! The locator against the two Claude Code releases `make setup` installs (seven months
//! apart), against binaries without BoringSSL, and against a damaged copy.

use super::*;

/// The Claude Code native binary of one installed release. Setup installs both; a missing one
/// is a failure, not a skip.
pub(crate) fn claude_binary(version: &str) -> std::path::PathBuf {
    let agents = std::env::var_os("AGENTSCOPE_AGENTS_DIR").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/agentscope/agents")
        },
        std::path::PathBuf::from,
    );
    let path = agents.join(format!(
        "claude-code@{version}/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
    ));
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` (it installs Claude Code {version})",
        path.display()
    );
    path
}

fn map(path: &std::path::Path) -> memmap2::Mmap {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: a read-only mapping of a file nothing writes while the test runs.
    unsafe { memmap2::Mmap::map(&file).unwrap() }
}

/// The first bytes of the function at a file offset.
fn bytes_at(image: &[u8], offset: u64, len: usize) -> &[u8] {
    &image[offset as usize..offset as usize + len]
}

/// Ground truth established by reading `objdump -d -M intel` of each binary by hand
/// (`objdump -d --start-address=ADDR --stop-address=ADDR+0x200 claude`): `SSL_write` is the
/// function whose error sites pass `ssl_lib.cc` with reasons 66, 226, 215, 111; `SSL_read`
/// the one with `SSL_peek`'s QUIC check inlined that calls `ssl_read_impl`, then copies
/// `pending_app_data` out and consumes it. The locator knows none of these numbers.
const GROUND_TRUTH: [(&str, u64, u64); 2] = [
    ("2.1.113", 0x52414b0, 0x5240840),
    ("2.1.332", 0x3531300, 0x35314b0),
];

#[test]
fn locates_ssl_write_and_ssl_read_in_both_claude_code_releases() {
    for (version, write, read) in GROUND_TRUTH {
        let image = map(&claude_binary(version));
        let found = locate(&image)
            .unwrap_or_else(|e| panic!("Claude Code {version}: {e}"))
            .unwrap_or_else(|| panic!("Claude Code {version}: no BoringSSL found"));
        assert_eq!(
            (found.ssl_write, found.ssl_read),
            (write, read),
            "Claude Code {version}: {found:#?}"
        );
        // Non-PIE: the file offset is the address minus the text segment's bias, and both
        // functions start with a frame-pointer prologue there.
        for offset in [found.ssl_write_offset, found.ssl_read_offset] {
            assert_eq!(bytes_at(&image, offset, 4), [0x55, 0x48, 0x89, 0xe5]);
        }
        assert!(
            found.anchors.iter().any(|a| a.contains("ssl_lib.cc")),
            "{:?}",
            found.anchors
        );
        assert!(found.anchors.iter().any(|a| a.starts_with("SSL_write at")));
        assert!(found.anchors.iter().any(|a| a.starts_with("SSL_read at")));
        assert!(found.anchors.iter().any(|a| a.contains("direct callers")));
    }
}

#[test]
fn binaries_without_boringssl_are_not_boringssl() {
    // The test binary itself and a system binary carry no ssl_lib.cc.
    let this = std::env::current_exe().unwrap();
    assert_eq!(locate(&map(&this)), Ok(None));
    assert_eq!(locate(&map(std::path::Path::new("/bin/sh"))), Ok(None));
    assert_eq!(locate(b"not an elf"), Ok(None));
    assert_eq!(locate(&[]), Ok(None));
}

#[test]
fn a_damaged_ssl_write_is_reported_not_guessed() {
    let path = claude_binary("2.1.332");
    let mut image = map(&path).to_vec();
    let found = locate(&image).unwrap().unwrap();
    // Turn SSL_write's bad-length error site into something else: one of the four reasons
    // goes missing, so no function matches SSL_write's shape any more.
    let text_site = found.ssl_write_offset as usize;
    let window = &mut image[text_site..text_site + 0x400];
    let reason = SSL_R_BAD_LENGTH as u32;
    let mut patched = 0;
    for at in 0..window.len() - 5 {
        // mov edx, 111
        if window[at] == 0xba && window[at + 1..at + 5] == reason.to_le_bytes() {
            window[at + 1..at + 5].copy_from_slice(&1u32.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 1, "SSL_write's bad-length site moved");
    let err = locate(&image).unwrap_err();
    assert!(err.why.contains("SSL_write"), "{err}");
}

#[test]
fn subsequences() {
    assert!(is_subsequence(&[1, 3], &[1, 2, 3]));
    assert!(!is_subsequence(&[3, 1], &[1, 2, 3]));
    assert!(is_subsequence(&[], &[1]));
    assert!(!is_subsequence(&[1], &[]));
}
