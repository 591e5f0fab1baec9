//! Finds and masks secrets in one buffer, and says which secret value (if any) the buffer ends
//! inside, so a stream can keep masking it in the next chunk.
//!
//! Hand-written rather than built on a regex crate: every pattern needs a look-back (the name
//! before `=`, `:` or a quote), a classifier call on the name, escape-aware scanning of the value
//! (JSON strings nested in JSON strings) and, at the end of the buffer, the state to carry on.
//! Each detector reads the original bytes and writes `*` over the value in the output, keeping
//! lengths; a value that runs into the end of the buffer is masked to the end (failing closed
//! where a secret is only recognised later, such as the password of `scheme://user:pw@`).

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::packed;
use memchr::memmem::Finder;

use super::secret_names::{is_secret_name, NameContext};

/// The fixed strings the detectors look for inside what they found, each searcher built once:
/// a scan runs for every payload chunk and every parsed header value, and building a
/// `memmem::Finder` costs more than searching a header line with it.
struct Needles {
    authoriz: Finder<'static>,
    by: Finder<'static>,
    pem_dashes: Finder<'static>,
    private_key: Finder<'static>,
    pem_end: Finder<'static>,
}

static NEEDLES: LazyLock<Needles> = LazyLock::new(|| Needles {
    authoriz: Finder::new(b"authoriz"),
    by: Finder::new(b" by "),
    pem_dashes: Finder::new(b"-----"),
    private_key: Finder::new(b"PRIVATE KEY"),
    pem_end: Finder::new(b"-----END "),
});

/// What the detectors look for across the whole buffer, each where it starts.
#[derive(Clone, Copy)]
enum Landmark {
    SchemeEnd,
    Password,
    Identified,
    Bearer,
    Jwt,
    PemBegin,
}

/// Each landmark as it reads in the buffer's lower-case copy: all are searched in one pass
/// over it (a scan of an 8 KiB prompt spent a third of its time in six separate searches). A
/// JWT's `eyJ` and PEM's `-----BEGIN ` are case-sensitive, so their matches are checked
/// against the original bytes. No two of these can overlap (no end of one is the start of
/// another or of itself), so a search that reports matches without overlap misses none.
const LANDMARKS: [(Landmark, &str); 6] = [
    (Landmark::SchemeEnd, "://"),
    (Landmark::Password, "password"),
    (Landmark::Identified, "identified"),
    (Landmark::Bearer, "bearer "),
    (Landmark::Jwt, "eyj"),
    (Landmark::PemBegin, "-----begin "),
];

/// The one-pass search (SIMD Teddy); `None` where the CPU has no instructions for it.
static LANDMARK_SEARCH: LazyLock<Option<packed::Searcher>> =
    LazyLock::new(|| packed::Searcher::new(LANDMARKS.iter().map(|(_, text)| text)));

/// The fallback: one search per landmark.
static LANDMARK_FINDERS: LazyLock<Vec<Finder<'static>>> = LazyLock::new(|| {
    LANDMARKS
        .iter()
        .map(|(_, text)| Finder::new(text.as_bytes()))
        .collect()
});

/// Where each landmark starts in a buffer, in order.
#[derive(Default, Debug, PartialEq, Eq)]
struct Landmarks {
    scheme_ends: Vec<usize>,
    passwords: Vec<usize>,
    identified: Vec<usize>,
    bearers: Vec<usize>,
    jwts: Vec<usize>,
    pem_begins: Vec<usize>,
}

impl Landmarks {
    fn find(original: &[u8], lower: &[u8]) -> Landmarks {
        Landmarks::find_with(original, lower, LANDMARK_SEARCH.as_ref())
    }

