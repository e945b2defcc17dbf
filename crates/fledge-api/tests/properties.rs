//! Invariants of the spec model, over generated input.
//!
//! - any spec the model can hold survives a JSON and a YAML round trip unchanged;
//! - validation never panics, whatever it is given, and always says where a problem is;
//! - a spec that validates resolves to settings the engine can run safely.

use fledge_api::canary::{
    CanaryAlert, CanaryAnalysis, CanaryMetric, CanaryService, CanaryThresholdRange, CanaryWebhook,
    CrossNamespaceObjectReference, HookType, HttpMatchRequest, LocalObjectReference, StringMatch,
};
use fledge_api::validation::{Verdict, validate_document, validate_yaml};
use fledge_api::{CanarySpec, GoDuration, yaml};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,12}"
}

fn duration() -> impl Strategy<Value = GoDuration> {
    (0u64..7200).prop_map(GoDuration::from_secs)
}

fn string_match() -> impl Strategy<Value = StringMatch> {
    prop_oneof![
        name().prop_map(|v| StringMatch {
            exact: Some(v),
            ..StringMatch::default()
        }),
        name().prop_map(|v| StringMatch {
            prefix: Some(v),
            ..StringMatch::default()
        }),
        name().prop_map(|v| StringMatch {
            regex: Some(format!("^{v}.*")),
            ..StringMatch::default()
        }),
    ]
}

fn http_match() -> impl Strategy<Value = HttpMatchRequest> {
    (
        prop::collection::btree_map(name(), string_match(), 0..3),
        prop::option::of(string_match()),
        prop::collection::btree_map(name(), name(), 0..2),
    )
        .prop_map(|(headers, uri, source_labels)| HttpMatchRequest {
            headers,
            uri,
            source_labels,
            ..HttpMatchRequest::default()
        })
}

fn metric() -> impl Strategy<Value = CanaryMetric> {
    (
        prop_oneof![
            Just("request-success-rate".to_owned()),
            Just("request-duration".to_owned()),
            name()
        ],
        prop::option::of(duration()),
        prop::option::of(-1e6f64..1e6),
        prop::option::of(-1e6f64..1e6),
        prop::option::of(name()),
        prop::collection::btree_map(name(), name(), 0..2),
    )
        .prop_map(
            |(name, interval, min, max, template, template_variables)| CanaryMetric {
                name,
                interval,
                threshold: None,
                threshold_range: Some(CanaryThresholdRange { min, max }),
                query: None,
                template_ref: template.map(|t| CrossNamespaceObjectReference {
                    name: t,
                    ..Default::default()
                }),
                template_variables,
            },
        )
}

fn webhook() -> impl Strategy<Value = CanaryWebhook> {
    (
        prop::option::of(prop::sample::select(HookType::ALL.to_vec())),
        name(),
        name(),
        any::<bool>(),
        prop::option::of(duration()),
        prop::collection::btree_map(name(), ".{0,20}", 0..3),
        prop::option::of(0i32..5),
    )
        .prop_map(
            |(type_, name, host, mute_alert, timeout, metadata, retries)| CanaryWebhook {
                type_,
                name,
                url: format!("http://{host}.test/"),
                mute_alert,
                timeout,
                metadata,
                retries,
                disable_tls: false,
            },
        )
}

fn analysis() -> impl Strategy<Value = CanaryAnalysis> {
    (
        (
            prop::option::of(duration()),
            prop::option::of(0i32..20),
            prop::option::of(0i32..30),
        ),
        (
            prop::option::of(0i32..=100),
            prop::option::of(0i32..=100),
            prop::collection::vec(1i32..=100, 0..5),
        ),
        (
            any::<bool>(),
            prop::option::of(0i32..=100),
            prop::option::of(0i32..=100),
        ),
        prop::collection::vec(metric(), 0..3),
        prop::collection::vec(webhook(), 0..3),
        prop::collection::vec(http_match(), 0..2),
        prop::collection::vec(name(), 0..2),
    )
        .prop_map(
            |(
                (interval, threshold, iterations),
                (max_weight, step_weight, step_weights),
                (mirror, mirror_weight, promotion),
                metrics,
                webhooks,
                match_,
                alerts,
            )| {
                CanaryAnalysis {
                    interval,
                    iterations,
                    mirror,
                    mirror_weight,
                    max_weight,
                    step_weight,
                    step_weights,
                    step_weight_promotion: promotion,
                    threshold,
                    metrics,
                    webhooks,
                    match_,
                    alerts: alerts
                        .into_iter()
                        .map(|a| CanaryAlert {
                            name: a.clone(),
                            severity: None,
                            provider_ref: CrossNamespaceObjectReference {
                                name: a,
                                ..Default::default()
                            },
                        })
                        .collect(),
                    ..CanaryAnalysis::default()
                }
            },
        )
}

