//! The official CycloneDX 1.6 JSON schema, checked against real output: the schema files as
//! the CycloneDX Python library (`cyclonedx-python-lib`, pinned in scripts/setup.sh, in the
//! test venv) ships them, `bom-1.6` with the SPDX and JSF schemas it refers to, validated with
//! the `jsonschema` crate (draft 7, formats checked).

use std::path::PathBuf;

use serde_json::Value;

/// Where the test venv's CycloneDX library keeps its schemas.
fn schema_dir() -> PathBuf {
    let output = std::process::Command::new(super::mcp_python())
        .args([
            "-c",
            "import os, cyclonedx.schema._res as r; print(os.path.dirname(r.__file__))",
        ])
        .output()
        .expect("the test venv's python");
    assert!(
        output.status.success(),
        "cyclonedx-python-lib is missing from the test venv (make setup): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// Serves the schemas `bom-1.6` refers to (`spdx.SNAPSHOT.schema.json`,
/// `jsf-0.82.SNAPSHOT.schema.json`, relative to its `$id`) from the library's directory: the
/// validator never goes to the network.
struct LocalSchemas(PathBuf);

impl jsonschema::Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .rsplit('/')
            .next()
            .filter(|n| n.ends_with(".schema.json") && !n.contains(".."))
            .ok_or_else(|| format!("not a CycloneDX schema: {uri}"))?;
        let text = std::fs::read_to_string(self.0.join(name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// Asserts that `document` is a valid CycloneDX 1.6 JSON document.
pub fn assert_valid_cyclonedx_1_6(document: &Value) {
    let dir = schema_dir();
    let path = dir.join("bom-1.6.SNAPSHOT.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .with_retriever(LocalSchemas(dir))
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not valid against {}: {errors:#?}\n{document:#}",
        path.display()
    );
}
