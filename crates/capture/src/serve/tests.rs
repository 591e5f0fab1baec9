//! The stream server over real Unix sockets in a temporary directory: consoles attaching
//! midway rebuild the collector's model, a console that stops reading loses chunks (counted
//! and told) while the collector and the other consoles go on, and the socket's file and
//! peer checks.

use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::sync::mpsc;

use super::*;
use crate::capture::codec::Entry;
use crate::capture::stream_pipeline;
use crate::capture::tests::{cluster_objects_event, fixture_events, metadata, pipeline};

const DEADLINE: Duration = Duration::from_secs(30);

fn options(path: PathBuf) -> ServeOptions {
    let mut options = ServeOptions::new(path, metadata());
    options.status_interval = Duration::from_millis(100);
    options
}

/// Ticks `server` until `done()` holds; fails the test after the deadline.
fn tick_until(
    server: &mut StreamServer,
    pipeline: &Pipeline,
    mut done: impl FnMut(&StreamServer) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    while !done(server) {
        assert!(Instant::now() < deadline, "timed out");
        server.tick(Instant::now(), pipeline, CollectorCounters::default());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a console read until the stream ended.
struct Watched {
    model: String,
    events: usize,
    statuses: Vec<StreamStatus>,
    keyframes_after_start: usize,
    /// The declared objects the console's pipeline holds at the end.
    cluster_objects: Option<crate::pipeline::TimedClusterObjects>,
}

/// Attaches and reads the stream the way the console does, until it ends.
fn watch(path: PathBuf) -> Watched {
    let Attached {
        header,
        keyframe,
        mut stream,
        mut decoder,
    } = attach(&path, DEADLINE).unwrap();
    let mut pipeline = stream_pipeline(&header, &keyframe);
    let mut watched = Watched {
        model: String::new(),
        events: 0,
        statuses: Vec::new(),
        keyframes_after_start: 0,
        cluster_objects: None,
    };
    let mut buf = vec![0u8; 4096];
    'read: loop {
        while let Some(item) = decoder.next_item().unwrap() {
            match item {
                StreamItem::Events { entries, .. } => {
                    for entry in entries {
                        match entry {
                            Entry::Event(event) => {
                                pipeline.push(&event);
                                watched.events += 1;
                            }
                            Entry::Identity(answer) => pipeline.remember_identity(answer),
                        }
                    }
                }
                StreamItem::Keyframe { keyframe, .. } => {
                    watched.keyframes_after_start += 1;
                    for answer in keyframe.pipeline.identities {
                        pipeline.remember_identity(answer);
                    }
                    if let Some(last) = keyframe.pipeline.cluster_objects {
                        pipeline.remember_cluster_objects(last);
                    }
                }
                StreamItem::Status(status) => {
                    let closing = status.closing.is_some();
                    watched.statuses.push(status);
                    if closing {
                        break 'read;
                    }
                }
                StreamItem::Header(_) => panic!("one header"),
            }
        }
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        decoder.push(&buf[..n]);
    }
    pipeline.finish();
    watched.model = serde_json::to_string_pretty(&pipeline.snapshot()).unwrap();
    watched.cluster_objects = pipeline.last_cluster_objects().cloned();
    watched
}

fn feed(
    server: &mut StreamServer,
    live: &mut Pipeline,
    events: &[Event],
    tick_every: usize,
    mut pace: impl FnMut(&mut StreamServer, &Pipeline),
) {
    for (i, event) in events.iter().enumerate() {
        live.push(event);
        let answers = live.take_identity_answers();
        server.publish(event, &answers);
        if i % tick_every == 0 {
            server.tick(Instant::now(), live, CollectorCounters::default());
            pace(server, live);
        }
    }
}

fn finish(mut server: StreamServer, live: &mut Pipeline) {
    server.tick(Instant::now(), live, CollectorCounters::default());
    live.finish();
    let answers = live.take_identity_answers();
    let counters = CollectorCounters {
        received: 12345,
        kernel_dropped: 7,
        ..Default::default()
    };
    server.finish(&answers, counters, "the collector stopped");
}

#[test]
fn a_console_attaching_midway_rebuilds_the_model_from_the_stream_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.sock");
    let mut events = fixture_events();
    // The collector read the cluster's objects before the console attached.
    events.insert(0, cluster_objects_event(&events));
    let (before, after) = events.split_at(events.len() / 3);
    let mut live = pipeline();
    for event in before {
        live.push(event);
    }
    let mut server = StreamServer::bind(options(path.clone()), &mut live).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    let console = {
        let path = path.clone();
        std::thread::spawn(move || watch(path))
    };
    tick_until(&mut server, &live, |s| s.clients().len() == 1);
    // The console starts from the state at its keyframe, answering identity from the stream;
    // the reference asks the live identity source itself.
    let mut reference = pipeline();
    reference.restore(live.state());
    for event in after {
        reference.push(event);
    }
    reference.finish();
    feed(&mut server, &mut live, after, 10, |_, _| {});
    assert_eq!(server.clients()[0].dropped_events, 0);
    let messages = server.take_messages();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("console attached: uid")),
        "{messages:?}"
    );
    finish(server, &mut live);
    assert!(!path.exists(), "the socket file is removed at the end");

    let watched = console.join().unwrap();
    assert_eq!(watched.events, after.len());
    let reference = serde_json::to_string_pretty(&reference.snapshot()).unwrap();
    assert!(
        reference.contains("k8s:shop/Deployment/agent-"),
        "{reference}"
    );
    assert_eq!(watched.model, reference);
    let last = watched.statuses.last().unwrap();
    assert_eq!(last.closing.as_deref(), Some("the collector stopped"));
    assert_eq!(last.collector.kernel_dropped, 7);
    assert_eq!(last.dropped_events, 0);
    assert_eq!(watched.keyframes_after_start, 0);
    assert!(
        watched.cluster_objects.is_some(),
        "from the attach keyframe"
    );
    assert_eq!(
        watched.cluster_objects.as_ref(),
        live.last_cluster_objects()
    );
}

