//! Capture tests over events the real collector captured (tests/fixtures): record
//! through the pipeline, read back, replay, and damage the file in every way a disk, a crash
//! or a copy can.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::block::{block_type, CaptureMetadata};
use super::codec::Entry;
use super::reader::{CaptureReader, IndexSource};
use super::recorder::{Recorder, RecorderOptions};
use super::replay::Replay;
use super::writer::WriterOptions;
use crate::event::Event;
use crate::event_json::events_from_json_lines;
use crate::model::{ActorIdentity, IdentityLookup, ModelOptions};
use crate::pipeline::Pipeline;
use crate::reconstruct::ReconstructOptions;

/// Answers like a Kubernetes node would, and counts its lookups: a replay that asked it (or
/// that did not use the recorded answers) would show different workloads.
pub(crate) struct ClusterIdentity;

impl IdentityLookup for ClusterIdentity {
    fn lookup(&mut self, pid: u32, _cgroup_id: u64, uid: u32) -> ActorIdentity {
        ActorIdentity {
            workload: format!("k8s:shop/Deployment/agent-{}/main", pid % 3),
            uid,
            pod: Some(format!("shop/agent-{pid}")),
            service_account: Some("shop/support".into()),
            ..Default::default()
        }
    }
}

pub(crate) fn fixture_events() -> Vec<Event> {
    let dir = Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures");
    let mut events = Vec::new();
    for file in [
        "capture/python_chat.jsonl",
        "mcp/http-socket-events.jsonl",
        "postgres/simple_query.jsonl",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        events.extend(events_from_json_lines(&text).unwrap());
    }
    events
}

pub(crate) fn pipeline() -> Pipeline {
    Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(ClusterIdentity),
    )
}

pub(crate) fn metadata() -> CaptureMetadata {
    CaptureMetadata {
        created_by: "agentscope test".into(),
        secrets_redacted: true,
        model_max_nodes: ModelOptions::default().max_nodes,
        model_max_edges: ModelOptions::default().max_edges,
        ..Default::default()
    }
}

/// Small chunks and frequent keyframes, so a short capture has many blocks.
fn small_blocks(path: PathBuf) -> RecorderOptions {
    let mut options = RecorderOptions::new(path, metadata());
    options.writer = WriterOptions {
        chunk_bytes: 4096,
        ..WriterOptions::default()
    };
    options.keyframe_interval_ns = 200_000_000;
    options
}

/// Feeds the events through a pipeline while recording; returns the graph JSON.
fn record(events: &[Event], options: RecorderOptions) -> String {
    let mut pipeline = pipeline();
    let mut recorder = Recorder::start(options, &mut pipeline).unwrap();
    for event in events {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    pipeline.finish();
    recorder.finish(&mut pipeline).unwrap();
    serde_json::to_string_pretty(&pipeline.snapshot()).unwrap()
}

fn replay_json(reader: CaptureReader) -> String {
    let mut replay = Replay::new(reader);
    replay.run_to_end();
    serde_json::to_string_pretty(&replay.pipeline().snapshot()).unwrap()
}

fn events_in(reader: &CaptureReader) -> Vec<Event> {
    reader
        .event_blocks()
        .flat_map(|b| reader.read_events(b).1)
        .filter_map(|e| match e {
            Entry::Event(event) => Some(event),
            _ => None,
        })
        .collect()
}

#[test]
fn replay_reproduces_the_live_model_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.cap");
    let events = fixture_events();
    let live = record(&events, small_blocks(path.clone()));
    let reader = CaptureReader::open(&path).unwrap();
    assert_eq!(reader.index_source(), IndexSource::Trailer);
    assert!(reader.verify().is_empty(), "{:?}", reader.verify());
    assert_eq!(events_in(&reader), events, "raw events read back unchanged");
    assert!(
        live.contains("k8s:shop/Deployment/agent-"),
        "identity in the model"
    );
    let model: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert!(model["stats"]["llm_calls"].as_u64().unwrap() >= 1, "{live}");
    assert!(
        model["stats"]["tool_calls"].as_u64().unwrap() >= 1,
        "{live}"
    );
    let replayed = replay_json(reader);
    assert_eq!(replayed, live);
}

