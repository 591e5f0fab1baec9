//! The PostgreSQL session: follows startup, the simple and extended query protocols, and
//! pairs every query with the backend's answer. Implements the wire-parser contract.

#[allow(unused_imports)]
use super::*;

/// Reassembles the SQL statements of one PostgreSQL connection.
#[derive(Debug)]
pub struct PostgresConnection {
    pub(super) frontend: Framer,
    pub(super) backend: Framer,
    pub(super) session: PostgresSession,
    /// Prepared statements by name ("" = the unnamed one): text and whether it was cut.
    pub(super) statements: HashMap<String, PreparedText>,
    /// Portals by name: the statement they were bound to.
    pub(super) portals: HashMap<String, PreparedText>,
    /// Batches awaiting `ReadyForQuery`, oldest first. Each `Query` message is a batch; in the
    /// extended protocol a `Sync` closes one.
    pub(super) batches: VecDeque<Batch>,
    /// Set after the server answers `ReadyForQuery` once: errors before that belong to the
    /// session, not to a query.
    pub(super) ready_seen: bool,
    /// A startup message was seen, so the first `ReadyForQuery` ends the startup, not a query
    /// (queries may be pipelined before it when the client does not wait).
    pub(super) startup_pending: bool,
}

#[derive(Debug, Clone, Default)]
pub(super) struct PreparedText {
    pub(super) name: Option<String>,
    pub(super) text: String,
    pub(super) truncated: bool,
}

#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) entries: Vec<Pending>,
    /// Closed by `Sync` (or a simple `Query`); further extended messages start a new batch.
    pub(super) closed: bool,
    /// The last `Parse` of the batch, to report an error when nothing was executed.
    pub(super) last_parse: Option<PreparedText>,
    pub(super) last_parse_ts: u64,
    /// An error that no execution in the batch took.
    pub(super) error: Option<ServerError>,
    pub(super) error_ts: u64,
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) prepared: PreparedText,
    pub(super) protocol: QueryProtocol,
    pub(super) ts_ns: u64,
    pub(super) end_ts_ns: u64,
    /// Operation and count of each `CommandComplete` (several for a multi-statement query).
    pub(super) completions: Vec<(String, Option<u64>)>,
    pub(super) data_rows: u64,
    /// The answer's table-name columns, when it answers a catalogue query.
    pub(super) catalogue: Option<super::catalogue::CatalogueColumns>,
    /// Tables the catalogue answer named.
    pub(super) listed_tables: std::collections::BTreeSet<String>,
    pub(super) error: Option<ServerError>,
    /// The server finished this execution (`CommandComplete`, `ErrorResponse`,
    /// `EmptyQueryResponse`, `PortalSuspended`); simple queries finish at `ReadyForQuery`.
    pub(super) done: bool,
    /// Text unknown: only the answer was captured.
    pub(super) orphan: bool,
}

#[derive(Debug, Clone)]
pub(super) struct ServerError {
    pub(super) severity: String,
    pub(super) code: Option<String>,
    pub(super) message: String,
}

impl ServerError {
    pub(super) fn describe(&self) -> String {
        match &self.code {
            Some(code) => format!("{} {}: {}", self.severity, code, self.message),
            None => format!("{}: {}", self.severity, self.message),
        }
    }
}

