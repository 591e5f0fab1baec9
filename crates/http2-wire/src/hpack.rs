//! HPACK's representations (RFC 7541 §5, §6): integers with an N-bit prefix, string
//! literals, the kind of each field representation, and the static table. Whole header blocks
//! are decoded by reconstruction (with `loona-hpack`); redaction walks a block's
//! representations as its bytes arrive, to find each header's name before its value.

/// How a field representation starts (RFC 7541 §6), from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// `1xxxxxxx`: an indexed field, nothing follows the index.
    Indexed,
    /// `01xxxxxx`: a literal added to the dynamic table.
    LiteralIndexed,
    /// `0000xxxx`: a literal not added to the table.
    LiteralNotIndexed,
    /// `0001xxxx`: a literal never to be indexed (what careful encoders use for credentials).
    LiteralNeverIndexed,
    /// `001xxxxx`: a dynamic table size update.
    SizeUpdate,
}

impl Representation {
    /// The representation a first byte starts, and its integer's prefix length in bits.
    pub fn of(first: u8) -> (Self, u8) {
        if first & 0x80 != 0 {
            (Self::Indexed, 7)
        } else if first & 0x40 != 0 {
            (Self::LiteralIndexed, 6)
        } else if first & 0x20 != 0 {
            (Self::SizeUpdate, 5)
        } else if first & 0x10 != 0 {
            (Self::LiteralNeverIndexed, 4)
        } else {
            (Self::LiteralNotIndexed, 4)
        }
    }

    /// Whether a name (indexed or literal) and a value string follow the integer.
    pub fn is_literal(self) -> bool {
        matches!(
            self,
            Self::LiteralIndexed | Self::LiteralNotIndexed | Self::LiteralNeverIndexed
        )
    }
}

/// Continuation bytes an integer may take here: 4 carry 28 bits, more than any length or index
/// a bounded block can hold.
pub const MAX_INTEGER_CONTINUATIONS: usize = 4;

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1): value and bytes used; `None` when
/// `bytes` end before it does, or it runs past [`MAX_INTEGER_CONTINUATIONS`].
pub fn integer(bytes: &[u8], prefix: u8) -> Option<(usize, usize)> {
    let mut reader = IntegerReader::new(*bytes.first()?, prefix);
    let mut used = 1;
    while !reader.done() {
        reader.push(*bytes.get(used)?).ok()?;
        used += 1;
    }
    Some((reader.value(), used))
}

/// An integer ran past [`MAX_INTEGER_CONTINUATIONS`] continuation bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegerTooLong;

/// An HPACK integer read a byte at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegerReader {
    value: usize,
    continuations: usize,
    done: bool,
}

impl IntegerReader {
    /// Starts with the representation's first byte and its prefix length.
    pub fn new(first: u8, prefix: u8) -> Self {
        let mask = (1usize << prefix) - 1;
        let value = usize::from(first) & mask;
        Self {
            value,
            continuations: 0,
            done: value < mask,
        }
    }

    pub fn done(&self) -> bool {
        self.done
    }

    pub fn value(&self) -> usize {
        self.value
    }

    /// One continuation byte; `Err` when the integer runs too long.
    pub fn push(&mut self, byte: u8) -> Result<(), IntegerTooLong> {
        if self.continuations >= MAX_INTEGER_CONTINUATIONS {
            return Err(IntegerTooLong);
        }
        self.value += usize::from(byte & 0x7f) << (7 * self.continuations);
        self.continuations += 1;
        self.done = byte & 0x80 == 0;
        if !self.done && self.continuations >= MAX_INTEGER_CONTINUATIONS {
            return Err(IntegerTooLong);
        }
        Ok(())
    }
}

/// Appends an HPACK integer with an N-bit prefix whose other bits are zero.
pub fn push_integer(out: &mut Vec<u8>, prefix: u8, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// The first index past the static table: indices from here name dynamic-table entries,
/// newest first.
pub const FIRST_DYNAMIC_INDEX: usize = 62;

/// Bytes an entry takes in the dynamic table besides its name and value (RFC 7541 §4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// The dynamic table's size until a size update changes it (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_BYTES: usize = 4096;

/// The static table entry at `index` (1-based), name and value.
pub fn static_entry(index: usize) -> Option<(&'static [u8], &'static [u8])> {
    STATIC_TABLE.get(index.checked_sub(1)?).copied()
}

/// The static table (RFC 7541 Appendix A), 1-based through [`static_entry`]. `loona-hpack`
/// keeps its copy private.
pub static STATIC_TABLE: &[(&[u8], &[u8])] = &[
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_overlong_ones_are_refused() {
        for prefix in [4u8, 5, 6, 7] {
            for value in [
                0usize,
                1,
                14,
                15,
                30,
                31,
                62,
                63,
                126,
                127,
                128,
                1337,
                4096,
                1 << 20,
            ] {
                let mut out = Vec::new();
                push_integer(&mut out, prefix, value);
                assert_eq!(
                    integer(&out, prefix),
                    Some((value, out.len())),
                    "{value}/{prefix}"
                );
                assert_eq!(
                    integer(&out[..out.len() - 1], prefix).filter(|_| out.len() > 1),
                    None
                );
            }
        }
        assert_eq!(integer(&[0x7f, 0x80, 0x80, 0x80, 0x80, 0x01], 7), None);
        assert_eq!(static_entry(23).unwrap().0, b"authorization");
        assert_eq!(static_entry(61).unwrap().0, b"www-authenticate");
        assert!(static_entry(62).is_none() && static_entry(0).is_none());
        assert_eq!(Representation::of(0x82), (Representation::Indexed, 7));
        assert_eq!(
            Representation::of(0x10).0,
            Representation::LiteralNeverIndexed
        );
    }
}
