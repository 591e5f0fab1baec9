//! The locator against the two Codex CLI releases `make setup` installs, against binaries
//! without OpenSSL 3, and against damaged copies.

use super::*;

/// The Codex CLI executable of one installed release (the npm package moved it between
/// releases). Setup installs both; a missing one is a failure, not a skip.
pub(crate) fn codex_binary(version: &str) -> std::path::PathBuf {
    let agents = std::env::var_os("AGENTSCOPE_AGENTS_DIR").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/agentscope/agents")
        },
        std::path::PathBuf::from,
    );
    let vendor = agents.join(format!(
        "codex@{version}/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl"
    ));
    let path = ["codex/codex", "bin/codex"]
        .iter()
        .map(|p| vendor.join(p))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{}/{{codex/codex,bin/codex}} is missing: run `make setup` (it installs Codex CLI {version})",
                vendor.display()
            )
        });
    path
}

fn map(path: &std::path::Path) -> memmap2::Mmap {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: a read-only mapping of a file nothing writes while the test runs.
    unsafe { memmap2::Mmap::map(&file).unwrap() }
}

/// Ground truth established by hand, independently of the locator: the instructions that
/// load the `__func__` strings (`objdump -d` around the `lea` whose target is the string),
/// and the `.eh_frame` entry holding them (`readelf --debug-dump=frames codex | grep FDE`).
/// In 0.101.0 `SSL_read` (0x3f75470) and `SSL_read_ex` (0x3f754d0) visibly call the read
/// function found. The locator knows none of these numbers.
/// Both also link rustls (`strings codex | grep /rustls-`): 0.171.0 makes its model calls
/// through it (its ClientHello is rustls's), which these probes do not see.
const GROUND_TRUTH: [(&str, u64, u64, &str, &str); 2] = [
    (
        "0.101.0",
        0x3f7_50a0,
        0x3f7_54f0,
        "OpenSSL 3.5.5 27 Jan 2026",
        "0.23.36",
    ),
    (
        "0.171.0",
        0x1222_e5d0,
        0x1222_ebc0,
        "OpenSSL 3.6.",
        "0.23.46",
    ),
];

#[test]
fn locates_the_internal_read_and_write_in_both_codex_releases() {
    for (version, read, write, openssl, rustls) in GROUND_TRUTH {
        let image = map(&codex_binary(version));
        let found = locate(&image)
            .unwrap_or_else(|e| panic!("Codex {version}: {e}"))
            .unwrap_or_else(|| panic!("Codex {version}: no OpenSSL 3 found"));
        assert_eq!(
            (found.read_internal, found.write_internal),
            (read, write),
            "Codex {version}: {found:#?}"
        );
        assert_eq!(found.rustls_beside.as_deref(), Some(rustls));
        // SSL_do_handshake too: its ClientHellos tell OpenSSL's connections from rustls's.
        assert!(!found.handshake_offsets.is_empty(), "{found:#?}");
        assert!(found
            .anchors
            .iter()
            .any(|a| a.starts_with("SSL_do_handshake")));
        assert!(found
            .anchors
            .iter()
            .any(|a| a.contains("rustls") && a.contains("told apart")));
        assert!(!found.legacy_ssl_st);
        // Both releases carry OpenSSL 3.5 or later: the write function takes the QUIC flags.
        assert!(found.write_has_flags, "{found:#?}");
        // PIE executables whose text is mapped at its file offset plus a page-aligned bias.
        for (address, offset) in [
            (found.read_internal, found.read_offset),
            (found.write_internal, found.write_offset),
        ] {
            assert_eq!(address % 4096, offset % 4096);
        }
        assert!(
            found.anchors.iter().any(|a| a.contains("ssl/ssl_lib.c")),
            "{:?}",
            found.anchors
        );
        assert!(found
            .anchors
            .iter()
            .any(|a| a.starts_with("ssl_read_internal at")));
        assert!(found
            .anchors
            .iter()
            .any(|a| a.starts_with("ssl_write_internal at")));
        assert!(
            found.anchors.iter().any(|a| a.contains(openssl)),
            "{:#?}",
            found.anchors
        );
    }
}

