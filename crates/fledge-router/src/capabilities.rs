//! What the ingress-controller providers (Contour, Traefik, Gloo, NGINX, Skipper, APISIX) cannot
//! do, refused with an error naming the provider instead of being ignored, and the A/B
//! conditions they can read.

use fledge_api::Canary;
use fledge_api::canary::{HttpMatchRequest, StringMatch};

use crate::error::{Error, Result};

/// The routing features of a provider beyond weights.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Capabilities {
    /// The provider's name in `spec.provider`.
    pub provider: &'static str,
    /// Whether it routes A/B tests by request conditions (`analysis.match`).
    pub matching: bool,
}

impl Capabilities {
    /// Refuses the analysis settings the provider cannot carry out: mirroring, session
    /// affinity and, unless it matches requests, A/B conditions.
    pub fn check(self, canary: &Canary) -> Result<()> {
        let Some(analysis) = canary.analysis() else {
            return Ok(());
        };
        let provider = self.provider;
        if analysis.mirror {
            return Err(Error::spec(
                "spec.analysis.mirror",
                format!(
                    "the {provider} provider cannot mirror traffic; remove `mirror` or use istio or gatewayapi"
                ),
            ));
        }
        if analysis.session_affinity.is_some() {
            return Err(Error::spec(
                "spec.analysis.sessionAffinity",
                format!(
                    "the {provider} provider has no cookie-based session affinity; remove sessionAffinity or use istio or gatewayapi"
                ),
            ));
        }
        if !self.matching && !analysis.match_.is_empty() {
            return Err(Error::spec(
                "spec.analysis.match",
                format!(
                    "the {provider} provider cannot route by header, cookie or query (A/B testing); remove `match` \
                     (and run blue/green with iterations) or use a provider that matches requests"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses the fields of an A/B condition outside `supported` (their JSON names), at `at`
    /// (`spec.analysis.match[0]`).
    pub fn check_condition(
        self,
        condition: &HttpMatchRequest,
        at: &str,
        supported: &[&str],
    ) -> Result<()> {
        let present = [
            ("uri", condition.uri.is_some()),
            ("scheme", condition.scheme.is_some()),
            ("method", condition.method.is_some()),
            ("authority", condition.authority.is_some()),
            ("headers", !condition.headers.is_empty()),
            ("withoutHeaders", !condition.without_headers.is_empty()),
            ("queryParams", !condition.query_params.is_empty()),
            ("port", condition.port.is_some()),
            ("sourceLabels", !condition.source_labels.is_empty()),
            ("sourceNamespace", condition.source_namespace.is_some()),
            ("gateways", !condition.gateways.is_empty()),
            ("ignoreUriCase", condition.ignore_uri_case),
        ];
        match present
            .iter()
            .find(|(field, set)| *set && !supported.contains(field))
        {
            Some((field, _)) => Err(Error::spec(
                format!("{at}.{field}"),
                format!(
                    "the {} provider routes A/B tests by {} only; remove `{field}`",
                    self.provider,
                    enumerate(supported)
                ),
            )),
            None => Ok(()),
        }
    }
}

/// `a, b and c`.
fn enumerate(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// A string condition as a provider that knows exact values and regexes reads it: a prefix
/// becomes the anchored regex `<escaped prefix>.*` (Envoy matches a regex against the whole
/// value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ValueMatch {
    /// The value equals this.
    Exact(String),
    /// The whole value matches this RE2 expression.
    Regex(String),
}

impl ValueMatch {
    /// The condition at `field`.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] when none of exact, prefix or regex is set.
    pub fn of(condition: &StringMatch, field: &str) -> Result<Self> {
        let set = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        if let Some(exact) = set(&condition.exact) {
            Ok(Self::Exact(exact))
        } else if let Some(regex) = set(&condition.regex) {
            Ok(Self::Regex(regex))
        } else if let Some(prefix) = set(&condition.prefix) {
            Ok(Self::Regex(format!("{}.*", escape_regex(&prefix))))
        } else {
            Err(Error::spec(field, "set one of exact, prefix or regex"))
        }
    }
}

/// `text` with every RE2 metacharacter escaped.
pub(crate) fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_match(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
        StringMatch {
            exact: exact.map(str::to_owned),
            prefix: prefix.map(str::to_owned),
            regex: regex.map(str::to_owned),
        }
    }

    #[test]
    fn a_prefix_is_an_anchored_regex_of_its_escaped_text() {
        assert_eq!(
            ValueMatch::of(&string_match(None, Some("v1.2+"), None), "x").unwrap(),
            ValueMatch::Regex("v1\\.2\\+.*".into())
        );
        assert_eq!(
            ValueMatch::of(&string_match(Some("a"), None, None), "x").unwrap(),
            ValueMatch::Exact("a".into())
        );
        assert_eq!(
            ValueMatch::of(&string_match(None, None, Some("^a|b$")), "x").unwrap(),
            ValueMatch::Regex("^a|b$".into())
        );
        let err = ValueMatch::of(
            &string_match(None, None, None),
            "spec.analysis.match[0].headers.x",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.analysis.match[0].headers.x: set one of exact, prefix or regex"
        );
    }

    #[test]
    fn an_unsupported_condition_field_is_named_with_what_the_provider_reads() {
        let condition = HttpMatchRequest {
            uri: Some(string_match(None, Some("/api"), None)),
            ..HttpMatchRequest::default()
        };
        let contour = Capabilities {
            provider: "contour",
            matching: true,
        };
        let err = contour
            .check_condition(
                &condition,
                "spec.analysis.match[1]",
                &["headers", "queryParams"],
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.analysis.match[1].uri: the contour provider routes A/B tests by headers and queryParams only; remove `uri`"
        );
    }
}
