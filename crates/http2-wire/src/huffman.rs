//! HPACK's Huffman code (RFC 7541 §5.2, Appendix B): decoded canonically, also a byte at a
//! time for strings that arrive in pieces, and encoded.
//!
//! `loona-hpack` decodes Huffman strings by building a table of hash maps for every string and
//! looking bits up one at a time: the Go agent's first request header block (95 bytes) took
//! 177 µs, so a peer sending blocks of tiny Huffman strings could make header decoding cost
//! milliseconds per kilobyte. The code is canonical (codes of one length are consecutive
//! integers, ordered by symbol within a length), so a decoder needs only, per code length,
//! the first code and where its symbols start in the symbol list: built once, then a few
//! integer operations per bit, no allocation. Reconstruction rewrites a block's Huffman
//! literals as plain ones with it before the block reaches `loona-hpack`; redaction reads
//! header names and counts value lengths with [`Reader`] as a block's bytes go past.
//!
//! The masked form of a coded value is also decided here ([`masked_byte`]): `*` is one of the
//! few symbols whose code is exactly 8 bits (`0xf9`), so a value can be overwritten with `*`s
//! byte for byte, from any symbol boundary on, and still decode.

use std::sync::OnceLock;

/// Longest code (EOS is 30 bits).
const MAX_LEN: usize = 30;
/// The end-of-string symbol: never valid inside a string.
const EOS: u16 = 256;
/// The code of `*`, exactly one byte long: the masked form of a coded value.
pub const MASK_BYTE: u8 = 0xf9;

/// Per code length: the first code, how many codes, and where their symbols start.
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    offset: [u32; MAX_LEN + 1],
    symbols: Vec<u16>,
}

fn canonical() -> &'static Canonical {
    static TABLE: OnceLock<Canonical> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut symbols: Vec<u16> = (0..=256).collect();
        symbols.sort_by_key(|&s| (CODES[usize::from(s)].1, CODES[usize::from(s)].0));
        let mut table = Canonical {
            first: [0; MAX_LEN + 1],
            count: [0; MAX_LEN + 1],
            offset: [0; MAX_LEN + 1],
            symbols,
        };
        for (i, &symbol) in table.symbols.iter().enumerate() {
            let (code, len) = CODES[usize::from(symbol)];
            let len = usize::from(len);
            if table.count[len] == 0 {
                table.first[len] = code;
                table.offset[len] = i as u32;
            }
            table.count[len] += 1;
        }
        table
    })
}

/// Why a Huffman string did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string.
    EndOfStringInside,
    /// Padding longer than 7 bits, or not the most significant bits of EOS (all ones).
    BadPadding,
}

/// A Huffman string decoded as its bytes arrive, one at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reader {
    /// Bits of the symbol being read, and how many.
    code: u32,
    len: usize,
    /// Bits read so far.
    bits: usize,
}

impl Reader {
    /// Reads one byte; `symbol(byte, end)` is called for each symbol it completes, with the
    /// bit of the string the symbol ends at.
    pub fn push(
        &mut self,
        byte: u8,
        mut symbol: impl FnMut(u8, usize),
    ) -> Result<(), HuffmanError> {
        let table = canonical();
        for shift in (0..8).rev() {
            self.code = (self.code << 1) | u32::from((byte >> shift) & 1);
            self.len += 1;
            self.bits += 1;
            let len = self.len;
            let index = self.code.wrapping_sub(table.first[len]);
            if table.count[len] > 0 && self.code >= table.first[len] && index < table.count[len] {
                let decoded = table.symbols[(table.offset[len] + index) as usize];
                if decoded == EOS {
                    return Err(HuffmanError::EndOfStringInside);
                }
                symbol(decoded as u8, self.bits);
                self.code = 0;
                self.len = 0;
            } else if len == MAX_LEN {
                // Every 30-bit sequence holds a complete code; only EOS is that long.
                return Err(HuffmanError::EndOfStringInside);
            }
        }
        Ok(())
    }

    /// The string ended: what is left must be padding, at most 7 bits, all ones (EOS's first
    /// bits).
    pub fn finish(&self) -> Result<(), HuffmanError> {
        if self.len > 7 || self.code != (1u32 << self.len) - 1 {
            return Err(HuffmanError::BadPadding);
        }
        Ok(())
    }
}

