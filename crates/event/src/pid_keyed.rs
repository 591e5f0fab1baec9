//! Maps and sets keyed by process ids (alone or with an fd): the tables every event looks
//! itself up in, several times (the process table, the agents' pids, the sessions, the
//! observations waiting for their agent), walked once per process of a lineage.
//!
//! They hash with foldhash's fast hasher instead of the standard library's SipHash: a `u32`
//! took SipHash about 57 instructions, a few percent of the whole pipeline (callgrind over
//! `replay_pipeline`, DEVELOPERS.md, Benchmarks). SipHash is kept everywhere else, in maps keyed
//! by names a watched process chooses (paths, hosts, node names), because foldhash claims no
//! resistance against an attacker who can try many keys. A pid is not such a key: the kernel
//! hands pids out in order in the initial pid namespace, whose numbers the kernel programs
//! report, and choosing one there (`clone3`'s `set_tid`) takes `CAP_SYS_ADMIN` over the host; a
//! container's own pid namespace has its own numbers, never seen here. foldhash is still seeded
//! per map, so a set of pids that collides in one map does not in the next; and a recording
//! (or a served stream) whose pids were chosen by whoever crafted it cannot aim at seeds drawn
//! when it is read: foldhash resists attackers who cannot watch the table, which a file's
//! author cannot.

use std::collections::{HashMap, HashSet};

/// The hasher of [`PidMap`] and [`PidSet`]: foldhash, seeded per map.
pub type PidHasher = foldhash::fast::RandomState;

/// A map keyed by process ids (`u32`, or a pid with another number).
pub type PidMap<K, V> = HashMap<K, V, PidHasher>;

/// A set of process ids.
pub type PidSet<K> = HashSet<K, PidHasher>;
