//! Pod identity from a Kubernetes service-account token, without the API server.
//!
//! Every pod that mounts a service-account token carries, in the token's claims, its namespace,
//! pod name and UID, service account and node. The token is a JWT; only its payload is decoded
//! here and **the signature is not verified**: the claims are used as a hint about which pod a
//! process belongs to (read from that process's own filesystem), never as proof of identity
//! or to grant anything. A process could forge its own token file; the Kubernetes API, when
//! reachable, takes precedence for that reason.
//!
//! Both token shapes are understood: projected (bound) tokens with a nested `kubernetes.io`
//! claim, and legacy secret-based tokens with flat `kubernetes.io/serviceaccount/...` claims.

use base64::Engine as _;
use serde::Deserialize;

/// Token files larger than this are not tokens (real ones are 1-2 KiB).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// What a service-account token says about its pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccountTokenClaims {
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub service_account_name: Option<String>,
    pub service_account_uid: Option<String>,
    pub node_name: Option<String>,
    /// `sub`, e.g. `system:serviceaccount:default:api`.
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT: expected three dot-separated parts, found {0}")]
    NotAJwt(usize),
    #[error("the JWT payload is not base64url: {0}")]
    Base64(String),
    #[error("the JWT payload is not a JSON object of claims: {0}")]
    Json(String),
    #[error("the JWT carries no Kubernetes service-account claims")]
    NotKubernetes,
    #[error("the token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
}

#[derive(Deserialize)]
struct NameUid {
    name: Option<String>,
    uid: Option<String>,
}

#[derive(Deserialize)]
struct KubernetesClaims {
    namespace: Option<String>,
    pod: Option<NameUid>,
    serviceaccount: Option<NameUid>,
    node: Option<NameUid>,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    iss: Option<String>,
    exp: Option<i64>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaims>,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    legacy_namespace: Option<String>,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    legacy_service_account_name: Option<String>,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    legacy_service_account_uid: Option<String>,
}

/// Decodes the claims of a service-account token (file content; surrounding whitespace is
/// ignored). The signature is not checked: see the module documentation.
pub fn decode_claims(token: &[u8]) -> Result<ServiceAccountTokenClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let text = String::from_utf8_lossy(token);
    let parts: Vec<&str> = text.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(TokenError::NotAJwt(parts.len()));
    }
    // JWTs drop base64 padding; tolerate tokens that kept it.
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|e| TokenError::Base64(e.to_string()))?;
    let raw: RawClaims =
        serde_json::from_slice(&payload).map_err(|e| TokenError::Json(e.to_string()))?;

    let (sub_namespace, sub_name) = raw
        .sub
        .as_deref()
        .and_then(|s| s.strip_prefix("system:serviceaccount:"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, name)| (Some(ns.to_string()), Some(name.to_string())))
        .unwrap_or((None, None));
    let kubernetes = raw.kubernetes;
    let (pod, service_account, node, namespace) = match kubernetes {
        Some(k) => (k.pod, k.serviceaccount, k.node, k.namespace),
        None => (None, None, None, None),
    };
    let claims = ServiceAccountTokenClaims {
        namespace: namespace.or(raw.legacy_namespace).or(sub_namespace),
        pod_name: pod.as_ref().and_then(|p| p.name.clone()),
        pod_uid: pod.and_then(|p| p.uid),
        service_account_name: service_account
            .as_ref()
            .and_then(|s| s.name.clone())
            .or(raw.legacy_service_account_name)
            .or(sub_name),
        service_account_uid: service_account
            .and_then(|s| s.uid)
            .or(raw.legacy_service_account_uid),
        node_name: node.and_then(|n| n.name),
        subject: raw.sub,
        issuer: raw.iss,
        expires_at: raw.exp,
    };
    if claims.namespace.is_none() {
        return Err(TokenError::NotKubernetes);
    }
    Ok(claims)
}

