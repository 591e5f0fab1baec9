//! Detection over the committed recordings (recordings/README.md): the injected scenario is
//! one incident that tells the whole chain, the ordinary one is none.

use std::path::PathBuf;

use agentscope_analysis::detect::{FindingDetail, FindingKind, Severity};
use agentscope_analysis::model::ModelSnapshot;
use agentscope_capture::capture::Replay;
use agentscope_event::EventBody;

fn replay(name: &str) -> ModelSnapshot {
    let path = PathBuf::from(env!("AGENTSCOPE_REPO"))
        .join("recordings")
        .join(name);
    let mut replay = Replay::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    replay.run_to_end();
    replay.pipeline().snapshot()
}

#[test]
fn the_injected_recording_is_exactly_one_incident_telling_the_chain() {
    let snapshot = replay("injected.cap");
    assert_eq!(snapshot.incidents.len(), 1, "{:#?}", snapshot.incidents);
    let incident = &snapshot.incidents[0];
    assert_eq!(incident.severity, Severity::Critical);
    let story = &incident.story;
    // The injected content, the database tool call and table, the exfiltration endpoint and
    // the service identity.
    for expected in [
        "prompt injection",
        "SUP-4711.txt",
        "ignore your previous instructions",
        "database tool call query_database",
        "crm.customers",
        "exfiltration",
        "127.0.0.2:",
        "service account support/support-agent",
        "arn:aws:iam::123456789012:role/support-agent-crm",
    ] {
        assert!(
            story.contains(expected),
            "story lacks {expected:?}: {story}"
        );
    }
    // Trigger first, identity last: the order of the chain.
    let at = |s: &str| story.find(s).unwrap();
    assert!(at("prompt injection") < at("query_database"));
    assert!(at("query_database") < at("exfiltration"));
    assert!(at("exfiltration") < at("service account"));

    let kinds: Vec<FindingKind> = incident
        .findings
        .iter()
        .map(|id| snapshot.findings.iter().find(|f| &f.id == id).unwrap().kind)
        .collect();
    for kind in [
        FindingKind::PromptInjection,
        FindingKind::ToolMisuse,
        FindingKind::SensitiveAccess,
        FindingKind::Exfiltration,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing from {kinds:?}");
    }
    // The exfiltration finding matched the rows, not just the timing.
    let exfil = snapshot
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Exfiltration)
        .unwrap();
    let FindingDetail::Exfiltration {
        destination,
        samples,
        origins,
        ..
    } = &exfil.detail
    else {
        unreachable!()
    };
    assert!(destination.starts_with("127.0.0.2:"), "{destination}");
    assert!(
        samples.iter().any(|s| s.contains("ada@example.com")),
        "{samples:?}"
    );
    assert!(origins.iter().any(|o| o.contains("query_database")));
    // Every finding of the agent in the chain window belongs to the incident, and each
    // carries evidence events and OWASP labels.
    for finding in &snapshot.findings {
        assert_eq!(finding.incident.as_deref(), Some("inc-1"), "{finding:#?}");
        assert!(!finding.events.is_empty());
        assert!(!finding.labels.is_empty());
    }
    let labels: Vec<&str> = incident.labels.iter().map(|l| l.id).collect();
    assert!(labels.contains(&"LLM01:2025") && labels.contains(&"ASI01:2026"));
}

#[test]
fn the_ordinary_recording_has_no_incident() {
    let snapshot = replay("ordinary.cap");
    assert!(snapshot.incidents.is_empty(), "{:#?}", snapshot.incidents);
    // Reading the customers table is its job: reported as sensitive access, not alarmed on.
    assert!(snapshot
        .findings
        .iter()
        .all(|f| f.severity <= Severity::Medium && f.incident.is_none()));
    assert!(!snapshot.findings.iter().any(|f| matches!(
        f.kind,
        FindingKind::PromptInjection | FindingKind::Exfiltration
    )));
}

