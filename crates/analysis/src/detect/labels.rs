//! Labels that findings carry so a security team can file them under the frameworks it already
//! reports against: OWASP Top 10 for LLM Applications 2025, OWASP Top 10 for Agentic
//! Applications 2026 and MITRE ATLAS. Every detector (injection, deviation, sensitive access,
//! exfiltration, incidents) takes its labels from here so the ids are spelled one way.

use serde::{Serialize, Serializer};

/// The framework a label belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Framework {
    /// OWASP Top 10 for LLM Applications, 2025 edition.
    OwaspLlm2025,
    /// OWASP Top 10 for Agentic Applications, 2026 edition.
    OwaspAgentic2026,
    /// MITRE ATLAS techniques.
    MitreAtlas,
}

/// One entry of a framework: a stable id (`LLM01:2025`, `ASI01:2026`, `AML.T0051.001`) and its
/// title. Serialises as the id alone, which is what JSON consumers match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub id: &'static str,
    pub name: &'static str,
    pub framework: Framework,
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id)
    }
}

const fn llm(id: &'static str, name: &'static str) -> Label {
    Label {
        id,
        name,
        framework: Framework::OwaspLlm2025,
    }
}

const fn asi(id: &'static str, name: &'static str) -> Label {
    Label {
        id,
        name,
        framework: Framework::OwaspAgentic2026,
    }
}

const fn atlas(id: &'static str, name: &'static str) -> Label {
    Label {
        id,
        name,
        framework: Framework::MitreAtlas,
    }
}

pub const LLM01_PROMPT_INJECTION: Label = llm("LLM01:2025", "Prompt Injection");
pub const LLM02_SENSITIVE_INFORMATION_DISCLOSURE: Label =
    llm("LLM02:2025", "Sensitive Information Disclosure");
pub const LLM03_SUPPLY_CHAIN: Label = llm("LLM03:2025", "Supply Chain");
pub const LLM04_DATA_AND_MODEL_POISONING: Label = llm("LLM04:2025", "Data and Model Poisoning");
pub const LLM05_IMPROPER_OUTPUT_HANDLING: Label = llm("LLM05:2025", "Improper Output Handling");
pub const LLM06_EXCESSIVE_AGENCY: Label = llm("LLM06:2025", "Excessive Agency");
pub const LLM07_SYSTEM_PROMPT_LEAKAGE: Label = llm("LLM07:2025", "System Prompt Leakage");
pub const LLM08_VECTOR_AND_EMBEDDING_WEAKNESSES: Label =
    llm("LLM08:2025", "Vector and Embedding Weaknesses");
pub const LLM09_MISINFORMATION: Label = llm("LLM09:2025", "Misinformation");
pub const LLM10_UNBOUNDED_CONSUMPTION: Label = llm("LLM10:2025", "Unbounded Consumption");

pub const ASI01_AGENT_GOAL_HIJACK: Label = asi("ASI01:2026", "Agent Goal Hijack");
pub const ASI02_TOOL_MISUSE: Label = asi("ASI02:2026", "Tool Misuse and Exploitation");
pub const ASI03_IDENTITY_AND_PRIVILEGE_ABUSE: Label =
    asi("ASI03:2026", "Identity and Privilege Abuse");
pub const ASI04_AGENTIC_SUPPLY_CHAIN: Label =
    asi("ASI04:2026", "Agentic Supply Chain Vulnerabilities");
pub const ASI05_UNEXPECTED_CODE_EXECUTION: Label = asi("ASI05:2026", "Unexpected Code Execution");
pub const ASI06_MEMORY_AND_CONTEXT_POISONING: Label =
    asi("ASI06:2026", "Memory and Context Poisoning");
pub const ASI07_INSECURE_INTER_AGENT_COMMUNICATION: Label =
    asi("ASI07:2026", "Insecure Inter-Agent Communication");
pub const ASI08_CASCADING_FAILURES: Label = asi("ASI08:2026", "Cascading Failures");
pub const ASI09_HUMAN_AGENT_TRUST_EXPLOITATION: Label =
    asi("ASI09:2026", "Human-Agent Trust Exploitation");
pub const ASI10_ROGUE_AGENTS: Label = asi("ASI10:2026", "Rogue Agents");

pub const ATLAS_LLM_PROMPT_INJECTION: Label = atlas("AML.T0051", "LLM Prompt Injection");
pub const ATLAS_LLM_PROMPT_INJECTION_DIRECT: Label =
    atlas("AML.T0051.000", "LLM Prompt Injection: Direct");
pub const ATLAS_LLM_PROMPT_INJECTION_INDIRECT: Label =
    atlas("AML.T0051.001", "LLM Prompt Injection: Indirect");

pub const ATLAS_AI_AGENT_TOOL_INVOCATION: Label = atlas("AML.T0053", "AI Agent Tool Invocation");

/// Every label, for look-ups by id (e.g. when reading findings back from JSON).
pub const ALL: &[Label] = &[
    LLM01_PROMPT_INJECTION,
    LLM02_SENSITIVE_INFORMATION_DISCLOSURE,
    LLM03_SUPPLY_CHAIN,
    LLM04_DATA_AND_MODEL_POISONING,
    LLM05_IMPROPER_OUTPUT_HANDLING,
    LLM06_EXCESSIVE_AGENCY,
    LLM07_SYSTEM_PROMPT_LEAKAGE,
    LLM08_VECTOR_AND_EMBEDDING_WEAKNESSES,
    LLM09_MISINFORMATION,
    LLM10_UNBOUNDED_CONSUMPTION,
    ASI01_AGENT_GOAL_HIJACK,
    ASI02_TOOL_MISUSE,
    ASI03_IDENTITY_AND_PRIVILEGE_ABUSE,
    ASI04_AGENTIC_SUPPLY_CHAIN,
    ASI05_UNEXPECTED_CODE_EXECUTION,
    ASI06_MEMORY_AND_CONTEXT_POISONING,
    ASI07_INSECURE_INTER_AGENT_COMMUNICATION,
    ASI08_CASCADING_FAILURES,
    ASI09_HUMAN_AGENT_TRUST_EXPLOITATION,
    ASI10_ROGUE_AGENTS,
    ATLAS_LLM_PROMPT_INJECTION,
    ATLAS_LLM_PROMPT_INJECTION_DIRECT,
    ATLAS_LLM_PROMPT_INJECTION_INDIRECT,
    ATLAS_AI_AGENT_TOOL_INVOCATION,
];

/// The label with this id, if it is one of ours.
pub fn by_id(id: &str) -> Option<Label> {
    ALL.iter().copied().find(|l| l.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_found_back() {
        for label in ALL {
            assert_eq!(by_id(label.id), Some(*label));
            assert_eq!(ALL.iter().filter(|l| l.id == label.id).count(), 1);
        }
        assert_eq!(by_id("LLM11:2025"), None);
    }

    #[test]
    fn frameworks_follow_the_id_prefix() {
        for label in ALL {
            let expected = if label.id.starts_with("LLM") {
                Framework::OwaspLlm2025
            } else if label.id.starts_with("ASI") {
                Framework::OwaspAgentic2026
            } else {
                Framework::MitreAtlas
            };
            assert_eq!(label.framework, expected, "{}", label.id);
        }
    }

    #[test]
    fn serialises_as_the_id() {
        assert_eq!(
            serde_json::to_string(&LLM01_PROMPT_INJECTION).unwrap(),
            "\"LLM01:2025\""
        );
    }
}