#[test]
fn a_console_that_stops_reading_loses_chunks_while_the_collector_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.sock");
    let events = fixture_events();
    let mut volume = Vec::new();
    for _ in 0..80 {
        volume.extend_from_slice(&events);
    }
    // Read from the cluster halfway, while the stalled console's queue is full: the chunk
    // holding it is dropped for that console, and the keyframe after makes up for it.
    let mut declared = cluster_objects_event(&volume[volume.len() / 2..]);
    declared.header.time_unix_ns += 1;
    volume.insert(volume.len() / 2, declared);
    let total = volume.len();
    let (done_tx, done_rx) = mpsc::channel();
    let (read_tx, read_rx) = mpsc::channel::<()>();
    let (stalled_tx, stalled_rx) = mpsc::channel();
    // The collector side runs in its own thread so a server that blocked fails the test
    // at the deadline instead of hanging it.
    let collector = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut live = pipeline();
            let mut opts = options(path.clone());
            opts.queue_bytes = 64 << 10;
            let mut server = StreamServer::bind(opts, &mut live).unwrap();
            let keeping_up = {
                let path = path.clone();
                std::thread::spawn(move || watch(path))
            };
            tick_until(&mut server, &live, |s| s.clients().len() == 1);
            // The stalled console connects and reads nothing until told to.
            let stalled = {
                let path = path.clone();
                std::thread::spawn(move || {
                    let stream = UnixStream::connect(&path).unwrap();
                    read_rx.recv().unwrap();
                    let mut attached = handshake(stream, "stalled", DEADLINE).unwrap();
                    let mut max_dropped = 0;
                    let mut keyframes = 0;
                    let mut declared_in_keyframe = false;
                    let mut buf = vec![0u8; 65536];
                    'read: loop {
                        while let Some(item) = attached.decoder.next_item().unwrap() {
                            match item {
                                StreamItem::Status(status) => {
                                    max_dropped = max_dropped.max(status.dropped_events);
                                    if status.closing.is_some() {
                                        break 'read;
                                    }
                                }
                                StreamItem::Keyframe { keyframe, .. } => {
                                    keyframes += 1;
                                    declared_in_keyframe |=
                                        keyframe.pipeline.cluster_objects.is_some();
                                }
                                _ => {}
                            }
                        }
                        let n = attached.stream.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        attached.decoder.push(&buf[..n]);
                    }
                    stalled_tx
                        .send((max_dropped, keyframes, declared_in_keyframe))
                        .unwrap();
                })
            };
            tick_until(&mut server, &live, |s| s.clients().len() == 2);
            // Fast, but not faster than the reading console (clients()[0]) reads: it has to
            // keep up in a debug build on a loaded machine too.
            feed(&mut server, &mut live, &volume, 50, |server, live| {
                tick_until(server, live, |s| s.clients()[0].queued_bytes == 0)
            });
            // The stalled console now reads: it learns what it lost and gets a keyframe.
            read_tx.send(()).unwrap();
            let deadline = Instant::now() + DEADLINE;
            while server.clients().iter().any(|c| c.queued_bytes > 0) {
                assert!(Instant::now() < deadline, "queues never drained");
                server.tick(Instant::now(), &live, CollectorCounters::default());
                std::thread::sleep(Duration::from_millis(20));
            }
            // Two status intervals: one for the keyframe, one for a status after it.
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(110));
                server.tick(Instant::now(), &live, CollectorCounters::default());
            }
            // The last chunk went out at the first tick after feeding: count from here.
            let dropped: Vec<u64> = server.clients().iter().map(|c| c.dropped_events).collect();
            finish(server, &mut live);
            stalled.join().unwrap();
            done_tx
                .send((dropped, keeping_up.join().unwrap().events))
                .unwrap();
        })
    };
    let (dropped, kept_up_events) = done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server blocked on a console that does not read");
    collector.join().unwrap();
    let (stalled_dropped, stalled_keyframes, declared_in_keyframe) = stalled_rx.recv().unwrap();
    assert_eq!(kept_up_events, total, "the reading console lost nothing");
    assert!(dropped.contains(&0), "{dropped:?}");
    let lost = dropped.iter().copied().max().unwrap();
    assert!(
        lost > 0 && lost < total as u64,
        "the stalled console lost some: {dropped:?}"
    );
    assert_eq!(stalled_dropped, lost, "and was told exactly how many");
    assert!(
        stalled_keyframes >= 1,
        "with a keyframe to make up identities"
    );
    assert!(
        declared_in_keyframe,
        "and the cluster objects a dropped chunk held"
    );
}

