//! The few Go-template spellings Flagger users write that handlebars spells differently.

/// Rewrites Go's whitespace trimming (`{{- x -}}`) and comments (`{{/* … */}}`) into their
/// handlebars forms (`{{~ x ~}}`, `{{!-- … --}}`); everything else is left as written.
pub(super) fn to_handlebars(template: &str) -> std::borrow::Cow<'_, str> {
    if !template.contains("{{-") && !template.contains("-}}") && !template.contains("{{/*") {
        return template.into();
    }
    template
        .replace("{{/*", "{{!--")
        .replace("*/}}", "--}}")
        .replace("{{- ", "{{~ ")
        .replace(" -}}", " ~}}")
        .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::to_handlebars;

    #[test]
    fn trims_and_comments_are_translated_and_nothing_else() {
        assert_eq!(
            to_handlebars("a {{- namespace -}} b"),
            "a {{~ namespace ~}} b"
        );
        assert_eq!(to_handlebars("{{/* note */}}x"), "{{!-- note --}}x");
        let promql = r#"sum(rate(x{a=~"b-c"}[{{ interval }}])) - 1"#;
        assert_eq!(to_handlebars(promql), promql);
    }
}
