//! The live console's collector: the eBPF programs and the ring-buffer reader on a thread of
//! their own, handing decoded events to the console over a bounded channel.
//!
//! The two sides never wait for each other. The console drains the channel with `try_recv`
//! once a frame; the collector thread puts events in with `try_send` and, when the console
//! has fallen behind and the channel is full, counts the event as dropped instead of waiting
//! (waiting would let the kernel ring buffer fill and lose events there, with less said about
//! it). The thread also runs the tokio runtime the Kubernetes pod watcher of the identity
//! resolver lives on; the resolver itself is handed to the console, whose pipeline asks it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use agentscope_capture::capture::CollectorCounters;
use agentscope_event::process_table::ProcessTable;
use agentscope_event::{Event, EventBody};
use agentscope_identity::declared_objects::{DeclaredObjectsWatch, SNAPSHOT_INTERVAL};
use agentscope_identity::{IdentityOptions, IdentityResolver};
use agentscope_kernel::collector::collector_made_event;
use agentscope_kernel::{Collector, CollectorOptions, Summary};
use agentscope_session::CaptureArgs;
use anyhow::Context as _;
use clap::Args;

/// Events the channel between the collector thread and the console holds. At 30 frames a
/// second the console drains up to `max_events_per_tick` (20,000) a frame, so this covers
/// bursts of about half a second; payload events are at most a few KiB each.
pub const DEFAULT_CHANNEL_EVENTS: usize = 16_384;

/// How often the collector thread publishes the kernel's loss counters.
const COUNTERS_INTERVAL: Duration = Duration::from_millis(250);

/// Events read from the ring buffer at a time.
const BATCH_EVENTS: usize = 4096;

/// `agentscope tui` options for the live console: `agentscope collect`'s capture options, with
/// the same meaning, and where `r` writes recordings.
#[derive(Args, Debug, Clone, Default)]
pub struct LiveArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Live: where `r` writes recordings (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<PathBuf>,
}

impl LiveArgs {
    /// Whether any option that only means something live was given.
    pub fn any_given(&self) -> bool {
        self.capture.any_given() || self.record_dir.is_some()
    }
}

/// What the collector thread and the console both count, readable without locks.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Records read from the ring buffer.
    pub received: AtomicU64,
    /// Records the kernel dropped for lack of ring-buffer space.
    pub kernel_dropped: AtomicU64,
    pub kernel_lost_bytes: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Events the collector thread dropped because the console's channel was full.
    pub channel_dropped: AtomicU64,
}

impl LiveCounters {
    fn publish(&self, summary: &Summary) {
        self.received.store(summary.received, Ordering::Relaxed);
        self.kernel_dropped
            .store(summary.kernel.dropped, Ordering::Relaxed);
        self.kernel_lost_bytes
            .store(summary.kernel.lost_bytes, Ordering::Relaxed);
        self.decode_errors
            .store(summary.decode_errors, Ordering::Relaxed);
    }

    /// Everything lost before the pipeline: in the kernel and in the channel.
    pub fn drops(&self) -> u64 {
        self.kernel_dropped
            .load(Ordering::Relaxed)
            .saturating_add(self.channel_dropped.load(Ordering::Relaxed))
    }

    /// The counters a recording stores with its keyframes.
    pub fn collector_counters(&self) -> CollectorCounters {
        CollectorCounters {
            received: self.received.load(Ordering::Relaxed),
            kernel_dropped: self.kernel_dropped.load(Ordering::Relaxed),
            kernel_lost_bytes: self.kernel_lost_bytes.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
        }
    }
}

/// The collector thread's end of the channel: never waits for the console.
pub struct EventSender {
    events: SyncSender<Event>,
    counters: Arc<LiveCounters>,
}

impl EventSender {
    /// A channel of `capacity` events; the receiver goes to the console.
    pub fn channel(capacity: usize, counters: Arc<LiveCounters>) -> (Self, Receiver<Event>) {
        let (events, receiver) = std::sync::mpsc::sync_channel(capacity.max(1));
        (Self { events, counters }, receiver)
    }