#[test]
fn files_are_private_and_identity_answers_are_recorded() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.cap");
    std::fs::write(&path, b"older file, world readable").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    record(&fixture_events(), small_blocks(path.clone()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let reader = CaptureReader::open(&path).unwrap();
    let answers = reader
        .event_blocks()
        .flat_map(|b| reader.read_events(b).1)
        .filter(|e| matches!(e, Entry::Identity(_)))
        .count();
    assert!(answers >= 1, "the agent's identity lookup is in the file");
}

/// Damage tests use a capture without frequent keyframes so event blocks dominate.
fn damaged_fixture(dir: &Path) -> (Vec<u8>, Vec<super::block::BlockInfo>, usize) {
    let path = dir.join("base.cap");
    let events = fixture_events();
    let mut options = small_blocks(path.clone());
    options.keyframe_interval_ns = u64::MAX;
    record(&events, options);
    let bytes = std::fs::read(&path).unwrap();
    let reader = CaptureReader::open(&path).unwrap();
    let blocks = reader.blocks().to_vec();
    assert!(
        blocks.len() > 10,
        "enough blocks to damage: {}",
        blocks.len()
    );
    (bytes, blocks, events.len())
}

fn event_count(reader: &CaptureReader) -> usize {
    events_in(reader).len()
}

#[test]
fn truncation_at_every_block_boundary_and_mid_block_keeps_every_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, blocks, total) = damaged_fixture(dir.path());
    let events_before = |end: u64| -> usize {
        blocks
            .iter()
            .filter(|b| b.offset + b.len as u64 <= end)
            .map(|b| b.event_count as usize)
            .sum()
    };
    for (i, block) in blocks.iter().enumerate() {
        for cut in [
            block.offset,
            block.offset + block.len as u64 / 2,
            block.offset + 9,
        ] {
            let reader =
                CaptureReader::from_bytes("cut.cap", bytes[..cut as usize].to_vec()).unwrap();
            assert_eq!(reader.index_source(), IndexSource::Scan);
            assert_eq!(event_count(&reader), events_before(cut), "cut at {cut}");
            let damage = reader.verify();
            if cut == block.offset {
                assert!(
                    damage.iter().all(|d| d.what.contains("no index trailer")),
                    "a cut between blocks is not damage: {damage:?}"
                );
            } else {
                assert_eq!(
                    damage[0].offset, block.offset,
                    "block {i}: the torn block is named"
                );
                assert!(damage[0].what.contains("ends inside a block"), "{damage:?}");
            }
        }
    }
    let whole = CaptureReader::from_bytes("whole.cap", bytes.clone()).unwrap();
    assert_eq!(event_count(&whole), total);
}

#[test]
fn a_cut_or_damaged_trailer_falls_back_to_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, blocks, total) = damaged_fixture(dir.path());
    let last = blocks.last().unwrap();
    let trailer_at = (last.offset + last.len as u64) as usize;
    for cut in [trailer_at, trailer_at + 10, bytes.len() - 1] {
        let reader = CaptureReader::from_bytes("t.cap", bytes[..cut].to_vec()).unwrap();
        assert_eq!(reader.index_source(), IndexSource::Scan);
        assert_eq!(event_count(&reader), total, "cut at {cut}");
        let damage = reader.verify();
        if cut > trailer_at {
            assert_eq!(damage[0].offset, trailer_at as u64, "{damage:?}");
        }
    }
    let mut flipped = bytes.clone();
    flipped[trailer_at + 20] ^= 0x10;
    let reader = CaptureReader::from_bytes("t.cap", flipped).unwrap();
    assert_eq!(reader.index_source(), IndexSource::Scan);
    assert_eq!(event_count(&reader), total);
    assert!(reader
        .verify()
        .iter()
        .any(|d| d.offset == trailer_at as u64 && d.what.contains("checksum")));
}

#[test]
fn bit_flips_lose_only_the_block_they_hit() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, blocks, total) = damaged_fixture(dir.path());
    // Flip bits in the middle of every block and at its framing: type, length, CRC and the
    // trailing length.
    for block in blocks.iter().filter(|b| b.kind == block_type::EVENTS) {
        let start = block.offset as usize;
        let end = start + block.len as usize;
        for at in [
            start,
            start + 4,
            start + block.len as usize / 2,
            end - 8,
            end - 1,
        ] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x04;
            let reader = CaptureReader::from_bytes("flip.cap", damaged).unwrap();
            let damage = reader.verify();
            assert!(
                damage.iter().any(|d| d.offset == block.offset),
                "flip at {at} is reported at block {}: {damage:?}",
                block.offset
            );
            assert_eq!(
                event_count(&reader),
                total - block.event_count as usize,
                "flip at {at}: every other block is recovered"
            );
        }
    }
}

