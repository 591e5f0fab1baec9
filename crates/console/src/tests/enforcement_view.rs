//! The console's view of kernel enforcement (issue 17): the agents list's compact column and
//! the agent's Detail section, built from enforcement decisions as the collector writes them
//! (`EnforceDecision` through `agentscope_event::event_json`, the `--json` code path) added to
//! the real capture `capture/python_chat.jsonl`; and `P`, which promotes the agent's baseline
//! from audit to enforce after `y`, with the code of `agentscope baseline promote`.
//!
//! No committed recording holds enforce events yet (the enforcement end-to-end tests run
//! under a collector with `--enforce`; tests/enforcement.rs records one and replays it, but
//! it is not committed), hence decisions and a policy report made here.

use agentscope_analysis::baseline::{self, EnforceMode, LearnerOptions, PromoteRequest};
use agentscope_analysis::detect::DetectorOptions;
use agentscope_event::enforcement::{EnforceAction, EnforceCategory, EnforceDecision};
use agentscope_event::event::{Event, EventBody};
use agentscope_event::event_json::{events_from_json_lines, write_json_line};
use ratatui::crossterm::event::KeyCode;

use super::*;

/// The support agent's key in the recordings: the baseline the decisions name.
const SUPPORT_AGENT: &str = "k8s:support/Deployment/support-agent/agent:python incident_agent.py";

fn decision(
    category: EnforceCategory,
    action: EnforceAction,
    revision: u32,
    addr: &str,
    path: Option<&str>,
) -> EnforceDecision {
    let network = category == EnforceCategory::Network;
    EnforceDecision {
        agent_id: 1,
        baseline: Some(SUPPORT_AGENT.into()),
        revision,
        category,
        action,
        hook: match category {
            EnforceCategory::Network => "connect4",
            EnforceCategory::Exec => "sched_process_exec",
            _ => "sys_exit_openat",
        }
        .into(),
        protocol: if network { "tcp" } else { "" }.into(),
        family: if network { "inet" } else { "" }.into(),
        addr: addr.into(),
        port: if network { 8080 } else { 0 },
        path: path.map(Into::into),
        reason: (category == EnforceCategory::Exec).then(|| "program from standard input".into()),
        inode: (category == EnforceCategory::Files).then(|| "25:1234".into()),
        rule: None,
        blocks_last_minute: None,
    }
}

