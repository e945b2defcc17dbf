//! The one error type of the operator.

/// A `Result` whose error is the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while the operator renders or writes workloads, or reads its
/// configuration. Every message names the object or flag at fault and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tick panicked. The panic was contained to this canary's tick; the others carry on.
    #[error("the tick panicked: {message}; this is a bug in fledge-operator, please report it")]
    TickPanicked {
        /// The panic's message.
        message: String,
    },

    /// The Canary lacks metadata the operator needs (name, namespace or uid).
    #[error(
        "canary {name:?}: metadata.{field} is missing; read the Canary from the API server before acting on it"
    )]
    CanaryMetadata {
        /// The Canary's name, as far as known.
        name: String,
        /// The missing field (`name`, `namespace`, `uid`).
        field: &'static str,
    },

    /// `spec.targetRef.kind` names a kind the workload side does not handle.
    #[error(
        "canary {namespace}/{name}: spec.targetRef.kind {kind:?} is not supported here; use Deployment or DaemonSet"
    )]
    UnsupportedTarget {
        /// The Canary's namespace.
        namespace: String,
        /// The Canary's name.
        name: String,
        /// The kind found.
        kind: String,
    },

    /// The target's selector has none of the selector labels.
    #[error(
        "{kind} {namespace}/{name}: spec.selector.matchLabels must contain one of {labels:?}; add one (e.g. `app: {name}`) or set -selector-labels"
    )]
    SelectorLabel {
        /// `Deployment` or `DaemonSet`.
        kind: &'static str,
        /// The target's namespace.
        namespace: String,
        /// The target's name.
        name: String,
        /// The selector labels looked for.
        labels: Vec<String>,
    },

    /// A DaemonSet target does not use the RollingUpdate strategy.
    #[error(
        "DaemonSet {namespace}/{name}: spec.updateStrategy.type must be RollingUpdate, got {strategy:?}"
    )]
    DaemonSetStrategy {
        /// The target's namespace.
        namespace: String,
        /// The target's name.
        name: String,
        /// The strategy found.
        strategy: String,
    },

    /// A ConfigMap or Secret the target requires (not `optional: true`) does not exist.
    #[error(
        "{kind} {namespace}/{name} is referenced by the target but does not exist; create it or mark the reference optional"
    )]
    MissingConfig {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Namespace of the target.
        namespace: String,
        /// Name of the missing object.
        name: String,
    },

    /// The target's autoscaler could not be read as a HorizontalPodAutoscaler.
    #[error("HorizontalPodAutoscaler {namespace}/{name}: {reason}")]
    Autoscaler {
        /// Namespace of the autoscaler.
        namespace: String,
        /// Name of the autoscaler.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The API server serves neither `autoscaling/v2` nor `autoscaling/v2beta2`.
    #[error(
        "the API server serves neither autoscaling/v2 nor autoscaling/v2beta2 (it serves {served:?}); Kubernetes 1.12 or newer is required for autoscalerRef"
    )]
    AutoscalingNotServed {
        /// The autoscaling versions it serves.
        served: Vec<String>,
    },

    /// The engine refused the canary (its spec cannot be planned) or a tick's inputs.
    #[error("{0}")]
    Engine(#[source] fledge_engine::Error),

    /// A router failed to read or write the canary's traffic objects.
    #[error("{0}")]
    Router(#[source] fledge_router::Error),

    /// A request to the API server failed.
    #[error("{verb} {kind} {namespace}/{name}: {source}")]
    Kube {
        /// What was attempted (`apply`, `get`, `patch`).
        verb: &'static str,
        /// The kind of the object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },

    /// An object could not be converted to or from JSON.
    #[error("{what}: {source}")]
    Json {
        /// What was being converted.
        what: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// No Kubernetes client could be configured (no kubeconfig, not in a cluster).
    #[error(
        "cannot configure the Kubernetes client: {reason}; pass -kubeconfig (or KUBECONFIG) or run inside a cluster"
    )]
    ClientConfig {
        /// Why the configuration failed.
        reason: String,
    },

    /// This replica stopped being the leader (`-enable-leader-election`); it exits so that
    /// only the new leader acts.
    #[error("leadership lost: {reason}")]
    LeadershipLost {
        /// Why: another replica holds the Lease, or it could not be renewed in time.
        reason: String,
    },

    /// A Flagger took its leader Lease again while Fledge was acting; Fledge exits so that
    /// the two never drive the same canaries (restarted, it waits for Flagger to stop).
    #[error("Flagger is running again: {reason}")]
    FlaggerActive {
        /// The Lease and its holder.
        reason: String,
    },

    /// A command-line flag or environment variable has an unusable value.
    #[error("{flag}: {reason}")]
    Config {
        /// The flag (`-log-level`) and its environment variable.
        flag: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

impl Error {
    /// A [`Error::Kube`] for `verb` on `kind` `namespace/name`.
    pub(crate) fn kube(
        verb: &'static str,
        kind: impl Into<String>,
        namespace: &str,
        name: &str,
        source: kube::Error,
    ) -> Self {
        Self::Kube {
            verb,
            kind: kind.into(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        }
    }

    /// The API server's answer behind this error, if a request to it failed with one (also
    /// through a router's or the notifier's error).
    pub fn api_status(&self) -> Option<&kube::core::Status> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            // Errors hold kube's error itself or boxed.
            let kube_error = error.downcast_ref::<kube::Error>().or_else(|| {
                error
                    .downcast_ref::<Box<kube::Error>>()
                    .map(std::convert::AsRef::as_ref)
            });
            if let Some(kube::Error::Api(status)) = kube_error {
                return Some(status);
            }
            cause = error.source();
        }
        None
    }

    /// Whether the API server throttled (429), failed (5xx) or could not be reached: a fault
    /// of the server, not of the canary, so its retries are paced by the backoff alone.
    pub fn is_api_fault(&self) -> bool {
        if let Some(status) = self.api_status() {
            return status.code == 429 || status.code >= 500;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            let kube_error = error.downcast_ref::<kube::Error>().or_else(|| {
                error
                    .downcast_ref::<Box<kube::Error>>()
                    .map(std::convert::AsRef::as_ref)
            });
            if matches!(
                kube_error,
                Some(kube::Error::HyperError(_) | kube::Error::Service(_))
            ) {
                return true;
            }
            cause = error.source();
        }
        false
    }

    /// How long a throttling API server (429) asked the client to wait, from the Status'
    /// `details.retryAfterSeconds` (kube surfaces the body, not the `Retry-After` header,
    /// which the API server sets to the same value).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let status = self.api_status().filter(|s| s.code == 429)?;
        let seconds = status.details.as_ref()?.retry_after_seconds;
        (seconds > 0).then(|| std::time::Duration::from_secs(u64::from(seconds)))
    }

    /// A [`Error::Json`] about `what`.
    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled(retry_after_seconds: u32) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code: 429,
            reason: "TooManyRequests".to_owned(),
            details: serde_json::from_value(serde_json::json!({
                "retryAfterSeconds": retry_after_seconds
            }))
            .ok(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn a_throttled_request_says_how_long_to_wait_also_through_a_router() {
        let direct = Error::kube("patch", "Canary", "test", "podinfo", throttled(7));
        assert_eq!(
            direct.retry_after(),
            Some(std::time::Duration::from_secs(7))
        );
        let routed = Error::Router(fledge_router::Error::Kube {
            verb: "apply",
            kind: "Service".to_owned(),
            namespace: "test".to_owned(),
            name: "podinfo".to_owned(),
            source: Box::new(throttled(3)),
        });
        assert_eq!(
            routed.retry_after(),
            Some(std::time::Duration::from_secs(3))
        );
        let failed = Error::kube(
            "patch",
            "Canary",
            "test",
            "podinfo",
            kube::Error::Api(Box::new(kube::core::Status {
                code: 500,
                ..kube::core::Status::default()
            })),
        );
        assert_eq!(failed.retry_after(), None);
        assert_eq!(failed.api_status().map(|s| s.code), Some(500));
        assert!(failed.is_api_fault() && direct.is_api_fault() && routed.is_api_fault());
        let refused = Error::kube(
            "patch",
            "Canary",
            "test",
            "podinfo",
            kube::Error::Api(Box::new(kube::core::Status {
                code: 422,
                ..kube::core::Status::default()
            })),
        );
        assert!(
            !refused.is_api_fault(),
            "an invalid object is the canary's problem"
        );
        let missing = Error::MissingConfig {
            kind: "configmap",
            namespace: "test".to_owned(),
            name: "podinfo-config".to_owned(),
        };
        assert!(!missing.is_api_fault());
    }
}