#[test]
fn detection_is_the_same_on_every_replay() {
    let first = replay("injected.cap");
    let second = replay("injected.cap");
    assert_eq!(
        serde_json::to_string(&first.findings).unwrap(),
        serde_json::to_string(&second.findings).unwrap()
    );
    assert_eq!(
        serde_json::to_string(&first.incidents).unwrap(),
        serde_json::to_string(&second.incidents).unwrap()
    );
}

/// The live demo replays its injected session again and again. Each repeat of the same chain
/// (the same injected content steering the same tools to the same destination) is counted on
/// the one incident, not appended to it: the story keeps one segment per step, and the bytes
/// and requests it states are the sums over the repeats.
#[test]
fn an_injected_session_repeated_ten_times_is_one_bounded_incident_whose_figures_add_up() {
    use agentscope_capture::capture::{CaptureContents, CaptureReader};

    const REPEATS: u64 = 10;
    let path = PathBuf::from(env!("AGENTSCOPE_REPO")).join("recordings/injected.cap");
    let contents = CaptureContents::load(&CaptureReader::open(&path).unwrap());
    assert!(contents.damage.is_empty(), "{:?}", contents.damage);
    let first_ts = contents.events.first().unwrap().header.ts_ns;
    let last_ts = contents.events.last().unwrap().header.ts_ns;
    // The agent process runs the session again and again, as the demo's does: it was running
    // before the recording started (seeded from /proc, no exec recorded), so it stays alive
    // across repeats and exits after the last; the tool servers and clients it starts are
    // new processes each time. Repeats start after the previous one ended, past the chain
    // window and the pause that ends a sending (two minutes each). All ten fall in a learning
    // period of an hour: once a baseline is complete, a destination it learned is no longer
    // news (docs/detection.md), which is another question than counting repeats.
    let period = (last_ts - first_ts) + 130 * 1_000_000_000;
    let learning = agentscope_analysis::detect::DetectorOptions {
        learner: agentscope_analysis::baseline::LearnerOptions::default()
            .with_learning_period_seconds(3600),
        ..Default::default()
    };

    // One session alone: what each repeat adds.
    let mut single = contents.new_pipeline();
    single.set_detection(learning.clone());
    for (index, event) in contents.events.iter().enumerate() {
        for answer in contents.answers_before(index) {
            single.remember_identity(answer.clone());
        }
        single.push(event);
    }
    single.finish();
    let once = single.snapshot();
    assert_eq!(once.incidents.len(), 1, "{:#?}", once.incidents);
    let (once_bytes, once_requests) = exfiltrated(&once.findings);
    assert!(once_bytes > 0 && once_requests > 0);

    let mut pipeline = contents.new_pipeline();
    pipeline.set_detection(learning);
    let started: std::collections::HashSet<u32> = contents
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Fork { child_pid, .. } => Some(*child_pid),
            EventBody::Exec { .. } => Some(e.header.pid),
            _ => None,
        })
        .collect();
    for repeat in 0..REPEATS {
        for (index, event) in contents.events.iter().enumerate() {
            for answer in contents.answers_before(index) {
                pipeline.remember_identity(answer.clone());
            }
            let seeded_exit = matches!(event.body, EventBody::Exit { .. })
                && !started.contains(&event.header.pid);
            if seeded_exit && repeat + 1 < REPEATS {
                continue;
            }
            let mut event = event.clone();
            event.header.ts_ns += repeat * period;
            event.header.time_unix_ns += repeat * period;
            pipeline.push(&event);
        }
    }
    pipeline.finish();
    let snapshot = pipeline.snapshot();
    assert_eq!(snapshot.incidents.len(), 1, "{:#?}", snapshot.incidents);
    let incident = &snapshot.incidents[0];
    let story = &incident.story;
    assert!(!story.contains('\n'), "{story}");
    // Bounded: the repeats add no segment to the story, and no step to the chain.
    assert_eq!(
        story.matches(" → ").count(),
        once.incidents[0].story.matches(" → ").count(),
        "{story}\nvs one session: {}",
        once.incidents[0].story
    );
    assert_eq!(
        incident.chain.tool_calls.len(),
        once.incidents[0].chain.tool_calls.len(),
        "{:#?}",
        incident.chain
    );
    assert_eq!(incident.occurrences, REPEATS as u32, "{incident:#?}");
    // The figures add up: ten sessions sent ten times the bytes in ten times the requests, and
    // the story says exactly that.
    let (bytes, requests) = exfiltrated(&snapshot.findings);
    assert_eq!(
        (bytes, requests),
        (
            once_bytes * REPEATS as usize,
            once_requests * REPEATS as u32
        )
    );
    let stated = format!(
        "{bytes} bytes of read data to {} ({requests} requests)",
        destination_of_exfiltration(&snapshot.findings)
    );
    assert!(story.contains(&stated), "story lacks {stated:?}: {story}");
    assert!(story.contains(&format!("{REPEATS} times")), "{story}");
}

