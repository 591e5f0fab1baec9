//! A TLS echo loop over rustls with aws-lc-rs (the stack of Codex CLI 0.171), client and server
//! in one process over loopback TCP, for the tls_probe_overhead bench and the rustls capture
//! tests (tests/rustls_capture.rs, the locator's unit tests). Built by `build.sh` beside it.
//!
//! `rustls_tls_loop CERT KEY [tls12] [chacha20] [wait-to-connect]`: certificate and key in PEM (the
//! bench's Python loop writes them); `tls12` restricts the client to TLS 1.2 (the server offers
//! both); `chacha20` restricts it to the ChaCha20-Poly1305 suites (AES-GCM otherwise, as the
//! server prefers); `wait-to-connect` makes it print `listening` and connect only once a line comes on
//! stdin (so a collector started in between sees the connection, its accept included, from
//! its first byte). It
//! prints `ready` once the handshake and one round trip are done, then for each line on stdin:
//! - `N`: N round trips (the client writes 64 bytes `x`, the server echoes them, the client
//!   reads them), then the nanoseconds they took;
//! - `big N`: one round trip of N bytes of [`pattern`] (several TLS records when N > 16 KiB),
//!   then `ok N VERSION SUITE` once the echo came back equal (the connection's protocol version
//!   and cipher suite, as rustls names them).

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The bench's certificate is a self-signed one made by `openssl req -x509`, which webpki
/// refuses as an end entity (it is a CA). This loop talks only to itself, so the chain is
/// accepted as is; the handshake signatures are still checked, so the TLS work per call is
/// what a real client does.
#[derive(Debug)]
struct TrustTheLoopsOwn;

impl rustls::client::danger::ServerCertVerifier for TrustTheLoopsOwn {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        algorithms().supported_schemes()
    }
}

fn algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (cert_path, key_path) = (&args[1], &args[2]);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .expect("certificate file")
        .map(|c| c.expect("certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key_path).expect("key file");
    let server_config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config"),
    );
    let options = &args[3..];
    if let Some(other) = options
        .iter()
        .find(|o| !["tls12", "chacha20", "wait-to-connect"].contains(&o.as_str()))
    {
        panic!("unknown option {other:?} (tls12, chacha20, wait-to-connect)");
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if options.iter().any(|o| o == "tls12") {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if options.iter().any(|o| o == "chacha20") {
        use rustls::crypto::aws_lc_rs::cipher_suite;
        provider.cipher_suites = vec![
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
    }
    let client_config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustTheLoopsOwn))
            .with_no_client_auth(),
    );

    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().unwrap().port();
    let stdin = std::io::stdin();
    if options.iter().any(|o| o == "wait-to-connect") {
        println!("listening");
        let mut line = String::new();
        stdin.lock().read_line(&mut line).expect("stdin");
    }
    // Accepting only now: a collector started while the loop waited sees the accept too.
    std::thread::spawn(move || {
        let (socket, _) = listener.accept().expect("accept");
        socket.set_nodelay(true).ok();
        let connection = rustls::ServerConnection::new(server_config).expect("server");
        let mut tls = rustls::StreamOwned::new(connection, socket);
        // Echoes what each read brings (one record, for the 64-byte messages).
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(n) if n > 0 && tls.write_all(&buf[..n]).is_ok() => {}
                _ => return,
            }
        }
    });
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket.set_nodelay(true).ok();
    let name = ServerName::try_from("localhost").expect("name");
    let connection = rustls::ClientConnection::new(client_config, name).expect("client");
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let message = [b'x'; 64];
    let mut echo = [0u8; 64];
    // One round trip completes the handshake before `ready`.
    tls.write_all(&message).unwrap();
    tls.read_exact(&mut echo).unwrap();
    println!("ready");
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        if let Some(size) = line.trim().strip_prefix("big ") {
            let size: usize = size.parse().expect("a size");
            let message = pattern(size);
            let mut echo = vec![0u8; size];
            tls.write_all(&message).unwrap();
            tls.read_exact(&mut echo).unwrap();
            assert!(echo == message, "the echo differs");
            let connection = &tls.conn;
            println!(
                "ok {size} {:?} {:?}",
                connection.protocol_version().expect("connected"),
                connection.negotiated_cipher_suite().expect("connected").suite()
            );
            std::io::stdout().flush().unwrap();
            continue;
        }
        let n: u64 = line.trim().parse().expect("a count");
        let start = Instant::now();
        for _ in 0..n {
            tls.write_all(&message).unwrap();
            tls.read_exact(&mut echo).unwrap();
        }
        println!("{}", start.elapsed().as_nanos());
        std::io::stdout().flush().unwrap();
    }
}

/// `size` bytes that do not repeat at any record boundary (the captured streams are checked
/// against it byte for byte): byte `i` is `ALPHABET[(7 i + i / 1000) % 36]`.
fn pattern(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..size).map(|i| ALPHABET[(7 * i + i / 1000) % 36]).collect()
}
