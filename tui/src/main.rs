//! The `agentscope` command. For now it runs the collector (`agentscope collect`); the console
//! arrives in a later release.

mod collect;
mod scan;

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
    /// Score JSON lines (`{"text": ..., "source": ...}`) on stdin for prompt injection.
    Scan(scan::ScanArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Collect(args) => collect::run(args),
        Command::Scan(args) => match scan::run(args) {
            Ok(true) => return std::process::ExitCode::from(2),
            Ok(false) => Ok(()),
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("agentscope: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
