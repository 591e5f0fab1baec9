//! The server name (SNI), ALPN protocols and cipher suites of a TLS ClientHello, from the first bytes the
//! kernel programs kept of a socket that starts with a handshake record. Parsed with
//! `tls-parser` (rusticata's passive TLS parser); the input is at most `TLS_HELLO_LEN` bytes
//! and whatever does not parse yields nothing, never a panic.

use tls_parser::{SNIType, TlsExtension, TlsMessage, TlsMessageHandshake};

/// ALPN protocols kept per hello, and bytes per protocol name.
const MAX_ALPN: usize = 8;
const MAX_ALPN_LEN: usize = 64;
/// The longest DNS name.
const MAX_NAME_LEN: usize = 253;

/// What a ClientHello says about where it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The host name asked for, lowercased (`None` when absent or not a host name).
    pub server_name: Option<String>,
    /// Application protocols offered, in the client's order (`h2`, `http/1.1`).
    pub alpn: Vec<String>,
    /// Cipher suites offered, in the client's order (signalling values such as
    /// `TLS_EMPTY_RENEGOTIATION_INFO_SCSV` included): what tells one TLS stack's hello from
    /// another's. Bounded by the record, which is at most `TLS_HELLO_LEN` bytes.
    pub cipher_suites: Vec<u16>,
}

/// The suites rustls's own providers (ring and aws-lc-rs, rustls 0.23) offer, the signalling
/// value it adds when it offers TLS 1.2 (`rustls/src/client/hs.rs`), and TLS 1.3's two CCM
/// suites (which other rustls providers may offer; no OpenSSL default list has them, so
/// counting them costs nothing). OpenSSL's default lists offer CBC and DHE suites too.
const RUSTLS_MAY_OFFER: [u16; 12] = [
    0x1301, // TLS13_AES_128_GCM_SHA256
    0x1302, // TLS13_AES_256_GCM_SHA384
    0x1303, // TLS13_CHACHA20_POLY1305_SHA256
    0x1304, // TLS13_AES_128_CCM_SHA256
    0x1305, // TLS13_AES_128_CCM_8_SHA256
    0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    0xc02c, // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    0xc030, // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    0xcca8, // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    0xcca9, // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    0x00ff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
];

impl ClientHello {
    /// A suite this hello offers that rustls never offers, if any: evidence that another
    /// stack wrote it (the collector's coverage verdict, for a binary that links rustls beside
    /// a located OpenSSL). `None` proves nothing: an OpenSSL client limited to modern suites
    /// offers only these too.
    pub fn suite_rustls_never_offers(&self) -> Option<u16> {
        self.cipher_suites
            .iter()
            .copied()
            .find(|suite| !RUSTLS_MAY_OFFER.contains(suite))
    }
}

/// Parses a ClientHello at the start of `bytes` (a TLS record); `None` when it is not one or
/// it is cut before its extensions end.
pub fn parse_client_hello(bytes: &[u8]) -> Option<ClientHello> {
    let (_, record) = tls_parser::parse_tls_plaintext(bytes).ok()?;
    let hello = record.msg.iter().find_map(|message| match message {
        TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)) => Some(hello),
        _ => None,
    })?;
    let mut out = ClientHello {
        cipher_suites: hello.ciphers.iter().map(|suite| suite.0).collect(),
        ..ClientHello::default()
    };
    let Some(extensions) = hello.ext else {
        return Some(out);
    };
    let (_, extensions) = tls_parser::parse_tls_client_hello_extensions(extensions).ok()?;
    for extension in extensions {
        match extension {
            TlsExtension::SNI(names) => {
                out.server_name = names
                    .iter()
                    .find(|(kind, _)| *kind == SNIType::HostName)
                    .and_then(|(_, name)| host_name(name));
            }
            TlsExtension::ALPN(protocols) => {
                out.alpn = protocols
                    .iter()
                    .take(MAX_ALPN)
                    .map(|p| String::from_utf8_lossy(&p[..p.len().min(MAX_ALPN_LEN)]).into_owned())
                    .collect();
            }
            _ => {}
        }
    }
    Some(out)
}

/// A host name as sent in SNI: letters, digits, `-`, `.` and `_` only (RFC 6066 forbids
/// anything else; a hostile client must not put control characters in reports).
fn host_name(bytes: &[u8]) -> Option<String> {
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    ok.then(|| String::from_utf8_lossy(bytes).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real ClientHellos, recorded by `scripts/record-client-hellos.sh` (see its header).
    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/client_hello/{name}.bin",
            env!("AGENTSCOPE_REPO")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const CLIENTS: [&str; 4] = ["openssl", "python", "node", "curl"];

    #[test]
    fn openssl_hellos_offer_suites_rustls_never_offers() {
        // openssl s_client and Python's ssl (the system's OpenSSL 3), Node (its own OpenSSL 3)
        // and curl (OpenSSL 3 on Debian), each with its default list.
        for client in CLIENTS {
            let hello = parse_client_hello(&fixture(client)).unwrap();
            assert!(hello.suite_rustls_never_offers().is_some(), "{client}");
        }
    }

    #[test]
    fn a_rustls_hello_offers_nothing_else() {
        let hello = parse_client_hello(&fixture("rustls")).unwrap();
        // It offers TLS 1.2 too (the signalling value), so the whole list is checked.
        assert!(
            hello.cipher_suites.len() >= 9 && hello.cipher_suites.contains(&0x00ff),
            "{:04x?}",
            hello.cipher_suites
        );
        assert_eq!(hello.suite_rustls_never_offers(), None);
        assert_eq!(ClientHello::default().suite_rustls_never_offers(), None);
    }

    #[test]
    fn real_client_hellos_give_server_name_and_alpn() {
        for client in CLIENTS {
            let hello = parse_client_hello(&fixture(client))
                .unwrap_or_else(|| panic!("{client}: not parsed"));
            assert_eq!(
                hello.server_name.as_deref(),
                Some("api.openai.com"),
                "{client}"
            );
            match client {
                "openssl" | "python" => assert_eq!(hello.alpn, ["h2", "http/1.1"], "{client}"),
                "curl" => assert!(hello.alpn.contains(&"http/1.1".to_string()), "{client}"),
                _ => {}
            }
        }
    }

    #[test]
    fn truncated_and_damaged_hellos_never_panic() {
        for client in CLIENTS {
            let hello = fixture(client);
            for cut in 0..hello.len() {
                // A cut record is incomplete: nothing, or (past the extensions) the same answer.
                if let Some(parsed) = parse_client_hello(&hello[..cut]) {
                    assert!(parsed.server_name.is_none() || cut >= 5, "{client} {cut}");
                }
            }
            for at in 0..hello.len() {
                let mut damaged = hello.clone();
                damaged[at] ^= 0xff;
                let _ = parse_client_hello(&damaged);
            }
        }
        assert_eq!(parse_client_hello(b""), None);
        assert_eq!(parse_client_hello(b"\x16\x03\x01\xff\xff"), None);
        assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn server_names_with_odd_bytes_are_dropped() {
        assert_eq!(
            host_name(b"API.OpenAI.com").as_deref(),
            Some("api.openai.com")
        );
        assert_eq!(host_name(b"evil\x1b[2Jname"), None);
        assert_eq!(host_name(b""), None);
        assert_eq!(host_name(&[b'a'; 300]), None);
    }
}
