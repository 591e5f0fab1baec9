//! Tables a statement that reads the system catalogue got back: when an agent lists what it
//! can reach (`SELECT table_name FROM information_schema.tables`, psql's `\dt`, `pg_tables`,
//! `pg_class`), the names in the answer are the tables its database role can see. Posture sets
//! them against the tables it queried (docs/posture.md).
//!
//! Only the answer's name and schema columns are read, from the `RowDescription` and the
//! `DataRow`s of a statement whose text names a catalogue relation, and only while that answer
//! runs (the framer keeps row bytes then and never otherwise: row data of other queries is
//! counted and skipped, as before). Hand-written for the reason the module above gives: the
//! two messages are a count and length-prefixed fields, read with checked arithmetic.

use std::collections::BTreeSet;

/// Names kept per statement (a catalogue of a huge schema is cut here).
pub const MAX_LISTED_TABLES: usize = 1000;
/// PostgreSQL's longest identifier (NAMEDATALEN - 1): a longer value is no table name, and is
/// not kept (row data of an ordinary table must never pass for one).
const MAX_NAME_BYTES: usize = 63;
/// Row bytes the framer keeps while a catalogue answer runs: its name columns come first in
/// every catalogue query this reads, and a row holding more is cut, never misread.
pub const CATALOGUE_ROW_BYTES: usize = 2048;

/// Relations whose rows name tables, as they appear in a query's text (lower case).
const CATALOGUE_RELATIONS: [&str; 5] = [
    "information_schema.tables",
    "information_schema.columns",
    "pg_tables",
    "pg_class",
    "pg_stat_user_tables",
];
/// Columns holding a table's name in those relations.
const NAME_COLUMNS: [&str; 3] = ["table_name", "tablename", "relname"];
/// Columns holding its schema.
const SCHEMA_COLUMNS: [&str; 3] = ["table_schema", "schemaname", "nspname"];
/// Schemas of PostgreSQL itself: their tables are the catalogue, not data.
const SYSTEM_SCHEMAS: [&str; 3] = ["pg_catalog", "information_schema", "pg_toast"];

/// Where an answer's name and schema columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueColumns {
    name: usize,
    schema: Option<usize>,
}

/// The columns to read, when `sql` reads a catalogue relation and `row_description` (a
/// `RowDescription` body) has a table-name column.
pub fn catalogue_columns(sql: &str, row_description: &[u8]) -> Option<CatalogueColumns> {
    let lower = sql.to_ascii_lowercase();
    if !CATALOGUE_RELATIONS.iter().any(|r| lower.contains(r)) {
        return None;
    }
    let names = column_names(row_description)?;
    let position = |wanted: &[&str]| {
        wanted
            .iter()
            .find_map(|w| names.iter().position(|n| n.eq_ignore_ascii_case(w)))
    };
    if let Some(name) = position(&NAME_COLUMNS) {
        return Some(CatalogueColumns {
            name,
            schema: position(&SCHEMA_COLUMNS),
        });
    }
    // psql's `\dt` answers with `Schema`, `Name`, `Type` (and `Owner`), spelled so. `Name`
    // alone would be any table's column (a customer's name) in a message that also reads the
    // catalogue, so all three must be there.
    let exact = |wanted: &str| names.iter().position(|n| n == wanted);
    exact("Type")?;
    Some(CatalogueColumns {
        name: exact("Name")?,
        schema: Some(exact("Schema")?),
    })
}

/// The column names of a `RowDescription` body: a count, then per field a NUL-terminated name
/// and 18 bytes (table oid, attribute number, type oid, size, modifier, format).
fn column_names(body: &[u8]) -> Option<Vec<String>> {
    let count = u16::from_be_bytes([*body.first()?, *body.get(1)?]) as usize;
    let mut at = 2;
    let mut names = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let rest = body.get(at..)?;
        let end = memchr::memchr(0, rest)?;
        names.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        at = at.checked_add(end + 1 + 18)?;
    }
    Some(names)
}

/// The fields of a `DataRow` body (a count, then per field a length, -1 for NULL, and its
/// bytes), as far as the body goes.
fn fields(body: &[u8]) -> Vec<Option<&[u8]>> {
    let Some(count) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return Vec::new();
    };
    let mut at = 2usize;
    let mut out = Vec::new();
    for _ in 0..count {
        let Some(len) = body
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            break;
        };
        at += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let Some(value) = body.get(at..at.saturating_add(len as usize)) else {
            break;
        };
        out.push(Some(value));
        at += len as usize;
    }
    out
}

