//! How a version answers, read from its Deployment's pod template — so "deploy a bad
//! version" is `kubectl set env deploy/podinfo FLEDGE_SIM_ERROR_RATE=0.5`.

use k8s_openapi::api::apps::v1::Deployment;

use crate::error::{Error, Result};

/// Share of requests that fail, between 0 and 1 (`0.05` is 5 %).
pub const ERROR_RATE_ENV: &str = "FLEDGE_SIM_ERROR_RATE";
/// Mean latency in milliseconds (each request takes between 0.5× and 1.5× of it).
pub const LATENCY_ENV: &str = "FLEDGE_SIM_LATENCY_MS";
/// HTTP status of a failing request (default 500).
pub const ERROR_STATUS_ENV: &str = "FLEDGE_SIM_ERROR_STATUS";

/// The answer of a version that has no ready replica: Envoy's "no healthy upstream".
pub const UNAVAILABLE_STATUS: u16 = 503;

/// How one version answers requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Share of failing requests, 0–1.
    pub error_rate: f64,
    /// Mean latency in milliseconds.
    pub latency_ms: f64,
    /// Status of failing requests.
    pub error_status: u16,
    /// Whether any replica is available; if not, every request gets [`UNAVAILABLE_STATUS`]
    /// and no destination metrics record it.
    pub available: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            latency_ms: 20.0,
            error_status: 500,
            available: true,
        }
    }
}

impl Behaviour {
    /// Reads the settings from the first container that sets any, and availability from the status.
    ///
    /// # Errors
    /// [`Error::Setting`] naming the deployment and variable when a value is not a number in range.
    pub fn of_deployment(deployment: &Deployment) -> Result<Self> {
        let id = format!(
            "deployment {}/{}",
            deployment.metadata.namespace.as_deref().unwrap_or_default(),
            deployment.metadata.name.as_deref().unwrap_or_default()
        );
        let env: Vec<(String, String)> = deployment
            .spec
            .iter()
            .filter_map(|s| s.template.spec.as_ref())
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.env.iter().flatten())
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim());
        let mut behaviour = Self::default();
        if let Some(value) = get(ERROR_RATE_ENV) {
            behaviour.error_rate = number(
                &id,
                ERROR_RATE_ENV,
                value,
                0.0,
                1.0,
                "a share between 0 and 1, e.g. 0.05 for 5 %",
            )?;
        }
        if let Some(value) = get(LATENCY_ENV) {
            behaviour.latency_ms = number(
                &id,
                LATENCY_ENV,
                value,
                0.0,
                3_600_000.0,
                "milliseconds, e.g. 250",
            )?;
        }
        if let Some(value) = get(ERROR_STATUS_ENV) {
            behaviour.error_status = number(
                &id,
                ERROR_STATUS_ENV,
                value,
                100.0,
                599.0,
                "an HTTP status, e.g. 503",
            )? as u16;
        }
        let replicas = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let available = deployment
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        behaviour.available = replicas > 0 && available > 0;
        Ok(behaviour)
    }
}

fn number(id: &str, name: &str, value: &str, min: f64, max: f64, expected: &str) -> Result<f64> {
    let field = format!("env {name} of {id}");
    let parsed: f64 = value.parse().map_err(|_| Error::Setting {
        field: field.clone(),
        reason: format!("{value:?} is not a number; expected {expected}"),
    })?;
    if !(min..=max).contains(&parsed) {
        return Err(Error::Setting {
            field,
            reason: format!("{value} is out of range; expected {expected}"),
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(env: &str, available: i32) -> Deployment {
        serde_json::from_str(&format!(
            r#"{{"metadata":{{"name":"podinfo","namespace":"test"}},"spec":{{"replicas":1,"selector":{{}},
            "template":{{"spec":{{"containers":[{{"name":"app","env":[{env}]}}]}}}}}},
            "status":{{"availableReplicas":{available}}}}}"#
        ))
        .expect("valid deployment")
    }

    #[test]
    fn settings_come_from_the_pod_template() {
        let d = deployment(
            r#"{"name":"FLEDGE_SIM_ERROR_RATE","value":"0.3"},{"name":"FLEDGE_SIM_LATENCY_MS","value":"450"}"#,
            1,
        );
        let b = Behaviour::of_deployment(&d).expect("valid");
        assert_eq!(
            b,
            Behaviour {
                error_rate: 0.3,
                latency_ms: 450.0,
                error_status: 500,
                available: true
            }
        );
        assert!(
            !Behaviour::of_deployment(&deployment("", 0))
                .expect("valid")
                .available
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_the_fix() {
        let error = Behaviour::of_deployment(&deployment(
            r#"{"name":"FLEDGE_SIM_ERROR_RATE","value":"30%"}"#,
            1,
        ))
        .expect_err("bad");
        assert_eq!(
            error.to_string(),
            "env FLEDGE_SIM_ERROR_RATE of deployment test/podinfo: \"30%\" is not a number; expected a share between 0 and 1, e.g. 0.05 for 5 %"
        );
        let error = Behaviour::of_deployment(&deployment(
            r#"{"name":"FLEDGE_SIM_ERROR_RATE","value":"5"}"#,
            1,
        ))
        .expect_err("bad");
        assert!(error.to_string().contains("out of range"), "{error}");
    }
}