#[test]
fn a_damaged_block_does_not_stop_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (mut bytes, blocks, _) = damaged_fixture(dir.path());
    let victim = blocks
        .iter()
        .filter(|b| b.kind == block_type::EVENTS)
        .nth(3)
        .unwrap();
    bytes[victim.offset as usize + 40] ^= 0xff;
    // The trailer is intact and describes the file, so the reader uses it; the damaged block
    // is found checking the blocks while opening, and the replay goes past it.
    let reader = CaptureReader::from_bytes("d.cap", bytes).unwrap();
    assert_eq!(reader.index_source(), IndexSource::Trailer);
    let mut replay = Replay::new(reader);
    let replayed = replay.run_to_end();
    assert!(replayed > 0);
    assert_eq!(replay.damage().len(), 1);
    assert_eq!(replay.damage()[0].offset, victim.offset);
}

/// An events block whose body is one entry of an unknown tag filling `len` bytes of entries,
/// stored as `compression`.
fn events_block_of(len: usize, compression: u8) -> Vec<u8> {
    use super::block::{frame, ChunkHeader};
    let mut entries = vec![0xEE];
    entries.extend_from_slice(&((len - 5) as u32).to_le_bytes());
    entries.resize(len, 0);
    let header = ChunkHeader {
        entry_count: 1,
        compression,
        uncompressed_len: len as u32,
        ..ChunkHeader::default()
    };
    let mut body = Vec::new();
    header.encode(&mut body);
    match compression {
        super::block::compression::ZSTD => {
            body.extend_from_slice(&zstd::bulk::compress(&entries, 1).unwrap())
        }
        _ => body.extend_from_slice(&entries),
    }
    frame(block_type::EVENTS, &body)
}

/// Entries beyond what any writer puts in one events block (decoded, they could take six
/// times their bytes) are damage, stored or compressed, named, with nothing decoded from the
/// block; the recording's blocks around it still read whole. At the limit, the block reads.
#[test]
fn an_events_block_larger_than_any_writer_makes_is_damage() {
    use super::block::compression;
    use super::reader::MAX_EVENTS_BLOCK_ENTRIES;
    let dir = tempfile::tempdir().unwrap();
    let (bytes, blocks, total) = damaged_fixture(dir.path());
    let at = blocks[3].offset as usize;
    for (len, stored_as, damaged) in [
        (MAX_EVENTS_BLOCK_ENTRIES + 1, compression::NONE, true),
        (MAX_EVENTS_BLOCK_ENTRIES + 1, compression::ZSTD, true),
        (MAX_EVENTS_BLOCK_ENTRIES, compression::ZSTD, false),
    ] {
        let mut spliced = bytes[..at].to_vec();
        spliced.extend(events_block_of(len, stored_as));
        spliced.extend_from_slice(&bytes[at..]);
        let reader = CaptureReader::from_bytes("big.cap", spliced).unwrap();
        assert_eq!(event_count(&reader), total, "{len} bytes as {stored_as}");
        let damage: Vec<_> = reader
            .verify()
            .into_iter()
            .filter(|d| d.offset == at as u64)
            .collect();
        if damaged {
            assert_eq!(damage.len(), 1, "{damage:?}");
            assert!(damage[0].what.contains("impossible"), "{damage:?}");
        } else {
            assert!(damage.is_empty(), "{damage:?}");
        }
    }
}

