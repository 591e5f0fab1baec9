//! Prompt-injection detection in content an agent ingests, on the node and without calling any
//! LLM: documented rules beside a small learned model ([`model`]).
//!
//! [`scan`] normalises a text (compatibility folding, diacritics and invisible characters
//! removed, lower case, whitespace collapsed, look-alike letters folded inside Latin words),
//! runs documented rules over it (each a general pattern with a weight and a category), and
//! combines the rules that fired into a score in 0..=1 with a noisy-OR:
//! `score = 1 - Π (1 - weight(rule) × multiplier(source, category(rule)))`, each rule counted
//! once. Every hit names the rule, the phrase it matched and its byte offset in the input, and
//! carries OWASP LLM / Agentic / MITRE ATLAS labels. docs/detection.md lists every rule. The
//! learned model scores the same normalised text; the verdict's score is a probability that a
//! calibration fitted on the validation split forms from both ([`model::Calibration`]), judged
//! against [`Thresholds`] (the shipped ones, or configured), and the verdict carries both
//! explanations and the thresholds it was judged against.
//!
//! Work is bounded: at most [`MAX_SCAN_BYTES`] of an input are looked at (its head and tail;
//! the verdict says when an input was cut), at most [`MAX_ENCODED_CANDIDATES`] encoded runs are
//! decoded, and hits are capped per rule and in total.

use std::sync::LazyLock;

use base64::Engine;
use regex::bytes::{Regex, RegexBuilder};
use serde::Serialize;

use super::labels::{self, Label};

pub mod decoded_text;
pub mod hidden_comments;
pub mod model;
pub use model::{Calibration, FeatureContribution, ModelScore, Thresholds};

/// Inputs longer than this are scanned over their first [`HEAD_BYTES`] and their last
/// `MAX_SCAN_BYTES - HEAD_BYTES` bytes: injected text sits at the start or the end of a
/// document far more often than in the middle, and the cap keeps one huge response from
/// costing more than a fixed amount of time.
pub const MAX_SCAN_BYTES: usize = 256 * 1024;
/// The head part of the scanned window of a cut input.
pub const HEAD_BYTES: usize = 192 * 1024;
/// Encoded runs (base64, hex, URL encoding, rot13, spaced letters) decoded and scanned per
/// input, at most.
pub const MAX_ENCODED_CANDIDATES: usize = 16;
/// Bytes of one encoded run that are decoded, at most.
const MAX_ENCODED_RUN: usize = 16 * 1024;
/// Hits reported per rule (the score counts each rule once anyway).
pub const MAX_HITS_PER_RULE: usize = 4;
/// Hits reported per input.
pub const MAX_HITS: usize = 48;
/// Length of the `matched` phrase of a hit, at most (bytes, cut on a character boundary).
pub const MAX_MATCHED_BYTES: usize = 120;
/// The rules' own `injection` band: a rules score from which the rules alone call a text an
/// injection (the verdict's thresholds are on the calibrated score, [`Thresholds`]; this is
/// for judging the rules alone, and when the shipped model is damaged).
pub const RULES_INJECTION_THRESHOLD: f32 = 0.7;
/// The rules' own `suspicious` band (see [`RULES_INJECTION_THRESHOLD`]).
pub const RULES_SUSPICIOUS_THRESHOLD: f32 = 0.4;

impl Thresholds {
    /// The thresholds shipped with the model (model.json: chosen on the validation split for
    /// target false-positive rates); the rules' own bands if the model is damaged.
    pub fn shipped() -> Thresholds {
        model::MODEL.as_ref().map_or(
            Thresholds {
                suspicious: RULES_SUSPICIOUS_THRESHOLD,
                injection: RULES_INJECTION_THRESHOLD,
            },
            |m| m.thresholds,
        )
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::shipped()
    }
}

/// Where the scanned text came from. Data channels (tool results, documents, pages, files) are
/// not supposed to address the model at all, so directives in them weigh fully; a user message
/// is supposed to hold directives; a tool description is supposed to tell the model how to use
/// the tool but not to hide things from the user or read secrets. See [`multiplier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestSource {
    /// The result of a tool call the model requested (function calling).
    ToolResult,
    /// The result of an MCP `tools/call`.
    McpToolResult,
    /// A document returned by retrieval (vector store, search index) and put in the prompt.
    RetrievedDocument,
    /// A fetched web page.
    WebPage,
    /// The contents of a file sent to the model.
    FileContent,
    /// A tool description (MCP `tools/list`, a function schema's description).
    ToolDescription,
    /// A message written by the user (direct prompt injection, jailbreaks).
    UserMessage,
    /// Content of unknown origin: weighed like a data channel.
    Unknown,
}

impl IngestSource {
    pub const ALL: [IngestSource; 8] = [
        IngestSource::ToolResult,
        IngestSource::McpToolResult,
        IngestSource::RetrievedDocument,
        IngestSource::WebPage,
        IngestSource::FileContent,
        IngestSource::ToolDescription,
        IngestSource::UserMessage,
        IngestSource::Unknown,
    ];

    /// The snake_case name used in JSON (`tool_result`, `mcp_tool_result`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            IngestSource::ToolResult => "tool_result",
            IngestSource::McpToolResult => "mcp_tool_result",
            IngestSource::RetrievedDocument => "retrieved_document",
            IngestSource::WebPage => "web_page",
            IngestSource::FileContent => "file_content",
            IngestSource::ToolDescription => "tool_description",
            IngestSource::UserMessage => "user_message",
            IngestSource::Unknown => "unknown",
        }
    }

    /// Parses the snake_case name (as written by [`IngestSource::as_str`]).
    pub fn parse(name: &str) -> Option<IngestSource> {
        IngestSource::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What a rule looks for; the source multiplier is chosen by category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Attempts to cancel or replace the instructions the model already has.
    Override,
    /// Attempts to give the model another identity or a jailbroken persona.
    Role,
    /// Chat-template tokens and fake conversation turns.
    TurnMarker,
    /// Text that addresses the model or dictates its answer.
    Directive,
    /// Requests to call tools, run commands or take consequential actions.
    ToolAction,
    /// Requests to send data out, and URLs shaped to carry it.
    Exfiltration,
    /// Mentions of credential files and similar secrets.
    SensitiveData,
    /// Hiding the action from the user.
    Secrecy,
    /// Requests to reveal the system prompt.
    PromptLeak,
    /// Instructions hidden in an encoding (base64, hex, URL encoding, rot13, spaced letters).
    Encoding,
    /// Invisible characters and look-alike letters.
    Obfuscation,
    /// Pressure and emphasis typical of injected text.
    Emphasis,
    /// Script-carrying HTML (event handlers, `javascript:` links) meant to reach the output.
    ActiveContent,
}

/// How much a rule of `category` counts in text from `source` (1.0 for data channels).
pub fn multiplier(source: IngestSource, category: Category) -> f32 {
    use Category as C;
    match source {
        IngestSource::UserMessage => match category {
            C::Directive => 0.4,
            C::ToolAction => 0.3,
            C::Role => 0.7,
            C::Exfiltration => 0.6,
            C::SensitiveData => 0.5,
            C::Secrecy => 0.7,
            C::PromptLeak => 0.8,
            C::Emphasis => 0.5,
            C::ActiveContent => 0.7,
            C::Override | C::TurnMarker | C::Encoding | C::Obfuscation => 1.0,
        },
        IngestSource::ToolDescription => match category {
            C::Directive => 0.7,
            C::ToolAction => 0.6,
            C::Role => 0.8,
            C::Secrecy | C::Exfiltration => 1.2,
            C::SensitiveData => 1.5,
            _ => 1.0,
        },
        // Pages and files are HTML often enough that scripts in them say little on their own.
        IngestSource::WebPage | IngestSource::FileContent => match category {
            C::ActiveContent => 0.5,
            _ => 1.0,
        },
        IngestSource::ToolResult
        | IngestSource::McpToolResult
        | IngestSource::RetrievedDocument
        | IngestSource::Unknown => 1.0,
    }
}

