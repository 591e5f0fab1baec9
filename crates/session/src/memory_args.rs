//! `--memory-budget SIZE`, shared by every command that runs the pipeline (`collect`,
//! `replay`, `tui`): how much the pipeline may keep (see `agentscope_memory_budget`).

use agentscope_memory_budget::DEFAULT_MEMORY_BUDGET;
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct MemoryArgs {
    /// Memory the pipeline may keep — bodies being reassembled, buffers, tool calls, graph,
    /// findings, console queues — as `64M`, `256M` (default 64M; a replay defaults to the
    /// capture's). At the budget records are cut or evicted, flagged and counted; the
    /// collector stays under this plus the fixed overhead the README states.
    #[arg(long, value_name = "SIZE", value_parser = crate::size_arg::parse_size)]
    pub memory_budget: Option<u64>,
}

impl MemoryArgs {
    /// The budget asked for, or the default.
    pub fn bytes(&self) -> usize {
        self.asked().unwrap_or(DEFAULT_MEMORY_BUDGET)
    }

    /// The budget asked for on the command line, if any.
    pub fn asked(&self) -> Option<usize> {
        self.memory_budget
            .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
    }
}
