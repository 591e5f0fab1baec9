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
