//! The `agentscope` command. For now it runs the collector (`agentscope collect`); the console
//! arrives in a later release.

mod baseline_cmd;
mod collect;

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
    /// Per-agent baselines: export, compare, check events against approved ones.
    Baseline(baseline_cmd::BaselineArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Collect(args) => collect::run(args),
        // Reports its own errors: its exit codes say "differences found" too.
        Command::Baseline(args) => return baseline_cmd::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("agentscope: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