#[test]
fn a_crash_loses_at_most_what_was_not_synced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.cap");
    let events = fixture_events();
    let mut pipeline = pipeline();
    let mut options = RecorderOptions::new(path.clone(), metadata());
    options.writer.sync_interval = Duration::from_millis(0);
    let mut recorder = Recorder::start(options, &mut pipeline).unwrap();
    let half = events.len() / 2;
    for event in &events[..half] {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    recorder
        .tick(Instant::now() + Duration::from_secs(1))
        .unwrap();
    // What is on disk now is what a kill -9 leaves: copy it before anything else is written.
    let at_crash = std::fs::read(&path).unwrap();
    for event in &events[half..half + 10] {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    std::mem::forget(recorder);
    let reader = CaptureReader::from_bytes("crash.cap", at_crash).unwrap();
    assert_eq!(reader.index_source(), IndexSource::Scan);
    assert_eq!(events_in(&reader), events[..half].to_vec());
}

/// Records `events` into files of 4 KiB under `base`, keeping the newest three.
fn record_rotated(base: &Path, events: &[Event]) -> (Pipeline, super::recorder::RecordingSummary) {
    let mut options = small_blocks(base.to_path_buf());
    options.max_file_bytes = Some(4 << 10);
    options.max_files = Some(3);
    let mut pipeline = pipeline();
    let mut recorder = Recorder::start(options, &mut pipeline).unwrap();
    for event in events {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    pipeline.finish();
    let summary = recorder.finish(&mut pipeline).unwrap();
    (pipeline, summary)
}

#[test]
fn rotation_keeps_the_newest_files_and_each_replays_alone() {
    let dir = tempfile::tempdir().unwrap();
    let events = fixture_events();
    let (_, summary) = record_rotated(&dir.path().join("long.cap"), &events);
    assert_eq!(summary.files.len(), 3, "{summary:?}");
    assert!(summary.deleted > 0, "{summary:?}");
    for file in &summary.files {
        assert!(file.to_string_lossy().ends_with(".cap"));
        assert!(file.exists());
    }
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "older files deleted: {names:?}");
    // The last file starts in the middle of the capture and still knows the agent.
    let last = CaptureReader::open(summary.files.last().unwrap()).unwrap();
    assert!(last.verify().is_empty(), "{:?}", last.verify());
    let first_index = last.event_blocks().next().unwrap().first_event_index;
    assert!(first_index > 0);
    let mut replay = Replay::new(last);
    replay.run_to_end();
    assert_eq!(
        replay.position().event_index,
        events.len() as u64,
        "events are numbered across the series"
    );
    let snapshot = replay.pipeline().snapshot();
    assert!(
        !snapshot.agents.is_empty(),
        "agents come from the keyframe that opens the file"
    );
}

#[test]
fn keyframes_of_a_growing_state_stay_a_bounded_share_of_the_file() {
    // Rounds of the recorded sessions as new agents, ten minutes of event time apart: on event
    // time alone every round ended with a keyframe of the whole state, which grows with every
    // round's agents (a synthetic capture of 12,600 agents passed 630 MB that way).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many-agents.cap");
    let events = agentscope_event::synthetic::repeat_as_new_agents(&[fixture_events()], 80);
    let live = record(&events, RecorderOptions::new(path.clone(), metadata()));
    let reader = CaptureReader::open(&path).unwrap();
    assert!(reader.verify().is_empty(), "{:?}", reader.verify());
    // Still keyframes in the middle, and at most about a quarter of the file.
    let (keyframes, share) = (reader.keyframe_blocks().count(), reader.keyframe_share());
    assert!(
        keyframes >= 4 && share <= 0.3,
        "{keyframes} keyframes, {share:.3}"
    );
    assert_eq!(replay_json(reader), live, "the replay is the live model");
}

/// A `cluster_objects` event as the collector makes it, at the first event's time.
pub(crate) fn cluster_objects_event(events: &[Event]) -> Event {
    use agentscope_event::cluster_objects::ClusterObjects;
    let objects = vec![serde_json::json!({
        "kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "support-agent", "namespace": "shop"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "list"]}],
    })];
    let mut event = events[0].clone();
    event.body = crate::event::EventBody::ClusterObjects(Box::new(ClusterObjects {
        bytes: serde_json::to_vec(&objects).unwrap().len() as u64,
        objects,
        counts: [("Role".to_string(), 1)].into(),
        omitted: Default::default(),
        truncated: false,
        node_name: Some("node-1".into()),
    }));
    event
}

#[test]
fn a_rotated_file_and_a_seek_carry_the_last_cluster_objects_in_their_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = fixture_events();
    let declared = cluster_objects_event(&events);
    events.insert(0, declared.clone());
    let crate::event::EventBody::ClusterObjects(objects) = &declared.body else {
        unreachable!()
    };
    let (pipeline, summary) = record_rotated(&dir.path().join("declared.cap"), &events);
    let kept = pipeline.last_cluster_objects().cloned().unwrap();
    assert_eq!(&kept.objects, &**objects);
    assert_eq!(kept.time_unix_ns, declared.header.time_unix_ns);
    // The newest file starts long after the event: its keyframe carries the snapshot.
    let last = CaptureReader::open(summary.files.last().unwrap()).unwrap();
    assert!(last.event_blocks().next().unwrap().first_event_index > 1);
    let mut replay = Replay::new(last);
    replay.run_to_end();
    assert_eq!(replay.pipeline().last_cluster_objects(), Some(&kept));
    // A replay of the whole first file that seeks past the event has it too.
    let first = CaptureReader::open(&summary.files[0]).unwrap();
    let mut replay = Replay::new(first);
    replay.run_to_end();
    let end = replay.position().ts_ns;
    replay.seek(end);
    assert_eq!(replay.pipeline().last_cluster_objects(), Some(&kept));
}

