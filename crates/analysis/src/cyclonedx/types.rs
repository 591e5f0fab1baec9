//! The subset of CycloneDX 1.6 (JSON) the AI-BOM export writes, as serde types: the document,
//! its metadata, components (applications, machine-learning models, frameworks, libraries,
//! data), services (with nested services: an MCP server's tools), properties and the
//! dependency graph. Field names and values follow the 1.6 JSON schema
//! (`bom-1.6.schema.json`); the export's tests validate documents against it.
//!
//! Written here rather than taken from the `cyclonedx-bom` crate: its latest release (0.8.1)
//! models specifications 1.3 to 1.5 only, so it can neither write `specVersion` 1.6 nor
//! validate against it, and the export needs a small part of the format.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    /// Always `CycloneDX`.
    pub bom_format: &'static str,
    /// Always `1.6`.
    pub spec_version: &'static str,
    /// The document's version (1: each export is a new document).
    pub version: u32,
    pub metadata: Metadata,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    pub tools: Tools,
    /// The agent, when the document describes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<Component>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

/// The tools that made the document (1.5+ form: components, not the legacy array).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tools {
    pub components: Vec<Component>,
}

/// A component's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentType {
    Application,
    Framework,
    Library,
    MachineLearningModel,
    Data,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    #[serde(rename = "type")]
    pub kind: ComponentType,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supplier: Option<OrganizationalEntity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// For `data` components: what the data is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ComponentData>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

impl Component {
    pub fn new(kind: ComponentType, bom_ref: Option<String>, name: impl Into<String>) -> Self {
        Component {
            kind,
            bom_ref,
            supplier: None,
            group: None,
            name: name.into(),
            version: None,
            description: None,
            purl: None,
            data: Vec::new(),
            properties: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrganizationalEntity {
    pub name: String,
}

/// `componentData`: a data component's kind and name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentData {
    /// `source-code`, `configuration`, `dataset`, `definition` or `other`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    #[serde(rename = "bom-ref")]
    pub bom_ref: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// IRIs (only `http(s)://` URLs are given: a stdio command is no IRI).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
    /// Nested services: an MCP server's tools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
}

impl Service {
    pub fn new(bom_ref: String, name: impl Into<String>) -> Self {
        Service {
            bom_ref,
            name: name.into(),
            version: None,
            description: None,
            endpoints: Vec::new(),
            properties: Vec::new(),
            services: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Property {
    pub name: String,
    pub value: String,
}

impl Property {
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Property {
            name: name.to_string(),
            value: value.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}
