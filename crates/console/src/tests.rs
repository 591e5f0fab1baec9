//! The console over captures taken by the real collector (tests/fixtures, see
//! DEVELOPERS.md for how they are regenerated): snapshots of every pane at two terminal sizes,
//! and what keys and the mouse do.
//!
//! Snapshots are the text of a ratatui TestBackend; they hold no wall-clock time (times come
//! from the events, pacing from a manual clock). Review changes with `cargo insta review`.

use std::path::{Path, PathBuf};

use agentscope_analysis::baseline::AgentBaseline;
use agentscope_analysis::model::{ActorIdentity, EdgeKind, IdentityLookup};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::style::Modifier;
use ratatui::Terminal;

use super::app::PaneId;
use super::graph_pane::RowContent;
use super::json_source::ManualClock;
use super::*;

mod console_data;
mod enforcement_view;

const SIZES: [(u16, u16); 2] = [(120, 40), (80, 24)];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("AGENTSCOPE_REPO"))
        .join("tests/fixtures")
        .join(name)
}

fn app_options(mode: ColorMode) -> AppOptions {
    let mut options = ConsoleOptions::new(ConsoleConfig::default(), None);
    options.color_mode = Some(mode);
    let mut app = options.app_options().unwrap();
    // Every frame sees the latest model: snapshots do not depend on frame counts.
    app.refresh_every_ticks = 1;
    app.adaptive_refresh = false;
    app
}

struct Console {
    source: JsonEventsSource,
    clock: ManualClock,
    app: App,
    terminal: Terminal<TestBackend>,
}

impl Console {
    fn open(name: &str) -> Self {
        Self::with_source(JsonEventsSource::open(&fixture(name)).unwrap())
    }

    fn with_source(source: JsonEventsSource) -> Self {
        let clock = ManualClock::default();
        let source = source.with_clock(Box::new(clock.clone()));
        Self {
            source,
            clock,
            app: App::new(app_options(ColorMode::TrueColor)),
            terminal: Terminal::new(TestBackend::new(120, 40)).unwrap(),
        }
    }

    /// Polls once and feeds the update to the app.
    fn poll(&mut self) -> SourceUpdate {
        let update = self.source.poll(usize::MAX);
        let copy = update.clone();
        self.app.ingest(update, self.source.pipeline());
        copy
    }

    /// Plays the whole capture (paced by the manual clock).
    fn play_to_end(mut self) -> Self {
        for _ in 0..1000 {
            self.clock.advance(std::time::Duration::from_millis(100));
            let update = self.poll();
            if matches!(&update.status.mode, SourceMode::Replay(r) if r.finished) {
                self.draw();
                return self;
            }
        }
        panic!("the replay did not finish");
    }

    fn resize(&mut self, width: u16, height: u16) {
        self.terminal.backend_mut().resize(width, height);
    }

    fn draw(&mut self) {
        let Self {
            app,
            source,
            terminal,
            ..
        } = self;
        terminal.draw(|f| app.render(f, source.pipeline())).unwrap();
    }

    fn screen(&mut self) -> String {
        self.draw();
        self.terminal.backend().to_string()
    }

    fn press(&mut self, code: KeyCode) -> Vec<Effect> {
        self.press_with(code, KeyModifiers::NONE)
    }

    fn press_with(&mut self, code: KeyCode, modifiers: KeyModifiers) -> Vec<Effect> {
        let effects = self
            .app
            .handle_event(&Event::Key(KeyEvent::new(code, modifiers)));
        self.draw();
        effects
    }

    fn keys(&mut self, text: &str) {
        for c in text.chars() {
            self.press(KeyCode::Char(c));
        }
    }

    fn mouse(&mut self, kind: MouseEventKind, column: u16, row: u16) {
        self.app.handle_event(&Event::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        }));
        self.draw();
    }

    /// Applies effects to the source the way the console loop does.
    fn apply(&mut self, effects: Vec<Effect>, exporter: &mut BaselineExporter) -> bool {
        let mut quit = false;
        for effect in effects {
            quit |= self.app.apply_effect(effect, &mut self.source, exporter);
        }
        quit
    }

    /// Focuses `pane` with its number key (Tab would pass through the panes between, and
    /// focusing one brings it into a place it shares).
    fn focus_pane(&mut self, pane: PaneId) {
        let number = super::pane_switcher::pane_number(pane);
        self.press(KeyCode::Char(char::from_digit(number as u32, 10).unwrap()));
        assert_eq!(self.app.focus(), pane, "key {number}");
    }

    /// Focuses the timeline, selects the `nth` entry with tag `tag` and opens it in Detail
    /// (Enter; focus stays in the timeline).
    fn select_entry(&mut self, tag: &str, nth: usize) {
        self.focus_pane(PaneId::Timeline);
        let agent = self.app.current_agent().unwrap().to_string();
        let row = self
            .app
            .logs()
            .agent(&agent)
            .unwrap()
            .iter_from(0)
            .enumerate()
            .filter(|(_, (_, e))| e.kind.tag() == tag)
            .map(|(row, _)| row)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {tag} entry #{nth}"));
        self.press(KeyCode::Home);
        for _ in 0..row {
            self.press(KeyCode::Down);
        }
        self.press(KeyCode::Enter);
    }

    /// Screen row (0-based) whose text contains `needle`.
    fn row_of(&mut self, needle: &str) -> u16 {
        self.row_with(&[needle])
    }

    /// Screen row (0-based) whose text contains each of `needles`, in that order.
    fn row_with(&mut self, needles: &[&str]) -> u16 {
        let screen = self.screen();
        screen
            .lines()
            .position(|line| {
                let mut rest = line;
                needles.iter().all(|needle| match rest.find(needle) {
                    Some(at) => {
                        rest = &rest[at + needle.len()..];
                        true
                    }
                    None => false,
                })
            })
            .unwrap_or_else(|| panic!("{needles:?} is not on screen:\n{screen}")) as u16
    }
}

fn is_tool_row(row: &super::graph_pane::GraphRow, name: &str) -> bool {
    matches!(&row.content, RowContent::Edge(e) if e.kind == EdgeKind::CallsTool && e.label == name)
}

fn no_exporter() -> BaselineExporter {
    Box::new(|_, _, _| anyhow::bail!("no exporter in this test"))
}

/// Snapshots at both sizes.
fn snapshot_both(console: &mut Console, name: &str) {
    for (width, height) in SIZES {
        console.resize(width, height);
        let screen = console.screen();
        insta::assert_snapshot!(format!("{name}_{width}x{height}"), screen);
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshot_overview_of_an_agent_with_tool_calls() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    snapshot_both(&mut console, "overview_python_chat");
}

#[test]
fn snapshot_timeline_and_an_llm_call_in_detail() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    console.select_entry("LLM", 0);
    snapshot_both(&mut console, "timeline_llm_call");
    // The second call carries the tool results back to the model.
    console.select_entry("LLM", 1);
    snapshot_both(&mut console, "timeline_llm_call_with_tool_results");
}

#[test]
fn snapshot_graph_tool_with_its_calls_in_detail() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    console.focus_pane(PaneId::Graph);
    let screen = console.screen();
    let rows = console.app.graph().rows().len();
    let tool = console
        .app
        .graph()
        .rows()
        .iter()
        .position(|r| is_tool_row(r, "read_file"))
        .unwrap_or_else(|| panic!("no read_file row in {rows} rows:\n{screen}"));
    console.press(KeyCode::Home);
    for _ in 0..tool {
        console.press(KeyCode::Char('j'));
    }
    console.press(KeyCode::Enter);
    snapshot_both(&mut console, "graph_tool_read_file");
}

/// A client whose TLS stack cannot be read (tests/blind_spots.rs made this capture): an agent
/// all the same, marked where it is listed, in its AI-BOM and in its detail.
#[test]
fn snapshot_blind_spot_agent_is_marked() {
    let mut console = Console::open("capture/blind_spot.jsonl").play_to_end();
    let key = console.app.current_agent().unwrap().to_string();
    assert!(key.ends_with("mbedtls_client"), "{key}");
    let screen = console.screen();
    for text in ["⊘ mbedtls_client", "plaintext not visible"] {
        assert!(screen.contains(text), "{text:?} not on screen:\n{screen}");
    }
    snapshot_both(&mut console, "overview_blind_spot");
    let pipeline = console.source.pipeline();
    let agent = pipeline.model().agent(&key).unwrap();
    let options = app_options(ColorMode::TrueColor);
    let styles = &options.styles;
    let detail: Vec<String> =
        super::detail::agent_detail(agent, None, pipeline, styles, None, false)
            .iter()
            .map(ToString::to_string)
            .collect();
    let detail = detail.join("\n");
    assert!(
        detail.contains("plaintext not visible: TLS stack not recognised"),
        "{detail}"
    );
    assert!(detail.contains("TLS coverage"), "{detail}");
    assert!(detail.contains("api.openai.com"), "{detail}");
}