/// The overall judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Score below the `suspicious` threshold.
    Benign,
    /// Score from the `suspicious` threshold to below the `injection` threshold.
    Suspicious,
    /// Score at or above the `injection` threshold.
    Injection,
}

impl Verdict {
    pub fn from_score(score: f32, thresholds: Thresholds) -> Verdict {
        if score >= thresholds.injection {
            Verdict::Injection
        } else if score >= thresholds.suspicious {
            Verdict::Suspicious
        } else {
            Verdict::Benign
        }
    }
}

/// One rule that fired, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    /// Stable rule id (documented in docs/detection.md).
    pub rule: &'static str,
    pub description: &'static str,
    pub category: Category,
    /// The rule's weight after the source multiplier (what the score used), 0..=0.95.
    pub weight: f32,
    /// The phrase that matched, from the normalised text (lower case, invisible characters
    /// removed), at most [`MAX_MATCHED_BYTES`]. For hidden text (Unicode tags, decoded base64
    /// or hex) it is the revealed text.
    pub matched: String,
    /// Byte offset in the input where the match starts (for hidden text: where the hidden run
    /// starts).
    pub offset: usize,
    /// OWASP LLM Top 10 2025, OWASP Agentic Top 10 2026 and MITRE ATLAS labels.
    pub labels: Vec<Label>,
}

/// The detector's answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectionVerdict {
    /// Estimated probability (0 to 1) that the text is an injection: the calibration of the
    /// rules' score and the model's logit ([`model::Calibration`]). Without the model (a
    /// damaged file), the rules' score.
    pub score: f32,
    pub verdict: Verdict,
    /// The thresholds `verdict` was judged against (shipped or configured).
    pub thresholds: Thresholds,
    pub source: IngestSource,
    /// Rules that fired, in order of offset.
    pub hits: Vec<RuleHit>,
    /// What the rules alone scored (noisy-OR of the hits).
    pub rules_score: f32,
    /// What the learned model said ([`model`]); `None` only if the shipped model is damaged.
    pub model: Option<ModelScore>,
    /// Length of the input in bytes.
    pub input_bytes: usize,
    /// Bytes actually scanned (equal to `input_bytes` unless the input was cut).
    pub scanned_bytes: usize,
    /// True when the input was longer than [`MAX_SCAN_BYTES`] and only its head and tail were
    /// scanned.
    pub truncated: bool,
}

impl InjectionVerdict {
    /// The distinct labels of all hits, sorted.
    pub fn labels(&self) -> Vec<Label> {
        let mut all: Vec<Label> = self.hits.iter().flat_map(|h| h.labels.clone()).collect();
        all.sort();
        all.dedup();
        all
    }
}

/// A rule's documented properties.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    pub id: &'static str,
    pub description: &'static str,
    pub category: Category,
    /// Base weight, before the source multiplier.
    pub weight: f32,
    /// Labels besides the source-dependent ones (see [`source_labels`]).
    pub labels: &'static [Label],
}

use labels::{
    ASI01_AGENT_GOAL_HIJACK as ASI01, ASI02_TOOL_MISUSE as ASI02,
    ASI03_IDENTITY_AND_PRIVILEGE_ABUSE as ASI03, ASI05_UNEXPECTED_CODE_EXECUTION as ASI05,
    ASI09_HUMAN_AGENT_TRUST_EXPLOITATION as ASI09, LLM01_PROMPT_INJECTION as LLM01,
    LLM02_SENSITIVE_INFORMATION_DISCLOSURE as LLM02, LLM05_IMPROPER_OUTPUT_HANDLING as LLM05,
    LLM06_EXCESSIVE_AGENCY as LLM06, LLM07_SYSTEM_PROMPT_LEAKAGE as LLM07,
};

/// A rule matched by a regular expression over the normalised text.
struct PatternRule {
    info: RuleInfo,
    pattern: &'static str,
}

/// Word gap: up to N bytes within one sentence (no newline or sentence end).
macro_rules! gap {
    ($n:literal) => {
        concat!(r"[^\n.!?]{0,", $n, "}?")
    };
}

/// The agent's names for itself that injected text uses to address it.
macro_rules! ai_noun {
    () => {
        r"(?:ai|a\.i\.|llm|llms|assistant|ai assistant|language model|large language model|chatbot|bot|agent|ai agent|model|ai model|gpt|chatgpt|claude|gemini|copilot|automated (?:\w+ )?(?:system|software|tool|agent|analysis|screening|reviewer|scanner|parser)s?|ai (?:system|tool|reviewer|screener)s?)"
    };
}

