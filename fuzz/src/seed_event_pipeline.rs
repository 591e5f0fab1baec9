//! Writes the seed corpus of the `event_pipeline` fuzz target from real captures: JSON-lines
//! event files (`collect --json` output, the test fixtures) and `.cap` recordings.
//!
//! Usage: `seed_event_pipeline OUT_DIR FILE...` (see DEVELOPERS.md, "Fuzzing"). Each capture
//! gives whole-sequence seeds under both pipeline configurations, and windows of
//! [`WINDOW`] consecutive events (a fuzzer works best with many small inputs).

use std::path::{Path, PathBuf};

use agentscope_capture::capture::{codec::Entry, CaptureReader};
use agentscope_event::event::Event;
use agentscope_event::event_json::events_from_json_lines;

const WINDOW: usize = 48;
/// `scripts/fuzz.sh` runs with `-max_len=262144`; longer seeds would be cut.
const MAX_SEED: usize = 262_144;

fn events_of(path: &Path) -> Result<Vec<Event>, String> {
    let shown = path.display();
    if path.extension().is_some_and(|e| e == "cap") {
        let reader = CaptureReader::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut events = Vec::new();
        for block in reader.event_blocks() {
            let (_, entries, _) = reader.read_events(block);
            events.extend(entries.into_iter().filter_map(|entry| match entry {
                Entry::Event(event) => Some(event),
                _ => None,
            }));
        }
        Ok(events)
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        events_from_json_lines(&text).map_err(|e| format!("{shown}: {e}"))
    }
}

fn main() -> Result<(), String> {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: seed_event_pipeline OUT_DIR FILE...")?,
    );
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut written = 0;
    for path in args.map(PathBuf::from) {
        let events = events_of(&path)?;
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let mut seeds = Vec::new();
        for config in 0..4u8 {
            seeds.push((
                format!("{stem}-all-{config}"),
                event_script::encode(&events, config),
            ));
        }
        for (i, window) in events.chunks(WINDOW).enumerate() {
            seeds.push((format!("{stem}-{i:04}"), event_script::encode(window, 1)));
        }
        for (name, bytes) in seeds {
            if bytes.len() <= MAX_SEED {
                let file = out.join(name);
                std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))?;
                written += 1;
            }
        }
        eprintln!("{}: {} events", path.display(), events.len());
    }
    eprintln!("{written} seeds in {}", out.display());
    Ok(())
}
