//! A live [`Source`] attached to a collector serving on a Unix socket (`agentscope collect
//! --serve SOCKET`, then `agentscope tui --connect SOCKET`): the console runs unprivileged
//! beside a root collector.
//!
//! The stream carries what a recording would (docs/capture-format.md): the pipeline restored
//! from the keyframe sent on attach, then events with the identity answers the collector got,
//! so this side needs neither /proc nor the Kubernetes API and builds the collector's model.
//!
//! A reader thread reads the socket, decodes whole blocks (decompression included) and hands
//! them over a bounded channel; [`Source::poll`] only takes what is there. If the console
//! falls behind, the channel fills, the reader stops reading, the socket backs up and the
//! collector drops chunks for this console, counts them and says so: the status line shows
//! drops rather than the console lagging further and further behind.

use std::collections::VecDeque;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::codec::Entry;
use agentscope_capture::capture::{stream_pipeline, CollectorCounters, StreamDecoder, StreamItem};
use agentscope_capture::serve::{attach, Attached};
use agentscope_session::{Session, SourceLosses};

use super::source::{
    ControlError, ControlResult, RecordingState, Source, SourceMode, SourceStatus, SourceUpdate,
};

/// Decoded blocks waiting for the console (each at most one chunk of events).
const CHANNEL_BLOCKS: usize = 64;

/// What the reader thread hands over.
enum Incoming {
    Item(StreamItem),
    /// The stream ended without the collector saying why.
    Ended(String),
}

pub struct RemoteSource {
    path: PathBuf,
    /// Events from the stream go through the session's step; the collector's drops and the
    /// ones it made for this console reach detection through it.
    session: Session,
    incoming: Receiver<Incoming>,
    /// Entries of the chunk being fed.
    pending: VecDeque<Entry>,
    events: u64,
    collector: CollectorCounters,
    /// Events the collector dropped for this console (it read too slowly).
    dropped_for_us: u64,
    /// Why the collector is gone, once it is.
    disconnected: Option<String>,
    rate_window: Instant,
    rate_count: u64,
    rate: f64,
    /// `--baseline-store kubernetes`: approvals from the cluster reach the session.
    approved_watch: Option<crate::approved_watch::ApprovedWatch>,
}

impl RemoteSource {
    /// Attaches to the collector serving on `path`, waiting at most `timeout` for its state.
    pub fn connect(path: &Path, timeout: Duration) -> anyhow::Result<Self> {
        let attached = attach(path, timeout)?;
        Ok(Self::from_attached(path, attached))
    }

    fn from_attached(path: &Path, attached: Attached) -> Self {
        let Attached {
            header,
            keyframe,
            stream,
            decoder,
        } = attached;
        let mut session = Session::new(stream_pipeline(&header, &keyframe));
        session.set_collector_counters(keyframe.collector);
        let (sender, incoming) = sync_channel(CHANNEL_BLOCKS);
        // The thread ends when the stream does or when this source is dropped (its sends
        // fail); it is not joined, so dropping the source never waits on the socket.
        let _ = std::thread::Builder::new()
            .name("remote-reader".into())
            .spawn(move || read_loop(stream, decoder, &sender));
        Self {
            path: path.to_path_buf(),
            session,
            incoming,
            pending: VecDeque::new(),
            events: 0,
            collector: keyframe.collector,
            dropped_for_us: 0,
            disconnected: None,
            rate_window: Instant::now(),
            rate_count: 0,
            rate: 0.0,
            approved_watch: None,
        }
    }

    /// Detection with these options (approved baselines from `--baseline DIR`) in the
    /// console's own pipeline.
    /// Judges agents against the cluster's approved AgentBaselines as they arrive.
    pub fn with_approved_watch(mut self, watch: crate::approved_watch::ApprovedWatch) -> Self {
        self.approved_watch = Some(watch);
        self
    }

    pub fn with_detection(mut self, options: agentscope_analysis::detect::DetectorOptions) -> Self {
        self.session.set_detection(options);
        self
    }

    /// Why the collector went away, if it has.
    pub fn disconnected(&self) -> Option<&str> {
        self.disconnected.as_deref()
    }

    fn disconnect(&mut self, why: String, update: &mut SourceUpdate) {
        if self.disconnected.is_some() {
            return;
        }
        // Exchanges still open will not be completed: show them, flagged, as a recording's
        // end does.
        update
            .observations
            .extend(self.session.finish().observations);
        update.message = Some(format!("collector disconnected: {why}"));
        self.disconnected = Some(why);
    }

