//! Masking of secret header values inside one HTTP/2 direction's HPACK header blocks, as the
//! bytes go by, before they leave the collector.
//!
//! HTTP/2 carries headers as HPACK representations: a name (a static-table index, a
//! dynamic-table index or a string), then the value as a string, usually Huffman-coded. The
//! byte-level rules see no `Authorization: ` there, so an API key would leave in the clear.
//! This walks the direction's frames ([`agentscope_http2_wire::walker`]) and, inside header
//! blocks, each representation far enough to know the header's name before its value
//! arrives; a value whose name is secret (by the one classifier, [`is_secret_name`]) is
//! overwritten in place, its length kept and the block still decodable:
//! - a Huffman-coded value becomes bytes `0xf9` (the 8-bit code of `*`), a raw one `*`s;
//! - for `Authorization`-like names the scheme (`Bearer `, `Basic `) stays when it is in the
//!   same chunk as the value's start: raw, its bytes; coded, its bits, then `*` codes from the
//!   next bit on and padding (still whole bytes: see [`huffman::masked_byte`]);
//! - a value under another name is read with the byte-level rules too as it arrives (a Bearer
//!   token or JSON Web Token anywhere, `?key=` in `:path`): masked from the first secret
//!   character on (a raw value that arrives whole, exactly as those rules mask it).
//!
//! Names behind dynamic-table indices are known from a model of the sender's table kept here:
//! per entry only whether its name is secret, its name's length and its size, evicted as the
//! sender evicts (size updates included). The model never holds an entry size larger than
//! the sender's, so it never drops an entry the sender can still refer to. A name that cannot
//! be known — a dynamic entry from before the capture began (attached mid-connection, or
//! after lost bytes), an index past the table — counts as secret: its value is masked.
//! False positives are preferred to leaks.
//!
//! Reconstruction decodes the masked blocks: a masked entry enters its table masked, and
//! later references to it yield the masked value. A masked coded value decodes to one `*` per
//! byte, never more characters than it had when its characters' codes are at most 8 bits
//! (letters, digits, `-`, `_`, `.`), so reconstruction's table then holds at least the
//! sender's entries.

use std::collections::VecDeque;
use std::ops::Range;

use agentscope_http2_wire::frame::{flag, kind, FrameHeader};
use agentscope_http2_wire::hpack::{
    self, IntegerReader, Representation, DEFAULT_TABLE_BYTES, ENTRY_OVERHEAD, FIRST_DYNAMIC_INDEX,
};
use agentscope_http2_wire::huffman;
use agentscope_http2_wire::walker::{FrameWalker, Part, Step};

use crate::secret_names::{is_secret_name, NameContext};

/// Largest dynamic table modelled (4 KiB is what clients and servers use unless a peer
/// allows more). Of a larger table the newest `MAX_TABLE_BYTES` worth is kept; references past
/// them are unknown names (masked). Bounds the model at 512 entries of 12 bytes.
pub const MAX_TABLE_BYTES: usize = 16 << 10;
/// Names longer than the classifier reads (it judges at most 128 bytes) are not kept whole.
const MAX_NAME_BYTES: usize = 129;
/// Values under names that are not secret are read with the byte-level rules, each time a
/// piece arrives, up to this many characters (header values are short; this bounds the
/// memory, 8 KiB, and the cost of a value sent a byte at a time).
const MAX_INSPECTED_VALUE: usize = 1 << 10;
/// The longest scheme word kept (`AWS4-HMAC-SHA256` is 16), as in the byte-level rules.
const MAX_SCHEME_WORD: usize = 24;

/// Whether a header's value is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrecy {
    Plain,
    Secret,
    /// The name could not be known: masked like a secret.
    Unknown,
}

/// What is known of a header's name when its value starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Name {
    secrecy: Secrecy,
    /// An `Authorization`-like name: its scheme word may stay.
    keeps_scheme: bool,
    /// Its length (for the entry's size; never more than the sender's).
    len: u32,
}

impl Name {
    fn of(name: &[u8]) -> Self {
        let lower = name.to_ascii_lowercase();
        Self {
            secrecy: if is_secret_name(name, NameContext::Header) {
                Secrecy::Secret
            } else {
                Secrecy::Plain
            },
            keeps_scheme: memchr::memmem::find(&lower, b"authoriz").is_some() || lower == b"auth",
            len: u32::try_from(name.len()).unwrap_or(u32::MAX),
        }
    }

