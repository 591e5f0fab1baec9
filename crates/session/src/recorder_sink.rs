//! The recording sink: a [`Recorder`] fed by a session's steps. Each event is written after
//! the identity answers its step carries; keyframes hold the collector's counters as the
//! session last had them. A failing disk ends the recording, not the run: the sink stops
//! recording, says why in a message, and what was written stays readable. Finishing does not
//! wait for the disk: the caller takes the last syncs ([`RecorderSink::take_on_disk`]) and
//! decides how long to wait for them.

use std::path::Path;
use std::time::Instant;

use agentscope_capture::capture::{OnDisk, Recorder, RecorderOptions, RecordingSummary};
use agentscope_event::Event;

use crate::session::Session;
use crate::sink::Sink;
use crate::step::Step;

pub struct RecorderSink {
    recorder: Option<Recorder>,
    messages: Vec<String>,
    /// The finished recording's last syncs, until taken.
    on_disk: Option<OnDisk>,
}

impl RecorderSink {
    /// Opens the first file, with a keyframe of the session's pipeline as it stands.
    pub fn start(options: RecorderOptions, session: &Session) -> std::io::Result<Self> {
        let mut recorder = Recorder::start_at(options, session.pipeline())?;
        recorder.set_collector_counters(session.collector_counters());
        Ok(Self {
            recorder: Some(recorder),
            messages: Vec::new(),
            on_disk: None,
        })
    }

    /// The file being written (a rotation changes it); `None` once the recording stopped.
    pub fn current_path(&self) -> Option<&Path> {
        self.recorder.as_ref().and_then(Recorder::current_path)
    }

    /// What happened worth telling the user: a recording stopped by an error, the files a
    /// finished recording wrote.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    /// The finished recording's syncs still under way (once, after the session finished).
    pub fn take_on_disk(&mut self) -> Option<OnDisk> {
        self.on_disk.take()
    }

    fn stop(&mut self, err: &std::io::Error) {
        if let Some(recorder) = self.recorder.take() {
            let path = recorder
                .current_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            self.messages.push(format!(
                "recording to {path} stopped: {err}. Collection goes on; the file holds \
                 everything up to the last complete block (check it with `agentscope cap \
                 verify {path}`)"
            ));
        }
    }

    fn describe(&mut self, result: std::io::Result<RecordingSummary>) {
        self.messages.push(match result {
            Ok(done) => {
                let files: Vec<String> =
                    done.files.iter().map(|f| f.display().to_string()).collect();
                format!("recorded {} events to {}", done.events, files.join(", "))
            }
            Err(err) => format!(
                "finishing the recording failed ({err}); what was written before still reads \
                 back (`agentscope cap verify` shows where it ends)"
            ),
        });
    }
}

impl Sink for RecorderSink {
    fn step(
        &mut self,
        event: Option<&Event>,
        step: &Step,
        session: &Session,
    ) -> std::io::Result<()> {
        let Some(recorder) = self.recorder.as_mut() else {
            return Ok(());
        };
        let written = match event {
            Some(event) => recorder.record_after(event, &step.identity_answers, session.pipeline()),
            None => recorder.add_identity_answers(&step.identity_answers),
        };
        if let Err(err) = written {
            self.stop(&err);
        }
        Ok(())
    }

    fn tick(&mut self, now: Instant, session: &Session) -> std::io::Result<()> {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.set_collector_counters(session.collector_counters());
            if let Err(err) = recorder.tick(now) {
                self.stop(&err);
            }
        }
        Ok(())
    }

    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        if let Some(mut recorder) = self.recorder.take() {
            recorder.set_collector_counters(session.collector_counters());
            let result = recorder.finish_after_unsynced(&step.identity_answers, session.pipeline());
            let result = result.map(|(summary, on_disk)| {
                self.on_disk = Some(on_disk);
                summary
            });
            self.describe(result);
        }
        Ok(())
    }
}