fn spec() -> impl Strategy<Value = CanarySpec> {
    (
        prop::option::of(prop::sample::select(vec![
            "istio",
            "linkerd",
            "kubernetes",
            "gatewayapi:v1",
            "nginx",
            "contour",
        ])),
        name(),
        1i32..65536,
        prop::option::of(analysis()),
        prop::option::of(1i32..3600),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::collection::vec(name(), 0..3),
    )
        .prop_map(
            |(
                provider,
                target,
                port,
                analysis,
                deadline,
                (skip_analysis, revert_on_deletion, suspend),
                hosts,
            )| CanarySpec {
                provider: provider.map(str::to_owned),
                metrics_server: None,
                target_ref: LocalObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: Some("Deployment".into()),
                    name: target,
                },
                autoscaler_ref: None,
                ingress_ref: None,
                route_ref: None,
                upstream_ref: None,
                service: CanaryService {
                    port,
                    hosts,
                    ..CanaryService::default()
                },
                analysis,
                canary_analysis: None,
                progress_deadline_seconds: deadline,
                skip_analysis,
                revert_on_deletion,
                suspend,
            },
        )
}

/// Arbitrary JSON, biased towards the field names a Canary has, so that generated documents
/// reach deep into the schema and the rules rather than stopping at the first unknown field.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "analysis",
            "service",
            "targetRef",
            "name",
            "port",
            "stepWeight",
            "stepWeights",
            "maxWeight",
            "iterations",
            "match",
            "headers",
            "metrics",
            "webhooks",
            "thresholdRange",
            "min",
            "max",
            "interval",
            "type",
            "url",
            "timeout",
            "mirror",
            "sessionAffinity",
            "cookieName",
            "provider",
            "alerts",
            "severity",
        ])
        .prop_map(str::to_owned),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "1m",
            "10s",
            "istio",
            "rollout",
            "pre-rollout",
            "info",
            "kubernetes"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_spec_survives_json_and_yaml_round_trips(spec in spec()) {
        let json = serde_json::to_value(&spec).expect("specs serialize");
        let back: CanarySpec = serde_json::from_value(json).expect("serialized specs read back");
        prop_assert_eq!(&back, &spec);
        let text = yaml::to_string(&spec).expect("specs serialize to YAML");
        let back: CanarySpec = yaml::from_str(&text).expect("YAML reads back");
        prop_assert_eq!(back, spec);
    }

    #[test]
    fn validation_never_panics_and_always_locates_problems(spec in json_value(), kind in prop::sample::select(vec!["Canary", "MetricTemplate", "AlertProvider"])) {
        let document = json!({"apiVersion": "flagger.app/v1beta1", "kind": kind, "metadata": {"name": "x"}, "spec": spec});
        let report = validate_document(0, &document);
        prop_assert_eq!(report.verdict == Verdict::Valid, report.problems.is_empty());
        for problem in &report.problems {
            prop_assert!(!problem.path.is_empty() && !problem.message.is_empty());
        }
        let distinct: std::collections::BTreeSet<String> = report.problems.iter().map(ToString::to_string).collect();
        prop_assert_eq!(distinct.len(), report.problems.len(), "a problem was reported twice: {:?}", report.problems);
    }

    #[test]
    fn validation_never_panics_on_any_text(text in "\\PC{0,200}") {
        let _ = validate_yaml(&text);
    }

    #[test]
    fn a_valid_canary_resolves_to_safe_settings(spec in spec()) {
        let document = json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "x"}, "spec": spec});
        if validate_document(0, &document).is_valid() {
            let resolved = spec.resolved(Some("istio"));
            prop_assert!(resolved.max_weight >= 1 && resolved.max_weight <= 100);
            prop_assert!(resolved.threshold >= 1);
            prop_assert!(resolved.interval >= std::time::Duration::from_secs(10));
            prop_assert!(resolved.step_weights.windows(2).all(|w| w[0] < w[1]));
            // Beside stepWeights, a stepWeight may exceed the last step (Flagger's resolution,
            // a warning): the engine's steps stop at maxWeight all the same.
            prop_assert!(resolved.step_weight <= resolved.max_weight || !resolved.step_weights.is_empty() || resolved.step_weight == 0 || resolved.skip_analysis);
        }
    }
}

#[test]
fn generated_specs_reach_the_valid_space() {
    // The property above is only meaningful if some generated specs are valid.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = spec();
    let valid = (0..400)
        .filter(|_| {
            let spec = strategy.new_tree(&mut runner).expect("tree").current();
            let document = json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "x"}, "spec": spec});
            validate_document(0, &document).is_valid()
        })
        .count();
    assert!(
        valid >= 20,
        "only {valid} of 400 generated specs were valid"
    );
}
