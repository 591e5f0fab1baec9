//! A TLS echo loop over rustls with aws-lc-rs, client and server in one process over loopback
//! TCP, for the tls_probe_overhead bench: it prints `ready`, then for each line `N` on stdin
//! runs N round trips (the client writes 64 bytes, the server reads and writes them back, the
//! client reads them) and prints the nanoseconds they took. Certificate and key come from the
//! files the bench's Python loop writes (PEM, argv 1 and 2).

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
    let client_config = Arc::new(
        rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustTheLoopsOwn))
            .with_no_client_auth(),
    );

    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (socket, _) = listener.accept().expect("accept");
        socket.set_nodelay(true).ok();
        let connection = rustls::ServerConnection::new(server_config).expect("server");
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let mut buf = [0u8; 64];
        loop {
            if tls.read_exact(&mut buf).is_err() || tls.write_all(&buf).is_err() {
                return;
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
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let n: u64 = line.expect("stdin").trim().parse().expect("a count");
        let start = Instant::now();
        for _ in 0..n {
            tls.write_all(&message).unwrap();
            tls.read_exact(&mut echo).unwrap();
        }
        println!("{}", start.elapsed().as_nanos());
        std::io::stdout().flush().unwrap();
    }
}
