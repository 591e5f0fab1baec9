//! `agentscope enforce status|off`: the enforcement pinned in bpffs
//! (`agentscope_kernel::enforcement_pins`), which outlives the collector that set it up:
//! who is governed and how, and removing it all (docs/enforcement.md).

use std::path::PathBuf;

use agentscope_kernel::enforcement_pins::{self, DEFAULT_PIN_DIR};
use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum EnforceCommand {
    /// Which agents the pinned enforcement governs, in which modes, and whether a running
    /// collector owns it.
    Status(PinDirArgs),
    /// Switch enforcement off: every agent is let through at once (even under a running
    /// collector), then the pinned maps and links are removed.
    Off(PinDirArgs),
}

#[derive(Debug, Args)]
pub struct PinDirArgs {
    /// The bpffs directory the collector pinned enforcement in (`collect --pin-dir`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// JSON instead of text (status).
    #[arg(long)]
    json: bool,
}

pub fn run(command: EnforceCommand) -> Result<()> {
    match command {
        EnforceCommand::Status(args) => {
            let status = enforcement_pins::status(&args.pin_dir)?;
            if args.json {
                println!("{}", serde_json::to_string(&status)?);
                return Ok(());
            }
            let Some(status) = status else {
                println!("no enforcement pinned in {}", args.pin_dir.display());
                return Ok(());
            };
            println!(
                "enforcement pinned in {} ({}; {} links, {} programs, {} governed processes)",
                status.dir.display(),
                if status.owned_by_running_collector {
                    "owned by a running collector"
                } else {
                    "no collector running: the next one adopts it"
                },
                status.links.len(),
                status.programs_using_maps,
                status.governed_processes
            );
            for agent in &status.agents {
                println!(
                    "  {} {} rev {}: network {}, exec {}, files {}",
                    agent.scope,
                    agent.baseline,
                    agent.revision,
                    agent.network,
                    agent.exec,
                    agent.files
                );
                if !agent.governed_files.is_empty() {
                    println!("    governed files: {}", agent.governed_files.join(", "));
                }
            }
            Ok(())
        }
        EnforceCommand::Off(args) => {
            if enforcement_pins::remove(&args.pin_dir)? {
                eprintln!(
                    "enforcement off: {} removed, every agent let through",
                    args.pin_dir.display()
                );
            } else {
                eprintln!("no enforcement pinned in {}", args.pin_dir.display());
            }
            Ok(())
        }
    }
}