#[test]
fn stale_sockets_are_replaced_other_files_and_live_sockets_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.sock");
    std::fs::write(&path, b"notes").unwrap();
    let err = StreamServer::bind(options(path.clone()), &mut pipeline())
        .err()
        .unwrap();
    assert!(matches!(err, ServeError::NotASocket(_)), "{err}");
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"notes");

    std::fs::remove_file(&path).unwrap();
    drop(UnixListener::bind(&path).unwrap());
    let stale = attach(&path, DEADLINE).unwrap_err();
    assert!(matches!(stale, AttachError::NotListening(_)), "{stale}");
    let server = StreamServer::bind(options(path.clone()), &mut pipeline()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    let err = StreamServer::bind(options(path.clone()), &mut pipeline())
        .err()
        .unwrap();
    assert!(matches!(err, ServeError::InUse(_)), "{err}");
    drop(server);
    assert!(!path.exists());
    let missing = attach(&path, DEADLINE).unwrap_err();
    assert!(matches!(missing, AttachError::Missing(_)), "{missing}");
    assert!(missing.to_string().contains("agentscope collect --serve"));

    let mut unknown = options(dir.path().join("other.sock"));
    unknown.group = Some("no-such-group-agentscope".into());
    let err = StreamServer::bind(unknown, &mut pipeline()).err().unwrap();
    assert!(matches!(err, ServeError::UnknownGroup(_)), "{err}");
}

#[test]
fn the_permission_hint_names_the_sockets_group_and_never_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hint.sock");
    let _server = StreamServer::bind(options(path.clone()), &mut pipeline()).unwrap();
    // Group root (the group of most directories a collector serves from): the fix is on the
    // collector's side, not "join group root".
    std::os::unix::fs::chown(&path, None, Some(0)).unwrap();
    let hint = permission_hint(&path);
    assert!(!hint.contains("usermod -aG root"), "{hint}");
    assert!(hint.contains("--serve-group GROUP"), "{hint}");
    assert!(hint.contains("--serve-allow-uid"), "{hint}");
    // Any other group: that group, by name.
    std::os::unix::fs::chown(&path, None, Some(4242)).unwrap();
    let hint = permission_hint(&path);
    let name = group_name(4242);
    assert!(
        hint.contains(&format!("usermod -aG {name} $USER")),
        "{hint}"
    );
    // A directory the console cannot enter: the socket's group is not the problem.
    let closed = dir.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    let hidden = closed.join("x.sock");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
    let hint = if nix::unistd::geteuid().is_root() {
        // Root enters anyway: the socket is simply missing.
        permission_hint(&dir.path().join("missing/x.sock"))
    } else {
        permission_hint(&hidden)
    };
    assert!(hint.contains("is not open to you"), "{hint}");
    let err = AttachError::PermissionDenied {
        path: "s.sock".into(),
        hint,
    };
    assert!(err
        .to_string()
        .starts_with("permission denied on s.sock: its directory"));
}

