//! The stream-server sink: consoles attached to `collect --serve SOCKET` get every event
//! after the identity answers its step carries, status and keyframes on ticks, and the end.

use std::path::Path;
use std::time::Instant;

use agentscope_capture::serve::{ServeError, ServeOptions, StreamServer};
use agentscope_event::Event;

use crate::session::Session;
use crate::sink::Sink;
use crate::step::Step;

pub struct ServerSink {
    server: Option<StreamServer>,
    /// The socket, kept after the server finished.
    path: std::path::PathBuf,
    messages: Vec<String>,
}

impl ServerSink {
    /// Creates the socket and starts accepting consoles.
    pub fn listen(options: ServeOptions) -> Result<Self, ServeError> {
        let server = StreamServer::listen(options)?;
        Ok(Self {
            path: server.path().to_path_buf(),
            server: Some(server),
            messages: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Consoles that attached, were refused or went away.
    pub fn take_messages(&mut self) -> Vec<String> {
        let mut messages = std::mem::take(&mut self.messages);
        if let Some(server) = self.server.as_mut() {
            messages.extend(server.take_messages());
        }
        messages
    }
}

impl Sink for ServerSink {
    fn step(&mut self, event: Option<&Event>, step: &Step, _: &Session) -> std::io::Result<()> {
        if let (Some(server), Some(event)) = (self.server.as_mut(), event) {
            server.publish(event, &step.identity_answers);
        }
        Ok(())
    }

    fn tick(&mut self, now: Instant, session: &Session) -> std::io::Result<()> {
        if let Some(server) = self.server.as_mut() {
            server.tick(now, session.pipeline(), session.collector_counters());
        }
        Ok(())
    }

    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        if let Some(mut server) = self.server.take() {
            self.messages.extend(server.take_messages());
            server.finish(
                &step.identity_answers,
                session.collector_counters(),
                "the collector stopped",
            );
        }
        Ok(())
    }
}