/// An agent whose payloads the kernel partly left out (the collector's `payloads_left_out`
/// report, placed before its exit as the collector places it, in the recorded Node agent's
/// events): its detail says how much, and until when.
#[test]
fn the_agent_detail_says_what_the_kernel_left_out_of_it() {
    let text = std::fs::read_to_string(fixture("capture/node_chat_stream.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let exit = lines
        .iter()
        .position(|line| line.contains("\"kind\":\"exit\"") && line.contains("\"pid\":18649"))
        .expect("the agent's exit");
    let mut report: serde_json::Value = serde_json::from_str(&lines[exit]).unwrap();
    let report_fields = report.as_object_mut().unwrap();
    report_fields.remove("exit_code");
    report_fields.insert("kind".into(), "payloads_left_out".into());
    report_fields.insert("opaque_socket_bytes".into(), 4_902_912.into());
    report_fields.insert("on_request_bytes".into(), 0.into());
    report_fields.insert("running".into(), false.into());
    lines.insert(exit, report.to_string());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("left-out.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let console = Console::with_source(JsonEventsSource::open(&path).unwrap()).play_to_end();
    let pipeline = console.source.pipeline();
    let agent = pipeline.model().agents().next().expect("the Node agent");
    let options = app_options(ColorMode::TrueColor);
    let detail: Vec<String> =
        super::detail::agent_detail(agent, None, pipeline, &options.styles, None, false)
            .iter()
            .map(ToString::to_string)
            .collect();
    let detail = detail.join("\n");
    assert!(detail.contains("Payloads left out"), "{detail}");
    assert!(
        detail.contains(
            "18649: 4902912 bytes of sockets of no protocol agentscope reads (until it exited)"
        ),
        "{detail}"
    );
}

/// A connection the kernel sampled out says so in the agent's timeline: no exchange on it is
/// then no evidence that none happened.
#[test]
fn a_sampled_out_connection_is_marked_in_the_timeline() {
    let text = std::fs::read_to_string(fixture("capture/node_chat_stream.jsonl")).unwrap();
    let mut marked = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.contains("\"kind\":\"connect\"") && line.contains("\"pid\":18649") {
                marked += 1;
                let mut event: serde_json::Value = serde_json::from_str(line).unwrap();
                event["payloads_sampled_out"] = true.into();
                event.to_string()
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(marked > 0, "the agent's connects");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sampled.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let console = Console::with_source(JsonEventsSource::open(&path).unwrap()).play_to_end();
    let log = console
        .app
        .logs()
        .agent(console.app.current_agent().unwrap())
        .unwrap();
    let connects: Vec<&str> = log
        .iter_from(0)
        .map(|(_, e)| e.summary.as_str())
        .filter(|summary| summary.starts_with("connect "))
        .collect();
    assert!(!connects.is_empty());
    assert!(
        connects
            .iter()
            .all(|summary| summary.ends_with(" · payloads sampled out")),
        "{connects:?}"
    );
}

#[test]
fn snapshot_streamed_node_agent() {
    let mut console = Console::open("capture/node_chat_stream.jsonl").play_to_end();
    console.select_entry("LLM", 0);
    snapshot_both(&mut console, "timeline_node_stream");
}

#[test]
fn snapshot_mcp_stdio_server_in_the_aibom_and_graph() {
    let mut console = Console::open("mcp/stdio-pipe-events.jsonl").play_to_end();
    console.focus_pane(PaneId::AiBom);
    snapshot_both(&mut console, "aibom_mcp_stdio");
    console.focus_pane(PaneId::Graph);
    snapshot_both(&mut console, "graph_mcp_stdio");
}

/// The posture pane (`7`): in the ordinary recording the assistant is offered `echo` and
/// `http_post` and never calls them; `http_post` can reach any host, so it is excess agency.
/// The recording holds the cluster's declared objects too: no NetworkPolicy selects the pod
/// (unrestricted egress, the largest risk) and its two mounted tokens are never read.
/// It takes the AI-BOM pane's place under Detail, and `5` brings the AI-BOM back.
#[test]
fn snapshot_posture_pane() {
    let source = JsonEventsSource::open_capture(&recording("ordinary.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    console.press(KeyCode::Char('7'));
    assert_eq!(console.app.focus(), PaneId::Posture);
    let key = console.app.current_agent().unwrap().to_string();
    let agent = console.source.pipeline().model().agent(&key).unwrap();
    let options = app_options(ColorMode::TrueColor);
    let lines: Vec<String> = super::posture_lines::posture_lines(
        agent,
        console.app.posture_usage().agent(&key),
        console.app.posture_usage().cluster.as_ref(),
        &options.styles,
    )
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        lines[0..5],
        [
            "May do against does: 5 gaps, score 21",
            "  risk  7 unrestricted egress  LLM06",
            "           no NetworkPolicy selects the pod",
            "  risk  5 excess agency: tool http_post (HTTP to arbitrary hosts) offered, never called  LLM06",
            "           offered to the model",
        ],
        "{lines:#?}"
    );
    let tokens_never_read = lines
        .iter()
        .filter(|l| l.contains("service-account token mounted, never read"))
        .count();
    assert_eq!(tokens_never_read, 2, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("1 tools offered, never called")),
        "{lines:#?}"
    );
    console.resize(120, 40);
    let screen = console.screen();
    assert!(screen.contains("Posture · "), "{screen}");
    assert!(screen.contains("excess agency: tool http_post"), "{screen}");
    assert!(!screen.contains("AI-BOM · "), "{screen}");
    snapshot_both(&mut console, "posture_pane");
    // The AI-BOM is inventory only, and back in the place.
    console.press(KeyCode::Char('5'));
    let screen = console.screen();
    assert!(screen.contains("AI-BOM · "), "{screen}");
    assert!(!screen.contains("excess agency"), "{screen}");
}

#[test]
fn snapshot_mcp_tool_call_over_http() {
    let mut console = Console::open("mcp/http-socket-events.jsonl").play_to_end();
    let call = {
        let log = console
            .app
            .logs()
            .agent(console.app.current_agent().unwrap())
            .unwrap();
        log.iter_from(0)
            .filter(|(_, e)| e.kind.tag() == "MCP")
            .position(|(_, e)| e.summary.starts_with("tools/call"))
            .expect("a tools/call in the capture")
    };
    console.select_entry("MCP", call);
    snapshot_both(&mut console, "timeline_mcp_http_tools_call");
}

/// Every process of a capture as if it ran in the support agent's pod (workload, pod, service
/// account; `with_user` adds a user name and an IRSA cloud role).
struct SupportPod {
    with_user: bool,
}

impl IdentityLookup for SupportPod {
    fn lookup(&mut self, _pid: u32, _cgroup_id: u64, uid: u32) -> ActorIdentity {
        ActorIdentity {
            workload: "k8s:support/Deployment/ticket-agent/agent".into(),
            uid,
            user: self.with_user.then(|| "app".into()),
            pod: Some("support/ticket-agent-5d8c7b9f4-x2x7q".into()),
            service_account: Some("support/ticket-agent".into()),
            cloud_roles: if self.with_user {
                vec!["aws_irsa:arn:aws:iam::123456789012:role/ticket-agent".into()]
            } else {
                Vec::new()
            },
            ..Default::default()
        }
    }
}

#[test]
fn snapshot_kubernetes_agents_tree() {
    // The capture's processes, as if they ran in a pod: the tree places agents by workload.
    let source = JsonEventsSource::open(&fixture("capture/python_chat.jsonl"))
        .unwrap()
        .with_identity(|| Box::new(SupportPod { with_user: true }));
    let mut console = Console::with_source(source).play_to_end();
    snapshot_both(&mut console, "agents_kubernetes");
}

/// The python chat fixture after a `cluster_objects` event whose Role lets the pod's service
/// account get and list secrets.
fn python_chat_with_cluster_objects() -> Vec<agentscope_event::Event> {
    use agentscope_event::cluster_objects::ClusterObjects;
    use agentscope_event::event_json::{events_from_json_lines, json_lines_text};
    let bytes = std::fs::read(fixture("capture/python_chat.jsonl")).unwrap();
    let mut events = events_from_json_lines(json_lines_text(&bytes).unwrap()).unwrap();
    let objects = vec![
        serde_json::json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "secret-reader", "namespace": "support"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]}),
        serde_json::json!({"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "ticket-agent", "namespace": "support"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "ticket-agent", "namespace": "support"}]}),
    ];
    let first = events[0].header.clone();
    events.insert(
        0,
        agentscope_event::Event {
            header: agentscope_event::event::Header {
                pid: 0,
                tid: 0,
                ppid: 0,
                uid: 0,
                gid: 0,
                cgroup_id: 0,
                comm: Default::default(),
                ..first
            },
            body: agentscope_event::EventBody::ClusterObjects(Box::new(ClusterObjects {
                bytes: serde_json::to_vec(&objects).unwrap().len() as u64,
                counts: [("Role".into(), 1), ("RoleBinding".into(), 1)].into(),
                objects,
                omitted: Default::default(),
                truncated: false,
                node_name: None,
            })),
        },
    );
    events
}

/// A rotated recording's later file starts from a keyframe, long after the `cluster_objects`
/// event: the posture pane still has the declared side, from the keyframe.
#[test]
fn posture_pane_takes_the_cluster_objects_a_keyframe_carried() {
    use agentscope_capture::capture::{CaptureMetadata, Recorder, RecorderOptions};
    let events = python_chat_with_cluster_objects();
    let dir = tempfile::tempdir().unwrap();
    let mut options = RecorderOptions::new(
        dir.path().join("rotated.cap"),
        CaptureMetadata {
            created_by: "agentscope test".into(),
            secrets_redacted: true,
            ..Default::default()
        },
    );
    options.writer.chunk_bytes = 4096;
    options.keyframe_interval_ns = 1;
    options.max_file_bytes = Some(8 << 10);
    let mut pipeline = agentscope_analysis::pipeline::Pipeline::new(
        Default::default(),
        Default::default(),
        Box::new(SupportPod { with_user: false }),
    );
    let mut recorder = Recorder::start(options, &mut pipeline).unwrap();
    for event in &events {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    pipeline.finish();
    let files = recorder.finish(&mut pipeline).unwrap().files;
    assert!(files.len() > 1, "{files:?}");
    let source = JsonEventsSource::open_capture(files.last().unwrap()).unwrap();
    let console = Console::with_source(source).play_to_end();
    let cluster = console.app.posture_usage().cluster.as_ref();
    assert_eq!(
        cluster.map(|c| c.objects),
        Some(2),
        "the keyframe's snapshot is the declared side"
    );
}

/// With the collector's snapshot of the cluster's objects in the session (a `cluster_objects`
/// event), the posture pane compares RBAC too: the pod's service account may get and list
/// secrets, and never does.
#[test]
fn posture_pane_compares_rbac_when_the_session_holds_the_cluster_objects() {
    let events = python_chat_with_cluster_objects();
    let source = JsonEventsSource::from_events("python_chat.jsonl", events)
        .with_identity(|| Box::new(SupportPod { with_user: false }));
    let console = Console::with_source(source).play_to_end();
    let usage = console.app.posture_usage();
    let cluster = usage.cluster.as_ref().expect("the snapshot was taken in");
    let key = console.app.current_agent().unwrap().to_string();
    let agent = console.source.pipeline().model().agent(&key).unwrap();
    let options = app_options(ColorMode::TrueColor);
    let lines: Vec<String> = super::posture_lines::posture_lines(
        agent,
        usage.agent(&key),
        Some(cluster),
        &options.styles,
    )
    .iter()
    .map(ToString::to_string)
    .collect();
    let text = lines.join("\n");
    assert!(
        text.contains("unused permission: get, list secrets in support"),
        "{text}"
    );
    assert!(
        text.contains(
            "declared side: the cluster objects the collector read from the Kubernetes API at "
        ),
        "{text}"
    );
    assert!(!text.contains("agentscope posture --cluster"), "{text}");
    // Without the snapshot, the section says where RBAC is compared.
    let without: Vec<String> =
        super::posture_lines::posture_lines(agent, usage.agent(&key), None, &options.styles)
            .iter()
            .map(ToString::to_string)
            .collect();
    assert!(!without.join("\n").contains("unused permission"));
    assert!(without.join("\n").contains("agentscope posture --cluster"));
}

#[test]
fn snapshot_findings_pane() {
    // Detection runs in the replay's pipeline: the injected recording's one incident.
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    assert_eq!(console.app.findings().len(), 1);
    console.press(KeyCode::Char('n'));
    console.focus_pane(PaneId::Findings);
    snapshot_both(&mut console, "findings");
}

#[test]
fn snapshot_empty_states() {
    let mut console = Console::with_source(JsonEventsSource::from_events("empty.jsonl", vec![]));
    console.poll();
    snapshot_both(&mut console, "empty");
}

#[test]
fn snapshot_help_overlay() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    console.press(KeyCode::Char('?'));
    assert!(console.app.help_open());
    snapshot_both(&mut console, "help");
}

#[test]
fn snapshot_paused_replay_with_a_filtered_timeline() {
    let mut console = Console::open("capture/python_chat.jsonl");
    console.poll();
    // Past the first model call (the capture lasts 0.3 s).
    console.clock.advance(std::time::Duration::from_millis(240));
    console.poll();
    let effects = console.press(KeyCode::Char(' '));
    assert_eq!(effects, vec![Effect::Pause]);
    console.apply(effects, &mut no_exporter());
    console.poll();
    console.focus_pane(PaneId::Timeline);
    console.keys("/llm");
    snapshot_both(&mut console, "paused_filter_editing");
}

// ---------------------------------------------------------------------------------------------
// Keys and mouse
// ---------------------------------------------------------------------------------------------

#[test]
fn tab_cycles_the_panes_and_esc_goes_back() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    assert_eq!(console.app.focus(), PaneId::Agents);
    let mut seen = vec![console.app.focus()];
    for _ in 0..6 {
        console.press(KeyCode::Tab);
        seen.push(console.app.focus());
    }
    assert_eq!(
        seen,
        [
            PaneId::Agents,
            PaneId::Graph,
            PaneId::Timeline,
            PaneId::Detail,
            PaneId::AiBom,
            PaneId::Findings,
            PaneId::Posture
        ]
    );
    console.press(KeyCode::Tab);
    assert_eq!(console.app.focus(), PaneId::Agents);
    console.press_with(KeyCode::BackTab, KeyModifiers::SHIFT);
    assert_eq!(console.app.focus(), PaneId::Posture);
    console.press(KeyCode::Esc);
    assert_eq!(console.app.focus(), PaneId::Agents);
}

#[test]
fn enter_drills_from_the_agent_to_its_graph_to_the_detail() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    let agent = console.app.current_agent().unwrap().to_string();
    assert_eq!(agent, "host:python");
    console.press(KeyCode::Enter);
    assert_eq!(console.app.focus(), PaneId::Graph);
    // The first row is the Models group: Enter closes it, Enter opens it again.
    console.press(KeyCode::Home);
    let rows = console.app.graph().rows().len();
    console.press(KeyCode::Enter);
    assert_eq!(console.app.graph().rows().len(), rows - 1);
    console.press(KeyCode::Enter);
    assert_eq!(console.app.graph().rows().len(), rows);
    // The model row has no children: Enter shows it in the detail pane, and focus stays in
    // the graph so that `j` Enter reads the next row.
    console.press(KeyCode::Char('j'));
    console.press(KeyCode::Enter);
    assert_eq!(console.app.focus(), PaneId::Graph);
    let screen = console.screen();
    assert!(screen.contains("MODEL gpt-4o-mini"), "{screen}");
    assert!(screen.contains("gen_ai.provider.name"), "{screen}");
    // Esc retraces the way back.
    console.press(KeyCode::Esc);
    assert_eq!(console.app.focus(), PaneId::Agents);
}

#[test]
fn left_and_right_collapse_and_expand_graph_rows() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    console.focus_pane(PaneId::Graph);
    let rows = console.app.graph().rows().to_vec();
    let tool = rows
        .iter()
        .position(|r| is_tool_row(r, "read_file"))
        .unwrap();
    assert!(rows[tool].expanded, "tools start open");
    console.press(KeyCode::Home);
    for _ in 0..tool {
        console.press(KeyCode::Down);
    }
    console.press(KeyCode::Char('h'));
    assert!(!console.app.graph().selected().unwrap().expanded);
    assert_eq!(console.app.graph().rows().len(), rows.len() - 1);
    // Left on a closed row goes to its group.
    console.press(KeyCode::Left);
    assert_eq!(console.app.graph().selected().unwrap().depth, 0);
    console.press(KeyCode::Down);
    console.press(KeyCode::Down);
    console.press(KeyCode::Char('l'));
    assert_eq!(console.app.graph().rows().len(), rows.len());
    // Right on an open row steps into it.
    console.press(KeyCode::Right);
    let selected = console.app.graph().selected().unwrap();
    assert_eq!(selected.depth, 2);
    assert!(matches!(&selected.content, RowContent::Edge(e) if e.to == "data:file:/etc/hostname"));
}

