//! What the operator tells about itself: Flagger's Prometheus metrics (`flagger_info`,
//! `flagger_canary_status`, `flagger_canary_weight`, ...), Fledge's count of its own API
//! requests (`fledge_kube_requests_total`), and the `/metrics`, `/healthz` and `/readyz`
//! endpoint on `-port`.
//!
//! | Metric | Labels | Meaning |
//! |---|---|---|
//! | `flagger_info` | `version`, `mesh_provider` | 1, set at start-up |
//! | `flagger_canary_total` | `namespace` | Canaries per namespace (from the watch cache) |
//! | `flagger_canary_status` | `name`, `namespace` | 0 progressing, 2 failed, 1 any other phase |
//! | `flagger_canary_weight` | `workload`, `namespace` | Weight of `<target>-primary` and `<target>` |
//! | `flagger_canary_duration_seconds` | `name`, `namespace` | Histogram of analysis ticks |
//! | `flagger_canary_metric_analysis` | `name`, `namespace`, `metric` | Last value of each metric |
//! | `flagger_canary_successes_total` | `name`, `namespace`, `deployment_strategy`, `analysis_status` | Promotions |
//! | `flagger_canary_failures_total` | `name`, `namespace`, `deployment_strategy`, `analysis_status` | Rollbacks |
//! | `fledge_kube_requests_total` | `verb`, `resource` | Requests to the API server (Fledge's own) |
//!
//! As in Flagger, `name` is the target's name (`spec.targetRef.name`), not the Canary's.

mod metrics;
pub mod requests;
pub mod server;

pub use metrics::{Readiness, Telemetry};
pub use requests::CountRequestsLayer;
