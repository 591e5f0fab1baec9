//! Exfiltration by content: remember the data an agent read (tool and MCP results, API
//! responses) as distinctive pieces, and look for those pieces in what it sends out.
//!
//! Matching the content, not the timing, is what tells "posted the customer rows to a new
//! host" from "posted a status line to a new host". Attackers split data to stay under size
//! limits, so each destination keeps a stream per request field (a JSON path, a query
//! parameter, the body) and every request's value is appended to its field's stream before
//! searching: twenty requests of twenty bytes each still spell the rows. Base64 and hex
//! encodings of a value are searched too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use aho_corasick::AhoCorasick;
use base64::Engine as _;

use crate::reconstruct::http::HttpExchange;

/// Pieces shorter than this match by chance.
const MIN_FIELD_LEN: usize = 8;
/// Whole lines shorter than this are too generic on their own.
const MIN_LINE_LEN: usize = 16;
/// Pieces are cut to this length (longer data still matches on its first bytes).
pub const MAX_ATOM_LEN: usize = 256;
/// Pieces remembered per agent; the oldest are forgotten first.
const MAX_ATOMS: usize = 8192;
/// Text taken from one read.
const MAX_READ_TEXT: usize = 256 << 10;
/// Bytes of one request searched.
const MAX_SENT_TEXT: usize = 1 << 20;
/// Destinations tracked per agent.
const MAX_DESTINATIONS: usize = 1024;
/// Fields tracked per destination.
const MAX_FIELDS: usize = 64;
/// Read data sent again after this long a pause is a new sending (a repeat of the session),
/// whose bytes add to the total instead of being recognised as already sent.
const EPISODE_GAP_NS: u64 = 120 * 1_000_000_000;
/// Heap estimate of one remembered piece besides its text (deque slot, set node, origin).
const ATOM_OVERHEAD: usize = 128;
/// Heap estimate of one destination besides its fields.
const DESTINATION_OVERHEAD: usize = 256;

#[derive(Debug, Clone)]
struct Atom {
    text: String,
    /// Where it was read (`result of tool query_database`).
    origin: String,
    read_ns: u64,
}

/// The distinctive pieces of what one agent read.
#[derive(Default)]
pub struct ReadData {
    atoms: VecDeque<Atom>,
    known: BTreeSet<String>,
    automaton: Option<AhoCorasick>,
    dirty: bool,
    /// Estimated heap held by the pieces (the automaton is rebuilt from them and not counted
    /// twice: it is at most a small multiple of the pieces' text, charged by the caller).
    held: usize,
}

/// Read data found in one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    /// Matched pieces (distinct), with where they were read and when.
    pub pieces: Vec<(String, String, u64)>,
}

impl ReadData {
    /// Remembers the pieces of `text`, read from `origin` at `read_ns`.
    pub fn remember(&mut self, text: &str, origin: &str, read_ns: u64) {
        let text = cut(text, MAX_READ_TEXT);
        let mut pieces = Vec::new();
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) if value.is_object() || value.is_array() => {
                let mut strings = Vec::new();
                json_strings(&value, "", &mut strings);
                for (_, s) in strings {
                    pieces_of(&s, &mut pieces);
                }
            }
            _ => pieces_of(text, &mut pieces),
        }
        for piece in pieces {
            if self.known.contains(&piece) {
                continue;
            }
            if self.atoms.len() >= MAX_ATOMS {
                self.forget_oldest(1);
            }
            self.held += atom_bytes(&piece, origin);
            self.known.insert(piece.clone());
            self.atoms.push_back(Atom {
                text: piece,
                origin: origin.to_string(),
                read_ns,
            });
            self.dirty = true;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }

    /// Estimated heap held.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Pieces remembered.
    pub fn len(&self) -> usize {
        self.atoms.len()
    }

    /// Forgets the `count` oldest pieces; returns how many there were.
    pub fn forget_oldest(&mut self, count: usize) -> usize {
        let count = count.min(self.atoms.len());
        for old in self.atoms.drain(..count) {
            self.known.remove(&old.text);
            self.held = self.held.saturating_sub(atom_bytes(&old.text, &old.origin));
        }
        if count > 0 {
            self.dirty = true;
        }
        count
    }

    /// Bytes of read pieces found in `text` (pieces inside other found pieces not counted).
    pub fn contained_bytes(&mut self, text: &str) -> usize {
        let found: Vec<String> = self
            .find(text, 0)
            .into_iter()
            .filter_map(|(index, _)| self.atoms.get(index).map(|a| a.text.clone()))
            .collect();
        distinct_bytes(found.iter())
    }

    /// The pieces found in `haystack` whose match ends after byte `from`, with where each
    /// match starts.
    fn find(&mut self, haystack: &str, from: usize) -> Vec<(usize, usize)> {
        if self.dirty || self.automaton.is_none() {
            self.automaton = AhoCorasick::new(self.atoms.iter().map(|a| a.text.as_str())).ok();
            self.dirty = false;
        }
        let Some(automaton) = &self.automaton else {
            return Vec::new();
        };
        let mut found: Vec<(usize, usize)> = automaton
            .find_overlapping_iter(haystack)
            .filter(|m| m.end() > from)
            .map(|m| (m.pattern().as_usize(), m.start()))
            .collect();
        found.sort_unstable();
        found.dedup_by_key(|(pattern, _)| *pattern);
        found
    }
}