#[test]
fn timeline_moves_with_arrows_and_vim_keys_and_follows_the_end() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    console.focus_pane(PaneId::Timeline);
    let agent = console.app.current_agent().unwrap().to_string();
    let len = console.app.logs().agent(&agent).unwrap().len();
    assert!(len >= 5);
    let selected = |c: &Console| {
        c.app
            .timeline()
            .selected_position(c.app.logs().agent(&agent))
            .unwrap()
    };
    assert!(console.app.timeline().following());
    assert_eq!(selected(&console), len as u64 - 1);
    console.press(KeyCode::Char('k'));
    console.press(KeyCode::Up);
    assert_eq!(selected(&console), len as u64 - 3);
    assert!(!console.app.timeline().following());
    console.press(KeyCode::Char('g'));
    assert_eq!(selected(&console), 0);
    console.press(KeyCode::Char('j'));
    assert_eq!(selected(&console), 1);
    console.press(KeyCode::PageDown);
    assert_eq!(selected(&console), len as u64 - 1);
    assert!(console.app.timeline().following());
    console.press(KeyCode::Home);
    console.press_with(KeyCode::Char('G'), KeyModifiers::SHIFT);
    assert!(console.app.timeline().following());
    // The detail pane shows the selected observation.
    console.select_entry("LLM", 0);
    let screen = console.screen();
    assert!(screen.contains("LLM call"), "{screen}");
}

#[test]
fn filter_narrows_the_timeline_and_esc_clears_it() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    console.focus_pane(PaneId::Timeline);
    let agent = console.app.current_agent().unwrap().to_string();
    let all = console.app.timeline().len(console.app.logs().agent(&agent));
    console.keys("/llm");
    console.press(KeyCode::Enter);
    let log = console.app.logs().agent(&agent);
    assert_eq!(console.app.timeline().len(log), 2, "two LLM calls");
    assert_eq!(console.app.timeline().filter, "llm");
    let screen = console.screen();
    assert!(screen.contains("[/llm]"), "{screen}");
    // Terms must all match: no LLM call (summary or payload) mentions "zebra".
    console.keys("/");
    console.keys(" zebra");
    console.press(KeyCode::Enter);
    assert_eq!(
        console.app.timeline().len(console.app.logs().agent(&agent)),
        0
    );
    assert!(console
        .screen()
        .contains("No observation matches the filter."));
    console.press(KeyCode::Char('/'));
    for _ in 0.." zebra".len() {
        console.press(KeyCode::Backspace);
    }
    console.press(KeyCode::Enter);
    assert_eq!(
        console.app.timeline().len(console.app.logs().agent(&agent)),
        2
    );
    console.press(KeyCode::Esc);
    assert_eq!(console.app.timeline().filter, "");
    assert_eq!(
        console.app.timeline().len(console.app.logs().agent(&agent)),
        all
    );
    // Keys typed into a filter are text, not commands.
    console.keys("/q");
    assert_eq!(console.app.timeline().filter, "q");
}

#[test]
fn graph_and_agent_filters() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    console.focus_pane(PaneId::Graph);
    console.keys("/hostname");
    console.press(KeyCode::Enter);
    let labels: Vec<String> = console
        .app
        .graph()
        .rows()
        .iter()
        .map(|r| match &r.content {
            RowContent::Group { name, .. } => name.to_string(),
            RowContent::Edge(e) => e.label.clone(),
        })
        .collect();
    // The matching nodes and the way to them.
    assert_eq!(
        labels,
        [
            "Tools",
            "read_file",
            "/etc/hostname",
            "Data",
            "/etc/hostname"
        ]
    );
    console.focus_pane(PaneId::Agents);
    console.keys("/nomatch");
    console.press(KeyCode::Enter);
    assert!(console.screen().contains("No agent matches the filter."));
    console.press(KeyCode::Esc);
    assert!(console.screen().contains("python3"));
}

#[test]
fn replay_keys_return_effects_and_drive_the_source() {
    let mut console = Console::open("capture/python_chat.jsonl");
    console.poll();
    let mut exporter = no_exporter();
    assert_eq!(console.press(KeyCode::Char(' ')), vec![Effect::Pause]);
    console.apply(vec![Effect::Pause], &mut exporter);
    console.poll();
    assert_eq!(console.press(KeyCode::Char(' ')), vec![Effect::Resume]);
    assert_eq!(
        console.press(KeyCode::Char(']')),
        vec![Effect::Speed(SpeedChange::Faster)]
    );
    assert_eq!(
        console.press(KeyCode::Char('[')),
        vec![Effect::Speed(SpeedChange::Slower)]
    );
    let step = console.press(KeyCode::Char('.'));
    assert_eq!(step, vec![Effect::Step]);
    let before = console.poll().status.events;
    console.apply(step, &mut exporter);
    assert_eq!(console.poll().status.events, before + 1);
    // `<` and `>` move a twentieth of the capture (at least 100 ms): twenty steps end to end
    // whatever its length.
    let SourceMode::Replay(replay) = console.poll().status.mode else {
        panic!("a replay")
    };
    let step = (replay.duration_ns / 20).max(100_000_000) as i64;
    let forward = console.press_with(KeyCode::Char('>'), KeyModifiers::SHIFT);
    assert_eq!(forward, vec![Effect::Seek { delta_ns: step }]);
    for _ in 0..21 {
        console.apply(forward.clone(), &mut exporter);
    }
    let update = console.poll();
    assert!(matches!(&update.status.mode, SourceMode::Replay(r) if r.finished));
    assert!(console.screen().contains("■ END"));
    let agent = console.app.current_agent().unwrap().to_string();
    let logged = console.app.logs().agent(&agent).unwrap().total;
    console.apply(
        vec![Effect::Seek {
            delta_ns: -10_000_000_000,
        }],
        &mut exporter,
    );
    // Back to the start: the logs are rebuilt from the replayed events, not doubled.
    let update = console.poll();
    assert!(update.reset);
    assert!(console
        .app
        .logs()
        .agent(&agent)
        .is_none_or(|l| l.total < logged));
    console.apply(
        vec![Effect::Seek {
            delta_ns: 10_000_000_000,
        }],
        &mut exporter,
    );
    console.poll();
    assert_eq!(console.app.logs().agent(&agent).unwrap().total, logged);
    // What a replay cannot do is said in the status line.
    let record = console.press(KeyCode::Char('r'));
    assert_eq!(record, vec![Effect::ToggleRecording]);
    assert!(!console.apply(record, &mut exporter));
    assert_eq!(
        console.app.message(),
        Some("recording is available in live mode only")
    );
    assert!(console
        .screen()
        .contains("recording is available in live mode only"));
    let quit = console.press(KeyCode::Char('q'));
    assert_eq!(quit, vec![Effect::Quit]);
    assert!(console.apply(quit, &mut exporter));
    assert_eq!(
        console.press_with(KeyCode::Char('c'), KeyModifiers::CONTROL),
        vec![Effect::Quit]
    );
}

