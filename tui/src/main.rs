//! The `agentscope` command: the collector (`agentscope collect`) and the investigation
//! console (`agentscope tui`).

mod collect;
mod console;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agentscope",
    version,
    about = "Watch AI agents from outside, with eBPF: agent → tool → API → data → identity"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the live collector (needs root).
    Collect(collect::CollectArgs),
    /// Open the investigation console (docs/console.md).
    Tui(console::command::TuiArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Collect(args) => collect::run(args),
        Command::Tui(args) => console::command::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("agentscope: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
