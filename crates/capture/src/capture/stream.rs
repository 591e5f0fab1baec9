//! Live capture streams: what `agentscope collect --serve` sends each console, in the capture
//! format, and the incremental reader a console decodes it with.
//!
//! A stream is a capture without an index: the magic, a header block, a keyframe of the
//! collector's pipeline when the reader attached, then event chunks (with the identity
//! answers that go with them) as the collector produces them. Besides those it may carry
//! status blocks ([`block_type::STATUS`]): the collector's counters, how many events the
//! server dropped for this reader because it read too slowly, and why the stream is ending.
//! A reader that fell behind may also get a later keyframe, whose identity answers make up for
//! the ones it missed. docs/capture-format.md describes the blocks.
//!
//! Bytes arrive in pieces of any size; [`StreamDecoder`] buffers them and hands out whole
//! blocks. A socket does not corrupt data, so a stream that fails its checks comes from
//! something that is not an agentscope collector: the first error ends the stream.

use serde::{Deserialize, Serialize};

use super::block::{self, block_type, ChunkHeader, FileHeader, KeyframeHeader};
use super::codec::Entry;
use super::reader::{decode_events_body, decode_keyframe_body};
use super::replay::{pipeline_options_of, RecordedIdentity};
use super::writer::{CollectorCounters, Keyframe};
use crate::pipeline::Pipeline;

/// What a status block says (JSON in the block body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// The collector's counters (cumulative since it started): events it received, what the
    /// kernel dropped.
    #[serde(default)]
    pub collector: CollectorCounters,
    /// Events the server dropped for this reader since it attached, because the reader did
    /// not keep up (cumulative).
    #[serde(default)]
    pub dropped_events: u64,
    /// The server is ending the stream, and why ("the collector stopped").
    #[serde(default)]
    pub closing: Option<String>,
    /// The server refused this reader (with the reason in `closing`).
    #[serde(default)]
    pub refused: bool,
}

impl StreamStatus {
    /// The status as a framed block.
    pub fn encode_block(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        block::frame(block_type::STATUS, &json)
    }

    pub fn decode(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| format!("status block is not valid: {e}"))
    }
}

/// One block of a stream, decoded.
#[derive(Debug, Clone)]
pub enum StreamItem {
    Header(FileHeader),
    Keyframe {
        header: KeyframeHeader,
        keyframe: Box<Keyframe>,
    },
    Events {
        header: ChunkHeader,
        entries: Vec<Entry>,
    },
    Status(StreamStatus),
}

/// Why a stream cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the peer is not an agentscope collector (its first bytes are not a capture stream)")]
    NotAStream,
    #[error("the collector speaks capture format {major}.{minor}, newer than this agentscope reads (up to {}.x): upgrade agentscope", block::MAJOR_VERSION)]
    TooNew { major: u16, minor: u16 },
    #[error("the collector's stream needs format features {0:#x} that this agentscope does not know: upgrade agentscope")]
    UnknownFeatures(u32),
    #[error("the collector's stream is damaged at byte {offset}: {what}")]
    Damaged { offset: u64, what: String },
}