    fn find_with(original: &[u8], lower: &[u8], search: Option<&packed::Searcher>) -> Landmarks {
        let mut marks = Landmarks::default();
        let mut add = |pattern: usize, at: usize| {
            let (landmark, _) = LANDMARKS[pattern];
            let list = match landmark {
                Landmark::SchemeEnd => &mut marks.scheme_ends,
                Landmark::Password => &mut marks.passwords,
                Landmark::Identified => &mut marks.identified,
                Landmark::Bearer => &mut marks.bearers,
                Landmark::Jwt if original[at..].starts_with(b"eyJ") => &mut marks.jwts,
                Landmark::PemBegin if original[at..].starts_with(b"-----BEGIN ") => {
                    &mut marks.pem_begins
                }
                Landmark::Jwt | Landmark::PemBegin => return,
            };
            list.push(at);
        };
        match search {
            Some(search) => {
                for found in search.find_iter(lower) {
                    add(found.pattern().as_usize(), found.start());
                }
            }
            None => {
                // Each list in order, as the one pass gives them.
                for (pattern, finder) in LANDMARK_FINDERS.iter().enumerate() {
                    for at in finder.find_iter(lower) {
                        add(pattern, at);
                    }
                }
            }
        }
        marks
    }
}

/// A secret value the buffer ended inside: how to find its end in the next bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenValue {
    /// A header-style value: ends at CR or LF (or at a backslash when the line was inside a
    /// JSON string, where line ends are written `\r\n`).
    Line { escaped: bool },
    /// A quoted string whose closing quote is preceded by `level` backslashes (0 for plain
    /// JSON, 1 for JSON inside a JSON string, …); `run` counts the backslashes just seen,
    /// modulo the escape period.
    Quoted { quote: u8, level: u8, run: u8 },
    /// An unquoted value (query, form, `NAME=value`): ends at whitespace, `&`, `;`, a quote.
    Bare,
    /// A token (Bearer, JSON Web Token): ends at the first byte that cannot be in one.
    Token,
    /// The body of a PEM private key: ends at the `-----END` line.
    Pem,
    /// The password of `scheme://user:password@`: ends at `@` (or at `/`, when it was a port).
    UserInfo,
    /// Bytes right after bytes the stream lost: the lost bytes may have held a secret's name
    /// (`"pass` of `"password":"…"`, `Cook` of `Cookie:`), so whatever follows may be its
    /// value, however it looks. Ends at a line feed: names and values of headers, query
    /// strings, form and JSON fields stand on one line (see stream.rs for where a message
    /// start ends it sooner).
    AfterLoss,
}

impl OpenValue {
    /// How many leading bytes of `next` still belong to the value, and whether it is still open
    /// after them.
    pub fn continue_in(self, next: &[u8]) -> (usize, Option<OpenValue>) {
        let n = next.len();
        let until = |stop: &dyn Fn(u8) -> bool| match next.iter().position(|&b| stop(b)) {
            Some(p) => (p, None),
            None => (n, Some(self)),
        };
        match self {
            OpenValue::Line { escaped } => {
                until(&|b| b == b'\r' || b == b'\n' || (escaped && b == b'\\'))
            }
            OpenValue::Quoted { quote, level, run } => {
                let period = 2 * (usize::from(level) + 1);
                let level = usize::from(level);
                let mut run = usize::from(run);
                for (i, &b) in next.iter().enumerate() {
                    if b == b'\\' {
                        run += 1;
                        continue;
                    }
                    if b == quote && run % period == level {
                        return (i.saturating_sub(level), None);
                    }
                    run = 0;
                }
                // Trailing backslashes may be the closing quote's escape: leave them.
                let trailing = next.iter().rev().take_while(|&&b| b == b'\\').count();
                (
                    n - trailing,
                    Some(OpenValue::Quoted {
                        quote,
                        level: level as u8,
                        run: (run % period) as u8,
                    }),
                )
            }
            OpenValue::Bare => until(&bare_value_ends),
            OpenValue::Token => until(&|b| !token_byte(b)),
            OpenValue::Pem => until(&|b| b == b'-'),
            OpenValue::UserInfo => until(&|b| b == b'@' || userinfo_ends(b)),
            OpenValue::AfterLoss => until(&|b| b == b'\n'),
        }
    }
}

/// What a scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Values masked (that had a byte not already `*`).
    pub count: usize,
    /// The value the buffer ends inside, if any.
    pub open: Option<OpenValue>,
}

/// Masks every secret found in `buf`.
pub fn scan(buf: &mut [u8]) -> Scan {
    let found = find(buf, &mut Vec::new());
    Scan {
        count: found.mask_from(0, buf),
        open: found.open,
    }
}

