//! Classification of the files a process opens: secrets, system configuration, runtime noise
//! or application data.
//!
//! [`classify`] works on the path alone (as captured by the `open` event: absolute, or
//! relative to the working directory), so it never touches the file system. Secrets are
//! recognised by well-known locations and names (credential files of cloud CLIs, SSH keys,
//! Kubernetes service-account tokens, `.env` files, private keys, password databases, ...);
//! runtime noise is what every process reads just to run (shared libraries, interpreter
//! standard libraries and packages, `/proc`, `/sys`, `/dev`, locale and time-zone data, name
//! resolution settings), so a view can hide it. The part of runtime noise the kernel programs
//! leave out is decided once, by `agentscope_common::noise_paths`: those paths are noise here
//! without further checks (a test below proves none of them is a secret or anything else).

use std::borrow::Cow;

use agentscope_common::noise_paths;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// Kubernetes (or cloud workload identity) service-account token.
    ServiceAccountToken,
    /// AWS, Google Cloud, Azure, Oracle Cloud and other cloud CLI credentials.
    CloudCredentials,
    /// SSH private keys, `authorized_keys`, host keys.
    SshKey,
    /// `.env` files and other environment files.
    EnvFile,
    Kubeconfig,
    /// Private keys and key stores (`*.key`, `*-key.pem`, `*.p12`, `/etc/ssl/private`).
    TlsPrivateKey,
    /// `/etc/shadow`, `/etc/gshadow` and similar.
    PasswordDatabase,
    Netrc,
    Pgpass,
    /// Client configuration of other databases (`.my.cnf`).
    DatabaseCredentials,
    /// Docker/Podman registry credentials.
    DockerConfig,
    GitCredentials,
    /// npm, PyPI, Cargo, RubyGems tokens.
    PackageRegistryToken,
    /// CLI tokens of hosted services (GitHub CLI, Hugging Face).
    ApiToken,
    /// Browser password stores and cookies.
    BrowserData,
    /// GNOME keyring, GnuPG private keys, password-store.
    Keyring,
    /// Files mounted by an orchestrator as secrets (`/run/secrets`).
    MountedSecret,
    /// Another process's environment (`/proc/PID/environ`): holds its credentials.
    ProcessEnvironment,
    /// Process or kernel memory (`/proc/PID/mem`, `/dev/mem`, `/proc/kcore`).
    ProcessMemory,
    /// Shell history, which often holds secrets typed on command lines.
    ShellHistory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "category", content = "kind", rename_all = "snake_case")]
pub enum FileCategory {
    Secret(SecretKind),
    /// Operating-system configuration and boot files.
    System,
    /// Read by every process to run; usually hidden.
    RuntimeNoise,
    /// Everything else: the data the application itself works on.
    ApplicationData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    None,
    Low,
    Medium,
    High,
}

/// What a path is. Serialises as
/// `{"category":"secret","kind":"ssh_key","sensitivity":"high","label":"SSH private key"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileClass {
    #[serde(flatten)]
    pub category: FileCategory,
    pub sensitivity: Sensitivity,
    /// Short description for people.
    pub label: &'static str,
}

impl FileClass {
    pub fn is_secret(&self) -> bool {
        matches!(self.category, FileCategory::Secret(_))
    }
}

fn secret(kind: SecretKind, sensitivity: Sensitivity, label: &'static str) -> FileClass {
    FileClass {
        category: FileCategory::Secret(kind),
        sensitivity,
        label,
    }
}

fn class(category: FileCategory, sensitivity: Sensitivity, label: &'static str) -> FileClass {
    FileClass {
        category,
        sensitivity,
        label,
    }
}

/// Classifies a path as opened (absolute or relative; `..` and `.` components are resolved
/// lexically, without looking at the file system).
pub fn classify(path: &str) -> FileClass {
    let normalized = normalize(path);
    let path = normalized.as_ref();
    if noise_paths::is_droppable(path.as_bytes()) {
        // What the kernel leaves out when it is opened read-only: never a secret by the rules
        // below (tests::kernel_noise_filter_agrees_with_the_classifier).
        return noise_class(path).unwrap_or(class(
            FileCategory::RuntimeNoise,
            Sensitivity::None,
            "runtime noise",
        ));
    }
    secret_class(path)
        .or_else(|| noise_class(path))
        .or_else(|| system_class(path))
        .unwrap_or_else(|| {
            class(
                FileCategory::ApplicationData,
                Sensitivity::Low,
                "application file",
            )
        })
}

