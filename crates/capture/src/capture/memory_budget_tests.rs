//! The memory budget across a recording: eviction is part of the pipeline, so a replay cuts
//! where the live run did.

/// A flood of 16 incomplete uploads (4 MiB sent of 9 MiB announced), then a real agent session: enough to put a 4 MiB
/// budget under pressure.
fn flood_then_session() -> Vec<crate::event::Event> {
    use crate::event::{Direction, EventBody, PayloadSource};
    let session = super::tests::fixture_events();
    let template = session
        .iter()
        .find(|e| matches!(e.body, EventBody::Data { .. }))
        .expect("the fixture has payloads")
        .clone();
    let start_ts = session
        .first()
        .map_or(1, |e| e.header.ts_ns)
        .saturating_sub(1_000_000_000);
    let mut events = Vec::new();
    let mut call_id = 1u64 << 40;
    let mut push = |events: &mut Vec<crate::event::Event>, fd: i32, data: Vec<u8>| {
        let mut event = template.clone();
        event.header.ts_ns = start_ts + events.len() as u64;
        call_id += 1;
        event.body = EventBody::whole_call(
            PayloadSource::Socket,
            Direction::Egress,
            fd,
            0,
            call_id,
            data,
        );
        events.push(event);
    };
    for fd in 1000..1016 {
        push(
            &mut events,
            fd,
            format!(
                "POST /upload HTTP/1.1\r\nHost: victim\r\nContent-Length: {}\r\n\r\n",
                9 << 20
            )
            .into_bytes(),
        );
    }
    for _ in 0..(4 << 20) / (16 << 10) {
        for fd in 1000..1016 {
            push(&mut events, fd, vec![b'x'; 16 << 10]);
        }
    }
    events.extend(session);
    events
}

/// Eviction is part of the pipeline, so a replay of a capture cuts exactly where the live run
/// did: the budget travels in the capture's header.
#[test]
fn a_replay_cuts_and_evicts_exactly_where_the_live_run_did() {
    use crate::capture::{CaptureReader, Recorder, RecorderOptions, Replay};
    use crate::model::ModelOptions;
    use crate::pipeline::Pipeline;
    use crate::reconstruct::ReconstructOptions;

    let budget = 4 << 20;
    let events = flood_then_session();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.cap");
    let mut metadata = super::tests::metadata();
    metadata.memory_budget_bytes = budget;
    let mut live = Pipeline::new(
        ReconstructOptions {
            memory_budget: budget,
            ..ReconstructOptions::default()
        },
        ModelOptions::default(),
        Box::new(super::tests::ClusterIdentity),
    );
    let mut recorder =
        Recorder::start(RecorderOptions::new(path.clone(), metadata), &mut live).unwrap();
    for event in &events {
        live.push(event);
        recorder.record(event, &mut live).unwrap();
    }
    live.finish();
    recorder.finish(&mut live).unwrap();
    let live_snapshot = live.snapshot();
    let memory = live_snapshot.stats.memory.clone().unwrap();
    assert!(memory.bodies_truncated >= 16, "{memory:?}");
    assert!(memory.peak_held_bytes <= memory.budget_bytes, "{memory:?}");
    assert!(
        live_snapshot.stats.llm_calls > 0,
        "the session after the flood is still reconstructed"
    );

    let mut replay = Replay::new(CaptureReader::open(&path).unwrap());
    replay.run_to_end();
    assert_eq!(
        serde_json::to_string(&replay.pipeline().snapshot()).unwrap(),
        serde_json::to_string(&live_snapshot).unwrap(),
        "replay equals live, evictions and counters included"
    );

    // The budget is what decides: replayed with a larger one, nothing is cut.
    let mut roomy = Replay::new(CaptureReader::open(&path).unwrap()).with_memory_budget(1 << 30);
    roomy.run_to_end();
    let roomy_memory = roomy.pipeline().snapshot().stats.memory.unwrap();
    assert!(!roomy_memory.pressured(), "{roomy_memory:?}");
}
