//! Identity hints from a process's environment (`/proc/PID/environ`).
//!
//! The kubelet and the cloud identity webhooks inject well-known variables into every
//! container: `KUBERNETES_SERVICE_HOST` (the process runs in a pod), `HOSTNAME` (the pod name,
//! unless the pod sets its own hostname), `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`
//! (EKS IRSA), `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE` (Azure workload identity).
//! Charts often add `POD_NAME`, `POD_NAMESPACE` and `NODE_NAME` through the downward API.
//!
//! Only these names are kept: an environment is full of credentials, and nothing else of it
//! leaves this module.

/// Environments larger than this are cut here (the kernel's own limit on exec is similar).
pub const MAX_ENVIRON_BYTES: usize = 2 * 1024 * 1024;

/// The identity-related variables of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentHints {
    /// `KUBERNETES_SERVICE_HOST` is set: the process runs in a pod.
    pub in_kubernetes: bool,
    pub hostname: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub node_name: Option<String>,
    pub aws_role_arn: Option<String>,
    pub aws_web_identity_token_file: Option<String>,
    pub azure_client_id: Option<String>,
    pub azure_tenant_id: Option<String>,
    pub azure_federated_token_file: Option<String>,
}

impl EnvironmentHints {
    /// Whether anything identity-related was found.
    pub fn is_empty(&self) -> bool {
        *self == EnvironmentHints::default()
    }
}

/// Parses NUL-separated `NAME=value` entries, as in `/proc/PID/environ`. Values that are not
/// UTF-8 are replaced lossily; entries without `=` are skipped.
pub fn parse_environ(environ: &[u8]) -> EnvironmentHints {
    let environ = environ.get(..MAX_ENVIRON_BYTES).unwrap_or(environ);
    let mut hints = EnvironmentHints::default();
    for entry in environ.split(|&b| b == 0) {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        let slot = match name {
            b"KUBERNETES_SERVICE_HOST" => {
                hints.in_kubernetes = true;
                continue;
            }
            b"HOSTNAME" => &mut hints.hostname,
            b"POD_NAME" => &mut hints.pod_name,
            b"POD_NAMESPACE" => &mut hints.pod_namespace,
            b"NODE_NAME" => &mut hints.node_name,
            b"AWS_ROLE_ARN" => &mut hints.aws_role_arn,
            b"AWS_WEB_IDENTITY_TOKEN_FILE" => &mut hints.aws_web_identity_token_file,
            b"AZURE_CLIENT_ID" => &mut hints.azure_client_id,
            b"AZURE_TENANT_ID" => &mut hints.azure_tenant_id,
            b"AZURE_FEDERATED_TOKEN_FILE" => &mut hints.azure_federated_token_file,
            _ => continue,
        };
        let value = String::from_utf8_lossy(value).trim().to_string();
        if !value.is_empty() {
            *slot = Some(value);
        }
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_identity_variables_only() {
        let environ = b"PATH=/usr/bin\0HOSTNAME=api-5d9c7b8f6d-abcde\0KUBERNETES_SERVICE_HOST=10.96.0.1\0\
AWS_ROLE_ARN=arn:aws:iam::111122223333:role/agent\0AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/eks.amazonaws.com/serviceaccount/token\0\
OPENAI_API_KEY=sk-secret\0AZURE_CLIENT_ID=00000000-1111-2222-3333-444444444444\0POD_NAMESPACE=agents\0";
        let hints = parse_environ(environ);
        assert!(hints.in_kubernetes);
        assert_eq!(hints.hostname.as_deref(), Some("api-5d9c7b8f6d-abcde"));
        assert_eq!(
            hints.aws_role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/agent")
        );
        assert_eq!(
            hints.aws_web_identity_token_file.as_deref(),
            Some("/var/run/secrets/eks.amazonaws.com/serviceaccount/token")
        );
        assert_eq!(
            hints.azure_client_id.as_deref(),
            Some("00000000-1111-2222-3333-444444444444")
        );
        assert_eq!(hints.pod_namespace.as_deref(), Some("agents"));
        assert!(!format!("{hints:?}").contains("sk-secret"));
    }

    #[test]
    fn odd_entries() {
        let hints = parse_environ(b"\0\0=\0HOSTNAME\0HOSTNAME=\0AWS_ROLE_ARN=a=b\0\xff\xfe=1\0");
        assert_eq!(hints.hostname, None);
        assert_eq!(hints.aws_role_arn.as_deref(), Some("a=b"));
        assert!(parse_environ(b"").is_empty());
        let hints = parse_environ(b"HOSTNAME=\xffx");
        assert_eq!(hints.hostname.as_deref(), Some("\u{fffd}x"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_environ(&bytes);
        }
    }
}
