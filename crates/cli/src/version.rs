//! `agentscope --version`: the release, the commit and build time, the digest of the kernel
//! programs this binary carries, and what this node's kernel offers (for bug reports: two
//! binaries with the same digest load the same programs).

use agentscope_kernel::kernel_features::{kernel_programs_object, KernelFeatures};
use sha2::{Digest, Sha256};

/// `-V`: the release alone.
pub const SHORT: &str = env!("CARGO_PKG_VERSION");

/// `--version`: everything.
pub fn long() -> String {
    let built = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(env!("AGENTSCOPE_BUILT_UNIX").parse::<u64>().unwrap_or(0));
    let object = kernel_programs_object();
    let digest = if object.is_empty() {
        "none (built with AYA_BUILD_SKIP: this binary cannot collect)".to_string()
    } else {
        let hash = Sha256::digest(object);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex} ({} bytes)", object.len())
    };
    format!(
        "{SHORT}\n\
         commit      {}\n\
         built       {}\n\
         bpf object  {digest}\n\
         {}",
        env!("AGENTSCOPE_COMMIT"),
        humantime::format_rfc3339_seconds(built),
        KernelFeatures::detect().describe()
    )
}
