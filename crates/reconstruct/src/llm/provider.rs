//! Which provider served an LLM call: the `gen_ai.provider.name` attribute.
//!
//! The dialect alone does not say who answered: vLLM, llama.cpp, LiteLLM, TGI, Ollama and
//! most gateways speak the OpenAI dialect. So the provider comes from where the request went.
//!
//! The rule, in order:
//! 1. A provider's own API host gets its OpenTelemetry well-known name: `api.openai.com` →
//!    `openai`; `*.openai.azure.com`, or an Azure deployment path
//!    (`/openai/deployments/...`) on any host → `azure.ai.openai`; `api.anthropic.com` →
//!    `anthropic`; `generativelanguage.googleapis.com` → `gcp.gemini`;
//!    `aiplatform.googleapis.com` and its regional hosts → `gcp.vertex_ai`;
//!    `bedrock-runtime.*.amazonaws.com` → `aws.bedrock`; and `mistral_ai`, `groq`,
//!    `deepseek`, `x_ai`, `perplexity`, `cohere` for their API hosts.
//! 2. The Ollama dialect, or any dialect on Ollama's default port 11434 → `ollama`.
//! 3. Any other host → the host name itself, lower case, without port (`localhost`,
//!    `vllm.internal`, `10.0.0.7`), so self-hosted servers and gateways stay told apart.
//! 4. No host known → `unknown`.

use super::LlmApi;

/// Ollama's default listening port.
pub const OLLAMA_DEFAULT_PORT: u16 = 11434;