/// The heap one piece takes: its text twice (the deque and the set), its origin, overheads.
fn atom_bytes(text: &str, origin: &str) -> usize {
    ATOM_OVERHEAD + 2 * text.len() + origin.len()
}

/// The pieces of a text worth matching: whole lines, and the fields of delimited lines.
fn pieces_of(text: &str, out: &mut Vec<String>) {
    for line in text.lines() {
        let line = line.trim();
        if line.len() >= MIN_LINE_LEN {
            out.push(cut(line, MAX_ATOM_LEN).to_string());
        }
        for field in line.split(['|', ',', ';', '\t']) {
            let field = field.trim().trim_matches('"');
            if field.len() >= MIN_FIELD_LEN && field.len() < line.len() && distinctive(field) {
                out.push(cut(field, MAX_ATOM_LEN).to_string());
            }
        }
    }
}

/// A single dictionary word ("enterprise") is not evidence; names, addresses, numbers are.
fn distinctive(field: &str) -> bool {
    field
        .chars()
        .any(|c| c.is_ascii_digit() || matches!(c, '@' | ' ' | '.' | '-' | '+' | ':' | '/'))
}

/// The first `max` bytes of `text`, or fewer to end on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// String values of a JSON document with their paths (array indexes collapsed, so chunks sent
/// as successive array items or successive requests land in one stream).
fn json_strings(value: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(s) => out.push((path.to_string(), s.clone())),
        serde_json::Value::Array(items) => {
            for item in items.iter().take(4096) {
                json_strings(item, &format!("{path}[]"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter().take(4096) {
                json_strings(item, &format!("{path}.{key}"), out);
            }
        }
        _ => {}
    }
}

/// Total length of pieces, leaving out pieces found inside longer ones (a field inside its
/// line).
fn distinct_bytes<'a>(pieces: impl Iterator<Item = &'a String> + Clone) -> usize {
    pieces
        .clone()
        .filter(|p| {
            !pieces
                .clone()
                .any(|other| other.len() > p.len() && other.contains(p.as_str()))
        })
        .map(|p| p.len())
        .sum()
}

/// What a request sends, as (field, text): query parameters, the path, and the body's values.
pub fn sent_fields(exchange: &HttpExchange) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let request = &exchange.request;
    let path = request.path();
    fields.push(("path".to_string(), percent_decode(path)));
    if let Some((_, query)) = request.target.split_once('?') {
        for (name, value) in form_pairs(query) {
            fields.push((format!("query:{name}"), value));
        }
    }
    let body = &request.body[..request.body.len().min(MAX_SENT_TEXT)];
    let content_type = request
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let mut strings = Vec::new();
        json_strings(&value, "body", &mut strings);
        fields.extend(strings);
    } else if content_type.starts_with("application/x-www-form-urlencoded") || looks_like_form(body)
    {
        let text = String::from_utf8_lossy(body);
        for (name, value) in form_pairs(&text) {
            fields.push((format!("body:{name}"), value));
        }
    } else if !body.is_empty() {
        fields.push((
            "body".to_string(),
            String::from_utf8_lossy(body).into_owned(),
        ));
    }
    let mut decoded = Vec::new();
    for (name, value) in &fields {
        if let Some(text) = decode_hidden(value) {
            decoded.push((format!("{name}#decoded"), text));
        }
    }
    fields.extend(decoded);
    fields
}