/// Reads a stream from pieces of bytes as they arrive.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already decoded.
    consumed: usize,
    /// Stream offset of `buffer[0]`.
    base: u64,
    magic_seen: bool,
    header_seen: bool,
    failed: Option<StreamError>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.consumed > 0 && self.consumed * 2 >= self.buffer.len() {
            // Keep the buffer to the undecoded tail, without moving bytes on every block.
            self.buffer.drain(..self.consumed);
            self.base += self.consumed as u64;
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet decoded (part of a block).
    pub fn pending_bytes(&self) -> usize {
        self.buffer.len() - self.consumed
    }

    /// The next whole block, `None` until more bytes arrive. After an error every call
    /// returns the same error.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, StreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.decode_next();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn decode_next(&mut self) -> Result<Option<StreamItem>, StreamError> {
        if !self.magic_seen {
            let have = &self.buffer[self.consumed..];
            let n = have.len().min(block::MAGIC.len());
            if have[..n] != block::MAGIC[..n] {
                return Err(StreamError::NotAStream);
            }
            if n < block::MAGIC.len() {
                return Ok(None);
            }
            self.consumed += block::MAGIC.len();
            self.magic_seen = true;
        }
        loop {
            let offset = self.base + self.consumed as u64;
            let damaged = |what: String| StreamError::Damaged { offset, what };
            let rest = &self.buffer[self.consumed..];
            if rest.len() < 8 {
                return Ok(None);
            }
            let total = block::declared_len(rest).map_err(|e| damaged(e.to_string()))?;
            if rest.len() < total {
                return Ok(None);
            }
            let (kind, body) = block::unframe(rest).map_err(|e| damaged(e.to_string()))?;
            let item = if !self.header_seen && kind == block_type::STATUS {
                // A server that refuses a reader says why before (instead of) the header.
                Some(StreamItem::Status(
                    StreamStatus::decode(body).map_err(damaged)?,
                ))
            } else if !self.header_seen {
                if kind != block_type::HEADER {
                    return Err(damaged(format!(
                        "the stream starts with a {} block, not the header",
                        block_type::name(kind)
                    )));
                }
                let header = FileHeader::decode(body).map_err(damaged)?;
                if header.major > block::MAJOR_VERSION {
                    return Err(StreamError::TooNew {
                        major: header.major,
                        minor: header.minor,
                    });
                }
                let unknown = header.required_features & !block::required::KNOWN;
                if unknown != 0 {
                    return Err(StreamError::UnknownFeatures(unknown));
                }
                self.header_seen = true;
                Some(StreamItem::Header(header))
            } else {
                match kind {
                    block_type::EVENTS => {
                        let (header, entries, error) = decode_events_body(body);
                        if let Some(what) = error {
                            return Err(damaged(what));
                        }
                        Some(StreamItem::Events { header, entries })
                    }
                    block_type::KEYFRAME => {
                        let (header, keyframe) = decode_keyframe_body(body).map_err(damaged)?;
                        Some(StreamItem::Keyframe {
                            header,
                            keyframe: Box::new(keyframe),
                        })
                    }
                    block_type::STATUS => Some(StreamItem::Status(
                        StreamStatus::decode(body).map_err(damaged)?,
                    )),
                    // A newer server's block types are skipped, as in files.
                    _ => None,
                }
            };
            self.consumed += total;
            if item.is_some() {
                return Ok(item);
            }
        }
    }
}