/// Collapses `//`, `.` and `..` (lexically) so `/etc/../etc/shadow` is seen as `/etc/shadow`.
fn normalize(path: &str) -> Cow<'_, str> {
    let clean = !path.contains("//")
        && !path.split('/').any(|part| part == "." || part == "..")
        && (path.len() <= 1 || !path.ends_with('/'));
    if clean {
        return Cow::Borrowed(path);
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    Cow::Owned(if absolute {
        format!("/{joined}")
    } else {
        joined
    })
}

/// True when `path` is `suffix` or ends with `/suffix`.
fn ends_with_component(path: &str, suffix: &str) -> bool {
    path == suffix
        || path
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('/'))
}

/// True when `path` has `dir` as a run of whole components (`dir` like `.ssh` or `.aws/sso`)
/// with something after it.
fn has_dir(path: &str, dir: &str) -> bool {
    let bytes = path.as_bytes();
    // A match can only start a component: trying `dir` at each component's start costs a
    // few byte comparisons, where a substring searcher (the standard one, or memmem's) is
    // built anew on every call (classification runs on every file open, ~14 calls each).
    let mut starts = std::iter::once(0).chain(memchr::memchr_iter(b'/', bytes).map(|at| at + 1));
    starts.any(|at| {
        bytes[at..].starts_with(dir.as_bytes())
            && bytes.get(at + dir.len()) == Some(&b'/')
            && at + dir.len() + 1 < bytes.len()
    })
}