    fn take(&mut self, incoming: Incoming, update: &mut SourceUpdate) {
        match incoming {
            Incoming::Item(StreamItem::Events { entries, .. }) => self.pending.extend(entries),
            Incoming::Item(StreamItem::Keyframe { keyframe, .. }) => {
                // Sent after chunks were dropped for us: its identity answers make up for the
                // ones those chunks held.
                for answer in keyframe.pipeline.identities {
                    self.session.remember_identity(answer);
                }
                // And its declared objects for the ones a dropped `cluster_objects` held.
                if let Some(last) = keyframe.pipeline.cluster_objects {
                    self.session.remember_cluster_objects(last);
                }
                self.collector = keyframe.collector;
            }
            Incoming::Item(StreamItem::Status(status)) => {
                self.collector = status.collector;
                self.dropped_for_us = status.dropped_events;
                if let Some(why) = status.closing {
                    self.disconnect(why, update);
                }
            }
            Incoming::Item(StreamItem::Header(_)) => {}
            Incoming::Ended(why) => self.disconnect(why, update),
        }
    }

    fn status(&self) -> SourceStatus {
        let label = match &self.disconnected {
            Some(_) => format!("{} (collector disconnected)", self.path.display()),
            None => self.path.display().to_string(),
        };
        SourceStatus {
            label,
            mode: SourceMode::Live,
            events: self.events,
            events_per_sec: self.rate,
            drops: self.dropped_for_us + self.collector.kernel_dropped,
            recording: RecordingState::Unavailable,
        }
    }

    fn count(&mut self, fed: u64) {
        self.rate_count += fed;
        let elapsed = self.rate_window.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.rate = self.rate_count as f64 / elapsed.as_secs_f64();
            self.rate_count = 0;
            self.rate_window = Instant::now();
        }
    }
}

fn read_loop(
    mut stream: std::os::unix::net::UnixStream,
    mut decoder: StreamDecoder,
    sender: &SyncSender<Incoming>,
) {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        loop {
            match decoder.next_item() {
                Ok(Some(item)) => {
                    if sender.send(Incoming::Item(item)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    let _ = sender.send(Incoming::Ended(err.to_string()));
                    return;
                }
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                let _ = sender.send(Incoming::Ended(
                    "the collector closed the connection".into(),
                ));
                return;
            }
            Ok(n) => decoder.push(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                let _ = sender.send(Incoming::Ended(format!("reading the socket failed: {err}")));
                return;
            }
        }
    }
}

impl Source for RemoteSource {
    fn poll(&mut self, max_events: usize) -> SourceUpdate {
        if let Some(watch) = &mut self.approved_watch {
            watch.apply(&mut self.session);
        }
        let mut update = SourceUpdate::default();
        let mut fed = 0;
        while fed < max_events {
            match self.pending.pop_front() {
                Some(Entry::Event(event)) => {
                    update
                        .observations
                        .extend(self.session.feed(&event).observations);
                    fed += 1;
                }
                Some(Entry::Identity(answer)) => self.session.remember_identity(answer),
                None => match self.incoming.try_recv() {
                    Ok(incoming) => self.take(incoming, &mut update),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        if self.disconnected.is_none() {
                            self.disconnect("the reader stopped".into(), &mut update);
                        }
                        break;
                    }
                },
            }
        }
        self.events += fed as u64;
        self.count(fed as u64);
        // What the collector lost, and what it dropped for this console, make baselines
        // learning here partial, as they do on the collector's side.
        self.session.set_collector_counters(self.collector);
        let losses = self.session.note_losses(SourceLosses {
            kernel_dropped: self.collector.kernel_dropped,
            channel_dropped: self.dropped_for_us,
            decode_errors: self.collector.decode_errors,
        });
        update.observations.extend(losses.observations);
        update.status = self.status();
        update
    }

    fn pipeline(&self) -> &Pipeline {
        self.session.pipeline()
    }

    fn toggle_recording(&mut self) -> ControlResult {
        Err(ControlError::Unsupported(
            "a remote console does not record: record on the collector (`agentscope collect \
             --serve SOCKET --record FILE.cap`)"
                .into(),
        ))
    }
}

/// What a headless attach saw (`agentscope tui --connect SOCKET --headless-graph FILE`).
#[derive(Debug, serde::Serialize)]
pub struct HeadlessSummary {
    pub events: u64,
    pub observations: u64,
    /// Events the collector dropped for this client.
    pub dropped_for_us: u64,
    pub collector: CollectorCounters,
    pub disconnected: Option<String>,
}

