//! Console frame time and memory: an agent with a 10,000-node execution graph and a timeline
//! of 100,000 observations, drawn to a 120x40 TestBackend frame.
//!
//! The state is built the way the console builds it: the real capture
//! `tests/fixtures/capture/python_chat.jsonl` (an agent calling a model that asks
//! for tools) followed by 100,000 file opens of the agent process over 10,000 distinct files,
//! fed through the pipeline by the JSON-lines source and ingested by the app. Detail is
//! measured over a 1 MiB payload of prose (word wrapping's worst case: every row breaks at a
//! space), scrolled to its end.
//!
//! Reports, besides criterion's timings, the memory the pipeline and the console state hold
//! (a counting allocator: bytes live after building minus before) and the peak RSS.
//! Run: `cargo bench -p agentscope-console --bench console_render` (or `make bench`).

use agentscope_console as console;

use std::path::Path;

use agentscope_analysis::model::ModelOptions;
use agentscope_event::event::{Event, EventBody};
use agentscope_event::event_json::events_from_json_lines;
use agentscope_memory_budget::heap_counter::HeapCounter;
use console::app::PaneId;
use console::graph_pane::GraphPane;
use console::json_source::ManualClock;
use console::log::LogLimits;
use console::text::{text_lines, ScrollText};
use console::timeline_pane::TimelinePane;
use console::{App, ColorMode, ConsoleConfig, ConsoleOptions, JsonEventsSource, Source};
use criterion::{black_box, Criterion};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::Terminal;

const FILES: usize = 10_000;
const OPENS: usize = 100_000;

#[global_allocator]
static ALLOCATOR: HeapCounter = HeapCounter;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The capture, with the agent's exit moved after 100,000 file opens of its own.
fn events() -> Vec<Event> {
    let path = Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures/capture/python_chat.jsonl");
    let mut events = events_from_json_lines(&std::fs::read_to_string(path).unwrap()).unwrap();
    let agent = events
        .iter()
        .find(|e| matches!(e.body, EventBody::Data { .. }))
        .map(|e| e.header.clone())
        .expect("the capture has the agent's payloads");
    let exits: Vec<Event> = events
        .iter()
        .filter(|e| e.header.pid == agent.pid && matches!(e.body, EventBody::Exit { .. }))
        .cloned()
        .collect();
    events.retain(|e| !(e.header.pid == agent.pid && matches!(e.body, EventBody::Exit { .. })));
    let mut ts = events.last().unwrap().header.ts_ns;
    for i in 0..OPENS {
        ts += 10_000;
        let mut header = agent.clone();
        header.ts_ns = ts;
        header.time_unix_ns = agent.time_unix_ns + (ts - agent.ts_ns);
        events.push(Event {
            header,
            body: EventBody::Open {
                syscall: "openat",
                path: format!("/srv/warehouse/part-{:05}.parquet", i % FILES),
                path_truncated: false,
                dfd: -100,
                flags: 0,
                mode: 0,
                ret: 3,
            },
        });
    }
    for mut exit in exits {
        exit.header.ts_ns = ts + 1;
        events.push(exit);
    }
    events
}

