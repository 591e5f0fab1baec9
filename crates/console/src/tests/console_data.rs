//! What the console shows of the data beneath it: sessions of one agent told apart and
//! grouped, "new" edges relative to a baseline, findings that grow while shown, the baseline
//! export of an attacked agent without its incident's evidence, and the process lineage.

use std::io::Write as _;

use ratatui::crossterm::event::KeyCode;

use super::*;

/// Two runs of the agent of `capture/python_chat.jsonl` side by side, as the demo runs its
/// ordinary and injected sessions: the real capture, and the same events again as another
/// process tree (pids moved by 1000, 2 ms later, under the same parent shell), merged in time
/// order. Written to `two_runs.jsonl` in a temporary directory, which the console replays.
fn two_concurrent_runs() -> (tempfile::TempDir, std::path::PathBuf) {
    let text = std::fs::read_to_string(fixture("capture/python_chat.jsonl")).unwrap();
    let first: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pids: std::collections::BTreeSet<u64> =
        first.iter().map(|e| e["pid"].as_u64().unwrap()).collect();
    let moved = |pid: &serde_json::Value| match pid.as_u64() {
        Some(p) if pids.contains(&p) => serde_json::json!(p + 1000),
        _ => pid.clone(),
    };
    let second: Vec<serde_json::Value> = first
        .iter()
        .map(|event| {
            let mut event = event.clone();
            for field in ["pid", "tid", "ppid", "child_pid"] {
                if let Some(value) = event.get(field) {
                    event[field] = moved(value);
                }
            }
            for field in ["ts_ns", "time_unix_ns"] {
                event[field] = serde_json::json!(event[field].as_u64().unwrap() + 2_000_000);
            }
            event
        })
        .collect();
    let mut all: Vec<serde_json::Value> = first.into_iter().chain(second).collect();
    all.sort_by_key(|e| e["ts_ns"].as_u64().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two_runs.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    for event in all {
        writeln!(file, "{event}").unwrap();
    }
    file.flush().unwrap();
    (dir, path)
}

fn two_runs_console() -> (Console, tempfile::TempDir) {
    let (dir, path) = two_concurrent_runs();
    let console = Console::with_source(JsonEventsSource::open(&path).unwrap()).play_to_end();
    (console, dir)
}

/// The sessions (number, pid) of the timeline's rows, in the order shown.
fn shown_sessions(console: &Console) -> Vec<(u32, u32)> {
    let agent = console.app.current_agent().unwrap();
    let log = console.app.logs().agent(agent).unwrap();
    console
        .app
        .timeline()
        .shown_positions(log)
        .filter_map(|p| log.get(p)?.session.map(|s| (s.number, s.pid)))
        .collect()
}

#[test]
fn concurrent_runs_of_one_agent_are_two_sessions_told_apart_searched_and_grouped() {
    let (mut console, _file) = two_runs_console();
    let agent = console.app.current_agent().unwrap().to_string();
    let log = console.app.logs().agent(&agent).unwrap();
    assert_eq!(log.session_count(), 2, "two runs, two sessions");
    let sessions = shown_sessions(&console);
    assert_eq!(
        sessions.first(),
        Some(&(1, 18555)),
        "the first run is s1: {sessions:?}"
    );
    assert!(sessions.contains(&(2, 19555)), "{sessions:?}");
    // Interleaved in time order: s2 rows come before the last s1 row.
    let last_s1 = sessions.iter().rposition(|s| s.0 == 1).unwrap();
    let first_s2 = sessions.iter().position(|s| s.0 == 2).unwrap();
    assert!(first_s2 < last_s1, "{sessions:?}");
    // The tool the first run started (echo, its child) is in its session.
    let log = console.app.logs().agent(&agent).unwrap();
    let echo: Vec<_> = log
        .iter_from(0)
        .filter(|(_, e)| e.kind.tag() == "EXEC")
        .map(|(_, e)| (e.observation.actor.pid, e.session.unwrap().number))
        .collect();
    assert!(
        echo.contains(&(18586, 1)) && echo.contains(&(19586, 2)),
        "{echo:?}"
    );

    // The column.
    console.focus_pane(PaneId::Timeline);
    let screen = console.screen();
    assert!(
        screen.contains(" s1 ") && screen.contains(" s2 "),
        "{screen}"
    );

    // session:2 keeps the second run's rows only; s2 and the session's pid say the same.
    console.keys("/session:2");
    console.press(KeyCode::Enter);
    let only_second = shown_sessions(&console);
    assert!(!only_second.is_empty());
    assert!(only_second.iter().all(|s| s.0 == 2), "{only_second:?}");
    for query in ["session:s2", "session:19555"] {
        console.press(KeyCode::Esc);
        console.keys(&format!("/{query}"));
        console.press(KeyCode::Enter);
        assert_eq!(shown_sessions(&console), only_second, "{query}");
    }
    console.press(KeyCode::Esc);
    assert_eq!(console.app.focus(), PaneId::Timeline);

    // S groups: every s1 row, then every s2 row, each in time order; S again: time order.
    console.keys("S");
    let grouped = shown_sessions(&console);
    assert_eq!(grouped.len(), sessions.len());
    let boundary = grouped.iter().position(|s| s.0 == 2).unwrap();
    assert!(grouped[..boundary].iter().all(|s| s.0 == 1));
    assert!(grouped[boundary..].iter().all(|s| s.0 == 2), "{grouped:?}");
    let log = console.app.logs().agent(&agent).unwrap();
    let times: Vec<u64> = console
        .app
        .timeline()
        .shown_positions(log)
        .map(|p| log.get(p).unwrap().observation.ts_ns)
        .collect();
    assert!(times[..boundary].is_sorted() && times[boundary..].is_sorted());
    console.press(KeyCode::Home);
    snapshot_both(&mut console, "timeline_grouped_by_session");
    console.keys("S");
    assert_eq!(shown_sessions(&console), sessions);
}

/// One process holding two conversations one after the other (`python_agent.py
/// --conversations 2`, tests/fixtures/capture/python_two_conversations.jsonl): one session,
/// its rows told apart as `s1` and `s1.2` (the LLM calls chained by their messages, each
/// tool's exec and file read in the conversation that asked for it), searched with
/// `session:s1.2`, and grouped by `S`.
#[test]
fn conversations_within_one_process_are_told_apart_searched_and_grouped() {
    let path = fixture("capture/python_two_conversations.jsonl");
    let mut console = Console::with_source(JsonEventsSource::open(&path).unwrap()).play_to_end();
    let agent = console.app.current_agent().unwrap().to_string();
    let tags = |console: &Console| -> Vec<(String, &'static str)> {
        let log = console.app.logs().agent(&agent).unwrap();
        console
            .app
            .timeline()
            .shown_positions(log)
            .filter_map(|p| {
                let entry = log.get(p)?;
                Some((entry.session?.label(), entry.kind.tag()))
            })
            .collect()
    };
    let log = console.app.logs().agent(&agent).unwrap();
    assert_eq!(log.session_count(), 1, "one process, one session");
    let rows = tags(&console);
    let llm: Vec<&str> = rows
        .iter()
        .filter(|(_, kind)| *kind == "LLM")
        .map(|(tag, _)| tag.as_str())
        .collect();
    assert_eq!(llm, ["s1", "s1", "s1.2", "s1.2"], "{rows:?}");
    for kind in ["EXEC", "FILE"] {
        for tag in ["s1", "s1.2"] {
            assert!(
                rows.iter().any(|(t, k)| t == tag && *k == kind),
                "{kind} in {tag}: {rows:?}"
            );
        }
    }

    // The column.
    console.focus_pane(PaneId::Timeline);
    let screen = console.screen();
    assert!(screen.contains(" s1.2 "), "{screen}");

    // session:s1.2 keeps the second conversation; session:1 keeps both.
    console.keys("/session:s1.2");
    console.press(KeyCode::Enter);
    let second = tags(&console);
    assert!(
        !second.is_empty() && second.iter().all(|(t, _)| t == "s1.2"),
        "{second:?}"
    );
    console.press(KeyCode::Esc);
    console.keys("/session:1");
    console.press(KeyCode::Enter);
    assert_eq!(tags(&console).len(), rows.len());
    console.press(KeyCode::Esc);

    // S groups by conversation within the session; the rows are the same.
    console.keys("S");
    let grouped = tags(&console);
    assert_eq!(grouped.len(), rows.len());
    let boundary = grouped.iter().position(|(t, _)| t == "s1.2").unwrap();
    assert!(
        grouped[..boundary].iter().all(|(t, _)| t == "s1"),
        "{grouped:?}"
    );
    assert!(
        grouped[boundary..].iter().all(|(t, _)| t == "s1.2"),
        "{grouped:?}"
    );
    console.press(KeyCode::Home);
    snapshot_both(&mut console, "timeline_grouped_by_conversation");
}

/// The baseline `ordinary.cap` teaches: the same assistant answering ordinary questions.
fn ordinary_baseline() -> AgentBaseline {
    let mut replay = agentscope_capture::capture::Replay::open(&recording("ordinary.cap")).unwrap();
    replay.run_to_end();
    let pipeline = replay.pipeline();
    let key = pipeline.snapshot().agents[0].key.clone();
    pipeline.detector().learner().baseline(&key).unwrap()
}

fn injected_console(approved: Vec<AgentBaseline>) -> Console {
    let options = agentscope_analysis::detect::DetectorOptions {
        approved,
        ..Default::default()
    };
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY)
        .with_detection(options);
    let mut console = Console::with_source(source).play_to_end();
    console.focus_pane(PaneId::Graph);
    // Every row open, so every edge is on screen.
    console.press(KeyCode::Home);
    console
}

