//! The `agentscope` command: the live collector (`collect`), the investigation console
//! (`tui`), TLS coverage (`coverage`), headless replay and capture-file tools (`replay`, `cap`), baselines (`baseline`) and
//! the prompt-injection scanner (`scan`).

mod baseline_cmd;
mod capture_cmd;
mod collect;
mod coverage;
mod event_output;
mod scan;
mod stdout_pipe;

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
    /// Replay a capture through the same pipeline as live collection (no privileges needed).
    Replay(capture_cmd::ReplayArgs),
    /// Inspect, verify and slice capture files.
    #[command(subcommand)]
    Cap(capture_cmd::CapCommand),
    /// Per-agent baselines: export, compare, check events against approved ones.
    Baseline(baseline_cmd::BaselineArgs),
    /// Score JSON lines (`{"text": ..., "source": ...}`) on stdin for prompt injection.
    #[command(after_help = scan::EXIT_CODES)]
    Scan(scan::ScanArgs),
    /// Per process talking TLS: its servers (SNI) and whether its plaintext is seen, how or
    /// why not.
    Coverage(coverage::CoverageArgs),
    /// Open the investigation console (docs/console.md).
    Tui(agentscope_console::command::TuiArgs),
}

fn main() -> std::process::ExitCode {
    agentscope_memory_budget::return_large_frees_to_the_system();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Collect(args) => collect::run(args).map(|()| true),
        Command::Coverage(args) => coverage::run(args).map(|()| true),
        Command::Replay(args) => capture_cmd::run_replay(args).map(|()| true),
        Command::Cap(command) => capture_cmd::run_cap(command),
        // Reports its own errors: its exit codes say "differences found" too.
        Command::Baseline(args) => return baseline_cmd::run(args),
        // Reports its own errors: its exit codes say "injection found" and "not scanned" too.
        Command::Scan(args) => return scan::run(args),
        Command::Tui(args) => agentscope_console::command::run(args).map(|()| true),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        // The command ran and found a problem it reported (a damaged capture).
        Ok(false) => std::process::ExitCode::FAILURE,
        // The reader of standard output went away (`| head`): not an error.
        Err(err) if stdout_pipe::is_broken_pipe(&err) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Errors quote paths and names that may hold terminal escapes.
            let message = format!("{err:#}");
            eprintln!(
                "agentscope: {}",
                agentscope_console::control_chars::escape_controls_keeping_lines(&message)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
