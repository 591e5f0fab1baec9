//! Build facts for `agentscope --version`: the commit this binary was built from and when it
//! was built (`SOURCE_DATE_EPOCH` when set, for reproducible builds; otherwise the build's own
//! time). Outside a git checkout (a source tarball) the commit reads "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let built = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    // No "modified" mark: this script runs again only when HEAD moves, so a mark taken here
    // would go stale as soon as a file changed.
    println!("cargo:rustc-env=AGENTSCOPE_COMMIT={commit}");
    println!("cargo:rustc-env=AGENTSCOPE_BUILT_UNIX={built}");
    // Built again when the checked-out commit moves (a commit, a checkout, a merge).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{head_ref}");
        }
    }
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
}