#[test]
fn baseline_key_writes_the_agents_baseline_and_it_round_trips() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    let dir = tempfile::tempdir().unwrap();
    let mut exporter = baseline::yaml_exporter_at(dir.path().to_path_buf(), || 1_800_000_000);
    let effects = console.press(KeyCode::Char('b'));
    assert_eq!(
        effects,
        vec![Effect::ExportBaseline {
            agent_key: "host:python".into(),
            exclude: None,
        }]
    );
    console.apply(effects, &mut exporter);
    let path = dir.path().join("baseline-python3-20270115T080000Z.yaml");
    assert_eq!(
        console.app.message().unwrap(),
        format!("wrote {} (baseline)", path.display())
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# Baseline of one agent"));
    // The documented format (docs/baseline.md), readable by `baseline diff` and --baseline.
    let exported = AgentBaseline::from_yaml(&text, "exported").unwrap();
    assert_eq!(
        exported.api_version,
        agentscope_analysis::baseline::API_VERSION
    );
    assert_eq!(exported.metadata.agent, "host:python");
    let called: Vec<&str> = exported
        .spec
        .tools
        .called
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(called, ["fetch_url", "read_file", "run_command"]);
    assert!(
        exported
            .spec
            .models
            .values()
            .any(|m| m.contains("gpt-4o-mini")),
        "{:?}",
        exported.spec.models
    );
    // Loaded back as the approved baseline, the same traffic deviates from it nowhere...
    let deviations = |approved: AgentBaseline| {
        let source = JsonEventsSource::open(&fixture("capture/python_chat.jsonl"))
            .unwrap()
            .with_detection(agentscope_analysis::detect::DetectorOptions {
                approved: vec![approved],
                ..Default::default()
            })
            .at_speed(f64::INFINITY);
        let console = Console::with_source(source).play_to_end();
        console
            .source
            .pipeline()
            .detector()
            .findings()
            .iter()
            .filter(|f| f.kind == agentscope_analysis::detect::FindingKind::BaselineDeviation)
            .map(|f| f.summary.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(deviations(exported.clone()), Vec::<String>::new());
    // ...and a baseline without one of its tools makes that tool a deviation.
    let mut narrower = exported;
    narrower.spec.tools.called.remove("run_command");
    let found = deviations(narrower);
    assert!(
        found.iter().any(|d| d.contains("run_command")),
        "{found:#?}"
    );
    // Same second again: a new file, not an overwrite.
    let effects = console.press(KeyCode::Char('b'));
    console.apply(effects, &mut exporter);
    assert!(dir
        .path()
        .join("baseline-python3-20270115T080000Z-1.yaml")
        .exists());
    // A failing exporter is a message, not a crash.
    let effects = console.press(KeyCode::Char('b'));
    console.apply(effects, &mut no_exporter());
    assert!(console
        .app
        .message()
        .unwrap()
        .starts_with("baseline export failed"));
}

#[test]
fn baseline_needs_an_agent() {
    let mut console = Console::with_source(JsonEventsSource::from_events("empty", vec![]));
    console.poll();
    assert!(console.press(KeyCode::Char('b')).is_empty());
    assert_eq!(console.app.message(), Some("select an agent first"));
}

#[test]
fn mouse_clicks_select_and_the_wheel_scrolls() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    // Click the EXEC row of the timeline: focus moves there and the detail shows it.
    let row = console.row_with(&["EXEC ", " /bin/echo"]);
    console.mouse(MouseEventKind::Down(MouseButton::Left), 60, row);
    assert_eq!(console.app.focus(), PaneId::Timeline);
    assert!(!console.app.timeline().following());
    let screen = console.screen();
    assert!(screen.contains("Detail · exec"), "{screen}");
    assert!(screen.contains("agentscope-tool-"), "{screen}");
    // Wheel over the detail pane scrolls it without moving focus, never past its end.
    let before = console.app.detail().scroll;
    console.mouse(MouseEventKind::ScrollDown, 100, 5);
    let max = console.app.detail().max_scroll();
    assert_eq!(console.app.detail().scroll, (before + 3).min(max));
    assert_eq!(console.app.focus(), PaneId::Timeline);
    // A click on a graph row selects it; a second click toggles it.
    let row = console.row_of("▾ Tools (3)");
    console.mouse(MouseEventKind::Down(MouseButton::Left), 40, row);
    assert_eq!(console.app.focus(), PaneId::Graph);
    assert!(console.app.graph().selected().unwrap().expanded);
    console.mouse(MouseEventKind::Down(MouseButton::Left), 40, row);
    assert!(!console.app.graph().selected().unwrap().expanded);
    // Clicking the agent in the tree.
    let row = console.row_of("python3  ");
    console.mouse(MouseEventKind::Down(MouseButton::Left), 10, row);
    assert_eq!(console.app.focus(), PaneId::Agents);
}

#[test]
fn next_finding_selects_its_agent_and_shows_the_story() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    assert!(console.press(KeyCode::Char('n')).is_empty());
    assert_eq!(console.app.message(), Some("no findings"));
    for (severity, title) in [(Severity::Medium, "first"), (Severity::Critical, "second")] {
        console.app.add_finding(FindingView {
            id: title.into(),
            severity,
            title: title.into(),
            agent_key: "host:python".into(),
            story: format!("{title} story"),
            ts_ns: 0,
            evidence: Vec::new(),
            steps: Vec::new(),
            matched: Vec::new(),
            findings: 1,
            occurrences: 1,
            last_seen_ns: 0,
        });
    }
    console.press(KeyCode::Char('n'));
    assert!(console.screen().contains("first story"));
    console.press(KeyCode::Char('n'));
    assert!(console.screen().contains("second story"));
    console.press(KeyCode::Char('n'));
    assert!(console.screen().contains("first story"), "wraps around");
    assert_eq!(
        console.app.findings().worst_for("host:python"),
        Some(Severity::Critical)
    );
}

#[test]
fn configured_keys_replace_the_defaults() {
    let config = ConsoleConfig::parse("[keys]\nquit = [\"y\"]\nhelp = [\"f1\"]\n").unwrap();
    let mut options = ConsoleOptions::new(config, None);
    options.color_mode = Some(ColorMode::None);
    let mut console = Console::open("capture/python_chat.jsonl");
    console.app = App::new(options.app_options().unwrap());
    console.poll();
    assert!(console.press(KeyCode::Char('q')).is_empty());
    assert_eq!(console.press(KeyCode::Char('y')), vec![Effect::Quit]);
    console.press(KeyCode::F(1));
    assert!(console.app.help_open());
    let screen = console.screen();
    // A key, then (after the column's padding) what it does.
    let listed = |key: &str, description: &str| {
        regex::Regex::new(&format!(
            "[║ ]{} +{}",
            regex::escape(key),
            regex::escape(description)
        ))
        .unwrap()
        .is_match(&screen)
    };
    assert!(listed("y", "quit"), "{screen}");
    assert!(listed("f1", "this help"), "{screen}");
    assert!(!listed("q, ctrl-c", "quit"), "{screen}");
    console.press(KeyCode::Esc);
    assert!(!console.app.help_open());
    // A bad binding is refused before the console starts.
    let config = ConsoleConfig::parse("[keys]\nquit = [\"space\"]\n").unwrap();
    let err = ConsoleOptions::new(config, None).app_options().unwrap_err();
    assert!(format!("{err:#}").contains("bound to both"), "{err:#}");
}

// ---------------------------------------------------------------------------------------------
// Styles
// ---------------------------------------------------------------------------------------------

/// The style of the first cell of the row holding `needle`, at column `x`.
fn style_at(console: &mut Console, needle: &str) -> ratatui::style::Style {
    let row = console.row_of(needle);
    let screen = console.screen();
    let line = screen.lines().nth(row as usize).unwrap();
    let column = line[..line.find(needle).unwrap()].chars().count() - 1;
    console.terminal.backend().buffer()[(column as u16, row)].style()
}

/// Without a baseline nothing is "new" (docs/console.md): a replay marks no edge, and live
/// the edges of the last `new_edge_seconds` of event time are marked `recent`.
#[test]
fn without_a_baseline_only_live_edges_of_the_last_seconds_are_marked_recent() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    let theme = Theme::preset("dark").unwrap();
    let new_colour = theme.color("new_edge");
    // A replay: every edge appeared a moment ago, and none is marked.
    assert_eq!(
        style_at(&mut console, "gpt-4o-mini   ").fg,
        Some(theme.color("model"))
    );
    let screen = console.screen();
    assert!(!screen.contains(" new ×") && !screen.contains(" recent ×"));
    assert!(
        screen.contains("no baseline: nothing marked new"),
        "{screen}"
    );
    // The same model seen live: recent edges are marked, for new_edge_seconds.
    let live = |console: &mut Console| {
        let status = SourceStatus {
            mode: SourceMode::Live,
            ..Default::default()
        };
        let update = SourceUpdate {
            status,
            ..Default::default()
        };
        console.app.ingest(update, console.source.pipeline());
    };
    live(&mut console);
    assert_eq!(
        style_at(&mut console, "gpt-4o-mini   ").fg,
        Some(new_colour)
    );
    let screen = console.screen();
    assert!(screen.contains(" recent ×"), "{screen}");
    assert!(
        screen.contains("no baseline: recent edges marked"),
        "{screen}"
    );
    // With a window shorter than the edges' age, nothing is marked.
    let mut options = app_options(ColorMode::TrueColor);
    options.new_edge_ns = 1;
    console.app = App::new(options);
    console.source.seek(-1_000_000_000).unwrap();
    console.poll();
    console.source.seek(1_000_000_000).unwrap();
    console.poll();
    live(&mut console);
    let style = style_at(&mut console, "gpt-4o-mini   ");
    assert_eq!(style.fg, Some(theme.color("model")));
    assert!(!console.screen().contains(" recent ×"));
}

#[test]
fn no_color_still_shows_selection_and_focus() {
    let mut console = Console::open("capture/python_chat.jsonl");
    console.app = App::new(app_options(ColorMode::None));
    let mut console = console.play_to_end();
    console.select_entry("EXEC", 0);
    let row = console.row_with(&["EXEC ", " /bin/echo"]);
    let buffer = console.terminal.backend().buffer().clone();
    let mut colours = 0;
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            let style = buffer[(x, y)].style();
            for colour in [style.fg, style.bg].into_iter().flatten() {
                if colour != ratatui::style::Color::Reset {
                    colours += 1;
                }
            }
        }
    }
    assert_eq!(colours, 0, "NO_COLOR: no colour anywhere");
    let selected = buffer[(60, row)].style();
    assert!(selected.add_modifier.contains(Modifier::REVERSED));
    // The focused pane's border (thick, ┃) is bold.
    let screen = console.screen();
    let line = screen.lines().nth(row as usize).unwrap();
    let border = line.chars().skip(1).position(|c| c == '┃').unwrap() as u16;
    let focused_border = buffer[(border, row)].style();
    assert!(focused_border.add_modifier.contains(Modifier::BOLD));
}

#[test]
fn observations_before_an_agent_is_known_join_its_log() {
    let console = Console::open("capture/python_chat.jsonl").play_to_end();
    let log = console.app.logs().agent("host:python").unwrap();
    let entries: Vec<_> = log.iter_from(0).map(|(_, e)| e.clone()).collect();
    let first_llm = entries
        .iter()
        .position(|e| e.kind == super::log::EntryKind::Llm)
        .unwrap();
    // The agent connected to the model's server before its first call was reconstructed.
    assert!(
        entries[..first_llm]
            .iter()
            .any(|e| e.kind == super::log::EntryKind::Net),
        "{:#?}",
        entries.iter().map(|e| &e.summary).collect::<Vec<_>>()
    );
    let times: Vec<u64> = entries.iter().map(|e| e.observation.ts_ns).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
}

// ---------------------------------------------------------------------------------------------
// Captures from recordings/ (made by the real collector; see recordings/README.md)
// ---------------------------------------------------------------------------------------------

fn recording(name: &str) -> PathBuf {
    Path::new(env!("AGENTSCOPE_REPO"))
        .join("recordings")
        .join(name)
}

#[test]
fn a_capture_replayed_in_the_console_ends_with_the_live_collectors_model() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let console = Console::with_source(source).play_to_end();
    // Through text, as the file was written (f32 scores print shortest, not widened).
    let replayed: serde_json::Value = serde_json::from_str(
        &serde_json::to_string(&console.source.pipeline().snapshot()).unwrap(),
    )
    .unwrap();
    let live: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(recording("injected.graph.json")).unwrap())
            .unwrap();
    assert_eq!(
        replayed, live,
        "the console shows what the live collector saw"
    );
}

