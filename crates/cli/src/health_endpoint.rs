//! The collector's health endpoint for Kubernetes probes (`collect --health-address ADDR`):
//! plain HTTP/1.1 on a TCP address, served by hyper on the collector's runtime.
//!
//! - `GET /readyz`: 200 once the kernel programs are attached and the event loop has turned
//!   within the last [`STALE_AFTER`]; 503 before that, after the stop began, or while the loop
//!   is stuck (a reason in the body).
//! - `GET /livez`: 200 while the loop turns; 503 once it has not for [`STALE_AFTER`], so a
//!   wedged collector is restarted by the kubelet rather than left blind.
//! - anything else: 404.
//!
//! The loop marks itself on its 100 ms timer ([`Health::beat`]); the endpoint only reads two
//! atomics, so a probe never waits on capture, and capture never waits on a probe.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};

/// How long without a turn of the event loop before the collector counts as stuck.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// Where the collector is in its life, as the endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Starting = 0,
    Collecting = 1,
    Stopping = 2,
}

/// What the event loop shares with the endpoint.
#[derive(Debug, Clone)]
pub struct Health {
    origin: Instant,
    /// Milliseconds from `origin` to the loop's last turn.
    last_beat_ms: Arc<AtomicU64>,
    phase: Arc<AtomicU8>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_beat_ms: Arc::new(AtomicU64::new(0)),
            phase: Arc::new(AtomicU8::new(Phase::Starting as u8)),
        }
    }
}

impl Health {
    /// The programs are attached and the loop runs.
    pub fn collecting(&self) {
        self.beat();
        self.phase.store(Phase::Collecting as u8, Ordering::Relaxed);
    }

    /// The stop began: no longer ready (alive until the process ends).
    pub fn stopping(&self) {
        self.phase.store(Phase::Stopping as u8, Ordering::Relaxed);
    }

    /// The event loop turned.
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Collecting,
            2 => Phase::Stopping,
            _ => Phase::Starting,
        }
    }

    /// Time since the loop last turned, at `now`.
    fn since_beat(&self, now: Instant) -> Duration {
        let at = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(self.origin + at)
    }

    /// The answer to `path` at `now`: status and a one-line body.
    fn answer(&self, path: &str, now: Instant) -> (StatusCode, String) {
        let stuck = self.since_beat(now);
        let alive = self.phase() == Phase::Starting || stuck < STALE_AFTER;
        match path {
            "/livez" if alive => (StatusCode::OK, "ok".into()),
            "/livez" => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the event loop has not turned for {} s", stuck.as_secs()),
            ),
            "/readyz" => match self.phase() {
                Phase::Starting => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "starting: the kernel programs are not attached yet".into(),
                ),
                Phase::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping".into()),
                Phase::Collecting if !alive => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the event loop has not turned for {} s", stuck.as_secs()),
                ),
                Phase::Collecting => (StatusCode::OK, "ok".into()),
            },
            _ => (StatusCode::NOT_FOUND, "not found: /readyz, /livez".into()),
        }
    }
}

/// Listens on `address` and answers probes until the process ends. Binding happens here, so an
/// address in use is an error before capture starts.
pub async fn serve(address: SocketAddr, health: Health) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("--health-address {address}: cannot listen"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let health = health.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let (status, body) = health.answer(request.uri().path(), Instant::now());
                    let response = Response::builder()
                        .status(status)
                        .header("content-type", "text/plain; charset=utf-8")
                        .body(Full::new(Bytes::from(body + "\n")));
                    async move { response }
                });
                // A probe that misbehaves (slow, garbage) only ends its own connection.
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                )
                .await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_collecting_and_the_loop_turns() {
        let health = Health::default();
        let now = Instant::now();
        assert_eq!(
            health.answer("/readyz", now).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(health.answer("/livez", now).0, StatusCode::OK);
        health.collecting();
        let now = Instant::now();
        assert_eq!(health.answer("/readyz", now), (StatusCode::OK, "ok".into()));
        // Eleven seconds without a turn: neither ready nor alive.
        let later = now + Duration::from_secs(11);
        let (status, body) = health.answer("/readyz", later);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("has not turned for 1"), "{body}");
        assert_eq!(
            health.answer("/livez", later).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.stopping();
        let (status, body) = health.answer("/readyz", Instant::now());
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "stopping")
        );
        assert_eq!(
            health.answer("/metrics", Instant::now()).0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn answers_over_http() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let health = Health::default();
        let address = serve("127.0.0.1:0".parse().unwrap(), health.clone())
            .await
            .unwrap();
        let get = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        };
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        health.collecting();
        let response = get("/readyz").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("ok\n"), "{response}");
        // The address is taken: a second collector is told at once.
        let err = serve(address, Health::default()).await.unwrap_err();
        assert!(format!("{err:#}").contains("cannot listen"), "{err:#}");
    }
}
