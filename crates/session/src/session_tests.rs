//! The session's step over events the collector captured: identity answers handed out with
//! the step that caused them (a recording made from the steps replays to the live model),
//! and losses told to detection once (a baseline learning through a loss carries it).

use std::path::Path;

use agentscope_analysis::baseline::LearnerOptions;
use agentscope_analysis::detect::DetectorOptions;
use agentscope_analysis::model::{ActorIdentity, IdentityLookup, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::{CaptureMetadata, RecorderOptions, Replay};
use agentscope_event::event_json::events_from_json_lines;
use agentscope_event::Event;
use agentscope_reconstruct::ReconstructOptions;

use crate::recorder_sink::RecorderSink;
use crate::step::{Losses, SourceLosses};
use crate::Session;

/// Kubernetes-shaped answers a replay cannot make up: they must come from the recording.
struct PodIdentity;

impl IdentityLookup for PodIdentity {
    fn lookup(&mut self, pid: u32, _cgroup_id: u64, uid: u32) -> ActorIdentity {
        ActorIdentity {
            workload: "k8s:support/Deployment/triage/main".into(),
            uid,
            pod: Some(format!("support/triage-{pid}")),
            ..Default::default()
        }
    }
}

fn fixture() -> Vec<Event> {
    let path = Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures/capture/python_chat.jsonl");
    events_from_json_lines(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn pipeline() -> Pipeline {
    Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(PodIdentity),
    )
}

fn metadata() -> CaptureMetadata {
    CaptureMetadata {
        secrets_redacted: true,
        model_max_nodes: ModelOptions::default().max_nodes,
        model_max_edges: ModelOptions::default().max_edges,
        ..Default::default()
    }
}

#[test]
fn a_recording_fed_by_steps_replays_to_the_live_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steps.cap");
    let mut session = Session::new(pipeline());
    let mut recorder =
        RecorderSink::start(RecorderOptions::new(path.clone(), metadata()), &session).unwrap();
    let mut answers = 0;
    for event in fixture() {
        answers += session
            .feed_into(&event, &mut recorder)
            .unwrap()
            .identity_answers
            .len();
    }
    answers += session
        .finish_into(&mut recorder)
        .unwrap()
        .identity_answers
        .len();
    assert!(answers > 0, "the agent's identity was looked up");
    let messages = recorder.take_messages();
    assert!(
        messages.iter().any(|m| m.starts_with("recorded ")),
        "{messages:?}"
    );

    let mut replay = Replay::open(&path).unwrap();
    replay.run_to_end();
    let live = serde_json::to_value(session.pipeline().snapshot()).unwrap();
    let replayed = serde_json::to_value(replay.pipeline().snapshot()).unwrap();
    assert_eq!(live["agents"], replayed["agents"]);
    assert_eq!(live["graph"], replayed["graph"]);
    assert!(
        replayed.to_string().contains("support/triage-"),
        "identities came from the recording"
    );
}

#[test]
fn losses_reach_detection_once_and_make_the_learning_baseline_carry_them() {
    let mut session = Session::new(pipeline().with_detection(DetectorOptions {
        learner: LearnerOptions::default().with_learning_period_seconds(3600),
        approved: Vec::new(),
        ..Default::default()
    }));
    let events = fixture();
    let (first, rest) = events.split_at(events.len() / 2);
    for event in first {
        session.feed(event);
    }
    let agent = session
        .pipeline()
        .detector()
        .learner()
        .agents()
        .next()
        .expect("the agent is learning by half-way")
        .to_string();
    let step = session.note_losses(SourceLosses {
        kernel_dropped: 5,
        channel_dropped: 2,
        decode_errors: 1,
    });
    assert_eq!(
        step.losses,
        Losses {
            kernel_dropped: 5,
            channel_dropped: 2,
            decode_errors: 1,
            ..Losses::default()
        }
    );
    // Running totals: the same totals again are nothing new.
    let again = session.note_losses(SourceLosses {
        kernel_dropped: 5,
        channel_dropped: 2,
        decode_errors: 1,
    });
    assert!(again.losses.is_empty(), "{:?}", again.losses);
    for event in rest {
        session.feed(event);
    }
    session.finish();
    let baseline = session
        .pipeline()
        .detector()
        .learner()
        .baseline(&agent)
        .unwrap();
    assert_eq!(baseline.metadata.loss.dropped_events, 8);
    assert_eq!(session.losses().events_lost(), 8);
}
