//! Redaction of secrets in captured payloads before they leave the collector.
//!
//! Agents send API keys with every LLM request. By default the values of credential-bearing
//! HTTP headers and of `api_key`-style JSON fields are overwritten with `*`, keeping the length
//! so offsets and chunk sizes still line up. A header split across two captured chunks is only
//! caught in the chunk that holds its name; reconstruction (which joins chunks) redacts again.

/// Header names whose values are credentials (lower case).
const SECRET_HEADERS: &[&[u8]] = &[
    b"authorization",
    b"proxy-authorization",
    b"x-api-key",
    b"api-key",
    b"x-goog-api-key",
    b"openai-api-key",
    b"anthropic-api-key",
    b"cookie",
    b"set-cookie",
];

/// JSON keys whose string values are credentials (lower case, quotes included).
const SECRET_JSON_KEYS: &[&[u8]] = &[
    b"\"api_key\"",
    b"\"apikey\"",
    b"\"api-key\"",
    b"\"access_token\"",
    b"\"refresh_token\"",
    b"\"id_token\"",
    b"\"token\"",
    b"\"client_secret\"",
    b"\"secret\"",
    b"\"password\"",
    // A header map passed as JSON (an agent's tool arguments, a config dump).
    b"\"authorization\"",
    b"\"x-api-key\"",
];

/// Searchers built once: constructing a memmem searcher costs more than running it on a
/// typical header block.
static HEADER_FINDERS: std::sync::LazyLock<Vec<memchr::memmem::Finder<'static>>> =
    std::sync::LazyLock::new(|| {
        SECRET_HEADERS
            .iter()
            .map(|n| memchr::memmem::Finder::new(*n))
            .collect()
    });
static JSON_KEY_FINDERS: std::sync::LazyLock<Vec<memchr::memmem::Finder<'static>>> =
    std::sync::LazyLock::new(|| {
        SECRET_JSON_KEYS
            .iter()
            .map(|k| memchr::memmem::Finder::new(*k))
            .collect()
    });

/// Overwrites secret values in `buf`; returns how many were redacted.
pub fn redact_in_place(buf: &mut [u8]) -> usize {
    // One lowercase copy makes every search case-insensitive at memmem speed.
    let lower = buf.to_ascii_lowercase();
    redact_headers(buf, &lower)
        + redact_json_fields(buf, &lower)
        + redact_bearer_tokens(buf, &lower)
        + redact_jwts(buf)
        + redact_private_keys(buf)
}

static PEM_BEGIN: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"-----BEGIN "));
static PEM_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"-----END "));

/// PEM private keys (`-----BEGIN … PRIVATE KEY-----`): the key material between the armour
/// lines goes, up to the end line or the end of the buffer.
fn redact_private_keys(buf: &mut [u8]) -> usize {
    let mut count = 0;
    let starts: Vec<usize> = PEM_BEGIN.find_iter(buf).collect();
    for at in starts {
        let Some(line_len) = memchr::memmem::find(&buf[at..buf.len().min(at + 80)], b"-----\n")
            .or_else(|| memchr::memmem::find(&buf[at..buf.len().min(at + 80)], b"-----\\n"))
            .or_else(|| {
                let label_end = at + 11;
                memchr::memmem::find(&buf[label_end..buf.len().min(at + 80)], b"-----")
                    .map(|p| p + 11)
            })
        else {
            continue;
        };
        let armour = &buf[at..at + line_len];
        if memchr::memmem::find(armour, b"PRIVATE KEY").is_none() {
            continue;
        }
        let start = at + line_len + 5;
        let end = PEM_END
            .find(&buf[start.min(buf.len())..])
            .map_or(buf.len(), |p| start + p);
        if end > start {
            buf[start..end].fill(b'*');
            count += 1;
        }
    }
    count
}

static BEARER_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"bearer "));
static JWT_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"eyJ"));

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

/// `Bearer <token>` anywhere (a tool result that printed a header, a shell command line): the
/// token goes, the scheme stays.
fn redact_bearer_tokens(buf: &mut [u8], lower: &[u8]) -> usize {
    let mut count = 0;
    for at in BEARER_FINDER.find_iter(lower) {
        let start = at + b"bearer ".len();
        let end = start + buf[start..].iter().take_while(|b| token_byte(**b)).count();
        // Short words after "bearer " are prose, not credentials.
        if end - start >= 16 && buf[start..end].iter().any(|b| *b != b'*') {
            buf[start..end].fill(b'*');
            count += 1;
        }
    }
    count
}

