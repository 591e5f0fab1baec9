//! What `/` types: a search query over a pane's rows, and for the timeline over everything an
//! observation carried (prompts, tool arguments and results, HTTP bodies, SQL, command lines),
//! not only its one-line summary.
//!
//! The language (docs/console.md, "Search"): whitespace-separated clauses, all of which must
//! hold.
//! - `word` — the text contains it (case-insensitive); `"two words"` quotes a phrase.
//! - `!clause` — the clause must not hold.
//! - `/regex/` — the text matches the regular expression (the `regex` crate's syntax,
//!   case-insensitive; bounded in size and time by that crate's linear-time engine).
//! - `field:value` — on timeline entries: `kind:` (llm, mcp, exec, file, sql, http, …), `tool:`
//!   (a tool the entry called or served), `pid:` (the process or its parent), `host:` (the
//!   server it talked to), `comm:` (the process name), `session:` (the session's number as the
//!   timeline shows it, `2` or `s2` for all its conversations, `s2.3` for one, or its process
//!   id). Elsewhere a field clause is plain
//!   text.
//!
//! The parser is small and hand-written: the clauses are shell-like words, and no crate offers
//! this query shape without pulling in a query engine.

use regex::{Regex, RegexBuilder};

/// A field a timeline entry is searched by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Kind,
    Tool,
    Pid,
    Host,
    Comm,
    Session,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "kind" => Field::Kind,
            "tool" => Field::Tool,
            "pid" => Field::Pid,
            "host" => Field::Host,
            "comm" => Field::Comm,
            "session" => Field::Session,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Field::Kind => "kind",
            Field::Tool => "tool",
            Field::Pid => "pid",
            Field::Host => "host",
            Field::Comm => "comm",
            Field::Session => "session",
        }
    }
}

#[derive(Debug, Clone)]
enum Test {
    /// Lower case.
    Text(String),
    Regex(Regex),
    /// Value in lower case.
    Field(Field, String),
}

#[derive(Debug, Clone)]
struct Clause {
    test: Test,
    negated: bool,
}

/// The facts of one row a field clause can ask about; text clauses read `texts`.
pub trait Searchable {
    /// The texts searched by words and regular expressions.
    fn texts(&self) -> Vec<&str>;
    /// Whether `field` holds `value` (lower case); `None` when this row has no such field,
    /// which makes the clause a plain text clause.
    fn field_matches(&self, field: Field, value: &str) -> Option<bool>;
}

/// Plain texts (the agents, graph and findings panes): field clauses are text.
impl Searchable for [&str] {
    fn texts(&self) -> Vec<&str> {
        self.to_vec()
    }

    fn field_matches(&self, _: Field, _: &str) -> Option<bool> {
        None
    }
}

/// A parsed query; the empty query matches everything.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    clauses: Vec<Clause>,
    /// What could not be parsed (a bad regular expression): shown to the user; the clause is
    /// left out.
    pub error: Option<String>,
}