/// `capture/python_chat.jsonl` with enforcement decisions for its agent's process, made
/// before it exits: network and exec in audit (would block), files enforced (blocked).
/// Written as `--json` writes events, to `enforced.jsonl` in a temporary directory.
fn enforced_events() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(fixture("capture/python_chat.jsonl")).unwrap();
    let mut events: Vec<Event> = events_from_json_lines(&text).unwrap();
    let exit = events
        .iter()
        .position(|e| matches!(e.body, EventBody::Exit { .. }))
        .expect("the agent exits");
    let before_exit = events[exit].header.clone();
    use EnforceAction::*;
    use EnforceCategory::*;
    let decisions = [
        decision(Network, WouldBlock, 1, "127.0.0.2", None),
        decision(Exec, WouldBlock, 1, "", Some("/bin/sh")),
        decision(Network, WouldBlock, 1, "127.0.0.2", None),
        decision(
            Files,
            Blocked,
            1,
            "",
            Some("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        ),
    ];
    let made: Vec<Event> = decisions
        .into_iter()
        .enumerate()
        .map(|(i, decision)| {
            let mut header = before_exit.clone();
            let earlier = 1_000 * (4 - i as u64);
            header.ts_ns -= earlier;
            header.time_unix_ns -= earlier;
            Event {
                header,
                body: EventBody::Enforce(Box::new(decision)),
            }
        })
        .collect();
    events.splice(exit..exit, made);
    let mut bytes = Vec::new();
    for event in &events {
        write_json_line(event, &mut bytes).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enforced.jsonl");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn enforced_console(baseline_dirs: Vec<PathBuf>) -> (Console, tempfile::TempDir) {
    let (dir, path) = enforced_events();
    let mut console = Console::with_source(JsonEventsSource::open(&path).unwrap());
    let mut options = app_options(ColorMode::TrueColor);
    options.baseline_dirs = baseline_dirs;
    console.app = App::new(options);
    (console.play_to_end(), dir)
}

#[test]
fn the_model_counts_each_agents_decisions_per_category() {
    let (console, _dir) = enforced_console(Vec::new());
    let agent = console
        .source
        .pipeline()
        .model()
        .agents()
        .find(|a| a.key == "host:python")
        .unwrap()
        .clone();
    let e = &agent.enforcement;
    assert_eq!(e.baseline.as_deref(), Some(SUPPORT_AGENT));
    assert_eq!((e.network.would_block, e.network.blocked), (2, 0));
    assert_eq!((e.exec.would_block, e.exec.blocked), (1, 0));
    assert_eq!((e.files.would_block, e.files.blocked), (0, 1));
    assert_eq!(e.audited(), vec!["network", "exec"]);
    assert_eq!(
        super::agents_pane::enforcement_column(e).as_deref(),
        Some("net A2/0 exec A1/0 files E0/1")
    );
}

#[test]
fn snapshot_enforcement_in_the_agents_list_and_detail() {
    let (mut console, _dir) = enforced_console(Vec::new());
    let screen = console.screen();
    assert!(screen.contains("net A2/0"), "{screen}");
    assert!(screen.contains("Enforcement"), "{screen}");
    snapshot_both(&mut console, "enforcement_agents_and_detail");
    // Detail alone, zoomed: every category's last decisions.
    console.focus_pane(PaneId::Detail);
    console.press(KeyCode::Char('z'));
    snapshot_both(&mut console, "enforcement_detail_zoomed");
}

/// `capture/python_chat.jsonl` with the policy the collector reports for its agent's process
/// when it starts enforcing (an `enforce_policy` event before the agent's first event, as
/// `collect --enforce` writes it), and no decision at all.
fn governed_events() -> Vec<Event> {
    use agentscope_event::enforcement::{EnforcePolicy, PolicyChange, PolicyMode};
    let text = std::fs::read_to_string(fixture("capture/python_chat.jsonl")).unwrap();
    let mut events: Vec<Event> = events_from_json_lines(&text).unwrap();
    let first = events[0].header.clone();
    let agent_pid = events
        .iter()
        .find(|e| matches!(e.body, EventBody::Data { .. }))
        .expect("the agent's traffic")
        .header
        .pid;
    let policy = EnforcePolicy {
        agent_id: 1,
        baseline: SUPPORT_AGENT.into(),
        revision: 3,
        scope: format!("pid:{agent_pid}"),
        scope_pid: Some(agent_pid),
        scope_cgroup_id: None,
        network: PolicyMode::Enforce,
        exec: PolicyMode::Audit,
        files: PolicyMode::Off,
        change: PolicyChange::Started,
        files_added: Vec::new(),
    };
    let mut header = first;
    header.ts_ns -= 1_000;
    header.time_unix_ns -= 1_000;
    (header.pid, header.tid, header.ppid, header.uid, header.gid) = (0, 0, 0, 0, 0);
    header.cgroup_id = 0;
    header.comm = Default::default();
    events.insert(
        0,
        Event {
            header,
            body: EventBody::EnforcePolicy(Box::new(policy)),
        },
    );
    events
}

fn governed_console() -> (Console, tempfile::TempDir) {
    let events = governed_events();
    let mut bytes = Vec::new();
    for event in &events {
        write_json_line(event, &mut bytes).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("governed.jsonl");
    std::fs::write(&path, bytes).unwrap();
    let mut console = Console::with_source(JsonEventsSource::open(&path).unwrap());
    console.app = App::new(app_options(ColorMode::TrueColor));
    (console.play_to_end(), dir)
}

/// The modes come from the policy the collector reported: an agent whose policy decided
/// nothing shows every category's mode, `off` included, in the model and on screen.
#[test]
fn snapshot_a_reported_policy_shows_its_modes_before_any_decision() {
    let (mut console, _dir) = governed_console();
    let agent = console
        .source
        .pipeline()
        .model()
        .agents()
        .find(|a| a.key == "host:python")
        .unwrap()
        .clone();
    let e = &agent.enforcement;
    use agentscope_analysis::model::agent_enforcement::KnownMode;
    assert_eq!(
        (e.network.mode, e.exec.mode, e.files.mode),
        (
            Some(KnownMode::Enforce),
            Some(KnownMode::Audit),
            Some(KnownMode::Off)
        )
    );
    assert_eq!(
        e.categories().map(|(_, c)| c.decisions()),
        [0, 0, 0],
        "no decision"
    );
    assert_eq!(
        (e.baseline.as_deref(), e.revision),
        (Some(SUPPORT_AGENT), 3)
    );
    assert_eq!(
        super::agents_pane::enforcement_column(e).as_deref(),
        Some("net E0/0 exec A0/0")
    );
    let screen = console.screen();
    assert!(screen.contains("net E0/0"), "{screen}");
    snapshot_both(&mut console, "enforcement_policy_without_decisions");
    // Detail alone, zoomed: every category's mode, off included, and where it comes from.
    console.focus_pane(PaneId::Detail);
    console.press(KeyCode::Char('z'));
    console.resize(120, 40);
    let screen = console.screen();
    for line in [
        "network        enforce · 0 would block · 0 blocked",
        "exec           audit · 0 would block · 0 blocked",
        "files          off · 0 would block · 0 blocked",
    ] {
        assert!(screen.contains(line), "{line}: {screen}");
    }
    assert!(screen.contains("(reported by the collector)"), "{screen}");
    snapshot_both(&mut console, "enforcement_policy_detail_zoomed");
}

/// A console attaching to a running collector (`--connect`) or seeking in a recording starts
/// from a keyframe of the pipeline: the policies reported before it reach agents discovered
/// after it.
#[test]
fn a_keyframe_carries_the_reported_policies_to_agents_found_later() {
    use agentscope_analysis::model::agent_enforcement::KnownMode;
    use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
    use agentscope_analysis::pipeline::Pipeline;
    let new_pipeline = || {
        Pipeline::new(
            Default::default(),
            ModelOptions::default(),
            Box::new(HostOnlyIdentity),
        )
    };
    let events = governed_events();
    let mut before = new_pipeline();
    before.push(&events[0]);
    assert_eq!(before.model().agents().count(), 0, "no agent yet");
    let state = serde_json::to_value(before.state()).unwrap();
    let mut after = new_pipeline();
    after.restore(serde_json::from_value(state).unwrap());
    for event in &events[1..] {
        after.push(event);
    }
    let agent = after
        .model()
        .agents()
        .find(|a| a.key == "host:python")
        .unwrap();
    assert_eq!(agent.enforcement.network.mode, Some(KnownMode::Enforce));
    assert_eq!(agent.enforcement.files.mode, Some(KnownMode::Off));
}

/// A complete baseline of the support agent (learning one second of `ordinary.cap`, as
/// `baseline export --learning-period 1` does), promoted to audit for network and exec as
/// `agentscope baseline promote --network audit --exec audit` does, in `dir` as `name`.
fn audited_baseline(dir: &Path, name: &str) -> (PathBuf, AgentBaseline) {
    let mut replay = agentscope_capture::capture::Replay::open(&recording("ordinary.cap"))
        .unwrap()
        .with_detection(DetectorOptions {
            learner: LearnerOptions::default().with_learning_period_seconds(1),
            ..Default::default()
        });
    replay.run_to_end();
    let learned = replay
        .pipeline()
        .detector()
        .learner()
        .baseline(SUPPORT_AGENT)
        .unwrap();
    let audited = baseline::promote(
        &learned,
        PromoteRequest {
            network: Some(EnforceMode::Audit),
            exec: Some(EnforceMode::Audit),
            files: None,
        },
    )
    .unwrap();
    let path = dir.join(name);
    std::fs::write(&path, audited.to_yaml()).unwrap();
    (path, audited)
}

#[test]
fn promote_asks_then_writes_beside_the_input_or_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = audited_baseline(dir.path(), "support.yaml");
    let before = std::fs::read(&input).unwrap();
    let (mut console, _events) = enforced_console(vec![dir.path().to_path_buf()]);
    let mut exporter = no_exporter();

    // P, then n: asked, nothing written.
    let effects = console.press(KeyCode::Char('P'));
    assert_eq!(
        effects,
        vec![Effect::PlanPromotion {
            agent_key: "host:python".into()
        }]
    );
    console.apply(effects, &mut exporter);
    let question = console.app.message().unwrap().to_string();
    assert_eq!(
        question,
        "y: promote network+exec audit→enforce · n: cancel (support.yaml rev 1→2)"
    );
    assert!(console.screen().contains("y: promote network+exec"));
    let effects = console.press(KeyCode::Char('n'));
    assert!(effects.is_empty());
    assert_eq!(
        console.app.message().unwrap(),
        "promotion cancelled: nothing written"
    );
    let files = |dir: &Path| std::fs::read_dir(dir).unwrap().count();
    assert_eq!(files(dir.path()), 1);

    // P, then y: the promoted baseline beside the input, which is unchanged.
    let effects = console.press(KeyCode::Char('P'));
    console.apply(effects, &mut exporter);
    let effects = console.press(KeyCode::Char('y'));
    assert!(matches!(effects.as_slice(), [Effect::Promote(_)]));
    console.apply(effects, &mut exporter);
    let output = dir.path().join("support.rev2.yaml");
    assert_eq!(
        console.app.message().unwrap(),
        format!("wrote {} (rev 2: network+exec enforce)", output.display())
    );
    assert_eq!(std::fs::read(&input).unwrap(), before);
    let promoted = AgentBaseline::read_from(&output).unwrap();
    let policy = promoted.enforcement.unwrap();
    assert_eq!(policy.revision, 2);
    assert_eq!(policy.network, EnforceMode::Enforce);
    assert_eq!(policy.exec, EnforceMode::Enforce);
    assert_eq!(policy.files, EnforceMode::Off);
    // What `agentscope baseline promote --network enforce --exec enforce` makes of the input.
    let by_cli = baseline::promote(
        &AgentBaseline::read_from(&input).unwrap(),
        PromoteRequest {
            network: Some(EnforceMode::Enforce),
            exec: Some(EnforceMode::Enforce),
            files: None,
        },
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), by_cli.to_yaml());
    // The directory still loads as a `--baseline DIR`: the new revision is used, the reviewed
    // one it came from named as set aside.
    let loaded = baseline::load_baseline_dir_revisions(dir.path()).unwrap();
    assert_eq!(loaded.baselines.len(), 1);
    assert_eq!(
        loaded.baselines[SUPPORT_AGENT]
            .enforcement
            .as_ref()
            .unwrap()
            .revision,
        2
    );
    assert_eq!(loaded.set_aside.len(), 1);
    assert_eq!(loaded.set_aside[0].path, input);
    assert_eq!(
        loaded.set_aside[0].to_string(),
        format!(
            "{} (rev 1) set aside for {} (rev 2) of agent \"{SUPPORT_AGENT}\"",
            input.display(),
            output.display()
        )
    );

    // Again: the newest revision (rev 2, now enforced) has nothing in audit: said, not done.
    let effects = console.press(KeyCode::Char('P'));
    console.apply(effects, &mut exporter);
    let message = console.app.message().unwrap();
    assert!(message.starts_with("not promoted: "), "{message}");
    assert!(message.contains("no category in audit"), "{message}");
}

#[test]
fn promote_shows_the_refusal_of_a_partial_baseline() {
    let dir = tempfile::tempdir().unwrap();
    // The audited baseline as if events had been dropped while it learned.
    let (path, mut partial) = audited_baseline(dir.path(), "support.yaml");
    partial.metadata.status = baseline::BaselineStatus::Partial;
    partial.metadata.loss.dropped_events = 7;
    std::fs::write(&path, partial.to_yaml()).unwrap();
    let (mut console, _events) = enforced_console(vec![dir.path().to_path_buf()]);
    let effects = console.press(KeyCode::Char('P'));
    console.apply(effects, &mut no_exporter());
    let message = console.app.message().unwrap().to_string();
    assert_eq!(
        message,
        format!(
            "not promoted: cannot promote {}: baseline of {SUPPORT_AGENT} is partial: 7 events \
             dropped while learning; learn again until it is complete",
            path.display()
        )
    );
    // Nothing asked, so `y` is an ordinary key and writes nothing.
    assert!(console.press(KeyCode::Char('y')).is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn promote_without_a_baseline_file_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let (mut console, _events) = enforced_console(vec![dir.path().to_path_buf()]);
    let effects = console.press(KeyCode::Char('P'));
    console.apply(effects, &mut no_exporter());
    let message = console.app.message().unwrap();
    assert!(
        message.starts_with(&format!("not promoted: no baseline of {SUPPORT_AGENT} in ")),
        "{message}"
    );
}

#[test]
fn help_lists_promote_and_still_fits_80x24() {
    let (mut console, _events) = enforced_console(Vec::new());
    console.press(KeyCode::Char('?'));
    console.resize(80, 24);
    let screen = console.screen();
    assert!(
        screen.contains("P         promote audit → enforce"),
        "{screen}"
    );
    // The last entry and the mouse line are still on screen.
    assert!(screen.contains("q, ctrl-c quit"), "{screen}");
    assert!(screen.contains("Mouse: click selects"), "{screen}");
}
