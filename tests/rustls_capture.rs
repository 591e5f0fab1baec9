//! rustls with aws-lc-rs in a program that is not Codex: the echo loop of the probe-cost bench
//! (tests/agents/rustls_tls_loop: rustls 0.23, aws-lc-rs, glibc PIE, release, stripped), whose
//! client and server talk TLS over loopback in one process. The collector locates aws-lc's
//! AEAD in it (`crates/kernel/src/tls_targets/aws_lc.rs`: here every call goes through GOT
//! entries that only relocations fill) and binds each record to its socket
//! (`collector-ebpf/src/tls_rustls.rs`).
//!
//! One collector follows four loops: one negotiating TLS 1.3 (AES-256-GCM: `EVP_AEAD_CTX_seal`
//! and `open`, a 5-byte AAD), one whose client allows only TLS 1.2 (ECDHE-ECDSA-AES256-GCM:
//! `EVP_AEAD_CTX_seal_scatter` with the explicit nonce before the ciphertext, and `open`, a
//! 13-byte AAD), and the same two limited to ChaCha20-Poly1305 (`seal` and `open` for both
//! versions; no explicit nonce in TLS 1.2's records). Each loop is started before the collector and connects only once told to
//! (`wait-to-connect`), so its connection is seen from its first byte. Its commands come from
//! a shell held at a start FIFO until the collector is ready, not from this test: the test
//! reads the collector's output, so what it writes would rightly be taken for collector output
//! and the loop reading it for a consumer, whose payloads are not captured. In both, every byte
//! written and read is captured, in both directions of both sockets, a 40 000-byte message
//! (three records) included; nothing is rejected or left unbound; and the ClientHellos'
//! coverage says `rustls_located`.
//!
//! A third loop is exec'd only once the collector runs, and connects at once: its binary is
//! analysed after the exec is seen, so its connection may begin before the probes are
//! attached. Whichever way the race goes, its coverage must say the truth: `seen`, and then
//! its one round trip is captured whole, or `probes_attached_late`.

use crate::support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use support::*;