const PATTERN_RULES: &[PatternRule] = &[
    PatternRule {
        info: RuleInfo {
            id: "override.ignore_instructions",
            description: "tells the model to ignore, forget or override the instructions it already has",
            category: Category::Override,
            weight: 0.75,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r"\b(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|bypass|neglect|abandon|discard|do not follow|don't follow|stop following|no longer follow|pay no attention to)\b ",
            r"(?:",
            gap!(30),
            r"\b(?:previous|prior|preceding|above|earlier|foregoing|former|original|initial|old|existing|system|developer|all|any|every|your|those|these|other|my)\b ",
            gap!(25),
            r")?\b(?:\w{0,3}nstruct\w*|directions?|directives?|prompts?|rules|guidelines|guidance|constraints|commands?|orders|programming|policies|restrictions|safeguards|guardrails|boundaries|limits|limitations|filters|training|context|tasks?)\b",
            r"|\bregardless of (?:any |all |your |the |my )?(?:previous|prior|earlier|pre-existing|original|other|system) (?:\w{0,3}nstruct\w*|input|guidelines|rules|directions|prompts|programming)",
            r"|\b(?:ignore|disregard|forget)\b (?:all |everything |anything )?(?:(?:that|what) )?(?:(?:was|is|has been|i|you|we) )?(?:the )?(?:said|written|stated|told|mentioned|given|above|before|so far|previously|earlier|prior)\b",
            r"|\bignore[rz]? (?:toutes )?(?:les |vos |mes )?(?:instructions|consignes|directives|regles) (?:precedentes|anterieures|ci-dessus|d'avant)",
            r"|\boublie[rz]? (?:toutes )?(?:les |vos )?(?:instructions|consignes)",
            r"|\b(?:ignora|ignorar|ignore|olvida|olvidar) (?:todas )?(?:las |tus )?(?:instrucciones|indicaciones|reglas) (?:anteriores|previas)",
            r"|\b(?:ignorier(?:e|en)?|vergiss|vergessen sie) (?:alle )?(?:vorherigen|bisherigen|obigen|vorangegangenen|vorigen)? ?(?:anweisungen|instruktionen|befehle|regeln)",
            r"|\b(?:ignora|dimentica) (?:tutte )?(?:le )?(?:istruzioni|indicazioni) (?:precedenti|sopra)",
            r"|\b(?:ignore|ignora|esqueca) (?:todas )?(?:as )?(?:instrucoes|regras) (?:anteriores|previas)",
            // Patterns see normalised text: diacritics are gone (й is и), so are they here.
            r"|(?u:(?:игнориру|забуд)[^\n]{0,24}?(?:инструкци|указани|правил))",
            r"|(?:忽略|无视|忘记|忽视|不要理会)[^\n]{0,36}?(?:指令|指示|说明|规则|提示)",
            r"|(?:以前|前|上記|これまで)の(?:指示|命令|指令)を(?:無視|忘れ)",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "override.new_instructions",
            description: "announces new or replacement instructions, or a task to do before the user's",
            category: Category::Override,
            weight: 0.6,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r"\bnew (?:important |updated |revised |additional |secret |real |priority )?(?:instructions?|directives?|orders|rules)\b ?(?:[:*!-]|follow|are|is|from)",
            r"|\b(?:updated|revised|real|true|actual|new) (?:instructions?|task|goal|objective|mission|purpose) (?:is|are|will be)\b",
            r"|\binstead,? (?:you (?:must|should|will|need to|have to)|please|output|print|say|respond|reply|write|send|return)\b",
            r"|\bbefore (?:you )?(?:can )?(?:solve|answer|complete|continue|respond|proceed|summari[sz]e|finish|do)\b ",
            gap!(50),
            r"\b(?:do the following|please do|you (?:must|need to|have to) first|first (?:do|you must))",
            r"|\bthis is an? (?:important|urgent|critical|high[- ]priority) (?:message|instruction|notice|update|request)\b",
            r"|\b(?:from now on|henceforth|going forward),? (?:you|your|always|only|respond|reply|answer|act|do not|don't|never|ignore)\b",
            r"|\b(?:stop|halt|cancel|abort) (?:the |your )?(?:current |original )?(?:task|summar\w*|translation|analysis)\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "role.reassignment",
            description: "gives the model a new identity or role",
            category: Category::Role,
            weight: 0.45,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r"\byou are (?:now|no longer|not (?:an? )?(?:ai|assistant|language model|chatbot|bound))\b",
            r"|\bfrom now on,? you (?:are|will (?:be|act|respond|answer)|shall)\b",
            r"|(?:^|[\n.!?:] ?|please |now |you (?:will|must|should|shall|are going to|are to) )(?:act|behave|respond) as (?:if you (?:were|are)|an?|the|my)\b",
            r"|\bpretend (?:to be|you are|that you are|you're)\b",
            r"|\brole-?play as\b",
            r"|\b(?:assume|adopt|take on) the (?:role|persona|identity) of\b",
            r"|\byour new (?:role|persona|identity|name) is\b",
            r"|\bimmerse yourself (?:in|into) the role\b",
            r"|\byou are (?:now )?(?:dan|stan|dude|anti-dan|betterdan|mongo tom|evil ?bot)\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "role.jailbreak_persona",
            description: "invokes a jailbreak persona or mode (DAN, developer mode) or frees the model from its rules",
            category: Category::Role,
            weight: 0.6,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r"\bdo anything now\b",
            r"|\b(?:dan|stan|dude|aim|anti-dan|betterdan|mongo tom|evil ?bot|jailbroken)\b",
            gap!(30),
            r"(?:stands for|mode|jailbreak|do anything|which means|persona|character|no (?:rules|restrictions|filters))",
            r"|\b(?:developer|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|dan|sudo|evil) mode\b",
            r"|\b(?:enable|activate|enter|switch to|you are in|now in) (?:developer|god|jailbreak|unrestricted|dan|sudo|admin|debug|test|maintenance) mode\b",
            r"|\b(?:not bound by|broken free (?:of|from)|freed? from the (?:typical )?confines|(?:does|do|will) not (?:have to )?(?:abide|adhere|comply) (?:by|to|with) (?:any |the |their )?(?:rules|policies|guidelines|restrictions))",
            r"|\b(?:openai|anthropic|content|safety)(?:'s)? (?:content )?polic(?:y|ies)\b ",
            gap!(40),
            r"\b(?:ignore|bypass|not apply|doesn't apply|does not apply|disregard|no longer)",
            r"|\b(?:never|not|cannot|can't|won't|will not) (?:ever )?refuse\b",
            r"|\bfree (?:from|of) (?:all |any )?(?:constraints|restrictions|rules|limitations|guidelines|filters|censorship)\b",
            r"|\b(?:no|without|free of) (?:any )?(?:moral|ethical) (?:or ethical |or moral )?(?:bias|guidelines|restrictions|considerations|limits|boundaries)\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "turn.chat_template_token",
            description: "contains chat-template control tokens ([INST], <|im_start|>, <<SYS>>) that fake a conversation turn",
            category: Category::TurnMarker,
            weight: 0.7,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text|end|eom_id|python_tag)\|>",
            r"|\[/?inst\]|<</?sys>>|<start_of_turn>|<end_of_turn>|\[/?system_message\]",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "turn.fake_system_message",
            description: "fakes a system, developer or administrator message inside data",
            category: Category::TurnMarker,
            weight: 0.6,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r"\[(?:system|admin|developer|sys|system note|system message)\]|</?system>|\((?:system|system_message|system message)\)",
            r"|#{2,} ?\(?(?:system|instruction|instructions|new instructions|system_message)\b",
            r"|\b(?:system|admin|security|developer) (?:override|update|alert|notice|instruction|message|note)s? ?:",
            r"|\b(?:core|critical|priority|urgent|high[- ]priority|hidden|secret) (?:system )?(?:instruction|directive)s?\b",
            r"|\bsystem chain of thought\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "turn.fake_turn_marker",
            description: "starts a line as a conversation role (system:, assistant:, user:) or fakes the end of the document or session",
            category: Category::TurnMarker,
            weight: 0.3,
            labels: &[LLM01],
        },
        pattern: concat!(
            r"(?:^|\n) ?(?:#{1,4} ?)?(?:system|assistant|user|human|ai|bot|chatgpt|gpt|claude) ?: ?[^\s]",
            r"|<end of (?:session|conversation|document|input|context|user input)>",
            r"|\bend of (?:user )?(?:input|session|document|context|prompt)\b ?[-=*#>\]]",
            r"|\[(?:rest-of-document|end of (?:document|input))\]",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "directive.addressed_to_ai",
            description: "addresses the AI, assistant or agent that reads the data",
            category: Category::Directive,
            weight: 0.45,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r"\b(?:note|message|instructions?|attention|notice|memo|reminder|hint|important) (?:to|for) (?:the |any |all |an? )?",
            ai_noun!(),
            r"\b",
            r"|\b(?:dear|hey|hello|hi|attention|psst)[ ,]+(?:the )?",
            ai_noun!(),
            r"\b",
            r"|\bif you are an? ",
            ai_noun!(),
            r"\b",
            r"|\bif you (?:are|were|get) (?:told|asked|instructed|requested|prompted) to (?:summari[sz]e|answer|translate|analy[sz]e|review|respond|evaluate|describe)",
            r"|\b(?:ai|llm|assistant|agent|model|chatbot)s? (?:reading|processing|summari[sz]ing|analy[sz]ing|parsing|scanning|reviewing) this\b",
            r"|\b(?:when|if|as) (?:you|the (?:ai|assistant|model|agent|llm)) (?:summari[sz]e|read|process|analy[sz]e|review|parse|see|encounter)s? (?:this|these)\b",
            r"|\bto you,? (?:the )?(?:ai|assistant|model|agent|llm|ai assistant|ai model)\b",
            r"|\b(?:invisible|hidden) (?:to|from) (?:the )?(?:humans?|users?|people|readers|reviewers)\b|\bvisible (?:only )?to (?:the )?(?:ai|llms?|models?|bots?|agents?|machines?)\b",
            r"|\b(?:you|the (?:ai|assistant|model|agent)) (?:must|should|need to|are required to|have to|will now|are instructed to) (?:now )?(?:ignore|disregard|forget|obey|comply with|follow these|follow the (?:instructions|steps) below|reveal|respond only|reply only|only respond|only reply)\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "directive.dictate_response",
            description: "dictates what the model must answer or put in its response",
            category: Category::Directive,
            weight: 0.45,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r#"\b(?:respond|reply|answer|output|print|say|write|return|state|repeat)\b (?:only |just |exactly |simply )*(?:with )?(?:the (?:following|phrase|word|text|string|sentence)|this (?:exact )?(?:text|phrase|word|string|sentence)|["'`])[^\n]{0,120}?(?:and nothing else|nothing else|verbatim|word for word|exactly as (?:written|it is|is))"#,
            r"|\b(?:include|insert|add|append|embed|put) (?:this |the following )?",
            gap!(40),
            r"\b(?:in|into|to|at the (?:end|start|beginning) of) your (?:response|answer|output|summary)\b",
            r"|\b(?:at the (?:end|start|beginning) of|in|into|within) your (?:response|output|summary|next answer)\b",
            r"|\b(?:when|if) (?:the user|the human|someone|anyone|you are|asked)\b ",
            gap!(60),
            r"\b(?:respond|reply|answer|say|tell (?:them|the user)|simply respond)\b (?:with|that|only)",
            r#"|\b(?:print|say|output|respond with|reply with) ?["'<]"#,
            r"|\b(?:please )?repeat the following (?:sentence|text|phrase|words?|string)\b",
            r"|\bsummari[sz]e (?:this|the) (?:\w+ )?as\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "action.tool_call_request",
            description: "asks the model to call a tool or function",
            category: Category::ToolAction,
            weight: 0.35,
            labels: &[LLM01, LLM06, ASI02],
        },
        pattern: concat!(
            r"\b(?:call|invoke|use|run|execute|trigger) (?:the |this |your |a |an )?(?:[a-z_]+ )?(?:tool|function|plugin|api|action)\b ",
            gap!(30),
            r"\b(?:with|passing|using) (?:the )?(?:arguments?|parameters?|params|input|following)\b",
            r"|\b(?:call|invoke|run|execute|use) (?:the )?`?[a-z]+_[a-z_]+`?(?: tool| function)? (?:with|to|on|and)\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "action.command_execution",
            description: "asks the model to run a shell command, code or a query, or carries a download-and-run one-liner",
            category: Category::ToolAction,
            weight: 0.5,
            labels: &[LLM01, LLM06, ASI02, ASI05],
        },
        pattern: concat!(
            r"\b(?:run|execute|eval|evaluate) (?:the following|this|these|that) (?:shell |bash |terminal |system |python |sql |powershell |javascript )?(?:command|code|script|query|snippet|payload|commands|program)\b",
            r"|\b(?:curl|wget) (?:-[^\s]+ )*(?:https?://)[^\n]{0,100}?\| ?(?:sudo )?(?:ba|z)?sh\b",
            r"|\brm -rf (?:/|~|\*|\$home)|\bbash -c\b|\bpowershell (?:-enc|-e |-nop|-command|-w hidden)|\bnc -e\b|/dev/tcp/|\bchmod \+x\b[^\n]{0,40}?&& ?\./",
            r"|\bimport os;? ?os\.system\(|\bsubprocess\.(?:run|call|popen)\(|__import__\(",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "action.consequential_request",
            description: "asks for a consequential action on the user's behalf: money transfer, mass deletion, password change, inviting an account",
            category: Category::ToolAction,
            weight: 0.4,
            labels: &[LLM01, LLM06, ASI01, ASI02],
        },
        pattern: concat!(
            r"\b(?:send|transfer|wire|pay) (?:\$?\d[\d,.]* ?(?:usd|eur|dollars|euros|\$)?|money|funds|a (?:transaction|payment|transfer)|all (?:the )?(?:money|funds|balance)|as much money)\b",
            r"|\b(?:delete|remove|wipe|erase|truncate|drop) (?:all|every|the entire|the whole) (?:\w+ ){0,2}(?:files?|emails?|messages?|records|rows|tables?|data|database|repositor(?:y|ies)|users?|events?|backups?)\b",
            r"|\b(?:change|reset|update|set) (?:the |my |your |user'?s? )?password (?:of (?:the )?user )?to\b",
            r"|\b(?:invite|add) (?:the )?(?:user|him|her|them|[a-z0-9._%+-]+@[a-z0-9.-]+)\b ",
            gap!(40),
            r"\b(?:to the (?:workspace|channel|organi[sz]ation|team|repo)|as (?:an? )?(?:admin|owner|collaborator))\b",
            r"|\b(?:modify|change|update) the recipient\b",
            r"|\b(?:delete|remove) (?:the|this|that) (?:file|email|message|event|repository|account|user|channel)s? (?:with (?:the )?(?:id|name)|named|called)\b",
            r"|\b(?:make|create|book) a (?:reservation|booking|payment)\b[^\n]{0,80}?\b(?:friend|surprise|instead)\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "exfiltration.send_data",
            description: "asks to send secrets, messages, files or user data to an address, URL or website",
            category: Category::Exfiltration,
            weight: 0.55,
            labels: &[LLM01, LLM02, ASI01, ASI02],
        },
        pattern: concat!(
            r"\b(?:send|forward|email|e-mail|mail|post|upload|transmit|leak|share|exfiltrate|copy|concatenate|dump|append|include|attach|embed|encode|put)\b ",
            gap!(60),
            r"\b(?:api[ _-]?keys?|passwords?|credentials?|secrets?|(?:access |auth |bearer |session )?tokens?|ssh (?:private )?keys?|private keys?|id_rsa|credit card(?: numbers?)?|social security|ssn|system prompt|(?:security|verification|auth|authentication|2fa|one-time|otp|login|reset|mfa) codes?|(?:the )?(?:body|bodies|contents?) of (?:the|an|all|every|each) (?:\w+ ){0,2}(?:emails?|messages?|files?|documents?)|(?:conversation|chat|message|browsing) history|previous messages|(?:all|every|the) (?:\w+ ){0,2}(?:messages|emails|files|documents|contacts|rows|records|transactions)|customer (?:data|records|list|table)|personal (?:data|information)|the user'?s? (?:data|information|details|email|files|messages|address|phone|iban|password))\b",
            gap!(80),
            r"\b(?:to|at|into|via|using|on)\b ",
            gap!(30),
            r"(?:https?://|www\.|[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}|\bwebhook\b|\bthe (?:following|this|my|attacker'?s?) (?:url|address|email|endpoint|website|server|link)\b|\bwebsite\b|\bendpoint\b)",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "exfiltration.send_to_destination",
            description: "asks to send or post something to an explicit URL or e-mail address",
            category: Category::Exfiltration,
            weight: 0.3,
            labels: &[LLM01, LLM02, ASI02],
        },
        pattern: concat!(
            r"\b(?:send|forward|email|post|upload|transmit|submit|report)\b ",
            gap!(60),
            r"\bto (?:the (?:website|url|address|endpoint|server) )?(?:https?://[^\s]+|www\.[^\s]+|[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,})",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "exfiltration.markdown_image",
            description: "markdown image whose URL carries a placeholder for data (rendering it sends the data out)",
            category: Category::Exfiltration,
            weight: 0.7,
            labels: &[LLM01, LLM02, LLM05, ASI02],
        },
        pattern: r"!\[[^\]\n]{0,100}\] ?\( ?(?:https?:)?//[^\s)]{1,200}?[?&#/=][^\s)]{0,100}?(?:\[[a-z_ -]{1,30}\]|\{\{?[a-z_ .-]{1,30}\}?\}|\$\{?[a-z_]{2,30}|<[a-z_ -]{1,30}>|%7b|%5b|%3c)",
    },
    PatternRule {
        info: RuleInfo {
            id: "exfiltration.url_data_placeholder",
            description: "URL whose query carries a placeholder named for secrets or conversation data",
            category: Category::Exfiltration,
            weight: 0.45,
            labels: &[LLM01, LLM02, ASI02],
        },
        pattern: r#"(?:https?:)?//[a-z0-9.-]+(?::\d+)?/?[^\s)"'<>]{0,150}?[?&][a-z0-9_]{1,30}=(?:\[|\{\{?|\$\{?|<|%7b|%5b|%3c)[a-z_ .-]{0,12}(?:data|secret|token|key|password|pass|pwd|info|query|summary|conversation|history|chat|message|content|context|user|email|result|output|payload|base64|encoded|credential|answer|response)"#,
    },
    PatternRule {
        info: RuleInfo {
            id: "sensitive.credential_path",
            description: "mentions a credential file or secret location (SSH keys, cloud credentials, Kubernetes service-account token)",
            category: Category::SensitiveData,
            weight: 0.25,
            labels: &[LLM02, ASI03],
        },
        pattern: r"~/\.ssh|\bid_(?:rsa|ed25519|ecdsa|dsa)\b|/etc/(?:passwd|shadow)\b|\.aws/credentials|/var/run/secrets/kubernetes\.io|\.kube/config|\.netrc\b|\.git-credentials|\bmcp\.json\b|\.docker/config\.json",
    },
    PatternRule {
        info: RuleInfo {
            id: "secrecy.hide_from_user",
            description: "asks to hide the action or these instructions from the user",
            category: Category::Secrecy,
            weight: 0.5,
            labels: &[LLM01, ASI01, ASI09],
        },
        pattern: concat!(
            r"\b(?:do not|don't|dont|never|must not|mustn't|should not|shouldn't|without) (?:ever )?(?:tell|telling|inform|informing|mention|mentioning|reveal|revealing|disclose|disclosing|alert|alerting|notify|notifying|let|letting|ask|asking|warn|warning)\b (?:the |your |any )?(?:user|human|person|anyone|them|operator|customer|owner)\b",
            r"|\bkeep (?:this|it|these instructions|the following) (?:a )?(?:secret|hidden|confidential|between us)\b",
            // Tool poisoning hides the extra step itself: "do not mention that you first need
            // to read the file".
            r"|\b(?:do not|don't|dont|never|must not) (?:mention|reveal|disclose) (?:that you|this step|these steps|the (?:extra |first )?step)\b",
            r"|\b(?:the user|they|he|she) (?:must|should|will) (?:not|never) (?:know|see|find out|notice|be told|be informed)\b",
            r"|\b(?:secretly|covertly|silently|quietly|discreetly|stealthily) (?:\w+ )?(?:send|forward|call|run|execute|add|include|append|transfer|exfiltrate|post|upload|email|copy|read)\b",
            r"|\b(?:don't|do not|never) (?:mention|reveal|acknowledge|disclose|say|talk about) (?:this|these|that|the|any) (?:instruction|message|note|request|step|action|change)s?\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "leak.system_prompt",
            description: "asks the model to reveal its system prompt or initial instructions",
            category: Category::PromptLeak,
            weight: 0.45,
            labels: &[LLM01, LLM07],
        },
        pattern: concat!(
            r"\b(?:reveal|show|print|output|repeat|display|tell|give|share|leak|dump|write out|recite|list|what (?:is|are|were))\b (?:me |us )?(?:all |the |of )?(?:your |the )(?:full |complete |entire |exact |original |initial |hidden |secret )*(?:system (?:prompt|message|instructions?)|initial (?:prompt|instructions)|hidden (?:prompt|instructions)|original (?:prompt|instructions)|instructions you (?:were|have been) given|pre-?prompt|developer (?:prompt|message|instructions))\b",
            r"|\b(?:repeat|output|print|reproduce|copy) (?:everything|all|the (?:text|words|content|instructions)|all text) (?:above|before this|prior to this|from the (?:beginning|start))\b",
            r"|\bwhat (?:were you|have you been) (?:told|instructed|programmed)\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "encoding.decode_and_follow",
            description: "asks the model to decode text (base64, hex, rot13...) and act on it",
            category: Category::Encoding,
            weight: 0.5,
            labels: &[LLM01, ASI01],
        },
        pattern: concat!(
            r"\b(?:decode|decipher|decrypt|translate|convert)\b ",
            gap!(30),
            r"\b(?:base ?64|hex|hexadecimal|rot ?13|binary|morse|caesar|leetspeak|reversed)\b ",
            gap!(60),
            r"\b(?:follow|execute|obey|perform|act on|do what it says|carry out)\b",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "emphasis.urgency",
            description: "pressure typical of injected text (IMPORTANT!!!, it is crucial that you, <IMPORTANT>)",
            category: Category::Emphasis,
            weight: 0.25,
            labels: &[LLM01],
        },
        pattern: concat!(
            r"\b(?:important|urgent|critical|attention)\b ?(?:!{2,}|:? ?\*{2,})|\*{3} ?(?:new |important |urgent )",
            r"|\bit is (?:crucial|imperative|vital|critical|extremely important|very important) (?:that )?you\b",
            r"|\byou (?:must|have to) (?:absolutely|strictly)\b|\bstrictly adhere\b|<important>|\bno matter what\b|\b(?:priority task|emergency|urgent task|urgent action required)\b ?[:*!]",
        ),
    },
    PatternRule {
        info: RuleInfo {
            id: "output.active_content",
            description: "HTML with script event handlers or javascript: links, aimed at whatever renders the model's output",
            category: Category::ActiveContent,
            weight: 0.4,
            labels: &[LLM01, LLM05],
        },
        pattern: concat!(
            r"<(?:img|svg|body|iframe|video|audio|input|details|object)\b[^>\n]{0,120}?\bon(?:error|load|mouseover|focus|toggle|click)\s?=",
            r#"|\bhref ?= ?["'`]? ?javascript:|\bsrc ?= ?["'`]? ?(?:javascript|data:text/html)"#,
        ),
    },
];

