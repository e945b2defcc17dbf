//! The one error type of the crate.

/// Why a router could not render, apply or read the traffic objects of a canary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Canary's spec asks for something this provider cannot do; `field` is its JSON path.
    #[error("{field}: {message}")]
    InvalidSpec {
        /// JSON path of the offending field (`spec.service.gatewayRefs`).
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The weights handed to `set_routes` are not a split of 100%.
    #[error("invalid routes primary={primary} canary={canary}: {reason}")]
    InvalidRoutes {
        /// Requested primary weight.
        primary: u32,
        /// Requested canary weight.
        canary: u32,
        /// Why they were refused.
        reason: &'static str,
    },

    /// The `kubernetes` provider switches traffic only all at once (blue/green).
    #[error(
        "provider kubernetes cannot send {canary}% of the traffic to the canary: it routes 0% or 100% only \
         (use a mesh or ingress provider for progressive traffic shifting, or set analysis.iterations for blue/green)"
    )]
    UnsupportedWeight {
        /// Requested canary weight.
        canary: u32,
    },

    /// `spec.provider` names a provider this crate does not route (yet).
    #[error(
        "spec.provider: unknown or unsupported provider {provider:?}; supported: kubernetes, istio, linkerd, osm, \
         smi:v1alpha1:<mesh>, smi:v1alpha2:<mesh>, smi:v1alpha3:<mesh>, gatewayapi:v1, gatewayapi:v1beta1, \
         contour, traefik, traefik:traefik.containo.us, gloo, nginx, skipper, apisix"
    )]
    UnknownProvider {
        /// The provider as written.
        provider: String,
    },

    /// The Canary object lacks metadata the router needs (it was not read from the API server).
    #[error(
        "canary {name}: metadata.{field} is missing; pass the Canary as read from the API server"
    )]
    CanaryMetadata {
        /// Name of the canary (may be empty).
        name: String,
        /// The missing field (`namespace`, `uid`).
        field: &'static str,
    },

    /// A traffic object exists but holds no route to the primary or the canary.
    #[error("{kind} {namespace}/{name} does not contain routes for {primary} and {canary}")]
    MissingRoutes {
        /// Kind of the object (`VirtualService`).
        kind: String,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Name of the primary Service.
        primary: String,
        /// Name of the canary Service.
        canary: String,
    },

    /// A traffic object is not there yet (run `reconcile` first).
    #[error("{kind} {namespace}/{name} not found; reconcile the canary before routing traffic")]
    NotFound {
        /// Kind of the object.
        kind: String,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
    },

    /// The user's object a routing object is cloned from (`spec.ingressRef`,
    /// `spec.routeRef`) does not exist.
    #[error(
        "{field}: {kind} {namespace}/{name} not found; create it, or point {field}.name at the {kind} that routes to the apex Service"
    )]
    SourceNotFound {
        /// The Canary field naming the source (`spec.ingressRef`).
        field: &'static str,
        /// Kind of the source (`Ingress`).
        kind: String,
        /// Namespace of the source.
        namespace: String,
        /// Name of the source.
        name: String,
    },

    /// A traffic object exists but is not in force yet (e.g. its Gateway has not accepted it).
    #[error("{kind} {namespace}/{name} is not ready: {reason}")]
    NotReady {
        /// Kind of the object.
        kind: String,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// What is not ready.
        reason: String,
    },

    /// The saved original configuration of an adopted object cannot be read back.
    #[error("{kind} {namespace}/{name}: annotation {annotation} does not hold a valid spec")]
    OriginalConfiguration {
        /// Kind of the object.
        kind: String,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// The annotation that was read.
        annotation: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },

    /// An object could not be converted to or from JSON.
    #[error("cannot encode {kind} {name}: {source}")]
    Encode {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// The encoding error.
        #[source]
        source: serde_json::Error,
    },

    /// The API server refused or failed a request.
    #[error("{verb} {kind} {namespace}/{name} failed: {source}")]
    Kube {
        /// What was attempted (`apply`, `get`).
        verb: &'static str,
        /// Kind of the object.
        kind: String,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `routing`, an object of `kind`, holds no route to `primary` or `canary`.
    pub(crate) fn missing_routes(
        kind: &str,
        routing: &kube::api::DynamicObject,
        primary: impl Into<String>,
        canary: impl Into<String>,
    ) -> Self {
        Self::MissingRoutes {
            kind: kind.to_owned(),
            namespace: routing.metadata.namespace.clone().unwrap_or_default(),
            name: routing.metadata.name.clone().unwrap_or_default(),
            primary: primary.into(),
            canary: canary.into(),
        }
    }

    /// A spec problem at `field`.
    pub(crate) fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidSpec {
            field: field.into(),
            message: message.into(),
        }
    }
}