fn secret_class(path: &str) -> Option<FileClass> {
    use SecretKind::*;
    use Sensitivity::{High, Low, Medium};
    let name = path.rsplit('/').next().unwrap_or(path);
    let lower_name = name.to_ascii_lowercase();

    // Kubernetes and cloud workload-identity tokens.
    if let Some(rest) = path
        .strip_prefix("/var/run/secrets/")
        .or_else(|| path.strip_prefix("/run/secrets/"))
    {
        if rest.starts_with("kubernetes.io/serviceaccount/") {
            return Some(if name == "token" {
                secret(
                    ServiceAccountToken,
                    High,
                    "Kubernetes service account token",
                )
            } else {
                secret(
                    ServiceAccountToken,
                    Low,
                    "Kubernetes service account CA or namespace",
                )
            });
        }
        if rest.starts_with("eks.amazonaws.com/") || rest.starts_with("azure/tokens/") {
            return Some(secret(
                CloudCredentials,
                High,
                "cloud workload identity token",
            ));
        }
        if rest.starts_with("tokens/") || name == "token" {
            return Some(secret(
                ServiceAccountToken,
                High,
                "projected service account token",
            ));
        }
        return Some(secret(MountedSecret, High, "mounted secret"));
    }

    // /proc/PID/environ, /proc/PID/mem, kernel memory.
    if let Some(rest) = path.strip_prefix("/proc/") {
        let mut parts = rest.split('/');
        let pid = parts.next().unwrap_or("");
        let file = parts.next();
        let is_process =
            pid == "self" || pid == "thread-self" || pid.bytes().all(|b| b.is_ascii_digit());
        if is_process && parts.next().is_none() {
            match file {
                Some("environ") => {
                    return Some(secret(ProcessEnvironment, High, "process environment"))
                }
                Some("mem") => return Some(secret(ProcessMemory, High, "process memory")),
                _ => {}
            }
        }
        if rest == "kcore" {
            return Some(secret(ProcessMemory, High, "kernel memory"));
        }
    }
    if matches!(path, "/dev/mem" | "/dev/kmem") {
        return Some(secret(ProcessMemory, High, "physical memory"));
    }

    // Password databases.
    if matches!(
        path,
        "/etc/shadow"
            | "/etc/gshadow"
            | "/etc/shadow-"
            | "/etc/gshadow-"
            | "/etc/security/opasswd"
            | "/etc/master.passwd"
            | "/etc/spwd.db"
    ) {
        return Some(secret(PasswordDatabase, High, "password hashes"));
    }

    // SSH.
    let ssh_private = lower_name.starts_with("id_") && !lower_name.ends_with(".pub");
    if has_dir(path, ".ssh") || path.starts_with("/etc/ssh/") || ssh_private {
        if ssh_private {
            return Some(secret(SshKey, High, "SSH private key"));
        }
        if path.starts_with("/etc/ssh/") {
            if name.starts_with("ssh_host_") && !name.ends_with(".pub") {
                return Some(secret(SshKey, High, "SSH host private key"));
            }
        } else {
            match name {
                "authorized_keys" | "authorized_keys2" => {
                    return Some(secret(SshKey, Medium, "SSH authorized keys"))
                }
                "config" | "known_hosts" => {}
                _ if lower_name.ends_with(".pub") => {}
                _ if lower_name.ends_with(".pem") || lower_name.ends_with(".key") => {
                    return Some(secret(SshKey, High, "SSH private key"))
                }
                _ => {}
            }
        }
    }

    // Cloud CLIs.
    if ends_with_component(path, ".aws/credentials") {
        return Some(secret(CloudCredentials, High, "AWS credentials"));
    }
    if ends_with_component(path, ".aws/config") {
        return Some(secret(CloudCredentials, Medium, "AWS CLI config"));
    }
    if has_dir(path, ".aws/sso/cache") || has_dir(path, ".aws/cli/cache") {
        return Some(secret(CloudCredentials, High, "AWS cached session token"));
    }
    if has_dir(path, ".config/gcloud") {
        let sensitive = matches!(
            name,
            "application_default_credentials.json"
                | "credentials.db"
                | "access_tokens.db"
                | "adc.json"
        ) || path.contains("/legacy_credentials/");
        return Some(if sensitive {
            secret(CloudCredentials, High, "Google Cloud credentials")
        } else {
            secret(CloudCredentials, Low, "Google Cloud CLI config")
        });
    }
    if has_dir(path, ".azure") {
        let sensitive = lower_name.contains("token")
            || lower_name.starts_with("msal")
            || lower_name == "service_principal_entries.json"
            || lower_name == "azureprofile.json";
        return Some(if sensitive {
            secret(CloudCredentials, High, "Azure CLI credentials")
        } else {
            secret(CloudCredentials, Low, "Azure CLI config")
        });
    }
    if ends_with_component(path, ".oci/config")
        || has_dir(path, ".oci") && lower_name.ends_with(".pem")
    {
        return Some(secret(CloudCredentials, High, "Oracle Cloud credentials"));
    }
    if ends_with_component(path, ".terraform.d/credentials.tfrc.json")
        || ends_with_component(path, ".config/doctl/config.yaml")
        || ends_with_component(path, ".config/hcloud/cli.toml")
    {
        return Some(secret(CloudCredentials, High, "cloud CLI token"));
    }
    if lower_name.contains("service-account") && lower_name.ends_with(".json")
        || lower_name.contains("service_account") && lower_name.ends_with(".json")
        || lower_name.ends_with("-sa-key.json")
    {
        return Some(secret(CloudCredentials, High, "service account key file"));
    }

    // Kubernetes client configuration.
    if ends_with_component(path, ".kube/config")
        || path.starts_with("/etc/kubernetes/") && lower_name.ends_with(".conf")
        || lower_name == "kubeconfig"
        || lower_name.ends_with(".kubeconfig")
    {
        return Some(secret(
            Kubeconfig,
            High,
            "Kubernetes credentials (kubeconfig)",
        ));
    }

    // Environment files.
    if lower_name == ".env"
        || lower_name.starts_with(".env.")
        || lower_name.ends_with(".env") && lower_name.len() > 4
        || lower_name == ".envrc"
    {
        if lower_name.ends_with(".example")
            || lower_name.ends_with(".sample")
            || lower_name.ends_with(".template")
        {
            return Some(secret(EnvFile, Low, "example environment file"));
        }
        return Some(secret(EnvFile, High, "environment file"));
    }

    // Single-purpose credential files.
    match lower_name.as_str() {
        ".netrc" | "_netrc" => return Some(secret(Netrc, High, "netrc credentials")),
        ".pgpass" => return Some(secret(Pgpass, High, "PostgreSQL password file")),
        ".my.cnf" | ".mylogin.cnf" => {
            return Some(secret(
                DatabaseCredentials,
                High,
                "MySQL client credentials",
            ))
        }
        ".git-credentials" => return Some(secret(GitCredentials, High, "Git credentials")),
        ".npmrc" | ".pypirc" | ".yarnrc.yml" => {
            return Some(secret(
                PackageRegistryToken,
                Medium,
                "package registry credentials",
            ))
        }
        ".bash_history" | ".zsh_history" | ".python_history" | ".psql_history"
        | ".mysql_history" | ".node_repl_history" | ".sh_history" => {
            return Some(secret(ShellHistory, Medium, "shell history"))
        }
        _ => {}
    }
    if ends_with_component(path, ".config/git/credentials") {
        return Some(secret(GitCredentials, High, "Git credentials"));
    }
    if ends_with_component(path, ".docker/config.json")
        || ends_with_component(path, "containers/auth.json")
    {
        return Some(secret(DockerConfig, High, "container registry credentials"));
    }
    if ends_with_component(path, ".cargo/credentials")
        || ends_with_component(path, ".cargo/credentials.toml")
        || ends_with_component(path, ".gem/credentials")
    {
        return Some(secret(PackageRegistryToken, High, "package registry token"));
    }
    if ends_with_component(path, ".config/gh/hosts.yml")
        || ends_with_component(path, ".cache/huggingface/token")
        || ends_with_component(path, ".huggingface/token")
        || ends_with_component(path, ".config/hub")
    {
        return Some(secret(ApiToken, High, "service API token"));
    }

    // Browsers and keyrings.
    let browser_dir = has_dir(path, ".mozilla/firefox")
        || has_dir(path, ".config/google-chrome")
        || has_dir(path, ".config/chromium")
        || has_dir(path, ".config/BraveSoftware")
        || has_dir(path, ".config/microsoft-edge");
    if browser_dir
        && matches!(
            name,
            "logins.json"
                | "key4.db"
                | "key3.db"
                | "cookies.sqlite"
                | "Login Data"
                | "Cookies"
                | "Local State"
                | "Web Data"
        )
    {
        return Some(secret(BrowserData, High, "browser passwords or cookies"));
    }
    if has_dir(path, ".local/share/keyrings")
        || has_dir(path, ".gnupg/private-keys-v1.d")
        || ends_with_component(path, ".gnupg/secring.gpg")
        || has_dir(path, ".password-store")
    {
        return Some(secret(Keyring, High, "keyring or private key store"));
    }

    // Private keys by name.
    if path.starts_with("/etc/ssl/private/") && !name.is_empty() {
        return Some(secret(TlsPrivateKey, High, "TLS private key"));
    }
    let key_file = lower_name.ends_with(".key")
        || lower_name.ends_with(".p12")
        || lower_name.ends_with(".pfx")
        || lower_name.ends_with(".jks")
        || lower_name.ends_with(".keystore")
        || lower_name == "privkey.pem"
        || lower_name.ends_with(".pem") && lower_name.contains("key");
    if key_file && !lower_name.ends_with(".pub.key") && !lower_name.contains("public") {
        return Some(secret(TlsPrivateKey, High, "private key"));
    }
    None
}

