//! HTTP/2's wire format as a passive observer reads it: the connection preface and frame
//! headers ([`frame`], RFC 9113), a walker that says what each byte of a direction fed in
//! pieces of any size is ([`walker`]), and HPACK's representations, static table and Huffman
//! code ([`hpack`], [`huffman`], RFC 7541).
//!
//! Two layers read HTTP/2, and both use this one copy: redaction (`agentscope-redact` masks
//! secret header values inside HPACK blocks before any byte leaves the collector) and
//! reconstruction (`agentscope-reconstruct` decodes the blocks into exchanges). Putting it
//! below both keeps them from disagreeing on where a frame, a header block or a header value
//! starts, which is what lets masked blocks still decode. Hand-written rather than taken from
//! a crate: the maintained codecs (`h2`'s, `loona`'s) are parts of endpoints that own the
//! socket and answer the peer; an observer reads both directions independently, never
//! answers, and must stay in step across lost bytes (see [`walker`]).

pub mod frame;
pub mod hpack;
pub mod huffman;
pub mod walker;
