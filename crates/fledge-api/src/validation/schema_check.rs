//! The schema check: a document against the structural schema its CRD installs.
//!
//! The API server silently prunes unknown fields, so a misspelled `progressDeadlineSes`
//! would be dropped and the default used. Here it is an error with a suggestion.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use super::{JsonPath, Problem};

/// Every schema problem of `document`.
pub(super) fn check(document: &Value, schema: &JSONSchemaProps) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk(document, schema, &JsonPath::root(), &mut problems);
    problems
}

fn walk(value: &Value, schema: &JSONSchemaProps, path: &JsonPath, problems: &mut Vec<Problem>) {
    // An empty YAML value (`field:`) is absent; required fields are checked by the parent.
    if value.is_null() {
        return;
    }
    if schema.x_kubernetes_int_or_string == Some(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            problems.push(Problem::new(
                path.clone(),
                format!("expected a number or a name, found {}", describe(value)),
            ));
        }
        return;
    }
    let Some(expected) = schema.type_.as_deref() else {
        return;
    };
    match (expected, value) {
        ("object", Value::Object(fields)) => walk_object(fields, schema, path, problems),
        ("array", Value::Array(items)) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item_schema)) = &schema.items {
                for (index, item) in items.iter().enumerate() {
                    walk(item, item_schema, &path.index(index), problems);
                }
            }
        }
        ("string", Value::String(text)) => check_enum(text, schema, path, problems),
        ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => {}
        _ => problems.push(Problem::new(path.clone(), type_mismatch(expected, value))),
    }
}

fn walk_object(
    fields: &serde_json::Map<String, Value>,
    schema: &JSONSchemaProps,
    path: &JsonPath,
    problems: &mut Vec<Problem>,
) {
    let properties = schema.properties.as_ref();
    let preserve = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    for (name, child) in fields {
        let child_path = path.field(name);
        // The type and object metadata are the API server's to check, not the CRD schema's.
        if path.as_str() == "$" && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(child_schema) = properties.and_then(|p| p.get(name)) {
            walk(child, child_schema, &child_path, problems);
        } else if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &schema.additional_properties {
            walk(child, extra, &child_path, problems);
        } else if !preserve && properties.is_some() {
            problems.push(Problem::new(child_path, unknown_field(name, properties)));
        }
    }
    for required in schema.required.iter().flatten() {
        if fields.get(required).is_none_or(Value::is_null) {
            let hint = properties
                .and_then(|p| p.get(required))
                .map(|s| {
                    let kind = s
                        .type_
                        .as_deref()
                        .map_or(String::new(), |t| format!(" ({})", article(t)));
                    let description = s
                        .description
                        .as_deref()
                        .map_or(String::new(), |d| format!(": {d}"));
                    format!("{kind}{description}")
                })
                .unwrap_or_default();
            problems.push(Problem::new(
                path.field(required),
                format!("required field is missing; add `{required}`{hint}"),
            ));
        }
    }
}

fn check_enum(text: &str, schema: &JSONSchemaProps, path: &JsonPath, problems: &mut Vec<Problem>) {
    let Some(allowed) = schema.enum_.as_ref() else {
        return;
    };
    let allowed: Vec<&str> = allowed.iter().filter_map(|v| v.0.as_str()).collect();
    if allowed.contains(&text) {
        return;
    }
    let suggestion = closest(text, allowed.iter().copied())
        .map_or(String::new(), |best| format!("; did you mean `{best}`?"));
    let message = format!("`{text}` is not one of: {}{suggestion}", allowed.join(", "));
    problems.push(Problem::new(path.clone(), message));
}

fn unknown_field(
    name: &str,
    properties: Option<&std::collections::BTreeMap<String, JSONSchemaProps>>,
) -> String {
    let known: Vec<&str> = properties
        .into_iter()
        .flat_map(|p| p.keys().map(String::as_str))
        .collect();
    match closest(name, known.iter().copied()) {
        Some(best) => format!("unknown field `{name}`; did you mean `{best}`?"),
        None => format!(
            "unknown field `{name}`; the fields here are: {}",
            known.join(", ")
        ),
    }
}

/// The most similar candidate, when one is close enough to be a likely typo.
pub(super) fn closest<'a>(
    typed: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let typed_lower = typed.to_ascii_lowercase();
    candidates
        // The distance is at least the difference in length, so a text much longer than a
        // candidate cannot be a typo of it; skipping it keeps a megabyte of hostile text from
        // costing a quadratic comparison.
        .filter(|candidate| typed_lower.len() <= candidate.len() * 2 + 2)
        .map(|candidate| {
            let lower = candidate.to_ascii_lowercase();
            let distance = if lower.starts_with(&typed_lower) && typed_lower.len() >= 4 {
                1
            } else {
                strsim::damerau_levenshtein(&typed_lower, &lower)
            };
            (distance, candidate)
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 2).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn article(schema_type: &str) -> &'static str {
    match schema_type {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "true or false",
        _ => "a value",
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        Value::Bool(b) => format!("true or false ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn type_mismatch(expected: &str, value: &Value) -> String {
    let base = format!("expected {}, found {}", article(expected), describe(value));
    let hint = match (expected, value) {
        ("integer" | "number", Value::String(s)) if s.trim().parse::<f64>().is_ok() => {
            "; remove the quotes"
        }
        ("integer", Value::Number(_)) => "; use a whole number",
        ("boolean", Value::String(s)) if matches!(s.as_str(), "true" | "false") => {
            "; remove the quotes"
        }
        ("string", Value::Number(_) | Value::Bool(_)) => "; put it in quotes",
        ("array", Value::Object(_) | Value::String(_)) => "; write it as a list (`- item`)",
        _ => "",
    };
    format!("{base}{hint}")
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_the_field_the_user_meant() {
        let fields = [
            "progressDeadlineSeconds",
            "provider",
            "service",
            "skipAnalysis",
        ];
        assert_eq!(
            closest("progressDeadlineSes", fields.into_iter()),
            Some("progressDeadlineSeconds")
        );
        assert_eq!(closest("servce", fields.into_iter()), Some("service"));
        assert_eq!(
            closest("apiVerseersion", ["apiVersion", "kind", "name"].into_iter()),
            Some("apiVersion")
        );
        assert_eq!(closest("colour", fields.into_iter()), None);
    }
}
