//! The one error type of the crate.

use std::time::Duration;

/// What went wrong while rendering or running a metric query.
///
/// Addresses in errors are shown as [`fledge_api::redaction::redact_url`] shows them:
/// never with their userinfo, query string or token-like path segments.
///
/// *No values* is not an error: a query that finds nothing answers
/// [`QueryOutcome::NoValues`](crate::QueryOutcome::NoValues), so the caller can tell
/// "the canary gets no traffic yet" from "the metrics server is broken".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template refers to a variable the model does not have.
    #[error(
        "query template: variable {name:?} is not defined (known: name, namespace, target, service, ingress, route, interval, variables.NAME)"
    )]
    MissingTemplateVariable {
        /// The variable as written in the template (`variables.direction`).
        name: String,
    },
    /// The template is not valid template syntax, or a helper was misused.
    #[error("query template: {reason}")]
    InvalidTemplate {
        /// What the template engine reported.
        reason: String,
    },
    /// The provider address is empty or not an absolute http(s) URL.
    #[error("{provider} address {address:?} is not a valid URL")]
    InvalidAddress {
        /// Kind of provider (`prometheus`).
        provider: String,
        /// The address as given.
        address: String,
    },
    /// A configured HTTP header name or value cannot be sent.
    #[error("provider header {name:?} is not a valid HTTP header")]
    InvalidHeader {
        /// Header name as configured.
        name: String,
    },
    /// The provider's `secretRef` is set but the Secret lacks a key the provider needs.
    #[error("{provider} credentials do not contain a {key}")]
    MissingCredential {
        /// Kind of provider.
        provider: String,
        /// The missing key (`username`, `password`, `token`).
        key: &'static str,
    },
    /// The template names a `secretRef` but no Secret data was handed over.
    #[error("{provider} provider refers to Secret {secret:?} but its data was not provided")]
    SecretNotProvided {
        /// Kind of provider.
        provider: String,
        /// Name of the referenced Secret.
        secret: String,
    },
    /// The provider type has no default address and the template names none.
    #[error("{provider} needs spec.provider.address: {hint}")]
    AddressRequired {
        /// Kind of provider.
        provider: String,
        /// What the address looks like.
        hint: &'static str,
    },
    /// The provider type is implemented, but its cargo feature is off in this build.
    #[error(
        "metric provider type {provider:?} is not compiled into this build: enable fledge-metrics' cargo feature {feature:?}"
    )]
    ProviderNotCompiled {
        /// The provider type as written in the MetricTemplate.
        provider: String,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// A provider's API answered with an error (a rejected query, rejected keys, a server
    /// error).
    #[error("{provider} API error (status {status}): {message}")]
    Api {
        /// Kind of provider.
        provider: String,
        /// HTTP status code.
        status: u16,
        /// The API's own message (credentials scrubbed), with a hint where one helps.
        message: String,
    },
    /// A provider's API kept answering HTTP 429 (too many requests).
    #[error(
        "{provider} API rate limit: status 429 on each of {attempts} attempts ({message}): query less often (fewer canaries or a longer analysis interval) or raise the API quota"
    )]
    RateLimited {
        /// Kind of provider.
        provider: String,
        /// How many requests were sent.
        attempts: u32,
        /// The API's last message.
        message: String,
    },
    /// This provider type is not implemented (yet).
    #[error("metric provider type {provider:?} is not supported")]
    UnsupportedProvider {
        /// The provider type as written in the MetricTemplate.
        provider: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("building the HTTP client for {address} failed")]
    Client {
        /// Provider address.
        address: String,
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// The provider did not answer within the configured timeout.
    #[error("query to {address} timed out after {timeout:?}")]
    Timeout {
        /// Provider address.
        address: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The provider could not be reached (refused, DNS, TLS handshake, reset).
    #[error("request to {address} failed: {detail}")]
    Unreachable {
        /// Provider address.
        address: String,
        /// The innermost cause, spelled out (`Connection refused`, `invalid peer certificate`).
        detail: String,
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// The provider rejected the credentials (HTTP 401 or 403).
    #[error("{address} rejected the credentials: status {status}: {body}")]
    Unauthorized {
        /// Provider address.
        address: String,
        /// HTTP status code.
        status: u16,
        /// Response body, trimmed.
        body: String,
    },
    /// The answer is larger than a metric query's answer may be.
    #[error(
        "response from {address} exceeds the {} limit: aggregate the query to one series (for example with sum())",
        crate::bounded_http::human_size(*limit)
    )]
    ResponseTooLarge {
        /// Provider address.
        address: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// Prometheus answered with its own error (bad PromQL, execution timeout, ...).
    #[error("prometheus error ({error_type}, status {status}): {message}")]
    Prometheus {
        /// HTTP status code.
        status: u16,
        /// Prometheus' `errorType` (`bad_data`, `timeout`, `execution`, ...).
        error_type: String,
        /// Prometheus' `error` text, unchanged.
        message: String,
    },
    /// The provider answered with an HTTP error that carries no Prometheus error body.
    #[error("error response from {address}: status {status}: {body}")]
    Http {
        /// Provider address.
        address: String,
        /// HTTP status code.
        status: u16,
        /// Response body, trimmed.
        body: String,
    },
    /// The response could not be read as the provider's API format.
    #[error("unexpected response from {address}: {reason}: {body}")]
    MalformedResponse {
        /// Provider address.
        address: String,
        /// What did not fit.
        reason: String,
        /// Response body, trimmed.
        body: String,
    },
    /// The query returned several series where one value is needed.
    #[error("query returned {count} series, expected one: aggregate it (for example with sum())")]
    MultipleSeries {
        /// How many series came back.
        count: usize,
    },
    /// The query returned a range vector or a string, which has no single value.
    #[error("query returned a {result_type} result, expected an instant vector or a scalar")]
    UnsupportedResultType {
        /// Prometheus' `resultType`.
        result_type: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
