//! Tests.
use super::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../collector/tests/fixtures")
        .join(name)
}

fn options() -> AppOptions {
    let mut o = ConsoleOptions::new(ConsoleConfig::default(), None);
    o.color_mode = Some(ColorMode::TrueColor);
    let mut a = o.app_options().unwrap();
    a.refresh_every_ticks = 1;
    a
}

fn play(name: &str) -> (JsonEventsSource, App) {
    let mut source = JsonEventsSource::open(&fixture(name))
        .unwrap()
        .at_speed(f64::INFINITY);
    let mut app = App::new(options());
    loop {
        let u = source.poll(100000);
        let done = matches!(&u.status.mode, SourceMode::Replay(r) if r.finished);
        app.ingest(u, source.pipeline());
        if done {
            break;
        }
    }
    (source, app)
}

fn draw(app: &mut App, source: &JsonEventsSource, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.render(f, source.pipeline())).unwrap();
    t.draw(|f| app.render(f, source.pipeline())).unwrap();
    format!("{}", t.backend())
}

#[test]
fn explore() {
    for f in ["capture/python_chat.jsonl", "mcp/stdio-pipe-events.jsonl"] {
        let (source, mut app) = play(f);
        println!("{}", draw(&mut app, &source, 120, 40));
        println!("{}", draw(&mut app, &source, 80, 24));
    }
}
