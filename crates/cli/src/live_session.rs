//! A live run for the commands that report at its end (`coverage`, `aibom`, `posture`): the
//! collector and identity resolver started, every event through the one session step
//! ([`Session`]) and into the command's sink, until `--duration` ends or SIGINT/SIGTERM, then
//! the ring buffer drained; recorded when asked (`aibom --record`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use agentscope_capture::capture::RecorderOptions;
use agentscope_console::control_chars::escape_controls;
use agentscope_event::EventBody;
use agentscope_identity::declared_objects::{DeclaredObjectsWatch, SNAPSHOT_INTERVAL};
use agentscope_identity::IdentityResolver;
use agentscope_kernel::collector::collector_made_event;
use agentscope_kernel::Collector;
use agentscope_session::recorder_sink::RecorderSink;
use agentscope_session::{Session, Sink, SourceLosses};

/// Events read from the ring buffer at a time.
const BATCH_EVENTS: usize = 1024;

/// Runs the collector until `--duration` ends (or SIGINT/SIGTERM), hands every step to `sink`
/// (`()` for none), and returns the session every event went through.
pub async fn collect(
    capture: &agentscope_session::CaptureArgs,
    memory: &agentscope_session::memory_args::MemoryArgs,
    duration: Option<f64>,
    ready_message: bool,
    sink: &mut impl Sink,
    record: Option<&Path>,
) -> anyhow::Result<Session> {
    let mut collector = Collector::start(capture.collector_options())?;
    let mut identity = IdentityResolver::new(capture.identity_options());
    identity.start().await?;
    // The declared side of posture, as `collect` reads it (docs/posture.md).
    let mut declared = identity.kube_client().map(|client| {
        DeclaredObjectsWatch::start(client, Some(identity.node_name()), SNAPSHOT_INTERVAL)
    });
    let pipeline = capture.live_pipeline(memory.bytes(), identity, collector.processes().clone());
    let mut session = Session::new(pipeline);
    // The recording of this run (`--record`): the same events and identity answers the
    // report is made from, so a replay of it gives the same report.
    let mut recorder = match record {
        Some(path) => {
            let metadata = capture.recording_metadata(
                format!("agentscope {}", env!("CARGO_PKG_VERSION")),
                memory.bytes(),
            );
            let recorder =
                RecorderSink::start(RecorderOptions::new(path.to_path_buf(), metadata), &session)
                    .with_context(|| format!("cannot record to {}", path.display()))?;
            if let Some(file) = recorder.current_path() {
                collector.mark_output_file(file);
            }
            Some(recorder)
        }
        None => None,
    };
    let mut sink = (sink, &mut recorder);
    if ready_message {
        eprintln!("agentscope: collecting");
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs_f64(duration.unwrap_or(0.0).max(0.0));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        tokio::select! {
            batch = collector.next_batch(BATCH_EVENTS) => {
                for event in batch? {
                    session.feed_into(&event, &mut sink)?;
                }
                collector.mute_sockets(session.take_opaque_sockets());
                // As in `collect`: let timers and signals be seen under a full ring buffer.
                tokio::task::yield_now().await;
            }
            Some(objects) = DeclaredObjectsWatch::next_of(&mut declared) => {
                let event = collector_made_event(EventBody::ClusterObjects(Box::new(objects)));
                session.feed_into(&event, &mut sink)?;
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    collector.stop_emitting();
    let until = std::time::Instant::now() + Duration::from_millis(200);
    loop {
        let (events, emptied) = collector.drain_until(BATCH_EVENTS, until);
        for event in events {
            session.feed_into(&event, &mut sink)?;
        }
        if emptied || std::time::Instant::now() >= until {
            break;
        }
    }
    // Whose payloads the kernel left out, for the processes still running.
    for event in collector.left_out_at_stop() {
        session.feed_into(&event, &mut sink)?;
    }
    collector.discard_rest(Duration::from_millis(100));
    let summary = collector.summary();
    session.note_losses_into(
        SourceLosses {
            kernel_dropped: summary.kernel.dropped,
            channel_dropped: 0,
            decode_errors: summary.decode_errors,
        },
        &mut sink,
    )?;
    session.finish_into(&mut sink)?;
    if let Some(recorder) = recorder.as_mut() {
        for message in recorder.take_messages() {
            eprintln!("agentscope: {}", escape_controls(&message));
        }
        if let Some(mut on_disk) = recorder.take_on_disk() {
            on_disk.wait_until(None)?;
        }
    }
    let declared_warnings = declared.iter().flat_map(DeclaredObjectsWatch::warnings);
    for warning in summary.warnings.into_iter().chain(declared_warnings) {
        eprintln!("agentscope: warning: {}", escape_controls(&warning));
    }
    collector.close();
    Ok(session)
}
