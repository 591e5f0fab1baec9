//! How an incident is told: its chain rendered as steps (trigger → tool calls and what they
//! touched → data → egress → identity), and the one-line story that joins them.
//!
//! Rendering reads only the [`Incident`] and its [`super::IncidentChain`], so consoles show
//! the same steps the story says (one per line) without splitting the story text. Every step
//! is bounded: the chain counts repeats instead of growing (see [`super::incident_book`]), and
//! each step is cut to [`MAX_STEP_BYTES`].

use super::finding::Incident;

/// A step longer than this (a tool call with long arguments) is cut, so the story stays one
/// readable line.
pub const MAX_STEP_BYTES: usize = 400;

/// The one-line story: the steps joined by " → ".
pub fn story(incident: &Incident) -> String {
    steps(incident).join(" → ")
}

/// The steps of the story, in order.
pub fn steps(incident: &Incident) -> Vec<String> {
    let chain = &incident.chain;
    let name = if incident.agent_name.is_empty() {
        incident.agent.as_str()
    } else {
        incident.agent_name.as_str()
    };
    let repeats = if incident.occurrences > 1 {
        format!(" ({} times)", incident.occurrences)
    } else {
        String::new()
    };
    let mut parts = vec![format!("{} on agent {name}{repeats}", chain.trigger)];
    let mut mentioned: Vec<&str> = Vec::new();
    for call in &chain.tool_calls {
        let tables: Vec<&str> = call
            .touched
            .iter()
            .filter_map(|t| t.strip_prefix("data:table:"))
            .collect();
        let commands: Vec<&str> = call
            .touched
            .iter()
            .filter(|t| t.starts_with("command:"))
            .map(String::as_str)
            .collect();
        let what = if !tables.is_empty() {
            mentioned.extend(tables.iter().copied());
            format!(" reading table {}", tables.join(", "))
        } else if !commands.is_empty() {
            // The command the model asked for says more than the binaries it started.
            call.arguments.clone()
        } else if let Some(api) = call.touched.iter().find_map(|t| t.strip_prefix("api:")) {
            format!(" calling {api}")
        } else if let Some(file) = call
            .touched
            .iter()
            .find_map(|t| t.strip_prefix("data:file:"))
        {
            format!(" opening {file}")
        } else {
            // Nothing it did is known (yet): what the model asked for says it.
            call.arguments.clone()
        };
        let kind = if !tables.is_empty() {
            "database tool call"
        } else if !commands.is_empty() {
            "command tool call"
        } else {
            "tool call"
        };
        let times = if call.calls > 1 {
            format!(" ({} calls)", call.calls)
        } else {
            String::new()
        };
        parts.push(format!(
            "{}{kind} {}{what}{times}",
            if call.first_use { "unexpected " } else { "" },
            call.name
        ));
    }
    let data: Vec<&str> = chain
        .data
        .iter()
        .map(String::as_str)
        .filter(|d| !mentioned.iter().any(|m| d.contains(m)))
        .collect();
    if !data.is_empty() {
        parts.push(format!("sensitive access: {}", data.join(", ")));
    }
    let trigger = chain.trigger.as_str();
    parts.extend(
        chain
            .escape
            .iter()
            .filter(|line| !trigger.contains(line.as_str()))
            .map(|line| format!("agent escape: {line}")),
    );
    parts.extend(chain.egress.iter().cloned());
    let identity = &incident.identity;
    let mut who = match (&identity.service_account, &identity.pod) {
        (Some(sa), _) => format!("as service account {sa}"),
        (None, Some(pod)) => format!("as pod {pod}"),
        (None, None) => format!(
            "as {} on {}",
            identity
                .user
                .clone()
                .unwrap_or_else(|| format!("uid {}", identity.uid)),
            if identity.workload.is_empty() {
                "the host"
            } else {
                identity.workload.as_str()
            }
        ),
    };
    if !identity.cloud_roles.is_empty() {
        who.push_str(&format!(
            " (cloud role {})",
            identity.cloud_roles.join(", ")
        ));
    }
    parts.push(who);
    parts
        .into_iter()
        .map(|step| {
            // One line, bounded: steps carry text an observed process chose.
            let step: String = step
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            match step.len() > MAX_STEP_BYTES {
                true => format!("{}…", &step[..step.floor_char_boundary(MAX_STEP_BYTES)]),
                false => step,
            }
        })
        .collect()
}