/// Rules computed from character-level evidence rather than a pattern.
const ENCODED_INSTRUCTIONS: RuleInfo = RuleInfo {
    id: "encoding.hidden_instructions",
    description: "an encoded run (base64, hex, URL encoding, rot13, letters spaced out) decodes to text in which other rules fire",
    category: Category::Encoding,
    weight: 0.75,
    labels: &[LLM01, ASI01],
};
const HIDDEN_COMMENT: RuleInfo = RuleInfo {
    id: "obfuscation.hidden_comment",
    description: "instructions inside an HTML or Markdown comment, which a rendered page hides from its reader",
    category: Category::Obfuscation,
    weight: 0.5,
    labels: &[LLM01, ASI01],
};
const UNICODE_TAGS: RuleInfo = RuleInfo {
    id: "obfuscation.unicode_tags",
    description: "invisible Unicode tag characters (U+E0000 block) that spell hidden text",
    category: Category::Obfuscation,
    weight: 0.8,
    labels: &[LLM01, ASI01],
};
const ZERO_WIDTH: RuleInfo = RuleInfo {
    id: "obfuscation.zero_width",
    description: "zero-width characters inside words (splitting keywords to evade filters)",
    category: Category::Obfuscation,
    weight: 0.35,
    labels: &[LLM01],
};
const BIDI_CONTROL: RuleInfo = RuleInfo {
    id: "obfuscation.bidi_control",
    description: "bidirectional override or isolate characters that reorder displayed text",
    category: Category::Obfuscation,
    weight: 0.3,
    labels: &[LLM01],
};
const HOMOGLYPHS: RuleInfo = RuleInfo {
    id: "obfuscation.homoglyphs",
    description: "Cyrillic or Greek look-alike letters inside Latin words",
    category: Category::Obfuscation,
    weight: 0.35,
    labels: &[LLM01],
};
const COMPUTED_RULES: &[RuleInfo] = &[
    ENCODED_INSTRUCTIONS,
    UNICODE_TAGS,
    ZERO_WIDTH,
    BIDI_CONTROL,
    HOMOGLYPHS,
    HIDDEN_COMMENT,
];

