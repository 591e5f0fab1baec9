//! Builds the kernel programs in `collector-ebpf/` for the BPF target and embeds them.
//! `AYA_BUILD_SKIP=1` skips this for people working on userspace only; the collector then
//! reports at run time that it was built without kernel programs.
use aya_build::{Package, Toolchain};

fn main() {
    println!("cargo:rustc-check-cfg=cfg(agentscope_ebpf_skipped)");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let skipped = std::env::var("AYA_BUILD_SKIP")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false);
    if skipped {
        println!("cargo:rustc-cfg=agentscope_ebpf_skipped");
    }
    let package = Package {
        name: "agentscope-collector-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../collector-ebpf"),
        ..Default::default()
    };
    if let Err(err) = aya_build::build_ebpf([package], Toolchain::Nightly) {
        panic!(
            "building the eBPF programs failed: {err:#}\n\
             run `make setup` (nightly rust-src, LLVM 22, bpf-linker), or set AYA_BUILD_SKIP=1 \
             to build userspace only"
        );
    }
}
