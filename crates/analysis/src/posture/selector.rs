//! Kubernetes label selectors (`matchLabels` and `matchExpressions` with `In`, `NotIn`,
//! `Exists`, `DoesNotExist`), as NetworkPolicies and aggregated ClusterRoles use them. An
//! empty selector selects everything; an unknown operator selects nothing (the API server
//! rejects such objects, so one read from elsewhere must not widen a policy).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfy the selector.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .as_ref()
        .is_none_or(|wanted| wanted.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let expressions_match = selector
        .match_expressions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .all(|expression| {
            let values = expression.values.as_deref().unwrap_or_default();
            let value = labels.get(&expression.key);
            match expression.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        });
    labels_match && expressions_match
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions() {
        let pod = labels(&[("app", "support-agent"), ("tier", "agents")]);
        assert!(selector_matches(&LabelSelector::default(), &pod));
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "support-agent")])),
            match_expressions: Some(vec![
                expression("tier", "In", &["agents", "tools"]),
                expression("debug", "DoesNotExist", &[]),
                expression("env", "NotIn", &["prod"]),
            ]),
        };
        assert!(selector_matches(&selector, &pod));
        let mut other = pod.clone();
        other.insert("debug".into(), "1".into());
        assert!(!selector_matches(&selector, &other));
        let exists = LabelSelector {
            match_expressions: Some(vec![expression("tier", "Exists", &[])]),
            ..Default::default()
        };
        assert!(selector_matches(&exists, &pod));
        assert!(!selector_matches(&exists, &labels(&[])));
        let bogus = LabelSelector {
            match_expressions: Some(vec![expression("tier", "Like", &["agents"])]),
            ..Default::default()
        };
        assert!(!selector_matches(&bogus, &pod));
    }
}