/// `a=1&b=2` sent without a content type (curl -d does send one; scripts often do not).
fn looks_like_form(body: &[u8]) -> bool {
    !body.is_empty()
        && body.contains(&b'=')
        && !body.iter().any(|b| b.is_ascii_whitespace() || *b == b'{')
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// The text behind a base64 or hex value, when it decodes to text.
fn decode_hidden(value: &str) -> Option<String> {
    let value = value.trim();
    if value.len() < 12 {
        return None;
    }
    let bytes = if value.len().is_multiple_of(2) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..value.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&value[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
    {
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        engines.iter().find_map(|e| e.decode(value).ok())?
    } else {
        return None;
    };
    let text = String::from_utf8(bytes).ok()?;
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    (printable * 10 >= text.chars().count() * 9).then_some(text)
}

/// Per destination of one agent: the tail of each field's stream and what matched so far.
#[derive(Default)]
pub struct Egress {
    destinations: BTreeMap<String, Destination>,
    /// Estimated heap held by all destinations.
    held: usize,
}

#[derive(Default)]
struct Destination {
    tails: BTreeMap<String, Tail>,
    /// Pieces matched in the current sending, with where and when they were read.
    matched: BTreeMap<String, (String, u64)>,
    /// Distinct bytes matched in earlier sendings (see [`EPISODE_GAP_NS`]), their origins and
    /// earliest read.
    earlier_bytes: usize,
    earlier_origins: BTreeSet<String>,
    earlier_first_read_ns: Option<u64>,
    /// Event time of the latest request that carried read data, and of the latest request.
    last_match_ns: u64,
    last_sent_ns: u64,
    /// Estimated heap held by this destination.
    held: usize,
    /// Requests sent so far, and how many of them carried part of a matched piece.
    sent: u32,
    requests: u32,
    /// The latest request counted in `requests`.
    counted_upto: u32,
}

/// The end of one field's stream, and which request each part of it came from.
#[derive(Default)]
struct Tail {
    text: String,
    /// (byte offset in `text`, request number) where each request's bytes start.
    starts: VecDeque<(usize, u32)>,
}

impl Tail {
    /// The request that sent byte `offset` of the window.
    fn request_at(&self, offset: usize) -> u32 {
        self.starts
            .iter()
            .take_while(|(start, _)| *start <= offset)
            .last()
            .map_or(0, |(_, request)| *request)
    }
}

/// The heap a destination takes: each field's window (kept at most `2 * MAX_ATOM_LEN`), the
/// request starts in it, and the matched pieces.
fn destination_bytes(name: &str, destination: &Destination) -> usize {
    let tails: usize = destination
        .tails
        .iter()
        .map(|(field, tail)| 64 + field.len() + tail.text.capacity() + 16 * tail.starts.len())
        .sum();
    let matched: usize = destination
        .matched
        .iter()
        .map(|(piece, (origin, _))| 64 + piece.len() + origin.len())
        .sum();
    let origins: usize = destination
        .earlier_origins
        .iter()
        .map(|o| 48 + o.len())
        .sum();
    DESTINATION_OVERHEAD + name.len() + tails + matched + origins
}

/// Where a destination stands after a request.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressTotals {
    /// Requests that carried read data.
    pub requests: u32,
    /// Bytes of distinct read pieces seen (pieces inside other matched pieces not counted).
    pub matched_bytes: usize,
    pub origins: Vec<String>,
    pub samples: Vec<String>,
    /// The earliest read of the matched data.
    pub first_read_ns: u64,
    /// This request carried read data.
    pub this_request: bool,
}

impl Egress {
    /// Estimated heap held.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Forgets the destination sent to least recently; false when there is none.
    pub fn forget_oldest_destination(&mut self) -> bool {
        let Some(oldest) = self
            .destinations
            .iter()
            .min_by_key(|(name, d)| (d.last_sent_ns, name.as_str()))
            .map(|(name, _)| name.clone())
        else {
            return false;
        };
        if let Some(gone) = self.destinations.remove(&oldest) {
            self.held = self.held.saturating_sub(gone.held);
        }
        true
    }

    /// Appends a request's fields (sent at `ts_ns`) to `destination`'s streams and matches
    /// them against `read`.
    pub fn send(
        &mut self,
        destination: &str,
        ts_ns: u64,
        fields: &[(String, String)],
        read: &mut ReadData,
    ) -> Option<EgressTotals> {
        if read.is_empty() {
            return None;
        }
        if !self.destinations.contains_key(destination)
            && self.destinations.len() >= MAX_DESTINATIONS
        {
            return None;
        }
        let state = self
            .destinations
            .entry(destination.to_string())
            .or_default();
        state.sent += 1;
        state.last_sent_ns = ts_ns;
        let request = state.sent;
        // After a pause, the same data sent again is sent again: the pieces of the earlier
        // sending are counted and matching starts afresh.
        if !state.matched.is_empty() && ts_ns > state.last_match_ns.saturating_add(EPISODE_GAP_NS) {
            let pieces: Vec<&String> = state.matched.keys().collect();
            state.earlier_bytes += distinct_bytes(pieces.iter().copied());
            for (origin, read_ns) in std::mem::take(&mut state.matched).into_values() {
                state.earlier_first_read_ns = Some(
                    state
                        .earlier_first_read_ns
                        .map_or(read_ns, |t| t.min(read_ns)),
                );
                state.earlier_origins.insert(origin);
            }
        }
        let mut this_request = false;
        let mut earliest_contributor = request;
        for (field, text) in fields {
            if !state.tails.contains_key(field) && state.tails.len() >= MAX_FIELDS {
                continue;
            }
            let tail = state.tails.entry(field.clone()).or_default();
            let from = tail.text.len();
            tail.text.push_str(cut(text, MAX_SENT_TEXT));
            tail.starts.push_back((from, request));
            for (index, start) in read.find(&tail.text, from) {
                let Some(atom) = read.atoms.get(index) else {
                    continue;
                };
                this_request = true;
                earliest_contributor = earliest_contributor.min(tail.request_at(start));
                state
                    .matched
                    .entry(atom.text.clone())
                    .or_insert_with(|| (atom.origin.clone(), atom.read_ns));
            }
            // Keep the last MAX_ATOM_LEN - 1 bytes: a piece split across requests ends in
            // the next one.
            let mut keep = tail.text.len().saturating_sub(MAX_ATOM_LEN - 1);
            while !tail.text.is_char_boundary(keep) {
                keep += 1;
            }
            tail.text.drain(..keep);
            // A request of up to MAX_SENT_TEXT passed through; keep only the window's room, or
            // every field of every destination would hold its largest request's capacity.
            tail.text.shrink_to(2 * MAX_ATOM_LEN);
            for (start, _) in tail.starts.iter_mut() {
                *start = start.saturating_sub(keep);
            }
            // Starts now at 0 except the last are wholly before the kept text.
            while tail.starts.len() > 1 && tail.starts[1].0 == 0 {
                tail.starts.pop_front();
            }
        }
        let held = destination_bytes(destination, state);
        self.held = (self.held + held).saturating_sub(state.held);
        state.held = held;
        if this_request {
            state.last_match_ns = ts_ns;
            // Every request that sent part of a matched piece, each counted once.
            let first = earliest_contributor.max(state.counted_upto + 1);
            state.requests += request + 1 - first.min(request + 1);
            state.counted_upto = request;
        }
        if state.matched.is_empty() {
            return None;
        }
        let pieces: Vec<&String> = state.matched.keys().collect();
        let matched_bytes = state.earlier_bytes + distinct_bytes(pieces.iter().copied());
        let mut origins: Vec<String> = state
            .matched
            .values()
            .map(|(o, _)| o.clone())
            .chain(state.earlier_origins.iter().cloned())
            .collect();
        origins.sort();
        origins.dedup();
        let mut samples: Vec<String> = pieces
            .iter()
            .map(|p| cut(p, 40).to_string())
            .take(3)
            .collect();
        samples.sort();
        Some(EgressTotals {
            requests: state.requests,
            matched_bytes,
            origins,
            samples,
            first_read_ns: state
                .matched
                .values()
                .map(|(_, ts)| *ts)
                .chain(state.earlier_first_read_ns)
                .min()
                .unwrap_or(0),
            this_request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconstruct::http::{Completeness, HttpRequest};

    const ROWS: &str = "Ada Lovelace|ada@example.com|enterprise|1200.00\n\
                        Alan Turing|alan@example.com|pro|99.50\n";

    fn post(body: &str) -> HttpExchange {
        HttpExchange {
            request: HttpRequest {
                method: "POST".into(),
                target: "/collect".into(),
                headers: vec![],
                body: body.as_bytes().to_vec(),
                body_len: body.len(),
                completeness: Completeness::Complete,
                over_budget: false,
                ts_ns: 0,
            },
            response: None,
            host: Some("203.0.113.9".into()),
            port: Some(80),
            tls: false,
            protocol: Default::default(),
        }
    }

    fn read() -> ReadData {
        let mut read = ReadData::default();
        read.remember(ROWS, "result of tool query_database", 7);
        read
    }

    #[test]
    fn rows_posted_whole_are_found_with_their_origin() {
        let mut read = read();
        let mut egress = Egress::default();
        let body = serde_json::json!({ "body": ROWS }).to_string();
        let totals = egress
            .send("203.0.113.9:80", 0, &sent_fields(&post(&body)), &mut read)
            .unwrap();
        assert!(totals.this_request);
        assert_eq!(totals.requests, 1);
        assert!(totals.matched_bytes >= 80, "{totals:?}");
        assert_eq!(totals.origins, vec!["result of tool query_database"]);
        assert_eq!(totals.first_read_ns, 7);
    }

    #[test]
    fn rows_split_over_many_small_requests_are_found() {
        let mut read = read();
        let mut egress = Egress::default();
        let mut last = None;
        let bytes = ROWS.as_bytes();
        for (i, chunk) in bytes.chunks(9).enumerate() {
            let chunk = std::str::from_utf8(chunk).unwrap();
            let body = serde_json::json!({ "seq": i, "part": chunk }).to_string();
            last = egress.send("203.0.113.9:80", 0, &sent_fields(&post(&body)), &mut read);
        }
        let totals = last.unwrap();
        assert!(totals.matched_bytes >= 80, "{totals:?}");
        // Every request carried part of a row.
        assert_eq!(
            totals.requests,
            bytes.len().div_ceil(9) as u32,
            "{totals:?}"
        );
    }

    #[test]
    fn base64_chunks_are_decoded() {
        let mut read = read();
        let mut egress = Egress::default();
        let encoded = base64::engine::general_purpose::STANDARD.encode(ROWS);
        let totals = egress
            .send(
                "203.0.113.9:80",
                0,
                &sent_fields(&post(&format!("data={encoded}"))),
                &mut read,
            )
            .unwrap();
        assert!(totals.matched_bytes >= 80, "{totals:?}");
    }

    #[test]
    fn a_summary_or_a_heartbeat_carries_no_read_data() {
        let mut read = read();
        let mut egress = Egress::default();
        for body in [
            r#"{"summary":"2 accounts checked, all healthy","plan":"enterprise"}"#,
            r#"{"heartbeat":1}"#,
        ] {
            assert_eq!(
                egress.send("203.0.113.9:80", 0, &sent_fields(&post(body)), &mut read),
                None
            );
        }
    }

    #[test]
    fn the_same_rows_sent_again_after_a_pause_add_to_the_total() {
        let mut read = read();
        let mut egress = Egress::default();
        let once = egress
            .send("203.0.113.9:80", 0, &sent_fields(&post(ROWS)), &mut read)
            .unwrap();
        // Again at once: the same data, not more of it.
        let again = egress
            .send("203.0.113.9:80", 1, &sent_fields(&post(ROWS)), &mut read)
            .unwrap();
        assert_eq!(again.matched_bytes, once.matched_bytes);
        // Again after a pause: a second sending, counted in full.
        let later = egress
            .send(
                "203.0.113.9:80",
                1 + EPISODE_GAP_NS + 1,
                &sent_fields(&post(ROWS)),
                &mut read,
            )
            .unwrap();
        assert_eq!(later.matched_bytes, 2 * once.matched_bytes);
        assert_eq!(later.requests, 3);
        assert_eq!(later.origins, once.origins);
        assert!(egress.held_bytes() > 0);
        assert!(egress.forget_oldest_destination());
        assert_eq!(egress.held_bytes(), 0);
    }

    #[test]
    fn nothing_read_means_nothing_to_match() {
        let mut read = ReadData::default();
        let mut egress = Egress::default();
        assert_eq!(
            egress.send("203.0.113.9:80", 0, &sent_fields(&post(ROWS)), &mut read),
            None
        );
    }
}
