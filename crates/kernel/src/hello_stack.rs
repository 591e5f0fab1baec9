//! Whether rustls could have written a ClientHello, from the cipher suites it offers.
//!
//! A binary that links a located OpenSSL 3 and rustls beside it (Codex CLI) makes connections
//! through either stack. The kernel programs flag a hello written inside the located
//! `SSL_do_handshake`, and a flagged hello is OpenSSL's. An unflagged one is not always
//! rustls's: a process that connects while its binary is being analysed can enter the
//! handshake just before the probes are attached and write its hello just after, so the flag
//! is missing on an OpenSSL hello (seen on a slow CI host: the verdict blamed rustls). The
//! hello's own bytes settle most of those cases: rustls offers only its crypto provider's
//! suites, and the providers rustls ships (ring and aws-lc-rs, rustls 0.23) implement only the
//! AEAD suites below; it adds `TLS_EMPTY_RENEGOTIATION_INFO_SCSV` when it offers TLS 1.2
//! (`rustls/src/client/hs.rs`). OpenSSL's default lists offer CBC and DHE suites too, so a hello
//! that offers any other suite was not written by rustls. A hello that offers only these (an
//! OpenSSL client restricted to modern suites) proves nothing either way, and neither does one
//! whose suites could not be read.

/// The suites rustls's own providers offer, the signalling value it adds, and TLS 1.3's two
/// CCM suites (which other rustls providers may offer; no OpenSSL default list has them, so
/// counting them costs nothing).
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

/// A suite in the hello at the start of `record` that rustls never offers, if any: evidence
/// that another stack wrote it. `None` when every suite is one rustls may offer, or when the
/// bytes are not a ClientHello that parses.
pub fn suite_rustls_never_offers(record: &[u8]) -> Option<u16> {
    let hello = agentscope_event::tls_hello::parse_client_hello(record)?;
    hello
        .cipher_suites
        .into_iter()
        .find(|suite| !RUSTLS_MAY_OFFER.contains(suite))
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

    #[test]
    fn openssl_hellos_offer_suites_rustls_never_offers() {
        // openssl s_client and Python's ssl (the system's OpenSSL 3), Node (its own OpenSSL 3)
        // and curl (OpenSSL 3 on Debian), each with its default list.
        for client in ["openssl", "python", "node", "curl"] {
            assert!(
                suite_rustls_never_offers(&fixture(client)).is_some(),
                "{client}"
            );
        }
    }

    #[test]
    fn a_rustls_hello_offers_nothing_else() {
        let hello = fixture("rustls");
        let suites = agentscope_event::tls_hello::parse_client_hello(&hello)
            .unwrap()
            .cipher_suites;
        // The hello offers TLS 1.2 too (the signalling value), so the whole list is checked.
        assert!(
            suites.len() >= 9 && suites.contains(&0x00ff),
            "{suites:04x?}"
        );
        assert_eq!(suite_rustls_never_offers(&hello), None);
    }

    #[test]
    fn what_does_not_parse_proves_nothing() {
        let hello = fixture("openssl");
        assert_eq!(suite_rustls_never_offers(&hello[..40]), None);
        assert_eq!(suite_rustls_never_offers(b""), None);
        assert_eq!(suite_rustls_never_offers(b"GET / HTTP/1.1\r\n\r\n"), None);
    }
}
