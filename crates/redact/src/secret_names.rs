//! The one classifier of secret names: is the value named `X` a credential?
//!
//! Every place that meets a name next to a value asks this: HTTP headers, JSON keys, query and
//! form parameters, `NAME=value` assignments, command-line flags. Names are matched by pattern,
//! not by a list of known headers: a name is split into lower-case words (`X-Amz-Security-Token`
//! → `x amz security token`, `clientSecret` → `client secret`, `AWS_SECRET_ACCESS_KEY` →
//! `aws secret access key`) and is secret when a word (or the words run together) says token,
//! secret, password, credential, signature, session, cookie, auth…, unless its last word says
//! the value only describes one (`token_type`, `password_file`, `max_tokens`, `key_id`).
//! A bare `key` is a secret only where names are short by convention (headers, query strings,
//! flags), not as a JSON key, where it usually names an object or a map entry.

use std::sync::LazyLock;

use aho_corasick::{automaton::Automaton as _, dfa::DFA, Anchored};

/// Where a name was seen; it decides whether a bare `key` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameContext {
    /// An HTTP header or a `Name: value` line.
    Header,
    /// A URL query parameter (after `?` or `&`) or a command-line flag.
    Parameter,
    /// A JSON (or Python dict) key, an assignment `NAME=value`, a form field.
    Field,
}

/// Every secret name contains one of these (a cheap first test).
const HINTS: &[&str] = &[
    "tok", "sec", "pass", "pwd", "cred", "cook", "sig", "sess", "auth", "jwt", "bearer", "otp",
    "key", "dsn",
];

/// Words that make a name secret wherever they stand in it.
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pass",
    "pwd",
    "credential",
    "credentials",
    "cookie",
    "signature",
    "sig",
    "session",
    "auth",
    "authn",
    "authz",
    "authorization",
    "authentication",
    "jwt",
    "bearer",
    "otp",
    "apikey",
    "dsn",
];

/// Runs of words glued together (`xapikey`, `accesstoken`) that make a name secret.
const SECRET_SUBSTRINGS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "cookie",
    "signature",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "sessionkey",
    "sessionid",
    "signingkey",
    "masterkey",
    "authkey",
    "clientkey",
    "encryptionkey",
    "subscriptionkey",
    "licensekey",
    "authorization",
];

/// Words that, before `key`, make it a credential in any context (`private_key`, `api_key`).
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "private",
    "secret",
    "access",
    "client",
    "master",
    "signing",
    "encryption",
    "subscription",
    "auth",
    "account",
    "app",
    "service",
    "license",
    "session",
    "shared",
    "storage",
    "admin",
    "root",
    "ssh",
    "gpg",
    "pgp",
    "hmac",
    "webhook",
];

/// Last words that say the value describes a credential without being one.
const DESCRIPTIVE_LAST_WORDS: &[&str] = &[
    "tokens",
    "type",
    "types",
    "url",
    "uri",
    "endpoint",
    "path",
    "file",
    "filename",
    "dir",
    "name",
    "expires",
    "expiry",
    "expiration",
    "ttl",
    "length",
    "len",
    "count",
    "kind",
    "method",
    "algorithm",
    "alg",
    "version",
    "format",
    "mode",
    "policy",
    "hint",
    "required",
    "enabled",
    "provider",
    "scope",
    "scopes",
    "usage",
    "limit",
    "limits",
    "header",
    "env",
    "location",
    "id",
    "ids",
    "index",
    "strategy",
    "timeout",
];

/// The longest name judged; longer ones are not names (a value, a sentence).
const MAX_NAME: usize = 128;

/// [`HINTS`], in any case.
static HINT_AUTOMATON: LazyLock<DFA> = LazyLock::new(|| automaton_of(HINTS, true));

/// [`SECRET_SUBSTRINGS`], in a name's glued lower-case words.
static SECRET_SUBSTRING_AUTOMATON: LazyLock<DFA> =
    LazyLock::new(|| automaton_of(SECRET_SUBSTRINGS, false));

fn automaton_of(patterns: &[&str], any_case: bool) -> DFA {
    DFA::builder()
        .ascii_case_insensitive(any_case)
        .build(patterns)
        // A handful of short constant patterns: far below every limit of the builder.
        .expect("the name classifier's patterns build")
}

/// Whether `name` holds one of [`HINTS`], in any case (most names of a JSON body, `model`,
/// `content`, `role`, stop here).
fn holds_a_hint(name: &[u8]) -> bool {
    holds(&HINT_AUTOMATON, name)
}

