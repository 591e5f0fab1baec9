//! When a recording writes its next keyframe: once an interval of event time has passed since
//! the last one, and only when the rest of the file outweighs its keyframes
//! `REST_BYTES_PER_KEYFRAME_BYTE` times over, counting the next one as large as the last.
//!
//! A keyframe holds the pipeline's whole state (every process, agent and graph edge known), so
//! its size follows the number of agents on the node, not the traffic. On time alone, a node
//! with many agents and little traffic wrote its whole state every 30 s: a synthetic capture of
//! 12,600 agents passed 630 MB, mostly keyframes, where its events would have made about
//! 220 MB. With the byte condition keyframes stay at about a quarter of a file whatever the
//! state's size (more only by what the state grew since the last keyframe, which the estimate
//! of the next one cannot know), and a replay started from a keyframe decodes a bounded amount
//! of events after it. Every file still opens with a keyframe (a rotated file replays on its
//! own) and ends with one; a recording whose state is small next to its traffic keeps one every
//! interval.

/// Bytes of the rest of a file (events, identity answers, the header) per byte of keyframes,
/// the next one included, before that next keyframe is written.
pub const REST_BYTES_PER_KEYFRAME_BYTE: u64 = 3;

/// The keyframe schedule of one file being written.
#[derive(Debug, Clone)]
pub struct KeyframeSchedule {
    interval_ns: u64,
    /// Event time of the last keyframe's state; 0 until the first event when the file opened
    /// with a keyframe of a pipeline that had seen none (the interval runs from the first).
    last_ts_ns: u64,
    /// Bytes of keyframes in the file so far, and the last one's, as stored.
    keyframe_bytes: u64,
    last_len: u64,
}

impl KeyframeSchedule {
    pub fn new(interval_ns: u64) -> Self {
        Self {
            interval_ns,
            last_ts_ns: 0,
            keyframe_bytes: 0,
            last_len: 0,
        }
    }

    /// A keyframe of the state at event time `ts_ns` was written to the file: `len` bytes as
    /// stored.
    pub fn written(&mut self, ts_ns: u64, len: u64) {
        self.last_ts_ns = ts_ns;
        self.last_len = len;
        self.keyframe_bytes = self.keyframe_bytes.saturating_add(len);
    }

    /// Whether a keyframe is due after an event at `ts_ns`, with `bytes_written` bytes in the
    /// file (its blocks as stored, keyframes included; the open chunk is at most one chunk
    /// more).
    pub fn due(&mut self, ts_ns: u64, bytes_written: u64) -> bool {
        if self.last_ts_ns == 0 {
            self.last_ts_ns = ts_ns;
        }
        let rest = bytes_written.saturating_sub(self.keyframe_bytes);
        let with_next = self.keyframe_bytes.saturating_add(self.last_len);
        ts_ns.saturating_sub(self.last_ts_ns) >= self.interval_ns
            && rest >= with_next.saturating_mul(REST_BYTES_PER_KEYFRAME_BYTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// A file of `minutes` events, one a minute of `event_len` bytes, after an opening
    /// keyframe; the state grows `growth` bytes a minute. Returns the keyframes written and the
    /// share of the file they are.
    fn simulate(minutes: u64, event_len: u64, state: u64, growth: u64) -> (u64, f64) {
        let mut schedule = KeyframeSchedule::new(30 * SECOND);
        let (mut file, mut keyframe_bytes, mut state, mut count) = (100 + state, state, state, 0);
        schedule.written(0, state);
        for minute in 1..=minutes {
            file += event_len;
            state += growth;
            if schedule.due(minute * 60 * SECOND, file) {
                file += state;
                keyframe_bytes += state;
                count += 1;
                schedule.written(minute * 60 * SECOND, state);
            }
        }
        (count, keyframe_bytes as f64 / file as f64)
    }

    #[test]
    fn a_small_state_gets_a_keyframe_every_interval() {
        let mut schedule = KeyframeSchedule::new(30 * SECOND);
        schedule.written(0, 1_000);
        assert!(
            !schedule.due(5 * SECOND, 50_000),
            "the interval runs from the first event"
        );
        assert!(!schedule.due(34 * SECOND, 50_000));
        assert!(schedule.due(35 * SECOND, 50_000));
        schedule.written(35 * SECOND, 1_000);
        assert!(!schedule.due(64 * SECOND, 90_000));
        assert!(schedule.due(65 * SECOND, 90_000));
        // Traffic that outweighs a small state: one every interval (the first a minute after
        // the first event).
        assert_eq!(simulate(600, 10_000, 1_000, 0).0, 599);
    }

    #[test]
    fn a_large_state_waits_for_the_rest_of_the_file_to_outweigh_the_keyframes() {
        let mut schedule = KeyframeSchedule::new(30 * SECOND);
        schedule.written(10 * SECOND, 1_000_000);
        // Hours of event time later, the file holds 1 MB of keyframe and 5.9 MB of the rest:
        // a second keyframe as large would make them more than a quarter.
        assert!(!schedule.due(7_200 * SECOND, 6_999_999));
        assert!(schedule.due(7_200 * SECOND, 7_000_000));
    }

    #[test]
    fn keyframes_stay_about_a_quarter_of_a_file_whatever_the_state() {
        // Two days, a 5 KB event a minute next to a 1 MB state: on time alone every event
        // would be followed by a keyframe of the whole state.
        let (count, share) = simulate(2_880, 5_000, 1_000_000, 0);
        assert!(
            count > 0 && share <= 0.25,
            "{count} keyframes, {share:.3} of the file"
        );
        // The state growing by a quarter of the traffic (many new agents, few events each):
        // the share exceeds a quarter only by what the state grew since the last keyframe.
        let (count, share) = simulate(2_880, 2_000, 10_000, 500);
        assert!(
            count >= 5 && share <= 0.3,
            "{count} keyframes, {share:.3} of the file"
        );
    }
}