#[test]
fn seeking_back_and_forth_gives_the_same_model_as_playing_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seek.cap");
    let events = fixture_events();
    let live = record(&events, small_blocks(path.clone()));
    let mut replay = Replay::open(&path).unwrap();
    let mid = events[events.len() / 2].header.ts_ns;
    replay.seek(mid);
    assert!(replay.position().ts_ns <= mid);
    let at_mid = replay.position().event_index;
    assert!(at_mid > 0 && at_mid < events.len() as u64);
    replay.seek(u64::MAX);
    replay.seek(0);
    assert_eq!(replay.position().event_index, 0);
    replay.seek(mid);
    assert_eq!(replay.position().event_index, at_mid, "seek is exact");
    for _ in 0..5 {
        replay.step();
    }
    assert_eq!(replay.position().event_index, at_mid + 5);
    replay.run_to_end();
    let json = serde_json::to_string_pretty(&replay.pipeline().snapshot()).unwrap();
    assert_eq!(json, live);
    assert_eq!(
        replay.event(3),
        Some(events[3].clone()),
        "random access by index"
    );
}

#[test]
fn a_slice_replays_on_its_own_with_the_agents_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.cap");
    let events = fixture_events();
    record(&events, small_blocks(path.clone()));
    let from = events[events.len() / 3].header.ts_ns;
    let to = events[2 * events.len() / 3].header.ts_ns;
    let out = dir.path().join("incident.cap");
    let summary = super::slice::slice(
        CaptureReader::open(&path).unwrap(),
        from,
        to,
        &out,
        &crate::output_file::Inputs::new([&path]),
    )
    .unwrap();
    let expected: Vec<Event> = {
        // The slice holds the events in the time window, in capture order.
        let first = summary.first_event_index as usize;
        events[first..]
            .iter()
            .take_while(|e| e.header.ts_ns <= to)
            .cloned()
            .collect()
    };
    assert!(!expected.is_empty());
    assert!(expected.iter().all(|e| e.header.ts_ns >= from));
    let sliced = CaptureReader::open(&out).unwrap();
    assert!(sliced.verify().is_empty(), "{:?}", sliced.verify());
    assert_eq!(events_in(&sliced), expected);
    let mut replay = Replay::new(sliced);
    replay.run_to_end();
    assert_eq!(
        replay.position().event_index,
        summary.first_event_index + expected.len() as u64
    );
}