/// JSON Web Tokens (service-account tokens, OIDC tokens) wherever they appear: three base64url
/// segments, the first starting `eyJ` (`{"` encoded).
fn redact_jwts(buf: &mut [u8]) -> usize {
    let segment = |buf: &[u8], from: usize| {
        buf[from..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            .count()
    };
    let starts: Vec<usize> = JWT_FINDER.find_iter(buf).collect();
    let mut count = 0;
    let mut done = 0;
    for at in starts {
        if at < done || (at > 0 && (buf[at - 1].is_ascii_alphanumeric() || buf[at - 1] == b'-')) {
            continue;
        }
        let header = segment(buf, at);
        let dot1 = at + header;
        if header < 10 || buf.get(dot1) != Some(&b'.') {
            continue;
        }
        let payload = segment(buf, dot1 + 1);
        let dot2 = dot1 + 1 + payload;
        if payload < 10 || buf.get(dot2) != Some(&b'.') {
            continue;
        }
        let signature = segment(buf, dot2 + 1);
        let end = dot2 + 1 + signature;
        buf[at..end].fill(b'*');
        done = end;
        count += 1;
    }
    count
}

/// The value of one parsed header with any credential masked (same rules as for raw bytes).
pub fn redact_header_value(name: &str, value: &str) -> String {
    let secret_name = SECRET_HEADERS
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name.as_bytes()));
    // Values of other headers can still hold `"api_key": "..."` (rare), so only skip the
    // work when no JSON key could be inside.
    if !secret_name && !value.contains('"') {
        return value.to_string();
    }
    let mut line = format!("{name}: {value}").into_bytes();
    if redact_in_place(&mut line) == 0 {
        return value.to_string();
    }
    String::from_utf8_lossy(&line[name.len() + 2..]).into_owned()
}

fn redact_headers(buf: &mut [u8], lower: &[u8]) -> usize {
    let mut count = 0;
    for (name, finder) in SECRET_HEADERS.iter().zip(HEADER_FINDERS.iter()) {
        for at in finder.find_iter(lower) {
            let at_line_start = at == 0 || lower[at - 1] == b'\n';
            let colon = at + name.len();
            if !at_line_start || lower.get(colon) != Some(&b':') {
                continue;
            }
            let line_end = memchr::memchr(b'\n', &lower[colon..]).map_or(buf.len(), |p| colon + p);
            let mut value_start = colon + 1;
            while value_start < line_end && buf[value_start] == b' ' {
                value_start += 1;
            }
            let mut value_end = line_end;
            if value_end > value_start && buf[value_end - 1] == b'\r' {
                value_end -= 1;
            }
            // Keep the scheme ("Bearer ") so a reader still sees what kind of credential it was.
            let value = &buf[value_start..value_end];
            let keep = value.iter().position(|&b| b == b' ').map_or(0, |p| p + 1);
            if value_end > value_start + keep {
                buf[value_start + keep..value_end].fill(b'*');
                count += 1;
            }
        }
    }
    count
}

fn redact_json_fields(buf: &mut [u8], lower: &[u8]) -> usize {
    let mut count = 0;
    for (key, finder) in SECRET_JSON_KEYS.iter().zip(JSON_KEY_FINDERS.iter()) {
        for at in finder.find_iter(lower) {
            count += usize::from(redact_json_value(buf, at + key.len(), false));
        }
    }
    // The same keys inside a JSON string that holds JSON (`"arguments": "{\"api_key\": …}"`
    // in a model's tool call): quotes come escaped.
    for key in SECRET_JSON_KEYS {
        let bare = &key[1..key.len() - 1];
        for at in memchr::memmem::find_iter(lower, bare) {
            let escaped_open = at >= 2 && &lower[at - 2..at] == b"\\\"";
            let end = at + bare.len();
            let escaped_close = lower.get(end..end + 2) == Some(b"\\\"".as_slice());
            if escaped_open && escaped_close {
                count += usize::from(redact_json_value(buf, end + 2, true));
            }
        }
    }
    count
}

