//! What consumes a [`Session`](super::Session)'s steps: a recording, a served stream, the
//! event printer, a baseline writer, the console. A sink sees every event after the pipeline
//! has been fed it, with the [`Step`] it produced, and the session as it stands then.
//!
//! Sinks compose: `()` is no sink, `Option<S>` a sink that may be absent, `(A, B)` both in
//! order, `&mut S` and `Box<S>` the sink they point to.

use std::time::Instant;

use agentscope_event::Event;

use super::step::Step;
use super::Session;

pub trait Sink {
    /// The session was fed `event` (`None`: the step had no event, e.g. losses only) and
    /// produced `step`. An error ends the run (a sink that can fail on its own, like a
    /// recording on a full disk, handles that itself and carries on without it).
    fn step(
        &mut self,
        event: Option<&Event>,
        step: &Step,
        session: &Session,
    ) -> std::io::Result<()>;

    /// Time passed (about every 100 ms while a driver runs): flush, send status, rotate.
    fn tick(&mut self, _now: Instant, _session: &Session) -> std::io::Result<()> {
        Ok(())
    }

    /// The run ended: `step` is what the pipeline's final flush produced (exchanges cut
    /// short, the identity answers they asked for).
    fn finish(&mut self, _step: &Step, _session: &Session) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink for () {
    fn step(&mut self, _: Option<&Event>, _: &Step, _: &Session) -> std::io::Result<()> {
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn step(
        &mut self,
        event: Option<&Event>,
        step: &Step,
        session: &Session,
    ) -> std::io::Result<()> {
        (**self).step(event, step, session)
    }
    fn tick(&mut self, now: Instant, session: &Session) -> std::io::Result<()> {
        (**self).tick(now, session)
    }
    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        (**self).finish(step, session)
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn step(
        &mut self,
        event: Option<&Event>,
        step: &Step,
        session: &Session,
    ) -> std::io::Result<()> {
        (**self).step(event, step, session)
    }
    fn tick(&mut self, now: Instant, session: &Session) -> std::io::Result<()> {
        (**self).tick(now, session)
    }
    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        (**self).finish(step, session)
    }
}

impl<S: Sink> Sink for Option<S> {
    fn step(
        &mut self,
        event: Option<&Event>,
        step: &Step,
        session: &Session,
    ) -> std::io::Result<()> {
        match self {
            Some(sink) => sink.step(event, step, session),
            None => Ok(()),
        }
    }
    fn tick(&mut self, now: Instant, session: &Session) -> std::io::Result<()> {
        match self {
            Some(sink) => sink.tick(now, session),
            None => Ok(()),
        }
    }
    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        match self {
            Some(sink) => sink.finish(step, session),
            None => Ok(()),
        }
    }
}

/// Both, first `A` then `B`; the first error stops the rest.
impl<A: Sink, B: Sink> Sink for (A, B) {
    fn step(
        &mut self,
        event: Option<&Event>,
        step: &Step,
        session: &Session,
    ) -> std::io::Result<()> {
        self.0.step(event, step, session)?;
        self.1.step(event, step, session)
    }
    fn tick(&mut self, now: Instant, session: &Session) -> std::io::Result<()> {
        self.0.tick(now, session)?;
        self.1.tick(now, session)
    }
    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        self.0.finish(step, session)?;
        self.1.finish(step, session)
    }
}
