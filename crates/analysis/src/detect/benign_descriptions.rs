//! Tool descriptions already scanned for prompt injection and found benign, so the same
//! description offered again is not scanned again.
//!
//! Chat APIs are stateless: every request of a conversation offers the model all its tools
//! again, descriptions included, and an MCP client lists the same tools on every connection.
//! Scanning is a pure function of the text, the kind of source and the thresholds (fixed for
//! a detector), so a description found benign once is benign every time; one that was not
//! benign is never kept here and is scanned (and found) again. Descriptions are kept whole,
//! not by hash: a hash collision must not let crafted text pass as a benign description. The
//! table holds at most [`MAX_BYTES`] of text and starts over when full.

use std::collections::HashSet;

/// Text kept at most, in bytes (descriptions are typically a few hundred bytes each).
pub const MAX_BYTES: usize = 256 << 10;

#[derive(Default)]
pub struct BenignDescriptions {
    texts: HashSet<String>,
    bytes: usize,
}

impl BenignDescriptions {
    /// Whether `description` was scanned and found benign before.
    pub fn contains(&self, description: &str) -> bool {
        self.texts.contains(description)
    }

    /// Remembers that `description` was scanned and found benign.
    pub fn remember(&mut self, description: &str) {
        if description.len() > MAX_BYTES || self.texts.contains(description) {
            return;
        }
        if self.bytes + description.len() > MAX_BYTES {
            self.texts.clear();
            self.bytes = 0;
        }
        self.bytes += description.len();
        self.texts.insert(description.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_whole_texts_within_the_bound() {
        let mut benign = BenignDescriptions::default();
        benign.remember("Looks up an order by id.");
        assert!(benign.contains("Looks up an order by id."));
        assert!(!benign.contains("Looks up an order by id"));
        let chunk = "x".repeat(1000);
        for i in 0..MAX_BYTES / 500 {
            benign.remember(&format!("{chunk}{i}"));
            assert!(benign.bytes <= MAX_BYTES);
            assert_eq!(
                benign.bytes,
                benign.texts.iter().map(String::len).sum::<usize>()
            );
        }
        benign.remember(&"y".repeat(MAX_BYTES + 1));
        assert!(!benign.contains(&"y".repeat(MAX_BYTES + 1)));
    }
}