/// The loop built by its build.sh (cached under $HOME/.cache/agentscope: `make setup` builds
/// it once; afterwards this is cargo's no-op check).
fn rustls_loop_binary() -> String {
    let script = agents_dir().join("rustls_tls_loop/build.sh");
    let output = Command::new(&script)
        .env("CARGO", env!("CARGO"))
        .output()
        .expect("run tests/agents/rustls_tls_loop/build.sh");
    assert!(
        output.status.success(),
        "building the rustls loop failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The loop's `big N` message: byte `i` is `ALPHABET[(7 i + i / 1000) % 36]` (the same
/// function as the loop's `pattern`).
fn pattern(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..size)
        .map(|i| ALPHABET[(7 * i + i / 1000) % 36])
        .collect()
}

/// A loop waiting to connect, and the held shell that will give it its commands: connect,
/// one 40 000-byte round trip, three 64-byte ones, end of input.
struct Loop {
    child: Child,
    commands: Paused,
    stdout: BufReader<ChildStdout>,
}

impl Loop {
    fn start(binary: &str, dir: &Path, options: &[&str]) -> Loop {
        let mut commands = Paused::command(dir, "printf", &["connect\\nbig 40000\\n3\\n"], &[]);
        let mut child = Command::new(binary)
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .args(options)
            .arg("wait-to-connect")
            .stdin(commands.child.stdout.take().unwrap())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the rustls loop");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut started = Loop {
            child,
            commands,
            stdout,
        };
        assert_eq!(started.line(), "listening");
        started
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Releases the commands and waits for the loop to run them and exit; the protocol
    /// version and cipher suite the connection used.
    fn exchange(&mut self) -> String {
        self.commands.release();
        assert_eq!(self.line(), "ready");
        let done = self.line();
        let negotiated = done
            .strip_prefix("ok 40000 ")
            .unwrap_or_else(|| panic!("{done}"))
            .to_string();
        self.line().parse::<u64>().expect("elapsed ns");
        assert!(self.child.wait().unwrap().success());
        negotiated
    }

    fn pid(&self) -> u64 {
        u64::from(self.child.id())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.commands.child.kill();
        let _ = self.commands.child.wait();
    }
}

/// The loop at `binary`, held by a shell at a start FIFO until [`Paused::release`], then
/// exec'd in the shell's pid with no input.
fn held_loop(dir: &Path, binary: &Path, cert: &Path, key: &Path) -> Paused {
    let start_file = dir.join("start-racing-loop");
    let path = std::ffi::CString::new(start_file.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    let script = format!(
        ": < '{}'; exec '{}' '{}' '{}'",
        start_file.display(),
        binary.display(),
        cert.display(),
        key.display()
    );
    let child = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the racing loop");
    Paused { child, start_file }
}

/// `cert.pem` and `key.pem` in `dir`. Any certificate will do: the loop's client checks the
/// handshake signatures only.
fn make_certificate(dir: &Path) {
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap();
    assert!(made.status.success());
}

/// With one connection in a million kept (`--sample-connections 1000000`), rustls's plaintext
/// follows its socket's choice, both ways in one process: the loop's connect, its first to that
/// address and port, is kept (sampling never hides a destination), and its accept is sampled
/// out. The client connection's plaintext is copied, the server connection's is not, and the
/// server's side of the 40 000-byte round trip is among the bytes counted as the loop's.
#[test]
fn rustls_plaintext_follows_its_connections_sampling() {
    require_root();
    let binary = rustls_loop_binary();
    let dir = tempfile::tempdir().unwrap();
    make_certificate(dir.path());
    let mut run = Loop::start(&binary, dir.path(), &[]);
    let pid = run.pid().to_string();
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pid,
            "--no-kubernetes",
            "--sample-connections",
            "1000000",
        ],
    );
    run.exchange();
    let captured = collect.stop();
    let pid = run.pid();
    let inet = |kind: &'static str| -> Vec<&serde_json::Value> {
        captured
            .of_kind(kind)
            .filter(|e| e["pid"] == pid && e["family"] != "unix")
            .collect()
    };
    let (connects, accepts) = (inet("connect"), inet("accept"));
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert_eq!(accepts.len(), 1, "{accepts:?}");
    assert_eq!(
        connects[0].get("payloads_sampled_out"),
        None,
        "{}",
        connects[0]
    );
    assert_eq!(accepts[0]["payloads_sampled_out"], true, "{}", accepts[0]);
    let (client_fd, server_fd) = (&connects[0]["fd"], &accepts[0]["ret"]);
    let tls_on = |fd: &serde_json::Value| -> u64 {
        captured
            .of_kind("data")
            .filter(|e| e["pid"] == pid && e["source"] == "tls" && &e["fd"] == fd)
            .filter(|e| e["seq"] == 0)
            .map(|e| e["total_len"].as_u64().unwrap())
            .sum()
    };
    // The client writes and reads the big message and the 64-byte round trips.
    assert!(tls_on(client_fd) >= 2 * 40_000, "{}", captured.summary);
    assert_eq!(tls_on(server_fd), 0);
    // The server reads and writes the big message.
    let counted = captured.sampled_out_bytes_all_of(pid);
    assert!(counted >= 2 * 40_000, "{}", captured.summary);
}