/// A file that starts like a capture (magic and an intact header) and then holds `body`.
fn capture_starting_with(body: &[u8]) -> Vec<u8> {
    let mut bytes = super::block::MAGIC.to_vec();
    bytes.extend_from_slice(&super::block::frame(
        block_type::HEADER,
        &super::block::FileHeader::new(metadata()).encode(),
    ));
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn resynchronising_is_linear_in_the_file_size_whatever_the_bytes() {
    const SIZE: usize = 16 << 20;
    // Repeated bytes: 0x01 makes every offset claim a block of 0x01010101 bytes (16 MiB +
    // 65793) whose two lengths agree wherever it fits; the file is a little longer so that
    // a million offsets are such candidates.
    let ones = vec![0x01u8; SIZE + (1 << 20)];
    // Repeated fake block headers: an events block of 8 MiB whose trailing length agrees,
    // every 8 bytes, each with a wrong CRC.
    let fake_len = 8u32 << 20;
    let mut fakes = Vec::with_capacity(SIZE);
    while fakes.len() < SIZE {
        fakes.extend_from_slice(&block_type::EVENTS.to_le_bytes());
        fakes.extend_from_slice(&fake_len.to_le_bytes());
    }
    let zeros = vec![0u8; SIZE];
    for (name, body) in [("0x01", ones), ("fake headers", fakes), ("zeros", zeros)] {
        let bytes = capture_starting_with(&body);
        let scan = super::reader::scan(&bytes);
        let n = bytes.len() as u64;
        // Every offset is tried once; each candidate costs at most two checkpoint strides of
        // hashing on top of one pass over the file. The old search hashed each candidate's
        // whole claimed block: for these files, 8 to 16 TiB.
        assert!(
            scan.positions_tried <= n,
            "{name}: {}",
            scan.positions_tried
        );
        assert!(
            scan.resync_crc.bytes_hashed
                <= n + scan.resync_crc.ranges * 2 * super::range_crc::CHECKPOINT_SPACING as u64,
            "{name}: {:?}",
            scan.resync_crc
        );
        assert!(
            scan.resync_crc.bytes_hashed + scan.walk_bytes_hashed <= 20 * n,
            "{name}: {:?} + {}",
            scan.resync_crc,
            scan.walk_bytes_hashed
        );
        assert!(scan.blocks.is_empty(), "{name}");
        assert_eq!(scan.damage.len(), 1, "{name}: one damaged stretch");
        if name != "zeros" {
            assert!(
                scan.resync_crc.ranges > 500_000,
                "{name}: the test has candidates"
            );
        }
    }
}

#[test]
fn resynchronising_still_finds_the_blocks_after_fake_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, blocks, total) = damaged_fixture(dir.path());
    // Replace the first events block with fake headers whose lengths agree: every block
    // after it is found again.
    let victim = blocks
        .iter()
        .find(|b| b.kind == block_type::EVENTS && b.event_count > 0)
        .unwrap();
    let mut damaged = bytes.clone();
    let start = victim.offset as usize;
    for (i, at) in (start..start + victim.len as usize - 8)
        .step_by(8)
        .enumerate()
    {
        let len = (victim.len - (at - start) as u32).max(16) + (i as u32 % 3) * 8;
        damaged[at..at + 4].copy_from_slice(&block_type::EVENTS.to_le_bytes());
        damaged[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    }
    let reader = CaptureReader::from_bytes("fake.cap", damaged).unwrap();
    assert_eq!(
        event_count(&reader),
        total - victim.event_count as usize,
        "{:?}",
        reader.damage()
    );
}

/// Events counted by `cap info`/`verify` (the intact blocks) and by a replay, and the
/// damage each reports.
fn counts(bytes: &[u8]) -> (u64, u64, Vec<u64>, Vec<u64>) {
    let reader = CaptureReader::from_bytes("x.cap", bytes.to_vec()).unwrap();
    let listed: u64 = reader.event_blocks().map(|b| b.event_count as u64).sum();
    let verified: Vec<u64> = reader.verify().iter().map(|d| d.offset).collect();
    let mut replay = Replay::new(reader);
    let replayed = replay.run_to_end();
    let mut replay_damage: Vec<u64> = replay.damage().iter().map(|d| d.offset).collect();
    replay_damage.sort();
    replay_damage.dedup();
    (listed, replayed, verified, replay_damage)
}

#[test]
fn concatenated_captures_and_inserted_bytes_are_scanned_not_trusted_to_the_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, blocks, total) = damaged_fixture(dir.path());
    let total = total as u64;

    // Two captures end to end: the trailer at the end is the second one's and describes
    // offsets that hold the first one's blocks.
    let mut twice = bytes.clone();
    twice.extend_from_slice(&bytes);
    let reader = CaptureReader::from_bytes("twice.cap", twice.clone()).unwrap();
    assert_eq!(reader.index_source(), IndexSource::Scan);
    let (listed, replayed, verified, replay_damage) = counts(&twice);
    assert_eq!(listed, 2 * total);
    assert_eq!(replayed, 2 * total, "every event of both is replayed");
    assert_eq!(verified, replay_damage);
    // The second magic is the one damaged stretch (and the trailer note).
    assert!(verified.contains(&(bytes.len() as u64)), "{verified:?}");

    // Bytes inserted after the header: every block is where the trailer does not say.
    let first = blocks[0].offset as usize;
    for inserted in [1usize, 7, 100] {
        let mut shifted = bytes[..first].to_vec();
        shifted.extend(std::iter::repeat_n(0xa5u8, inserted));
        shifted.extend_from_slice(&bytes[first..]);
        let reader = CaptureReader::from_bytes("shifted.cap", shifted.clone()).unwrap();
        assert_eq!(reader.index_source(), IndexSource::Scan, "{inserted}");
        let (listed, replayed, verified, replay_damage) = counts(&shifted);
        assert_eq!(
            (listed, replayed),
            (total, total),
            "{inserted} bytes inserted"
        );
        assert_eq!(verified, replay_damage);
        assert_eq!(verified[0], first as u64);
    }
}

