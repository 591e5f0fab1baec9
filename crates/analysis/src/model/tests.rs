//! The model against hand-made observations: attribution of actions to tool calls, agent
//! keys across how a process was first seen, pid reuse.

use super::*;
use crate::event::{Event, EventBody, Header};
use crate::reconstruct::http::{Completeness, HttpExchange, HttpRequest, HttpResponse};
use crate::reconstruct::llm::{LlmApi, LlmCall, ToolCall, ToolResult, Usage};
use crate::reconstruct::EventRange;
use crate::test_observations::observation;
use serde_json::json;

const AGENT: u32 = 100;
const CHILD: u32 = 101;
const STRANGER: u32 = 999;
const SECOND: u64 = 1_000_000_000;

/// The header of an event of `pid` (a `python3` child of pid 1) at time 0.
fn header(pid: u32) -> Header {
    Header {
        ts_ns: 0,
        time_unix_ns: 0,
        pid,
        tid: pid,
        ppid: 1,
        uid: 0,
        gid: 0,
        cgroup_id: 1,
        comm: "python3".into(),
    }
}

/// `pid`, a child of pid 1, runs `filename` with `argv`.
pub(super) fn exec(table: &mut ProcessTable, pid: u32, filename: &str, argv: &[&str]) {
    table.learn(pid, 1, "python3");
    table.update(&Event {
        header: header(pid),
        body: EventBody::Exec {
            filename: filename.into(),
            argv: argv.iter().map(|arg| arg.to_string()).collect(),
            argv_truncated: false,
            filename_truncated: false,
        },
    });
}

fn processes() -> ProcessTable {
    let mut table = ProcessTable::default();
    exec(
        &mut table,
        AGENT,
        "/usr/bin/python3",
        &["python3", "/app/agent.py"],
    );
    table.update(&Event {
        header: header(AGENT),
        body: EventBody::Fork {
            child_pid: CHILD,
            clone_flags: 0,
        },
    });
    table.learn(STRANGER, 1, "cat");
    table
}

pub(super) fn llm(tool_calls: Vec<ToolCall>, tool_results: Vec<ToolResult>) -> ObservationKind {
    ObservationKind::Llm {
        call: Box::new(LlmCall {
            history: Vec::new(),
            api: LlmApi::OpenAiChatCompletions,
            provider: "openai".into(),
            operation: "chat".into(),
            request_model: Some("gpt-4o-mini".into()),
            response_model: Some("gpt-4o-mini-2024-07-18".into()),
            response_id: None,
            system_prompt: Some("be helpful".into()),
            last_user_message: Some("summarise".into()),
            tool_results,
            tools_offered: vec![],
            tool_calls,
            output_text: None,
            usage: Usage {
                input_tokens: Some(10),
                output_tokens: Some(5),
                ..Default::default()
            },
            finish_reasons: vec![],
            streamed: false,
            partial: false,
            error_type: None,
        }),
        host: Some("api.openai.com".into()),
        port: Some(443),
        user_agent: Some("OpenAI/Python 1.54.0".into()),
        end_ts_ns: 0,
    }
}

pub(super) fn with_end(mut kind: ObservationKind, end: u64) -> ObservationKind {
    if let ObservationKind::Llm { end_ts_ns, .. } = &mut kind {
        *end_ts_ns = end;
    }
    kind
}

pub(super) fn file(path: &str) -> ObservationKind {
    ObservationKind::FileOpen {
        path: path.into(),
        class: crate::reconstruct::file_access::classify(path),
        write: false,
    }
}

fn http_get(url_path: &str) -> ObservationKind {
    http_get_at("127.0.0.1", url_path)
}

