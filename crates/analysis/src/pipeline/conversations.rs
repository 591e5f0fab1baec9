//! Conversations within one session: one process may hold several (an agent serving
//! requests, a tool that chains its own LLM calls), and a session (one run of an agent, see
//! [`super::AttributedObservation::session`]) does not tell them apart.
//!
//! Chat APIs are stateless, so every request re-sends its conversation's history. An LLM
//! call whose request starts with the messages of an earlier request of the same session
//! (reconstruction's fingerprints, `LlmCall::history`) continues that request's conversation
//! (the longest such history wins, then the most recent); any other starts a new one.
//! Conversations are numbered per session from 1 in the order they start. What is not an
//! LLM call belongs to the conversation of the tool call it was linked to, else to the
//! conversation of the session's latest LLM call: sequential conversations (chained calls) are
//! told apart exactly, concurrent ones in one process only where links say which.
//!
//! Bounded: [`SESSIONS_TRACKED`] sessions, [`CONVERSATIONS_TRACKED`] conversations and
//! [`CALLS_TRACKED`] tool calls per session, least recently used forgotten first (a
//! conversation forgotten and continued later gets a new number). Not part of keyframes: a
//! replay started from a later keyframe numbers conversations from there, as the console
//! numbers sessions.

use std::collections::VecDeque;

use agentscope_event::pid_keyed::PidMap;

use crate::model::NewLink;
use crate::reconstruct::{Observation, ObservationKind};

pub const SESSIONS_TRACKED: usize = 1024;
pub const CONVERSATIONS_TRACKED: usize = 64;
pub const CALLS_TRACKED: usize = 256;

#[derive(Default)]
pub struct Conversations {
    sessions: PidMap<u32, SessionConversations>,
    /// A counter for least-recently-used eviction.
    clock: u64,
}

#[derive(Default)]
struct SessionConversations {
    open: Vec<Conversation>,
    started: u32,
    /// The conversation of the session's latest LLM call.
    latest: Option<u32>,
    /// Tool calls the model requested (id, or name where the dialect has no ids), newest last.
    calls: VecDeque<(String, u32)>,
    used: u64,
}

struct Conversation {
    number: u32,
    /// The latest request's message fingerprints.
    history: Vec<u64>,
    used: u64,
}

impl Conversations {
    /// The conversation (its number within `session`) of an observation attributed to that
    /// session, with the tool-call links it made.
    pub fn assign(&mut self, session: u32, observation: &Observation, links: &[NewLink]) -> u32 {
        self.clock += 1;
        let clock = self.clock;
        if !self.sessions.contains_key(&session) && self.sessions.len() >= SESSIONS_TRACKED {
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(pid, _)| *pid)
            {
                self.sessions.remove(&oldest);
            }
        }
        let conversations = self.sessions.entry(session).or_default();
        conversations.used = clock;
        match &observation.kind {
            ObservationKind::Llm { call, .. } => {
                let number = conversations.continue_or_start(&call.history, clock);
                for tool_call in &call.tool_calls {
                    let key = tool_call
                        .id
                        .clone()
                        .unwrap_or_else(|| tool_call.name.clone());
                    if conversations.calls.len() >= CALLS_TRACKED {
                        conversations.calls.pop_front();
                    }
                    conversations.calls.push_back((key, number));
                }
                conversations.latest = Some(number);
                number
            }
            _ => links
                .iter()
                .find_map(|link| {
                    let key = link.call_id.as_deref().unwrap_or(&link.call_name);
                    conversations
                        .calls
                        .iter()
                        .rev()
                        .find(|(call, _)| call == key)
                        .map(|(_, number)| *number)
                })
                .or(conversations.latest)
                .unwrap_or(1),
        }
    }
}

impl SessionConversations {
    fn continue_or_start(&mut self, history: &[u64], clock: u64) -> u32 {
        let continued = self
            .open
            .iter_mut()
            .filter(|c| !c.history.is_empty() && history.starts_with(&c.history))
            .max_by_key(|c| (c.history.len(), c.used));
        if let Some(conversation) = continued {
            conversation.history = history.to_vec();
            conversation.used = clock;
            return conversation.number;
        }
        // A request whose history could not be read continues the latest conversation.
        if history.is_empty() {
            if let Some(latest) = self.latest {
                return latest;
            }
        }
        if self.open.len() >= CONVERSATIONS_TRACKED {
            if let Some(oldest) = (0..self.open.len()).min_by_key(|&i| self.open[i].used) {
                self.open.swap_remove(oldest);
            }
        }
        self.started += 1;
        self.open.push(Conversation {
            number: self.started,
            history: history.to_vec(),
            used: clock,
        });
        self.started
    }
}

