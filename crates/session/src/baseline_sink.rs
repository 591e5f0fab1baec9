//! The baseline sink: when the run ends, every agent's baseline as detection learned it
//! (with what was lost while it learned, so a baseline learned during drops says `partial`
//! or carries its loss) is written to a directory, one file per agent, in the format of
//! `agentscope baseline export` (docs/baseline.md), ready for review and `--baseline DIR`.

use std::path::{Path, PathBuf};

use agentscope_analysis::baseline::file_name_for;
use agentscope_event::Event;

use crate::session::Session;
use crate::sink::Sink;
use crate::step::Step;

pub struct BaselineDirSink {
    dir: PathBuf,
    written: Vec<PathBuf>,
}

impl BaselineDirSink {
    /// Baselines go to `dir` (created, mode 0700, if missing), replacing the files of the same
    /// agents (each file is named after its agent key).
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            written: Vec::new(),
        })
    }

    /// The files written when the run ended.
    pub fn written(&self) -> &[PathBuf] {
        &self.written
    }
}

impl Sink for BaselineDirSink {
    fn step(&mut self, _: Option<&Event>, _: &Step, _: &Session) -> std::io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, _: &Step, session: &Session) -> std::io::Result<()> {
        for baseline in session.pipeline().detector().learner().baselines() {
            let path = self.dir.join(file_name_for(&baseline.metadata.agent));
            baseline
                .write_to(&path)
                .map_err(|err| std::io::Error::other(err.to_string()))?;
            self.written.push(path);
        }
        Ok(())
    }
}