/// A GET of `url_path` on `host` (port 8080), answered 200.
pub(super) fn http_get_at(host: &str, url_path: &str) -> ObservationKind {
    ObservationKind::Http {
        exchange: Box::new(HttpExchange {
            request: HttpRequest {
                method: "GET".into(),
                target: url_path.into(),
                headers: vec![],
                body: vec![],
                body_len: 0,
                completeness: Completeness::Complete,
                over_budget: false,
                ts_ns: 0,
            },
            response: Some(HttpResponse {
                status: 200,
                reason: "OK".into(),
                headers: vec![],
                body: vec![],
                body_len: 0,
                stream: None,
                completeness: Completeness::Complete,
                over_budget: false,
                ts_ns: 0,
                end_ts_ns: 0,
            }),
            host: Some(host.into()),
            port: Some(8080),
            tls: false,
            protocol: Default::default(),
        }),
        role: crate::reconstruct::Role::Client,
    }
}

pub(super) fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        id: Some(id.into()),
        name: name.into(),
        arguments,
    }
}

#[test]
fn tool_calls_link_to_the_actions_that_carried_them_out() {
    let table = processes();
    let mut model = Model::new(ModelOptions::default());
    let mut identity = HostOnlyIdentity;
    let mut apply = |model: &mut Model, o: Observation| model.apply(&o, &table, &mut identity);

    apply(
        &mut model,
        observation(
            AGENT,
            10 * SECOND,
            1,
            with_end(
                llm(
                    vec![
                        call("c1", "read_file", json!({"path": "/srv/reports/q3.txt"})),
                        call(
                            "c2",
                            "http_get",
                            json!({"url": "http://127.0.0.1:8080/api/accounts/42/status"}),
                        ),
                    ],
                    vec![],
                ),
                11 * SECOND,
            ),
        ),
    );
    // Before the model answered: not caused by it.
    apply(
        &mut model,
        observation(CHILD, 10 * SECOND + 5, 2, file("/srv/reports/q3.txt")),
    );
    apply(
        &mut model,
        observation(CHILD, 12 * SECOND, 3, file("/srv/reports/q3.txt")),
    );
    apply(
        &mut model,
        observation(STRANGER, 12 * SECOND, 4, file("/srv/reports/q3.txt")),
    );
    apply(
        &mut model,
        observation(AGENT, 13 * SECOND, 5, http_get("/api/accounts/42/status")),
    );
    apply(
        &mut model,
        observation(
            AGENT,
            14 * SECOND,
            6,
            with_end(
                llm(
                    vec![],
                    vec![
                        ToolResult {
                            call_id: Some("c1".into()),
                            name: None,
                            content: "revenue up".into(),
                            is_error: false,
                            arguments: None,
                        },
                        ToolResult {
                            call_id: Some("c2".into()),
                            name: None,
                            content: "{\"status\":\"active\"}".into(),
                            is_error: false,
                            arguments: None,
                        },
                    ],
                ),
                15 * SECOND,
            ),
        ),
    );
    // After the results went back: the calls are closed.
    apply(
        &mut model,
        observation(CHILD, 16 * SECOND, 7, file("/srv/reports/q3.txt")),
    );

    let calls: Vec<_> = model.tool_calls().collect();
    assert_eq!(calls.len(), 2);
    let read = calls.iter().find(|c| c.name == "read_file").unwrap();
    assert_eq!(read.links.len(), 1, "{:#?}", read.links);
    let link = &read.links[0];
    assert_eq!((link.action.pid, link.action.kind), (CHILD, "file"));
    assert_eq!(link.action.events, vec![EventRange::single(3)]);
    assert!(link.evidence.contains(&Evidence::ArgumentMatch {
        argument: "path".into(),
        value: "/srv/reports/q3.txt".into()
    }));
    assert!(link
        .evidence
        .contains(&Evidence::ProcessLineage { agent_pid: AGENT }));
    assert_eq!(read.result.as_ref().unwrap().content, "revenue up");
    assert_eq!(
        read.result_evidence,
        Some(Evidence::ToolCallId { id: "c1".into() })
    );
    assert_eq!(read.closed_ns, Some(14 * SECOND));

    let get = calls.iter().find(|c| c.name == "http_get").unwrap();
    assert_eq!(get.links.len(), 1);
    assert_eq!(
        get.links[0].action.target,
        "api:GET 127.0.0.1/api/accounts/{id}/status"
    );

    let snapshot = model.snapshot(None);
    assert_eq!(snapshot.agents.len(), 1);
    let agent = &snapshot.agents[0];
    assert_eq!(agent.key, "host:python agent.py");
    assert_eq!(agent.name, "agent.py");
    assert_eq!(
        (agent.llm_calls, agent.tool_calls, agent.input_tokens),
        (2, 2, 20)
    );
    assert!(agent.aibom.frameworks.contains("openai-python"));
    assert!(agent.aibom.providers["openai"].contains("gpt-4o-mini"));
    let graph = model.graph();
    let agent_node = format!("agent:{}", agent.key);
    let tool_node = format!("tool:{}:read_file", agent.key);
    assert_eq!(
        graph
            .get_edge(&agent_node, &tool_node, EdgeKind::CallsTool)
            .unwrap()
            .count,
        1
    );
    let executed = graph
        .get_edge(
            &tool_node,
            "data:file:/srv/reports/q3.txt",
            EdgeKind::ExecutedVia,
        )
        .unwrap();
    assert_eq!(executed.count, 1);
    assert_eq!(
        executed.attributes["evidence"],
        json!(["argument_match", "process_lineage", "time_window"])
    );
    assert!(graph
        .get_edge(
            &agent_node,
            "model:openai/gpt-4o-mini-2024-07-18",
            EdgeKind::InvokesModel
        )
        .is_some_and(|e| e.count == 2 && e.attributes["gen_ai.usage.input_tokens"] == json!(20)));
    assert!(graph
        .get_edge(&agent_node, "identity:user:host:0", EdgeKind::RunsAs)
        .is_some());
    // The stranger's open of the same file is not the agent's.
    assert!(graph.nodes().all(|n| n.id != "command:cat"));
}