#[test]
fn peers_outside_the_policy_are_refused_and_told_why() {
    let policy = PeerPolicy {
        server_uid: 0,
        gid: 4242,
        group_name: "agentscope".into(),
        allow_uids: vec![1001],
    };
    let peer = |uid, gid| Peer { pid: 1, uid, gid };
    assert!(policy.check(&peer(0, 0), &[]).is_ok());
    assert!(policy.check(&peer(1001, 1001), &[]).is_ok());
    assert!(
        policy.check(&peer(1002, 4242), &[]).is_ok(),
        "primary group"
    );
    assert!(
        policy.check(&peer(1002, 1002), &[27, 4242]).is_ok(),
        "supplementary group"
    );
    let why = policy.check(&peer(65534, 65534), &[100]).unwrap_err();
    assert!(why.contains("uid 65534"), "{why}");
    assert!(why.contains("group agentscope (gid 4242)"), "{why}");

    let (server_end, console_end) = UnixStream::pair().unwrap();
    refuse(server_end, &why);
    let err = handshake(console_end, "test.sock", DEADLINE).unwrap_err();
    assert!(matches!(err, AttachError::Refused { .. }), "{err}");
    assert!(
        err.to_string().contains("refused this console: uid 65534"),
        "{err}"
    );
}

#[test]
fn a_peer_that_is_not_a_collector_gives_a_clear_error() {
    let (mut other, console_end) = UnixStream::pair().unwrap();
    use std::io::Write as _;
    other.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
    let err = handshake(console_end, "test.sock", DEADLINE).unwrap_err();
    assert!(
        err.to_string().contains("not an agentscope collector"),
        "{err}"
    );

    let (other, console_end) = UnixStream::pair().unwrap();
    drop(other);
    let err = handshake(console_end, "test.sock", DEADLINE).unwrap_err();
    assert!(matches!(err, AttachError::Closed { .. }), "{err}");

    let (_silent, console_end) = UnixStream::pair().unwrap();
    let err = handshake(console_end, "test.sock", Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, AttachError::Timeout { .. }), "{err}");
}

#[test]
fn consoles_beyond_the_cap_are_refused_and_told_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capped.sock");
    let mut live = pipeline();
    let mut options = options(path.clone());
    options.max_consoles = 2;
    let mut server = StreamServer::bind(options, &mut live).unwrap();
    // Two consoles attach (their handshakes run while the collector ticks)...
    let consoles: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || attach(&path, DEADLINE).map(|a| a.stream))
        })
        .collect();
    tick_until(&mut server, &live, |s| s.clients().len() == 2);
    let attached: Vec<_> = consoles
        .into_iter()
        .map(|c| c.join().unwrap().expect("the first two are served"))
        .collect();
    // ...a third is refused with the reason, and no thread or queue is made for it.
    let third = {
        let path = path.clone();
        std::thread::spawn(move || attach(&path, DEADLINE))
    };
    let deadline = Instant::now() + DEADLINE;
    while !third.is_finished() {
        assert!(Instant::now() < deadline, "timed out");
        server.tick(Instant::now(), &live, CollectorCounters::default());
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = match third.join().unwrap() {
        Ok(_) => panic!("a third console was served past the cap"),
        Err(err) => err,
    };
    assert!(matches!(err, AttachError::Refused { .. }), "{err}");
    assert!(
        err.to_string().contains("2 consoles are attached already"),
        "{err}"
    );
    assert_eq!(server.clients().len(), 2);
    drop(attached);
    finish(server, &mut live);
}