/// Zero-width characters in words before an obfuscation hit is reported.
const ZERO_WIDTH_MIN: usize = 3;
/// Folded look-alike letters before an obfuscation hit is reported.
const HOMOGLYPH_MIN: usize = 2;
/// Hidden tag text shorter than this is not reported (flag emoji use tag sequences).
const TAG_TEXT_MIN: usize = 4;

/// Every rule, pattern and computed, for documentation and reports.
pub fn rules() -> impl Iterator<Item = RuleInfo> {
    PATTERN_RULES
        .iter()
        .map(|r| r.info)
        .chain(COMPUTED_RULES.iter().copied())
}

/// Labels every hit gets from where the text came from: indirect or direct injection (MITRE
/// ATLAS), poisoned context for retrieved documents, supply chain for tool descriptions.
pub fn source_labels(source: IngestSource) -> &'static [Label] {
    match source {
        IngestSource::UserMessage => &[labels::ATLAS_LLM_PROMPT_INJECTION_DIRECT],
        IngestSource::RetrievedDocument => &[
            labels::ATLAS_LLM_PROMPT_INJECTION_INDIRECT,
            labels::ASI06_MEMORY_AND_CONTEXT_POISONING,
        ],
        IngestSource::ToolDescription => &[
            labels::ATLAS_LLM_PROMPT_INJECTION_INDIRECT,
            labels::LLM03_SUPPLY_CHAIN,
            labels::ASI04_AGENTIC_SUPPLY_CHAIN,
        ],
        IngestSource::ToolResult
        | IngestSource::McpToolResult
        | IngestSource::WebPage
        | IngestSource::FileContent
        | IngestSource::Unknown => &[labels::ATLAS_LLM_PROMPT_INJECTION_INDIRECT],
    }
}