    const UNKNOWN: Self = Self {
        secrecy: Secrecy::Unknown,
        keeps_scheme: false,
        len: 0,
    };
}

/// One entry of the sender's dynamic table, as far as masking needs it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    name: Name,
    size: u32,
}

/// A model of the sender's dynamic table.
#[derive(Debug)]
struct Table {
    /// Newest first.
    entries: VecDeque<Entry>,
    size: usize,
    max: usize,
    /// Entries older than `entries` may exist that were never seen.
    older_unknown: bool,
}

impl Table {
    fn new(known: bool) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            // With the table unknown its size is too: assume the most, so entries seen from
            // now on are kept as long as the sender can hold them.
            max: if known {
                DEFAULT_TABLE_BYTES
            } else {
                MAX_TABLE_BYTES
            },
            older_unknown: !known,
        }
    }

    fn name_at(&self, index: usize) -> Name {
        match index.checked_sub(FIRST_DYNAMIC_INDEX) {
            None => hpack::static_entry(index).map_or(Name::UNKNOWN, |(name, _)| Name::of(name)),
            Some(at) => self.entries.get(at).map_or(Name::UNKNOWN, |e| e.name),
        }
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size as usize;
        if size > self.max {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max - size);
        self.size += size;
        self.entries.push_front(entry);
    }

    fn resize(&mut self, max: usize) {
        if max > MAX_TABLE_BYTES {
            self.older_unknown = true;
        }
        self.max = max.min(MAX_TABLE_BYTES);
        self.evict_to(self.max);
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            let Some(oldest) = self.entries.pop_back() else {
                break;
            };
            self.size -= oldest.size as usize;
            self.older_unknown = true;
        }
    }

    /// Everything seen is forgotten (a block could not be followed).
    fn lose(&mut self) {
        *self = Self::new(false);
    }
}

/// How a value's bytes are written out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// As sent.
    Keep,
    /// Masked from this bit of the string on (a symbol boundary when coded, a byte boundary
    /// when raw).
    MaskFrom(usize),
    /// A value under a name that is not secret, read with the byte-level rules as it
    /// arrives: its characters so far, each with the bit of the string it ends at.
    Inspect(Vec<(u8, u32)>),
}

/// Where the walk stands inside a header block.
#[derive(Debug)]
enum Field {
    /// Between representations.
    Start,
    /// Reading a representation's first integer (index, or new table size).
    Index {
        repr: Representation,
        int: IntegerReader,
    },
    /// Reading a string's length: the name's (`name` is `None`) or the value's.
    Length {
        repr: Representation,
        name: Option<Name>,
        int: Option<(bool, IntegerReader)>,
    },
    /// A literal name's bytes.
    NameBytes {
        repr: Representation,
        huffman: bool,
        left: usize,
        decoded: Vec<u8>,
        decoded_len: usize,
        reader: huffman::Reader,
        broken: bool,
    },
    /// A value's bytes.
    Value {
        repr: Representation,
        name: Name,
        huffman: bool,
        len: usize,
        index: usize,
        plan: Option<Plan>,
        reader: huffman::Reader,
        decoded_len: usize,
    },
    /// The block did not follow HPACK: its remaining bytes are masked.
    Broken,
}

/// One direction's header blocks.
#[derive(Debug)]
struct Blocks {
    table: Table,
    field: Field,
}

impl Blocks {
    fn start_block(&mut self) {
        if !matches!(self.field, Field::Start) {
            // The previous block never ended whole.
            self.table.lose();
        }
        self.field = Field::Start;
    }

    fn end_block(&mut self) {
        if !matches!(self.field, Field::Start) {
            self.table.lose();
        }
        self.field = Field::Start;
    }