#[test]
fn rustls_over_aws_lc_is_captured_over_tls_1_3_and_tls_1_2() {
    require_root();
    let binary = rustls_loop_binary();
    let dir = tempfile::tempdir().unwrap();
    make_certificate(dir.path());
    // (name, loop options, what the loop reports it negotiated): the suites that make rustls
    // call `seal` for TLS 1.3 and TLS 1.2 ChaCha20-Poly1305, `seal_scatter` for TLS 1.2
    // AES-GCM, and `open` for all.
    let variants: [(&str, &[&str], &str); 4] = [
        ("TLS 1.3", &[], "TLSv1_3 TLS13_AES_256_GCM_SHA384"),
        (
            "TLS 1.2",
            &["tls12"],
            "TLSv1_2 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
        (
            "TLS 1.3 ChaCha20",
            &["chacha20"],
            "TLSv1_3 TLS13_CHACHA20_POLY1305_SHA256",
        ),
        (
            "TLS 1.2 ChaCha20",
            &["tls12", "chacha20"],
            "TLSv1_2 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
    ];
    let mut loops: Vec<Loop> = variants
        .iter()
        .map(|(_, options, _)| Loop::start(&binary, dir.path(), options))
        .collect();
    // A copy: a file the collector has not analysed yet (analyses are kept per inode).
    let fresh = dir.path().join("rustls_tls_loop_fresh");
    std::fs::copy(&binary, &fresh).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let racing = held_loop(dir.path(), &fresh, &cert, &key);
    let pids: Vec<String> = loops
        .iter()
        .map(Loop::pid)
        .chain([u64::from(racing.pid())])
        .map(|pid| pid.to_string())
        .collect();
    let mut args: Vec<&str> = pids
        .iter()
        .flat_map(|pid| ["--pid", pid.as_str()])
        .collect();
    args.push("--no-kubernetes");
    let collect = Collect::start(dir.path(), &args);
    racing.release();
    let racing_pid = u64::from(racing.pid());
    // No commands (stdin is /dev/null): it connects, makes one round trip, prints `ready` and
    // ends at end of input.
    assert_eq!(racing.finish().trim(), "ready");
    for ((version, _, negotiated), run) in variants.iter().zip(&mut loops) {
        assert_eq!(run.exchange(), *negotiated, "{version}");
    }
    let captured = collect.stop();

    let kernel = &captured.summary["kernel"];
    assert_eq!(
        (&kernel["tls_rejected"], &kernel["tls_unbound"]),
        (&0.into(), &0.into()),
        "{kernel:#}"
    );
    let libraries = captured.summary["tls_libraries"].as_array().unwrap();
    let located = libraries
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with("rustls_tls_loop"))
        .unwrap_or_else(|| panic!("the loop was not analysed: {libraries:#?}"));
    assert_eq!(located["method"], "rustls (aws-lc located)", "{located:#}");
    let anchors = located["anchors"].to_string();
    for function in [
        "EVP_AEAD_CTX_seal at",
        "EVP_AEAD_CTX_open at",
        "EVP_AEAD_CTX_seal_scatter at",
    ] {
        assert!(anchors.contains(function), "{function}: {located:#}");
    }

    // Every message the client wrote after the collector started, in order: the round trip
    // before `ready`, the big one, the three small ones. The server echoes each, so all four
    // streams (client and server socket, each direction) carry the same bytes.
    let mut expected = vec![b'x'; 64];
    expected.extend(pattern(40_000));
    expected.extend([b'x'; 3 * 64]);
    for ((version, _, _), run) in variants.iter().zip(&loops) {
        let hellos: Vec<&serde_json::Value> = captured
            .of_kind("tls_hello")
            .filter(|e| e["pid"] == run.pid())
            .collect();
        assert!(
            hellos.len() == 1
                && hellos[0]["coverage"]["plaintext"] == "seen"
                && hellos[0]["coverage"]["method"] == "rustls_located",
            "{version}: {hellos:#?}"
        );
        for direction in ["egress", "ingress"] {
            let streams = captured.tls_streams(run.pid(), direction);
            assert_eq!(streams.len(), 2, "{version} {direction}: client and server");
            for stream in &streams {
                assert!(
                    *stream == expected,
                    "{version} {direction}: {} bytes captured, {} expected; first difference at {:?}",
                    stream.len(),
                    expected.len(),
                    stream.iter().zip(&expected).position(|(a, b)| a != b)
                );
            }
        }
        // One connection id per socket, the same for both directions.
        let ids = |direction: &str| {
            let mut ids: Vec<u64> = captured
                .of_kind("data")
                .filter(|e| {
                    e["pid"] == run.pid() && e["source"] == "tls" && e["direction"] == direction
                })
                .map(|e| e["conn_id"].as_u64().unwrap())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        assert_eq!(ids("egress"), ids("ingress"), "{version}");
        // The sockets' ciphertext is not captured as plain socket data.
        assert!(
            !captured
                .of_kind("data")
                .any(|e| e["pid"] == run.pid() && e["source"] == "socket"),
            "{version}: ciphertext captured as socket data"
        );
    }

    // The loop exec'd under the collector: seen (and then its one round trip captured in full,
    // both ways on both sockets), or reported late; never seen with its first bytes missing.
    let hellos: Vec<&serde_json::Value> = captured
        .of_kind("tls_hello")
        .filter(|e| e["pid"] == racing_pid)
        .collect();
    assert_eq!(hellos.len(), 1, "{hellos:#?}");
    let coverage = &hellos[0]["coverage"];
    eprintln!("the loop exec'd under the collector: {coverage}");
    if coverage["plaintext"] == "seen" {
        assert_eq!(coverage["method"], "rustls_located", "{coverage:#}");
        for direction in ["egress", "ingress"] {
            assert_eq!(
                captured.tls_streams(racing_pid, direction),
                [vec![b'x'; 64], vec![b'x'; 64]],
                "{direction}"
            );
        }
    } else {
        assert_eq!(coverage["why"], "probes_attached_late", "{coverage:#}");
        assert!(
            coverage["detail"]
                .as_str()
                .unwrap()
                .contains("before the probes were attached"),
            "{coverage:#}"
        );
    }
}