struct CompiledRules {
    /// One regex per pattern rule, in [`PATTERN_RULES`] order. Each runs on its own over the
    /// text rather than all of them as one `RegexSet`: the set's lazy DFA is the product of
    /// every rule's states (their bounded word gaps multiply), so on text it has not seen
    /// before it spent most of a scan building states and clearing its cache (about 60 % of
    /// the time over the quality corpus), while each rule alone has few states that stay
    /// cached, and most start with words the regex crate's literal prefilter skips to.
    each: Vec<Regex>,
    encoded_run: Regex,
}

static COMPILED: LazyLock<CompiledRules> = LazyLock::new(|| {
    // Sizes are bounded so a pathological pattern edit fails loudly at start-up instead of
    // eating memory; the shipped patterns compile well within these limits.
    const SIZE_LIMIT: usize = 32 << 20;
    const DFA_SIZE_LIMIT: usize = 16 << 20;
    let patterns: Vec<&str> = PATTERN_RULES.iter().map(|r| r.pattern).collect();
    let each = patterns
        .iter()
        .map(|p| {
            RegexBuilder::new(p)
                .unicode(false)
                .multi_line(true)
                .size_limit(SIZE_LIMIT)
                .dfa_size_limit(DFA_SIZE_LIMIT)
                .build()
                .expect("injection rule pattern compiles")
        })
        .collect();
    let encoded_run = RegexBuilder::new(r"[A-Za-z0-9+/_-]{32,}={0,2}")
        .unicode(false)
        .build()
        .expect("encoded run pattern compiles");
    CompiledRules { each, encoded_run }
});

/// Scores `text` for prompt injection against the shipped thresholds. Never panics; cost is
/// bounded by [`MAX_SCAN_BYTES`].
pub fn scan(text: &str, source: IngestSource) -> InjectionVerdict {
    scan_with(text, source, Thresholds::shipped())
}

/// [`scan`] against `thresholds` (`--suspicious-threshold`, `--injection-threshold`).
pub fn scan_with(text: &str, source: IngestSource, thresholds: Thresholds) -> InjectionVerdict {
    let input_bytes = text.len();
    let (window, truncated) = scan_window(text);
    let scanned_bytes = window.iter().map(|(_, s)| s.len()).sum();
    let normalised = normalise(&window);
    let mut hits = Vec::new();
    pattern_hits(&normalised.text, &normalised.origin, source, &mut hits);
    obfuscation_hits(&normalised, source, &mut hits);
    encoded_hits(&window, source, &mut hits);
    hidden_comment_hits(&window, source, &mut hits);
    hits.sort_by_key(|h| h.offset);
    hits.truncate(MAX_HITS);
    let rules_score = combine(&hits);
    let model = model::MODEL
        .as_ref()
        .map(|m| m.score(&normalised.text, source));
    // The calibration weighs the rules and the model together into one probability; the
    // verdict keeps both explanations (the rules' hits, the model's top features).
    let score = model::MODEL.as_ref().map_or(rules_score, |m| {
        m.calibration.probability(rules_score, model.as_ref())
    });
    InjectionVerdict {
        score,
        verdict: Verdict::from_score(score, thresholds),
        thresholds,
        source,
        hits,
        rules_score,
        model,
        input_bytes,
        scanned_bytes,
        truncated,
    }
}