#[test]
fn binaries_without_openssl3_are_not_openssl3() {
    // The test binary itself mentions the strings (this module) but never passes them to
    // ERR_set_debug; a system binary carries none.
    let this = std::env::current_exe().unwrap();
    assert_eq!(locate(&map(&this)), Ok(None));
    assert_eq!(locate(&map(std::path::Path::new("/bin/sh"))), Ok(None));
    assert_eq!(locate(b"not an elf"), Ok(None));
    assert_eq!(locate(&[]), Ok(None));
}

/// The file offset of an exported function (a shared library: its address).
fn exported_offset(elf: &object::File<'_>, name: &str) -> u64 {
    use object::ObjectSymbol as _;
    let address = elf
        .dynamic_symbols()
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("{name} exported"))
        .address();
    let text = elf.section_by_name(".text").unwrap();
    address - text.address() + text.file_range().unwrap().0
}

/// The first direct call or jump in the function at `address` (exported, so named).
fn first_branch_target(elf: &object::File<'_>, address: u64) -> u64 {
    let text = elf.section_by_name(".text").unwrap();
    let bytes = text.data().unwrap();
    let at = (address - text.address()) as usize;
    let mut decoder = Decoder::with_ip(64, &bytes[at..at + 64], address, DecoderOptions::NONE);
    decoder
        .iter()
        .find(|i| {
            matches!(
                i.flow_control(),
                FlowControl::Call | FlowControl::UnconditionalBranch
            ) && i.op0_kind() == OpKind::NearBranch64
        })
        .map(|i| i.near_branch_target())
        .expect("a direct call in the first 64 bytes")
}

#[test]
fn the_system_libssl_is_located_like_a_static_copy() {
    // Debian's libssl.so.3 exports SSL_read_ex, so it is never located in production; it is
    // an independent build (GCC, not Codex's clang) whose exported `SSL_read_ex` and
    // `SSL_write_ex` call the internal functions directly: ground truth from symbols.
    use object::ObjectSymbol as _;
    let path = [
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        "/lib/x86_64-linux-gnu/libssl.so.3",
    ]
    .into_iter()
    .map(std::path::Path::new)
    .find(|p| p.exists())
    .expect("the system libssl (make setup installs it)");
    let image = map(path);
    // Its version text is in libcrypto, so the write function's shape is unknown: reported.
    let err = locate(&image).unwrap_err();
    assert!(
        err.why.contains("version texts name minor versions []"),
        "{err}"
    );
    // With a version text written over another string of the file (as a static build has),
    // the functions are located.
    let mut versioned = image.to_vec();
    let filler = memchr::memmem::find(&image, b"ssl/statem/statem_clnt.c\0").unwrap();
    versioned[filler..filler + 24].copy_from_slice(b"OpenSSL 3.0.99 1 x 2099\0");
    let found = locate(&versioned).unwrap().unwrap();
    assert!(!found.write_has_flags);
    assert_eq!(found.rustls_beside, None);
    let elf = object::File::parse(&*image).unwrap();
    // In a shared library SSL_connect calls the exported SSL_do_handshake through the PLT, so
    // no direct call reaches it and it is not taken for an entry point: then no handshake is
    // located (its hellos cannot be told from another stack's, see `Collector::other_stack`),
    // but a wrong one never is.
    assert!(
        found.handshake_offsets.is_empty()
            || found.handshake_offsets == [exported_offset(&elf, "SSL_do_handshake")],
        "{found:#?}"
    );
    let exported = |name: &str| {
        elf.dynamic_symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("{name} exported"))
            .address()
    };
    assert_eq!(
        first_branch_target(&elf, exported("SSL_read_ex")),
        found.read_internal,
        "{found:#?}"
    );
    assert_eq!(
        first_branch_target(&elf, exported("SSL_write_ex")),
        found.write_internal,
        "{found:#?}"
    );
}