fn noise_class(path: &str) -> Option<FileClass> {
    use FileCategory::RuntimeNoise;
    use Sensitivity::None as Quiet;
    let name = path.rsplit('/').next().unwrap_or(path);
    let noise = |label| Some(class(RuntimeNoise, Quiet, label));

    if path == "/proc" || path.starts_with("/proc/") {
        return noise("process information (/proc)");
    }
    if path == "/sys" || path.starts_with("/sys/") {
        return noise("kernel information (/sys)");
    }
    if path == "/dev" || path.starts_with("/dev/") {
        return noise("device");
    }
    if path.starts_with("/etc/ld.so") {
        return noise("dynamic linker cache");
    }
    // Shared libraries anywhere: libfoo.so, libfoo.so.1.2, _ssl.cpython-311-x86_64-linux-gnu.so.
    let shared_library = name.ends_with(".so")
        || name.contains(".so.")
            && name
                .rsplit(".so.")
                .next()
                .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    if shared_library {
        return noise("shared library");
    }
    let package_dirs = [
        "site-packages",
        "dist-packages",
        "node_modules",
        "__pycache__",
    ];
    if package_dirs.iter().any(|d| has_dir_component(path, d)) || name.ends_with(".pyc") {
        return noise("installed package");
    }
    // Interpreter standard libraries: .../lib/python3.11/..., .../lib/node/..., pyenv/nvm.
    if path
        .split('/')
        .any(|c| c.starts_with("python3.") || c.starts_with("python2."))
        && has_dir_component(path, "lib")
    {
        return noise("interpreter standard library");
    }
    if has_dir_component(path, ".pyenv")
        || has_dir_component(path, ".nvm")
        || has_dir_component(path, ".rustup")
    {
        return noise("language runtime");
    }
    for prefix in ["/usr/share/locale/", "/usr/lib/locale/", "/usr/share/i18n/"] {
        if path.starts_with(prefix) {
            return noise("locale data");
        }
    }
    if path.starts_with("/usr/share/zoneinfo/")
        || path == "/etc/localtime"
        || path == "/etc/timezone"
    {
        return noise("time zone data");
    }
    if matches!(
        path,
        "/etc/nsswitch.conf"
            | "/etc/host.conf"
            | "/etc/hosts"
            | "/etc/resolv.conf"
            | "/etc/gai.conf"
            | "/etc/services"
            | "/etc/protocols"
            | "/etc/passwd"
            | "/etc/group"
            | "/etc/mime.types"
            | "/etc/locale.alias"
    ) {
        return noise("name service and runtime configuration");
    }
    if path.starts_with("/etc/ssl/certs/")
        || path.starts_with("/etc/pki/")
        || path.starts_with("/usr/share/ca-certificates/")
        || path == "/etc/ssl/openssl.cnf"
        || path.starts_with("/usr/lib/ssl/")
    {
        return noise("TLS trust store");
    }
    for prefix in [
        "/usr/lib/",
        "/usr/lib64/",
        "/lib/",
        "/lib64/",
        "/usr/local/lib/",
        "/usr/libexec/",
    ] {
        // Kernel modules and unit files are system state, not libraries.
        let system = [
            "/lib/modules/",
            "/lib/systemd/system/",
            "/usr/lib/systemd/system/",
        ];
        if path.starts_with(prefix) && !system.iter().any(|s| path.starts_with(s)) {
            return noise("system library");
        }
    }
    for prefix in [
        "/usr/bin/",
        "/bin/",
        "/usr/sbin/",
        "/sbin/",
        "/usr/local/bin/",
    ] {
        if path.starts_with(prefix) {
            return noise("program");
        }
    }
    if path.starts_with("/usr/share/") || path.starts_with("/usr/include/") {
        return noise("shared system data");
    }
    None
}

