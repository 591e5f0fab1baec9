//! Errors the collector reports to people: each names what is missing and how to fix it.

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("loading the eBPF programs needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN); run agentscope with sudo, or as a privileged pod (kubectl debug node/NODE --profile=sysadmin)")]
    NotPrivileged,
    #[error("this agentscope was built without its kernel programs (AYA_BUILD_SKIP was set); rebuild without AYA_BUILD_SKIP after `make setup`")]
    BuiltWithoutKernelPrograms,
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({0}); mount it with `mount -t tracefs tracefs /sys/kernel/tracing`")]
    Tracefs(String),
    #[error("the kernel refused to load the eBPF programs ({0}); agentscope needs Linux 5.8+ with BPF ring buffers, BTF and tracepoints enabled")]
    Load(String),
    #[error("kernel feature missing: {what} ({detail}); {fix}")]
    MissingFeature {
        what: String,
        detail: String,
        fix: &'static str,
    },
    #[error("attaching TLS probes failed: {0}; TLS plaintext of that program will be missing (other capture continues)")]
    AttachTls(String),
    #[error("no process with pid {0} (--pid and --no-payloads-of name running processes; it may have exited)")]
    NoSuchProcess(u32),
    #[error("enforcement could not be set up: {0}")]
    Enforcement(String),
    #[error("reading the ring buffer failed: {0}")]
    RingBuffer(String),
}