fn key(app: &mut App, code: KeyCode) {
    app.handle_event(&TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn main() {
    let rss_before = peak_rss_kib();
    let live_before = HeapCounter::live_bytes();
    let events = events();
    let options = {
        let mut options = ConsoleOptions::new(ConsoleConfig::default(), None);
        options.color_mode = Some(ColorMode::TrueColor);
        let mut app = options.app_options().unwrap();
        app.refresh_every_ticks = 1;
        app.adaptive_refresh = false;
        app.log_limits = LogLimits {
            entries: OPENS + 1000,
            ..LogLimits::default()
        };
        app
    };

    let clock = ManualClock::default();
    let mut source = JsonEventsSource::from_events("bench", events)
        .with_clock(Box::new(clock.clone()))
        .with_model_options(ModelOptions::default())
        .at_speed(f64::INFINITY);
    let live_events = HeapCounter::live_bytes();
    let mut app = App::new(options);
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    loop {
        let update = source.poll(usize::MAX);
        let done = matches!(&update.status.mode, console::SourceMode::Replay(r) if r.finished);
        app.ingest(update, source.pipeline());
        if done {
            break;
        }
    }
    terminal.draw(|f| app.render(f, source.pipeline())).unwrap();
    let live_after = HeapCounter::live_bytes();
    let agent = app.current_agent().unwrap().to_string();
    let log_len = app.logs().agent(&agent).unwrap().len();
    let nodes = source.pipeline().model().graph().nodes().count();
    eprintln!(
        "console state: {nodes} graph nodes, {log_len} timeline entries for {agent}\n\
         memory: events in the source {:.1} MiB; pipeline + console state {:.1} MiB live; \
         peak RSS {:.1} MiB (before: {:.1} MiB)",
        (live_events - live_before) as f64 / (1 << 20) as f64,
        (live_after - live_events) as f64 / (1 << 20) as f64,
        peak_rss_kib() as f64 / 1024.0,
        rss_before as f64 / 1024.0,
    );
    assert!(nodes >= FILES, "the graph has {nodes} nodes");
    assert!(log_len >= OPENS, "the timeline has {log_len} entries");

    let mut c = Criterion::default().configure_from_args();

    // The graph pane, scrolled into the middle of the 10,000 data nodes.
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus(), PaneId::Graph);
    for _ in 0..150 {
        key(&mut app, KeyCode::PageDown);
    }
    c.bench_function("frame 120x40: graph of 10k nodes", |b| {
        b.iter(|| {
            terminal.draw(|f| app.render(f, source.pipeline())).unwrap();
        })
    });

    // The timeline, in the middle of 100,000 entries, then following the end.
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus(), PaneId::Timeline);
    key(&mut app, KeyCode::Home);
    for _ in 0..1000 {
        key(&mut app, KeyCode::PageDown);
    }
    c.bench_function("frame 120x40: timeline of 100k events", |b| {
        b.iter(|| {
            terminal.draw(|f| app.render(f, source.pipeline())).unwrap();
        })
    });

    // The work done a few times a second, not per frame: re-reading the graph, and a new
    // filter over the whole timeline.
    let graph = source.pipeline().model().graph();
    let mut pane = GraphPane::default();
    pane.set_agent(Some(&agent), graph);
    c.bench_function("graph view rebuild: 10k nodes", |b| {
        b.iter(|| pane.rebuild(black_box(graph)))
    });
    let log = app.logs().agent(&agent);
    let mut timeline = TimelinePane::default();
    timeline.set_agent(Some(&agent));
    c.bench_function("timeline filter: 100k entries", |b| {
        b.iter(|| timeline.set_filter(black_box("part-0420".into()), log))
    });

    // Detail (the 120x40 layout's detail pane: 38x22 inside its border) over a 1 MiB payload,
    // at its end. A frame wraps only the rows on screen; where the end is (a screenful wrapped
    // from the last line) is remembered until the text or the pane size changes, so the
    // second bench (the width changing every time) is its cost uncached.
    let payload: String = (0..17_000)
        .map(|i| format!("row {i}: the quick brown fox jumps over the lazy dog once more\n"))
        .collect();
    assert!(payload.len() >= 1 << 20, "{} bytes", payload.len());
    let mut detail = ScrollText::default();
    detail.set(text_lines(&payload, Style::new()), false);
    let area = Rect::new(81, 1, 38, 22);
    detail.last_area = area;
    detail.scroll_to_end();
    c.bench_function("frame: Detail at the end of 1 MiB", |b| {
        b.iter(|| {
            terminal
                .draw(|f| detail.render(f, black_box(area)))
                .unwrap();
        })
    });
    let mut width = 38;
    c.bench_function("Detail: where 1 MiB ends (uncached)", |b| {
        b.iter(|| {
            width = if width == 38 { 39 } else { 38 };
            detail.last_area = Rect { width, ..area };
            black_box(detail.max_scroll())
        })
    });
    c.final_summary();
}