#[test]
fn snapshot_injected_recording() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    snapshot_both(&mut console, "recording_injected_overview");
    console.focus_pane(PaneId::Graph);
    snapshot_both(&mut console, "recording_injected_graph");
    // The agent's last HTTP request: the POST of the customers' rows to 127.0.0.2.
    let agent = console.app.current_agent().unwrap().to_string();
    let posts = console
        .app
        .logs()
        .agent(&agent)
        .unwrap()
        .iter_from(0)
        .filter(|(_, e)| e.kind.tag() == "HTTP")
        .count();
    assert!(posts >= 2, "http_get and http_post are in the timeline");
    console.select_entry("HTTP", posts - 1);
    snapshot_both(&mut console, "recording_injected_exfiltration_post");
}

#[test]
fn record_key_in_live_mode_starts_and_stops_a_recording() {
    use std::sync::Arc;

    use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
    use agentscope_analysis::pipeline::Pipeline;
    use agentscope_capture::capture::{CaptureMetadata, CaptureReader};
    use agentscope_reconstruct::ReconstructOptions;

    use super::live_collector::{EventSender, LiveCounters};
    use super::live_recording::RecordingOptions;

    let dir = tempfile::tempdir().unwrap();
    let events = agentscope_event::event_json::events_from_json_lines(
        &std::fs::read_to_string(fixture("capture/python_chat.jsonl")).unwrap(),
    )
    .unwrap();
    let counters = Arc::new(LiveCounters::default());
    let (sender, receiver) = EventSender::channel(events.len(), counters.clone());
    let pipeline = Pipeline::new(
        ReconstructOptions {
            redact_secrets: true,
            ..ReconstructOptions::default()
        },
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let metadata = CaptureMetadata {
        model_max_nodes: ModelOptions::default().max_nodes,
        model_max_edges: ModelOptions::default().max_edges,
        ..CaptureMetadata::default()
    };
    let mut source = LiveSource::from_channel(
        "live",
        pipeline,
        receiver,
        counters,
        RecordingOptions::new(dir.path().to_path_buf(), metadata),
    );
    let mut app = App::new(app_options(ColorMode::TrueColor));
    let mut terminal = Terminal::new(TestBackend::new(160, 30)).unwrap();
    let mut exporter = no_exporter();
    let mut frame = |app: &mut App, source: &mut LiveSource| {
        let update = source.poll(usize::MAX);
        app.ingest(update, source.pipeline());
        terminal.draw(|f| app.render(f, source.pipeline())).unwrap();
        terminal.backend().to_string()
    };
    let screen = frame(&mut app, &mut source);
    assert!(screen.contains("● LIVE live"), "{screen}");
    assert!(screen.contains("rec off"), "{screen}");

    let record = app.handle_event(&Event::Key(KeyEvent::new(
        KeyCode::Char('r'),
        KeyModifiers::NONE,
    )));
    assert_eq!(record, vec![Effect::ToggleRecording]);
    for effect in record.clone() {
        assert!(!app.apply_effect(effect, &mut source, &mut exporter));
    }
    for event in events.iter().cloned() {
        sender.send(event);
    }
    let screen = frame(&mut app, &mut source);
    assert!(screen.contains("● REC "), "{screen}");
    assert!(screen.contains("agentscope-"), "{screen}");
    // Space cannot pause live capture; the status line says so.
    let pause = app.handle_event(&Event::Key(KeyEvent::new(
        KeyCode::Char(' '),
        KeyModifiers::NONE,
    )));
    for effect in pause {
        app.apply_effect(effect, &mut source, &mut exporter);
    }
    assert!(app.message().unwrap().contains("cannot pause"));

    for effect in record {
        app.apply_effect(effect, &mut source, &mut exporter);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let screen = loop {
        let screen = frame(&mut app, &mut source);
        if screen.contains("recorded ") {
            break screen;
        }
        assert!(std::time::Instant::now() < deadline, "{screen}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(screen.contains("rec off"), "{screen}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(screen.contains(&format!("recorded {} events", events.len())));
    assert!(CaptureReader::open(&files[0]).unwrap().verify().is_empty());
}

#[test]
fn the_injected_recordings_incident_drills_into_its_story() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    // One incident, no standalone finding left beside it: its findings joined it.
    assert_eq!(console.app.findings().len(), 1);
    console.press(KeyCode::Char('n'));
    let finding = console.app.findings().selected().unwrap().clone();
    assert_eq!(finding.severity, Severity::Critical);
    assert!(
        finding.title.starts_with("inc-1 prompt injection"),
        "{}",
        finding.title
    );
    let screen = console.screen();
    for step in ["CRITICAL inc-1", "query_database", "crm.customers"] {
        assert!(screen.contains(step), "{step:?} not on screen:\n{screen}");
    }
    // n selected the incident's agent too.
    assert_eq!(
        console.app.current_agent(),
        Some(finding.agent_key.as_str())
    );
}

#[test]
fn the_ordinary_recording_raises_no_incident() {
    let source = JsonEventsSource::open_capture(&recording("ordinary.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    let incidents = console.source.pipeline().detector().incidents().len();
    assert_eq!(incidents, 0);
    // The agent's job includes reading the customers table: a medium finding of its own, not
    // an incident.
    assert_eq!(console.app.findings().len(), 1);
    console.press(KeyCode::Char('n'));
    let finding = console.app.findings().selected().unwrap();
    assert_eq!(finding.severity, Severity::Medium);
    assert!(
        finding.title.contains("sensitive access") && finding.title.contains("crm.customers"),
        "{}",
        finding.title
    );
}

/// python_chat with the agent's comm, a file it opens and a child's argv set to terminal
/// escape sequences (OSC window title, CSI clear screen), as a hostile process can.
fn hostile_capture(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixture("capture/python_chat.jsonl")).unwrap();
    let hostile = r"\u001b]0;pwned\u0007\u001b[2J";
    let text = text
        .replace("\"comm\":\"python3\"", &format!("\"comm\":\"py{hostile}\""))
        .replace(
            "\"path\":\"/etc/hostname\"",
            &format!("\"path\":\"/etc/{hostile}\""),
        )
        .replace("agentscope-tool-ran", &format!("ran{hostile}"));
    let path = dir.join("hostile.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn captured_control_characters_are_shown_escaped_never_sent_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let path = hostile_capture(dir.path());
    let mut console = Console::with_source(JsonEventsSource::open(&path).unwrap()).play_to_end();
    let screen = console.screen();
    assert!(
        screen.contains(r"py\x1b]0;pwned\x07\x1b[2J"),
        "the agent's name should show its escapes:\n{screen}"
    );
    assert!(!screen.contains(['\x1b', '\x07']), "{screen:?}");
    // The timeline and the detail of the file read show the path escaped too.
    console.focus_pane(PaneId::Timeline);
    let mut seen = String::new();
    for _ in 0..80 {
        console.press(KeyCode::Char('j'));
        seen.push_str(&console.screen());
    }
    assert!(
        seen.contains(r"/etc/\x1b]0;pwned"),
        "no escaped path in:\n{seen}"
    );

    // What crossterm would write to the terminal for these frames: its own sequences only.
    #[derive(Clone, Default)]
    struct Written(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
    impl std::io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let written = Written::default();
    let backend = ratatui::backend::CrosstermBackend::new(written.clone());
    let mut terminal = Terminal::with_options(
        backend,
        ratatui::TerminalOptions {
            viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 120, 40)),
        },
    )
    .unwrap();
    console.focus_pane(PaneId::Agents);
    let Console { app, source, .. } = &mut console;
    terminal.draw(|f| app.render(f, source.pipeline())).unwrap();
    let bytes = written.0.borrow().clone();
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(find(b"pwned"), "the hostile name is drawn");
    for sequence in [&b"\x1b]"[..], b"\x07", b"\x1b[2J"] {
        assert!(!find(sequence), "{sequence:?} reached the terminal");
    }
}

/// `/` in the timeline searches what the observations carried, not only their summaries: on
/// the injected recording `/Ada Lovelace` finds the SQL result and the exfiltration POST that
/// carried the rows; `!`, regular expressions and field clauses narrow it; a bad regular
/// expression is said, not silently matched.
#[test]
fn timeline_search_reads_payloads_with_regex_negation_and_fields() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    console.focus_pane(PaneId::Timeline);
    let agent = console.app.current_agent().unwrap().to_string();
    // The rows the pane shows after typing `query`: (tag, summary).
    let search = |console: &mut Console, query: &str| -> Vec<(String, String)> {
        console.press(KeyCode::Char('/'));
        for _ in 0..80 {
            console.press(KeyCode::Backspace);
        }
        console.keys(query);
        console.press(KeyCode::Enter);
        let log = console.app.logs().agent(&agent).unwrap();
        console
            .app
            .timeline()
            .shown_positions(log)
            .filter_map(|p| log.get(p))
            .map(|e| (e.kind.tag().to_string(), e.summary.clone()))
            .collect()
    };
    let all = search(&mut console, "");
    let found = search(&mut console, "Ada Lovelace");
    assert!(!found.is_empty() && found.len() < all.len(), "{found:#?}");
    let kinds: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        kinds.contains(&"HTTP"),
        "the exfiltration POST body: {found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|(k, s)| k == "HTTP" && s.contains("POST") && s.contains("127.0.0.2")),
        "{found:#?}"
    );
    // None of the summaries says "Lovelace": the payloads do.
    assert!(
        found.iter().all(|(_, s)| !s.contains("Lovelace")),
        "{found:#?}"
    );

    let http_only = search(&mut console, "Ada Lovelace kind:http");
    assert!(http_only.iter().all(|(k, _)| k == "HTTP") && !http_only.is_empty());
    let not_http = search(&mut console, "Ada Lovelace !kind:http");
    assert_eq!(not_http.len() + http_only.len(), found.len());
    let regex = search(&mut console, "/ignore (all|your) previous instructions/");
    assert!(!regex.is_empty(), "the injected ticket's phrase");
    let screen = console.screen();
    assert!(!screen.contains("No observation matches"), "{screen}");

    console.press(KeyCode::Char('/'));
    for _ in 0..80 {
        console.press(KeyCode::Backspace);
    }
    console.keys("/([/");
    console.press(KeyCode::Enter);
    assert!(
        console.screen().contains("bad regular expression"),
        "{}",
        console.screen()
    );
}

/// On the injected recording: `}` replays to where the next finding appeared (it is on
/// screen again after the jump, even after a seek back emptied the pane), the position bar
/// marks it, `{` goes back, and `N` selects the previous finding (wrapping) as `n` the next.
#[test]
fn replay_seeks_to_findings_and_n_goes_both_ways() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap")).unwrap();
    let mut console = Console::with_source(source).play_to_end();
    let mut exporter = no_exporter();
    let seen = console.app.findings().len();
    assert!(seen >= 1, "the incident");
    // "end of recording" is said, then goes (five seconds of frames: 20 at one refresh a
    // frame, as tests run), leaving the room to the position bar.
    assert_eq!(console.app.message(), Some("end of recording"));
    for _ in 0..21 {
        console.draw();
    }
    assert_eq!(console.app.message(), None, "status messages expire");
    let status_line = console.screen().lines().last().unwrap().to_string();
    assert!(
        status_line.contains('!') && status_line.contains('●'),
        "findings marked on the position bar: {status_line}"
    );
    let SourceMode::Replay(replay) = console.poll().status.mode else {
        panic!("a replay")
    };
    let start = replay.start_ts_ns;
    let position = |console: &mut Console| match console.poll().status.mode {
        SourceMode::Replay(replay) => replay.start_ts_ns + replay.position_ns,
        SourceMode::Live => unreachable!(),
    };
    // Back to the start: the pane is rebuilt from there, so it is empty.
    console.apply(
        vec![Effect::Seek {
            delta_ns: -(replay.duration_ns as i64) - 1,
        }],
        &mut exporter,
    );
    assert_eq!(position(&mut console), start);
    assert_eq!(console.app.findings().len(), 0);
    // Forward finding by finding: each jump shows one more.
    let mut at = start;
    let mut jumps = Vec::new();
    for shown in 1..=seen {
        let effects = console.press_with(KeyCode::Char('}'), KeyModifiers::SHIFT);
        assert_eq!(effects.len(), 1, "a seek");
        console.apply(effects, &mut exporter);
        let now = position(&mut console);
        assert!(now > at, "forward");
        assert!(
            console.app.findings().len() >= shown,
            "the finding is there after the jump"
        );
        at = now;
        jumps.push(now);
    }
    // After the last: nothing further, said so.
    assert!(console
        .press_with(KeyCode::Char('}'), KeyModifiers::SHIFT)
        .is_empty());
    assert_eq!(
        console.app.message(),
        Some("no finding after the playhead yet")
    );
    // `{` goes back to the one before, or says there is none.
    let back = console.press_with(KeyCode::Char('{'), KeyModifiers::SHIFT);
    if jumps.len() > 1 {
        console.apply(back, &mut exporter);
        assert_eq!(position(&mut console), jumps[jumps.len() - 2]);
    } else {
        assert!(back.is_empty());
    }

    // n and N walk the findings pane both ways.
    console.press(KeyCode::Char('n'));
    let first_selected = console.app.findings().selected().unwrap().title.clone();
    console.press_with(KeyCode::Char('N'), KeyModifiers::SHIFT);
    let previous = console.app.findings().selected().unwrap().title.clone();
    if console.app.findings().len() > 1 {
        assert_ne!(previous, first_selected, "N wraps to the last");
    }
    console.press(KeyCode::Char('n'));
    assert_eq!(
        console.app.findings().selected().unwrap().title,
        first_selected
    );
}

/// `b` on the attacked agent of the injected recording asks first: its learned behaviour
/// holds the exfiltration. `x` then exports without what only the incident's evidence stands
/// for (and the file says what it left out), `b` exports everything; the ordinary
/// recording's agent exports at once.
#[test]
fn baseline_of_an_attacked_agent_asks_and_x_leaves_the_attack_out() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap")).unwrap();
    let mut console = Console::with_source(source).play_to_end();
    let dir = tempfile::tempdir().unwrap();
    let mut exporter = baseline::yaml_exporter_at(dir.path().to_path_buf(), || 1_800_000_000);
    assert!(
        console.press(KeyCode::Char('b')).is_empty(),
        "a question first"
    );
    let warning = console.app.message().unwrap().to_string();
    assert_eq!(
        warning,
        "x: export without the attack · b: export all (critical finding)"
    );
    snapshot_both(&mut console, "baseline_question_on_an_attacked_agent");

    // x: the baseline without the attack.
    let effects = console.press(KeyCode::Char('x'));
    assert_eq!(effects.len(), 1, "exported on x");
    console.apply(effects, &mut exporter);
    let message = console.app.message().unwrap().to_string();
    let path = dir
        .path()
        .join("baseline-incident_agent.py-20270115T080000Z.yaml");
    assert!(
        message.starts_with(&format!(
            "wrote {} (baseline without the attack",
            path.display()
        )),
        "{message}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let (header, document) = text.split_at(text.find("apiVersion:").unwrap());
    assert!(
        header.contains("# Excluded: the evidence of critical (inc-1"),
        "{header}"
    );
    for left_out in ["endpoints: POST", "127.0.0.2", "tools.called: http_post"] {
        assert!(header.contains(left_out), "{left_out} not said:\n{header}");
    }
    let exported = AgentBaseline::from_yaml(document, "exported").unwrap();
    let spec = &exported.spec;
    assert!(
        !spec
            .endpoints
            .iter()
            .any(|e| e.host.starts_with("127.0.0.2")),
        "{:?}",
        spec.endpoints
    );
    assert!(
        !spec
            .egress
            .addresses
            .iter()
            .any(|a| a.starts_with("127.0.0.2")),
        "{:?}",
        spec.egress.addresses
    );
    assert!(!spec.tools.called.contains_key("http_post"));
    // What the agent did before the attack stays: its model, the playbook it read, the
    // account API it called.
    assert!(spec.models.values().any(|m| m.contains("gpt-4o-mini")));
    assert!(spec.tools.called.contains_key("read_file"));
    assert!(spec.tools.called.contains_key("http_get"));
    assert!(spec.endpoints.iter().any(|e| e.method == "GET"));

    // b after b: everything, the exfiltration endpoint included.
    console.press(KeyCode::Char('b'));
    let effects = console.press(KeyCode::Char('b'));
    assert_eq!(
        effects,
        vec![Effect::ExportBaseline {
            agent_key: console.app.current_agent().unwrap().to_string(),
            exclude: None
        }]
    );
    console.apply(effects, &mut exporter);
    let all = std::fs::read_to_string(
        dir.path()
            .join("baseline-incident_agent.py-20270115T080000Z-1.yaml"),
    )
    .unwrap();
    assert!(!all.contains("# Excluded"));
    assert!(all.contains("127.0.0.2"), "{all}");
    // x with no question pending does nothing but say what it is for.
    assert!(console.press(KeyCode::Char('x')).is_empty());
    assert!(console.app.message().unwrap().starts_with("x answers b"));

    let source = JsonEventsSource::open_capture(&recording("ordinary.cap")).unwrap();
    let mut console = Console::with_source(source).play_to_end();
    assert_eq!(
        console.press(KeyCode::Char('b')).len(),
        1,
        "no finding: at once"
    );
}

/// The injected recording's query_database ran Debian's psql wrapper, which ran the real
/// psql: two commands both named "psql". The graph shows them as two different rows.
#[test]
fn sibling_nodes_with_one_name_are_told_apart() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let console = Console::with_source(source).play_to_end();
    let labels: Vec<String> = console
        .app
        .graph()
        .rows()
        .iter()
        .filter_map(|r| match &r.content {
            RowContent::Edge(e) if e.node_kind == agentscope_analysis::model::NodeKind::Command => {
                Some(e.label.clone())
            }
            _ => None,
        })
        .collect();
    assert!(
        labels.iter().any(|l| l == "/usr/bin/psql")
            && labels
                .iter()
                .any(|l| l.ends_with("/bin/psql") && l != "/usr/bin/psql"),
        "{labels:#?}"
    );
}

