//! A package a process loaded, with the name and version its own metadata gives: the body of
//! a `package` event. The collector makes these (they are not kernel records): when a process
//! opens a file inside a Python `site-packages`/`dist-packages` or a `node_modules` directory,
//! it reads that package's `*.dist-info/METADATA` or `package.json` through the process's own
//! root (`/proc/PID/root`), once per process and package. A recording carries them, so the
//! AI-BOM of a replay names the versions the live run read.

use serde::{Deserialize, Serialize};

/// Where a package comes from (the purl type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageEcosystem {
    /// A Python distribution (`*.dist-info`).
    Pypi,
    /// A Node.js package (`node_modules/*/package.json`).
    Npm,
}

impl PackageEcosystem {
    /// The purl type (`pkg:pypi/...`, `pkg:npm/...`).
    pub fn purl_type(self) -> &'static str {
        match self {
            PackageEcosystem::Pypi => "pypi",
            PackageEcosystem::Npm => "npm",
        }
    }
}

/// One package (the body of a `package` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFound {
    pub ecosystem: PackageEcosystem,
    /// The name the metadata gives; when the metadata could not be read, the name the path
    /// gives (the directory under `node_modules`, the Python module).
    pub name: String,
    /// The version the metadata gives; `None` when it could not be read (`error` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The package's directory as the process names it (`/app/node_modules/openai`,
    /// `/usr/lib/python3/dist-packages/openai`).
    pub package_dir: String,
    /// The metadata file read, as the process names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_path: Option<String>,
    /// Why the version is not known: no metadata found, too large, not JSON, no version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PackageFound {
    /// `name version` (or `name (version unknown: why)`), for people.
    pub fn describe(&self) -> String {
        match (&self.version, &self.error) {
            (Some(version), _) => format!("{} {} {version}", self.ecosystem.purl_type(), self.name),
            (None, Some(why)) => format!(
                "{} {} (version unknown: {why})",
                self.ecosystem.purl_type(),
                self.name
            ),
            (None, None) => format!(
                "{} {} (version unknown)",
                self.ecosystem.purl_type(),
                self.name
            ),
        }
    }
}
