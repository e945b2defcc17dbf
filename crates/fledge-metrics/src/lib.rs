//! Metric providers, Flagger-compatible query templating and builtin metrics.
