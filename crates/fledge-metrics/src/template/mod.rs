//! Query templating: Flagger's MetricTemplate queries, rendered with handlebars.
//!
//! Flagger renders with Go's `text/template`, where `{{ namespace }}` calls a function; here
//! the same text reads a field of [`MetricTemplateModel`]. Rendering is strict (an unknown
//! variable is an error naming it, like Go's `missingkey=error`) and never HTML-escapes:
//! PromQL is full of quotes, `=~` and `!=`.

mod go_syntax;
mod model;
mod printf;

use std::sync::LazyLock;

use handlebars::{Handlebars, RenderErrorReason};

pub use model::{DEFAULT_METRIC_INTERVAL, MetricTemplateModel};

use crate::{Error, Result};

static RENDERER: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(handlebars::no_escape);
    registry.register_helper("printf", Box::new(printf::printf));
    registry
});

/// Renders a query template against a model.
///
/// ```
/// use fledge_metrics::{render_query, MetricTemplateModel};
/// let model = MetricTemplateModel {
///     namespace: "test".into(), target: "podinfo".into(), interval: "1m".into(),
///     ..MetricTemplateModel::default()
/// };
/// let query = render_query(r#"rate(http_requests_total{namespace="{{ namespace }}",app="{{ target }}"}[{{ interval }}])"#, &model)?;
/// assert_eq!(query, r#"rate(http_requests_total{namespace="test",app="podinfo"}[1m])"#);
/// # Ok::<(), fledge_metrics::Error>(())
/// ```
///
/// # Errors
/// [`Error::MissingTemplateVariable`] naming the first unknown variable (a misspelt field
/// or a `variables.NAME` missing from `templateVariables`); [`Error::InvalidTemplate`] for
/// broken syntax.
pub fn render_query(template: &str, model: &MetricTemplateModel) -> Result<String> {
    RENDERER
        .render_template(&go_syntax::to_handlebars(template), model)
        .map_err(|err| match err.reason() {
            RenderErrorReason::MissingVariable(name) => Error::MissingTemplateVariable {
                name: name.clone().unwrap_or_else(|| "?".into()),
            },
            reason => Error::InvalidTemplate {
                reason: render_error_text(&err, reason),
            },
        })
}

fn render_error_text(err: &handlebars::RenderError, reason: &RenderErrorReason) -> String {
    match (err.line_no, err.column_no) {
        (Some(line), Some(column)) => format!("{reason} (line {line}, column {column})"),
        _ => reason.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn podinfo() -> MetricTemplateModel {
        MetricTemplateModel {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            ingress: "podinfo-ingress".into(),
            route: "podinfo-route".into(),
            interval: "1m".into(),
            variables: [("direction".to_owned(), "inbound".to_owned())].into(),
        }
    }

    #[test]
    fn every_model_field_renders_unescaped() {
        let query = render_query(
            r#"{{ name }}|{{ namespace }}|{{target}}|{{ service }}|{{ ingress }}|{{ route }}|{{ interval }}|{{ variables.direction }}|x!~"5.*",y=~"a|b"&<>"#,
            &podinfo(),
        )
        .unwrap();
        assert_eq!(
            query,
            r#"podinfo|test|podinfo|podinfo-svc|podinfo-ingress|podinfo-route|1m|inbound|x!~"5.*",y=~"a|b"&<>"#
        );
    }

    #[test]
    fn a_missing_template_variable_is_an_error_naming_it() {
        let err = render_query(
            r#"x{direction="{{ variables.direction }}",dc="{{ variables.datacenter }}"}"#,
            &podinfo(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::MissingTemplateVariable { name } if name == "variables.datacenter"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("\"variables.datacenter\""),
            "{err}"
        );
    }

    #[test]
    fn a_misspelt_field_is_an_error_naming_it() {
        let err = render_query("x{ns=\"{{ namespcae }}\"}", &podinfo()).unwrap_err();
        assert!(
            matches!(&err, Error::MissingTemplateVariable { name } if name == "namespcae"),
            "{err:?}"
        );
    }

    #[test]
    fn broken_syntax_is_an_invalid_template() {
        let err = render_query("x{ns=\"{{ namespace \"}", &podinfo()).unwrap_err();
        assert!(matches!(err, Error::InvalidTemplate { .. }), "{err:?}");
    }

    #[test]
    fn go_printf_renders_the_skipper_route_pattern() {
        let query = render_query(
            r#"route=~"{{ printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}""#,
            &podinfo(),
        )
        .unwrap();
        assert_eq!(
            query,
            r#"route=~"kube(ew)?_test__podinfo-ingress_canary__.*__podinfo-svc_canary(_[0-9]+)?""#
        );
    }

    #[test]
    fn go_printf_with_an_unknown_variable_names_it() {
        let err = render_query(r#"{{ printf "%s" ingres }}"#, &podinfo()).unwrap_err();
        assert!(
            matches!(&err, Error::MissingTemplateVariable { name } if name == "ingres"),
            "{err:?}"
        );
    }

    #[test]
    fn go_whitespace_trimming_is_understood() {
        assert_eq!(
            render_query("a   {{- namespace -}}   b", &podinfo()).unwrap(),
            "atestb"
        );
    }
}
