//! Secrets looked for in a recording itself (what a `.cap` keeps), read with the capture
//! library: every event's payload, joined per stream so a secret captured one byte per event
//! is still found; every other event's, identity answer's and keyframe's strings; and the
//! file's raw bytes. Reading the recording directly, rather than `replay --json` piped into a
//! scanner, checks the same bytes (a replay prints what the recording holds) without turning
//! hundreds of megabytes of payload into base64 JSON and parsing it again.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use agentscope_capture::capture::block::BlockInfo;
use agentscope_capture::capture::codec::Entry;
use agentscope_capture::capture::CaptureReader;
use agentscope_event::event::PayloadSource;
use agentscope_event::EventBody;
use serde_json::Value;

use super::contains;

/// What [`find_secrets`] saw.
#[derive(Debug, Default)]
pub struct RecordingSecrets {
    /// Events read.
    pub events: u64,
    /// Of them, payload events.
    pub data_events: u64,
    /// The secrets found anywhere.
    pub found: BTreeSet<String>,
}

/// The strings of a JSON value, and its arrays of small numbers read as bytes (how byte
/// fields serialise).
pub fn json_byte_strings(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::String(s) => out.push(s.as_bytes().to_vec()),
        Value::Array(items)
            if !items.is_empty() && items.iter().all(|v| v.as_u64().is_some_and(|n| n < 256)) =>
        {
            out.push(items.iter().map(|v| v.as_u64().unwrap() as u8).collect());
        }
        Value::Array(items) => items.iter().for_each(|v| json_byte_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| json_byte_strings(v, out)),
        _ => {}
    }
}

/// Looks for each of `secrets` in the recording at `cap` (which must be undamaged).
pub fn find_secrets(cap: &Path, secrets: &[impl AsRef<str>]) -> RecordingSecrets {
    let secrets: Vec<&str> = secrets.iter().map(AsRef::as_ref).collect();
    let secrets = secrets.as_slice();
    let mut scan = RecordingSecrets::default();
    let look = |bytes: &[u8], found: &mut BTreeSet<String>| {
        for secret in secrets {
            if contains(bytes, secret.as_bytes()) {
                found.insert(secret.to_string());
            }
        }
    };
    look(&std::fs::read(cap).unwrap(), &mut scan.found);
    let reader = CaptureReader::open(cap).unwrap();
    assert!(reader.damage().is_empty(), "{:?}", reader.damage());
    let keep = secrets.iter().map(|s| s.len()).max().unwrap_or(0);
    // Per stream (pid, source, direction, connection or fd), the last `keep` bytes.
    let mut tails: HashMap<(u32, PayloadSource, String, u64), Vec<u8>> = HashMap::new();
    let look_in_strings = |value: Value, found: &mut BTreeSet<String>| {
        let mut strings = Vec::new();
        json_byte_strings(&value, &mut strings);
        strings.iter().for_each(|s| look(s, found));
    };
    for info in reader.event_blocks() {
        let entries = undamaged_entries(&reader, info, cap);
        for entry in entries {
            match entry {
                Entry::Event(event) => {
                    scan.events += 1;
                    if let EventBody::Data {
                        source,
                        direction,
                        fd,
                        conn_id,
                        data,
                        ..
                    } = &event.body
                    {
                        scan.data_events += 1;
                        let stream = if *source == PayloadSource::Tls {
                            *conn_id
                        } else {
                            *fd as u64
                        };
                        let key = (event.header.pid, *source, format!("{direction:?}"), stream);
                        let window = tails.entry(key).or_default();
                        window.extend_from_slice(data);
                        look(window, &mut scan.found);
                        let cut = window.len().saturating_sub(keep);
                        window.drain(..cut);
                    } else {
                        // Raw bytes an event carries besides a payload (serialised as base64).
                        if let EventBody::Dns { data, .. } | EventBody::TlsHello { data, .. } =
                            &event.body
                        {
                            look(data, &mut scan.found);
                        }
                        look_in_strings(serde_json::to_value(&event).unwrap(), &mut scan.found);
                    }
                }
                Entry::Identity(answer) => {
                    look_in_strings(serde_json::to_value(&answer).unwrap(), &mut scan.found)
                }
            }
        }
    }
    for info in reader.keyframe_blocks() {
        let (_, keyframe) = reader.read_keyframe(info).unwrap();
        look_in_strings(serde_json::to_value(&keyframe).unwrap(), &mut scan.found);
    }
    scan
}

/// Every entry of events block `info` of the recording at `cap`, which must be undamaged and
/// hold no entry of a tag the reader does not know (it skips those, and a search would miss
/// what they hold).
pub fn undamaged_entries(reader: &CaptureReader, info: &BlockInfo, cap: &Path) -> Vec<Entry> {
    let (header, entries, damage) = reader.read_events(info);
    assert!(damage.is_none(), "{damage:?}");
    assert_eq!(
        entries.len(),
        header.entry_count as usize,
        "an entry of an unknown tag in {cap:?}"
    );
    entries
}
