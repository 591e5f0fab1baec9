//! Two concurrent sessions of one agent sharing one MCP server: what the server's children do
//! belongs to the session whose call they carry out, never to the other one.
//!
//! The fixture, tests/fixtures/capture/demo_overlapping_queries.cap, is a real capture of one
//! round of the demo (tests/agents/run_incident_demo.py: the ordinary and the injected session,
//! one CRM server over Streamable HTTP) whose two `query_database` calls are held open at once
//! (`--crm-rendezvous 2`), so the server runs both sessions' `psql` side by side. Regenerate it
//! with scripts/regenerate-fixtures-capture.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use agentscope_analysis::pipeline::AttributedObservation;
use agentscope_capture::capture::Replay;
use agentscope_reconstruct::ObservationKind;

const EXFIL_SQL: &str = "SELECT name, email, plan, balance FROM customers";
const NARROW_SQL: &str =
    "SELECT name, plan, balance FROM customers WHERE balance > 100 ORDER BY balance DESC";

fn replay() -> (Replay, Vec<AttributedObservation>) {
    let path = PathBuf::from(env!("AGENTSCOPE_REPO"))
        .join("tests/fixtures/capture/demo_overlapping_queries.cap");
    let mut replay = Replay::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut observations = Vec::new();
    while let Some((_, step)) = replay.step() {
        observations.extend(step);
    }
    (replay, observations)
}

#[test]
fn a_shared_servers_children_belong_to_the_session_whose_call_they_run() {
    let (replay, observations) = replay();
    let snapshot = replay.pipeline().snapshot();

    // The two sessions' query_database calls, by their SQL: the agent process that received
    // each (its session) and when each was open.
    let calls: BTreeMap<&str, (u32, u64, u64)> = snapshot
        .tool_calls
        .iter()
        .filter(|c| c.name == "query_database")
        .map(|c| {
            let sql = c.arguments["sql"].as_str().unwrap();
            let sql = if sql == EXFIL_SQL {
                EXFIL_SQL
            } else {
                NARROW_SQL
            };
            (sql, (c.pid, c.requested_ns, c.closed_ns.unwrap()))
        })
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (injected, ordinary) = (calls[EXFIL_SQL], calls[NARROW_SQL]);
    assert_ne!(injected.0, ordinary.0, "two sessions: {calls:?}");
    // The fixture is what it is for: both calls open at once.
    assert!(
        injected.1 < ordinary.2 && ordinary.1 < injected.2,
        "the calls do not overlap: {calls:?}"
    );

    // Each psql the server started, by the SQL in its argv.
    let mut psql: BTreeMap<u32, u32> = BTreeMap::new();
    for o in &observations {
        if let ObservationKind::Exec { argv, .. } = &o.kind {
            if argv.first().is_some_and(|a| a.ends_with("/psql")) {
                let sql = argv.last().unwrap();
                let session = if sql == EXFIL_SQL {
                    injected.0
                } else {
                    assert_eq!(sql, NARROW_SQL);
                    ordinary.0
                };
                psql.insert(o.actor.pid, session);
            }
        }
    }
    assert_eq!(psql.len(), 2, "{psql:?}");

    // Everything a psql did that the pipeline attributed is in its own call's session, and
    // each psql's query is attributed (the evidence decided, nothing was left ambiguous).
    let mut attributed_sql = BTreeSet::new();
    for o in &observations {
        let Some(&session) = psql.get(&o.actor.pid) else {
            continue;
        };
        if o.session.is_some() {
            assert_eq!(
                o.session,
                Some(session),
                "psql {} attributed to the other session: {:?}",
                o.actor.pid,
                o.kind
            );
        }
        if matches!(o.kind, ObservationKind::Sql { .. }) && o.session.is_some() {
            attributed_sql.insert(o.actor.pid);
        }
    }
    assert_eq!(attributed_sql.len(), 2, "{psql:?}");

    // Each call is linked to its own psql only.
    for call in snapshot
        .tool_calls
        .iter()
        .filter(|c| c.name == "query_database")
    {
        for link in &call.links {
            if let Some(&session) = psql.get(&link.action.pid) {
                assert_eq!(
                    session, call.pid,
                    "the call of session {} linked to the other session's psql: {}",
                    call.pid, link.action.summary
                );
            }
        }
    }

    // The incident's evidence holds no event of the ordinary session.
    let ordinary_pids: BTreeSet<u32> = observations
        .iter()
        .filter(|o| o.session == Some(ordinary.0))
        .map(|o| o.actor.pid)
        .collect();
    assert_eq!(snapshot.incidents.len(), 1, "{:#?}", snapshot.incidents);
    let incident = &snapshot.incidents[0];
    let findings = snapshot
        .findings
        .iter()
        .filter(|f| incident.findings.contains(&f.id));
    let ranges = incident
        .events
        .iter()
        .map(|r| ("the incident", r))
        .chain(findings.flat_map(|f| {
            f.events
                .iter()
                .chain(f.subject_events.iter())
                .map(|r| (f.summary.as_str(), r))
        }));
    let mut evidence_events = 0;
    let mut of_the_ordinary_session = Vec::new();
    for (whose, range) in ranges {
        for index in range.first..=range.last {
            let event = replay.event(index).unwrap();
            evidence_events += 1;
            if ordinary_pids.contains(&event.header.pid) {
                of_the_ordinary_session.push(format!(
                    "event {index} (pid {}, {}) is evidence of {whose} ({range:?})",
                    event.header.pid,
                    format!("{:?}", event.body)
                        .chars()
                        .take(120)
                        .collect::<String>()
                ));
            }
        }
    }
    assert!(
        of_the_ordinary_session.is_empty(),
        "the ordinary session's events are the incident's evidence:\n{}",
        of_the_ordinary_session.join("\n")
    );
    assert!(evidence_events > 0);
}