/// Decodes one Huffman-coded string, appending to `out`.
pub fn decode(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let mut reader = Reader::default();
    for &byte in bytes {
        reader.push(byte, |symbol, _| out.push(symbol))?;
    }
    reader.finish()
}

/// Huffman-codes `text`, padded with ones to a whole byte.
pub fn encode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &byte in text {
        let (code, len) = CODES[usize::from(byte)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) as u8);
    }
    out
}

/// Byte `index` of a coded string of `len` bytes masked from bit `keep_bits` on (a symbol
/// boundary): the bits before it stay as sent (`sent` is the byte as sent), then as many `*`
/// codes as fit, then padding. The masked string decodes to the kept symbols followed by
/// `(8 * len - keep_bits) / 8` stars; from bit 0 it is `len` bytes of [`MASK_BYTE`].
pub fn masked_byte(index: usize, len: usize, keep_bits: usize, sent: u8) -> u8 {
    let stars_end = keep_bits + (8 * len).saturating_sub(keep_bits) / 8 * 8;
    let mut out = 0u8;
    for bit in 0..8 {
        let at = 8 * index + bit;
        let value = if at < keep_bits {
            (sent >> (7 - bit)) & 1
        } else if at < stars_end {
            (MASK_BYTE >> (7 - (at - keep_bits) % 8)) & 1
        } else {
            1
        };
        out |= value << (7 - bit);
    }
    out
}

/// (code, length in bits) of each symbol, 0 to 255 and EOS (RFC 7541 Appendix B).
static CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc7541_examples_decode() {
        // C.4.1: "www.example.com"; C.4.2: "no-cache".
        let mut out = Vec::new();
        decode(
            &[
                0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"www.example.com");
        out.clear();
        decode(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf], &mut out).unwrap();
        assert_eq!(out, b"no-cache");
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(HuffmanError::EndOfStringInside)
        );
        assert_eq!(
            decode(&[0x00], &mut Vec::new()),
            Err(HuffmanError::BadPadding)
        );
    }

    proptest! {
        #[test]
        fn every_string_round_trips(text in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            decode(&encode(&text), &mut out).unwrap();
            prop_assert_eq!(out, text);
        }

        /// Same verdict and output as `loona-hpack`'s own decoder on any bytes.
        #[test]
        fn agrees_with_loona_hpack(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut ours = Vec::new();
            let ours = decode(&bytes, &mut ours).map(|()| ours);
            let theirs = loona_hpack::huffman::HuffmanDecoder::new().decode(&bytes);
            prop_assert_eq!(ours.ok(), theirs.ok());
        }

        /// Masked from any symbol boundary, a coded string keeps its length and decodes to the
        /// symbols before the boundary followed by stars.
        #[test]
        fn masking_keeps_length_and_decodes(
            text in proptest::collection::vec(any::<u8>(), 0..80),
            keep in 0usize..80,
        ) {
            let coded = encode(&text);
            let keep = keep.min(text.len());
            let keep_bits: usize = text[..keep].iter().map(|&b| usize::from(CODES[usize::from(b)].1)).sum();
            let masked: Vec<u8> = coded
                .iter()
                .enumerate()
                .map(|(i, &b)| masked_byte(i, coded.len(), keep_bits, b))
                .collect();
            prop_assert_eq!(masked.len(), coded.len());
            let mut out = Vec::new();
            decode(&masked, &mut out).unwrap();
            prop_assert_eq!(&out[..keep], &text[..keep]);
            prop_assert!(out[keep..].iter().all(|&b| b == b'*'));
            prop_assert_eq!(out.len() - keep, (8 * coded.len() - keep_bits) / 8);
        }
    }

    #[test]
    fn bearer_scheme_ends_on_a_byte_boundary() {
        // So an `Authorization: Bearer …` value keeps its scheme byte for byte.
        assert_eq!(encode(b"Bearer ").len(), 5);
        let bits: usize = b"Bearer "
            .iter()
            .map(|&b| usize::from(CODES[usize::from(b)].1))
            .sum();
        assert_eq!(bits, 40);
        assert_eq!(encode(b"*"), [MASK_BYTE]);
    }
}