/// From start to the evidence in two keys: `n` selects the incident, `e` jumps to the first
/// timeline row holding its events with the injected phrase highlighted in Detail; `e` walks
/// on, and within three more keys reaches the POST that carried the rows, highlighted too.
/// Evidence rows are marked `◆` in the timeline. Enter on the finding does what `e` does.
#[test]
fn enter_on_a_finding_walks_its_evidence_with_the_matched_text_highlighted() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    // From start: n selects the incident, e goes to its first evidence row (Enter on the
    // finding in the findings pane or on its story in Detail does the same).
    console.press(KeyCode::Char('n'));
    console.press(KeyCode::Char('e'));
    console.draw();
    assert_eq!(console.app.focus(), PaneId::Timeline);
    let screen = console.screen();
    assert!(screen.contains('◆'), "evidence rows are marked:\n{screen}");
    // In the graph too: the edges the evidence rests on (a graph row has its count, ×N).
    let marked_edges: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains('◆') && l.contains('×'))
        .collect();
    assert!(
        marked_edges.iter().any(|l| l.contains("◆http_post")),
        "evidence edges are marked in the graph:\n{screen}"
    );
    assert!(
        console.app.message().unwrap().contains("evidence 1 of"),
        "{:?}",
        console.app.message()
    );
    // The cells of the Detail pane drawn in the selection style, in reading order: a phrase
    // wrapped over two rows reads whole (but for the space the row broke at).
    let highlighted = |console: &mut Console, phrase: &str| -> bool {
        let screen = console.screen();
        let buffer = console.terminal.backend().buffer();
        let selection = app_options(ColorMode::TrueColor).styles.selection;
        let area = buffer.area;
        // The snapshot's rows are quoted: the column after the quote and Detail's border.
        let Some((first_row, byte)) = screen
            .lines()
            .find_map(|row| Some((row, row.find("┌ Detail")?)))
        else {
            return false;
        };
        let left = first_row[..byte].chars().count() as u16;
        let mut marked = String::new();
        for y in 0..area.height {
            for x in left..area.width {
                let cell = &buffer[(x, y)];
                if selection.bg.is_some() && cell.bg == selection.bg.unwrap() {
                    marked.push_str(cell.symbol());
                }
            }
        }
        // Word wrapping drops the space a row breaks at: compare without spaces.
        let squeeze = |text: &str| text.to_lowercase().replace(' ', "");
        squeeze(&marked).contains(&squeeze(phrase))
    };
    let mut keys = 2;
    let phrase = "ignore your previous instructions";
    while !highlighted(&mut console, phrase) {
        assert!(
            keys < 3,
            "the injected phrase within three keys:\n{}",
            console.screen()
        );
        console.press(KeyCode::Char('e'));
        console.draw();
        keys += 1;
    }
    // On to the exfiltration POST, its body's rows highlighted, within three more: the walk
    // stops once at each step of the incident (the query, the read, the POST), not at every
    // row in between. The breadcrumbs say the POST itself is open.
    let at_the_post = |console: &mut Console| {
        let screen = console.screen();
        screen.lines().any(|l| l.contains("› inc-1 › http "))
    };
    let mut more = 0;
    while !(at_the_post(&mut console) && highlighted(&mut console, "ada lovelace")) {
        assert!(
            more < 3,
            "the POST within three more keys:\n{}",
            console.screen()
        );
        console.press(KeyCode::Char('e'));
        console.draw();
        more += 1;
    }
    // Esc in the timeline ends the walk: no marks, no highlight.
    console.press(KeyCode::Esc);
    console.draw();
    assert!(!console.screen().contains('◆'), "{}", console.screen());
    assert!(!highlighted(&mut console, "ada lovelace"));
}

/// Enter on a finding in the findings pane starts the same walk.
#[test]
fn enter_on_a_finding_in_its_pane_goes_to_its_evidence() {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut console = Console::with_source(source).play_to_end();
    console.focus_pane(PaneId::Findings);
    console.press(KeyCode::Down);
    console.press(KeyCode::Enter);
    console.draw();
    assert_eq!(console.app.focus(), PaneId::Timeline);
    assert!(console.app.message().unwrap().contains("evidence 1 of"));
}

// ---------------------------------------------------------------------------------------------
// Navigation: focus after n/N, Detail's subject, breadcrumbs, pane numbers, `:`, sorting
// ---------------------------------------------------------------------------------------------