/// Feeds `source` the way the console does, without a terminal, until the collector goes
/// away or `duration` passes; then writes the model (docs/graph.md) to `graph_json`.
pub fn run_headless(
    mut source: RemoteSource,
    duration: Option<Duration>,
    graph_json: &Path,
) -> anyhow::Result<HeadlessSummary> {
    let deadline = duration.map(|d| Instant::now() + d);
    let mut observations = 0u64;
    loop {
        let before = source.events;
        let update = source.poll(super::DEFAULT_EVENTS_PER_TICK);
        // What a process did before it became an agent's comes out twice; count it once.
        observations += update.observations.iter().filter(|o| !o.earlier).count() as u64;
        if source.disconnected().is_some() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if source.events == before && update.observations.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let rest = source.session.finish();
    observations += rest.observations.iter().filter(|o| !o.earlier).count() as u64;
    let json = serde_json::to_vec_pretty(&source.session.pipeline().snapshot())?;
    agentscope_files::output_file::write_atomically(
        graph_json,
        &agentscope_files::output_file::Inputs::none(),
        &json,
    )
    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", graph_json.display()))?;
    Ok(HeadlessSummary {
        events: source.events,
        observations,
        dropped_for_us: source.dropped_for_us,
        collector: source.collector,
        disconnected: source.disconnected.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentscope_analysis::model::{ActorIdentity, IdentityLookup, ModelOptions};
    use agentscope_capture::capture::CaptureMetadata;
    use agentscope_capture::serve::{ServeOptions, StreamServer};
    use agentscope_event::event_json::events_from_json_lines;
    use agentscope_reconstruct::ReconstructOptions;

    /// Kubernetes-shaped answers the console cannot get itself: they must come through the
    /// stream.
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

    fn fixture() -> Vec<agentscope_event::Event> {
        let path =
            Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures/capture/python_chat.jsonl");
        events_from_json_lines(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn live_pipeline() -> Pipeline {
        Pipeline::new(
            ReconstructOptions::default(),
            ModelOptions::default(),
            Box::new(PodIdentity),
        )
    }

    fn metadata() -> CaptureMetadata {
        CaptureMetadata {
            model_max_nodes: ModelOptions::default().max_nodes,
            model_max_edges: ModelOptions::default().max_edges,
            ..Default::default()
        }
    }

    #[test]
    fn the_console_follows_a_served_collector_and_stays_up_when_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.sock");
        let mut live = live_pipeline();
        let mut server =
            StreamServer::bind(ServeOptions::new(path.clone(), metadata()), &mut live).unwrap();
        let connecting = {
            let path = path.clone();
            std::thread::spawn(move || RemoteSource::connect(&path, Duration::from_secs(30)))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.clients().is_empty() {
            assert!(Instant::now() < deadline, "the console never attached");
            server.tick(Instant::now(), &live, CollectorCounters::default());
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut source = connecting.join().unwrap().unwrap();
        let events = fixture();
        for event in &events {
            live.push(event);
            let answers = live.take_identity_answers();
            server.publish(event, &answers);
        }
        server.tick(Instant::now(), &live, CollectorCounters::default());

        // Polls are bounded and never wait: feed in steps of 10 until everything is in.
        let mut observations = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while source.events < events.len() as u64 {
            assert!(Instant::now() < deadline, "events never arrived");
            let before = source.events;
            let update = source.poll(10);
            assert!(source.events - before <= 10);
            assert_eq!(update.status.mode, SourceMode::Live);
            assert_eq!(update.status.label, path.display().to_string());
            observations.extend(update.observations);
        }
        assert!(
            observations.iter().any(|o| o
                .agent
                .as_deref()
                .is_some_and(|k| k.starts_with("k8s:support/"))),
            "observations attributed to the agent, with the identity from the stream"
        );

        live.finish();
        let answers = live.take_identity_answers();
        let counters = CollectorCounters {
            received: 9,
            kernel_dropped: 3,
            ..Default::default()
        };
        server.finish(&answers, counters, "the collector stopped");
        let deadline = Instant::now() + Duration::from_secs(30);
        let message = loop {
            assert!(
                Instant::now() < deadline,
                "the disconnect was never noticed"
            );
            let update = source.poll(1000);
            if let Some(message) = update.message {
                assert!(update.status.label.ends_with("(collector disconnected)"));
                assert_eq!(update.status.drops, 3, "the collector's losses are shown");
                break message;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(message, "collector disconnected: the collector stopped");
        // The console keeps what it has and polls on quietly.
        let update = source.poll(1000);
        assert!(update.message.is_none());
        let model = serde_json::to_string(&source.pipeline().snapshot()).unwrap();
        let live_model = serde_json::to_string(&live.snapshot()).unwrap();
        assert_eq!(model, live_model, "the console's model is the collector's");
        assert!(source.toggle_recording().is_err());
    }
}
