//! SQL text interpretation with `sqlparser`: the operation, the tables a statement touches,
//! and pgvector similarity search.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SqlAnalysis {
    pub(super) operation: String,
    pub(super) tables: Vec<String>,
    pub(super) parse_failed: bool,
    pub(super) distance_operator: bool,
    pub(super) vector_cast: bool,
}

/// Collects relation names, leaving out CTE names and set-returning functions.
#[derive(Default)]
pub(super) struct RelationCollector {
    pub(super) tables: Vec<String>,
    pub(super) cte_names: Vec<String>,
    pub(super) functions: Vec<String>,
}

impl Visitor for RelationCollector {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.cte_names.push(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = factor
        {
            self.functions.push(name.to_string());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let name = relation.to_string();
        if !self.tables.contains(&name) {
            self.tables.push(name);
        }
        ControlFlow::Continue(())
    }
}

pub(super) fn analyse_sql(text: &str) -> SqlAnalysis {
    let (distance_operator, vector_cast) = vector_markers(text);
    let dialect = PostgreSqlDialect {};
    if text.trim().is_empty() {
        return SqlAnalysis {
            operation: String::new(),
            tables: Vec::new(),
            parse_failed: false,
            distance_operator,
            vector_cast,
        };
    }
    match Parser::parse_sql(&dialect, text) {
        Ok(statements) if !statements.is_empty() => {
            let mut collector = RelationCollector::default();
            let _ = statements.visit(&mut collector);
            let RelationCollector {
                tables,
                cte_names,
                functions,
            } = collector;
            let tables = tables
                .into_iter()
                .filter(|t| !functions.contains(t))
                .filter(|t| !cte_names.iter().any(|c| c == t))
                .collect();
            let operation = statements
                .iter()
                .map(statement_operation)
                .find(|op| !is_transaction_control(op))
                .unwrap_or_else(|| statement_operation(&statements[0]));
            SqlAnalysis {
                operation,
                tables,
                parse_failed: false,
                distance_operator,
                vector_cast,
            }
        }
        _ => SqlAnalysis {
            operation: first_keyword(text),
            tables: Vec::new(),
            parse_failed: true,
            distance_operator,
            vector_cast,
        },
    }
}

pub(super) fn statement_operation(statement: &Statement) -> String {
    use sqlparser::ast::SetExpr;
    match statement {
        Statement::Query(query) => match query.body.as_ref() {
            SetExpr::Insert(_) => "INSERT",
            SetExpr::Update(_) => "UPDATE",
            SetExpr::Delete(_) => "DELETE",
            SetExpr::Merge(_) => "MERGE",
            _ => "SELECT",
        }
        .to_string(),
        Statement::Insert(_) => "INSERT".into(),
        Statement::Update(_) => "UPDATE".into(),
        Statement::Delete(_) => "DELETE".into(),
        Statement::Merge(_) => "MERGE".into(),
        other => first_keyword(&other.to_string()),
    }
}

/// First word of the statement, upper case (after comments and an opening parenthesis).
pub(super) fn first_keyword(text: &str) -> String {
    let dialect = PostgreSqlDialect {};
    if let Ok(tokens) = Tokenizer::new(&dialect, text).tokenize() {
        for token in tokens {
            match token {
                Token::Whitespace(_) | Token::LParen => continue,
                Token::Word(word) => return word.value.to_ascii_uppercase(),
                _ => break,
            }
        }
        return String::new();
    }
    // Unterminated literal or comment (a cut-off query): the raw first word will do.
    text.split(|c: char| !c.is_ascii_alphabetic() && c != '_')
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// (a pgvector distance operator, a vector cast or distance function) outside literals and
/// comments.
pub(super) fn vector_markers(text: &str) -> (bool, bool) {
    const DISTANCE_OPERATORS: [&str; 6] = ["<->", "<#>", "<=>", "<+>", "<~>", "<%>"];
    const VECTOR_TYPES: [&str; 3] = ["vector", "halfvec", "sparsevec"];
    const DISTANCE_FUNCTIONS: [&str; 6] = [
        "l2_distance",
        "cosine_distance",
        "inner_product",
        "l1_distance",
        "hamming_distance",
        "jaccard_distance",
    ];
    // Most SQL has none of the markers: skip tokenizing it a second time.
    let lower = text.to_ascii_lowercase();
    let candidate = lower.contains('<')
        || VECTOR_TYPES.iter().any(|t| lower.contains(t))
        || DISTANCE_FUNCTIONS.iter().any(|f| lower.contains(f));
    if !candidate {
        return (false, false);
    }
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, text).tokenize() else {
        let distance = DISTANCE_OPERATORS.iter().any(|op| lower.contains(op));
        let cast = VECTOR_TYPES
            .iter()
            .any(|t| lower.contains(&format!("::{t}")));
        return (distance, cast);
    };
    // Code without literals or comments, so operators split across tokens are found by text.
    let mut code = String::with_capacity(text.len());
    let mut cast = false;
    let mut previous_was_cast = false;
    for token in &tokens {
        match token {
            Token::Whitespace(_) => code.push(' '),
            Token::SingleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_) => code.push_str("''"),
            Token::Word(word) => {
                let lower = word.value.to_ascii_lowercase();
                if previous_was_cast && VECTOR_TYPES.contains(&lower.as_str()) {
                    cast = true;
                }
                if DISTANCE_FUNCTIONS.contains(&lower.as_str()) {
                    cast = true;
                }
                code.push_str(&lower);
            }
            other => code.push_str(&other.to_string()),
        }
        if !matches!(token, Token::Whitespace(_)) {
            previous_was_cast = matches!(token, Token::DoubleColon);
        }
    }
    let distance = DISTANCE_OPERATORS.iter().any(|op| code.contains(op));
    (distance, cast)
}
