//! Comparing what an agent sent and received (the mock's dumps) with what the collector
//! captured, where the collector's redaction masked secrets (the default, kept in the agent
//! tests so that the API key can be checked to appear nowhere).

use std::path::Path;

/// Whether `needle` appears in `haystack` byte for byte, except bytes the collector's
/// redaction replaced with `*`. Returns how many bytes were masked.
pub fn verbatim_but_redacted(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let anchor = &needle[..needle.len().min(256)];
    // Requests of one conversation share a long prefix: try every place the anchor occurs.
    memchr::memmem::find_iter(haystack, anchor).find_map(|start| {
        let found = haystack.get(start..start + needle.len())?;
        let mut masked = 0;
        for (got, want) in found.iter().zip(needle) {
            if got != want {
                if *got != b'*' {
                    return None;
                }
                masked += 1;
            }
        }
        Some(masked)
    })
}

/// The request and response bodies the mock dumped for calls `numbers` (`request-N.body`,
/// `response-N.body` in `dump`) are in the captured streams: each request byte for byte but
/// for at most `max_masked` bytes redaction masked, each response byte for byte. `agent` names
/// the agent in failure messages.
pub fn assert_bodies_captured(
    agent: &str,
    dump: &Path,
    numbers: impl IntoIterator<Item = usize>,
    egress: &[Vec<u8>],
    ingress: &[Vec<u8>],
    max_masked: usize,
) {
    let egress_bytes: usize = egress.iter().map(Vec::len).sum();
    for n in numbers {
        let request = std::fs::read(dump.join(format!("request-{n}.body"))).unwrap();
        let masked = egress
            .iter()
            .find_map(|s| verbatim_but_redacted(s, &request))
            .unwrap_or_else(|| {
                panic!(
                    "{agent}: request {n} ({} bytes) not captured verbatim ({egress_bytes} \
                     egress bytes)",
                    request.len()
                )
            });
        assert!(masked <= max_masked, "request {n}: {masked} bytes masked");
        let response = std::fs::read(dump.join(format!("response-{n}.body"))).unwrap();
        assert_eq!(
            ingress
                .iter()
                .find_map(|s| verbatim_but_redacted(s, &response)),
            Some(0),
            "{agent}: response {n} ({} bytes) not captured verbatim",
            response.len()
        );
    }
}
