//! `tui --baseline-store kubernetes`: the console watches the cluster's approved
//! AgentBaselines (as every collector with `--baseline-store kubernetes` does) and hands them
//! to its own session's detection, so what it marks "new" for an agent is relative to the
//! approved baseline the whole cluster judges against. It writes nothing: the node's collector
//! writes the observations. The console is synchronous; the watch runs on a runtime of its own.

use agentscope_identity::KubernetesSource;
use agentscope_session::kubernetes_baseline_store::KubernetesBaselineStore;
use agentscope_session::Session;

pub struct ApprovedWatch {
    store: KubernetesBaselineStore,
    // Declared last: the watch task stops before its runtime goes.
    _runtime: tokio::runtime::Runtime,
}

impl ApprovedWatch {
    /// Starts watching through the API `source` reaches (in-cluster, a kubeconfig).
    pub fn start(source: &KubernetesSource) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("agentscope-baselines")
            .enable_all()
            .build()?;
        let client = runtime
            .block_on(agentscope_identity::kube_client(source))?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--baseline-store kubernetes needs the Kubernetes API (in a pod, or a \
                     kubeconfig)"
                )
            })?;
        let store = {
            let _context = runtime.enter();
            KubernetesBaselineStore::watch_only(client)
        };
        Ok(Self {
            store,
            _runtime: runtime,
        })
    }

    /// Hands the approvals that arrived since the last call to `session`'s detection.
    pub fn apply(&mut self, session: &mut Session) {
        self.store.apply_approved(session);
    }

    /// The approved revision `agent` is judged against, if any.
    pub fn approved_revision(&self, agent: &str) -> Option<u64> {
        self.store.approved_revision(agent)
    }

    /// What went wrong talking to the API.
    pub fn warnings(&self) -> Vec<String> {
        self.store.warnings()
    }
}