/// Longest regular expression compiled, in bytes of its program: a pasted monster is refused,
/// not compiled into megabytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl SearchQuery {
    pub fn parse(text: &str) -> Self {
        let mut query = SearchQuery::default();
        for word in words(text) {
            let (negated, word) = match word.strip_prefix('!') {
                Some(rest) if !rest.is_empty() => (true, rest.to_string()),
                _ => (false, word),
            };
            let test = if word.len() >= 2 && word.starts_with('/') && word.ends_with('/') {
                match RegexBuilder::new(&word[1..word.len() - 1])
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                {
                    Ok(regex) => Test::Regex(regex),
                    Err(err) => {
                        query.error = Some(format!("bad regular expression {word}: {err}"));
                        continue;
                    }
                }
            } else {
                match word.split_once(':').and_then(|(name, value)| {
                    Field::parse(&name.to_lowercase())
                        .filter(|_| !value.is_empty())
                        .map(|field| (field, value))
                }) {
                    Some((field, value)) => Test::Field(field, value.to_lowercase()),
                    None => Test::Text(word.to_lowercase()),
                }
            };
            query.clauses.push(Clause { test, negated });
        }
        query
    }

    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    pub fn matches<S: Searchable + ?Sized>(&self, row: &S) -> bool {
        if self.clauses.is_empty() {
            return true;
        }
        let texts = row.texts();
        self.clauses.iter().all(|clause| {
            let holds = match &clause.test {
                Test::Text(needle) => texts.iter().any(|t| contains_ignore_case(t, needle)),
                Test::Regex(regex) => texts.iter().any(|t| regex.is_match(t)),
                Test::Field(field, value) => {
                    row.field_matches(*field, value).unwrap_or_else(|| {
                        let text = format!("{}:{value}", field.name());
                        texts.iter().any(|t| contains_ignore_case(t, &text))
                    })
                }
            };
            holds != clause.negated
        })
    }

    /// The plain words and phrases of the query (not negated), for highlighting matches.
    pub fn highlight_terms(&self) -> Vec<&str> {
        self.clauses
            .iter()
            .filter(|c| !c.negated)
            .filter_map(|c| match &c.test {
                Test::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Shell-like words: whitespace separates, double quotes make a phrase (a quote inside a word
/// ends or starts a quoted part of it), and a word that starts with `/` (after an optional
/// `!`) runs to the next `/` that is followed by whitespace or the end, so a regular
/// expression may hold spaces; `\/` inside it is a slash.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut regex = false;
    let mut started = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if regex {
            current.push(c);
            if c == '\\' {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            } else if c == '/' && chars.peek().is_none_or(|n| n.is_whitespace()) {
                regex = false;
            }
            continue;
        }
        match c {
            '/' if current.is_empty() || current == "!" => {
                current.push(c);
                regex = true;
                started = true;
            }
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started && !current.is_empty() {
        words.push(current);
    }
    words
}

/// `needle` must already be lower case.
pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row<'a> {
        texts: Vec<&'a str>,
        kind: &'a str,
        pid: u32,
    }

    impl Searchable for Row<'_> {
        fn texts(&self) -> Vec<&str> {
            self.texts.clone()
        }

        fn field_matches(&self, field: Field, value: &str) -> Option<bool> {
            match field {
                Field::Kind => Some(self.kind == value),
                Field::Pid => Some(self.pid.to_string() == value),
                _ => None,
            }
        }
    }

    fn row<'a>(texts: &[&'a str], kind: &'a str, pid: u32) -> Row<'a> {
        Row {
            texts: texts.to_vec(),
            kind,
            pid,
        }
    }

    #[test]
    fn words_phrases_negation_regex_and_fields() {
        let ticket = row(
            &[
                "read_file SUP-4711",
                "... ignore your previous instructions ...",
            ],
            "mcp",
            42,
        );
        let post = row(
            &["POST 127.0.0.2/collect", "Ada Lovelace|ada@example.com"],
            "http",
            43,
        );
        let cases = [
            ("Ada Lovelace", [false, true]),
            ("\"lovelace|ada\"", [false, true]),
            ("\"ada lovelace\"", [false, true]),
            ("!ada", [true, false]),
            ("/ignore (all|your) previous/", [true, false]),
            ("/^post /", [false, true]),
            ("kind:http", [false, true]),
            ("!kind:http", [true, false]),
            ("pid:42 previous", [true, false]),
            ("pid:43 previous", [false, false]),
            // No such field on these rows: the clause is text.
            ("host:127.0.0.2", [false, false]),
            ("", [true, true]),
        ];
        for (query, expected) in cases {
            let parsed = SearchQuery::parse(query);
            assert!(parsed.error.is_none(), "{query}");
            assert_eq!(
                [parsed.matches(&ticket), parsed.matches(&post)],
                expected,
                "{query}"
            );
        }
    }

    #[test]
    fn regular_expressions_keep_their_spaces_and_slashes() {
        assert_eq!(
            words(r#"/a b\/c/ !/x y/ plain "two words""#),
            [r"/a b\/c/", "!/x y/", "plain", "two words"]
        );
    }

    #[test]
    fn a_bad_regex_is_reported_and_left_out() {
        let query = SearchQuery::parse("/([/ ada");
        assert!(query
            .error
            .as_deref()
            .unwrap()
            .contains("bad regular expression"));
        assert!(query.matches(&["Ada"][..]));
        assert!(!query.matches(&["Grace"][..]));
    }

    #[test]
    fn every_clause_needs_some_text_and_case_does_not_matter() {
        let query = SearchQuery::parse("SQL customers");
        assert!(query.matches(&["sql", "SELECT * FROM Customers"][..]));
        assert!(!query.matches(&["sql", "SELECT * FROM orders"][..]));
        assert!(SearchQuery::parse("").matches(&["anything"][..]));
        assert!(SearchQuery::parse("ÉTÉ").matches(&["un été"][..]));
    }

    #[test]
    fn plain_texts_take_field_clauses_as_text() {
        let texts: &[&str] = &["kind:llm appears literally"];
        assert!(SearchQuery::parse("kind:llm").matches(texts));
        assert!(!SearchQuery::parse("kind:exec").matches(texts));
    }
}
