//! The one error type of the crate.
//!
//! No variant carries a webhook address, token or proxy URL: those are credentials. Errors
//! name *where* a bad value came from (`spec.address`, `Secret on-call-url key address`)
//! and what to do about it, never the value.

use std::time::Duration;

use crate::notifier::NotifierKind;

/// Everything that can go wrong while resolving a provider or sending a notification.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address is not an absolute `http(s)` URL.
    #[error(
        "{kind}: {field} is not a valid http(s) URL ({reason}); set it to the receiver's webhook URL"
    )]
    InvalidAddress {
        /// The service the address is for.
        kind: NotifierKind,
        /// Where the address came from (`spec.address`, `Secret on-call-url key address`).
        field: String,
        /// Why it was refused (never the address itself).
        reason: String,
    },

    /// Neither the AlertProvider nor its Secret holds an address.
    #[error(
        "AlertProvider {provider}: no webhook address; set spec.address or an `address` key in the Secret named by spec.secretRef"
    )]
    MissingAddress {
        /// `namespace/name` of the AlertProvider.
        provider: String,
    },

    /// A canary alert names an AlertProvider that does not exist.
    #[error("AlertProvider {provider} not found; create it or fix the alert's providerRef")]
    ProviderNotFound {
        /// `namespace/name` of the missing AlertProvider.
        provider: String,
    },

    /// The operator could not read an AlertProvider or Secret (an API error).
    #[error("cannot read {what}")]
    Lookup {
        /// What was being read (`AlertProvider flagger/on-call`).
        what: String,
        /// What the lookup reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The AlertProvider names a Secret the operator could not supply.
    #[error(
        "AlertProvider {provider}: spec.secretRef names Secret {secret}, which was not found in namespace {namespace}; create it or remove spec.secretRef"
    )]
    SecretNotFound {
        /// `namespace/name` of the AlertProvider.
        provider: String,
        /// Name of the missing Secret.
        secret: String,
        /// Namespace the Secret was looked up in.
        namespace: String,
    },

    /// A Secret value the crate needs is not UTF-8 text.
    #[error(
        "Secret {secret} key {key}: the value is not UTF-8 text; store the plain string (base64-encoded once, as Kubernetes expects)"
    )]
    SecretNotText {
        /// Name of the Secret.
        secret: String,
        /// The key whose value is not text.
        key: String,
    },

    /// The proxy URL is not usable.
    #[error("{kind}: {field} is not a valid proxy URL; use http://host:port or https://host:port")]
    InvalidProxy {
        /// The service the proxy is for.
        kind: NotifierKind,
        /// Where the proxy came from (`spec.proxy`, `-slack-proxy-url`).
        field: String,
    },

    /// The HTTP client could not be built (TLS back-end initialisation).
    #[error("{kind}: cannot build the HTTP client")]
    Client {
        /// The service the client is for.
        kind: NotifierKind,
        /// What the HTTP library reported.
        #[source]
        source: reqwest::Error,
    },

    /// The receiver could not be reached (connection refused, DNS, TLS, proxy).
    #[error("{kind}: sending the notification failed")]
    Unreachable {
        /// The service that was called.
        kind: NotifierKind,
        /// What the HTTP library reported, with the URL removed.
        #[source]
        source: reqwest::Error,
    },

    /// The receiver did not answer in time.
    #[error("{kind}: the receiver did not answer within {}s", after.as_secs_f64())]
    Timeout {
        /// The service that was called.
        kind: NotifierKind,
        /// The timeout that elapsed.
        after: Duration,
    },

    /// The receiver answered with a status outside 2xx.
    #[error("{kind}: the receiver answered {status}: {body}")]
    Rejected {
        /// The service that was called.
        kind: NotifierKind,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body, secrets redacted.
        body: String,
    },

    /// The payload could not be serialised (a bug, never user input).
    #[error("{kind}: cannot encode the payload")]
    Encode {
        /// The service the payload was for.
        kind: NotifierKind,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// The dispatch queue is full; the notification was dropped rather than wait.
    #[error("notification for {target} dropped: the dispatch queue is full ({capacity} pending)")]
    QueueFull {
        /// The provider the notification was for.
        target: String,
        /// The queue's capacity.
        capacity: usize,
    },

    /// The dispatcher has shut down.
    #[error("notification for {target} dropped: the dispatcher has shut down")]
    DispatcherClosed {
        /// The provider the notification was for.
        target: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