fn injected() -> Console {
    let source = JsonEventsSource::open_capture(&recording("injected.cap"))
        .unwrap()
        .at_speed(f64::INFINITY);
    Console::with_source(source).play_to_end()
}

/// The screen row holding the top border of the pane titled `title`, and the rows below it
/// down to its bottom border, as text (borders included).
fn pane_text(screen: &str, title: &str) -> String {
    let rows: Vec<&str> = screen.lines().collect();
    let Some((top, column)) = rows.iter().enumerate().find_map(|(i, row)| {
        let at = row
            .find(&format!("┌ {title}"))
            .or_else(|| row.find(&format!("┏ {title}")))?;
        Some((i, row[..at].chars().count()))
    }) else {
        panic!("no {title} pane:\n{screen}")
    };
    let mut text = String::new();
    for row in &rows[top..] {
        let cells: String = row.chars().skip(column).collect();
        text.push_str(&cells);
        text.push('\n');
        if row
            .chars()
            .nth(column)
            .is_some_and(|c| c == '└' || c == '┗')
        {
            break;
        }
    }
    text
}

/// `n` opens the next finding in Detail and puts focus on the findings pane (where Enter
/// walks its evidence and `n` goes on). When the finding belongs to another agent, that
/// agent is selected and Detail still shows the finding, not the agent. `N` goes back.
#[test]
fn n_focuses_the_findings_and_detail_shows_the_finding_of_another_agent() {
    let mut console = Console::open("capture/blind_spot.jsonl").play_to_end();
    let keys: Vec<String> = console
        .source
        .pipeline()
        .model()
        .agents()
        .map(|a| a.key.clone())
        .collect();
    assert!(keys.len() >= 2, "two agents in the capture: {keys:?}");
    let current = console.app.current_agent().unwrap().to_string();
    let other = keys.iter().find(|k| **k != current).unwrap().clone();
    for (id, agent) in [("f-1", &other), ("f-2", &current)] {
        console.app.add_finding(FindingView {
            id: id.into(),
            severity: Severity::High,
            title: format!("{id} finding of {agent}"),
            agent_key: agent.clone(),
            story: format!("story of {id}"),
            ts_ns: 0,
            evidence: Vec::new(),
            steps: Vec::new(),
            matched: Vec::new(),
            findings: 1,
            occurrences: 1,
            last_seen_ns: 0,
        });
    }
    console.draw();
    assert_eq!(console.app.focus(), PaneId::Agents);
    console.press(KeyCode::Char('n'));
    assert_eq!(console.app.focus(), PaneId::Findings);
    assert_eq!(console.app.current_agent(), Some(other.as_str()));
    // Another frame or two: the agent change must not take Detail over.
    console.draw();
    console.draw();
    let detail = pane_text(&console.screen(), "Detail");
    assert!(detail.contains("story of f-1"), "{detail}");
    assert!(detail.contains("Detail · finding"), "{detail}");
    console.press(KeyCode::Char('n'));
    assert_eq!(console.app.current_agent(), Some(current.as_str()));
    assert!(pane_text(&console.screen(), "Detail").contains("story of f-2"));
    console.press_with(KeyCode::Char('N'), KeyModifiers::SHIFT);
    assert_eq!(console.app.focus(), PaneId::Findings);
    assert!(pane_text(&console.screen(), "Detail").contains("story of f-1"));
}

/// Detail keeps what was opened: Tab through every pane, moving selections in the timeline,
/// the graph and the agents tree leave it alone; Enter opens the selection.
#[test]
fn detail_keeps_what_was_opened_until_something_else_is_opened() {
    let mut console = Console::open("capture/python_chat.jsonl").play_to_end();
    console.select_entry("LLM", 0);
    let opened = pane_text(&console.screen(), "Detail");
    assert!(opened.contains("Detail · llm"), "{opened}");
    for _ in 0..6 {
        console.press(KeyCode::Tab);
        console.press(KeyCode::Char('j'));
        console.press(KeyCode::Char('j'));
        let detail = pane_text(&console.screen(), "Detail");
        assert!(
            detail.lines().next().unwrap().contains("Detail · llm"),
            "after Tab and j in {:?}:\n{detail}",
            console.app.focus()
        );
    }
    // Enter in the graph opens its row.
    console.focus_pane(PaneId::Graph);
    console.press(KeyCode::Home);
    console.press(KeyCode::Char('j'));
    console.press(KeyCode::Enter);
    assert!(pane_text(&console.screen(), "Detail").contains("MODEL gpt-4o-mini"));
}

/// The breadcrumb line says where Detail is; Backspace and `-` go back through what was
/// opened; the walk's later evidence rows replace each other rather than pile up.
#[test]
fn breadcrumbs_say_where_detail_is_and_backspace_goes_back() {
    let mut console = injected();
    let agent = "incident_agent.py".to_string();
    assert_eq!(console.app.trail(), [agent.as_str()]);
    console.press(KeyCode::Char('n'));
    assert_eq!(console.app.trail(), [agent.clone(), "inc-1".into()]);
    console.press(KeyCode::Char('e'));
    console.draw();
    let trail = console.app.trail().to_vec();
    assert_eq!(trail.len(), 3, "{trail:?}");
    assert_eq!(trail[..2], [agent.clone(), "inc-1".to_string()]);
    assert!(trail[2].starts_with("mcp "), "{trail:?}");
    let header = console.screen().lines().next().unwrap().to_string();
    assert!(
        header.contains(&format!("⌫ back · {agent} › inc-1 › mcp ")),
        "{header}"
    );
    // Two more evidence rows: still three crumbs.
    console.press(KeyCode::Char('e'));
    console.draw();
    console.press(KeyCode::Char('e'));
    console.draw();
    assert_eq!(console.app.trail().len(), 3);
    assert_ne!(console.app.trail()[2], trail[2]);
    console.press(KeyCode::Backspace);
    console.draw();
    assert_eq!(console.app.trail(), [agent.clone(), "inc-1".into()]);
    assert_eq!(console.app.findings().selected().unwrap().id, "inc-1");
    console.press(KeyCode::Char('-'));
    console.draw();
    assert_eq!(console.app.trail(), [agent.as_str()]);
    console.press(KeyCode::Backspace);
    assert_eq!(console.app.message(), Some("nothing to go back to"));
    assert!(!console.screen().lines().next().unwrap().contains("back"));
}

/// At 80x24 graph, timeline, AI-BOM and posture share one place: the number keys reach every
/// pane, and the header names the panes not on screen.
#[test]
fn number_keys_reach_every_pane_at_80x24() {
    let mut console = injected();
    console.resize(80, 24);
    for (key, pane, title) in [
        ('1', PaneId::Agents, "Agents ("),
        ('2', PaneId::Graph, "Graph ·"),
        ('3', PaneId::Timeline, "Timeline ·"),
        ('4', PaneId::Detail, "Detail ·"),
        ('5', PaneId::AiBom, "AI-BOM ·"),
        ('6', PaneId::Findings, "Findings ("),
        ('7', PaneId::Posture, "Posture ·"),
    ] {
        console.press(KeyCode::Char(key));
        assert_eq!(console.app.focus(), pane);
        let screen = console.screen();
        assert!(screen.contains(&format!("┏ {title}")), "{title}:\n{screen}");
        let header = screen.lines().next().unwrap();
        assert!(header.contains("more: "), "{header}");
    }
    // Timeline focused: the header points at the graph, the AI-BOM and the posture.
    console.press(KeyCode::Char('3'));
    let header = console.screen().lines().next().unwrap().to_string();
    assert!(
        header.contains("more: 2 Graph  5 AI-BOM  7 Posture"),
        "the hidden panes: {header}"
    );
    // Zoomed, every other pane is listed.
    console.press(KeyCode::Char('z'));
    let header = console.screen().lines().next().unwrap().to_string();
    assert!(header.contains("more: 1 Agents"), "{header}");
}

/// `:` jumps to a finding (its id typed loosely), an agent (part of its name), and a time of
/// day or a relative time (a seek in a replay); mistakes are said in the status line.
#[test]
fn colon_commands_jump_to_a_finding_an_agent_and_a_time() {
    let mut console = injected();
    let mut exporter = no_exporter();
    console.keys(":f INC1");
    assert!(console.screen().contains(":f INC1▏"));
    console.press(KeyCode::Enter);
    assert_eq!(console.app.focus(), PaneId::Findings);
    assert_eq!(
        console.app.trail().last().map(String::as_str),
        Some("inc-1")
    );
    console.keys(":agent incident_ag");
    console.press(KeyCode::Enter);
    assert_eq!(console.app.focus(), PaneId::Agents);
    assert_eq!(console.app.trail(), ["incident_agent.py"]);
    for (typed, error) in [
        (":agent nobody", "no agent matches \"nobody\""),
        (":finding f-99", "no finding f-99"),
        (":jump", "unknown command \"jump\""),
    ] {
        console.keys(typed);
        console.press(KeyCode::Enter);
        let message = console.app.message().unwrap_or_default().to_string();
        assert!(message.contains(error), "{typed}: {message}");
    }
    // Esc leaves command mode without running anything.
    console.keys(":agent x");
    console.press(KeyCode::Esc);
    assert!(!console.screen().contains(":agent x"));

    // A time of day: the first evidence row's, as the timeline prints it.
    let agent = console.app.current_agent().unwrap().to_string();
    let ts = {
        let log = console.app.logs().agent(&agent).unwrap();
        let (_, entry) = log
            .iter_from(0)
            .find(|(_, e)| e.kind.tag() == "MCP")
            .unwrap();
        entry.observation.ts_ns
    };
    // As the panes print it: HH:MM:SS.mmm.
    let clock = console.app.event_time(ts);
    assert_eq!(clock.len(), 12, "{clock}");
    console.keys(&format!(":time {clock}"));
    let effects = console.press(KeyCode::Enter);
    assert_eq!(console.app.focus(), PaneId::Timeline);
    let [Effect::Seek { delta_ns }] = effects.as_slice() else {
        panic!("a seek: {effects:?}")
    };
    let SourceMode::Replay(replay) = console.poll().status.mode else {
        panic!("a replay")
    };
    let playhead = replay.start_ts_ns + replay.position_ns;
    // The printed time is cut to milliseconds.
    let target = playhead as i128 + *delta_ns as i128;
    assert!(
        (ts as i128 - target) >= 0 && (ts as i128 - target) < 1_000_000,
        "seek to {target}, the event is at {ts}"
    );
    console.apply(effects, &mut exporter);
    // Relative: half a second back from the playhead.
    console.keys(":-0.5s");
    assert_eq!(
        console.press(KeyCode::Enter),
        vec![Effect::Seek {
            delta_ns: -500_000_000
        }]
    );
}