/// The pipeline a stream reader feeds: the collector's options (from the header), its state
/// when the reader attached (the first keyframe), and identity answered from the stream, so
/// the reader needs neither /proc nor the Kubernetes API.
pub fn stream_pipeline(header: &FileHeader, keyframe: &Keyframe) -> Pipeline {
    let (reconstruct, model) = pipeline_options_of(Some(header));
    let mut pipeline = Pipeline::new(reconstruct, model, Box::new(RecordedIdentity::default()));
    pipeline.restore(keyframe.pipeline.clone());
    pipeline
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixStream;

    use super::super::tests::{fixture_events, metadata, pipeline};
    use super::super::writer::{CaptureWriter, WriterOptions};
    use super::*;

    /// Encodes a stream the way the server does: header, a keyframe of `pipeline` as it is,
    /// then each event with the identity answers feeding it produced.
    fn encode_stream(
        pipeline: &mut Pipeline,
        events: &[crate::event::Event],
        options: WriterOptions,
    ) -> Vec<u8> {
        pipeline.log_identity_answers(true);
        let mut writer = CaptureWriter::in_memory(options).unwrap();
        let mut out = CaptureWriter::stream_start(&FileHeader::new(metadata()));
        let state = pipeline.state();
        writer.set_next_event_index(state.next_event_index);
        writer
            .write_keyframe(
                &Keyframe {
                    pipeline: state,
                    collector: CollectorCounters::default(),
                },
                0,
            )
            .unwrap();
        for event in events {
            pipeline.push(event);
            for answer in pipeline.take_identity_answers() {
                writer.write_identity(&answer).unwrap();
            }
            writer.write_event(event).unwrap();
            out.extend(writer.take_bytes());
        }
        pipeline.finish();
        for answer in pipeline.take_identity_answers() {
            writer.write_identity(&answer).unwrap();
        }
        writer.flush().unwrap();
        out.extend(writer.take_bytes());
        out.extend(
            StreamStatus {
                closing: Some("the collector stopped".into()),
                ..Default::default()
            }
            .encode_block(),
        );
        out
    }

    /// Reads a stream the way the console does and returns the model it builds.
    fn read_stream(items: Vec<StreamItem>) -> (Pipeline, Vec<crate::event::Event>) {
        let mut items = items.into_iter();
        let Some(StreamItem::Header(header)) = items.next() else {
            panic!("the header comes first");
        };
        let Some(StreamItem::Keyframe { keyframe, .. }) = items.next() else {
            panic!("then a keyframe");
        };
        let mut pipeline = stream_pipeline(&header, &keyframe);
        let mut events = Vec::new();
        let mut closed = false;
        for item in items {
            match item {
                StreamItem::Events { entries, .. } => {
                    for entry in entries {
                        match entry {
                            Entry::Event(event) => {
                                pipeline.push(&event);
                                events.push(event);
                            }
                            Entry::Identity(answer) => pipeline.remember_identity(answer),
                        }
                    }
                }
                StreamItem::Status(status) => {
                    closed = status.closing.is_some();
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(closed, "the closing status arrives last");
        pipeline.finish();
        (pipeline, events)
    }

    fn snapshot_json(pipeline: &Pipeline) -> String {
        serde_json::to_string_pretty(&pipeline.snapshot()).unwrap()
    }

    /// Streams the fixture events to a reader that attaches after `attach_at` of them,
    /// through a socket in odd-sized pieces; returns the reader's model, the model of a
    /// pipeline restored from the same point that asks the live identity source itself, and
    /// the live collector's model.
    fn stream_through_a_socket(attach_at: usize) -> (String, String, String) {
        let events = fixture_events();
        let (before, after) = events.split_at(attach_at);
        let mut live = pipeline();
        for event in before {
            live.push(event);
        }
        let mut reference = pipeline();
        reference.restore(live.state());
        for event in after {
            reference.push(event);
        }
        reference.finish();
        let options = WriterOptions {
            chunk_bytes: 2048,
            ..WriterOptions::default()
        };
        let bytes = encode_stream(&mut live, after, options);
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let sender = std::thread::spawn(move || {
            // Odd-sized writes, so blocks are split across reads at every kind of boundary.
            for piece in bytes.chunks(977) {
                server.write_all(piece).unwrap();
            }
        });
        let mut decoder = StreamDecoder::new();
        let mut items = Vec::new();
        let mut buf = [0u8; 613];
        loop {
            let n = client.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            decoder.push(&buf[..n]);
            while let Some(item) = decoder.next_item().unwrap() {
                items.push(item);
            }
        }
        sender.join().unwrap();
        assert_eq!(decoder.pending_bytes(), 0);
        let chunks = items
            .iter()
            .filter(|i| matches!(i, StreamItem::Events { .. }))
            .count();
        assert!(chunks > 3, "small chunks make several blocks: {chunks}");
        let (remote, received) = read_stream(items);
        assert_eq!(received, after, "every event arrives, in order");
        (
            snapshot_json(&remote),
            snapshot_json(&reference),
            snapshot_json(&live),
        )
    }

    #[test]
    fn a_reader_attached_from_the_start_gets_the_collectors_model() {
        let (remote, _, live) = stream_through_a_socket(0);
        assert!(live.contains("k8s:shop/Deployment/agent-"), "{live}");
        let model: serde_json::Value = serde_json::from_str(&live).unwrap();
        assert!(
            model["stats"]["tool_calls"].as_u64().unwrap() >= 1,
            "{live}"
        );
        assert_eq!(remote, live);
    }

    #[test]
    fn a_reader_attached_midway_starts_from_the_keyframe_with_the_streamed_identities() {
        // The keyframe carries processes, agents and identities, not the graph so far: the
        // reader's model is that of a pipeline restored at the same point, and its identities
        // (answered from the stream only) are those the live source gave.
        let events = fixture_events();
        let (remote, reference, _) = stream_through_a_socket(events.len() / 3);
        assert!(remote.contains("k8s:shop/Deployment/agent-"), "{remote}");
        assert_eq!(remote, reference);
    }

    #[test]
    fn one_byte_at_a_time_decodes_the_same_blocks() {
        let events = fixture_events();
        let mut live = pipeline();
        let bytes = encode_stream(&mut live, &events[..100], WriterOptions::default());
        let mut whole = StreamDecoder::new();
        whole.push(&bytes);
        let mut expected = 0;
        while whole.next_item().unwrap().is_some() {
            expected += 1;
        }
        let mut decoder = StreamDecoder::new();
        let mut got = 0;
        for byte in &bytes {
            decoder.push(std::slice::from_ref(byte));
            while decoder.next_item().unwrap().is_some() {
                got += 1;
            }
        }
        assert_eq!(got, expected);
        assert!(
            expected >= 4,
            "header, keyframe, events, status: {expected}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // Not a stream at all: said as soon as the first byte disagrees.
        let mut decoder = StreamDecoder::new();
        decoder.push(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(decoder.next_item().unwrap_err(), StreamError::NotAStream);
        assert_eq!(decoder.next_item().unwrap_err(), StreamError::NotAStream);

        // The right magic, then damage: a flipped bit in a block, an impossible length, and
        // an events block where the header should be.
        let events = fixture_events();
        let bytes = encode_stream(&mut pipeline(), &events[..50], WriterOptions::default());
        let mut flipped = bytes.clone();
        flipped[40] ^= 0x10;
        let mut impossible = bytes[..8].to_vec();
        impossible.extend_from_slice(&1u32.to_le_bytes());
        impossible.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut headless = bytes[..8].to_vec();
        headless.extend_from_slice(&block::frame(block_type::EVENTS, b"x"));
        for (name, input) in [
            ("flipped", flipped),
            ("impossible", impossible),
            ("headless", headless),
        ] {
            let mut decoder = StreamDecoder::new();
            decoder.push(&input);
            let err = loop {
                match decoder.next_item() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{name}: damage must be reported"),
                    Err(err) => break err,
                }
            };
            assert!(
                matches!(err, StreamError::Damaged { .. }),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains("damaged at byte"), "{err}");
        }

        // Every prefix of a valid stream, and every single-byte corruption of its start,
        // is either "more bytes please" or an error.
        for cut in 0..bytes.len().min(4000) {
            let mut decoder = StreamDecoder::new();
            decoder.push(&bytes[..cut]);
            while let Ok(Some(_)) = decoder.next_item() {}
        }
        for at in 0..bytes.len().min(600) {
            let mut damaged = bytes.clone();
            damaged[at] = damaged[at].wrapping_add(0x5b);
            let mut decoder = StreamDecoder::new();
            decoder.push(&damaged);
            while let Ok(Some(_)) = decoder.next_item() {}
        }
    }

    #[test]
    fn a_newer_major_version_is_refused_with_advice() {
        let mut header = FileHeader::new(metadata());
        header.major = block::MAJOR_VERSION + 1;
        let mut bytes = block::MAGIC.to_vec();
        bytes.extend_from_slice(&block::frame(block_type::HEADER, &header.encode()));
        let mut decoder = StreamDecoder::new();
        decoder.push(&bytes);
        let err = decoder.next_item().unwrap_err();
        assert!(matches!(err, StreamError::TooNew { .. }), "{err:?}");
        assert!(err.to_string().contains("upgrade agentscope"));
    }
}
