//! Comparing what an agent sent and received (the mock's dumps) with what the collector
//! captured, where the collector's redaction masked secrets (the default, kept in the agent
//! tests so that the API key can be checked to appear nowhere).

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
