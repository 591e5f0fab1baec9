//! The PostgreSQL password follower against whole streams, split writes and lost bytes.

use super::*;
use proptest::strategy::Strategy as _;

/// A StartupMessage for `user`/`database`, as libpq sends it.
pub(crate) fn startup_message(user: &str) -> Vec<u8> {
    let mut body = PROTOCOL_3.to_be_bytes().to_vec();
    for part in ["user", user, "database", "app"] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend(body);
    message
}

/// A typed frontend message.
pub(crate) fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut message = vec![kind];
    message.extend(((body.len() + 4) as u32).to_be_bytes());
    message.extend_from_slice(body);
    message
}

#[test]
fn password_messages_are_masked_at_any_split() {
    let mut stream = SSL_REQUEST.to_be_bytes().to_vec();
    stream.splice(0..0, 8u32.to_be_bytes());
    stream.extend(startup_message("app"));
    let password_at = stream.len() + 5;
    stream.extend(message(b'p', b"pg-Secret-123\0"));
    stream.extend(message(b'Q', b"SELECT 1\0"));
    for split in 0..=stream.len() {
        let mut state = PostgresFrontend::default();
        let mut out = stream.clone();
        let (a, b) = out.split_at_mut(split);
        for r in state.follow(&stream[..split]) {
            a[r].fill(b'*');
        }
        for r in state.follow(&stream[split..]) {
            b[r].fill(b'*');
        }
        assert_eq!(
            &out[password_at..password_at + 14],
            b"**************",
            "split at {split}"
        );
        assert!(out.ends_with(b"SELECT 1\0"), "split at {split}");
    }
}

