//! The `agentscope` command: the live collector (`collect`), the investigation console
//! (`tui`), TLS coverage (`coverage`), posture (`posture`), headless replay and capture-file tools (`replay`,
//! `cap`), baselines (`baseline`), the prompt-injection scanner (`scan`), and its own shell
//! completions and man pages. Conventions shared by every command (output formats, exit
//! statuses, error messages) are in docs/cli.md.

mod aibom_cmd;
mod baseline_cluster_cmd;
mod baseline_cmd;
mod capture_cmd;
mod collect;
mod coverage;
mod enforce_cmd;
mod enforce_policy;
mod error_report;
mod event_output;
mod exit_status;
mod governed_files;
mod health_endpoint;
mod live_session;
mod loop_turns;
mod otlp_args;
mod output_format;
mod posture_cmd;
mod scan;
mod shell_integration;
mod stdout_lines;
mod stdout_pipe;
mod stdout_queue;
mod thread_time;
mod version;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agentscope",
    version = version::SHORT,
    about = "Watch AI agents from outside, with eBPF: agent → tool → API → data → identity",
    after_help = exit_status::EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the live collector (needs root).
    // Boxed: its options are many times the size of the other commands'.
    Collect(Box<collect::CollectArgs>),
    /// Replay a capture through the same pipeline as live collection (no privileges needed).
    Replay(capture_cmd::ReplayArgs),
    /// Inspect, verify and slice capture files.
    #[command(subcommand, after_help = exit_status::EXIT_STATUS_HELP)]
    Cap(capture_cmd::CapCommand),
    /// Per-agent baselines: export, compare, check events against approved ones.
    #[command(after_help = exit_status::EXIT_STATUS_HELP)]
    Baseline(baseline_cmd::BaselineArgs),
    /// Score JSON lines (`{"text": ..., "source": ...}`) on stdin for prompt injection; one
    /// JSON line out per line in.
    #[command(after_help = exit_status::EXIT_STATUS_HELP)]
    Scan(scan::ScanArgs),
    /// Pinned enforcement: who is governed, and switching it off (docs/enforcement.md).
    #[command(subcommand)]
    Enforce(enforce_cmd::EnforceCommand),
    /// Per process talking TLS: its servers (SNI) and whether its plaintext is seen, how or
    /// why not.
    Coverage(coverage::CoverageArgs),
    /// Agents' AI bill of materials: models, MCP servers and tools, APIs, data stores,
    /// frameworks and packages with their versions; as text, JSON, YAML or CycloneDX 1.6.
    Aibom(aibom_cmd::AibomArgs),
    /// Per agent: what it may do (RBAC, tools, network policy, secrets) against what it was
    /// seen doing, with risk scores and least-privilege artifacts (docs/posture.md).
    Posture(Box<posture_cmd::PostureArgs>),
    /// Open the investigation console (docs/console.md).
    Tui(agentscope_console::command::TuiArgs),
    /// Write shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions(shell_integration::CompletionsArgs),
    /// Write the man page (roff) to standard output, or every command's page into a directory.
    Man(shell_integration::ManArgs),
}

fn main() -> std::process::ExitCode {
    agentscope_memory_budget::return_large_frees_to_the_system();
    // `--version` describes the build and this node's kernel, computed when asked.
    let cli = Cli::from_arg_matches_or_exit();
    let result = match cli.command {
        Command::Collect(args) => collect::run(*args).map(|()| exit_status::OK),
        Command::Coverage(args) => coverage::run(args).map(|()| exit_status::OK),
        Command::Aibom(args) => aibom_cmd::run(args).map(|()| exit_status::OK),
        Command::Posture(args) => posture_cmd::run(*args).map(|()| exit_status::OK),
        Command::Replay(args) => capture_cmd::run_replay(args).map(|()| exit_status::OK),
        Command::Cap(command) => capture_cmd::run_cap(command),
        Command::Baseline(args) => baseline_cmd::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Enforce(command) => enforce_cmd::run(command).map(|()| exit_status::OK),
        Command::Tui(args) => agentscope_console::command::run(args).map(|()| exit_status::OK),
        Command::Completions(args) => {
            shell_integration::completions::<Cli>(args).map(|()| exit_status::OK)
        }
        Command::Man(args) => shell_integration::man::<Cli>(args).map(|()| exit_status::OK),
    };
    match result {
        Ok(status) => exit_status::code(status),
        // The reader of standard output went away (`| head`): not an error.
        Err(err) if stdout_pipe::is_broken_pipe(&err) => exit_status::code(exit_status::OK),
        Err(err) => {
            eprintln!("{}", error_report::describe(&err));
            exit_status::code(exit_status::ERROR)
        }
    }
}

trait ParseWithLongVersion: Sized {
    fn from_arg_matches_or_exit() -> Self;
}

impl ParseWithLongVersion for Cli {
    fn from_arg_matches_or_exit() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command();
        // Only `--version` pays for reading the kernel's features and hashing the programs.
        if std::env::args_os().any(|arg| arg == "--version") {
            // Built once per process, which then exits: leaking it is what clap's `&'static str` asks.
            command = command.long_version(&*Box::leak(version::long().into_boxed_str()));
        }
        let matches = command.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
}

#[cfg(test)]
mod cli_definition {
    use clap::CommandFactory;

    /// clap's own consistency checks (conflicting names, bad defaults) over every command.
    #[test]
    fn the_definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }

    /// Every visible argument of every command says what it is for in `--help`.
    #[test]
    fn every_argument_is_described() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !arg.is_hide_set() && !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "agentscope", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:#?}");
    }
}