/// Noisy-OR over the strongest hit of each rule.
fn combine(hits: &[RuleHit]) -> f32 {
    let mut strongest: Vec<(&'static str, f32)> = Vec::new();
    for hit in hits {
        match strongest.iter_mut().find(|(rule, _)| *rule == hit.rule) {
            Some((_, w)) => *w = w.max(hit.weight),
            None => strongest.push((hit.rule, hit.weight)),
        }
    }
    let miss: f32 = strongest.iter().map(|(_, w)| 1.0 - w).product();
    (1.0 - miss).clamp(0.0, 1.0)
}

/// The parts of `text` that are scanned, with the byte offset each starts at.
fn scan_window(text: &str) -> (Vec<(usize, &str)>, bool) {
    if text.len() <= MAX_SCAN_BYTES {
        return (vec![(0, text)], false);
    }
    let head_end = floor_char_boundary(text, HEAD_BYTES);
    let tail_start = ceil_char_boundary(text, text.len() - (MAX_SCAN_BYTES - HEAD_BYTES));
    (
        vec![(0, &text[..head_end]), (tail_start, &text[tail_start..])],
        true,
    )
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The text rules run on, with the input offset of every byte of it.
struct Normalised {
    text: String,
    /// `origin[i]` is the input byte offset that produced byte `i` of `text`.
    origin: Vec<usize>,
    /// Text spelled with Unicode tag characters, where it started, and whether it follows a
    /// black flag (an emoji flag sequence).
    tag_text: Vec<(usize, String, bool)>,
    zero_width_in_words: Vec<usize>,
    bidi_controls: Vec<usize>,
    homoglyphs: Vec<usize>,
}

fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}'
            ..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}' | '\u{034F}'
    )
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Cyrillic and Greek letters that look like Latin ones (after lower-casing).
fn latin_look_alike(c: char) -> Option<char> {
    Some(match c {
        'а' | 'α' => 'a',
        'е' | 'ε' => 'e',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'с' | 'ϲ' => 'c',
        'у' => 'y',
        'х' | 'χ' => 'x',
        'і' | 'ι' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'һ' => 'h',
        'ӏ' => 'l',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'к' | 'κ' => 'k',
        'ν' => 'v',
        'υ' => 'u',
        _ => return None,
    })
}

/// Folds quotes and dashes to ASCII so rules can name them once.
fn ascii_punctuation(c: char) -> Option<char> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{00AB}' | '\u{00BB}' => '"',
        '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        _ => return None,
    })
}

struct Builder {
    text: String,
    origin: Vec<usize>,
    pending_space: Option<(usize, bool)>,
}

impl Builder {
    fn push(&mut self, c: char, at: usize) {
        self.flush_space();
        self.push_raw(c, at);
    }

    /// Appends printable ASCII (no spaces, no controls) lower-cased, byte `k` from input
    /// offset `at + k`: what `push` would do for each character, without decoding them.
    fn push_ascii_run(&mut self, run: &str, at: usize) {
        self.flush_space();
        let start = self.text.len();
        self.text.push_str(run);
        self.text[start..].make_ascii_lowercase();
        self.origin.extend(at..at + run.len());
    }

    /// Writes the pending run of whitespace, if any, as one space or newline (none at the start).
    fn flush_space(&mut self) {
        if let Some((ws_at, newline)) = self.pending_space.take() {
            if !self.text.is_empty() {
                self.push_raw(if newline { '\n' } else { ' ' }, ws_at);
            }
        }
    }

    fn push_raw(&mut self, c: char, at: usize) {
        self.text.push(c);
        for _ in 0..c.len_utf8() {
            self.origin.push(at);
        }
    }

    fn space(&mut self, newline: bool, at: usize) {
        self.pending_space = match self.pending_space {
            Some((first, nl)) => Some((first, nl || newline)),
            None => Some((at, newline)),
        };
    }

    fn last_is_ascii_letter(&self) -> bool {
        self.pending_space.is_none()
            && self
                .text
                .as_bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphabetic())
    }
}

fn normalise(window: &[(usize, &str)]) -> Normalised {
    let capacity: usize = window.iter().map(|(_, s)| s.len()).sum();
    let mut out = Builder {
        text: String::with_capacity(capacity),
        origin: Vec::with_capacity(capacity),
        pending_space: None,
    };
    let mut tag_text: Vec<(usize, String, bool)> = Vec::new();
    let mut in_tag_run = false;
    let mut zero_width_in_words = Vec::new();
    let mut bidi_controls = Vec::new();
    let mut homoglyphs = Vec::new();
    for (part_index, (base, part)) in window.iter().enumerate() {
        if part_index > 0 {
            out.space(true, *base);
        }
        let bytes = part.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii() {
                in_tag_run = false;
                // Fast path: a run of printable, non-space ASCII is lower-cased and copied
                // whole, each byte keeping its own input offset, as the per-character path
                // below would.
                let run = bytes[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_graphic())
                    .count();
                if run > 0 {
                    out.push_ascii_run(&part[i..i + run], base + i);
                    i += run;
                } else {
                    // ASCII whitespace becomes a space; other ASCII controls are dropped.
                    if bytes[i].is_ascii_whitespace() {
                        out.space(bytes[i] == b'\n', base + i);
                    }
                    i += 1;
                }
                continue;
            }
            let start = i;
            let Some(c) = part[start..].chars().next() else {
                break;
            };
            i += c.len_utf8();
            let at = base + start;
            let next = part[i..].chars().next();
            if ('\u{E0000}'..='\u{E007F}').contains(&c) {
                let ascii = (c as u32 - 0xE0000) as u8;
                if (0x20..0x7F).contains(&ascii) {
                    if !in_tag_run {
                        // Flag emoji spell a region code in tags after a black flag: not text.
                        let flag = part[..start].ends_with('\u{1F3F4}');
                        tag_text.push((at, String::new(), flag));
                        in_tag_run = true;
                    }
                    if let Some((_, s, _)) = tag_text.last_mut() {
                        s.push((ascii as char).to_ascii_lowercase());
                    }
                }
                continue;
            }
            in_tag_run = false;
            if is_zero_width(c) {
                let next_is_letter = next.is_some_and(|n| n.is_alphanumeric());
                if out.last_is_ascii_letter() && next_is_letter {
                    zero_width_in_words.push(at);
                }
                continue;
            }
            if is_bidi_control(c) {
                bidi_controls.push(at);
                continue;
            }
            if c.is_whitespace() {
                out.space(matches!(c, '\u{2028}' | '\u{2029}' | '\u{0085}'), at);
                continue;
            }
            if let Some(p) = ascii_punctuation(c) {
                out.push(p, at);
                continue;
            }
            let next_is_ascii_letter = next.is_some_and(|n| n.is_ascii_alphabetic());
            unicode_normalization::char::decompose_compatible(c, |d| {
                if unicode_normalization::char::is_combining_mark(d) {
                    return;
                }
                for l in d.to_lowercase() {
                    if l.is_ascii() {
                        if l.is_ascii_whitespace() {
                            out.space(false, at);
                        } else {
                            out.push(l, at);
                        }
                    } else if let Some(latin) = latin_look_alike(l) {
                        // Only inside a Latin word: plain Cyrillic or Greek text stays as it is.
                        if out.last_is_ascii_letter() || next_is_ascii_letter {
                            homoglyphs.push(at);
                            out.push(latin, at);
                        } else {
                            out.push(l, at);
                        }
                    } else if l.is_whitespace() {
                        out.space(false, at);
                    } else {
                        out.push(l, at);
                    }
                }
            });
        }
    }
    Normalised {
        text: out.text,
        origin: out.origin,
        tag_text,
        zero_width_in_words,
        bidi_controls,
        homoglyphs,
    }
}

fn bounded_phrase(text: &str) -> String {
    let end = floor_char_boundary(text, MAX_MATCHED_BYTES);
    text[..end].trim().to_string()
}