    /// Masks the secret values in `bytes`, the next piece of a header block; returns how many
    /// values had bytes masked.
    fn feed(&mut self, bytes: &mut [u8]) -> usize {
        let mut masked = 0;
        let mut i = 0;
        while i < bytes.len() {
            let field = std::mem::replace(&mut self.field, Field::Start);
            self.field = match field {
                Field::Start => {
                    let (repr, prefix) = Representation::of(bytes[i]);
                    let int = IntegerReader::new(bytes[i], prefix);
                    i += 1;
                    self.after_index(repr, int)
                }
                Field::Index { repr, mut int } => {
                    let pushed = int.push(bytes[i]);
                    i += 1;
                    match pushed {
                        Ok(()) => self.after_index(repr, int),
                        Err(_) => self.broken(),
                    }
                }
                Field::Length { repr, name, int } => {
                    let byte = bytes[i];
                    i += 1;
                    let (huffman, int) = match int {
                        None => (byte & 0x80 != 0, Ok(IntegerReader::new(byte, 7))),
                        Some((huffman, mut int)) => (huffman, int.push(byte).map(|()| int)),
                    };
                    match int {
                        Err(_) => self.broken(),
                        Ok(int) if !int.done() => Field::Length {
                            repr,
                            name,
                            int: Some((huffman, int)),
                        },
                        Ok(int) => self.string_starts(repr, name, huffman, int.value()),
                    }
                }
                Field::NameBytes {
                    repr,
                    huffman,
                    mut left,
                    mut decoded,
                    mut decoded_len,
                    mut reader,
                    mut broken,
                } => {
                    let take = left.min(bytes.len() - i);
                    for &byte in &bytes[i..i + take] {
                        if !huffman {
                            decoded_len += 1;
                            if decoded.len() < MAX_NAME_BYTES {
                                decoded.push(byte);
                            }
                        } else if !broken {
                            broken = reader
                                .push(byte, |symbol, _| {
                                    decoded_len += 1;
                                    if decoded.len() < MAX_NAME_BYTES {
                                        decoded.push(symbol);
                                    }
                                })
                                .is_err();
                        }
                    }
                    i += take;
                    left -= take;
                    if left > 0 {
                        Field::NameBytes {
                            repr,
                            huffman,
                            left,
                            decoded,
                            decoded_len,
                            reader,
                            broken,
                        }
                    } else {
                        let name = if broken || (huffman && reader.finish().is_err()) {
                            Name::UNKNOWN
                        } else {
                            Name {
                                len: u32::try_from(decoded_len).unwrap_or(u32::MAX),
                                ..Name::of(&decoded)
                            }
                        };
                        Field::Length {
                            repr,
                            name: Some(name),
                            int: None,
                        }
                    }
                }
                Field::Value {
                    repr,
                    name,
                    huffman,
                    len,
                    mut index,
                    plan,
                    mut reader,
                    mut decoded_len,
                } => {
                    let take = (len - index).min(bytes.len() - i);
                    let piece = &mut bytes[i..i + take];
                    let piece_start = index;
                    let mut plan = plan.unwrap_or_else(|| {
                        let (plan, replaced) = decide(name, huffman, len, piece);
                        if let Some(replaced) = replaced {
                            piece.copy_from_slice(&replaced);
                            masked += 1;
                        }
                        if matches!(plan, Plan::MaskFrom(_)) {
                            masked += 1;
                        }
                        plan
                    });
                    // The characters, counted for the table (and kept while inspected).
                    let mut count_error = false;
                    for (j, &sent) in piece.iter().enumerate() {
                        let mut character = |symbol: u8, end: usize| {
                            decoded_len += 1;
                            if let Plan::Inspect(text) = &mut plan {
                                if text.len() < MAX_INSPECTED_VALUE {
                                    text.push((symbol, u32::try_from(end).unwrap_or(u32::MAX)));
                                }
                            }
                        };
                        if huffman {
                            count_error |= reader.push(sent, &mut character).is_err();
                        } else {
                            character(sent, 8 * (piece_start + j + 1));
                        }
                    }
                    plan = match plan {
                        Plan::Inspect(text) => {
                            let next = inspect(text, 8 * piece_start);
                            masked += usize::from(matches!(next, Plan::MaskFrom(_)));
                            next
                        }
                        other => other,
                    };
                    for byte in piece.iter_mut() {
                        if let Plan::MaskFrom(bit) = plan {
                            if huffman {
                                *byte = huffman::masked_byte(index, len, bit, *byte);
                            } else if 8 * index >= bit {
                                *byte = b'*';
                            }
                        }
                        index += 1;
                    }
                    i += take;
                    if count_error {
                        // Not Huffman: a decoder refuses the block; its length is unknowable.
                        self.table.lose();
                    }
                    if index < len {
                        Field::Value {
                            repr,
                            name,
                            huffman,
                            len,
                            index,
                            plan: Some(plan),
                            reader,
                            decoded_len,
                        }
                    } else {
                        self.value_ends(repr, name, decoded_len);
                        Field::Start
                    }
                }
                Field::Broken => {
                    bytes[i..].fill(b'*');
                    masked += 1;
                    i = bytes.len();
                    Field::Broken
                }
            };
        }
        masked
    }