fn has_dir_component(path: &str, dir: &str) -> bool {
    let mut components = path.split('/').peekable();
    while let Some(component) = components.next() {
        if component == dir && components.peek().is_some() {
            return true;
        }
    }
    false
}

fn system_class(path: &str) -> Option<FileClass> {
    use FileCategory::System;
    use Sensitivity::{Low, Medium};
    if path == "/etc/sudoers" || path.starts_with("/etc/sudoers.d/") {
        return Some(class(System, Medium, "sudo policy"));
    }
    if path.starts_with("/etc/pam.d/") || path.starts_with("/etc/security/") {
        return Some(class(System, Medium, "authentication policy"));
    }
    if path.starts_with("/etc/cron") || path.starts_with("/var/spool/cron/") {
        return Some(class(System, Medium, "scheduled jobs"));
    }
    if path.starts_with("/etc/systemd/")
        || path.starts_with("/lib/systemd/system/")
        || path.starts_with("/usr/lib/systemd/system/")
    {
        return Some(class(System, Medium, "service definitions"));
    }
    if path == "/etc" || path.starts_with("/etc/") {
        return Some(class(System, Low, "system configuration"));
    }
    if path.starts_with("/boot/") || path.starts_with("/lib/modules/") {
        return Some(class(System, Medium, "kernel and boot files"));
    }
    if path.starts_with("/var/log/") {
        return Some(class(System, Low, "system log"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use FileCategory::{ApplicationData, RuntimeNoise, System};
    use SecretKind::*;
    use Sensitivity::{High, Low, Medium};

    #[test]
    fn real_world_paths() {
        let secret = FileCategory::Secret;
        let table: &[(&str, FileCategory, Sensitivity)] = &[
            // Secrets.
            ("/var/run/secrets/kubernetes.io/serviceaccount/token", secret(ServiceAccountToken), High),
            ("/var/run/secrets/kubernetes.io/serviceaccount/..2024_01_15_10_00_00.123/token", secret(ServiceAccountToken), High),
            ("/var/run/secrets/kubernetes.io/serviceaccount/namespace", secret(ServiceAccountToken), Low),
            ("/var/run/secrets/eks.amazonaws.com/serviceaccount/token", secret(CloudCredentials), High),
            ("/run/secrets/db_password", secret(MountedSecret), High),
            ("/root/.aws/credentials", secret(CloudCredentials), High),
            ("/home/dev/.aws/config", secret(CloudCredentials), Medium),
            ("/home/dev/.aws/sso/cache/5f2a.json", secret(CloudCredentials), High),
            ("/home/dev/.config/gcloud/application_default_credentials.json", secret(CloudCredentials), High),
            ("/home/dev/.config/gcloud/legacy_credentials/dev@example.com/adc.json", secret(CloudCredentials), High),
            ("/home/dev/.config/gcloud/active_config", secret(CloudCredentials), Low),
            ("/home/dev/.azure/msal_token_cache.json", secret(CloudCredentials), High),
            ("/srv/app/keys/prod-service-account.json", secret(CloudCredentials), High),
            ("/home/dev/.ssh/id_ed25519", secret(SshKey), High),
            ("/root/.ssh/id_rsa", secret(SshKey), High),
            ("/root/.ssh/authorized_keys", secret(SshKey), Medium),
            ("/etc/ssh/ssh_host_ecdsa_key", secret(SshKey), High),
            ("deploy/id_rsa", secret(SshKey), High),
            ("/srv/app/.env", secret(EnvFile), High),
            (".env.production", secret(EnvFile), High),
            ("config/prod.env", secret(EnvFile), High),
            ("/srv/app/.env.example", secret(EnvFile), Low),
            ("/home/dev/.kube/config", secret(Kubeconfig), High),
            ("/etc/kubernetes/admin.conf", secret(Kubeconfig), High),
            ("/etc/ssl/private/ssl-cert-snakeoil.key", secret(TlsPrivateKey), High),
            ("/srv/tls/server.key", secret(TlsPrivateKey), High),
            ("/etc/letsencrypt/live/example.com/privkey.pem", secret(TlsPrivateKey), High),
            ("certs/client-key.pem", secret(TlsPrivateKey), High),
            ("/etc/shadow", secret(PasswordDatabase), High),
            ("/etc/gshadow", secret(PasswordDatabase), High),
            ("/etc/../etc/shadow", secret(PasswordDatabase), High),
            ("/root/.netrc", secret(Netrc), High),
            ("/home/dev/.pgpass", secret(Pgpass), High),
            ("/home/dev/.my.cnf", secret(DatabaseCredentials), High),
            ("/home/dev/.docker/config.json", secret(DockerConfig), High),
            ("/home/dev/.git-credentials", secret(GitCredentials), High),
            ("/home/dev/.npmrc", secret(PackageRegistryToken), Medium),
            ("/home/dev/.cargo/credentials.toml", secret(PackageRegistryToken), High),
            ("/home/dev/.config/gh/hosts.yml", secret(ApiToken), High),
            ("/home/dev/.cache/huggingface/token", secret(ApiToken), High),
            ("/home/dev/.mozilla/firefox/abcd.default-release/logins.json", secret(BrowserData), High),
            ("/home/dev/.config/google-chrome/Default/Login Data", secret(BrowserData), High),
            ("/home/dev/.local/share/keyrings/login.keyring", secret(Keyring), High),
            ("/home/dev/.gnupg/private-keys-v1.d/ABCDEF.key", secret(Keyring), High),
            ("/proc/1234/environ", secret(ProcessEnvironment), High),
            ("/proc/self/environ", secret(ProcessEnvironment), High),
            ("/proc/1234/mem", secret(ProcessMemory), High),
            ("/home/dev/.bash_history", secret(ShellHistory), Medium),
            // System.
            ("/etc/sudoers", System, Medium),
            ("/etc/sudoers.d/90-cloud-init-users", System, Medium),
            ("/etc/crontab", System, Medium),
            ("/etc/systemd/system/agent.service", System, Medium),
            ("/etc/os-release", System, Low),
            ("/etc/ssh/sshd_config", System, Low),
            ("/boot/vmlinuz-6.1.0-18-amd64", System, Medium),
            ("/lib/modules/6.1.0-18-amd64/modules.dep", System, Medium),
            ("/var/log/auth.log", System, Low),
            // Runtime noise.
            ("/etc/ld.so.cache", RuntimeNoise, Sensitivity::None),
            ("/lib/x86_64-linux-gnu/libc.so.6", RuntimeNoise, Sensitivity::None),
            ("/usr/lib/x86_64-linux-gnu/libssl.so.3", RuntimeNoise, Sensitivity::None),
            ("/root/.pyenv/versions/3.11.7/lib/python3.11/json/__init__.py", RuntimeNoise, Sensitivity::None),
            ("/root/.pyenv/versions/3.11.7/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", RuntimeNoise, Sensitivity::None),
            ("/usr/lib/python3/dist-packages/yaml/__init__.py", RuntimeNoise, Sensitivity::None),
            ("/srv/app/.venv/lib/python3.11/site-packages/openai/__init__.py", RuntimeNoise, Sensitivity::None),
            ("/srv/app/node_modules/undici/index.js", RuntimeNoise, Sensitivity::None),
            ("/srv/app/__pycache__/agent.cpython-311.pyc", RuntimeNoise, Sensitivity::None),
            ("/proc/self/maps", RuntimeNoise, Sensitivity::None),
            ("/proc/1234/cmdline", RuntimeNoise, Sensitivity::None),
            ("/sys/fs/cgroup/cpu.max", RuntimeNoise, Sensitivity::None),
            ("/dev/urandom", RuntimeNoise, Sensitivity::None),
            ("/dev/null", RuntimeNoise, Sensitivity::None),
            ("/usr/share/zoneinfo/Europe/Paris", RuntimeNoise, Sensitivity::None),
            ("/etc/localtime", RuntimeNoise, Sensitivity::None),
            ("/usr/lib/locale/C.utf8/LC_CTYPE", RuntimeNoise, Sensitivity::None),
            ("/etc/resolv.conf", RuntimeNoise, Sensitivity::None),
            ("/etc/nsswitch.conf", RuntimeNoise, Sensitivity::None),
            ("/etc/passwd", RuntimeNoise, Sensitivity::None),
            ("/etc/ssl/certs/ca-certificates.crt", RuntimeNoise, Sensitivity::None),
            ("/usr/bin/python3", RuntimeNoise, Sensitivity::None),
            // Application data.
            ("/srv/app/data/customers.csv", ApplicationData, Low),
            ("/tmp/agent-scratch/report.md", ApplicationData, Low),
            ("notes.txt", ApplicationData, Low),
            ("/home/dev/.ssh/known_hosts", ApplicationData, Low),
            ("/home/dev/.ssh/id_ed25519.pub", ApplicationData, Low),
            ("/srv/tls/server.crt", ApplicationData, Low),
            ("/srv/app/environment.py", ApplicationData, Low),
            ("/srv/app/keyboard.json", ApplicationData, Low),
        ];
        let mut wrong = Vec::new();
        for (path, category, sensitivity) in table {
            let class = classify(path);
            if class.category != *category || class.sensitivity != *sensitivity {
                wrong.push(format!(
                    "{path}: got {class:?}, want {category:?} {sensitivity:?}"
                ));
            }
            assert!(!class.label.is_empty());
        }
        assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
    }

    #[test]
    fn serialises_with_flat_category_and_kind() {
        let json = serde_json::to_value(classify("/root/.ssh/id_rsa")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "category": "secret",
                "kind": "ssh_key",
                "sensitivity": "high",
                "label": "SSH private key"
            })
        );
        let json = serde_json::to_value(classify("/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        assert_eq!(json["category"], "runtime_noise");
        assert_eq!(json["sensitivity"], "none");
        assert!(json.get("kind").is_none());
        assert!(classify("/etc/shadow").is_secret());
        assert!(!classify("/etc/hostname").is_secret());
    }

    #[test]
    fn odd_paths_do_not_panic() {
        for path in [
            "",
            "/",
            "//",
            "..",
            "../../..",
            "/proc",
            "/proc/",
            "\u{0}",
            "ü/ß/.env",
            "/a/./b/../.ssh/",
        ] {
            let _ = classify(path);
        }
    }

    /// Real files of this machine under the droppable prefixes (and a pyenv's interpreters),
    /// at most `limit`, symbolic links not followed below the roots.
    pub(crate) fn files_under_droppable_prefixes(limit: usize) -> Vec<String> {
        let mut roots: Vec<std::path::PathBuf> = noise_paths::DROPPABLE_PREFIXES
            .iter()
            .map(|p| std::path::PathBuf::from(std::str::from_utf8(p).unwrap()))
            .collect();
        roots.push("/etc".into());
        if let Ok(home) = std::env::var("HOME") {
            roots.push(std::path::Path::new(&home).join(".pyenv/versions"));
        }
        let mut found = Vec::new();
        let mut pending = roots;
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if found.len() >= limit {
                    return found;
                }
                let path = entry.path();
                let Some(text) = path.to_str() else { continue };
                found.push(text.to_string());
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && dir != std::path::Path::new("/etc")
                {
                    pending.push(path);
                }
            }
        }
        found
    }

    /// What the kernel leaves out is a subset of what the rest of this classifier calls
    /// runtime noise and never a secret: on this machine's real files under the droppable
    /// prefixes, and on adversarial names (secrets by name, hidden directories, `..`) under
    /// every prefix.
    #[test]
    fn kernel_noise_filter_agrees_with_the_classifier() {
        let mut paths = files_under_droppable_prefixes(200_000);
        let real = paths.len();
        let stdlib_roots = [
            "/usr/lib/python3.11/",
            "/root/.pyenv/versions/3.11.7/lib/python3.11/",
            "/home/u/.pyenv/versions/3.12.1/lib/python3.12/",
        ];
        for prefix in noise_paths::DROPPABLE_PREFIXES
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap())
            .chain(stdlib_roots)
        {
            for tail in noise_paths::ADVERSARIAL_TAILS {
                paths.push(format!("{prefix}{tail}"));
                paths.push(format!("{prefix}x86_64-linux-gnu/{tail}"));
            }
        }
        let mut dropped = 0;
        for path in &paths {
            if !noise_paths::is_droppable(path.as_bytes()) {
                continue;
            }
            dropped += 1;
            let normalized = normalize(path);
            assert_eq!(
                secret_class(&normalized),
                None,
                "the kernel would leave out the secret {path}"
            );
            assert!(
                noise_class(&normalized).is_some(),
                "the kernel would leave out {path}, which is not runtime noise"
            );
        }
        // The test looked at something: real libraries and the adversarial names' noise.
        assert!(
            real > 1000,
            "only {real} files found under the droppable prefixes"
        );
        assert!(
            dropped > 1000,
            "only {dropped} of {} paths droppable",
            paths.len()
        );
    }
}
