//! How detection words what it saw for people: arguments in one line, destinations, channels.
//! Everything here is one line and bounded, because it ends up in summaries and stories.

use crate::model::Model;

/// A serde enum's name as written in JSON (`chroma`).
pub(super) fn enum_label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

pub(super) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The arguments of a call in one line, for stories (`command=curl … | sh`).
pub(super) fn arguments_line(arguments: &serde_json::Value) -> String {
    describe_arguments(Some(arguments))
}

/// `(path=/srv/x, limit=10)`, cut short.
pub(super) fn describe_arguments(arguments: Option<&serde_json::Value>) -> String {
    let Some(serde_json::Value::Object(map)) = arguments else {
        return String::new();
    };
    let parts: Vec<String> = map
        .iter()
        .take(3)
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            // One line: payloads with newlines (rows) would break summaries and stories.
            let value: String = cut(&value, 80)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("{k}={value}")
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("({})", parts.join(", "))
    }
}

pub(super) fn destination_of(host: Option<&str>, port: Option<u16>) -> String {
    let host = host.unwrap_or("unknown");
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    match port {
        Some(port) if !has_port => format!("{host}:{port}"),
        _ => host.to_string(),
    }
}

/// The first `max` bytes of `text`, or fewer to end on a character boundary.
pub(super) fn cut(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// `result of tool read_file(path=/srv/tickets/SUP-4711.txt)`: the arguments say which
/// document carried the content.
pub(super) fn channel_of_result(
    model: &Model,
    agent: &str,
    call_id: Option<&str>,
    tool: &Option<String>,
) -> String {
    let arguments = call_id.and_then(|id| {
        model
            .tool_calls()
            .rev()
            .find(|c| c.agent == agent && c.id.as_deref() == Some(id))
            .map(|c| c.arguments.clone())
    });
    format!(
        "result of tool {}{}",
        tool.as_deref().unwrap_or("?"),
        describe_arguments(arguments.as_ref())
    )
}