    fn broken(&mut self) -> Field {
        self.table.lose();
        Field::Broken
    }

    /// A representation's first integer was read (or is still being read).
    fn after_index(&mut self, repr: Representation, int: IntegerReader) -> Field {
        if !int.done() {
            return Field::Index { repr, int };
        }
        let value = int.value();
        match repr {
            Representation::Indexed if value == 0 => self.broken(),
            Representation::Indexed => Field::Start,
            Representation::SizeUpdate => {
                self.table.resize(value);
                Field::Start
            }
            _ if value == 0 => Field::Length {
                repr,
                name: None,
                int: None,
            },
            _ => Field::Length {
                repr,
                name: Some(self.table.name_at(value)),
                int: None,
            },
        }
    }

    /// A string's length was read: the name's when `name` is `None`, else the value's.
    fn string_starts(
        &mut self,
        repr: Representation,
        name: Option<Name>,
        huffman: bool,
        len: usize,
    ) -> Field {
        match name {
            None if len == 0 => Field::Length {
                repr,
                name: Some(Name {
                    len: 0,
                    ..Name::of(b"")
                }),
                int: None,
            },
            None => Field::NameBytes {
                repr,
                huffman,
                left: len,
                decoded: Vec::new(),
                decoded_len: 0,
                reader: huffman::Reader::default(),
                broken: false,
            },
            Some(name) if len == 0 => {
                self.value_ends(repr, name, 0);
                Field::Start
            }
            Some(name) => Field::Value {
                repr,
                name,
                huffman,
                len,
                index: 0,
                plan: None,
                reader: huffman::Reader::default(),
                decoded_len: 0,
            },
        }
    }

    fn value_ends(&mut self, repr: Representation, name: Name, value_len: usize) {
        if repr == Representation::LiteralIndexed {
            // Sizes are at most the sender's, never more (see the module doc).
            let size = (name.len as usize)
                .saturating_add(value_len)
                .saturating_add(ENTRY_OVERHEAD);
            self.table.insert(Entry {
                name,
                size: u32::try_from(size).unwrap_or(u32::MAX),
            });
        }
    }
}

/// How a value is written out, decided from its first bytes (`visible`, the part of it in
/// this piece, as sent); for a raw value read whole, the bytes to write instead.
fn decide(name: Name, huffman: bool, len: usize, visible: &[u8]) -> (Plan, Option<Vec<u8>>) {
    match name.secrecy {
        Secrecy::Unknown => (Plan::MaskFrom(0), None),
        Secrecy::Secret => {
            let keep = if name.keeps_scheme {
                scheme_bits(huffman, len, visible)
            } else {
                0
            };
            (Plan::MaskFrom(keep), None)
        }
        // A raw value that arrived whole: masked exactly as the byte-level rules mask it.
        Secrecy::Plain if !huffman && visible.len() == len && len <= MAX_INSPECTED_VALUE => {
            let mut masked = visible.to_vec();
            if crate::redact_in_place(&mut masked) == 0 || masked == visible {
                (Plan::Keep, None)
            } else {
                (Plan::Keep, Some(masked))
            }
        }
        Secrecy::Plain => (Plan::Inspect(Vec::new()), None),
    }
}

/// The plan for a value under a name that is not secret, from its characters so far (`text`,
/// each with the bit it ends at): masked from its first character the byte-level rules mask
/// (a Bearer token, a JSON Web Token, `key=` in a path), or from the first character that
/// starts in this piece when that one began in a byte already written out. Inspection stops
/// (the rest is kept) past [`MAX_INSPECTED_VALUE`] characters.
fn inspect(text: Vec<(u8, u32)>, piece_start_bit: usize) -> Plan {
    if text.len() >= MAX_INSPECTED_VALUE {
        return Plan::Keep;
    }
    let plain: Vec<u8> = text.iter().map(|&(c, _)| c).collect();
    let mut masked = plain.clone();
    if crate::redact_in_place(&mut masked) == 0 {
        return Plan::Inspect(text);
    }
    let Some(first) = plain.iter().zip(&masked).position(|(a, b)| a != b) else {
        return Plan::Inspect(text);
    };
    let starts = std::iter::once(0).chain(text.iter().map(|&(_, end)| end as usize));
    match starts.skip(first).find(|&start| start >= piece_start_bit) {
        Some(start) => Plan::MaskFrom(start),
        None => Plan::Inspect(text),
    }
}

