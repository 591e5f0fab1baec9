//! Serving a live collector to consoles over a Unix socket (`agentscope collect --serve`), and
//! attaching to one (`agentscope tui --connect`).
//!
//! The collector runs as root; the console need not. Each console gets what a recording
//! would hold (see [`crate::capture::stream`]): a header, a keyframe of the pipeline when it
//! attached, then event chunks with their identity answers, so it rebuilds the same model
//! without /proc or the Kubernetes API.
//!
//! The collector never waits for a console. Chunks are encoded once and queued for every
//! console; each console has its own writer thread and a queue bounded in bytes, and a chunk
//! that does not fit is dropped for that console only, counted, and reported to it in the
//! next status block (with a keyframe to make up the identity answers it missed).
//!
//! Access: the socket is created mode 0660, owned by the collector's user and a group
//! (`--serve-group`, default the group of its directory), in a private directory and renamed
//! into place, so it is never reachable with looser permissions. The kernel's permission
//! check is the first gate; the second is the peer's credentials (SO_PEERCRED): root, the
//! collector's own user, uids allowed explicitly, and members of the socket's group are
//! served, anyone else (a process with CAP_DAC_OVERRIDE, say) is told why and disconnected.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::capture::block::{self, block_type, ChunkHeader, FileHeader};
use crate::capture::{
    CaptureMetadata, CaptureWriter, CollectorCounters, Keyframe, StreamDecoder, StreamError,
    StreamItem, StreamStatus, WriterOptions,
};
use crate::event::Event;
use crate::model::IdentityAnswer;
use crate::pipeline::Pipeline;

/// Consoles served at once unless told otherwise (`--serve-max-consoles`).
pub const DEFAULT_MAX_CONSOLES: usize = 8;

/// Each console's queue: an equal part of the memory budget's console share (1/8 of the
/// budget), so all queues together stay within it.
pub fn console_queue_bytes(
    budget: &crate::memory_budget::MemoryBudget,
    max_consoles: usize,
) -> usize {
    (budget.console_share() / max_consoles.max(1)).max(256 << 10)
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub path: PathBuf,
    /// Group of the socket, by name or number (default: the group of its directory).
    pub group: Option<String>,
    /// Users served besides root, the collector's user and the socket group's members.
    pub allow_uids: Vec<u32>,
    /// Encoded bytes a console may have waiting before chunks are dropped for it.
    pub queue_bytes: usize,
    /// Consoles served at once (each has a writer thread and a queue); more are refused
    /// and told why.
    pub max_consoles: usize,
    /// How often consoles get the collector's counters (also how soon a console that went
    /// away is noticed when nothing else is sent).
    pub status_interval: Duration,
    /// What the stream's header says (pipeline options, capture filter).
    pub metadata: CaptureMetadata,
}

impl ServeOptions {
    pub fn new(path: PathBuf, metadata: CaptureMetadata) -> Self {
        Self {
            path,
            group: None,
            allow_uids: Vec::new(),
            queue_bytes: console_queue_bytes(
                &crate::memory_budget::MemoryBudget::default(),
                DEFAULT_MAX_CONSOLES,
            ),
            max_consoles: DEFAULT_MAX_CONSOLES,
            status_interval: Duration::from_secs(1),
            metadata,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0} exists and is not a socket: refusing to replace it (remove it, or serve on another path)")]
    NotASocket(PathBuf),
    #[error(
        "another collector is already serving on {0} (stop it first, or serve on another path)"
    )]
    InUse(PathBuf),
    #[error("no group named \"{0}\" (give --serve-group an existing group name or number)")]
    UnknownGroup(String),
    #[error("cannot serve on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Who is at the other end of a connection (SO_PEERCRED: as it was when it connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {} pid {}", self.uid, self.pid)
    }
}

/// Which peers are served.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    pub server_uid: u32,
    pub gid: u32,
    pub group_name: String,
    pub allow_uids: Vec<u32>,
}

impl PeerPolicy {
    /// `Ok` to serve `peer`, else why not. `groups` are the peer's supplementary groups.
    pub fn check(&self, peer: &Peer, groups: &[u32]) -> Result<(), String> {
        let allowed = peer.uid == 0
            || peer.uid == self.server_uid
            || self.allow_uids.contains(&peer.uid)
            || peer.gid == self.gid
            || groups.contains(&self.gid);
        if allowed {
            return Ok(());
        }
        Err(format!(
            "{peer} may not attach: it is not root, not the collector's user (uid {}), not in \
             group {} (gid {}) and not allowed with --serve-allow-uid",
            self.server_uid, self.group_name, self.gid
        ))
    }
}