/// Adds the table a `DataRow` names (`schema.table`, or the bare name when the answer has no
/// schema column) to `listed`, unless it is PostgreSQL's own or the list is full.
pub fn add_listed_table(columns: CatalogueColumns, data_row: &[u8], listed: &mut BTreeSet<String>) {
    if listed.len() >= MAX_LISTED_TABLES {
        return;
    }
    let fields = fields(data_row);
    let text = |index: usize| -> Option<String> {
        let value = (*fields.get(index)?)?;
        (value.len() <= MAX_NAME_BYTES).then(|| String::from_utf8_lossy(value).into_owned())
    };
    let Some(name) = text(columns.name).filter(|n| !n.is_empty()) else {
        return;
    };
    let schema = columns.schema.and_then(text);
    if schema
        .as_deref()
        .is_some_and(|s| SYSTEM_SCHEMAS.contains(&s) || s.starts_with("pg_temp"))
    {
        return;
    }
    listed.insert(match schema {
        Some(schema) if !schema.is_empty() => format!("{schema}.{name}"),
        _ => name,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_description(names: &[&str]) -> Vec<u8> {
        let mut body = (names.len() as u16).to_be_bytes().to_vec();
        for name in names {
            body.extend(name.as_bytes());
            body.push(0);
            body.extend([0u8; 18]);
        }
        body
    }

    fn data_row(values: &[Option<&str>]) -> Vec<u8> {
        let mut body = (values.len() as u16).to_be_bytes().to_vec();
        for value in values {
            match value {
                Some(v) => {
                    body.extend((v.len() as i32).to_be_bytes());
                    body.extend(v.as_bytes());
                }
                None => body.extend((-1i32).to_be_bytes()),
            }
        }
        body
    }

    #[test]
    fn psql_dt_and_information_schema_answers_name_tables() {
        // psql's `\dt` (its query reads pg_class; the answer's columns are Schema, Name, ...).
        let dt = "SELECT n.nspname as \"Schema\", c.relname as \"Name\" FROM pg_catalog.pg_class c";
        let columns =
            catalogue_columns(dt, &row_description(&["Schema", "Name", "Type", "Owner"])).unwrap();
        let mut listed = BTreeSet::new();
        for row in [
            data_row(&[Some("crm"), Some("customers"), Some("table"), Some("app")]),
            data_row(&[Some("crm"), Some("invoices"), Some("table"), Some("app")]),
            data_row(&[
                Some("pg_catalog"),
                Some("pg_class"),
                Some("table"),
                Some("postgres"),
            ]),
        ] {
            add_listed_table(columns, &row, &mut listed);
        }
        assert_eq!(
            listed.into_iter().collect::<Vec<_>>(),
            ["crm.customers", "crm.invoices"]
        );
        let sql = "select table_name from INFORMATION_SCHEMA.TABLES where table_schema = 'crm'";
        let columns = catalogue_columns(sql, &row_description(&["table_name"])).unwrap();
        let mut listed = BTreeSet::new();
        add_listed_table(columns, &data_row(&[Some("orders")]), &mut listed);
        add_listed_table(columns, &data_row(&[None]), &mut listed);
        assert_eq!(listed.into_iter().collect::<Vec<_>>(), ["orders"]);
    }

    #[test]
    fn other_queries_and_damaged_rows_name_nothing() {
        let names = row_description(&["name", "email"]);
        assert_eq!(
            catalogue_columns("SELECT name, email FROM customers", &names),
            None
        );
        // A customer table's `name` column in a message that also reads the catalogue (two
        // statements in one query): not psql's listing, so its rows are never read.
        assert_eq!(
            catalogue_columns(
                "SELECT * FROM pg_tables; SELECT name, email FROM customers",
                &names
            ),
            None
        );
        let columns = catalogue_columns(
            "SELECT tablename FROM pg_tables",
            &row_description(&["tablename"]),
        )
        .unwrap();
        let mut listed = BTreeSet::new();
        // No table name is longer than 63 bytes: such a value is not kept.
        add_listed_table(columns, &data_row(&[Some(&"x".repeat(64))]), &mut listed);
        for damaged in [
            vec![],
            vec![0, 2],
            vec![0, 1, 0, 0, 0, 50, b'x'],
            vec![0, 1, 0xff, 0xff, 0xff, 0xfe],
        ] {
            add_listed_table(columns, &damaged, &mut listed);
        }
        assert!(listed.is_empty());
        assert_eq!(
            catalogue_columns("SELECT 1 FROM pg_class", &[0, 3, b'a']),
            None
        );
    }

    #[test]
    fn the_list_is_bounded() {
        let columns = catalogue_columns(
            "SELECT tablename FROM pg_tables",
            &row_description(&["tablename"]),
        )
        .unwrap();
        let mut listed = BTreeSet::new();
        for i in 0..MAX_LISTED_TABLES + 10 {
            add_listed_table(columns, &data_row(&[Some(&format!("t{i}"))]), &mut listed);
        }
        assert_eq!(listed.len(), MAX_LISTED_TABLES);
    }
}