#[test]
fn a_reused_stream_key_starting_a_new_connection_is_followed() {
    let mut state = PostgresFrontend::default();
    state.follow(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(matches!(state.state, State::Other { .. }));
    let mut stream = startup_message("app");
    let at = stream.len() + 5;
    stream.extend(message(b'p', b"hunter2\0"));
    let masks = state.follow(&stream);
    assert_eq!(masks, vec![at..at + 8]);
}

#[test]
fn a_new_connection_after_an_unseen_close_is_followed_byte_by_byte() {
    let mut state = PostgresFrontend::default();
    state.follow(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut stream = startup_message("app");
    let at = stream.len() + 5;
    stream.extend(message(b'p', b"hunter2\0"));
    let mut out = stream.clone();
    for (i, byte) in stream.iter().enumerate() {
        for r in state.follow(std::slice::from_ref(byte)) {
            assert_eq!(r, 0..1);
            out[i] = b'*';
        }
    }
    assert_eq!(&out[at..at + 8], b"********");
}

/// The connection's start was lost (kernel drops under load): the password message is
/// still found by its header, byte by byte or whole.
#[test]
fn a_password_message_without_its_connection_start_is_masked() {
    let mut stream = startup_message("app");
    let password_message = message(b'p', b"PgWirePassS3cr3t12\0");
    // The first 10 bytes of the startup message were never delivered.
    stream.drain(..10);
    let at = stream.len() + 5;
    stream.extend(&password_message);
    stream.extend(message(b'Q', b"SELECT 1\0"));
    for one_byte_writes in [false, true] {
        let mut state = PostgresFrontend::default();
        let mut out = stream.clone();
        if one_byte_writes {
            for (i, byte) in stream.iter().enumerate() {
                for r in state.follow(std::slice::from_ref(byte)) {
                    assert_eq!(r, 0..1);
                    out[i] = b'*';
                }
            }
        } else {
            for r in state.follow(&stream) {
                out[r].fill(b'*');
            }
        }
        assert_eq!(
            &out[at..at + 19],
            b"*******************",
            "{one_byte_writes}"
        );
        assert!(out.ends_with(b"SELECT 1\0"));
    }
}

/// Runs `pieces` (bytes, and what is missing around them) through a fresh follower;
/// returns the bytes as they leave it and its state.
fn follow_pieces(pieces: &[(&[u8], ChunkEdges)]) -> (Vec<u8>, PostgresFrontend) {
    let mut state = PostgresFrontend::default();
    let mut out = Vec::new();
    for (bytes, edges) in pieces {
        let mut piece = bytes.to_vec();
        for range in state.follow_at(bytes, *edges).masks {
            piece[range].fill(b'*');
        }
        out.extend(piece);
    }
    (out, state)
}

/// A call's first chunk with `before` missing before it.
fn after(before: Gap) -> ChunkEdges {
    ChunkEdges {
        before,
        ..ChunkEdges::CONTIGUOUS
    }
}

const CALL: ChunkEdges = ChunkEdges::CONTIGUOUS;
/// A chunk of a call that started earlier.
const INSIDE: ChunkEdges = ChunkEdges {
    before: Gap::None,
    starts_call: false,
    lost_after: 0,
};

#[test]
fn a_gap_inside_the_password_body_keeps_it_masked_and_framing_exact() {
    let startup = startup_message("app");
    let password = message(b'p', b"pg-Secret-123\0");
    let query = message(b'Q', b"SELECT 1\0");
    // `pg-S` arrives, `ecr` is lost, the rest follows, then a query.
    let (out, _) = follow_pieces(&[
        (&startup, CALL),
        (&password[..9], CALL),
        (&password[12..], after(Gap::Exact(3))),
        (&query, CALL),
    ]);
    let tail = password.len() - 12;
    let expected_end = [&b"****"[..], &vec![b'*'; tail], &query].concat();
    assert!(out.ends_with(&expected_end), "{out:?}");
}

#[test]
fn a_gap_inside_a_query_body_resumes_framing_exactly() {
    let startup = startup_message("app");
    let first = message(b'Q', b"SELECT 'a long first statement'\0");
    let second = message(b'Q', b"SELECT 2\0");
    let password = message(b'p', b"late-Secret\0");
    // Ten bytes of the first query are lost, in its text.
    let (out, state) = follow_pieces(&[
        (&startup, CALL),
        (&first[..12], CALL),
        (&first[22..], after(Gap::Exact(10))),
        (&second, INSIDE),
        (&password, INSIDE),
    ]);
    assert_eq!(state.state, PostgresFrontend::message_header());
    let expected_end = [&second[..], &password[..5], b"************"].concat();
    assert!(out.ends_with(&expected_end), "{out:?}");
}

#[test]
fn a_gap_over_a_message_header_masks_until_a_call_starts_with_one() {
    let startup = startup_message("app");
    let query = message(b'Q', b"SELECT 1\0");
    let password = message(b'p', b"pg-Secret-123\0");
    let later = message(b'Q', b"SELECT 2\0");
    // The query's header and first byte are lost: where the password message starts,
    // nothing says, even within the same call.
    let stream = [&query[6..], &password[..]].concat();
    let (out, state) = follow_pieces(&[(&startup, CALL), (&stream, after(Gap::Exact(6)))]);
    assert!(out.ends_with(&vec![b'*'; stream.len()]), "{out:?}");
    assert_eq!(state.state, State::Lost);
    // Chunks inside a call, and a call start right after another gap, stay masked; a call
    // starting with a header and nothing missing before it resumes the framing.
    let (out, state) = follow_pieces(&[
        (&startup, CALL),
        (&stream, after(Gap::Exact(6))),
        (&later, INSIDE),
        (&later, after(Gap::Exact(1))),
        (&later, CALL),
        (&password, CALL),
    ]);
    let masked_len = stream.len() + 2 * later.len();
    let expected = [
        &startup[..],
        &vec![b'*'; masked_len],
        &later,
        &password[..5],
        b"**************",
    ]
    .concat();
    assert_eq!(out, expected);
    assert_eq!(state.state, PostgresFrontend::message_header());
}

#[test]
fn a_gap_of_unknown_size_masks_until_a_call_starts_with_a_header() {
    let startup = startup_message("app");
    let password = message(b'p', b"pg-Secret-123\0");
    let query = message(b'Q', b"SELECT 1\0");
    let (out, _) = follow_pieces(&[
        (&startup[..20], CALL),
        // Unknown bytes lost: even a call starting with a header does not resume.
        (&password, after(Gap::Unknown)),
        (b"  ", CALL),
        (&query, CALL),
    ]);
    let expected = [&startup[..20], &vec![b'*'; password.len() + 2], &query].concat();
    assert_eq!(out, expected);
    // A message body: the same.
    let (out, _) = follow_pieces(&[
        (&startup, CALL),
        (&query[..7], CALL),
        (&password, after(Gap::Unknown)),
    ]);
    assert!(out.ends_with(&vec![b'*'; password.len()]));
}

#[test]
fn a_new_connection_ends_lost_framing() {
    let startup = startup_message("app");
    let password = message(b'p', b"pg-Secret-123\0");
    let mut ssl = 8u32.to_be_bytes().to_vec();
    ssl.extend(SSL_REQUEST.to_be_bytes());
    let (out, state) = follow_pieces(&[
        (&startup, CALL),
        (b"Q\0\0", after(Gap::Exact(2))),
        (&ssl, after(Gap::Exact(40))),
        (&startup, CALL),
        (&password, CALL),
    ]);
    assert!(out.ends_with(&[&ssl[..], &startup, &password[..5], b"**************"].concat()));
    assert_eq!(state.state, PostgresFrontend::message_header());
}

#[test]
fn a_connection_reported_with_the_previous_ones_loss_is_followed() {
    // An fd closed after losing 3 bytes is reused; the kernel reports those 3 bytes on the
    // new connection's first record.
    let mut stream = startup_message("app");
    let at = stream.len() + 5;
    stream.extend(message(b'p', b"pg-Secret-123\0"));
    stream.extend(message(b'Q', b"SELECT 1\0"));
    let (out, _) = follow_pieces(&[(&stream, after(Gap::Exact(3)))]);
    assert_eq!(&out[at..at + 14], b"**************");
    assert!(out.ends_with(b"SELECT 1\0"));
}

/// The first 8 bytes with byte(s) `lost` missing, one byte per call.
fn start_with_lost(stream: &[u8], lost: &[usize]) -> (Vec<u8>, PostgresFrontend) {
    let mut state = PostgresFrontend::default();
    let mut out = Vec::new();
    let mut missing = 0;
    for (at, &byte) in stream.iter().enumerate() {
        if lost.contains(&at) {
            missing += 1;
            continue;
        }
        let mut piece = [byte];
        for range in state
            .follow_at(&piece.clone(), after(Gap::bytes(missing)))
            .masks
        {
            piece[range].fill(b'*');
        }
        missing = 0;
        out.push(piece[0]);
    }
    (out, state)
}

#[test]
fn a_start_header_with_lost_bytes_is_postgres_when_its_known_bytes_agree() {
    let mut stream = startup_message("app");
    let at = stream.len() + 5;
    stream.extend(message(b'p', b"pg-Secret-123\0"));
    stream.extend(message(b'Q', b"SELECT 1\0"));
    // A length byte lost: the code says PostgreSQL, the length is unknown.
    let (out, state) = start_with_lost(&stream, &[2]);
    assert_eq!(state.state, State::Lost);
    assert!(out[7..].iter().all(|&b| b == b'*'));
    // A code byte or two lost: the rest agrees, the length is known, framing goes on.
    for lost in [&[5][..], &[4, 5], &[6, 7], &[4, 7]] {
        let (out, state) = start_with_lost(&stream, lost);
        let at = at - lost.len();
        assert_eq!(&out[at..at + 14], b"**************", "{lost:?}");
        assert!(out.ends_with(b"SELECT 1\0"), "{lost:?}");
        assert!(state.known);
    }
    // Three code bytes lost: too little to tell, so masked until a call says more.
    let (out, state) = start_with_lost(&stream, &[4, 5, 6]);
    assert_eq!(state.state, State::Lost);
    assert!(!state.known);
    assert!(out[5..].iter().all(|&b| b == b'*'));
    // An SSLRequest with a byte lost: the StartupMessage after it is followed.
    let mut ssl = 8u32.to_be_bytes().to_vec();
    ssl.extend(SSL_REQUEST.to_be_bytes());
    ssl.extend(&stream);
    let (out, _) = start_with_lost(&ssl, &[6]);
    assert_eq!(&out[at + 7..at + 21], b"**************");
    assert!(out.ends_with(b"SELECT 1\0"));
}

#[test]
fn http_and_binary_streams_with_an_early_loss_are_not_masked_for_good() {
    let request = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
    // Bytes of the first 8 lost: the known ones are text, which no header agrees with.
    for lost in [&[0][..], &[1, 2, 3], &[4, 5, 6], &[0, 1, 2, 3, 4, 5]] {
        let (out, state) = start_with_lost(request, lost);
        assert!(matches!(state.state, State::Other { .. }), "{lost:?}");
        assert!(!out.contains(&b'*'), "{lost:?}");
    }
    // The whole first write lost: nothing says what the stream is until the next write,
    // which no PostgreSQL client would start with.
    let (out, state) = follow_pieces(&[(request, after(Gap::Exact(300))), (request, CALL)]);
    assert_eq!(out, [&request[..], request].concat());
    assert!(matches!(state.state, State::Other { .. }));
    // A length-prefixed binary protocol whose start was lost up to the middle of a call:
    // masked up to its next write, which no PostgreSQL client would start with.
    let frame = [0, 0, 0, 12, 0x10, 0x20, 0x30, 0x40, 1, 2, 3, 4];
    let mid_call = ChunkEdges {
        before: Gap::Exact(16),
        ..INSIDE
    };
    let (out, state) = follow_pieces(&[(&frame[4..], mid_call), (&frame, CALL), (&frame, CALL)]);
    assert_eq!(out, [&[b'*'; 8][..], &frame, &frame].concat());
    assert!(matches!(state.state, State::Other { .. }));
    // Its first write partly lost: the code bytes that arrive are not PostgreSQL's.
    let (out, state) = follow_pieces(&[(&frame[3..], after(Gap::Exact(3))), (&frame, CALL)]);
    assert_eq!(out, [&frame[3..], &frame].concat());
    assert!(matches!(state.state, State::Other { .. }));
}

#[test]
fn a_framing_break_after_lost_bytes_loses_the_framing() {
    let startup = startup_message("app");
    let query = message(b'Q', b"SELECT 'some text'\0");
    let password = message(b'p', b"pg-Secret-123\0");
    // Framing followed exactly over a reported gap; a break after it means a count was
    // off (a gap the kernel forgot): what follows is masked until a call starts with a
    // header.
    let broken = [&b"Zz\x7f\x7f\x7f\x7fmore"[..], &password].concat();
    let (out, state) = follow_pieces(&[
        (&startup, CALL),
        (&query[..8], CALL),
        (&query[10..], after(Gap::Exact(2))),
        (&broken, INSIDE),
    ]);
    assert!(out.ends_with(&vec![b'*'; broken.len()]), "{out:?}");
    assert_eq!(state.state, State::Lost);
    // Without any reported gap, a break says the stream is something else: only the
    // look-alike password header is found in it.
    let (out, state) = follow_pieces(&[(&startup, CALL), (&query, CALL), (&broken, INSIDE)]);
    let expected_end = [&broken[..15], b"**************"].concat();
    assert!(out.ends_with(&expected_end), "{out:?}");
    assert!(!state.known);
}

#[test]
fn bytes_beyond_the_cap_move_the_framing_on() {
    let startup = startup_message("app");
    let query = message(b'Q', b"SELECT 'a long statement cut at the cap'\0");
    let password = message(b'p', b"pg-Secret-123\0");
    // A call cut at the cap inside a body: the next call is followed exactly.
    let cut = ChunkEdges {
        lost_after: (query.len() - 10) as u64,
        ..CALL
    };
    let (out, _) = follow_pieces(&[(&startup, CALL), (&query[..10], cut), (&password, CALL)]);
    assert!(out.ends_with(&[&password[..5], b"**************"].concat()));
    // Cut beyond the body: the next header is lost with it.
    let cut = ChunkEdges {
        lost_after: (query.len() - 10 + 3) as u64,
        ..CALL
    };
    let (out, state) = follow_pieces(&[
        (&startup, CALL),
        (&query[..10], cut),
        (&password[3..], INSIDE),
    ]);
    assert!(out.ends_with(&vec![b'*'; password.len() - 3]));
    assert_eq!(state.state, State::Lost);
}

#[test]
fn a_forgotten_stream_inside_framing_comes_back_lost() {
    let mut state = PostgresFrontend::default();
    state.follow(&startup_message("app"));
    let forgotten = state.forgotten().expect("inside framing");
    assert_eq!(forgotten.state, State::Lost);
    assert!(forgotten.known);
    let mut other = PostgresFrontend::default();
    other.follow(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(other.forgotten(), None);
}

proptest::proptest! {
    /// Any bytes, in any pieces: no panic, and masks stay inside the piece they mask.
    #[test]
    fn arbitrary_streams_never_panic(
        pieces in proptest::collection::vec(
            (
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                proptest::prop_oneof![
                    proptest::prelude::Just(Gap::None),
                    proptest::prelude::Just(Gap::Unknown),
                    (0u64..20).prop_map(Gap::Exact),
                    proptest::prelude::any::<u64>().prop_map(Gap::Exact),
                ],
                proptest::prelude::any::<bool>(),
                proptest::prop_oneof![0u64..20, proptest::prelude::any::<u64>()],
            ),
            0..32,
        )
    ) {
        let mut state = PostgresFrontend::default();
        for (piece, before, starts_call, lost_after) in &pieces {
            let edges = ChunkEdges { before: *before, starts_call: *starts_call, lost_after: *lost_after };
            for range in state.follow_at(piece, edges).masks {
                proptest::prop_assert!(range.end <= piece.len());
            }
        }
    }

    /// The search of a stream not (yet) PostgreSQL reads its kept tail and the chunk apart;
    /// it reports the starts one search of them joined does, overlapping needles included
    /// (`\0\x03\0\0` can overlap itself by a byte, `p\0\0` cannot).
    #[test]
    fn the_tail_and_the_chunk_are_searched_as_one(
        tail in proptest::collection::vec(proptest::sample::select(vec![0u8, 3, b'p', b'x']), 0..=7),
        chunk in proptest::collection::vec(proptest::sample::select(vec![0u8, 3, b'p', b'x']), 0..24),
    ) {
        let mut joined = tail.clone();
        joined.extend_from_slice(&chunk);
        for needle in [&*STARTUP_CODE, &*PASSWORD_START] {
            let split: Vec<usize> = starts_in_joined(needle, &tail, &chunk).collect();
            let one: Vec<usize> = needle.find_iter(&joined).collect();
            proptest::prop_assert_eq!(split, one);
        }
    }

    /// Headers that look like a startup or a password message with lengths too small to
    /// hold themselves (the subtraction that would underflow).
    #[test]
    fn short_lengths_in_look_alike_headers_never_panic(len in 0u32..16, junk in proptest::prelude::any::<u8>()) {
        let mut state = PostgresFrontend::default();
        state.follow(b"GET / HTTP/1.1\r\n\r\n");
        let mut bytes = vec![junk];
        bytes.extend(len.to_be_bytes());
        bytes.extend(PROTOCOL_3.to_be_bytes());
        bytes.push(b'p');
        bytes.extend(len.to_be_bytes());
        bytes.extend([0; 8]);
        state.follow(&bytes);
    }
}

#[test]
fn other_protocols_are_left_alone() {
    let mut state = PostgresFrontend::default();
    assert!(state
        .follow(b"GET / HTTP/1.1\r\nHost: x\r\n\r\npassword")
        .is_empty());
    assert!(matches!(state.state, State::Other { .. }));
}