/// What the detectors found in a buffer: the values to mask, in the order found, and the value
/// the buffer ends inside. Found first and written after, so the detectors read the buffer as
/// it came (one detector's masking never hides a pattern from another) without a copy of it.
pub(crate) struct Found {
    masks: Vec<Range<usize>>,
    /// The value the buffer ends inside, if any.
    pub open: Option<OpenValue>,
}

impl Found {
    /// Writes `*` over the masked bytes at or after `from` in the buffer they were found in,
    /// whose bytes from `from` on are `tail` (the whole buffer when `from` is 0); returns how
    /// many values had a byte there not already `*`.
    pub fn mask_from(&self, from: usize, tail: &mut [u8]) -> usize {
        let mut count = 0;
        for range in &self.masks {
            let (start, end) = (range.start.max(from) - from, range.end.saturating_sub(from));
            if start < end {
                let masked = &mut tail[start..end];
                if masked.iter().any(|&b| b != b'*') {
                    masked.fill(b'*');
                    count += 1;
                }
            }
        }
        count
    }
}

/// Finds the secrets in `buf`; `lower` is room for its lower-case copy (reused by a caller
/// that scans often, so the copy allocates nothing).
pub(crate) fn find(buf: &[u8], lower: &mut Vec<u8>) -> Found {
    lower.clear();
    lower.extend(buf.iter().map(u8::to_ascii_lowercase));
    let marks = Landmarks::find(buf, lower);
    let mut masker = Masker {
        original: buf,
        lower,
        marks,
        found: Found {
            masks: Vec::new(),
            open: None,
        },
    };
    masker.header_lines();
    masker.quoted_fields();
    masker.assignments();
    masker.userinfo();
    masker.sql_passwords();
    masker.bearer_tokens();
    masker.jwts();
    masker.private_keys();
    masker.found
}

struct Masker<'a> {
    /// The bytes as they came (nothing is written to them while the detectors run).
    original: &'a [u8],
    lower: &'a [u8],
    /// Where the whole-buffer detectors start; each takes its own list.
    marks: Landmarks,
    found: Found,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

fn bare_value_ends(b: u8) -> bool {
    b <= b' '
        || matches!(
            b,
            b'&' | b';' | b'"' | b'\'' | b'\\' | b'<' | b'>' | b'`' | 0x7f
        )
}

fn userinfo_ends(b: u8) -> bool {
    b <= b' '
        || matches!(
            b,
            b'/' | b'?' | b'#' | b'"' | b'\'' | b'\\' | b'<' | b'>' | b'`'
        )
}

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

