//! What counts as sensitive when an agent touches it: secret files (by the file classifier's
//! verdict), service-account tokens, tables and columns that look like personal data, and
//! calls to the Kubernetes API.
//!
//! Names decide, because that is all the wire shows: a table called `customers` or a column
//! called `email` is personal data until an approved baseline says the agent reads it as its
//! job. The word lists are documented in docs/detection.md.

use crate::reconstruct::file_access::{FileCategory, FileClass, SecretKind, Sensitivity};
use crate::reconstruct::http::HttpExchange;

use super::finding::{SensitiveKind, Severity};

/// Table names (or their singular) that hold records about people.
const PERSONAL_TABLES: &[&str] = &[
    "customer",
    "customers",
    "user",
    "users",
    "account_holders",
    "patient",
    "patients",
    "employee",
    "employees",
    "member",
    "members",
    "contact",
    "contacts",
    "person",
    "people",
    "persons",
    "client",
    "clients",
    "subscriber",
    "subscribers",
    "applicant",
    "applicants",
    "student",
    "students",
    "profile",
    "profiles",
];

/// Column names (whole words of a snake_case or camelCase name) that hold personal data.
const PERSONAL_COLUMNS: &[&str] = &[
    "email",
    "phone",
    "ssn",
    "dob",
    "birthdate",
    "birthday",
    "address",
    "passport",
    "iban",
    "salary",
    "password",
    "card",
    "cvv",
    "tax",
    "surname",
    "diagnosis",
];

/// A secret file an agent opened: what kind and how bad.
pub fn secret_file(class: &FileClass) -> Option<(SensitiveKind, Severity)> {
    let FileCategory::Secret(kind) = class.category else {
        return None;
    };
    if kind == SecretKind::ServiceAccountToken && class.sensitivity == Sensitivity::High {
        return Some((SensitiveKind::ServiceAccountToken, Severity::High));
    }
    let severity = match class.sensitivity {
        Sensitivity::High => Severity::High,
        Sensitivity::Medium => Severity::Medium,
        // The namespace file beside a token, a public key: worth a line, not an alert.
        Sensitivity::Low | Sensitivity::None => return None,
    };
    Some((SensitiveKind::SecretFile, severity))
}

/// The personal-data tables a statement touches and the personal-data columns it names.
pub fn personal_data(tables: &[String], sql: &str) -> (Vec<String>, Vec<String>) {
    let tables = tables
        .iter()
        .filter(|table| {
            let bare = table.rsplit('.').next().unwrap_or(table);
            PERSONAL_TABLES.contains(&bare.to_ascii_lowercase().as_str())
        })
        .cloned()
        .collect();
    let mut columns: Vec<String> = Vec::new();
    for word in identifiers(sql) {
        let lower = word.to_ascii_lowercase();
        if name_parts(&word).any(|part| PERSONAL_COLUMNS.contains(&part.as_str()))
            && !columns.contains(&lower)
        {
            columns.push(lower);
        }
    }
    (tables, columns)
}

/// SQL identifiers (outside quotes) of a statement, in order.
fn identifiers(sql: &str) -> impl Iterator<Item = String> + '_ {
    let mut in_quote = false;
    sql.split(move |c: char| {
        if c == '\'' {
            in_quote = !in_quote;
        }
        in_quote || !(c.is_ascii_alphanumeric() || c == '_')
    })
    .filter(|w| !w.is_empty() && !w.starts_with(|c: char| c.is_ascii_digit()))
    .map(str::to_string)
}

/// The words of an identifier: `customer_email` → customer, email; `birthDate` → birth, date,
/// and the whole name lower-cased (`birthdate`).
fn name_parts(name: &str) -> impl Iterator<Item = String> {
    let mut parts = vec![name.to_ascii_lowercase()];
    let mut current = String::new();
    for c in name.chars() {
        if c == '_' || (c.is_ascii_uppercase() && !current.is_empty()) {
            if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            if c == '_' {
                continue;
            }
        }
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts.into_iter()
}

/// Whether an HTTP request is a call to the Kubernetes API: the in-cluster service name, or
/// the API's own path layout (`/api/v1/…`, `/apis/GROUP/VERSION/…`).
pub fn is_kubernetes_api(exchange: &HttpExchange) -> bool {
    let host = exchange
        .host
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host.split(':').next().unwrap_or_default();
    if host == "kubernetes" || host.starts_with("kubernetes.default") {
        return true;
    }
    let path = exchange.request.path();
    path == "/api"
        || path == "/api/v1"
        || path.starts_with("/api/v1/")
        || path
            .strip_prefix("/apis/")
            .is_some_and(|rest| rest.split('/').filter(|s| !s.is_empty()).count() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(text: &str, tables: &[&str]) -> (Vec<String>, String) {
        (
            tables.iter().map(|t| t.to_string()).collect(),
            text.to_string(),
        )
    }

    fn personal(statement: (Vec<String>, String)) -> (Vec<String>, Vec<String>) {
        personal_data(&statement.0, &statement.1)
    }

    #[test]
    fn personal_tables_and_columns_are_named() {
        let (tables, columns) = personal(statement(
            "SELECT name, email, plan, birthDate FROM crm.customers WHERE note = 'email me'",
            &["crm.customers"],
        ));
        assert_eq!(tables, vec!["crm.customers"]);
        assert_eq!(columns, vec!["email", "birthdate"]);
        let (tables, columns) =
            personal(statement("SELECT sku, price FROM products", &["products"]));
        assert!(tables.is_empty() && columns.is_empty());
    }

    #[test]
    fn service_account_tokens_are_high_and_namespace_files_are_not_reported() {
        use crate::reconstruct::file_access::classify;
        let token = classify("/var/run/secrets/kubernetes.io/serviceaccount/token");
        assert_eq!(
            secret_file(&token),
            Some((SensitiveKind::ServiceAccountToken, Severity::High))
        );
        let namespace = classify("/var/run/secrets/kubernetes.io/serviceaccount/namespace");
        assert_eq!(secret_file(&namespace), None);
        assert_eq!(secret_file(&classify("/srv/app/data.csv")), None);
    }
}
