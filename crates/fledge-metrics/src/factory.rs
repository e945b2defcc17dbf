//! Choosing the provider implementation for a MetricTemplate's `provider.type`.

use fledge_api::MetricProviderType;

use crate::{Error, MetricProvider, PrometheusProvider, ProviderSettings, Result};

/// Whether this build queries a provider type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderSupport {
    /// Queried.
    Supported,
    /// Implemented, but its cargo feature is off in this build.
    NotCompiled {
        /// The fledge-metrics cargo feature that brings it.
        feature: &'static str,
    },
    /// Not implemented yet: every check of such a template fails.
    NotImplemented,
}

/// Whether this build of fledge-metrics queries `kind` (`fledge validate` warns otherwise).
pub fn provider_support(kind: MetricProviderType) -> ProviderSupport {
    let feature = |feature: &'static str, compiled: bool| {
        if compiled {
            ProviderSupport::Supported
        } else {
            ProviderSupport::NotCompiled { feature }
        }
    };
    match kind {
        MetricProviderType::Prometheus => ProviderSupport::Supported,
        MetricProviderType::Graphite => feature("graphite", cfg!(feature = "graphite")),
        MetricProviderType::Datadog => feature("datadog", cfg!(feature = "datadog")),
        MetricProviderType::Newrelic => feature("newrelic", cfg!(feature = "newrelic")),
        MetricProviderType::Dynatrace => feature("dynatrace", cfg!(feature = "dynatrace")),
        MetricProviderType::Influxdb => feature("influxdb", cfg!(feature = "influxdb")),
        _ => ProviderSupport::NotImplemented,
    }
}

/// The type's name as a MetricTemplate writes it (`newrelic`).
pub fn provider_type_name(kind: MetricProviderType) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}").to_lowercase())
}

/// Builds the provider a MetricTemplate asks for.
///
/// # Errors
/// [`Error::UnsupportedProvider`] for types not implemented yet,
/// [`Error::ProviderNotCompiled`] for types whose cargo feature is off, or the provider's
/// own construction errors (a missing address or Secret key).
pub fn provider_for(
    kind: MetricProviderType,
    settings: ProviderSettings,
) -> Result<Box<dyn MetricProvider>> {
    match kind {
        MetricProviderType::Prometheus => return Ok(Box::new(PrometheusProvider::new(settings)?)),
        #[cfg(feature = "graphite")]
        MetricProviderType::Graphite => {
            return Ok(Box::new(crate::GraphiteProvider::new(settings)?));
        }
        #[cfg(feature = "datadog")]
        MetricProviderType::Datadog => {
            return Ok(Box::new(crate::DatadogProvider::new(settings)?));
        }
        #[cfg(feature = "newrelic")]
        MetricProviderType::Newrelic => {
            return Ok(Box::new(crate::NewRelicProvider::new(settings)?));
        }
        #[cfg(feature = "dynatrace")]
        MetricProviderType::Dynatrace => {
            return Ok(Box::new(crate::DynatraceProvider::new(settings)?));
        }
        #[cfg(feature = "influxdb")]
        MetricProviderType::Influxdb => {
            return Ok(Box::new(crate::InfluxDbProvider::new(settings)?));
        }
        _ => {}
    }
    let provider = provider_type_name(kind);
    Err(match provider_support(kind) {
        ProviderSupport::NotCompiled { feature } => {
            Error::ProviderNotCompiled { provider, feature }
        }
        _ => Error::UnsupportedProvider { provider },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;

    #[test]
    fn prometheus_is_built_and_types_not_implemented_are_named_as_unsupported() {
        assert!(
            provider_for(
                MetricProviderType::Prometheus,
                ProviderSettings::new("http://prometheus:9090")
            )
            .is_ok()
        );
        let err = provider_for(
            MetricProviderType::Cloudwatch,
            ProviderSettings::new("https://monitoring.us-east-1.amazonaws.com"),
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            r#"metric provider type "cloudwatch" is not supported"#
        );
        assert_eq!(
            provider_support(MetricProviderType::Splunk),
            ProviderSupport::NotImplemented
        );
    }

    #[test]
    fn the_providers_of_this_build_are_built_from_their_settings() {
        for kind in [
            MetricProviderType::Graphite,
            MetricProviderType::Datadog,
            MetricProviderType::Newrelic,
            MetricProviderType::Dynatrace,
            MetricProviderType::Influxdb,
        ] {
            let name = provider_type_name(kind);
            let secret = crate::settings::SECRET_KEYS
                .iter()
                .find(|(provider, _)| *provider == name)
                .map_or(&[][..], |(_, keys)| *keys);
            let credentials = if secret.is_empty() {
                crate::Credentials::None
            } else {
                crate::Credentials::Keys(crate::settings::SecretKeys::new(
                    secret.iter().map(|key| (*key, "x1234")),
                ))
            };
            let settings =
                ProviderSettings::new("https://metrics.example").with_credentials(credentials);
            match provider_support(kind) {
                ProviderSupport::Supported => {
                    assert!(provider_for(kind, settings).is_ok(), "{name}");
                }
                ProviderSupport::NotCompiled { feature } => {
                    let err = provider_for(kind, settings).err().unwrap();
                    assert_eq!(
                        err.to_string(),
                        format!(
                            "metric provider type {name:?} is not compiled into this build: enable fledge-metrics' cargo feature {feature:?}"
                        )
                    );
                }
                ProviderSupport::NotImplemented => panic!("{name} is implemented"),
            }
        }
    }
}