/// `s` cycles the graph's order (name, count, last seen) and the findings' (time, severity,
/// agent); the title says the order when it is not the default, and the selection stays on
/// the same row.
#[test]
fn s_sorts_the_graph_rows_and_the_findings() {
    let mut console = injected();
    console.press(KeyCode::Char('2'));
    console.press(KeyCode::Char('s'));
    assert!(console.screen().contains("Graph ↓count ·"));
    let siblings_sorted = |console: &Console, key: fn(&super::graph_pane::EdgeView) -> u64| {
        let rows = console.app.graph().rows();
        rows.windows(2)
            .all(|pair| match (&pair[0].content, &pair[1].content) {
                (RowContent::Edge(a), RowContent::Edge(b))
                    if pair[0].depth == pair[1].depth && !pair[0].expanded =>
                {
                    key(a) >= key(b)
                }
                _ => true,
            })
    };
    assert!(siblings_sorted(&console, |e| e.count));
    let models = console.app.graph().rows()[1].clone();
    assert!(
        matches!(&models.content, RowContent::Edge(e) if e.label == "gpt-4o-mini"),
        "{models:?}"
    );
    console.press(KeyCode::Char('s'));
    assert!(console.screen().contains("Graph ↓last seen ·"));
    assert!(siblings_sorted(&console, |e| e.last_seen_ns));
    console.press(KeyCode::Char('s'));
    assert!(console.screen().contains("Graph · "), "back to by name");

    for (id, severity, agent) in [
        ("f-7", Severity::Low, "b"),
        ("f-8", Severity::Critical, "c"),
        ("f-9", Severity::Medium, "a"),
    ] {
        console.app.add_finding(FindingView {
            id: id.into(),
            severity,
            title: format!("{id} {}", severity.name()),
            agent_key: agent.into(),
            story: String::new(),
            ts_ns: 0,
            evidence: Vec::new(),
            steps: Vec::new(),
            matched: Vec::new(),
            findings: 1,
            occurrences: 1,
            last_seen_ns: 0,
        });
    }
    console.press(KeyCode::Char('6'));
    console.press(KeyCode::End);
    assert_eq!(console.app.findings().selected().unwrap().id, "f-9");
    let order = |console: &mut Console| -> Vec<String> {
        let mut ids = Vec::new();
        console.press(KeyCode::Home);
        for _ in 0..console.app.findings().len() {
            ids.push(console.app.findings().selected().unwrap().id.clone());
            console.app.handle_event(&Event::Key(KeyEvent::new(
                KeyCode::Down,
                KeyModifiers::NONE,
            )));
        }
        ids
    };
    console.press(KeyCode::Char('s'));
    assert_eq!(console.app.findings().selected().unwrap().id, "f-9", "kept");
    assert!(console.screen().contains("Findings (4) ↓severity"));
    assert_eq!(order(&mut console), ["inc-1", "f-8", "f-9", "f-7"]);
    console.press(KeyCode::Char('s'));
    assert!(console.screen().contains("Findings (4) ↓agent"));
    assert_eq!(order(&mut console), ["f-9", "f-7", "f-8", "inc-1"]);
    console.press(KeyCode::Char('s'));
    assert_eq!(order(&mut console), ["inc-1", "f-7", "f-8", "f-9"]);
}

/// Opens the exfiltration POST (a long body) in Detail and focuses Detail.
fn open_the_post(console: &mut Console) {
    let agent = console.app.current_agent().unwrap().to_string();
    let posts = console
        .app
        .logs()
        .agent(&agent)
        .unwrap()
        .iter_from(0)
        .filter(|(_, e)| e.kind.tag() == "HTTP")
        .count();
    console.select_entry("HTTP", posts - 1);
    console.press(KeyCode::Char('4'));
}

/// Detail stops with its last line at the bottom: End and further `j` go no further, at
/// both sizes, and the title's range ends at the last line.
#[test]
fn detail_never_scrolls_past_its_end() {
    let mut console = injected();
    open_the_post(&mut console);
    for (width, height) in SIZES {
        console.resize(width, height);
        console.draw();
        console.press(KeyCode::End);
        let end = console.app.detail().scroll;
        assert!(end > 0, "the POST is longer than the pane");
        assert_eq!(end, console.app.detail().max_scroll());
        for _ in 0..5 {
            console.press(KeyCode::Char('j'));
        }
        assert_eq!(console.app.detail().scroll, end);
        let position = console.app.detail().position();
        let (range, total) = position.split_once('/').unwrap();
        assert_eq!(range.split_once('-').unwrap().1, total, "{position}");
        // The pane is filled with the document's end, not one line and blank rows below it.
        let detail = pane_text(&console.screen(), "Detail");
        let rows: Vec<&str> = detail.lines().collect();
        let inner = &rows[1..rows.len() - 1];
        let with_text = inner
            .iter()
            .filter(|row| !row.trim_matches(['│', '┃', ' ', '"']).is_empty())
            .count();
        assert!(
            with_text * 2 >= inner.len(),
            "{with_text} of {} rows hold text:\n{detail}",
            inner.len()
        );
        console.press(KeyCode::Home);
    }
}

/// `z` and `z` again leave Detail where it was scrolled to.
#[test]
fn zoom_keeps_the_detail_scroll_offset() {
    let mut console = injected();
    console.resize(80, 24);
    open_the_post(&mut console);
    // The first row on screen, without borders: the start of logical line `top`.
    let first_row = |console: &mut Console| {
        let detail = pane_text(&console.screen(), "Detail");
        detail
            .lines()
            .nth(1)
            .unwrap()
            .trim_matches(['│', '┃', '"'])
            .trim_end()
            .to_string()
    };
    // Down to a line with text on it, some way into the body.
    for _ in 0..6 {
        console.press(KeyCode::Char('j'));
    }
    for _ in 0..40 {
        if !first_row(&mut console).is_empty() {
            break;
        }
        console.press(KeyCode::Char('j'));
    }
    let top = console.app.detail().top();
    assert!(top >= 6);
    let before = first_row(&mut console);
    console.press(KeyCode::Char('z'));
    assert_eq!(console.app.detail().top(), top);
    // Wider, the same line starts the pane (more of it fits on the row).
    let zoomed = first_row(&mut console);
    assert!(zoomed.starts_with(&before), "{before:?} then {zoomed:?}");
    console.press(KeyCode::Char('z'));
    assert_eq!(console.app.detail().top(), top);
    assert_eq!(first_row(&mut console), before);
}

#[test]
fn snapshot_navigation_states() {
    let mut console = injected();
    // The pane switcher: at 80x24 the timeline takes the graph's place, the header points at
    // the panes not shown.
    console.press(KeyCode::Char('3'));
    snapshot_both(&mut console, "pane_switcher_timeline");
    // Breadcrumbs after n → e.
    console.press(KeyCode::Char('n'));
    console.press(KeyCode::Char('e'));
    console.draw();
    snapshot_both(&mut console, "breadcrumbs_after_n_e");
    // The hint line of Detail showing a finding (Enter walks its evidence).
    console.press(KeyCode::Backspace);
    console.press(KeyCode::Char('4'));
    snapshot_both(&mut console, "hints_detail_with_a_finding");
    // A wrapped Detail (the POST's body), scrolled to its end.
    open_the_post(&mut console);
    console.press(KeyCode::End);
    snapshot_both(&mut console, "detail_wrapped_at_its_end");
    // Command mode.
    console.keys(":agent incid");
    snapshot_both(&mut console, "command_mode");
    console.press(KeyCode::Esc);
    // A sorted list.
    console.press(KeyCode::Char('2'));
    console.press(KeyCode::Char('s'));
    snapshot_both(&mut console, "graph_sorted_by_count");
}

/// Live, `:time` selects the current agent's first timeline entry at or after that time of
/// day (there is nothing to seek), and `:-…` counts back from the latest event.
#[test]
fn colon_time_in_live_mode_selects_the_timeline_row() {
    use std::sync::Arc;

    use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
    use agentscope_analysis::pipeline::Pipeline;
    use agentscope_capture::capture::CaptureMetadata;
    use agentscope_reconstruct::ReconstructOptions;

    use super::live_collector::{EventSender, LiveCounters};
    use super::live_recording::RecordingOptions;

    let dir = tempfile::tempdir().unwrap();
    let events = agentscope_event::event_json::events_from_json_lines(
        &std::fs::read_to_string(fixture("capture/python_chat.jsonl")).unwrap(),
    )
    .unwrap();
    let counters = Arc::new(LiveCounters::default());
    let (sender, receiver) = EventSender::channel(events.len(), counters.clone());
    let pipeline = Pipeline::new(
        ReconstructOptions {
            redact_secrets: true,
            ..ReconstructOptions::default()
        },
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let mut source = LiveSource::from_channel(
        "live",
        pipeline,
        receiver,
        counters,
        RecordingOptions::new(dir.path().to_path_buf(), CaptureMetadata::default()),
    );
    for event in events {
        sender.send(event);
    }
    let mut app = App::new(app_options(ColorMode::TrueColor));
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let mut frame = |app: &mut App, source: &mut LiveSource| {
        let update = source.poll(usize::MAX);
        app.ingest(update, source.pipeline());
        terminal.draw(|f| app.render(f, source.pipeline())).unwrap();
        terminal.backend().to_string()
    };
    frame(&mut app, &mut source);
    frame(&mut app, &mut source);
    let press = |app: &mut App, c: char| {
        app.handle_event(&Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )))
    };
    let agent = app.current_agent().unwrap().to_string();
    let (position, ts) = {
        let log = app.logs().agent(&agent).unwrap();
        let (position, entry) = log
            .iter_from(0)
            .find(|(_, e)| e.kind.tag() == "LLM")
            .unwrap();
        (position, entry.observation.ts_ns)
    };
    let clock = app.event_time(ts);
    for c in format!(":time {clock}").chars() {
        assert!(press(&mut app, c).is_empty());
    }
    let effects = app.handle_event(&Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    assert!(effects.is_empty(), "live: no seek, {effects:?}");
    assert_eq!(app.focus(), PaneId::Timeline);
    // The printed time is cut to milliseconds: the first entry at or after it.
    let selected = app
        .timeline()
        .selected_position(app.logs().agent(&agent))
        .unwrap();
    let log = app.logs().agent(&agent).unwrap();
    let first_at = log
        .iter_from(0)
        .find(|(_, e)| app.event_time(e.observation.ts_ns) >= clock)
        .map(|(p, _)| p)
        .unwrap();
    assert!(
        selected <= position && selected == first_at,
        "{selected} {position} {first_at}"
    );
    // Enter opens it.
    app.handle_event(&Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    let screen = frame(&mut app, &mut source);
    assert!(screen.contains("Detail · llm"), "{screen}");
    // Relative: far back from the latest event lands on the first entry.
    for c in ":-1h".chars() {
        press(&mut app, c);
    }
    app.handle_event(&Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    let log = app.logs().agent(&agent).unwrap();
    assert_eq!(
        app.timeline().selected_position(Some(log)),
        Some(log.start())
    );
}

/// Back to an event of another agent: that agent is selected again and its timeline row too.
#[test]
fn back_to_another_agents_event_selects_its_row() {
    let mut console = Console::open("capture/blind_spot.jsonl").play_to_end();
    let first = console.app.current_agent().unwrap().to_string();
    console.select_entry("NET", 0);
    let opened = console
        .app
        .timeline()
        .selected_position(console.app.logs().agent(&first))
        .unwrap();
    let other = console
        .source
        .pipeline()
        .model()
        .agents()
        .map(|a| a.key.clone())
        .find(|k| *k != first)
        .unwrap();
    console.keys(&format!(":agent {other}"));
    console.press(KeyCode::Enter);
    assert_eq!(console.app.current_agent(), Some(other.as_str()));
    console.press(KeyCode::Backspace);
    console.draw();
    assert_eq!(console.app.current_agent(), Some(first.as_str()));
    assert_eq!(
        console
            .app
            .timeline()
            .selected_position(console.app.logs().agent(&first)),
        Some(opened)
    );
    assert!(console.app.trail().last().unwrap().starts_with("net "));
}
