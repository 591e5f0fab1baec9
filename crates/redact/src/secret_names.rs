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

/// Whether a value named `name` is a credential. `name` is as written (any case, separators,
/// leading dashes of a flag).
pub fn is_secret_name(name: &[u8], context: NameContext) -> bool {
    if name.is_empty() || name.len() > 128 {
        return false;
    }
    // Most names hold none of these: answer without splitting them.
    let lower = name.to_ascii_lowercase();
    if !HINTS
        .iter()
        .any(|hint| memchr::memmem::find(&lower, hint.as_bytes()).is_some())
    {
        return false;
    }
    let words = words_of(name);
    let Some(last) = words.last() else {
        return false;
    };
    // A session id is a credential (whoever holds it is the session); other ids are not.
    let glued: String = words.concat();
    if DESCRIPTIVE_LAST_WORDS.contains(&last.as_str())
        && !(last == "id" && glued.contains("session"))
    {
        return false;
    }
    if words.iter().any(|w| SECRET_WORDS.contains(&w.as_str())) {
        return true;
    }
    if SECRET_SUBSTRINGS.iter().any(|s| glued.contains(s)) {
        return true;
    }
    // `authToken`-style prefixes, but not `author`.
    if words
        .iter()
        .any(|w| w.starts_with("authoriz") || w.starts_with("authoris") || w.starts_with("authent"))
    {
        return true;
    }
    for (i, w) in words.iter().enumerate() {
        if w == "key" || w == "keys" {
            if context != NameContext::Field {
                return true;
            }
            if i > 0 && KEY_QUALIFIERS.contains(&words[i - 1].as_str()) {
                return true;
            }
        }
    }
    false
}

/// Lower-case words of a name: split at anything not a letter or digit and where a lower-case
/// letter meets an upper-case one (`clientSecret`).
fn words_of(name: &[u8]) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for &b in name {
        if !b.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if b.is_ascii_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = b.is_ascii_lowercase() || b.is_ascii_digit();
        current.push(b.to_ascii_lowercase() as char);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

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
