//! `agentscope completions SHELL` and `agentscope man`: shell completions and a man page,
//! generated from the same clap definitions as the parser, so they cannot drift from it.
//! `make build` installs both (Makefile `install-shell-integration`).

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn completions<C: CommandFactory>(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut command = C::command();
    let mut out = crate::stdout_pipe::StdoutPipe::new();
    clap_complete::generate(args.shell, &mut command, "agentscope", &mut out);
    out.flush()?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write one page per command into DIR (agentscope.1, agentscope-collect.1, ...) instead
    /// of the main page to standard output.
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// The man pages, in roff.
pub fn man<C: CommandFactory>(args: ManArgs) -> anyhow::Result<()> {
    let command = C::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(command, &dir)?;
        }
        None => {
            let mut out = crate::stdout_pipe::StdoutPipe::new();
            clap_mangen::Man::new(command).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}