/// Whether `bytes` hold one of `automaton`'s patterns. The automaton is walked byte by byte
/// rather than through the search API: a name is a few bytes, and the search's setup for
/// each call cost more than its walk (about 350 instructions a name, against a few a byte).
fn holds(automaton: &DFA, bytes: &[u8]) -> bool {
    let Ok(mut state) = automaton.start_state(Anchored::No) else {
        // Built unanchored, so never; a name then counts as holding a pattern (fail closed).
        return true;
    };
    for &byte in bytes {
        state = automaton.next_state(Anchored::No, state, byte);
        if automaton.is_match(state) {
            return true;
        }
    }
    false
}

/// Whether a value named `name` is a credential. `name` is as written (any case, separators,
/// leading dashes of a flag).
///
/// Asked for every name next to a value in every payload (a JSON body's keys, each header), so
/// it allocates nothing: most names are turned away by [`holds_a_hint`], and the words of the
/// others are split into a buffer on the stack.
pub fn is_secret_name(name: &[u8], context: NameContext) -> bool {
    if name.is_empty() || name.len() > MAX_NAME {
        return false;
    }
    // Most names hold none of these: answer without splitting them.
    if !holds_a_hint(name) {
        return false;
    }
    let words = Words::of(name);
    let Some(last) = words.last() else {
        return false;
    };
    let glued = words.glued();
    // A session id is a credential (whoever holds it is the session); other ids are not.
    if DESCRIPTIVE_LAST_WORDS.iter().any(|w| w.as_bytes() == last)
        && !(last == b"id" && contains(glued, b"session"))
    {
        return false;
    }
    if words
        .iter()
        .any(|word| SECRET_WORDS.iter().any(|w| w.as_bytes() == word))
    {
        return true;
    }
    if holds(&SECRET_SUBSTRING_AUTOMATON, glued) {
        return true;
    }
    // `authToken`-style prefixes, but not `author`.
    if words.iter().any(|w| {
        w.starts_with(b"authoriz") || w.starts_with(b"authoris") || w.starts_with(b"authent")
    }) {
        return true;
    }
    let mut previous: Option<&[u8]> = None;
    for word in words.iter() {
        if word == b"key" || word == b"keys" {
            if context != NameContext::Field {
                return true;
            }
            if previous.is_some_and(|p| KEY_QUALIFIERS.iter().any(|q| q.as_bytes() == p)) {
                return true;
            }
        }
        previous = Some(word);
    }
    false
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The lower-case words of a name: split at anything not a letter or digit and where a
/// lower-case letter meets an upper-case one (`clientSecret`). The words are kept glued
/// together (`clientsecret`), each word a range of that, so the name's words and its glued
/// form come from one buffer.
struct Words {
    glued: [u8; MAX_NAME],
    glued_len: usize,
    /// Where each word ends in `glued`; a word starts where the one before ended.
    ends: [u8; MAX_NAME],
    count: usize,
}

impl Words {
    fn of(name: &[u8]) -> Words {
        let mut words = Words {
            glued: [0; MAX_NAME],
            glued_len: 0,
            ends: [0; MAX_NAME],
            count: 0,
        };
        let mut word_start = 0;
        let mut previous_lower = false;
        for &b in name.iter().take(MAX_NAME) {
            if !b.is_ascii_alphanumeric() {
                words.end_word(&mut word_start);
                previous_lower = false;
                continue;
            }
            if b.is_ascii_uppercase() && previous_lower {
                words.end_word(&mut word_start);
            }
            previous_lower = b.is_ascii_lowercase() || b.is_ascii_digit();
            words.glued[words.glued_len] = b.to_ascii_lowercase();
            words.glued_len += 1;
        }
        words.end_word(&mut word_start);
        words
    }

    /// Ends the word begun at `word_start`, if it has a letter.
    fn end_word(&mut self, word_start: &mut usize) {
        if self.glued_len > *word_start {
            // At most one word per byte of a name of at most `MAX_NAME` (128) bytes.
            self.ends[self.count] = self.glued_len as u8;
            self.count += 1;
            *word_start = self.glued_len;
        }
    }

    fn glued(&self) -> &[u8] {
        &self.glued[..self.glued_len]
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let ends = &self.ends[..self.count];
        ends.iter().enumerate().map(move |(i, &end)| {
            let start = if i == 0 { 0 } else { usize::from(ends[i - 1]) };
            &self.glued[start..usize::from(end)]
        })
    }

    fn last(&self) -> Option<&[u8]> {
        self.iter().last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hint walk finds each hint in any case wherever it stands, and nothing in the field
    /// names of an ordinary chat request.
    #[test]
    fn hints_are_found_in_any_case_anywhere_in_a_name() {
        for hint in HINTS {
            for name in [
                hint.to_string(),
                hint.to_uppercase(),
                format!("x-{hint}"),
                format!("My{}Value", hint.to_uppercase()),
            ] {
                assert!(holds_a_hint(name.as_bytes()), "{name}");
            }
        }
        for name in [
            "model",
            "messages",
            "role",
            "content",
            "Content-Type",
            "Host",
            "id",
        ] {
            assert!(!holds_a_hint(name.as_bytes()), "{name}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_walks_find_what_a_substring_search_does(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "tok", "TOKEN", "token", "secre", "secret", "Secret", "pass", "passw",
                    "password", "cred", "credential", "cookie", "sig", "signature", "sess",
                    "session", "auth", "authorization", "jwt", "bearer", "otp", "key", "apikey",
                    "dsn", "private", "access", "to", "ke", "n", "x", "_", "-", ".", "id",
                ]),
                0..6,
            ),
        ) {
            let name = pieces.concat().into_bytes();
            let lower = name.to_ascii_lowercase();
            let holds_any = |patterns: &[&str], bytes: &[u8]| {
                patterns
                    .iter()
                    .any(|pattern| bytes.windows(pattern.len()).any(|run| run == pattern.as_bytes()))
            };
            proptest::prop_assert_eq!(holds_a_hint(&name), holds_any(HINTS, &lower));
            // The substrings' automaton reads glued lower-case words, in their case only.
            proptest::prop_assert_eq!(
                holds(&SECRET_SUBSTRING_AUTOMATON, &name),
                holds_any(SECRET_SUBSTRINGS, &name)
            );
        }
    }

    fn secret(name: &str, context: NameContext) -> bool {
        is_secret_name(name.as_bytes(), context)
    }

    #[test]
    fn token_headers_of_every_vendor_are_secret() {
        for name in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "Set-Cookie",
            "X-Amz-Security-Token",
            "X-Auth-Token",
            "Private-Token",
            "X-Vault-Token",
            "Ocp-Apim-Subscription-Key",
            "X-Api-Key",
            "api-key",
            "X-Goog-Api-Key",
            "X-Csrf-Token",
            "X-Hub-Signature-256",
            "X-Amz-Signature",
            "X-Session-Token",
            "Mcp-Session-Id",
            "X-Client-Secret",
            "X-Password",
        ] {
            assert!(secret(name, NameContext::Header), "{name}");
        }
        for name in [
            "Content-Type",
            "Host",
            "User-Agent",
            "Keep-Alive",
            "X-Request-Id",
            "Content-Length",
            "Accept",
            "X-Amz-Date",
            "X-Amz-Content-Sha256",
        ] {
            assert!(!secret(name, NameContext::Header), "{name}");
        }
    }

    #[test]
    fn json_keys_are_classified_by_pattern() {
        for name in [
            "passwd",
            "password",
            "private_key",
            "aws_secret_access_key",
            "OPENAI_API_KEY",
            "MY_SERVICE_API_KEY",
            "apiKey",
            "clientSecret",
            "accessToken",
            "refresh_token",
            "id_token",
            "db_pass",
            "sessionToken",
            "x-api-key",
            "authToken",
            "secretKey",
            "privateKey",
            "subscriptionKey",
            "SENTRY_DSN",
            "credentials",
        ] {
            assert!(secret(name, NameContext::Field), "{name}");
        }
        for name in [
            "key",
            "author",
            "authority",
            "max_tokens",
            "prompt_tokens",
            "token_type",
            "password_file",
            "access_key_id",
            "model",
            "messages",
            "monkey",
            "keyboard",
            "passage",
            "passenger",
            "compass",
            "signal",
            "design",
            "content",
            "name",
            "tool_call_id",
        ] {
            assert!(!secret(name, NameContext::Field), "{name}");
        }
    }

    #[test]
    fn a_bare_key_is_secret_in_query_strings_and_flags_only() {
        assert!(secret("key", NameContext::Parameter));
        assert!(secret("--key", NameContext::Parameter));
        assert!(!secret("key", NameContext::Field));
        for name in ["api_key", "access_token", "token", "X-Amz-Signature", "sig"] {
            assert!(secret(name, NameContext::Parameter), "{name}");
        }
        for name in ["X-Amz-Credential", "X-Amz-Security-Token"] {
            assert!(secret(name, NameContext::Parameter), "{name}");
        }
        for name in ["page", "q", "X-Amz-Expires", "X-Amz-Algorithm", "limit"] {
            assert!(!secret(name, NameContext::Parameter), "{name}");
        }
    }
}
