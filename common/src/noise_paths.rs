//! Runtime noise the kernel programs may leave out: read-only opens of files every process
//! reads just to run (shared libraries, the interpreter's standard library, locale and time
//! zone data, the dynamic linker's cache, `/sys`), decided here once for both sides.
//!
//! The kernel programs run it at the exit of `open`/`openat`/`openat2` (collector-ebpf
//! `files.rs`, from `bpf_loop`) and count what they leave out (`stat::NOISE_OPENS_FILTERED`),
//! unless the collector keeps runtime noise (`config::KEEP_RUNTIME_NOISE`).
//!
//! The userspace classifier (`crates/reconstruct/src/file_access.rs`) hides every such path as
//! runtime noise, and its prefixes for libraries, locale and time-zone data are these
//! constants; what the kernel drops must be a subset of what userspace would hide anyway and
//! of what no other userspace reader needs. So a path is droppable only when all of these
//! hold (unit tests in reconstruct and kernel check the agreement on the files of this machine
//! and on adversarial names):
//! - it is absolute and starts with one of [`DROPPABLE_PREFIXES`] (system library directories, except their
//!   `systemd` and `modules` subdirectories, which are system state), or has a `lib` component
//!   followed by a `python3.` one (an interpreter's standard library, wherever it lives);
//! - it has no hidden component other than `.pyenv` (no `..`, nor `.ssh`, `.aws`, `.config`
//!   and the other hidden directories where secrets live), and is not truncated;
//! - no component is a package directory (`site-packages`, `dist-packages`, `node_modules`):
//!   opens there name the packages a process loads (the AI-BOM, `package_inventory.rs`) and
//!   the agent frameworks it imports;
//! - its file name does not start with `libssl` (the collector attaches its TLS probes to a
//!   libssl when a process opens it), nor with `id_` (SSH key names), is not `kubeconfig` or
//!   `_netrc`, and either has no dot or ends in one of [`DROPPABLE_EXTENSIONS`] or in a
//!   shared library's `.so.N[.N...]`: private keys, environment files, service-account keys
//!   and kubeconfigs are recognised by their extensions and never match.
//!
//! The scan is one pass over the path's bytes, each position looked at by [`NoiseScan::step`]
//! with constant offsets only, so the kernel can run it from `bpf_loop` (verified once) and
//! userspace runs the same code in [`is_droppable`].

use crate::PATH_LEN;

/// Directory prefixes under which every file is runtime noise for the userspace classifier
/// (unless it is a secret by name, which the rules above exclude).
pub const DROPPABLE_PREFIXES: &[&[u8]] = &[
    b"/usr/lib/",
    b"/usr/lib64/",
    b"/lib/",
    b"/lib64/",
    b"/usr/local/lib/",
    b"/usr/share/locale/",
    b"/usr/share/i18n/",
    b"/usr/share/zoneinfo/",
    b"/etc/ld.so.",
    b"/sys/",
];

/// Prefixes inside [`DROPPABLE_PREFIXES`] that are system state, not libraries: never
/// dropped (the classifier calls unit files and kernel modules system configuration).
pub const KEPT_PREFIXES: &[&[u8]] = &[
    b"/usr/lib/systemd/",
    b"/lib/systemd/",
    b"/lib/modules/",
    b"/usr/lib/modules/",
];

/// File-name endings a droppable file may have (besides none, and `.so.N`): modules,
/// compiled bytecode, shared libraries, message catalogues, the linker's and gconv's caches,
/// locale aliases.
pub const DROPPABLE_EXTENSIONS: &[&[u8]] = &[
    b".py", b".pyc", b".so", b".mo", b".cache", b".alias", b".conf",
];

/// The one hidden component a droppable path may have: pyenv's interpreters live in
/// `~/.pyenv/versions/`.
const ALLOWED_HIDDEN: &[u8] = b"/.pyenv/";
const STDLIB: &[u8] = b"/lib/python3.";
const PACKAGE_DIRS: &[&[u8]] = &[b"/site-packages/", b"/dist-packages/", b"/node_modules/"];

// Flags of a scan.
/// Something rules the path out, whatever else is found.
const REJECTED: u32 = 1;
/// A `/lib/python3.` run was seen.
const STDLIB_SEEN: u32 = 2;
/// The current component (the file name, at the end) has a dot.
const NAME_HAS_DOT: u32 = 4;
/// The current component ends in an allowed extension (set at the extension's last byte).
const NAME_EXTENSION_OK: u32 = 8;
/// Since the current component's `.so.`, only digits and dots.
const NAME_SO_VERSION: u32 = 16;
/// The current component is a name that rules the path out (`libssl*`, `id_*`, ...).
const NAME_REJECTED: u32 = 32;

