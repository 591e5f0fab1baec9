//! The JSON-lines schema (docs/events.schema.json), checked against real output: every line
//! `collect --json` or `replay --json` wrote must match it.

use serde_json::Value;

/// Asserts that every line of `text` is a JSON object matching docs/events.schema.json;
/// returns the lines, parsed.
pub fn assert_lines_match_schema(text: &str) -> Vec<Value> {
    let path = format!("{}/docs/events.schema.json", env!("AGENTSCOPE_REPO"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("line {} is not JSON ({err}): {line}", index + 1));
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "line {} does not match {path}: {errors:#?}\n{line}",
                index + 1
            );
            value
        })
        .collect()
}