fn hit(info: &RuleInfo, source: IngestSource, matched: String, offset: usize) -> RuleHit {
    let weight = (info.weight * multiplier(source, info.category)).clamp(0.0, 0.95);
    let mut labels: Vec<Label> = info.labels.to_vec();
    labels.extend_from_slice(source_labels(source));
    labels.sort();
    labels.dedup();
    RuleHit {
        rule: info.id,
        description: info.description,
        category: info.category,
        weight,
        matched,
        offset,
        labels,
    }
}

/// Runs the pattern rules over normalised `text`; `origin` maps its bytes back to the input
/// (`None`: every hit is reported at `fixed_offset`, used for decoded hidden text).
fn pattern_hits_at(
    text: &str,
    origin: Option<&[usize]>,
    fixed_offset: usize,
    source: IngestSource,
    hits: &mut Vec<RuleHit>,
) {
    let compiled = &*COMPILED;
    let bytes = text.as_bytes();
    for (rule, regex) in PATTERN_RULES.iter().zip(&compiled.each) {
        for m in regex.find_iter(bytes).take(MAX_HITS_PER_RULE) {
            // Patterns are ASCII apart from whole non-ASCII literals, so match bounds fall on
            // character boundaries; the checked slice keeps that an assumption, not a panic.
            let matched = text
                .get(m.start()..m.end())
                .map(bounded_phrase)
                .unwrap_or_default();
            let offset = match origin {
                Some(origin) => origin.get(m.start()).copied().unwrap_or(fixed_offset),
                None => fixed_offset,
            };
            hits.push(hit(&rule.info, source, matched, offset));
        }
    }
}

fn pattern_hits(text: &str, origin: &[usize], source: IngestSource, hits: &mut Vec<RuleHit>) {
    pattern_hits_at(text, Some(origin), 0, source, hits);
}

fn obfuscation_hits(normalised: &Normalised, source: IngestSource, hits: &mut Vec<RuleHit>) {
    for (at, hidden, after_flag) in &normalised.tag_text {
        let emoji_flag =
            *after_flag && hidden.len() <= 7 && hidden.bytes().all(|b| b.is_ascii_alphanumeric());
        if emoji_flag || hidden.trim().len() < TAG_TEXT_MIN {
            continue;
        }
        hits.push(hit(&UNICODE_TAGS, source, bounded_phrase(hidden), *at));
        // What the tags spell is what the model reads: the other rules judge it too.
        let inner = normalise(&[(0, hidden.as_str())]);
        pattern_hits_at(&inner.text, None, *at, source, hits);
    }
    let word_at = |at: usize| -> String {
        // The normalised word around input offset `at`, to show what was obfuscated.
        let Some(pos) = normalised.origin.iter().position(|&o| o >= at) else {
            return String::new();
        };
        let bytes = normalised.text.as_bytes();
        let start = bytes[..pos]
            .iter()
            .rposition(|b| b.is_ascii_whitespace())
            .map_or(0, |p| p + 1);
        let end = bytes[pos..]
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .map_or(bytes.len(), |p| pos + p);
        let start = floor_char_boundary(&normalised.text, start);
        let end = ceil_char_boundary(&normalised.text, end);
        bounded_phrase(&normalised.text[start..end])
    };
    if normalised.zero_width_in_words.len() >= ZERO_WIDTH_MIN {
        let at = normalised.zero_width_in_words[0];
        hits.push(hit(&ZERO_WIDTH, source, word_at(at), at));
    }
    if let Some(&at) = normalised.bidi_controls.first() {
        hits.push(hit(&BIDI_CONTROL, source, word_at(at), at));
    }
    if normalised.homoglyphs.len() >= HOMOGLYPH_MIN {
        let at = normalised.homoglyphs[0];
        hits.push(hit(&HOMOGLYPHS, source, word_at(at), at));
    }
}

/// Decodes long base64 or hex runs of the raw input; when one decodes to text in which other
/// rules fire, reports those hits (at the run's offset) and an `encoding.hidden_instructions`
/// hit.
fn encoded_hits(window: &[(usize, &str)], source: IngestSource, hits: &mut Vec<RuleHit>) {
    let compiled = &*COMPILED;
    let mut tried = 0;
    for (base, part) in window {
        for m in compiled.encoded_run.find_iter(part.as_bytes()) {
            if tried >= MAX_ENCODED_CANDIDATES {
                return;
            }
            tried += 1;
            let run = &m.as_bytes()[..m.len().min(MAX_ENCODED_RUN)];
            let Some(decoded) = decode_run(run) else {
                continue;
            };
            let inner = normalise(&[(0, decoded.as_str())]);
            let mut inner_hits = Vec::new();
            pattern_hits_at(&inner.text, None, base + m.start(), source, &mut inner_hits);
            if inner_hits.is_empty() {
                continue;
            }
            hits.push(hit(
                &ENCODED_INSTRUCTIONS,
                source,
                bounded_phrase(&inner.text),
                base + m.start(),
            ));
            hits.extend(inner_hits);
        }
    }
    for decoded in decoded_text::candidates(window, MAX_ENCODED_CANDIDATES - tried) {
        let inner = normalise(&[(0, decoded.text.as_str())]);
        let mut inner_hits = Vec::new();
        pattern_hits_at(&inner.text, None, decoded.at, source, &mut inner_hits);
        if inner_hits.is_empty() {
            continue;
        }
        // What fired: the decoded phrase of the first hit (a rotated page would otherwise
        // show its first, unrelated, words).
        let shown = inner_hits[0].matched.clone();
        hits.push(hit(&ENCODED_INSTRUCTIONS, source, shown, decoded.at));
        hits.extend(inner_hits);
    }
}

/// An `obfuscation.hidden_comment` hit for each comment (HTML, Markdown) inside which other
/// rules fired: instructions a reader of the rendered page never sees.
fn hidden_comment_hits(window: &[(usize, &str)], source: IngestSource, hits: &mut Vec<RuleHit>) {
    let spans = hidden_comments::spans(window);
    if spans.is_empty() {
        return;
    }
    let mut found = Vec::new();
    for span in spans {
        let inside = hits
            .iter()
            .filter(|h| h.category != Category::Obfuscation)
            .find(|h| span.contains(&h.offset));
        if let Some(inside) = inside {
            found.push(hit(
                &HIDDEN_COMMENT,
                source,
                inside.matched.clone(),
                span.start,
            ));
        }
    }
    hits.extend(found);
}

/// The run decoded as hex or base64, when that gives readable text.
fn decode_run(run: &[u8]) -> Option<String> {
    let bytes = if run.len().is_multiple_of(2) && run.iter().all(u8::is_ascii_hexdigit) {
        decode_hex(run)?
    } else {
        let trimmed: &[u8] = {
            let end = run.iter().rposition(|&b| b != b'=').map_or(0, |p| p + 1);
            &run[..end]
        };
        let engines = [
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        engines.iter().find_map(|e| e.decode(trimmed).ok())?
    };
    let text = String::from_utf8(bytes).ok()?;
    readable(&text).then_some(text)
}

fn decode_hex(run: &[u8]) -> Option<Vec<u8>> {
    run.chunks_exact(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Mostly printable, with spaces: words rather than binary, keys or hashes.
fn readable(text: &str) -> bool {
    let total = text.chars().count();
    if total < 12 {
        return false;
    }
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    let spaces = text.chars().filter(|c| *c == ' ').count();
    printable * 10 >= total * 9 && spaces * 20 >= total
}

#[cfg(test)]
mod tests;