/// The graph rows marked `new`, by label.
fn new_rows(console: &Console) -> Vec<String> {
    console
        .app
        .graph()
        .rows()
        .iter()
        .filter_map(|row| match &row.content {
            RowContent::Edge(edge) if edge.new => Some(edge.label.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn new_edges_are_new_relative_to_the_baseline_and_a_replay_without_one_says_so() {
    // No baseline: a replay marks nothing new (every edge appeared a moment ago) and the
    // graph says what it lacks.
    let mut console = injected_console(Vec::new());
    let screen = console.screen();
    assert!(screen.contains("no baseline"), "{screen}");
    assert!(new_rows(&console).is_empty(), "{:?}", new_rows(&console));
    assert!(!screen.contains(" new ×"), "{screen}");
    assert!(
        !screen.contains(" recent ×"),
        "a replay is not live: {screen}"
    );

    // Judged against what the ordinary session did: the model and read_file are known; the
    // drop box on 127.0.0.2 and http_post are not.
    let mut console = injected_console(vec![ordinary_baseline()]);
    let screen = console.screen();
    assert!(
        screen.contains("new: not in the approved baseline"),
        "{screen}"
    );
    let new = new_rows(&console);
    assert!(
        new.iter().any(|l| l.contains("127.0.0.2")),
        "the exfiltration endpoint is new: {new:?}"
    );
    assert!(new.iter().any(|l| l == "http_post"), "{new:?}");
    // The CRM server too: the ordinary session used it (an edge is new only where a
    // deviation's own events are, not events of other calls in between).
    for known in ["gpt-4o-mini", "read_file", "agentscope-crm"] {
        assert!(
            !new.iter().any(|l| l == known),
            "{known} is in the baseline: {new:?}"
        );
    }
    let theme = Theme::preset("dark").unwrap();
    assert_eq!(
        style_at(&mut console, "http_post").fg,
        Some(theme.color("new_edge"))
    );
    assert_eq!(
        style_at(&mut console, "gpt-4o-mini").fg,
        Some(theme.color("model"))
    );
    snapshot_both(
        &mut console,
        "recording_injected_graph_vs_ordinary_baseline",
    );
}

/// The incident of `injected.cap` opens at the injected ticket and grows as the model follows
/// the instruction (the query, the POST): its row says how many findings it holds and when it
/// last grew, frame by frame, not as it first appeared.
#[test]
fn an_incident_row_updates_its_count_and_last_seen_as_the_incident_grows() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap")).unwrap();
    let mut console = Console::with_source(source);
    let row = |console: &Console| {
        console
            .app
            .findings()
            .of_agent(console.app.current_agent().unwrap_or(""))
            .find(|f| f.id.starts_with("inc-"))
            .map(|f| (f.findings, f.last_seen_ns))
    };
    // First step: play until the incident appears.
    let mut first = None;
    for _ in 0..1000 {
        console.clock.advance(std::time::Duration::from_millis(5));
        console.poll();
        console.draw();
        if let Some(found) = row(&console) {
            first = Some(found);
            break;
        }
    }
    let (first_count, first_seen) = first.expect("the incident appeared");
    let screen = console.screen();
    assert!(
        screen.contains(&format!("[{first_count}] inc"))
            || (first_count == 1 && screen.contains(" inc")),
        "{screen}"
    );
    // Second step: the rest of the session.
    let mut console = console.play_to_end();
    let (count, last_seen) = row(&console).unwrap();
    assert!(count > first_count, "{first_count} → {count}");
    assert!(last_seen > first_seen, "{first_seen} → {last_seen}");
    let screen = console.screen();
    let line = screen
        .lines()
        .find(|l| l.contains(&format!("[{count}] inc")))
        .unwrap_or_else(|| panic!("no grown row:\n{screen}"));
    // Its time is the last growth, not the opening.
    let shown = super::super::format::format_time(last_seen, console_boot_offset(&console));
    assert!(line.contains(&shown), "{shown} not in {line}");
}

/// The boot offset the app learned (wall-clock times shown), as the findings pane uses it.
fn console_boot_offset(console: &Console) -> Option<i128> {
    console.app.boot_offset()
}

/// The lineage Detail shows for the injected recording's agent: its own process and the test
/// harness that started it, up to (not past) the first infrastructure process, each with its
/// command line and never a process's environment unless `v` asked for it.
#[test]
fn lineage_in_detail_stops_at_infrastructure_and_v_shows_environments() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    let agent = console.app.current_agent().unwrap().to_string();
    let pid = console
        .source
        .pipeline()
        .model()
        .agent(&agent)
        .unwrap()
        .pids
        .iter()
        .next_back()
        .copied()
        .unwrap();
    let lines = crate::lineage::lineage(console.source.pipeline().processes(), pid, false);
    assert!(lines.len() >= 2, "{lines:#?}");
    assert_eq!(lines[0].pid, pid);
    assert!(lines[0].command.contains("incident_agent.py"), "{lines:#?}");
    for (i, line) in lines.iter().enumerate() {
        if line.boundary {
            assert_eq!(i + 1, lines.len(), "nothing above the boundary: {lines:#?}");
            assert!(line.command.is_empty());
        }
        assert!(
            line.pid != 1 || line.boundary,
            "PID 1 is never shown with its command"
        );
    }
    // The agent's Detail carries the same lines, with environments only when expanded (v).
    let pipeline = console.source.pipeline();
    let model_agent = pipeline.model().agent(&agent).unwrap();
    let options = app_options(ColorMode::TrueColor);
    let detail = |expand: bool| {
        super::super::detail::agent_detail(
            model_agent,
            None,
            pipeline,
            &options.styles,
            None,
            expand,
        )
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
    };
    let text = detail(false);
    assert!(text.contains("Process lineage"), "{text}");
    assert!(text.contains(&format!("{pid} python")), "{text}");
    assert!(!text.contains("sk-agentscope"), "no key anywhere: {text}");
    assert!(!detail(true).contains("sk-agentscope"), "nor when expanded");
    // v flips what Detail shows and says so in the help.
    console.focus_pane(PaneId::Agents);
    console.keys("v");
    console.keys("?");
    assert!(console.screen().contains("show environments"));
}

/// `tui --namespace/--pod/--agent`: the agents tree and the findings list only the selected
/// agents (the injected recording's agent is in namespace `support`).
#[test]
fn the_console_shows_only_the_selected_agents_and_their_findings() {
    let select = |selector: agentscope_analysis::model::agent_selector::AgentSelector| {
        let source = JsonEventsSource::open_capture(&recording("injected.cap"))
            .unwrap()
            .at_speed(f64::INFINITY);
        let mut console = Console::with_source(source);
        let mut options = app_options(ColorMode::TrueColor);
        options.selector = selector;
        console.app = App::new(options);
        let mut console = console.play_to_end();
        let screen = console.screen();
        (
            console.app.current_agent().is_some(),
            console.app.findings().len(),
            screen,
        )
    };
    let (agent, findings, screen) =
        select(agentscope_analysis::model::agent_selector::AgentSelector {
            namespace: Some("support".into()),
            ..Default::default()
        });
    assert!(agent && findings > 0, "{screen}");
    let (agent, findings, screen) =
        select(agentscope_analysis::model::agent_selector::AgentSelector {
            namespace: Some("default".into()),
            ..Default::default()
        });
    assert!(!agent && findings == 0, "{screen}");
    assert!(screen.contains("Agents (0)"), "{screen}");
}