/// Masks the string value after a key ending at `i` (`: "value"`, or `: \"value\"` when
/// `escaped`); returns whether it did.
fn redact_json_value(buf: &mut [u8], mut i: usize, escaped: bool) -> bool {
    let skip_space = |buf: &[u8], i: &mut usize| {
        while *i < buf.len() && matches!(buf[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    skip_space(buf, &mut i);
    if buf.get(i) != Some(&b':') {
        return false;
    }
    i += 1;
    skip_space(buf, &mut i);
    let quote: &[u8] = if escaped { b"\\\"" } else { b"\"" };
    if buf.get(i..i + quote.len()) != Some(quote) {
        return false;
    }
    let start = i + quote.len();
    let mut end = start;
    while end < buf.len() {
        if buf[end..].starts_with(quote) {
            break;
        }
        // Unescaped: a backslash escapes the next byte. Escaped: `\\\"` ends the value and
        // `\\\\` is one escaped backslash.
        end += if buf[end] == b'\\' { 2 } else { 1 };
    }
    let end = end.min(buf.len());
    if end > start {
        buf[start..end].fill(b'*');
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_inside_json_strings_are_masked() {
        let body = br#"{"tool_calls":[{"function":{"arguments":"{\"url\": \"http://x\", \"headers\": {\"Authorization\": \"Bearer abc.def\"}, \"api_key\": \"sk-1\\\\2\"}"}}]}"#;
        let mut buf = body.to_vec();
        redact_in_place(&mut buf);
        let out = String::from_utf8(buf).unwrap();
        assert!(
            !out.contains("Bearer abc.def") && !out.contains("sk-1"),
            "{out}"
        );
        assert!(out.contains(r#"\"url\": \"http://x\""#), "{out}");
        // Still JSON, of the same length.
        assert_eq!(out.len(), body.len());
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        let arguments = value["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let arguments: serde_json::Value = serde_json::from_str(arguments).unwrap();
        assert!(arguments["headers"]["Authorization"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c == '*'));
    }

    #[test]
    fn private_keys_are_masked_also_inside_json() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACB\n-----END OPENSSH PRIVATE KEY-----\n";
        let mut buf = key.as_bytes().to_vec();
        assert_eq!(redact_in_place(&mut buf), 1);
        let out = String::from_utf8(buf).unwrap();
        assert!(
            !out.contains("b3BlbnNzaC1r") && !out.contains("QyNTUxOQ"),
            "{out}"
        );
        assert!(out.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(out.contains("-----END OPENSSH PRIVATE KEY-----"));
        let json = serde_json::json!({ "notes": key }).to_string();
        let mut buf = json.clone().into_bytes();
        redact_in_place(&mut buf);
        let out = String::from_utf8(buf).unwrap();
        assert!(!out.contains("b3BlbnNzaC1r"), "{out}");
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "{out}"
        );
        // Certificates and public keys are not secrets.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----";
        let mut buf = cert.as_bytes().to_vec();
        assert_eq!(redact_in_place(&mut buf), 0);
    }

    #[test]
    fn tokens_in_bodies_are_masked() {
        let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJlLWJ5dGVz";
        let text = format!(
            "token file: {jwt}\nrun: curl -H 'Authorization: Bearer sk-live-0123456789abcdef' x\n{{\"headers\": {{\"Authorization\": \"Bearer abc\"}}, \"password\": \"hunter2\"}}\nthe bearer of good news"
        );
        let mut buf = text.clone().into_bytes();
        assert!(redact_in_place(&mut buf) >= 4);
        let out = String::from_utf8(buf).unwrap();
        assert_eq!(out.len(), text.len(), "lengths are kept");
        for secret in [jwt, "sk-live-0123456789abcdef", "hunter2", "Bearer abc"] {
            assert!(!out.contains(secret), "{secret} survived in {out}");
        }
        assert!(out.contains("the bearer of good news"), "{out}");
        assert!(out.contains("Bearer ****"), "the scheme stays: {out}");
    }

    #[test]
    fn parsed_header_values_are_masked_like_raw_ones() {
        assert_eq!(
            redact_header_value("Authorization", "Bearer sk-1234"),
            "Bearer *******"
        );
        assert_eq!(redact_header_value("x-api-key", "abc"), "***");
        assert_eq!(
            redact_header_value("Content-Type", "application/json"),
            "application/json"
        );
    }

    #[test]
    fn redacts_authorization_keeping_scheme_and_length() {
        let mut req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer sk-proj-abc123\r\nX-Api-Key: k-999\r\n\r\n{}".to_vec();
        let len = req.len();
        assert_eq!(redact_in_place(&mut req), 2);
        let text = String::from_utf8(req).unwrap();
        assert!(
            text.contains(&format!(
                "Authorization: Bearer {}\r\n",
                "*".repeat("sk-proj-abc123".len())
            )),
            "{text}"
        );
        assert!(text.contains("X-Api-Key: *****\r\n"));
        assert!(text.contains("Host: api.openai.com"));
        assert_eq!(text.len(), len);
    }

    #[test]
    fn redacts_json_api_key_fields() {
        let mut body =
            br#"{"model":"x","api_key": "sk-live-1", "nested":{"API_KEY":"q\"w"}}"#.to_vec();
        assert_eq!(redact_in_place(&mut body), 2);
        let text = String::from_utf8(body).unwrap();
        assert!(
            !text.contains("sk-live-1") && !text.contains("q\\\"w"),
            "{text}"
        );
        assert!(text.contains(r#""model":"x""#));
    }

    #[test]
    fn leaves_ordinary_payloads_alone() {
        let mut body = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"answer\":\"authorization is needed\"}".to_vec();
        let before = body.clone();
        assert_eq!(redact_in_place(&mut body), 0);
        assert_eq!(body, before);
    }

    #[test]
    fn never_panics_on_cut_input() {
        let full = b"Authorization: Bearer abc\r\n{\"api_key\":\"zz".to_vec();
        for cut in 0..=full.len() {
            let mut part = full[..cut].to_vec();
            redact_in_place(&mut part);
        }
    }
}
