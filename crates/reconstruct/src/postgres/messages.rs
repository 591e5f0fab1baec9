//! The records a PostgreSQL connection yields: executed statements and what is known of the
//! session.

#[allow(unused_imports)]
use super::*;

/// Which query sub-protocol carried a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryProtocol {
    /// One `Query` ('Q') message holding the SQL text.
    Simple,
    /// `Parse`/`Bind`/`Execute`: the text was prepared once and executed with parameters.
    Extended,
}

/// One executed statement (or, for the simple protocol, one `Query` message, which may hold
/// several `;`-separated statements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlStatement {
    /// SQL text as sent (empty when the query was not captured, only its answer).
    pub text: String,
    /// The text is the first [`SQL_TEXT_LIMIT`] bytes of a longer query.
    pub text_truncated: bool,
    pub protocol: QueryProtocol,
    /// Name of the prepared statement for extended-protocol executions (`None` = unnamed).
    pub statement_name: Option<String>,
    /// Command, upper case: from the server's `CommandComplete` tag when seen (`SELECT`,
    /// `INSERT`, `CREATE TABLE`), else from the SQL text.
    pub operation: String,
    /// Tables the SQL reads or writes, as written (schema-qualified when it was), deduplicated
    /// in order of appearance. CTE names and table functions are not tables.
    pub tables: Vec<String>,
    /// Tables the answer named, when the statement read the system catalogue
    /// (`information_schema.tables`, `pg_tables`, psql's `\dt` over `pg_class`): what the
    /// session's role can see, schema-qualified when the answer said the schema, PostgreSQL's
    /// own left out, at most 1,000.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listed_tables: Vec<String>,
    /// The SQL text did not parse (`operation` then comes from its first keyword and `tables`
    /// is empty).
    pub sql_parse_failed: bool,
    /// Session user and database from the startup message (when it was captured).
    pub user: Option<String>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    /// Rows returned or affected: the `CommandComplete` count, else the `DataRow`s seen.
    pub rows: Option<u64>,
    /// `ErrorResponse` as `SEVERITY SQLSTATE: message`.
    pub error: Option<String>,
    /// SQLSTATE of the error (`42P01` = undefined table).
    pub sqlstate: Option<String>,
    /// pgvector similarity search: a distance operator (`<->`, `<#>`, `<=>`, `<+>`, `<~>`,
    /// `<%>`), or a query reading with a `vector`/`halfvec`/`sparsevec` cast or distance
    /// function. Marks the statement as retrieval.
    pub vector_search: bool,
    /// When the query message started (capture timestamp of its first byte's feed).
    pub ts_ns: u64,
    /// When the server finished answering (`ReadyForQuery`, or the last answer seen).
    pub end_ts_ns: u64,
    /// The server's answer was not (completely) seen: the connection ended or capture started
    /// or stopped in between.
    pub partial: bool,
}

/// What is known about the session as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PostgresSession {
    pub user: Option<String>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    /// `server_version` parameter reported by the server.
    pub server_version: Option<String>,
    /// Authentication the server asked for: `ok` (trust), `cleartext_password`, `md5`,
    /// `sasl` (SCRAM), `gss`, `sspi`, ...
    pub auth_method: Option<String>,
    /// The client asked for TLS (`SSLRequest`).
    pub ssl_requested: bool,
    /// The server accepted TLS or GSS encryption: everything after that is ciphertext and was
    /// not parsed.
    pub encrypted: bool,
    /// An error the server sent outside any query (e.g. authentication failed, unknown
    /// database), as `SEVERITY SQLSTATE: message`.
    pub session_error: Option<String>,
    /// Bytes that could not be framed (capture started mid-message, or corrupt data) or that
    /// were ciphertext.
    pub unparsed_bytes: u64,
    /// Messages that were framed but whose body did not have the expected shape.
    pub malformed_messages: u64,
}
