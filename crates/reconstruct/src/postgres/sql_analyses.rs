//! Analyses of SQL texts already read, so a statement sent again is not parsed again.
//!
//! An agent sends the same statements over and over (its ORM's or its tools' queries, with
//! `$1` parameters in the extended protocol), on every connection of its pool and from every
//! new process of the same program; parsing one with `sqlparser` was about a twentieth of the
//! replay's time. [`analyse_sql`] depends on the text alone, so a remembered analysis is the
//! same answer. Remembered per thread (a pipeline runs on one), for at most [`MAX_TEXTS`]
//! texts of at most [`MAX_TEXT_BYTES`] each (longer ones are parsed every time); the table
//! starts over when full, so it holds well under a megabyte whatever the input.

use std::cell::RefCell;
use std::collections::HashMap;

use super::sql::{analyse_sql, SqlAnalysis};

/// Texts remembered at most.
pub(super) const MAX_TEXTS: usize = 256;
/// Longer texts are parsed every time and not remembered.
pub(super) const MAX_TEXT_BYTES: usize = 2048;

thread_local! {
    static ANALYSES: RefCell<HashMap<String, SqlAnalysis>> = RefCell::new(HashMap::new());
}

/// [`analyse_sql`] of `text`, remembered.
pub(super) fn analysis_of(text: &str) -> SqlAnalysis {
    if text.len() > MAX_TEXT_BYTES {
        return analyse_sql(text);
    }
    ANALYSES.with(|analyses| {
        if let Some(known) = analyses.borrow().get(text) {
            return known.clone();
        }
        let analysis = analyse_sql(text);
        let mut analyses = analyses.borrow_mut();
        if analyses.len() >= MAX_TEXTS {
            analyses.clear();
        }
        analyses.insert(text.to_string(), analysis.clone());
        analysis
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_analyses_are_what_the_parser_says() {
        let texts = [
            "SELECT id, status FROM orders WHERE customer_id = $1",
            "SELEKT oops FROM",
            "WITH recent AS (SELECT * FROM events) SELECT * FROM recent JOIN users ON true",
            "SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 5",
            "",
        ];
        for _ in 0..2 {
            for text in texts {
                assert_eq!(analysis_of(text), analyse_sql(text), "{text}");
            }
        }
        let long = format!("SELECT {} FROM t", "a, ".repeat(MAX_TEXT_BYTES) + "b");
        assert_eq!(analysis_of(&long), analyse_sql(&long));
        ANALYSES.with(|analyses| assert!(!analyses.borrow().contains_key(&long)));
    }

    #[test]
    fn the_table_stays_bounded() {
        for i in 0..MAX_TEXTS * 3 {
            let text = format!("SELECT * FROM table_{i}");
            assert_eq!(analysis_of(&text), analyse_sql(&text));
            ANALYSES.with(|analyses| assert!(analyses.borrow().len() <= MAX_TEXTS));
        }
    }
}
