//! `--namespace/-n`, `--pod` and `--agent`: which agents `collect`, `replay` and `tui` show
//! and write (the semantics are [`AgentSelector`]'s).

use agentscope_analysis::model::agent_selector::AgentSelector;
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct SelectorArgs {
    /// Show and write only agents in this Kubernetes namespace (their pod's namespace).
    /// Everything is still observed; events are printed for the selected agents' processes.
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Show and write only agents in this pod: NAME, or NS/NAME.
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// Show and write only this agent: its key (`<workload>:<program>`, as `--graph-json` and
    /// `baseline export` list it) or its name.
    #[arg(long, value_name = "KEY|NAME")]
    pub agent: Option<String>,
}

impl SelectorArgs {
    pub fn selector(&self) -> AgentSelector {
        AgentSelector {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            agent: self.agent.clone(),
        }
    }
}