#[test]
fn a_program_seeded_from_proc_and_execd_later_is_one_agent() {
    // The collector's table at start: /proc/PID/exe is the resolved interpreter.
    const SEEDED: u32 = 200;
    const EXECED: u32 = 300;
    let mut table = ProcessTable::default();
    table.seed(&[crate::procfs::ProcEntry {
        pid: SEEDED,
        ppid: 1,
        uid: 0,
        comm: "python3".into(),
        exe: Some("/usr/bin/python3.11".into()),
        argv: vec!["python3".into(), "/srv/app/agent.py".into()],
    }]);
    // The same program started again while collecting, through the python3 link and with
    // the script named relatively.
    table.update(&Event {
        header: Header {
            ts_ns: SECOND,
            time_unix_ns: SECOND,
            pid: EXECED,
            tid: EXECED,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 1,
            comm: "python3".into(),
        },
        body: EventBody::Exec {
            filename: "/usr/bin/python3".into(),
            argv: vec!["python3".into(), "agent.py".into()],
            argv_truncated: false,
            filename_truncated: false,
        },
    });
    let mut model = Model::new(ModelOptions::default());
    let mut identity = HostOnlyIdentity;
    for (index, pid) in [SEEDED, EXECED].into_iter().enumerate() {
        let ts = (index as u64 + 2) * SECOND;
        model.apply(
            &observation(pid, ts, index as u64, with_end(llm(vec![], vec![]), ts)),
            &table,
            &mut identity,
        );
    }
    let agents: Vec<&Agent> = model.agents().collect();
    assert_eq!(agents.len(), 1, "{agents:#?}");
    assert_eq!(agents[0].key, "host:python agent.py");
    assert_eq!(
        agents[0].pids.iter().copied().collect::<Vec<_>>(),
        [SEEDED, EXECED]
    );
    assert_eq!(agents[0].llm_calls, 2);
}

