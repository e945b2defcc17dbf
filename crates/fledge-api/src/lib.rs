//! The `flagger.app/v1beta1` spec model of Fledge.
//!
//! Every Flagger manifest reads into these types unchanged: [`Canary`], [`MetricTemplate`]
//! and [`AlertProvider`]. On top of the raw model the crate offers
//!
//! - [`defaults`]: the values Flagger fills in, as a resolved view that never mutates what
//!   the user stored;
//! - [`strategy`]: which release strategy a canary asks for (canary, A/B testing,
//!   blue/green, blue/green with mirroring);
//! - [`validation`]: every problem of a manifest at once, each with its JSON path and a fix;
//! - [`legacy`]: reading and converting `flagger.app/v1alpha3` canaries;
//! - [`crd`]: the CustomResourceDefinitions, generated from these types;
//! - [`yaml`]: the one place YAML is read and written;
//! - [`redaction`]: how a URL from a spec is shown without its secrets.
//!
//! The crate has no client and no async code: it is safe to embed anywhere.
//!
//! ```
//! let manifest = r#"
//! apiVersion: flagger.app/v1beta1
//! kind: Canary
//! metadata: { name: podinfo, namespace: test }
//! spec:
//!   targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }
//!   service: { port: 9898 }
//!   analysis: { interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10 }
//! "#;
//! let report = fledge_api::validation::validate_yaml(manifest).expect("one document");
//! assert!(report[0].is_valid(), "{:?}", report[0].problems);
//! ```

pub mod alert_provider;
pub mod canary;
pub mod crd;
pub mod defaults;
pub mod duration;
pub mod legacy;
pub mod metric_template;
pub mod redaction;
mod schema;
pub mod strategy;
pub mod validation;
pub mod yaml;

pub use alert_provider::{AlertProvider, AlertProviderSpec, AlertProviderType};
pub use canary::{Canary, CanaryPhase, CanarySpec, CanaryStatus};
pub use duration::GoDuration;
pub use metric_template::{MetricProviderType, MetricTemplate, MetricTemplateSpec};

/// The API group of every Fledge (and Flagger) resource.
pub const GROUP: &str = "flagger.app";
/// The served API version.
pub const VERSION: &str = "v1beta1";
/// The legacy API version Fledge still reads.
pub const LEGACY_VERSION: &str = "v1alpha3";
