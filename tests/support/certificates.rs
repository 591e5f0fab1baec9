//! Certificates for the TLS mock servers: a CA and a leaf signed by it, as real servers present
//! them. rustls refuses a self-signed CA certificate used as a server certificate, and a leaf
//! under a CA is what every client sees in production, so the agent tests trust the CA and the
//! mock presents the leaf. Made with the `openssl` command line (the same tool the mock uses
//! when it makes its own self-signed certificate).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a leaf for localhost/127.0.0.1 signed by it, where the mock LLM looks for its
/// certificate (`--cert-dir`). Returns the CA certificate the agent trusts.
pub fn make_ca_and_leaf(cert_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(cert_dir).unwrap();
    let p = |name: &str| cert_dir.join(name).display().to_string();
    std::fs::write(
        cert_dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let steps: [Vec<String>; 3] = [
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=agentscope test CA",
            "-keyout",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([p("ca.key"), "-out".into(), p("ca.pem")])
        .collect(),
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([p("key.pem"), "-out".into(), p("leaf.csr")])
        .collect(),
        ["x509", "-req", "-days", "1", "-CAcreateserial", "-in"]
            .iter()
            .map(|s| s.to_string())
            .chain([
                p("leaf.csr"),
                "-CA".into(),
                p("ca.pem"),
                "-CAkey".into(),
                p("ca.key"),
                "-extfile".into(),
                p("leaf.ext"),
                "-out".into(),
                p("cert.pem"),
            ])
            .collect(),
    ];
    for args in steps {
        let out = Command::new("openssl").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cert_dir.join("ca.pem")
}

/// A client certificate signed by the CA [`make_ca_and_leaf`] made in `cert_dir`, for servers
/// that ask for mutual TLS: returns the certificate and its key (`client.pem`, `client.key`).
pub fn make_client_cert(cert_dir: &Path) -> (PathBuf, PathBuf) {
    let p = |name: &str| cert_dir.join(name).display().to_string();
    std::fs::write(
        cert_dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let steps: [Vec<String>; 2] = [
        vec![
            "req".into(),
            "-newkey".into(),
            "rsa:2048".into(),
            "-nodes".into(),
            "-subj".into(),
            "/CN=agentscope test client".into(),
            "-keyout".into(),
            p("client.key"),
            "-out".into(),
            p("client.csr"),
        ],
        vec![
            "x509".into(),
            "-req".into(),
            "-days".into(),
            "1".into(),
            "-CAcreateserial".into(),
            "-in".into(),
            p("client.csr"),
            "-CA".into(),
            p("ca.pem"),
            "-CAkey".into(),
            p("ca.key"),
            "-extfile".into(),
            p("client.ext"),
            "-out".into(),
            p("client.pem"),
        ],
    ];
    for args in steps {
        let out = Command::new("openssl").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (cert_dir.join("client.pem"), cert_dir.join("client.key"))
}