/// Matched bytes and requests over every exfiltration finding.
fn exfiltrated(findings: &[agentscope_analysis::detect::Finding]) -> (usize, u32) {
    findings
        .iter()
        .filter_map(|f| match &f.detail {
            FindingDetail::Exfiltration {
                matched_bytes,
                requests,
                ..
            } => Some((*matched_bytes, *requests)),
            _ => None,
        })
        .fold((0, 0), |(b, r), (fb, fr)| (b + fb, r + fr))
}

fn destination_of_exfiltration(findings: &[agentscope_analysis::detect::Finding]) -> String {
    findings
        .iter()
        .find_map(|f| match &f.detail {
            FindingDetail::Exfiltration { destination, .. } => Some(destination.clone()),
            _ => None,
        })
        .unwrap()
}

/// What an MCP server outside the agent's process tree runs for the agent's tool call (the
/// CRM server's `psql`) ends before the MCP exchange that links it does, and `psql` exits in
/// between. The link still makes it the agent's and its session's, so the learned baseline
/// holds the table and the executable (it said `tables: []` when such observations were
/// forgotten at the process's exit).
#[test]
fn what_an_mcp_server_ran_for_the_agent_is_in_the_agents_baseline_and_session() {
    for name in ["ordinary.cap", "injected.cap"] {
        let path = PathBuf::from(env!("AGENTSCOPE_REPO"))
            .join("recordings")
            .join(name);
        let mut replay = Replay::open(&path).unwrap();
        let mut sql_sessions = Vec::new();
        let mut agent_sessions = std::collections::BTreeSet::new();
        let mut unclaimed_sql = 0;
        while let Some((_, observations)) = replay.step() {
            for o in observations {
                if let Some(session) = o.session {
                    agent_sessions.insert(session);
                }
                // Out first as nobody's, then again (`earlier`) once linked.
                if let agentscope_reconstruct::ObservationKind::Sql { .. } = o.observation.kind {
                    if o.earlier || o.agent.is_some() {
                        sql_sessions.push((o.agent.clone(), o.session));
                    } else {
                        unclaimed_sql += 1;
                    }
                }
            }
        }
        // One run of the agent: one session, and the SQL belongs to it.
        assert_eq!(agent_sessions.len(), 1, "{name}: {agent_sessions:?}");
        let session = agent_sessions.first().copied();
        assert!(!sql_sessions.is_empty(), "{name}: no SQL observed");
        assert_eq!(
            sql_sessions.len(),
            unclaimed_sql,
            "{name}: every SQL claimed"
        );
        for (agent, sql_session) in &sql_sessions {
            assert!(agent.is_some(), "{name}: SQL of no agent");
            assert_eq!(*sql_session, session, "{name}");
        }
        let pipeline = replay.pipeline();
        let key = pipeline.snapshot().agents[0].key.clone();
        let baseline = pipeline
            .detector()
            .learner()
            .baseline(&key)
            .expect("a baseline");
        assert!(
            baseline.spec.data.tables.contains("crm.customers"),
            "{name}: {:?}",
            baseline.spec.data.tables
        );
        assert!(
            baseline
                .spec
                .executables
                .keys()
                .any(|path| path.ends_with("/psql")),
            "{name}: {:?}",
            baseline.spec.executables.keys()
        );
    }
}
