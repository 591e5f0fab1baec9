//! HPACK header blocks (RFC 7541) of one direction of an HTTP/2 connection, decoded with
//! `loona-hpack` (the maintained successor of the `hpack` crate) and bounded. Its Huffman
//! decoding is too slow to face a hostile peer (a table built per string), so Huffman literals
//! are decoded by [`super::huffman`] first and the block handed on with plain literals.
//! Representations, integers and the static table are [`agentscope_http2_wire::hpack`]'s,
//! shared with redaction (which masks secret values in these blocks before they get here).
//!
//! Each direction has its own decoder, never shared: the dynamic table a block refers to is
//! the one its sender's earlier blocks built. The table is only known when every block of
//! the direction was seen: after lost bytes (or a block that could not be decoded) it is
//! unknowable, and this says so rather than guess ([`BlockDecoder::unknown`]). Blocks that
//! arrive then still yield what they carry by themselves (static-table references and
//! literals), flagged as partial.
//!
//! Bounds against hostile senders: a block is at most [`MAX_BLOCK_BYTES`]; the dynamic table
//! at most [`MAX_TABLE_BYTES`] (a size update beyond it stops decoding); the decoded list at
//! most [`MAX_LIST_BYTES`] and [`MAX_FIELDS`] (the "HPACK bomb", one-byte references to a
//! large table entry repeated, is cut there: the rest of the block is still decoded, to keep
//! the table in step, but not copied).

use std::borrow::Cow;

use agentscope_http2_wire::hpack::{integer, push_integer, static_entry};

use crate::http::Header;

/// Largest header block (HEADERS plus its CONTINUATION frames) decoded.
pub const MAX_BLOCK_BYTES: usize = 256 << 10;
/// Largest dynamic table followed. Senders use 4 KiB unless the peer allows more; 64 KiB
/// covers every common client and server.
pub const MAX_TABLE_BYTES: usize = 64 << 10;
pub use agentscope_http2_wire::hpack::DEFAULT_TABLE_BYTES;
/// Largest decoded header list kept (names and values, RFC 9113's 32 bytes each on top).
pub const MAX_LIST_BYTES: usize = 256 << 10;
/// Most fields kept from one block.
pub const MAX_FIELDS: usize = 256;

/// A decoded header block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecodedBlock {
    /// Fields in order, pseudo-headers (`:method`, `:path`, ...) included.
    pub fields: Vec<Header>,
    /// Fields were dropped: the list went beyond [`MAX_LIST_BYTES`] or [`MAX_FIELDS`].
    pub cut: bool,
    /// The dynamic table was unknown: fields that referred to it are missing.
    pub partial: bool,
}

/// One direction's HPACK decoder.
pub struct BlockDecoder {
    decoder: loona_hpack::Decoder<'static>,
    /// Why the dynamic table is unknown, once it is.
    unknown: Option<String>,
}

impl std::fmt::Debug for BlockDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockDecoder")
            .field("unknown", &self.unknown)
            .finish_non_exhaustive()
    }
}

