//! Choosing the provider implementation for a MetricTemplate's `provider.type`.

use fledge_api::MetricProviderType;

use crate::{Error, MetricProvider, PrometheusProvider, ProviderSettings, Result};

/// Builds the provider a MetricTemplate asks for.
///
/// # Errors
/// [`Error::UnsupportedProvider`] for types not implemented yet (everything but
/// `prometheus` today), or the provider's own construction errors.
pub fn provider_for(
    kind: MetricProviderType,
    settings: ProviderSettings,
) -> Result<Box<dyn MetricProvider>> {
    match kind {
        MetricProviderType::Prometheus => Ok(Box::new(PrometheusProvider::new(settings)?)),
        other => Err(Error::UnsupportedProvider {
            provider: serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{other:?}")),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;

    #[test]
    fn prometheus_is_built_and_others_are_named_as_unsupported() {
        assert!(
            provider_for(
                MetricProviderType::Prometheus,
                ProviderSettings::new("http://prometheus:9090")
            )
            .is_ok()
        );
        let err = provider_for(
            MetricProviderType::Datadog,
            ProviderSettings::new("https://api.datadoghq.com"),
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            r#"metric provider type "datadog" is not supported"#
        );
    }
}
