//! The collector's running totals (events received, lost in the kernel, undecodable): what a
//! session tells detection about losses, and what every capture keyframe stores.

use serde::{Deserialize, Serialize};

/// The collector's counters (cumulative since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorCounters {
    pub received: u64,
    pub kernel_dropped: u64,
    pub kernel_lost_bytes: u64,
    pub decode_errors: u64,
}
