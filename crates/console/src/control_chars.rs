//! Makes control characters in captured text visible before it reaches a terminal.
//!
//! Process names (`prctl(PR_SET_NAME)`), paths, argv, hostnames and payloads are chosen by the
//! processes agentscope watches, so a hostile one can put terminal escape sequences in them
//! (`\x1b]0;title\x07` retitles the window, `\x1b[2J` clears the screen, C1 `\u{9b}` is a
//! one-character CSI on some terminals). Every human-readable output passes captured strings
//! through [`escape_controls`]: C0 controls, DEL and C1 controls are written as `\t`, `\n`,
//! `\r` or `\xNN`, so nothing is executed and nothing is hidden. JSON output needs no help:
//! serde_json escapes C0 and DEL, and C1 characters in a JSON string are inert data to a
//! program that parses it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is a C0 control, DEL or a C1 control (Unicode general category Cc).
fn is_control(c: char) -> bool {
    c.is_control()
}

/// `text` with every control character replaced by a visible escape (`\x1b`, `\t`, `\x9b`);
/// borrowed when there is none (the common case costs one scan).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_control(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape_controls`] for multi-line text (error messages that list choices): line breaks
/// stay, every other control character is escaped.
pub fn escape_controls_keeping_lines(text: &str) -> String {
    text.split('\n')
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_character_is_made_visible() {
        let hostile = "\x1b]0;pwned\x07\x1b[2J";
        assert_eq!(escape_controls(hostile), "\\x1b]0;pwned\\x07\\x1b[2J");
        assert_eq!(escape_controls("a\tb\nc\rd"), "a\\tb\\nc\\rd");
        assert_eq!(
            escape_controls("\u{0}\u{7f}\u{9b}\u{85}"),
            "\\x00\\x7f\\x9b\\x85"
        );
        for code in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(code).unwrap();
            let escaped = escape_controls(&c.to_string()).into_owned();
            assert!(
                !escaped.chars().any(char::is_control),
                "{code:#x}: {escaped:?}"
            );
        }
    }

    #[test]
    fn multi_line_text_keeps_its_lines() {
        assert_eq!(
            escape_controls_keeping_lines("agents found:\n  a\x1b[2J\n  b"),
            "agents found:\n  a\\x1b[2J\n  b"
        );
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in [
            "python3",
            "/usr/bin/node",
            "café ☕ 日本",
            "",
            "back\\slash",
        ] {
            assert!(matches!(escape_controls(text), Cow::Borrowed(t) if t == text));
        }
    }
}