#[test]
fn a_reused_pid_is_not_the_agent_that_exited() {
    let table = processes();
    let mut model = Model::new(ModelOptions::default());
    let mut identity = HostOnlyIdentity;
    model.apply(
        &observation(
            AGENT,
            SECOND,
            1,
            with_end(
                llm(
                    vec![call(
                        "a",
                        "read_file",
                        json!({"path": "/srv/reports/q3.txt"}),
                    )],
                    vec![],
                ),
                SECOND,
            ),
        ),
        &table,
        &mut identity,
    );
    model.apply(
        &observation(
            AGENT,
            2 * SECOND,
            2,
            ObservationKind::Exit { exit_code: Some(0) },
        ),
        &table,
        &mut identity,
    );
    // Another program got the same pid and opens the file the call named.
    model.apply(
        &observation(AGENT, 3 * SECOND, 3, file("/srv/reports/q3.txt")),
        &table,
        &mut identity,
    );
    assert!(model.tool_calls().all(|c| c.links.is_empty()));
    assert!(model
        .graph()
        .get_node("data:file:/srv/reports/q3.txt")
        .is_none());
    assert_eq!(model.agents().count(), 1, "the agent keeps its history");
}

#[test]
fn lineage_alone_links_only_when_one_call_is_open() {
    let table = processes();
    let mut model = Model::new(ModelOptions::default());
    let mut identity = HostOnlyIdentity;
    model.apply(
        &observation(
            AGENT,
            SECOND,
            1,
            with_end(
                llm(
                    vec![
                        call("a", "summarise", json!({"style": "brief"})),
                        call("b", "translate", json!({"lang": "fr"})),
                    ],
                    vec![],
                ),
                SECOND,
            ),
        ),
        &table,
        &mut identity,
    );
    model.apply(
        &observation(CHILD, 2 * SECOND, 2, file("/srv/unrelated.txt")),
        &table,
        &mut identity,
    );
    assert!(model.tool_calls().all(|c| c.links.is_empty()));

    let mut model = Model::new(ModelOptions::default());
    model.apply(
        &observation(
            AGENT,
            SECOND,
            1,
            with_end(
                llm(
                    vec![call("a", "summarise", json!({"style": "brief"}))],
                    vec![],
                ),
                SECOND,
            ),
        ),
        &table,
        &mut identity,
    );
    model.apply(
        &observation(CHILD, 2 * SECOND, 2, file("/srv/unrelated.txt")),
        &table,
        &mut identity,
    );
    let only = model.tool_calls().next().unwrap();
    assert_eq!(only.links.len(), 1);
    assert_eq!(
        only.links[0].evidence,
        vec![
            Evidence::ProcessLineage { agent_pid: AGENT },
            Evidence::TimeWindow
        ]
    );
}

/// Two shell commands a model asked for at once (Gemini runs tools in parallel, without ids
/// from the model): each shell's exec carries its command, so it links by argument; the file
/// its `cat` opens names only the path, not the command, and with two calls open lineage
/// alone links nothing. The exec linked by argument makes the shell's process the call's, so
/// what it and its children do is the call's.
#[test]
fn what_a_call_s_own_shell_does_is_the_call_s_with_others_open() {
    const SHELL_A: u32 = 201;
    const SHELL_B: u32 = 202;
    const CAT_A: u32 = 211;
    const CAT_B: u32 = 212;
    let mut table = processes();
    let fork = |table: &mut ProcessTable, parent: u32, child: u32| {
        table.update(&Event {
            header: Header {
                ts_ns: 0,
                time_unix_ns: 0,
                pid: parent,
                tid: parent,
                ppid: 1,
                uid: 0,
                gid: 0,
                cgroup_id: 1,
                comm: "node".into(),
            },
            body: EventBody::Fork {
                child_pid: child,
                clone_flags: 0,
            },
        });
    };
    fork(&mut table, AGENT, SHELL_A);
    fork(&mut table, AGENT, SHELL_B);
    fork(&mut table, SHELL_A, CAT_A);
    fork(&mut table, SHELL_B, CAT_B);
    let mut model = Model::new(ModelOptions::default());
    let mut identity = HostOnlyIdentity;
    let shell = |file: &str| ToolCall {
        id: None,
        name: "run_shell_command".into(),
        arguments: json!({"command": format!("cat {file}")}),
    };
    let exec = |file: &str| ObservationKind::Exec {
        filename: "/usr/bin/bash".into(),
        argv: vec!["bash".into(), "-c".into(), format!("cat {file}")],
    };
    let steps = [
        observation(
            AGENT,
            SECOND,
            1,
            with_end(
                llm(vec![shell("/srv/a.txt"), shell("/srv/b.txt")], vec![]),
                SECOND,
            ),
        ),
        observation(SHELL_A, 2 * SECOND, 2, exec("/srv/a.txt")),
        observation(SHELL_B, 2 * SECOND, 3, exec("/srv/b.txt")),
        observation(CAT_B, 3 * SECOND, 4, file("/srv/b.txt")),
        observation(CAT_A, 3 * SECOND, 5, file("/srv/a.txt")),
    ];
    for step in &steps {
        model.apply(step, &table, &mut identity);
    }
    let links: Vec<Vec<(u32, &str, Vec<Evidence>)>> = model
        .tool_calls()
        .map(|c| {
            c.links
                .iter()
                .map(|l| {
                    (
                        l.action.pid,
                        l.action.kind,
                        l.evidence
                            .iter()
                            .filter(|e| {
                                !matches!(e, Evidence::ProcessLineage { .. } | Evidence::TimeWindow)
                            })
                            .cloned()
                            .collect(),
                    )
                })
                .collect()
        })
        .collect();
    let argument = |file: &str| Evidence::ArgumentMatch {
        argument: "command".into(),
        value: format!("cat {file}"),
    };
    assert_eq!(
        links,
        [
            vec![
                (SHELL_A, "exec", vec![argument("/srv/a.txt")]),
                (CAT_A, "file", vec![Evidence::CallProcess { pid: SHELL_A }]),
            ],
            vec![
                (SHELL_B, "exec", vec![argument("/srv/b.txt")]),
                (CAT_B, "file", vec![Evidence::CallProcess { pid: SHELL_B }]),
            ],
        ]
    );
}