#[cfg(test)]
mod tests {
    use crate::event_json::events_from_json_lines;
    use crate::model::{HostOnlyIdentity, ModelOptions};
    use crate::pipeline::{AttributedObservation, Pipeline};
    use crate::reconstruct::{ObservationKind, ReconstructOptions};

    /// What the pipeline attributes to the agent in a capture.
    fn attributed(fixture: &str) -> Vec<AttributedObservation> {
        let path = std::path::Path::new(env!("AGENTSCOPE_REPO"))
            .join("tests/fixtures/capture")
            .join(fixture);
        let events = events_from_json_lines(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut pipeline = Pipeline::new(
            ReconstructOptions::default(),
            ModelOptions::default(),
            Box::new(HostOnlyIdentity),
        );
        let mut out = Vec::new();
        for event in &events {
            out.extend(pipeline.push(event));
        }
        out.extend(pipeline.finish());
        out.retain(|o| o.agent.is_some());
        out
    }

    /// The Python test agent holding two conversations one after the other in one process
    /// (`python_agent.py --conversations 2`, recorded by scripts/regenerate-fixtures-capture.sh):
    /// one session, its LLM calls chained into two conversations by their messages, and each
    /// tool's exec and file read in the conversation whose model turn requested it.
    #[test]
    fn one_process_two_conversations_are_chained_by_their_messages() {
        let observations = attributed("python_two_conversations.jsonl");
        let sessions: std::collections::BTreeSet<Option<u32>> =
            observations.iter().map(|o| o.session).collect();
        assert_eq!(sessions.len(), 1, "one process, one session: {sessions:?}");
        let calls: Vec<(Option<u32>, Option<String>, bool)> = observations
            .iter()
            .filter_map(|o| match &o.kind {
                ObservationKind::Llm { call, .. } => Some((
                    o.conversation,
                    call.last_user_message.clone(),
                    call.tool_results.is_empty(),
                )),
                _ => None,
            })
            .collect();
        let conversations: Vec<Option<u32>> = calls.iter().map(|c| c.0).collect();
        assert_eq!(
            conversations,
            [Some(1), Some(1), Some(2), Some(2)],
            "{calls:#?}"
        );
        // The second conversation's calls are the ones with its marker; each conversation's
        // second call carries the tool results of its first.
        for (conversation, user, _) in &calls {
            let user = user.as_deref().unwrap_or_default();
            assert_eq!(
                user.contains("agentscope-marker-2"),
                *conversation == Some(2),
                "{calls:#?}"
            );
        }
        assert!(
            calls[0].2 && !calls[1].2 && calls[2].2 && !calls[3].2,
            "{calls:#?}"
        );
        // What the tools did: the echo run_command started and the file read_file read, once
        // per conversation, each in its own.
        let of_tools: Vec<(Option<u32>, String)> = observations
            .iter()
            .filter_map(|o| match &o.kind {
                ObservationKind::Exec { filename, .. } if filename.ends_with("echo") => {
                    Some((o.conversation, "exec echo".to_string()))
                }
                ObservationKind::FileOpen { path, .. } if path == "/etc/hostname" => {
                    Some((o.conversation, "read /etc/hostname".to_string()))
                }
                _ => None,
            })
            .collect();
        for conversation in [Some(1), Some(2)] {
            for what in ["exec echo", "read /etc/hostname"] {
                assert!(
                    of_tools.contains(&(conversation, what.to_string())),
                    "{what} in conversation {conversation:?}: {of_tools:?}"
                );
            }
        }
    }

    /// The Python test agent's one conversation (a request, its tools, the request with their
    /// results) stays one conversation.
    #[test]
    fn a_chat_that_goes_on_is_one_conversation() {
        let observations = attributed("python_chat.jsonl");
        let conversations: std::collections::BTreeSet<Option<u32>> = observations
            .iter()
            .filter(|o| matches!(o.kind, ObservationKind::Llm { .. }))
            .map(|o| o.conversation)
            .collect();
        assert_eq!(conversations, [Some(1)].into_iter().collect());
    }
}