/// A process's supplementary groups, from /proc (empty if it has gone).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn peer_of(stream: &UnixStream) -> std::io::Result<Peer> {
    let creds = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(std::io::Error::from)?;
    Ok(Peer {
        pid: creds.pid(),
        uid: creds.uid(),
        gid: creds.gid(),
    })
}

/// What a console is sent, encoded once and shared by every queue it goes to.
type Encoded = Arc<Vec<u8>>;

/// A console's queue of encoded blocks, bounded in bytes, drained by its writer thread.
struct ClientQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    limit: usize,
}

#[derive(Default)]
struct QueueState {
    blocks: VecDeque<Encoded>,
    bytes: usize,
    /// No more blocks will come: the writer ends once the queue is empty.
    closed: bool,
    /// The writer stopped (the console went away), and why.
    gone: Option<String>,
}

impl ClientQueue {
    fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A writer thread that panicked holding the lock leaves the data intact.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `block` unless it would exceed the limit (`force`: queue it anyway, for the
    /// small blocks that open and close a stream). False if it was not queued.
    fn push(&self, block: &Encoded, force: bool) -> bool {
        let mut state = self.lock();
        if state.gone.is_some() || state.closed {
            return false;
        }
        if !force && state.bytes + block.len() > self.limit {
            return false;
        }
        state.bytes += block.len();
        state.blocks.push_back(block.clone());
        self.ready.notify_one();
        true
    }

    fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The next block for the writer; `None` once closed and drained.
    fn pop(&self) -> Option<Encoded> {
        let mut state = self.lock();
        loop {
            if let Some(block) = state.blocks.pop_front() {
                state.bytes -= block.len();
                return Some(block);
            }
            if state.closed || state.gone.is_some() {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn set_gone(&self, why: String) {
        let mut state = self.lock();
        state.gone.get_or_insert(why);
        state.blocks.clear();
        state.bytes = 0;
        self.ready.notify_all();
    }

    fn gone(&self) -> Option<String> {
        self.lock().gone.clone()
    }
}

struct Client {
    peer: Peer,
    queue: Arc<ClientQueue>,
    /// Shut down to unblock a writer stuck on a console that stopped reading.
    socket: UnixStream,
    writer: Option<JoinHandle<()>>,
    dropped_events: u64,
    /// Chunks were dropped: the console lacks identity answers until it gets a keyframe.
    needs_keyframe: bool,
}

/// What the server knows about one attached console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStats {
    pub peer: Peer,
    pub dropped_events: u64,
    pub queued_bytes: usize,
}

/// Connections the accept thread has let in, waiting for the collector's next tick.
struct Shared {
    stop: AtomicBool,
    /// Consoles attached or waiting to be admitted, and how many may be.
    consoles: std::sync::atomic::AtomicUsize,
    max_consoles: usize,
    accepted: Mutex<Vec<(UnixStream, Peer)>>,
    messages: Mutex<Vec<String>>,
}

impl Shared {
    fn say(&self, message: String) {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }
}

pub struct StreamServer {
    options: ServeOptions,
    /// Device and inode of the socket file we made: only that file is removed at the end.
    socket_file: (u64, u64),
    start: Encoded,
    /// Event chunks, shared by every console.
    writer: CaptureWriter,
    /// Keyframes for one console at a time.
    keyframes: CaptureWriter,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    clients: Vec<Client>,
    counters: CollectorCounters,
    last_status: Instant,
    last_keyframe_resend: Instant,
    finished: bool,
}

impl StreamServer {
    /// Creates the socket (mode 0660) and starts accepting consoles. Turns on the logging of
    /// identity answers in `pipeline`: pass them to [`StreamServer::publish`].
    pub fn bind(options: ServeOptions, pipeline: &mut Pipeline) -> Result<Self, ServeError> {
        pipeline.log_identity_answers(true);
        Self::listen(options)
    }

    /// As [`StreamServer::bind`], for a caller that hands [`StreamServer::publish`] the
    /// identity answers itself (a session logs them always and hands them out with each step).
    pub fn listen(options: ServeOptions) -> Result<Self, ServeError> {
        let path = options.path.clone();
        let io = |source| ServeError::Io {
            path: path.clone(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(&path).is_ok() {
                    return Err(ServeError::InUse(path));
                }
                // A stale socket: the rename below replaces it.
            }
            Ok(_) => return Err(ServeError::NotASocket(path)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io(err)),
        }
        let (gid, group_name) =
            resolve_group(options.group.as_deref(), &dir).map_err(|e| match e {
                GroupError::Unknown(name) => ServeError::UnknownGroup(name),
                GroupError::Io(err) => io(err),
            })?;
        let server_uid = nix::unistd::geteuid().as_raw();
        let listener = bind_private(&path, &dir, server_uid, gid).map_err(io)?;
        let meta = std::fs::symlink_metadata(&path).map_err(io)?;
        let policy = PeerPolicy {
            server_uid,
            gid,
            group_name,
            allow_uids: options.allow_uids.clone(),
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            consoles: Default::default(),
            max_consoles: options.max_consoles.max(1),
            accepted: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("serve-accept".into())
                .spawn(move || accept_loop(listener, policy, shared))
                .map_err(io)?
        };
        let stream_writer = WriterOptions {
            chunk_bytes: 128 << 10,
            ..WriterOptions::default()
        };
        Ok(Self {
            start: Arc::new(CaptureWriter::stream_start(&FileHeader::new(
                options.metadata.clone(),
            ))),
            writer: CaptureWriter::in_memory(stream_writer.clone()).map_err(io)?,
            keyframes: CaptureWriter::in_memory(stream_writer).map_err(io)?,
            options,
            socket_file: (meta.dev(), meta.ino()),
            shared,
            acceptor: Some(acceptor),
            clients: Vec::new(),
            counters: CollectorCounters::default(),
            last_status: Instant::now(),
            last_keyframe_resend: Instant::now(),
            finished: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.options.path
    }

    pub fn clients(&self) -> Vec<ClientStats> {
        self.clients
            .iter()
            .map(|c| ClientStats {
                peer: c.peer,
                dropped_events: c.dropped_events,
                queued_bytes: c.queue.queued_bytes(),
            })
            .collect()
    }

    /// What happened since the last call (consoles attached, refused, gone), for the log.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .shared
                .messages
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Adds an event the pipeline has just been fed, after the identity answers feeding it
    /// produced. Cheap when no console is attached.
    pub fn publish(&mut self, event: &Event, answers: &[IdentityAnswer]) {
        if self.clients.is_empty() {
            return;
        }
        let written = answers
            .iter()
            .try_for_each(|answer| self.writer.write_identity(answer))
            .and_then(|()| self.writer.write_event(event));
        if let Err(err) = written {
            self.shared.say(format!("encoding an event failed: {err}"));
        }
        self.send_written();
    }

    /// Call every 100 ms or so: sends the open chunk, lets new consoles in (with a keyframe
    /// of `pipeline`), sends status blocks and notices consoles that went away.
    pub fn tick(&mut self, now: Instant, pipeline: &Pipeline, counters: CollectorCounters) {
        self.counters = counters;
        self.reap();
        self.flush();
        let accepted = std::mem::take(
            &mut *self
                .shared
                .accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if !accepted.is_empty() {
            self.admit(accepted, pipeline);
        }
        // Consoles that went away or could not be served free their places (counted under
        // the lock the accept thread takes, so none waiting is missed).
        {
            let waiting = self
                .shared
                .accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.shared
                .consoles
                .store(self.clients.len() + waiting.len(), Ordering::SeqCst);
        }
        if now.duration_since(self.last_keyframe_resend) >= self.options.status_interval {
            self.resend_keyframes(pipeline);
            self.last_keyframe_resend = now;
        }
        if now.duration_since(self.last_status) >= self.options.status_interval {
            for client in &self.clients {
                let status = Arc::new(self.status_for(client, None).encode_block());
                client.queue.push(&status, false);
            }
            self.last_status = now;
        }
    }

    /// Sends the identity answers the final flush of the pipeline produced, tells every
    /// console the stream ends and why, and waits (a little) for them to get it.
    pub fn finish(mut self, answers: &[IdentityAnswer], counters: CollectorCounters, why: &str) {
        self.counters = counters;
        if !self.clients.is_empty() {
            for answer in answers {
                let _ = self.writer.write_identity(answer);
            }
        }
        self.flush();
        for client in &self.clients {
            let status = Arc::new(self.status_for(client, Some(why)).encode_block());
            client.queue.push(&status, true);
            client.queue.close();
        }
        self.shutdown(Duration::from_secs(2));
    }

    fn status_for(&self, client: &Client, closing: Option<&str>) -> StreamStatus {
        StreamStatus {
            collector: self.counters,
            dropped_events: client.dropped_events,
            closing: closing.map(str::to_string),
            refused: false,
        }
    }

    fn flush(&mut self) {
        if self.writer.has_open_chunk() {
            if let Err(err) = self.writer.flush() {
                self.shared.say(format!("encoding a chunk failed: {err}"));
            }
            self.send_written();
        }
    }

    /// Queues what the shared writer has encoded for every console.
    fn send_written(&mut self) {
        let bytes = self.writer.take_bytes();
        if bytes.is_empty() {
            return;
        }
        let events = events_in(&bytes);
        let block = Arc::new(bytes);
        for client in &mut self.clients {
            if !client.queue.push(&block, false) {
                client.dropped_events += events;
                client.needs_keyframe = true;
            }
        }
    }

    fn admit(&mut self, accepted: Vec<(UnixStream, Peer)>, pipeline: &Pipeline) {
        let state = pipeline.state();
        if self.clients.is_empty() {
            // Nothing was encoded while nobody watched: number chunks from here.
            self.writer.set_next_event_index(state.next_event_index);
        }
        let keyframe = self.encode_keyframe(state);
        for (stream, peer) in accepted {
            let socket = match stream.try_clone() {
                Ok(socket) => socket,
                Err(err) => {
                    self.shared
                        .say(format!("console {peer} could not be served: {err}"));
                    continue;
                }
            };
            let queue = Arc::new(ClientQueue::new(self.options.queue_bytes));
            queue.push(&self.start, true);
            if let Some(keyframe) = &keyframe {
                queue.push(keyframe, true);
            }
            let writer = {
                let queue = queue.clone();
                std::thread::Builder::new()
                    .name("serve-client".into())
                    .spawn(move || write_loop(stream, &queue))
            };
            let writer = match writer {
                Ok(handle) => handle,
                Err(err) => {
                    self.shared
                        .say(format!("console {peer} could not be served: {err}"));
                    continue;
                }
            };
            self.shared.say(format!("console attached: {peer}"));
            self.clients.push(Client {
                peer,
                queue,
                socket,
                writer: Some(writer),
                dropped_events: 0,
                needs_keyframe: false,
            });
        }
    }

    fn encode_keyframe(&mut self, state: crate::pipeline::PipelineState) -> Option<Encoded> {
        let time_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let keyframe = Keyframe {
            pipeline: state,
            collector: self.counters,
        };
        match self.keyframes.write_keyframe(&keyframe, time_unix_ns) {
            Ok(()) => Some(Arc::new(self.keyframes.take_bytes())),
            Err(err) => {
                self.shared
                    .say(format!("encoding a keyframe failed: {err}"));
                None
            }
        }
    }

    /// Consoles that lost chunks get a keyframe once their queue has room again: its identity
    /// answers stand in for the ones they missed.
    fn resend_keyframes(&mut self, pipeline: &Pipeline) {
        let due: Vec<usize> = (0..self.clients.len())
            .filter(|&i| {
                let client = &self.clients[i];
                client.needs_keyframe && client.queue.queued_bytes() < self.options.queue_bytes / 2
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let Some(keyframe) = self.encode_keyframe(pipeline.state()) else {
            return;
        };
        for i in due {
            let client = &mut self.clients[i];
            if client.queue.push(&keyframe, false) {
                client.needs_keyframe = false;
            }
        }
    }

    /// Forgets consoles whose writer stopped.
    fn reap(&mut self) {
        let shared = &self.shared;
        self.clients.retain_mut(|client| {
            let Some(why) = client.queue.gone() else {
                return true;
            };
            shared.say(format!(
                "console detached: {} ({why}; {} events dropped for it)",
                client.peer, client.dropped_events
            ));
            if let Some(writer) = client.writer.take() {
                let _ = writer.join();
            }
            false
        });
    }

    /// Stops accepting, gives writers `grace` to deliver what is queued, then cuts off the
    /// consoles that are not reading and removes the socket file.
    fn shutdown(&mut self, grace: Duration) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept thread; it sees `stop` and ends.
        let _ = UnixStream::connect(&self.options.path);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for client in &self.clients {
            client.queue.close();
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && self
                .clients
                .iter()
                .any(|c| c.writer.as_ref().is_some_and(|w| !w.is_finished()))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for client in &mut self.clients {
            let _ = client.socket.shutdown(std::net::Shutdown::Both);
            client.queue.set_gone("the collector stopped".into());
            if let Some(writer) = client.writer.take() {
                let _ = writer.join();
            }
        }
        self.clients.clear();
        if let Ok(meta) = std::fs::symlink_metadata(&self.options.path) {
            if (meta.dev(), meta.ino()) == self.socket_file {
                let _ = std::fs::remove_file(&self.options.path);
            }
        }
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

/// Events in the events blocks of `bytes` (whole blocks the writer produced).
fn events_in(bytes: &[u8]) -> u64 {
    let mut at = 0usize;
    let mut events = 0u64;
    while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
        let Ok(len) = block::declared_len(rest) else {
            break;
        };
        if block::u32_at(rest, 0) == Some(block_type::EVENTS) {
            if let Some(body) = rest.get(8..len.saturating_sub(8)) {
                if let Ok((header, _)) = ChunkHeader::decode(body) {
                    events += header.event_count as u64;
                }
            }
        }
        at += len;
    }
    events
}

enum GroupError {
    Unknown(String),
    Io(std::io::Error),
}

/// The socket's group: `--serve-group` (a name or a number), else the directory's.
fn resolve_group(group: Option<&str>, dir: &Path) -> Result<(u32, String), GroupError> {
    let gid = match group {
        Some(text) => match text.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => nix::unistd::Group::from_name(text)
                .map_err(|e| GroupError::Io(e.into()))?
                .ok_or_else(|| GroupError::Unknown(text.to_string()))?
                .gid
                .as_raw(),
        },
        None => std::fs::metadata(dir).map_err(GroupError::Io)?.gid(),
    };
    Ok((gid, group_name(gid)))
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// Binds the socket in a private directory beside `path`, sets its mode and owner, and
/// renames it into place (replacing a stale socket): no one can connect before the
/// permissions are right.
fn bind_private(path: &Path, dir: &Path, uid: u32, gid: u32) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    let private = dir.join(format!(".agentscope-serve-{}", std::process::id()));
    // Left over from a collector with the same pid that was killed: ours now.
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let result = (|| {
        let temporary = private.join("s");
        let listener = UnixListener::bind(&temporary)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o660))?;
        std::os::unix::fs::chown(&temporary, Some(uid), Some(gid))?;
        std::fs::rename(&temporary, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

fn accept_loop(listener: UnixListener, policy: PeerPolicy, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                shared.say(format!("accepting a console failed: {err}"));
                // Out of descriptors, say: do not spin.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let peer = match peer_of(&stream) {
            Ok(peer) => peer,
            Err(err) => {
                shared.say(format!(
                    "refused a console whose credentials could not be read: {err}"
                ));
                continue;
            }
        };
        match policy.check(&peer, &supplementary_groups(peer.pid)) {
            Ok(()) if shared.consoles.load(Ordering::SeqCst) >= shared.max_consoles => {
                let why = format!(
                    "{} consoles are attached already, the most this collector serves \
                     (--serve-max-consoles); detach one and try again",
                    shared.max_consoles
                );
                shared.say(format!("refused console {peer}: {why}"));
                refuse(stream, &why);
            }
            Ok(()) => {
                let mut waiting = shared.accepted.lock().unwrap_or_else(|e| e.into_inner());
                shared.consoles.fetch_add(1, Ordering::SeqCst);
                waiting.push((stream, peer));
            }
            Err(why) => {
                shared.say(format!("refused a console: {why}"));
                refuse(stream, &why);
            }
        }
    }
}

/// Tells a refused peer why, briefly: a peer that does not read must not hold up the
/// accept thread.
fn refuse(mut stream: UnixStream, why: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let mut bytes = block::MAGIC.to_vec();
    bytes.extend_from_slice(
        &StreamStatus {
            closing: Some(why.to_string()),
            refused: true,
            ..Default::default()
        }
        .encode_block(),
    );
    let _ = stream.write_all(&bytes);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn write_loop(mut stream: UnixStream, queue: &ClientQueue) {
    while let Some(block) = queue.pop() {
        if let Err(err) = stream.write_all(&block) {
            let why = match err.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    "it closed the connection".to_string()
                }
                _ => err.to_string(),
            };
            queue.set_gone(why);
            return;
        }
    }
    queue.set_gone("the stream ended".into());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

// ---- the console's side ----

/// Why a console could not attach.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no collector is serving on {0}: start one with `sudo agentscope collect --serve {0}`, or check the path")]
    Missing(String),
    #[error("permission denied on {path}: {hint}")]
    PermissionDenied { path: String, hint: String },
    #[error("nothing is listening on {0}: the collector that made this socket has stopped")]
    NotListening(String),
    #[error("the collector on {path} refused this console: {why}")]
    Refused { path: String, why: String },
    #[error("the collector on {path} did not send its state within {secs} s")]
    Timeout { path: String, secs: u64 },
    #[error("the collector on {path} closed the connection before sending its state{}", .why.as_deref().map(|w| format!(" ({w})")).unwrap_or_default())]
    Closed { path: String, why: Option<String> },
    #[error("{path}: {source}")]
    Stream { path: String, source: StreamError },
    #[error("cannot connect to {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A console attached to a collector: the stream's header and opening keyframe, the socket,
/// and the decoder holding whatever arrived after them.
pub struct Attached {
    pub header: FileHeader,
    pub keyframe: Keyframe,
    pub stream: UnixStream,
    pub decoder: StreamDecoder,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Connects to `path` and reads the header and opening keyframe, waiting at most `timeout`.
pub fn attach(path: &Path, timeout: Duration) -> Result<Attached, AttachError> {
    let name = path.display().to_string();
    let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => AttachError::Missing(name.clone()),
        std::io::ErrorKind::PermissionDenied => AttachError::PermissionDenied {
            path: name.clone(),
            hint: permission_hint(path),
        },
        std::io::ErrorKind::ConnectionRefused => AttachError::NotListening(name.clone()),
        _ => AttachError::Io {
            path: name.clone(),
            source,
        },
    })?;
    handshake(stream, &name, timeout)
}

/// What a console refused by the socket's file permissions can do, from the socket's group.
/// Joining group root would be a hint to give away root's files: for a socket of group root
/// the fix is on the collector's side (`--serve-group`, `--serve-allow-uid`).
pub fn permission_hint(path: &Path) -> String {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(_) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            return format!(
                "its directory {} is not open to you: serve the socket from a directory \
                 consoles may enter, or run the console as root",
                dir.display()
            );
        }
    };
    let uid = nix::unistd::getuid().as_raw();
    if meta.gid() == 0 {
        return format!(
            "the socket belongs to group root (it takes the group of its directory); restart \
             the collector with `--serve-group GROUP` for a group of console users (for \
             example `sudo groupadd agentscope && sudo usermod -aG agentscope $USER`) or with \
             `--serve-allow-uid {uid}`, or run the console as root"
        );
    }
    let group = group_name(meta.gid());
    let in_group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .zip(
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten(),
        )
        .is_some_and(|(g, user)| g.mem.contains(&user.name));
    if in_group {
        // In /etc/group, but not in this session's groups.
        return format!(
            "the socket belongs to group {group}, which you joined after logging in: log in \
             again (or run `newgrp {group}`), or run the console as root"
        );
    }
    format!(
        "the socket belongs to group {group}: join it (`sudo usermod -aG {group} $USER`, then \
         log in again), ask for `--serve-allow-uid {uid}` on the collector, or run the console \
         as root"
    )
}

/// Reads a stream's header and opening keyframe from a connected socket.
pub fn handshake(
    mut stream: UnixStream,
    name: &str,
    timeout: Duration,
) -> Result<Attached, AttachError> {
    let name = name.to_string();
    let deadline = Instant::now() + timeout;
    let mut decoder = StreamDecoder::new();
    let mut header = None;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        while let Some(item) = decoder.next_item().map_err(|source| AttachError::Stream {
            path: name.clone(),
            source,
        })? {
            match item {
                StreamItem::Header(h) => header = Some(h),
                StreamItem::Keyframe { keyframe, .. } => {
                    if let Some(header) = header.take() {
                        let _ = stream.set_read_timeout(None);
                        return Ok(Attached {
                            header,
                            keyframe: *keyframe,
                            stream,
                            decoder,
                        });
                    }
                }
                StreamItem::Status(status) if status.refused || status.closing.is_some() => {
                    let why = status.closing.unwrap_or_default();
                    return Err(if status.refused {
                        AttachError::Refused { path: name, why }
                    } else {
                        AttachError::Closed {
                            path: name,
                            why: Some(why),
                        }
                    });
                }
                StreamItem::Status(_) | StreamItem::Events { .. } => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AttachError::Timeout {
                path: name,
                secs: timeout.as_secs().max(1),
            });
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(AttachError::Closed {
                    path: name,
                    why: None,
                })
            }
            Ok(n) => decoder.push(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(AttachError::Io { path: name, source }),
        }
    }
}

#[cfg(test)]
mod tests;