#[test]
fn info_verify_and_replay_agree_after_a_bit_flip_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _, _) = damaged_fixture(dir.path());
    // Every 97th byte (and the last few), so every block and its framing is hit somewhere.
    let offsets = (8..bytes.len())
        .step_by(97)
        .chain(bytes.len() - 8..bytes.len());
    for at in offsets {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x20;
        let (listed, replayed, verified, replay_damage) = counts(&flipped);
        assert_eq!(
            listed, replayed,
            "flip at {at}: info and replay count the same"
        );
        assert_eq!(
            verified, replay_damage,
            "flip at {at}: verify and replay report the same damage"
        );
        assert!(!verified.is_empty(), "flip at {at} is reported");
    }
}

#[test]
fn rotation_bounds_each_file_on_disk_to_the_size_asked_within_one_block() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("bounded.cap");
    let events = fixture_events();
    // Default chunks (256 KiB before compression): the recorder keeps blocks to a quarter
    // of the size asked. The events repeat, so they compress well, as real traffic does.
    const SIZE: u64 = 96 << 10;
    let mut options = RecorderOptions::new(base.clone(), metadata());
    options.max_file_bytes = Some(SIZE);
    let chunk_bytes = SIZE / 4;
    let mut pipeline = pipeline();
    let mut recorder = Recorder::start(options, &mut pipeline).unwrap();
    for _ in 0..60 {
        for event in &events {
            pipeline.push(event);
            recorder.record(event, &mut pipeline).unwrap();
        }
    }
    pipeline.finish();
    let summary = recorder.finish(&mut pipeline).unwrap();
    assert!(summary.files.len() >= 3, "{summary:?}");
    // One block: an events block stored uncompressed at its largest (a chunk is written when
    // it reaches chunk_bytes, so it holds at most that plus one event), with its framing.
    let largest_event = events
        .iter()
        .map(|e| {
            let mut buf = Vec::new();
            super::codec::encode_event(e, &mut buf);
            buf.len() as u64
        })
        .max()
        .unwrap();
    let one_block = chunk_bytes + largest_event + 80;
    let (last, rest) = summary.files.split_last().unwrap();
    for file in rest {
        let len = std::fs::metadata(file).unwrap().len();
        assert!(
            len + one_block >= SIZE && len <= SIZE + one_block,
            "{}: {len} bytes, asked {SIZE} (one block: {one_block})",
            file.display()
        );
        assert!(CaptureReader::open(file).unwrap().verify().is_empty());
    }
    assert!(std::fs::metadata(last).unwrap().len() <= SIZE + one_block);
}

#[test]
fn a_recording_finished_without_waiting_for_the_disk_reads_back_whole_at_once() {
    // What `collect` does at its stop: the files are complete for every reader as soon as
    // the recorder returns; only their last syncs may still be under way.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("stop.cap");
    let mut options = small_blocks(base);
    options.max_file_bytes = Some(6 << 10);
    let events = fixture_events();
    let mut pipeline = pipeline();
    let mut recorder = Recorder::start(options, &mut pipeline).unwrap();
    for event in &events {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    pipeline.finish();
    let answers = pipeline.take_identity_answers();
    let (summary, mut on_disk) = recorder.finish_after_unsynced(&answers, &pipeline).unwrap();
    assert!(summary.files.len() > 1, "{summary:?}");
    let mut read_back = Vec::new();
    for file in &summary.files {
        let reader = CaptureReader::open(file).unwrap();
        assert_eq!(reader.index_source(), IndexSource::Trailer, "{file:?}");
        read_back.extend(events_in(&reader));
    }
    assert_eq!(read_back, events);
    assert!(on_disk.wait_until(None).unwrap());
    assert!(on_disk.is_empty());
}