/// API hosts of providers with an OpenTelemetry well-known `gen_ai.provider.name`.
const KNOWN_HOSTS: &[(&str, &str)] = &[
    ("api.openai.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
];

/// The provider whose API host `host` is (a TLS server name, say), when it is a known one:
/// the hosts of rule 1 and the Azure, Vertex AI and Bedrock host patterns. Other hosts give
/// `None`: unlike [`provider_name`], a host name alone does not make an LLM endpoint.
pub fn provider_of_host(host: &str) -> Option<String> {
    let (name, _) = split_host(host);
    if let Some((_, provider)) = KNOWN_HOSTS.iter().find(|(known, _)| *known == name) {
        return Some((*provider).to_string());
    }
    if name.ends_with(".openai.azure.com") {
        return Some("azure.ai.openai".to_string());
    }
    if name.ends_with("-aiplatform.googleapis.com") {
        return Some("gcp.vertex_ai".to_string());
    }
    if name.starts_with("bedrock-runtime.") && name.ends_with(".amazonaws.com") {
        return Some("aws.bedrock".to_string());
    }
    None
}

/// `gen_ai.provider.name` for a call in dialect `api` sent to `host` (a Host header value or
/// an address, port allowed) on `port`, with request path `path`.
pub fn provider_name(api: LlmApi, host: Option<&str>, port: Option<u16>, path: &str) -> String {
    let (name, host_port) = host.map(split_host).unwrap_or_default();
    if let Some((_, provider)) = KNOWN_HOSTS.iter().find(|(known, _)| *known == name) {
        return (*provider).to_string();
    }
    if name.ends_with(".openai.azure.com") || path.starts_with("/openai/deployments/") {
        return "azure.ai.openai".to_string();
    }
    if name.ends_with("-aiplatform.googleapis.com") {
        return "gcp.vertex_ai".to_string();
    }
    if name.starts_with("bedrock-runtime.") && name.ends_with(".amazonaws.com") {
        return "aws.bedrock".to_string();
    }
    let ollama_port = port == Some(OLLAMA_DEFAULT_PORT) || host_port == Some(OLLAMA_DEFAULT_PORT);
    if matches!(api, LlmApi::OllamaChat | LlmApi::OllamaGenerate) || ollama_port {
        return "ollama".to_string();
    }
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

/// Splits `host[:port]`, `[v6]:port` or a bare IPv6 address into a lower-case name without a
/// trailing dot, and the port when one is given.
fn split_host(host: &str) -> (String, Option<u16>) {
    let host = host.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) => (v6, tail.strip_prefix(':')),
            None => (rest, None),
        }
    } else if host.matches(':').count() == 1 {
        let (name, port) = host.split_once(':').unwrap_or((host, ""));
        (name, Some(port))
    } else {
        // No colon, or a bare IPv6 address whose colons are not a port separator.
        (host, None)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (name, port.and_then(|p| p.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(api: LlmApi, host: Option<&str>, port: Option<u16>, path: &str) -> String {
        provider_name(api, host, port, path)
    }

    #[test]
    fn provider_hosts_get_their_well_known_names() {
        let chat = LlmApi::OpenAiChatCompletions;
        let path = "/v1/chat/completions";
        assert_eq!(
            name(chat, Some("api.openai.com"), Some(443), path),
            "openai"
        );
        assert_eq!(
            name(chat, Some("API.OpenAI.com.:443"), None, path),
            "openai"
        );
        assert_eq!(
            name(
                LlmApi::AnthropicMessages,
                Some("api.anthropic.com"),
                None,
                "/v1/messages"
            ),
            "anthropic"
        );
        let gemini = LlmApi::GeminiGenerateContent;
        assert_eq!(
            name(gemini, Some("generativelanguage.googleapis.com"), None, "/"),
            "gcp.gemini"
        );
        assert_eq!(
            name(
                gemini,
                Some("us-central1-aiplatform.googleapis.com"),
                None,
                "/"
            ),
            "gcp.vertex_ai"
        );
        assert_eq!(
            name(gemini, Some("aiplatform.googleapis.com"), None, "/"),
            "gcp.vertex_ai"
        );
        assert_eq!(name(chat, Some("api.mistral.ai"), None, path), "mistral_ai");
        assert_eq!(
            name(
                chat,
                Some("bedrock-runtime.us-east-1.amazonaws.com"),
                None,
                path
            ),
            "aws.bedrock"
        );
    }

    #[test]
    fn known_hosts_alone_name_their_provider() {
        let of = |host: &str| provider_of_host(host);
        assert_eq!(of("api.openai.com").as_deref(), Some("openai"));
        assert_eq!(of("API.Anthropic.com").as_deref(), Some("anthropic"));
        assert_eq!(
            of("generativelanguage.googleapis.com").as_deref(),
            Some("gcp.gemini")
        );
        assert_eq!(
            of("contoso.openai.azure.com").as_deref(),
            Some("azure.ai.openai")
        );
        assert_eq!(
            of("bedrock-runtime.eu-west-1.amazonaws.com").as_deref(),
            Some("aws.bedrock")
        );
        assert_eq!(of("api.openai.com.evil.test"), None);
        assert_eq!(of("localhost"), None);
        assert_eq!(of("example.com"), None);
    }

    #[test]
    fn azure_is_recognised_by_host_or_deployment_path() {
        let chat = LlmApi::OpenAiChatCompletions;
        assert_eq!(
            name(
                chat,
                Some("contoso.openai.azure.com"),
                Some(443),
                "/openai/v1/chat/completions"
            ),
            "azure.ai.openai"
        );
        assert_eq!(
            name(
                chat,
                Some("gateway.corp"),
                None,
                "/openai/deployments/gpt4o/chat/completions"
            ),
            "azure.ai.openai"
        );
    }

    #[test]
    fn ollama_by_dialect_or_default_port() {
        assert_eq!(
            name(LlmApi::OllamaChat, Some("gpu-box:8080"), None, "/api/chat"),
            "ollama"
        );
        let chat = LlmApi::OpenAiChatCompletions;
        assert_eq!(
            name(chat, Some("localhost:11434"), None, "/v1/chat/completions"),
            "ollama"
        );
        assert_eq!(
            name(chat, Some("10.1.2.3"), Some(11434), "/v1/chat/completions"),
            "ollama"
        );
    }

    #[test]
    fn other_hosts_are_named_by_host_without_port() {
        let chat = LlmApi::OpenAiChatCompletions;
        let path = "/v1/chat/completions";
        assert_eq!(
            name(chat, Some("vLLM.internal:8000"), Some(8000), path),
            "vllm.internal"
        );
        assert_eq!(name(chat, Some("127.0.0.1:4000"), None, path), "127.0.0.1");
        assert_eq!(name(chat, Some("[::1]:8080"), None, path), "::1");
        assert_eq!(name(chat, Some("fe80::1"), None, path), "fe80::1");
        // Only api.openai.com is "openai": a look-alike host is named for itself.
        assert_eq!(
            name(chat, Some("api.openai.com.evil.test"), None, path),
            "api.openai.com.evil.test"
        );
        assert_eq!(name(chat, None, None, path), "unknown");
        assert_eq!(name(chat, Some(""), None, path), "unknown");
    }
}