    /// Hands `event` to the console, or counts it dropped when the channel is full. `false`
    /// once the console has gone.
    pub fn send(&self, event: Event) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters
                    .channel_dropped
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Hands the `pending` event to the console, or leaves it there when the channel is full
    /// (for an event sent once that a burst must not lose: the cluster's declared objects).
    /// `false` once the console has gone.
    pub fn send_or_keep(&self, pending: &mut Option<Event>) -> bool {
        let Some(event) = pending.take() else {
            return true;
        };
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(event)) => {
                *pending = Some(event);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// What the console needs from a started collector: the process table it seeded from /proc
/// (the pipeline starts from it, as `agentscope collect`'s does), the identity resolver, and
/// the events.
pub struct CollectorStart {
    pub processes: ProcessTable,
    pub identity: IdentityResolver,
    pub events: Receiver<Event>,
}

/// The running collector thread. Dropping it stops the thread and detaches the programs.
pub struct LiveCollector {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<LiveCounters>,
    /// Why the thread stopped on its own, and the collector's warnings (TLS probes that
    /// failed, ...), for the status line.
    notices: Arc<Mutex<Vec<String>>>,
    /// Opaque sockets the console's pipeline found, for the thread to tell the kernel
    /// (`Collector::mute_sockets`).
    mutes: Arc<Mutex<Vec<agentscope_event::SocketRef>>>,
}

/// What the console and the collector thread leave each other besides events and counters.
struct Mailboxes {
    /// From the thread: why it stopped, the collector's warnings.
    notices: Arc<Mutex<Vec<String>>>,
    /// To the thread: opaque sockets to mute.
    mutes: Arc<Mutex<Vec<agentscope_event::SocketRef>>>,
}

/// Opaque sockets waiting for the collector thread at most; more are not muted (copied on).
const MAX_PENDING_MUTES: usize = 4096;

impl LiveCollector {
    /// Loads the programs and starts reading. Waits until the probes are attached (or failed
    /// to attach), so an error comes back here, before the console takes the terminal.
    pub fn start(
        collector: CollectorOptions,
        identity: IdentityOptions,
        channel_events: usize,
    ) -> anyhow::Result<(Self, CollectorStart)> {
        let counters = Arc::new(LiveCounters::default());
        let notices = Arc::new(Mutex::new(Vec::new()));
        let mutes = Arc::new(Mutex::new(Vec::new()));
        let (sender, events) = EventSender::channel(channel_events, counters.clone());
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread_counters = counters.clone();
        let mailboxes = Mailboxes {
            notices: notices.clone(),
            mutes: mutes.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("agentscope-collector".into())
            .spawn(move || {
                run_collector_thread(
                    collector,
                    identity,
                    sender,
                    started_tx,
                    stop_rx,
                    thread_counters,
                    mailboxes,
                )
            })
            .context("cannot start the collector thread")?;
        let started: Result<(ProcessTable, IdentityResolver), String> = started_rx
            .recv()
            .unwrap_or_else(|_| Err("the collector thread ended before starting".into()));
        match started {
            Ok((processes, identity)) => Ok((
                Self {
                    stop: Some(stop_tx),
                    thread: Some(thread),
                    counters,
                    notices,
                    mutes,
                },
                CollectorStart {
                    processes,
                    identity,
                    events,
                },
            )),
            Err(err) => {
                let _ = thread.join();
                Err(anyhow::anyhow!(err))
            }
        }
    }

    pub fn counters(&self) -> Arc<LiveCounters> {
        self.counters.clone()
    }

    /// Asks the collector thread to stop the kernel copying these opaque sockets
    /// (`Session::take_opaque_sockets`).
    pub fn mute_sockets(&self, sockets: Vec<agentscope_event::SocketRef>) {
        if sockets.is_empty() {
            return;
        }
        if let Ok(mut pending) = self.mutes.lock() {
            let room = MAX_PENDING_MUTES.saturating_sub(pending.len());
            pending.extend(sockets.into_iter().take(room));
        }
    }

    /// Notices from the collector thread since the last call.
    pub fn take_notices(&self) -> Vec<String> {
        self.notices
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}

impl Drop for LiveCollector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Started = Result<(ProcessTable, IdentityResolver), String>;

fn run_collector_thread(
    options: CollectorOptions,
    identity_options: IdentityOptions,
    sender: EventSender,
    started: SyncSender<Started>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    counters: Arc<LiveCounters>,
    mailboxes: Mailboxes,
) {
    let Mailboxes { notices, mutes } = mailboxes;
    let take_mutes = || {
        mutes
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = started.send(Err(format!("cannot start the collector's runtime: {err}")));
            return;
        }
    };
    let notice = |text: String| {
        if let Ok(mut list) = notices.lock() {
            list.push(text);
        }
    };
    runtime.block_on(async {
        let mut collector = match Collector::start(options) {
            Ok(collector) => collector,
            Err(err) => {
                let _ = started.send(Err(format!(
                    "the live console cannot start the collector: {err}. Without root, open a \
                     recording instead: `agentscope tui --replay FILE.cap` (or attach to a \
                     running collector with --connect SOCKET)"
                )));
                return;
            }
        };
        let mut identity = IdentityResolver::new(identity_options);
        if let Err(err) = identity.start().await {
            let _ = started.send(Err(format!("pod identity: {err}")));
            return;
        }
        // The declared side of posture for the posture pane (and `r`'s recordings), as
        // `agentscope collect` reads it.
        let mut declared = identity.kube_client().map(|client| {
            DeclaredObjectsWatch::start(client, Some(identity.node_name()), SNAPSHOT_INTERVAL)
        });
        let mut declared_warned = 0;
        // A snapshot the channel had no room for, tried again on each publish tick (the
        // watch sends a snapshot only once, when the objects changed).
        let mut declared_pending: Option<Event> = None;
        let processes = collector.processes().clone();
        if started.send(Ok((processes, identity))).is_err() {
            return;
        }
        let mut publish = tokio::time::interval(COUNTERS_INTERVAL);
        let mut warned = 0;
        loop {
            tokio::select! {
                batch = collector.next_batch(BATCH_EVENTS) => match batch {
                    Ok(events) => {
                        for event in events {
                            if !sender.send(event) {
                                return;
                            }
                        }
                        collector.mute_sockets(take_mutes());
                        // Let tokio see the stop request and timers even when the ring buffer
                        // never empties (it only does when the task yields).
                        tokio::task::yield_now().await;
                    }
                    Err(err) => {
                        notice(format!("the collector stopped: {err}"));
                        return;
                    }
                },
                Some(objects) = DeclaredObjectsWatch::next_of(&mut declared) => {
                    declared_pending = Some(collector_made_event(EventBody::ClusterObjects(
                        Box::new(objects),
                    )));
                    if !sender.send_or_keep(&mut declared_pending) {
                        return;
                    }
                }
                _ = publish.tick() => {
                    if !sender.send_or_keep(&mut declared_pending) {
                        return;
                    }
                    collector.mute_sockets(take_mutes());
                    let summary = collector.summary();
                    counters.publish(&summary);
                    for warning in summary.warnings.iter().skip(warned) {
                        notice(warning.clone());
                    }
                    warned = summary.warnings.len();
                    let declared_warnings: Vec<String> =
                        declared.iter().flat_map(DeclaredObjectsWatch::warnings).collect();
                    for warning in declared_warnings.iter().skip(declared_warned) {
                        notice(warning.clone());
                    }
                    declared_warned = declared_warnings.len();
                }
                _ = &mut stop => {
                    // Nothing more is emitted, and the kernel's slow unloading (seconds) is
                    // left to a child, so the console quits at once.
                    collector.stop_emitting();
                    collector.close();
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentscope_event::event_json::events_from_json_lines;

    fn event() -> Event {
        let line = r#"{"schema_version":1,"ts_ns":1,"time_unix_ns":2,"pid":0,"tid":0,"ppid":0,"uid":0,"gid":0,"cgroup_id":0,"comm":"","kind":"cluster_objects","objects":[],"counts":{},"truncated":false,"bytes":2}"#;
        events_from_json_lines(line).unwrap().remove(0)
    }

    #[test]
    fn an_event_kept_when_the_channel_is_full_goes_once_there_is_room() {
        let counters = Arc::new(LiveCounters::default());
        let (sender, receiver) = EventSender::channel(1, counters.clone());
        assert!(sender.send(event()));
        let mut pending = Some(event());
        assert!(sender.send_or_keep(&mut pending));
        assert!(pending.is_some(), "the full channel took it");
        assert_eq!(counters.channel_dropped.load(Ordering::Relaxed), 0);
        receiver.recv().unwrap();
        assert!(sender.send_or_keep(&mut pending));
        assert!(pending.is_none());
        assert!(matches!(
            receiver.recv().unwrap().body,
            EventBody::ClusterObjects(_)
        ));
        drop(receiver);
        let mut pending = Some(event());
        assert!(!sender.send_or_keep(&mut pending));
    }
}