/// Bits of an `Authorization`-like value that are its scheme (`Bearer `), when the scheme
/// and at least one byte after it are in `visible`; `0` otherwise (all masked).
fn scheme_bits(huffman: bool, len: usize, visible: &[u8]) -> usize {
    // (character, bit it ends at)
    let mut symbols: Vec<(u8, usize)> = Vec::new();
    if huffman {
        let mut reader = huffman::Reader::default();
        for &byte in visible {
            if symbols.len() > MAX_SCHEME_WORD + 1
                || reader
                    .push(byte, |symbol, end| symbols.push((symbol, end)))
                    .is_err()
            {
                break;
            }
        }
    } else {
        symbols.extend(
            visible
                .iter()
                .take(MAX_SCHEME_WORD + 2)
                .enumerate()
                .map(|(i, &b)| (b, 8 * (i + 1))),
        );
    }
    let word = symbols
        .iter()
        .take_while(|(c, _)| c.is_ascii_alphanumeric() || *c == b'-')
        .count();
    match symbols.get(word) {
        Some(&(b' ', end)) if (1..=MAX_SCHEME_WORD).contains(&word) && end < 8 * len => end,
        _ => 0,
    }
}

/// One direction of an HTTP/2 connection, as the redactor follows it.
#[derive(Debug)]
pub struct Http2Direction {
    walker: FrameWalker,
    blocks: Blocks,
}

/// How a direction was recognised as HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http2Start {
    /// The client's preface: the client's direction from its first byte.
    ClientPreface,
    /// A server's first SETTINGS: the server's direction from its first byte.
    ServerSettings,
    /// Frames, on a connection already under way: the sender's table is unknown.
    MidConnection,
}

impl Http2Direction {
    pub fn new(start: Http2Start) -> Self {
        Self {
            walker: FrameWalker::new(start == Http2Start::ClientPreface, usize::MAX),
            blocks: Blocks {
                table: Table::new(start != Http2Start::MidConnection),
                field: Field::Start,
            },
        }
    }

    /// The frame boundaries are unknown (broken framing, or bytes lost).
    pub fn is_lost(&self) -> bool {
        self.walker.is_lost()
    }

    /// Bytes of the direction were lost: nothing further can be followed.
    pub fn lose(&mut self) {
        self.walker.lose();
    }

    /// Masks the secret header values in `chunk`, the direction's next bytes; returns how
    /// many values had bytes masked. `text` receives the ranges the byte-level rules must
    /// still read: DATA payloads and control frames' payloads (never frame headers or header
    /// blocks, which those rules would break), and everything after the framing was lost.
    pub fn redact(&mut self, chunk: &mut [u8], text: &mut Vec<Range<usize>>) -> usize {
        let mut masked = 0;
        let mut at = 0;
        while let Some(step) = self.walker.next(chunk, &mut at) {
            match step {
                Step::Bytes { part, range } => match part {
                    Part::HeaderBlock => masked += self.blocks.feed(&mut chunk[range]),
                    Part::Data | Part::Payload => push_range(text, range),
                    Part::Preface | Part::Header | Part::Fields | Part::Padding => {}
                },
                Step::Start(header) => {
                    if matches!(header.kind, kind::HEADERS | kind::PUSH_PROMISE) {
                        self.blocks.start_block();
                    }
                }
                Step::End(header) => {
                    if ends_block(&header) {
                        self.blocks.end_block();
                    }
                }
                Step::Error(_) => {
                    self.blocks.table.lose();
                    break;
                }
            }
        }
        if at < chunk.len() {
            push_range(text, at..chunk.len());
        }
        masked
    }
}

fn ends_block(header: &FrameHeader) -> bool {
    header.carries_header_block() && header.has(flag::END_HEADERS)
}

fn push_range(ranges: &mut Vec<Range<usize>>, range: Range<usize>) {
    match ranges.last_mut() {
        Some(last) if last.end == range.start => last.end = range.end,
        _ => ranges.push(range),
    }
}

#[cfg(test)]
mod tests;