impl Default for BlockDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockDecoder {
    pub fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE_BYTES);
        Self {
            decoder,
            unknown: None,
        }
    }

    /// Why the dynamic table is unknown, if it is.
    pub fn unknown(&self) -> Option<&str> {
        self.unknown.as_deref()
    }

    /// The table can no longer be followed (bytes lost, a block not decoded).
    pub fn lose_table(&mut self, reason: impl Into<String>) {
        if self.unknown.is_none() {
            self.unknown = Some(reason.into());
        }
    }

    /// Heap the decoder holds: its table at the protocol's default size (4 KiB). A sender
    /// that raised it with a size update holds up to [`MAX_TABLE_BYTES`]; the crate does not
    /// expose the table's size, and charging every connection the maximum would charge
    /// thousands of idle connections sixteen times what they hold.
    pub fn held_bytes(&self) -> usize {
        if self.unknown.is_some() {
            0
        } else {
            DEFAULT_TABLE_BYTES
        }
    }

    /// Decodes one whole header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<DecodedBlock, String> {
        if block.len() > MAX_BLOCK_BYTES {
            self.lose_table(format!(
                "a header block of {} bytes exceeded the {MAX_BLOCK_BYTES} decoded",
                block.len()
            ));
            return Err(format!(
                "header block of {} bytes exceeds {MAX_BLOCK_BYTES}",
                block.len()
            ));
        }
        if self.unknown.is_some() {
            return Ok(decode_without_table(block));
        }
        let mut out = DecodedBlock::default();
        let mut list_bytes = 0usize;
        // Huffman literals become plain ones first (see `super::huffman` for why); a block that
        // does not parse goes as it is, for the decoder to refuse.
        let plain = without_huffman(block);
        let block = plain.as_deref().unwrap_or(block);
        let result = self.decoder.decode_with_cb(block, |name, value| {
            keep(&mut out, &mut list_bytes, &name, &value);
        });
        match result {
            Ok(()) => Ok(out),
            Err(error) => {
                let reason = format!("HPACK: {error}");
                self.lose_table(format!("a header block could not be decoded ({reason})"));
                Err(reason)
            }
        }
    }
}

fn keep(out: &mut DecodedBlock, list_bytes: &mut usize, name: &[u8], value: &[u8]) {
    let size = name.len() + value.len() + 32;
    if out.cut || out.fields.len() >= MAX_FIELDS || *list_bytes + size > MAX_LIST_BYTES {
        out.cut = true;
        return;
    }
    *list_bytes += size;
    out.fields.push(Header {
        name: String::from_utf8_lossy(name).into_owned(),
        value: String::from_utf8_lossy(value).into_owned(),
    });
}

/// What a block says by itself, with the dynamic table unknown: static-table references and
/// literals; a field that needs the table is skipped (its length is still known, so later
/// fields of the block are read too) and the block flagged partial. The table's state is never
/// guessed.
pub fn decode_without_table(block: &[u8]) -> DecodedBlock {
    let mut out = DecodedBlock::default();
    let mut list_bytes = 0usize;
    let mut at = 0;
    while at < block.len() {
        let first = block[at];
        // (prefix bits, whether a literal follows, whether it is a size update)
        let (prefix, literal, size_update) = if first & 0x80 != 0 {
            (7, false, false)
        } else if first & 0x40 != 0 {
            (6, true, false)
        } else if first & 0x20 != 0 {
            (5, false, true)
        } else {
            (4, true, false)
        };
        let Some((index, used)) = integer(&block[at..], prefix) else {
            out.partial = true;
            return out;
        };
        at += used;
        if size_update {
            continue;
        }
        let name: Option<Cow<'_, [u8]>> = if literal && index == 0 {
            let Some((name, used)) = string(&block[at..]) else {
                out.partial = true;
                return out;
            };
            at += used;
            Some(name)
        } else {
            static_entry(index).map(|(name, _)| Cow::Borrowed(name))
        };
        if !literal {
            // An index past the static table names a dynamic-table entry: unknown, skipped.
            match static_entry(index) {
                Some((name, value)) => keep(&mut out, &mut list_bytes, name, value),
                None => out.partial = true,
            }
            continue;
        }
        let Some((value, used)) = string(&block[at..]) else {
            out.partial = true;
            return out;
        };
        at += used;
        match name {
            Some(name) => keep(&mut out, &mut list_bytes, &name, &value),
            None => out.partial = true,
        }
    }
    out
}