#[cfg(test)]
pub(crate) fn encode_unsigned_for_tests(payload: &serde_json::Value) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        engine.encode(br#"{"alg":"RS256","kid":"test"}"#),
        engine.encode(payload.to_string()),
        engine.encode(b"not-a-signature")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The claims of a bound token as the kube-apiserver issues them (1.30+ adds node claims).
    fn projected() -> serde_json::Value {
        json!({
            "aud": ["https://kubernetes.default.svc.cluster.local"],
            "exp": 1767225600,
            "iat": 1735689600,
            "iss": "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE",
            "jti": "7f0d1c5e-5b5a-4d55-9b1b-2d4b9d1c3a10",
            "kubernetes.io": {
                "namespace": "agents",
                "node": {"name": "ip-10-0-1-23.eu-west-1.compute.internal", "uid": "0d8f..."},
                "pod": {"name": "research-agent-7d9f8b6c5d-x2x4z", "uid": "5f1c7a0e-8c1d-4a51-9d2e-0b7f3c1a2d4e"},
                "serviceaccount": {"name": "research-agent", "uid": "c3a1b2d4-0000-4000-8000-000000000001"},
                "warnafter": 1735693207
            },
            "nbf": 1735689600,
            "sub": "system:serviceaccount:agents:research-agent"
        })
    }

    #[test]
    fn projected_token_claims() {
        let token = encode_unsigned_for_tests(&projected());
        let claims = decode_claims(format!("{token}\n").as_bytes()).unwrap();
        assert_eq!(claims.namespace.as_deref(), Some("agents"));
        assert_eq!(
            claims.pod_name.as_deref(),
            Some("research-agent-7d9f8b6c5d-x2x4z")
        );
        assert_eq!(
            claims.pod_uid.as_deref(),
            Some("5f1c7a0e-8c1d-4a51-9d2e-0b7f3c1a2d4e")
        );
        assert_eq!(
            claims.service_account_name.as_deref(),
            Some("research-agent")
        );
        assert_eq!(
            claims.node_name.as_deref(),
            Some("ip-10-0-1-23.eu-west-1.compute.internal")
        );
        assert_eq!(
            claims.subject.as_deref(),
            Some("system:serviceaccount:agents:research-agent")
        );
        assert_eq!(claims.expires_at, Some(1767225600));
    }

    #[test]
    fn legacy_secret_token_claims() {
        let token = encode_unsigned_for_tests(&json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/secret.name": "builder-token-abcde",
            "kubernetes.io/serviceaccount/service-account.name": "builder",
            "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
            "sub": "system:serviceaccount:default:builder"
        }));
        let claims = decode_claims(token.as_bytes()).unwrap();
        assert_eq!(claims.namespace.as_deref(), Some("default"));
        assert_eq!(claims.service_account_name.as_deref(), Some("builder"));
        assert_eq!(claims.service_account_uid.as_deref(), Some("uid-1"));
        assert_eq!(claims.pod_name, None);
    }

    #[test]
    fn subject_alone_is_enough() {
        let token = encode_unsigned_for_tests(&json!({"sub": "system:serviceaccount:ns1:sa1"}));
        let claims = decode_claims(token.as_bytes()).unwrap();
        assert_eq!(claims.namespace.as_deref(), Some("ns1"));
        assert_eq!(claims.service_account_name.as_deref(), Some("sa1"));
    }

    #[test]
    fn padded_payload_is_accepted() {
        let token = encode_unsigned_for_tests(&projected());
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        while !parts[1].len().is_multiple_of(4) {
            parts[1].push('=');
        }
        assert!(decode_claims(parts.join(".").as_bytes()).is_ok());
    }

    #[test]
    fn malformed_tokens_are_errors() {
        assert_eq!(decode_claims(b""), Err(TokenError::NotAJwt(1)));
        assert_eq!(decode_claims(b"a.b"), Err(TokenError::NotAJwt(2)));
        assert_eq!(decode_claims(b"a.b.c.d.e"), Err(TokenError::NotAJwt(5)));
        assert!(matches!(
            decode_claims(b"x.!!!.y"),
            Err(TokenError::Base64(_))
        ));
        // Valid base64 of something that is not JSON.
        assert!(matches!(
            decode_claims(b"x.bm90IGpzb24.y"),
            Err(TokenError::Json(_))
        ));
        // JSON, but not an object of claims.
        assert!(matches!(
            decode_claims(b"x.WzEsMl0.y"),
            Err(TokenError::Json(_))
        ));
        // A JWT from elsewhere.
        let foreign = encode_unsigned_for_tests(&json!({"sub": "alice", "iss": "idp"}));
        assert_eq!(
            decode_claims(foreign.as_bytes()),
            Err(TokenError::NotKubernetes)
        );
        // Claims of the wrong type.
        let wrong = encode_unsigned_for_tests(&json!({"kubernetes.io": {"namespace": 7}}));
        assert!(matches!(
            decode_claims(wrong.as_bytes()),
            Err(TokenError::Json(_))
        ));
        assert_eq!(
            decode_claims(&vec![b'a'; MAX_TOKEN_BYTES + 1]),
            Err(TokenError::TooLarge)
        );
        // Truncated in the payload.
        let token = encode_unsigned_for_tests(&projected());
        let (head, _) = token.split_at(token.len() / 2);
        assert!(decode_claims(format!("{head}.x").as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_claims(&bytes);
        }

        #[test]
        fn arbitrary_payloads_never_panic(payload in "[A-Za-z0-9_=-]{0,200}") {
            let _ = decode_claims(format!("h.{payload}.s").as_bytes());
        }
    }
}