/// The state of one pass over a path; [`NoiseScan::step`] for every byte, then
/// [`NoiseScan::droppable`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NoiseScan {
    pub flags: u32,
    pub len: u32,
}

/// Byte `at + offset` of the path, or 0 past its end.
#[inline(always)]
fn byte(path: &[u8; PATH_LEN], len: usize, at: usize) -> u8 {
    if at < len && at < PATH_LEN {
        path[at]
    } else {
        0
    }
}

/// Whether `lit` is at `at` (ASCII case folded when `fold`).
#[inline(always)]
fn at_is(path: &[u8; PATH_LEN], len: usize, at: usize, lit: &[u8], fold: bool) -> bool {
    let mut i = 0;
    while i < lit.len() {
        let mut b = byte(path, len, at + i);
        if fold {
            b = b.to_ascii_lowercase();
        }
        if b != lit[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl NoiseScan {
    pub const fn new(len: u32) -> Self {
        Self { flags: 0, len }
    }

    /// Looks at the byte at `at` (0 ≤ `at` < `len`).
    #[inline(always)]
    pub fn step(&mut self, path: &[u8; PATH_LEN], at: usize) {
        let len = self.len as usize;
        let b = byte(path, len, at);
        if b == b'/' {
            // A new component: forget the previous one's name flags.
            self.flags &= REJECTED | STDLIB_SEEN;
            if byte(path, len, at + 1) == b'.' && !at_is(path, len, at, ALLOWED_HIDDEN, false) {
                self.flags |= REJECTED;
            }
            let mut i = 0;
            while i < PACKAGE_DIRS.len() {
                if at_is(path, len, at, PACKAGE_DIRS[i], false) {
                    self.flags |= REJECTED;
                }
                i += 1;
            }
            if at_is(path, len, at, STDLIB, false) {
                self.flags |= STDLIB_SEEN;
            }
            let name = at + 1;
            if at_is(path, len, name, b"libssl", false)
                || at_is(path, len, name, b"id_", true)
                || name + 10 == len && at_is(path, len, name, b"kubeconfig", true)
                || name + 6 == len && at_is(path, len, name, b"_netrc", true)
            {
                self.flags |= NAME_REJECTED;
            }
            return;
        }
        if b == 0 {
            // A NUL inside the length: not a path the classifier would see the same way.
            self.flags |= REJECTED;
        }
        if b == b'.' {
            self.flags |= NAME_HAS_DOT;
            // A later dot starts another ending: only the last one counts.
            self.flags &= !NAME_EXTENSION_OK;
            let mut i = 0;
            while i < DROPPABLE_EXTENSIONS.len() {
                let ext = DROPPABLE_EXTENSIONS[i];
                if at + ext.len() == len && at_is(path, len, at, ext, false) {
                    self.flags |= NAME_EXTENSION_OK;
                }
                i += 1;
            }
            // The second dot of `.so.`: a library version may follow.
            if at >= 3 && at_is(path, len, at - 3, b".so.", false) {
                self.flags |= NAME_SO_VERSION;
            }
        } else if !b.is_ascii_digit() {
            // After `.so.`, only digits and dots make a library version.
            self.flags &= !NAME_SO_VERSION;
        }
    }

    /// Whether the scanned path (of `self.len` bytes, not truncated) is droppable.
    #[inline(always)]
    pub fn droppable(&self, path: &[u8; PATH_LEN]) -> bool {
        let len = self.len as usize;
        if len == 0
            || len >= PATH_LEN
            || byte(path, len, 0) != b'/'
            || self.flags & (REJECTED | NAME_REJECTED) != 0
        {
            return false;
        }
        let name_ok = self.flags & NAME_HAS_DOT == 0
            || self.flags & (NAME_EXTENSION_OK | NAME_SO_VERSION) != 0;
        if !name_ok {
            return false;
        }
        let mut i = 0;
        while i < KEPT_PREFIXES.len() {
            if at_is(path, len, 0, KEPT_PREFIXES[i], false) {
                return false;
            }
            i += 1;
        }
        if self.flags & STDLIB_SEEN != 0 {
            return true;
        }
        let mut i = 0;
        while i < DROPPABLE_PREFIXES.len() {
            if at_is(path, len, 0, DROPPABLE_PREFIXES[i], false) {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Whether the kernel programs leave out a read-only open of `path` (the same scan they run).
pub fn is_droppable(path: &[u8]) -> bool {
    if path.is_empty() || path.len() >= PATH_LEN {
        return false;
    }
    let mut buf = [0u8; PATH_LEN];
    buf[..path.len()].copy_from_slice(path);
    let mut scan = NoiseScan::new(path.len() as u32);
    let mut at = 0;
    while at < path.len() {
        scan.step(&buf, at);
        at += 1;
    }
    scan.droppable(&buf)
}

/// Names and relative paths the agreement tests (reconstruct's classifier, the kernel crate's
/// package and TLS readers) put under every droppable prefix: secrets by name, hidden
/// directories, `..`, package directories and the libraries the collector probes.
pub const ADVERSARIAL_TAILS: &[&str] = &[
    "id_rsa",
    "ID_ED25519",
    "id_rsa.py",
    ".env",
    "prod.env",
    ".env.py",
    "server.key",
    "tls-key.pem",
    "privkey.pem",
    "cert.p12",
    "store.jks",
    "kubeconfig",
    "KUBECONFIG",
    "prod.kubeconfig",
    "_netrc",
    ".netrc",
    "service-account.json",
    "my-sa-key.json",
    ".ssh/id_rsa",
    ".ssh/config.py",
    ".aws/credentials",
    ".aws/sso/cache/token.py",
    ".config/gcloud/adc.json",
    ".azure/msal_token_cache.py",
    ".gnupg/private-keys-v1.d/key.so",
    ".password-store/x.py",
    "../../../etc/shadow",
    "../../../root/.ssh/id_rsa",
    "x/../../../../var/run/secrets/kubernetes.io/serviceaccount/token",
    "./../../../etc/gshadow",
    "python3.11/../../../../etc/shadow",
    "python3.11/site-packages/openai/__init__.py",
    "python3/dist-packages/langchain_core/__init__.py",
    "node_modules/undici/index.js",
    "x86_64-linux-gnu/libssl.so.3",
    "libssl.so",
    "libssl3.so.1",
    "systemd/system/ssh.service",
    "modules/6.1.0/kernel/fs/x.ko",
    "libfoo.so.1.key",
    "libfoo.so.env",
    "a.so.1.2.3",
    "json/__init__.py",
    "__pycache__/x.cpython-311.pyc",
    "C.utf8/LC_CTYPE",
    "en/LC_MESSAGES/bash.mo",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_files_are_droppable() {
        for path in [
            "/usr/lib/python3.11/json/__init__.py",
            "/usr/local/lib/python3.12/encodings/__pycache__/utf_8.cpython-312.pyc",
            "/root/.pyenv/versions/3.11.7/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
            "/root/.pyenv/versions/3.11.7/lib/python3.11/encodings",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
            "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
            "/usr/lib/locale/C.utf8/LC_CTYPE",
            "/usr/lib/locale/locale-archive",
            "/usr/share/locale/locale.alias",
            "/usr/share/locale/de/LC_MESSAGES/coreutils.mo",
            "/usr/share/zoneinfo/Europe/Berlin",
            "/etc/ld.so.cache",
            "/sys/devices/system/cpu/online",
        ] {
            assert!(is_droppable(path.as_bytes()), "{path} should be droppable");
        }
    }

    #[test]
    fn secrets_packages_tls_libraries_and_escapes_are_kept() {
        for path in [
            "/usr/lib/python3/dist-packages/yaml/__init__.py",
            "/usr/local/lib/python3.11/site-packages/openai/__init__.py",
            "/usr/lib/node_modules/npm/index.js",
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/usr/lib/systemd/system/ssh.service",
            "/lib/modules/6.1.0/modules.dep",
            "/usr/lib/../../etc/shadow",
            "/usr/lib/python3.11/../../../etc/shadow",
            "/home/u/.ssh/lib/python3.11/id.py",
            "/home/u/.aws/sso/cache/lib/python3.11/token",
            "/usr/lib/ssl/private/server.key",
            "/usr/lib/x86_64-linux-gnu/id_rsa",
            "/usr/lib/kubeconfig",
            "/usr/lib/app/prod.env",
            "/usr/lib/app/settings.json",
            "/proc/self/environ",
            "/dev/mem",
            "/etc/passwd",
            "/srv/app/agent.py",
            "lib/python3.11/json/__init__.py",
            "",
            "/",
        ] {
            assert!(!is_droppable(path.as_bytes()), "{path} should be kept");
        }
    }

    #[test]
    fn shared_library_versions() {
        assert!(is_droppable(b"/usr/lib/libz.so.1.3.1"));
        assert!(is_droppable(b"/usr/lib/libz.so"));
        assert!(!is_droppable(b"/usr/lib/libz.so.1.key"));
        assert!(!is_droppable(b"/usr/lib/libz.so.1a"));
        assert!(!is_droppable(b"/usr/lib/libz.sox"));
    }

    #[test]
    fn truncated_paths_are_kept() {
        let mut long = [b'a'; PATH_LEN];
        long[..9].copy_from_slice(b"/usr/lib/");
        // PATH_LEN bytes: the kernel read was cut, the path may go on.
        assert!(!is_droppable(&long));
        assert!(is_droppable(&long[..PATH_LEN - 1]));
    }
}