impl Default for PostgresConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresConnection {
    /// Upper bound of the heap this connection holds (charged to the memory budget by the
    /// reconstructor).
    pub fn held_bytes(&self) -> usize {
        let text = |p: &PreparedText| 96 + p.text.len() + p.name.as_ref().map_or(0, String::len);
        self.frontend.held_bytes()
            + self.backend.held_bytes()
            + self
                .statements
                .iter()
                .chain(self.portals.iter())
                .map(|(name, p)| 64 + name.len() + text(p))
                .sum::<usize>()
            + self
                .batches
                .iter()
                .map(|b| {
                    256 + b.last_parse.as_ref().map_or(0, text)
                        + b.entries
                            .iter()
                            .map(|e| 256 + text(&e.prepared) + e.completions.len() * 48)
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    pub fn new() -> Self {
        PostgresConnection {
            frontend: Framer::new(Side::Frontend),
            backend: Framer::new(Side::Backend),
            session: PostgresSession::default(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            batches: VecDeque::new(),
            ready_seen: false,
            startup_pending: false,
        }
    }

    /// True when `first_client_bytes` (what the client sent first) is a PostgreSQL
    /// `StartupMessage` (protocol 3.x), `SSLRequest`, `GSSENCRequest` or `CancelRequest`.
    /// Needs at least 8 bytes.
    pub fn looks_like_postgres(first_client_bytes: &[u8]) -> bool {
        matches!(
            classify_untyped(first_client_bytes),
            Some(Untyped::Startup | Untyped::SslRequest | Untyped::GssEncRequest | Untyped::Cancel)
        )
    }

    /// What is known about the session (user, database, TLS, unparsed bytes).
    pub fn session(&self) -> &PostgresSession {
        &self.session
    }

    /// Feeds bytes of one direction (`Egress` = client to server, `Ingress` = server to client)
    /// and returns the statements the server finished answering.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8], ts_ns: u64) -> Vec<SqlStatement> {
        let mut out = Vec::new();
        match direction {
            Direction::Egress => {
                self.frontend.push(bytes, ts_ns);
                while let Some(frame) = self.frontend.next_frame(&mut self.session) {
                    self.on_frontend(frame);
                }
            }
            Direction::Ingress => {
                self.backend.push(bytes, ts_ns);
                while let Some(frame) = self.backend.next_frame(&mut self.session) {
                    self.on_backend(frame, &mut out);
                }
            }
            Direction::Unknown => {
                self.session.unparsed_bytes = self
                    .session
                    .unparsed_bytes
                    .saturating_add(bytes.len() as u64);
            }
        }
        self.frontend.compact();
        self.backend.compact();
        out
    }

    /// Ends the connection: every statement still waiting for its answer is returned, flagged
    /// partial, including a query whose message was cut off.
    pub fn finish(&mut self) -> Vec<SqlStatement> {
        if let Some(frame) = self.frontend.take_incomplete() {
            self.on_frontend(frame);
        }
        let mut out = Vec::new();
        while let Some(batch) = self.batches.pop_front() {
            self.emit_batch(batch, false, &mut out);
        }
        out
    }

    pub(super) fn on_frontend(&mut self, frame: Frame) {
        let ts = frame.ts_ns;
        match frame.kind {
            FrameKind::Untyped(Untyped::SslRequest) => {
                self.session.ssl_requested = true;
                self.frontend.mode = Mode::Startup;
                self.backend.mode = Mode::EncryptionAnswer;
            }
            FrameKind::Untyped(Untyped::GssEncRequest) => {
                self.frontend.mode = Mode::Startup;
                self.backend.mode = Mode::EncryptionAnswer;
            }
            FrameKind::Untyped(Untyped::Startup) => {
                self.startup_pending = true;
                self.on_startup(&frame.body);
                self.frontend.mode = Mode::Typed;
            }
            FrameKind::Untyped(Untyped::Cancel) => {
                // A cancel request opens its own connection and carries no SQL.
                self.frontend.mode = Mode::Typed;
            }
            FrameKind::Typed(b'Q') => {
                let mut reader = BodyReader::new(&frame.body);
                let text = reader.text_prefix();
                let prepared = PreparedText {
                    name: None,
                    text,
                    truncated: frame.truncated,
                };
                self.close_open_batch();
                let mut batch = Batch {
                    closed: true,
                    ..Batch::default()
                };
                batch
                    .entries
                    .push(Pending::new(prepared, QueryProtocol::Simple, ts));
                self.batches.push_back(batch);
            }
            FrameKind::Typed(b'P') => {
                let mut reader = BodyReader::new(&frame.body);
                let (Some(name), text) = (reader.cstr(), reader.text_prefix()) else {
                    self.session.malformed_messages += 1;
                    return;
                };
                let prepared = PreparedText {
                    name: (!name.is_empty()).then_some(name.clone()),
                    text,
                    truncated: frame.truncated,
                };
                let batch = self.open_batch();
                batch.last_parse = Some(prepared.clone());
                batch.last_parse_ts = ts;
                self.statements.insert(name, prepared);
            }
            FrameKind::Typed(b'B') => {
                let mut reader = BodyReader::new(&frame.body);
                let (Some(portal), Some(statement)) = (reader.cstr(), reader.cstr()) else {
                    self.session.malformed_messages += 1;
                    return;
                };
                let prepared = self.statements.get(&statement).cloned().unwrap_or_else(|| {
                    // Prepared before capture started: the name is all there is.
                    PreparedText {
                        name: (!statement.is_empty()).then_some(statement),
                        text: String::new(),
                        truncated: false,
                    }
                });
                self.open_batch();
                self.portals.insert(portal, prepared);
            }
            FrameKind::Typed(b'E') => {
                let mut reader = BodyReader::new(&frame.body);
                let Some(portal) = reader.cstr() else {
                    self.session.malformed_messages += 1;
                    return;
                };
                let prepared = self.portals.get(&portal).cloned().unwrap_or_default();
                let batch = self.open_batch();
                batch
                    .entries
                    .push(Pending::new(prepared, QueryProtocol::Extended, ts));
            }
            FrameKind::Typed(b'S') => self.on_sync(),
            FrameKind::Typed(b'C') => {
                let mut reader = BodyReader::new(&frame.body);
                let (Some(kind), Some(name)) = (reader.byte(), reader.cstr()) else {
                    self.session.malformed_messages += 1;
                    return;
                };
                match kind {
                    b'S' => {
                        self.statements.remove(&name);
                    }
                    b'P' => {
                        self.portals.remove(&name);
                    }
                    _ => self.session.malformed_messages += 1,
                }
            }
            // Describe, Flush, Terminate, password/SASL, COPY data, function calls: no SQL.
            _ => {}
        }
    }

    pub(super) fn on_startup(&mut self, body: &[u8]) {
        let mut reader = BodyReader::new(body);
        while let Some(key) = reader.cstr() {
            if key.is_empty() {
                break;
            }
            let Some(value) = reader.cstr() else { break };
            match key.as_str() {
                "user" => self.session.user = Some(value),
                "database" => self.session.database = Some(value),
                "application_name" => self.session.application_name = Some(value),
                _ => {}
            }
        }
        // The server defaults the database to the user name.
        if self.session.database.is_none() {
            self.session.database = self.session.user.clone();
        }
    }

    pub(super) fn on_sync(&mut self) {
        if !self.close_open_batch() {
            // A Sync with nothing before it still gets its own ReadyForQuery.
            self.batches.push_back(Batch {
                closed: true,
                ..Batch::default()
            });
        }
    }

    /// The batch extended-protocol messages go to, created when none is open.
    pub(super) fn open_batch(&mut self) -> &mut Batch {
        if self.batches.back().is_none_or(|b| b.closed) {
            self.batches.push_back(Batch::default());
        }
        self.batches.back_mut().expect("a batch was just ensured")
    }

    /// Closes the open batch; false when there was none.
    pub(super) fn close_open_batch(&mut self) -> bool {
        match self.batches.back_mut() {
            Some(batch) if !batch.closed => {
                batch.closed = true;
                true
            }
            _ => false,
        }
    }

    /// The execution that backend results belong to: the first unfinished one of the oldest
    /// batch. When the query was not captured, an orphan entry stands in for it.
    pub(super) fn current_entry(&mut self, ts: u64) -> &mut Pending {
        if self.batches.is_empty() {
            self.batches.push_back(Batch {
                closed: true,
                ..Batch::default()
            });
        }
        let batch = self.batches.front_mut().expect("a batch was just ensured");
        let index = match batch.entries.iter().position(|e| !e.done) {
            Some(index) => index,
            None => {
                let mut orphan = Pending::new(PreparedText::default(), QueryProtocol::Simple, ts);
                orphan.orphan = true;
                batch.entries.push(orphan);
                batch.entries.len() - 1
            }
        };
        &mut batch.entries[index]
    }

    pub(super) fn on_backend(&mut self, frame: Frame, out: &mut Vec<SqlStatement>) {
        let ts = frame.ts_ns;
        match frame.kind {
            FrameKind::EncryptionAnswer(accepted) => {
                if accepted {
                    self.session.encrypted = true;
                    self.frontend.mode = Mode::Encrypted;
                    self.backend.mode = Mode::Encrypted;
                } else {
                    self.backend.mode = Mode::Typed;
                }
            }
            FrameKind::Typed(b'R') => {
                let mut reader = BodyReader::new(&frame.body);
                if let Some(code) = reader.u32() {
                    // Later SASL steps (11, 12) and GSS continuations (8) say nothing new.
                    if !matches!(code, 8 | 11 | 12) {
                        self.session.auth_method = Some(auth_method_name(code));
                    }
                }
            }
            FrameKind::Typed(b'S') => {
                let mut reader = BodyReader::new(&frame.body);
                if let (Some(name), Some(value)) = (reader.cstr(), reader.cstr()) {
                    match name.as_str() {
                        "server_version" => self.session.server_version = Some(value),
                        "session_authorization" if self.session.user.is_none() => {
                            self.session.user = Some(value)
                        }
                        "application_name" if self.session.application_name.is_none() => {
                            self.session.application_name = Some(value)
                        }
                        _ => {}
                    }
                }
            }
            FrameKind::Typed(b'C') => {
                // The answer's rows ended: no more row bytes are kept.
                self.backend.keep_row_bytes = 0;
                let tag = BodyReader::new(&frame.body).cstr().unwrap_or_default();
                let entry = self.current_entry(ts);
                entry.completions.push(parse_command_tag(&tag));
                entry.end_ts_ns = ts;
                if entry.protocol == QueryProtocol::Extended {
                    entry.done = true;
                }
            }
            FrameKind::Typed(b'I') | FrameKind::Typed(b's') => {
                let entry = self.current_entry(ts);
                entry.end_ts_ns = ts;
                if entry.protocol == QueryProtocol::Extended {
                    entry.done = true;
                }
            }
            FrameKind::Typed(b'T') => {
                let entry = self.current_entry(ts);
                entry.catalogue =
                    super::catalogue::catalogue_columns(&entry.prepared.text, &frame.body);
                let reads_catalogue = entry.catalogue.is_some();
                self.backend.keep_row_bytes = if reads_catalogue {
                    super::catalogue::CATALOGUE_ROW_BYTES
                } else {
                    0
                };
            }
            FrameKind::Typed(b'D') => {
                let entry = self.current_entry(ts);
                entry.data_rows = entry.data_rows.saturating_add(1);
                entry.end_ts_ns = ts;
                if let Some(columns) = entry.catalogue {
                    super::catalogue::add_listed_table(
                        columns,
                        &frame.body,
                        &mut entry.listed_tables,
                    );
                }
            }
            FrameKind::Typed(b'E') => {
                let error = parse_error_fields(&frame.body);
                if self.startup_pending || !self.ready_seen && self.batches.is_empty() {
                    self.session.session_error = Some(error.describe());
                    return;
                }
                let batch_has_execution = self
                    .batches
                    .front()
                    .is_some_and(|b| b.entries.iter().any(|e| !e.done));
                if batch_has_execution {
                    let entry = self.current_entry(ts);
                    entry.error = Some(error);
                    entry.end_ts_ns = ts;
                    entry.done = true;
                } else if let Some(batch) = self.batches.front_mut() {
                    // Failed at Parse or Bind, before any Execute: kept for the batch's end.
                    batch.error = Some(error);
                    batch.error_ts = ts;
                } else {
                    let entry = self.current_entry(ts);
                    entry.error = Some(error);
                    entry.done = true;
                }
            }
            FrameKind::Typed(b'Z') => {
                self.backend.keep_row_bytes = 0;
                self.ready_seen = true;
                if std::mem::replace(&mut self.startup_pending, false) {
                    return;
                }
                if let Some(mut batch) = self.batches.pop_front() {
                    for entry in &mut batch.entries {
                        entry.end_ts_ns = ts;
                    }
                    batch.error_ts = batch.error_ts.max(ts);
                    self.emit_batch(batch, true, out);
                }
            }
            _ => {}
        }
    }

    /// Turns a batch into statements. `answered`: the server's `ReadyForQuery` ended it.
    pub(super) fn emit_batch(&self, batch: Batch, answered: bool, out: &mut Vec<SqlStatement>) {
        let batch_failed = batch.error.is_some() || batch.entries.iter().any(|e| e.error.is_some());
        if batch.entries.is_empty() {
            // Only a Parse (and maybe Bind) ran: report it when the server rejected it.
            if let (Some(error), Some(parse)) = (batch.error, batch.last_parse) {
                let mut entry = Pending::new(parse, QueryProtocol::Extended, batch.last_parse_ts);
                entry.error = Some(error);
                entry.end_ts_ns = batch.error_ts;
                entry.done = true;
                out.push(self.statement(entry, false));
            }
            return;
        }
        let mut batch_error = batch.error;
        for mut entry in batch.entries {
            if entry.error.is_none() {
                if let Some(error) = batch_error.take() {
                    entry.error = Some(error);
                    entry.done = true;
                } else if answered && batch_failed && !entry.done {
                    // The server skips the rest of a batch after an error, up to Sync.
                    entry.error = Some(ServerError {
                        severity: "SKIPPED".into(),
                        code: None,
                        message: "not executed: an earlier message of the batch failed".into(),
                    });
                    entry.done = true;
                }
            }
            let partial = entry.orphan
                || if entry.protocol == QueryProtocol::Simple {
                    !answered
                } else {
                    !entry.done
                };
            out.push(self.statement(entry, partial));
        }
    }

    pub(super) fn statement(&self, entry: Pending, partial: bool) -> SqlStatement {
        let analysis = sql_analyses::analysis_of(&entry.prepared.text);
        let tag_operation = entry
            .completions
            .iter()
            .map(|(op, _)| op.as_str())
            .find(|op| !is_transaction_control(op))
            .or_else(|| entry.completions.first().map(|(op, _)| op.as_str()))
            .filter(|op| !op.is_empty())
            .map(str::to_string);
        let counted: Option<u64> = entry
            .completions
            .iter()
            .filter_map(|(_, n)| *n)
            .try_fold(0u64, |acc, n| acc.checked_add(n));
        let any_count = entry.completions.iter().any(|(_, n)| n.is_some());
        let rows = if any_count {
            counted
        } else if entry.data_rows > 0 {
            Some(entry.data_rows)
        } else {
            None
        };
        let operation = tag_operation.unwrap_or(analysis.operation);
        let vector_search = analysis.distance_operator
            || (analysis.vector_cast && matches!(operation.as_str(), "SELECT" | "WITH"));
        SqlStatement {
            text: entry.prepared.text,
            text_truncated: entry.prepared.truncated,
            protocol: entry.protocol,
            statement_name: entry.prepared.name,
            operation,
            tables: analysis.tables,
            listed_tables: entry.listed_tables.into_iter().collect(),
            sql_parse_failed: analysis.parse_failed,
            user: self.session.user.clone(),
            database: self.session.database.clone(),
            application_name: self.session.application_name.clone(),
            rows,
            error: entry.error.as_ref().map(ServerError::describe),
            sqlstate: entry.error.and_then(|e| e.code),
            vector_search,
            ts_ns: entry.ts_ns,
            end_ts_ns: entry.end_ts_ns.max(entry.ts_ns),
            partial,
        }
    }
}

impl Pending {
    pub(super) fn new(prepared: PreparedText, protocol: QueryProtocol, ts_ns: u64) -> Self {
        Pending {
            prepared,
            protocol,
            ts_ns,
            end_ts_ns: ts_ns,
            completions: Vec::new(),
            data_rows: 0,
            catalogue: None,
            listed_tables: Default::default(),
            error: None,
            done: false,
            orphan: false,
        }
    }
}

pub(super) fn auth_method_name(code: u32) -> String {
    match code {
        0 => "ok",
        2 => "kerberos_v5",
        3 => "cleartext_password",
        5 => "md5",
        7 => "gss",
        9 => "sspi",
        10 => "sasl",
        _ => return format!("unknown_{code}"),
    }
    .to_string()
}

pub(super) fn is_transaction_control(operation: &str) -> bool {
    matches!(
        operation,
        "BEGIN" | "START TRANSACTION" | "COMMIT" | "ROLLBACK" | "SET" | "SAVEPOINT" | "RELEASE"
    )
}

/// `INSERT 0 5` -> ("INSERT", Some(5)); `CREATE TABLE` -> ("CREATE TABLE", None).
pub(super) fn parse_command_tag(tag: &str) -> (String, Option<u64>) {
    let words: Vec<&str> = tag.split_ascii_whitespace().collect();
    let numeric = words
        .iter()
        .rev()
        .take_while(|w| w.bytes().all(|b| b.is_ascii_digit()))
        .count();
    let verb_words = words.len().saturating_sub(numeric);
    let operation = words[..verb_words].join(" ");
    let count = if numeric > 0 {
        words.last().and_then(|w| w.parse().ok())
    } else {
        None
    };
    (operation, count)
}

pub(super) fn parse_error_fields(body: &[u8]) -> ServerError {
    let mut reader = BodyReader::new(body);
    let mut localized_severity = None;
    let mut severity = None;
    let mut code = None;
    let mut message = None;
    while let Some(field) = reader.byte() {
        if field == 0 {
            break;
        }
        let Some(value) = reader.cstr() else { break };
        match field {
            b'S' => localized_severity = Some(value),
            b'V' => severity = Some(value),
            b'C' => code = Some(value),
            b'M' => message = Some(value),
            _ => {}
        }
    }
    ServerError {
        severity: severity
            .or(localized_severity)
            .unwrap_or_else(|| "ERROR".into()),
        code,
        message: message.unwrap_or_default(),
    }
}

/// Postgres as a wire parser. Gaps are not passed on: the framer finds its way back to a
/// message boundary by itself (see the module doc), as it always has.
impl crate::wire::WireParser for PostgresConnection {
    fn on_bytes(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<crate::wire::WireMessage>,
    ) {
        let records = self.feed(direction, bytes, ts_ns);
        out.extend(records.into_iter().map(crate::wire::WireMessage::Sql));
    }

    fn on_gap(
        &mut self,
        _direction: Direction,
        _len: u64,
        _ts_ns: u64,
        _out: &mut Vec<crate::wire::WireMessage>,
    ) {
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut Vec<crate::wire::WireMessage>) {
        let records = PostgresConnection::finish(self);
        out.extend(records.into_iter().map(crate::wire::WireMessage::Sql));
    }

    fn held_bytes(&self) -> Option<usize> {
        Some(PostgresConnection::held_bytes(self))
    }

    /// What is in flight is flushed (flagged as cut); the rest of the connection is not parsed.
    fn on_over_budget(
        &mut self,
        _direction: Direction,
        ts_ns: u64,
        out: &mut Vec<crate::wire::WireMessage>,
    ) -> crate::wire::OverBudget {
        crate::wire::WireParser::finish(self, ts_ns, out);
        crate::wire::OverBudget::StopParsing
    }
}