/// The block with every Huffman-coded string literal replaced by its plain form; `None` when it
/// has none or does not parse.
fn without_huffman(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + block.len() / 2);
    let mut any = false;
    let mut at = 0;
    while at < block.len() {
        let first = block[at];
        let (prefix, literal) = if first & 0x80 != 0 {
            (7, false)
        } else if first & 0x40 != 0 {
            (6, true)
        } else if first & 0x20 != 0 {
            (5, false)
        } else {
            (4, true)
        };
        let (index, used) = integer(&block[at..], prefix)?;
        out.extend_from_slice(&block[at..at + used]);
        at += used;
        if !literal {
            continue;
        }
        let strings = if index == 0 { 2 } else { 1 };
        for _ in 0..strings {
            let huffman = block.get(at)? & 0x80 != 0;
            let (len, used) = integer(&block[at..], 7)?;
            let raw = block.get(at + used..(at + used).checked_add(len)?)?;
            if huffman {
                let mut plain = Vec::with_capacity(len * 8 / 5 + 1);
                super::huffman::decode(raw, &mut plain).ok()?;
                push_integer(&mut out, 7, plain.len());
                out.extend_from_slice(&plain);
                any = true;
            } else {
                out.extend_from_slice(&block[at..at + used + len]);
            }
            at += used + len;
        }
    }
    any.then_some(out)
}

/// An HPACK string literal (RFC 7541 §5.2), Huffman-decoded when flagged.
fn string(bytes: &[u8]) -> Option<(Cow<'_, [u8]>, usize)> {
    let huffman = bytes.first()? & 0x80 != 0;
    let (len, used) = integer(bytes, 7)?;
    let raw = bytes.get(used..used.checked_add(len)?)?;
    let value = if huffman {
        let mut plain = Vec::new();
        super::huffman::decode(raw, &mut plain).ok()?;
        Cow::Owned(plain)
    } else {
        Cow::Borrowed(raw)
    };
    Some((value, used + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(block: &DecodedBlock) -> Vec<(String, String)> {
        block
            .fields
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    }

    #[test]
    fn rfc7541_c3_requests_share_one_dynamic_table() {
        // RFC 7541 C.3.1 and C.3.2: the second request refers to the first's entries.
        let first = hex("828684410f7777772e6578616d706c652e636f6d");
        let second = hex("828684be58086e6f2d6361636865");
        let mut decoder = BlockDecoder::new();
        decoder.decode(&first).unwrap();
        let decoded = decoder.decode(&second).unwrap();
        assert_eq!(
            names(&decoded),
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert!(!decoded.partial);

        // Attached after the first block: the dynamic reference is missing, never guessed;
        // the rest of the block is read.
        let mut late = BlockDecoder::new();
        late.lose_table("attached mid-connection");
        let decoded = late.decode(&second).unwrap();
        assert!(decoded.partial);
        assert_eq!(
            names(&decoded),
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("cache-control", "no-cache"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn rfc7541_c4_huffman_coded_requests() {
        let mut decoder = BlockDecoder::new();
        decoder
            .decode(&hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))
            .unwrap();
        decoder.decode(&hex("828684be5886a8eb10649cbf")).unwrap();
        let third = decoder
            .decode(&hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"))
            .unwrap();
        assert_eq!(
            names(&third),
            [
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        // A Huffman string with bad padding is refused, as `loona-hpack` refuses it.
        assert!(BlockDecoder::new()
            .decode(&[0x40, 0x81, 0x00, 0x01, b'v'])
            .is_err());
    }

    #[test]
    fn hpack_bomb_is_cut_and_oversized_table_refused() {
        // One 4000-byte entry, then 10,000 one-byte references to it: 40 MB if copied.
        let mut block = vec![0x40, 0x01, b'x', 0x7f];
        let mut len = 4000 - 127;
        while len >= 128 {
            block.push((len % 128) as u8 | 0x80);
            len /= 128;
        }
        block.push(len as u8);
        block.extend(std::iter::repeat_n(b'v', 4000));
        block.extend(std::iter::repeat_n(0xbe, 10_000));
        let mut decoder = BlockDecoder::new();
        let decoded = decoder.decode(&block).unwrap();
        assert!(decoded.cut);
        let kept: usize = decoded.fields.iter().map(|h| h.value.len()).sum();
        assert!(kept <= MAX_LIST_BYTES, "{kept}");

        // A size update to 1 MiB: the table can no longer be followed, and it says so.
        let mut decoder = BlockDecoder::new();
        let update = [0x3f, 0xe1, 0xff, 0x3f, 0x82];
        assert!(decoder.decode(&update).is_err());
        assert!(decoder.unknown().unwrap().contains("could not be decoded"));
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