impl Masker<'_> {
    fn len(&self) -> usize {
        self.original.len()
    }

    /// Masks `start..end`; when the value reaches the end of the buffer, `open` says how it
    /// goes on.
    fn mask(&mut self, start: usize, end: usize, open: Option<OpenValue>) {
        let end = end.min(self.len());
        if start < end {
            self.found.masks.push(start..end);
        }
        if end == self.len() && start <= end && open.is_some() {
            self.found.open = open;
        }
    }

    /// Masks `start..end` of a value whose scan said whether it is still `open`.
    fn mask_value(&mut self, start: usize, end: usize, open: Option<OpenValue>) {
        self.mask(start, end, None);
        if open.is_some() {
            self.found.open = open;
        }
    }

    /// `Name: value` lines (HTTP headers, YAML, a header printed inside a JSON string).
    fn header_lines(&mut self) {
        let n = self.len();
        // Read through a copy of the reference, so the searches run alongside the masking
        // (nothing is collected first: this runs for every header value and payload chunk).
        let original = self.original;
        let starts = std::iter::once((0, false))
            .chain(memchr::memchr_iter(b'\n', original).map(|p| (p + 1, false)))
            // `\n` (a line end inside a JSON string), found by its backslash: rarer than any
            // letter, and one byte is searched faster than two.
            .chain(
                memchr::memchr_iter(b'\\', original)
                    .filter(|&p| original.get(p + 1) == Some(&b'n'))
                    .map(|p| (p + 2, true)),
            );
        for (start, escaped) in starts {
            let mut i = start;
            while i < n && i - start < 16 && matches!(self.original[i], b' ' | b'\t') {
                i += 1;
            }
            let name_start = i;
            while i < n && i - name_start <= 64 && name_byte(self.original[i]) {
                i += 1;
            }
            if i == name_start || i >= n || self.original[i] != b':' {
                continue;
            }
            if self.original[i + 1..].starts_with(b"//") {
                continue;
            }
            let name = &self.original[name_start..i];
            if !is_secret_name(name, NameContext::Header) {
                continue;
            }
            let mut value = i + 1;
            while value < n && matches!(self.original[value], b' ' | b'\t') {
                value += 1;
            }
            if value == n {
                // Not started: the next chunk's scan still has the name in its window.
                continue;
            }
            let end = self.original[value..]
                .iter()
                .position(|&b| b == b'\r' || b == b'\n' || (escaped && b == b'\\'))
                .map_or(n, |p| value + p);
            let keeps_scheme = NEEDLES.authoriz.find(&self.lower[name_start..i]).is_some()
                || self.lower[name_start..i].eq_ignore_ascii_case(b"auth");
            if keeps_scheme {
                // `Bearer `, `Basic `, `AWS4-HMAC-SHA256 ` stay so a reader sees the kind.
                let word = self.original[value..end]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
                    .count();
                if (1..=24).contains(&word)
                    && self.original.get(value + word) == Some(&b' ')
                    && value + word + 1 < end
                {
                    value += word + 1;
                }
            }
            self.mask(value, end, Some(OpenValue::Line { escaped }));
        }
    }

    /// `"name": "value"` in JSON (also nested in JSON strings, quotes escaped once or more) and
    /// `'name': 'value'` in Python reprs; also the `value` of an entry whose `name` or `key`
    /// is a secret name.
    fn quoted_fields(&mut self) {
        let n = self.len();
        let colons = memchr::memchr_iter(b':', self.original);
        let mut value_named_secret_until = 0;
        // Values already scanned: a colon inside one is not a key's (and rescanning from each
        // would be quadratic on hostile input).
        let mut done = 0;
        for colon in colons {
            if colon < done {
                continue;
            }
            let mut j = colon;
            while j > 0 && colon - j < 8 && is_space(self.original[j - 1]) {
                j -= 1;
            }
            if j == 0 {
                continue;
            }
            let quote = self.original[j - 1];
            if quote != b'"' && quote != b'\'' {
                continue;
            }
            let close = j - 1;
            let level = self.original[..close]
                .iter()
                .rev()
                .take(8)
                .take_while(|&&b| b == b'\\')
                .count();
            if !matches!(level, 0 | 1 | 3 | 7) || (quote == b'\'' && level != 0) {
                continue;
            }
            let name_end = close - level;
            let Some(open_quote) = self.original[name_end.saturating_sub(128)..name_end]
                .iter()
                .rposition(|&b| b == quote || b == b'\\')
                .map(|p| name_end.saturating_sub(128) + p)
            else {
                continue;
            };
            if self.original[open_quote] != quote {
                // A backslash inside the name: it is the opening quote's escape, or not a key.
                continue;
            }
            let escapes = self.original[..open_quote]
                .iter()
                .rev()
                .take(8)
                .take_while(|&&b| b == b'\\')
                .count();
            if escapes != level {
                continue;
            }
            let name = &self.original[open_quote + 1..name_end];
            let secret = is_secret_name(name, NameContext::Field)
                || (colon < value_named_secret_until && name.eq_ignore_ascii_case(b"value"));
            let names_an_entry =
                name.eq_ignore_ascii_case(b"name") || name.eq_ignore_ascii_case(b"key");
            if !secret && !names_an_entry {
                continue;
            }
            let mut v = colon + 1;
            while v < n && is_space(self.original[v]) {
                v += 1;
            }
            let opening = v + level;
            if opening >= n {
                continue;
            }
            if self.original[v..opening].iter().any(|&b| b != b'\\')
                || self.original[opening] != quote
            {
                continue;
            }
            let start = opening + 1;
            let value = OpenValue::Quoted {
                quote,
                level: level as u8,
                run: 0,
            };
            let (len, open) = value.continue_in(&self.original[start..]);
            done = start + len;
            if secret {
                self.mask_value(start, start + len, open);
                value_named_secret_until = 0;
            } else if is_secret_name(&self.original[start..start + len], NameContext::Field) {
                // `{"name": "DB_PASSWORD", "value": "…"}` (Kubernetes env, AWS tags): the
                // entry's `value` nearby is the secret.
                value_named_secret_until = start + len + 256;
            } else {
                value_named_secret_until = 0;
            }
        }
    }

    /// `name=value`: query strings, form bodies, `NAME=value` in a shell command, libpq
    /// keyword connection strings, `--flag=value`.
    fn assignments(&mut self) {
        let n = self.len();
        let equals = memchr::memchr_iter(b'=', self.original);
        let mut done = 0;
        for eq in equals {
            if eq < done {
                continue;
            }
            let next = self.original.get(eq + 1).copied();
            if matches!(next, Some(b'=' | b'>'))
                || (eq > 0 && matches!(self.original[eq - 1], b'=' | b'!' | b'<' | b'>'))
            {
                continue;
            }
            let mut j = eq;
            while j > 0 && eq - j < 2 && self.original[j - 1] == b' ' {
                j -= 1;
            }
            let name_end = j;
            while j > 0 && name_end - j <= 64 && assignment_name_byte(self.original[j - 1]) {
                j -= 1;
            }
            if j == name_end || (j > 0 && assignment_name_byte(self.original[j - 1])) {
                continue;
            }
            let name = &self.original[j..name_end];
            let context = if (j > 0 && matches!(self.original[j - 1], b'?' | b'&' | b';'))
                || name.starts_with(b"-")
            {
                NameContext::Parameter
            } else {
                NameContext::Field
            };
            if !is_secret_name(name, context) {
                continue;
            }
            let mut v = eq + 1;
            while v < n && v - eq <= 2 && self.original[v] == b' ' {
                v += 1;
            }
            if v >= n {
                continue;
            }
            let (start, opened) = match self.original[v] {
                q @ (b'"' | b'\'') => (
                    v + 1,
                    OpenValue::Quoted {
                        quote: q,
                        level: 0,
                        run: 0,
                    },
                ),
                b'\\' if self.original.get(v + 1) == Some(&b'"') => (
                    v + 2,
                    OpenValue::Quoted {
                        quote: b'"',
                        level: 1,
                        run: 0,
                    },
                ),
                _ => (v, OpenValue::Bare),
            };
            let (len, open) = opened.continue_in(&self.original[start..]);
            done = start + len;
            self.mask_value(start, start + len, open);
        }
    }

    /// `scheme://user:password@host` (PostgreSQL, MySQL, Redis, MongoDB, AMQP, HTTP…).
    fn userinfo(&mut self) {
        let n = self.len();
        let found = std::mem::take(&mut self.marks.scheme_ends);
        for at in found {
            let from = at + 3;
            let mut colon = None;
            let mut at_sign = None;
            let mut i = from;
            while i < n && i - from < 512 {
                let b = self.original[i];
                if b == b'@' {
                    at_sign = Some(i);
                } else if b == b':' && colon.is_none() && at_sign.is_none() {
                    colon = Some(i);
                } else if userinfo_ends(b) {
                    break;
                }
                i += 1;
            }
            let Some(colon) = colon else { continue };
            match at_sign {
                Some(at_sign) if at_sign > colon => self.mask(colon + 1, at_sign, None),
                None if i == n => self.mask(colon + 1, n, Some(OpenValue::UserInfo)),
                _ => {}
            }
        }
    }

    /// `ALTER USER … PASSWORD 'x'`, `CREATE ROLE … PASSWORD 'x'`, MySQL `IDENTIFIED BY 'x'`,
    /// `SET PASSWORD = 'x'`.
    fn sql_passwords(&mut self) {
        let mut value_starts = Vec::new();
        for &at in &self.marks.passwords {
            value_starts.push(at + b"password".len());
        }
        for &at in &self.marks.identified {
            let end = (at + 96).min(self.len());
            if let Some(by) = NEEDLES.by.find(&self.lower[at..end]) {
                value_starts.push(at + by + 3);
            }
        }
        value_starts.sort_unstable();
        let mut done = 0;
        for after in value_starts {
            if after < done {
                continue;
            }
            let mut v = after;
            let mut spaced = false;
            while v < self.len()
                && v - after < 8
                && matches!(self.original[v], b' ' | b'\t' | b'\n' | b'=')
            {
                spaced = true;
                v += 1;
            }
            if !spaced || v >= self.len() {
                continue;
            }
            if matches!(self.original[v], b'E' | b'e') && self.original.get(v + 1) == Some(&b'\'') {
                v += 1;
            }
            if self.original[v] != b'\'' {
                continue;
            }
            let start = v + 1;
            // SQL doubles a quote inside a string: `''` does not end it.
            let mut end = start;
            loop {
                match memchr::memchr(b'\'', &self.original[end..]) {
                    Some(p) if self.original.get(end + p + 1) == Some(&b'\'') => end += p + 2,
                    Some(p) => {
                        end += p;
                        break;
                    }
                    None => {
                        end = self.len();
                        break;
                    }
                }
            }
            done = end;
            self.mask(
                start,
                end,
                Some(OpenValue::Quoted {
                    quote: b'\'',
                    level: 0,
                    run: 0,
                }),
            );
        }
    }

    /// `Bearer <token>` anywhere (a tool result that printed a header, a shell command line):
    /// the token goes, the scheme stays.
    fn bearer_tokens(&mut self) {
        let found = std::mem::take(&mut self.marks.bearers);
        for at in found {
            let start = at + b"bearer ".len();
            let end = start
                + self.original[start..]
                    .iter()
                    .take_while(|b| token_byte(**b))
                    .count();
            // Short words after "bearer " are prose, not credentials; but a token cut by the
            // end of the buffer may be long once it is whole.
            if end - start >= 16 || (end == self.len() && end > start) {
                self.mask(start, end, Some(OpenValue::Token));
            }
        }
    }

    /// JSON Web Tokens (service-account tokens, OIDC tokens) wherever they appear: three
    /// base64url segments, the first starting `eyJ` (`{"` encoded).
    fn jwts(&mut self) {
        let n = self.len();
        let segment = |from: usize| {
            self.original[from.min(n)..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                .count()
        };
        let starts = std::mem::take(&mut self.marks.jwts);
        let mut done = 0;
        let mut masks = Vec::new();
        for at in starts {
            let before = at.checked_sub(1).map(|p| self.original[p]);
            if at < done || before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-') {
                continue;
            }
            let header = segment(at);
            let dot1 = at + header;
            if dot1 == n {
                masks.push((at, n));
                continue;
            }
            if header < 10 || self.original[dot1] != b'.' {
                continue;
            }
            let payload = segment(dot1 + 1);
            let dot2 = dot1 + 1 + payload;
            if dot2 == n {
                masks.push((at, n));
                continue;
            }
            if payload < 10 || self.original[dot2] != b'.' {
                continue;
            }
            let end = dot2 + 1 + segment(dot2 + 1);
            masks.push((at, end));
            done = end;
        }
        for (start, end) in masks {
            self.mask(start, end, Some(OpenValue::Token));
        }
    }

    /// PEM private keys (`-----BEGIN … PRIVATE KEY-----`): the key material between the armour
    /// lines goes, up to the end line or the end of the buffer.
    fn private_keys(&mut self) {
        let n = self.len();
        let starts = std::mem::take(&mut self.marks.pem_begins);
        let mut done = 0;
        for at in starts {
            if at < done {
                continue;
            }
            let label_from = at + b"-----BEGIN ".len();
            let label_to = (at + 80).min(n);
            let Some(close) = NEEDLES
                .pem_dashes
                .find(&self.original[label_from..label_to])
            else {
                continue;
            };
            let label = &self.original[label_from..label_from + close];
            if NEEDLES.private_key.find(label).is_none() {
                continue;
            }
            let start = label_from + close + 5;
            let end = NEEDLES
                .pem_end
                .find(&self.original[start..])
                .map_or(n, |p| start + p);
            done = end;
            self.mask(start, end, Some(OpenValue::Pem));
        }
    }
}