#[test]
fn a_damaged_binary_is_reported_not_guessed() {
    let image = map(&codex_binary("0.101.0"));
    let found = locate(&image).unwrap().unwrap();
    // A second function passing "ssl_read_internal" to ERR_set_debug, as if the compiler had
    // inlined a copy into a caller: the write function's name loads are pointed at the read
    // name instead.
    let mut damaged = image.to_vec();
    let elf = object::File::parse(&*image).unwrap();
    let rodata = elf.section_by_name(".rodata").unwrap();
    let rodata_bytes = rodata.data().unwrap();
    let read_name =
        rodata.address() + memchr::memmem::find(rodata_bytes, READ_NAME).unwrap() as u64;
    let write_name =
        rodata.address() + memchr::memmem::find(rodata_bytes, WRITE_NAME).unwrap() as u64;
    let text = elf.section_by_name(".text").unwrap();
    let (text_offset, _) = text.file_range().unwrap();
    let code = Code {
        address: text.address(),
        file_offset: text_offset,
        bytes: text.data().unwrap(),
    };
    let mut patched = 0;
    for load in third_argument_loads(&code, &[write_name], false) {
        // lea r64, [rip + disp32]: the displacement is 3 bytes into the instruction.
        let at = (load - code.address + code.file_offset) as usize;
        let next = load + 7;
        let disp = i32::try_from(read_name as i64 - next as i64).unwrap();
        damaged[at + 3..at + 7].copy_from_slice(&disp.to_le_bytes());
        patched += 1;
    }
    assert!(patched >= 1);
    let err = locate(&damaged).unwrap_err();
    assert!(
        err.why.contains("ssl_read_internal") && err.why.contains("expected one"),
        "{err}"
    );
    // Without a version text the write function's shape is unknown: not guessed either.
    let mut unversioned = image.to_vec();
    for at in memchr::memmem::find_iter(&image, VERSION_PREFIX).collect::<Vec<_>>() {
        unversioned[at] = b'X';
    }
    let err = locate(&unversioned).unwrap_err();
    assert!(err.why.contains("version"), "{err}");
    assert_ne!(found.read_offset, 0);
}

#[test]
fn version_texts() {
    assert_eq!(
        version_minors(b"\0OpenSSL 3.5.5 27 Jan 2026\0"),
        BTreeMap::from([(5, "OpenSSL 3.5.5 27 Jan 2026".to_string())])
    );
    assert_eq!(
        version_minors(b"OpenSSL 3.0.13 30 Jan 2024\0OpenSSL 3.0.13\0")
            .keys()
            .collect::<Vec<_>>(),
        [&0]
    );
    assert!(version_minors(b"needs OpenSSL 3.x or later\0").is_empty());
}

/// A static C program over Debian's libssl.a (GCC, non-PIE, no `.eh_frame_hdr`):
/// `tests/agents/openssl_static_loop.c`, the TLS loop of the probe-overhead benchmark. Built
/// twice: with its symbol table (ground truth: `ssl_read_internal` and `ssl_write_internal`
/// are global in libssl.a) and stripped (what is located).
#[test]
fn a_static_gcc_build_without_eh_frame_hdr_is_located() {
    use object::ObjectSymbol as _;
    let dir = tempfile::tempdir().unwrap();
    let build = |name: &str, strip: bool| {
        let binary = dir.path().join(name);
        let output = std::process::Command::new("gcc")
            .args(["-O2", "-static", "-pthread"])
            .args(strip.then_some("-s"))
            .arg("-o")
            .arg(&binary)
            .arg(format!(
                "{}/tests/agents/openssl_static_loop.c",
                env!("AGENTSCOPE_REPO")
            ))
            .args(["-lssl", "-lcrypto"])
            .output()
            .expect("gcc (make setup installs it, and libssl-dev)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        map(&binary)
    };
    let (stripped, symbols) = (build("stripped", true), build("symbols", false));
    let elf = object::File::parse(&*symbols).unwrap();
    let symbol = |name: &str| {
        elf.symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("{name} in the symbol table"))
            .address()
    };
    assert!(elf.section_by_name(".eh_frame_hdr").is_none());
    let found = locate(&stripped)
        .unwrap()
        .expect("OpenSSL 3 in the static loop");
    assert!(!found.write_has_flags, "{found:#?}");
    assert!(
        found.legacy_ssl_st,
        "Debian 12's OpenSSL is 3.0: {found:#?}"
    );
    assert_eq!(
        (found.read_internal, found.write_internal),
        (symbol("ssl_read_internal"), symbol("ssl_write_internal")),
        "{found:#?}"
    );
}
