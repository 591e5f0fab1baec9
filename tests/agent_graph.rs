//! End to end, privileged: an agent asks the (mock) model for a customer-health summary; the
//! model answers with tool calls that read a file (MCP over stdio), query PostgreSQL (MCP over
//! Streamable HTTP, which runs psql) and call an HTTP API (the agent itself). The graph that
//! `agentscope collect --graph-json` writes must show the agent with its model, each tool call
//! with its arguments and result, linked to the file, the psql exec, the SQL table and the
//! endpoint it caused, and the identity the agent ran under.

use crate::support;

use serde_json::{json, Value};
use support::*;

fn node<'a>(graph: &'a Value, id: &str) -> Option<&'a Value> {
    graph["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
}

fn edge<'a>(graph: &'a Value, from: &str, to: &str, kind: &str) -> Option<&'a Value> {
    graph["graph"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == from && e["to"] == to && e["kind"] == kind)
}

fn evidence_types(link: &Value) -> Vec<String> {
    link["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tool_calls_are_linked_to_the_file_sql_table_exec_and_endpoint_they_caused() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let postgres = PostgresServer::start(dir.path());
    let api = HttpApi::start(dir.path());
    let crm = McpCrmServer::start(dir.path(), Some(postgres.port));
    let report = dir.path().join("q3-account-report.txt");
    std::fs::write(
        &report,
        "Q3: 3 enterprise accounts renewed; churn risk on Globex.\n",
    )
    .unwrap();
    let sql = "SELECT name, plan, balance FROM customers WHERE balance > 100 ORDER BY balance DESC";
    let url = format!("http://127.0.0.1:{}/api/accounts/42/status", api.port);
    let scenario = dir.path().join("scenario.json");
    std::fs::write(
        &scenario,
        json!({
            "tool_calls": [
                {"name": "read_file", "arguments": {"path": report.to_str().unwrap()}},
                {"name": "query_database", "arguments": {"sql": sql}},
                {"name": "http_get", "arguments": {"url": url}},
            ],
            "final_text": "Account health: stable, one churn risk.",
        })
        .to_string(),
    )
    .unwrap();
    let llm = MockLlm::start_with(dir.path(), &["--scenario", scenario.to_str().unwrap()]);
    let dump = dir.path().join("agent-dump.json");
    let agent = Paused::agent(
        dir.path(),
        &mcp_python(),
        &[
            agents_dir().join("incident_agent.py").to_str().unwrap(),
            "--llm-port",
            &llm.port.to_string(),
            "--ca",
            llm.cert.to_str().unwrap(),
            "--mcp-url",
            &crm.url(),
            "--dump",
            dump.to_str().unwrap(),
        ],
        &[("AGENTSCOPE_TEST_API_KEY", "sk-agentscope-e2e-secret-123456")],
    );
    let graph_path = dir.path().join("graph.json");
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &agent.pid().to_string(),
            "--pid",
            &crm.pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
        ],
    );
    agent.release();
    let agent_pid = agent.pid();
    let output = agent.finish();
    let captured = collect.stop();
    assert!(output.contains("\"ok\": true"), "{output}");
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    assert_eq!(graph["schema"], "agentscope.model/v1");
    assert_eq!(captured.summary["kernel"]["dropped"], 0);

    // The agent, its model and AI-BOM.
    let agents = graph["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{:#}", graph["agents"]);
    let a = &agents[0];
    let key = a["key"].as_str().unwrap();
    assert!(
        key.starts_with("host:") && key.ends_with("incident_agent.py"),
        "{key}"
    );
    assert_eq!(a["name"], "incident_agent.py");
    assert!(a["pids"].as_array().unwrap().contains(&json!(agent_pid)));
    assert_eq!(a["llm_calls"], 2);
    assert_eq!(a["tool_calls"], 3);
    assert!(a["aibom"]["providers"]["127.0.0.1"]
        .as_array()
        .unwrap()
        .contains(&json!("gpt-4o-mini")));
    assert_eq!(a["aibom"]["apis"], json!(["open_ai_chat_completions"]));
    let servers = a["aibom"]["mcp_servers"].as_object().unwrap();
    assert_eq!(servers.len(), 2, "{servers:#?}");
    let http_server = &servers[&crm.url()];
    assert_eq!(http_server["transport"], "tcp");
    assert!(http_server["tools"].get("query_database").is_some());
    let stdio_server = servers
        .values()
        .find(|s| s["transport"] == "pipe")
        .expect("stdio MCP server in the AI-BOM");
    assert!(stdio_server["endpoint"]
        .as_str()
        .unwrap()
        .ends_with("mcp_files_server.py"));
    assert!(stdio_server["tools"].get("read_file").is_some());
    assert!(a["aibom"]["tools_offered"].get("http_get").is_some());
    // Identity: the user and the cgroup the agent ran in.
    assert_eq!(a["identity"]["uid"], 0);
    assert_eq!(a["identity"]["user"], "root");
    assert!(
        a["identity"]["details"]["cgroup_path"].is_string(),
        "{:#}",
        a["identity"]
    );

    let agent_node = format!("agent:{key}");
    let model_edge = graph["graph"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == agent_node.as_str() && e["kind"] == "invokes_model")
        .expect("agent → model edge");
    assert_eq!(model_edge["count"], 2);
    assert!(model_edge["events"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    assert!(edge(&graph, &agent_node, "identity:user:host:0", "runs_as").is_some());

    // Each tool call: arguments as requested, result as the agent sent it back, and links.
    let calls = graph["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let sent = truth["tool_calls"].as_array().unwrap();
    for call in calls {
        let name = call["gen_ai.tool.name"].as_str().unwrap();
        let truth = sent.iter().find(|t| t["name"] == name).unwrap();
        assert_eq!(call["gen_ai.tool.call.id"], truth["id"], "{name}");
        assert_eq!(
            call["gen_ai.tool.call.arguments"], truth["arguments"],
            "{name}"
        );
        let result = truth["result"].as_str().unwrap();
        let kept = call["result"]["content"].as_str().unwrap();
        assert!(
            result.starts_with(kept) && !kept.is_empty(),
            "{name}: {kept:?} vs {result:?}"
        );
        assert_eq!(call["result_evidence"]["type"], "tool_call_id");
        assert!(edge(
            &graph,
            &agent_node,
            call["tool_node"].as_str().unwrap(),
            "calls_tool"
        )
        .is_some());
    }
    let call = |name: &str| {
        calls
            .iter()
            .find(|c| c["gen_ai.tool.name"] == name)
            .unwrap()
    };
    let link = |call: &Value, kind: &str, target_prefix: &str| -> Value {
        call["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["kind"] == kind && l["target"].as_str().unwrap().starts_with(target_prefix))
            .unwrap_or_else(|| panic!("no {kind} link to {target_prefix}*: {:#}", call["links"]))
            .clone()
    };

    // read_file → MCP tools/call over stdio → the server process opened the file.
    let read = call("read_file");
    let mcp = link(read, "mcp_call", "mcp_server:");
    assert!(evidence_types(&mcp).contains(&"mcp_tools_call".to_string()));
    let file_node = format!("data:file:{}", report.display());
    let opened = link(read, "file", &file_node);
    let evidence = evidence_types(&opened);
    assert!(
        evidence.contains(&"argument_match".to_string()),
        "{evidence:?}"
    );
    assert!(
        evidence.contains(&"mcp_server_process".to_string()),
        "{evidence:?}"
    );
    assert_ne!(
        opened["pid"],
        json!(agent_pid),
        "the stdio server opened it"
    );
    assert!(edge(
        &graph,
        read["tool_node"].as_str().unwrap(),
        &file_node,
        "executed_via"
    )
    .is_some());

    // query_database → MCP over HTTP → the server ran psql → SQL on customers.
    let query = call("query_database");
    let mcp = link(query, "mcp_call", &format!("mcp_server:{}", crm.url()));
    assert!(evidence_types(&mcp).contains(&"mcp_tools_call".to_string()));
    let exec = link(query, "exec", "command:");
    assert!(exec["summary"].as_str().unwrap().contains(sql), "{exec:#}");
    assert!(evidence_types(&exec).contains(&"mcp_server_process".to_string()));
    let table = link(query, "sql", "data:table:crm.");
    assert!(
        table["target"].as_str().unwrap().ends_with("customers"),
        "{table:#}"
    );
    assert!(evidence_types(&table).contains(&"argument_match".to_string()));
    assert!(node(&graph, table["target"].as_str().unwrap()).is_some());

    // http_get → the agent's own request to the endpoint.
    let get = call("http_get");
    let api_link = link(get, "http", "api:GET ");
    assert_eq!(
        api_link["target"],
        format!("api:GET 127.0.0.1:{}/api/accounts/{{id}}/status", api.port)
    );
    assert_eq!(api_link["pid"], json!(agent_pid));

    // Nothing in the graph carries the API key.
    let text = std::fs::read_to_string(&graph_path).unwrap();
    assert!(!text.contains("sk-agentscope-e2e-secret-123456"));
}