#[test]
fn actions_seen_before_the_call_that_caused_them_are_linked_when_it_arrives() {
    // A response that ends at connection close is reported after the actions it caused.
    let table = processes();
    let mut model = Model::new(ModelOptions::default());
    let mut identity = HostOnlyIdentity;
    model.apply(
        &observation(AGENT, SECOND, 1, with_end(llm(vec![], vec![]), SECOND)),
        &table,
        &mut identity,
    );
    model.apply(
        &observation(CHILD, 3 * SECOND, 2, file("/srv/late.txt")),
        &table,
        &mut identity,
    );
    model.apply(
        &observation(
            AGENT,
            2 * SECOND,
            3,
            with_end(
                llm(
                    vec![call("x", "read_file", json!({"path": "/srv/late.txt"}))],
                    vec![],
                ),
                2 * SECOND,
            ),
        ),
        &table,
        &mut identity,
    );
    let call = model.tool_calls().next().unwrap();
    assert_eq!(call.links.len(), 1);
    assert_eq!(call.links[0].action.ts_ns, 3 * SECOND);
}

/// The wire protocol of each call is an attribute of the edge it counts on; an agent that
/// called its model over HTTP/1.1 and then HTTP/2 shows both, in that order, once each.
#[test]
fn edges_list_the_wire_protocols_that_carried_their_calls() {
    use crate::reconstruct::http::WireProtocol;
    let table = processes();
    let mut model = Model::new(ModelOptions::default());
    let mut identity = HostOnlyIdentity;
    let calls = [
        (WireProtocol::Http1, llm(vec![], vec![])),
        (WireProtocol::H2, llm(vec![], vec![])),
        (WireProtocol::H2, llm(vec![], vec![])),
        (WireProtocol::H2c, http_get("/api/accounts/42/status")),
    ];
    for (index, (protocol, kind)) in calls.into_iter().enumerate() {
        let mut o = observation(AGENT, (10 + index as u64) * SECOND, index as u64, kind);
        o.protocol = Some(protocol);
        model.apply(&o, &table, &mut identity);
    }
    let protocols = |kind: EdgeKind| {
        model
            .graph()
            .edges()
            .filter(|e| e.kind == kind)
            .map(|e| e.attributes["protocol"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        protocols(EdgeKind::InvokesModel),
        [json!(["http/1.1", "h2"])]
    );
    assert_eq!(protocols(EdgeKind::CallsApi), [json!(["h2c"])]);
}