fn assignment_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'[' | b']')
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_one_pass_and_the_fallback_find_the_same_landmarks() {
        let text = "GET https://u:PassWord@h/ x://y IDENTIFIED BY 'x' Bearer eyJhbGciOi eyj EYJ \
                    -----BEGIN RSA PRIVATE KEY----- -----begin x ://://passwordpassword \
                    bearer bearer identifiedidentified eyJeyJ -----BEGIN -----BEGIN ";
        for text in [text, "", "eyJ", "://", "short password"] {
            let original = text.as_bytes();
            let lower = original.to_ascii_lowercase();
            let one_pass = Landmarks::find_with(original, &lower, LANDMARK_SEARCH.as_ref());
            assert!(
                LANDMARK_SEARCH.is_some(),
                "this machine has the SIMD search"
            );
            assert_eq!(
                one_pass,
                Landmarks::find_with(original, &lower, None),
                "{text}"
            );
        }
        let text = text.as_bytes();
        let marks = Landmarks::find(text, &text.to_ascii_lowercase());
        assert_eq!(marks.scheme_ends.len(), 4);
        assert_eq!(marks.passwords.len(), 3);
        assert_eq!(marks.identified.len(), 3);
        assert_eq!(marks.bearers.len(), 3);
        assert_eq!(marks.jwts.len(), 3, "eyJ only in that case");
        assert_eq!(marks.pem_begins.len(), 3, "-----BEGIN only in capitals");
    }

    use super::*;

    /// Masks `text` and checks `secret` is gone and every `kept` piece is still there.
    fn check(text: &str, secret: &str, kept: &[&str]) {
        let mut buf = text.as_bytes().to_vec();
        scan(&mut buf);
        let out = String::from_utf8(buf).unwrap();
        assert_eq!(out.len(), text.len(), "lengths kept");
        assert!(!out.contains(secret), "{secret:?} survived in {out}");
        for piece in kept {
            assert!(out.contains(piece), "{piece:?} lost in {out}");
        }
    }

    #[test]
    fn cookies_and_token_headers() {
        check(
            "GET / HTTP/1.1\r\nCookie: theme=dark; sid=c00kieV4lue\r\nHost: h\r\n",
            "c00kieV4lue",
            &["Cookie: ", "Host: h"],
        );
        check(
            "HTTP/1.1 200 OK\r\nSet-Cookie: sid=c00kieV4lue; Path=/\r\n\r\n",
            "c00kieV4lue",
            &["Set-Cookie: "],
        );
        for name in [
            "X-Amz-Security-Token",
            "X-Auth-Token",
            "Private-Token",
            "X-Vault-Token",
            "Ocp-Apim-Subscription-Key",
        ] {
            check(&format!("{name}: t0kenV4lue\r\n"), "t0kenV4lue", &[name]);
        }
        check(
            "Authorization: Bearer sk-abc\r\n",
            "sk-abc",
            &["Authorization: Bearer "],
        );
        // A header printed inside a JSON string.
        check(
            r#"{"out": "HTTP/1.1 200\r\nX-Vault-Token: t0kenV4lue\r\nServer: x"}"#,
            "t0kenV4lue",
            &["Server: x"],
        );
    }

    #[test]
    fn query_and_form_parameters() {
        for name in [
            "key",
            "api_key",
            "access_token",
            "token",
            "X-Amz-Signature",
            "sig",
        ] {
            check(
                &format!("GET /v1/x?q=cats&{name}=qu3ryV4lue&page=2 HTTP/1.1\r\n"),
                "qu3ryV4lue",
                &["q=cats", "&page=2 HTTP/1.1"],
            );
        }
        check(
            "\r\n\r\nuser=ann&password=f0rmV4lue&client_secret=f0rmS3cret",
            "f0rmV4lue",
            &["user=ann"],
        );
        check(
            "user=ann&client_secret=f0rmS3cret&x=1",
            "f0rmS3cret",
            &["&x=1"],
        );
    }

    #[test]
    fn json_keys_by_pattern() {
        for name in [
            "passwd",
            "private_key",
            "aws_secret_access_key",
            "MY_TOOL_API_KEY",
        ] {
            check(
                &format!(r#"{{"model":"m","{name}": "js0nV4lue","n":1}}"#),
                "js0nV4lue",
                &[r#""model":"m""#, r#""n":1"#],
            );
            // Tool arguments: JSON inside a JSON string, and once more inside that.
            let arguments = serde_json::json!({ name: "js0nV4lue", "cmd": "ls" }).to_string();
            let body = serde_json::json!({ "arguments": arguments }).to_string();
            check(&body, "js0nV4lue", &["cmd"]);
            let twice = serde_json::json!({ "outer": body }).to_string();
            check(&twice, "js0nV4lue", &["cmd"]);
        }
        check(
            r#"{"env":[{"name":"DB_PASSWORD","value":"js0nV4lue"},{"name":"MODE","value":"prod"}]}"#,
            "js0nV4lue",
            &["prod", "DB_PASSWORD"],
        );
        check("{'api_key': 'js0nV4lue'}", "js0nV4lue", &["'api_key': '"]);
    }

    #[test]
    fn connection_strings() {
        for scheme in [
            "postgresql",
            "mysql",
            "redis",
            "rediss",
            "mongodb+srv",
            "amqp",
        ] {
            check(
                &format!("url={scheme}://app:dsnP4ss@db.internal:5432/x and more"),
                "dsnP4ss",
                &["app:", "@db.internal:5432/x"],
            );
        }
        check("redis://:dsnP4ss@cache:6379", "dsnP4ss", &["@cache:6379"]);
        check(
            "host=db user=app password=dsnP4ss dbname=x",
            "dsnP4ss",
            &["dbname=x"],
        );
    }

    #[test]
    fn sql_passwords() {
        for statement in [
            "ALTER USER app WITH PASSWORD 'sqlP4ss'",
            "CREATE ROLE r LOGIN PASSWORD 'sqlP4ss' VALID UNTIL 'infinity'",
            "alter role app encrypted password 'sqlP4ss'",
            "CREATE USER 'u'@'%' IDENTIFIED BY 'sqlP4ss'",
            "SET PASSWORD = 'sqlP4ss'",
            "ALTER USER app PASSWORD 'sql''P4ss'",
        ] {
            let secret = if statement.contains("''") {
                "P4ss"
            } else {
                "sqlP4ss"
            };
            check(statement, secret, &[]);
        }
        check(
            "CREATE ROLE r LOGIN PASSWORD 'sqlP4ss' VALID UNTIL 'infinity'",
            "sqlP4ss",
            &["'infinity'"],
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            r#"{"model":"gpt-4o","max_tokens":100,"author":"Ann","key":"users/1","token_type":"Bearer"}"#,
            "GET /search?q=password+reset&page=2 HTTP/1.1\r\nHost: h:8080\r\n",
            "see http://example.com:8080/path and https://h/x?y=1",
            "SELECT password_hash FROM users WHERE id = 1",
            "the bearer of good news; the key to success",
            "if a == b and c >= d: x = y",
        ] {
            let mut buf = text.as_bytes().to_vec();
            let scan = scan(&mut buf);
            assert_eq!(String::from_utf8(buf).unwrap(), text);
            assert_eq!(scan.count, 0, "{text}");
        }
    }

    #[test]
    fn a_buffer_ending_inside_a_value_says_how_it_ends() {
        let mut buf = b"{\"password\": \"hun".to_vec();
        let scan = scan(&mut buf);
        assert!(buf.ends_with(b"\"***"));
        let open = scan.open.expect("open value");
        assert_eq!(open.continue_in(b"ter2\", \"x\": 1}"), (4, None));
        let mut buf = b"postgresql://app:pa".to_vec();
        let open = super::scan(&mut buf).open;
        assert!(
            buf.ends_with(b"app:**"),
            "the password is masked before its @ arrives"
        );
        assert_eq!(open, Some(OpenValue::UserInfo));
    }
}
