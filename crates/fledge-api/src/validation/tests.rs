//! Validation told as stories: what a user writes and what Fledge answers.

use super::*;

fn check(text: &str) -> DocumentReport {
    let mut reports = validate_yaml(text).expect("yaml");
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

fn messages(report: &DocumentReport) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

const MINIMAL: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n";

fn canary(analysis: &str) -> String {
    format!("{MINIMAL}  analysis: {analysis}\n")
}

#[test]
fn a_minimal_canary_is_valid() {
    let report = check(&canary(
        "{interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}",
    ));
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(report.kind.as_deref(), Some("Canary"));
    assert_eq!(report.name.as_deref(), Some("podinfo"));
}

#[test]
fn a_misspelled_field_is_named_with_the_right_spelling() {
    let report = check(&format!(
        "{MINIMAL}  progressDeadlineSes: 60\n  analysis: {{stepWeight: 10}}\n"
    ));
    assert_eq!(
        messages(&report),
        [
            "spec.progressDeadlineSes: unknown field `progressDeadlineSes`; did you mean `progressDeadlineSeconds`?"
        ]
    );
}

#[test]
fn wrong_types_say_how_to_write_the_value() {
    let report = check(&canary("{stepWeight: \"10\"}"));
    assert_eq!(
        messages(&report),
        [
            "spec.analysis.stepWeight: expected an integer, found a string (\"10\"); remove the quotes"
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let report = check(&canary("{stepWeight: 0, maxWeight: 120, threshold: 0}"));
    let found = messages(&report);
    assert!(
        found.contains(
            &"spec.analysis.stepWeight: must be between 1 and 100 (a percentage), got 0".to_owned()
        ),
        "{found:?}"
    );
    assert!(
        found.contains(
            &"spec.analysis.maxWeight: must be between 1 and 100 (a percentage), got 120"
                .to_owned()
        ),
        "{found:?}"
    );
    assert!(
        found.contains(
            &"spec.analysis.threshold: must be at least 1 (failed checks before rollback), got 0"
                .to_owned()
        ),
        "{found:?}"
    );
}

#[test]
fn step_weights_must_ascend_and_max_weight_must_reach_step_weight() {
    let report = check(&canary("{stepWeights: [5, 10, 10, 50]}"));
    assert_eq!(
        messages(&report),
        ["spec.analysis.stepWeights[2]: stepWeights must be strictly ascending, but 10 follows 10"]
    );
    let report = check(&canary("{stepWeight: 20, maxWeight: 10}"));
    assert_eq!(
        messages(&report),
        ["spec.analysis.maxWeight: must be at least stepWeight (20), got 10"]
    );
}

fn warnings(report: &DocumentReport) -> Vec<String> {
    report.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn what_flagger_resolves_on_its_own_is_valid_with_a_warning_saying_what_runs() {
    // Flagger's own Linkerd e2e test: maxWeight 50 beside stepWeights, walked to 60.
    let report = check(&canary(
        "{interval: 15s, threshold: 15, maxWeight: 50, stepWeights: [10, 20, 30, 40, 50, 60]}",
    ));
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(
        warnings(&report),
        [
            "spec.analysis.maxWeight: beside stepWeights Flagger ignores maxWeight (50) and stops at the last of stepWeights (60), and so does Fledge; remove maxWeight"
        ]
    );

    let report = check(&canary("{stepWeight: 20, stepWeights: [5, 50]}"));
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(
        warnings(&report),
        [
            "spec.analysis.stepWeight: beside stepWeights Flagger advances by stepWeight (20) up to the last of stepWeights (50), ignoring the other steps, and so does Fledge; keep either stepWeight (with maxWeight) or stepWeights"
        ]
    );

    let report = check(&canary("{iterations: 10, stepWeight: 10, maxWeight: 50}"));
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(
        warnings(&report),
        [
            "spec.analysis.iterations: with iterations (10) Flagger runs blue/green and ignores stepWeight/stepWeights, and so does Fledge; remove the weights, or iterations for a canary release"
        ]
    );

    // Plain settings warn about nothing, and typos stay errors.
    assert!(
        check(&canary("{stepWeight: 10, maxWeight: 50}"))
            .warnings
            .is_empty()
    );
    let report = check(&canary(
        "{stepWeight: 10, maxWeight: 50, stepWieghts: [10]}",
    ));
    assert!(!report.is_valid());
}

#[test]
fn the_engine_runs_flaggers_resolutions() {
    let spec = |analysis: &str| -> crate::CanarySpec {
        crate::yaml::from_str(&format!(
            "targetRef: {{name: podinfo}}\nservice: {{port: 9898}}\nprovider: linkerd\nanalysis: {analysis}"
        ))
        .expect("a spec")
    };
    let linkerd = spec("{maxWeight: 50, stepWeights: [10, 20, 30, 40, 50, 60]}").resolved(None);
    assert_eq!(linkerd.max_weight, 60, "Flagger walks to 60");
    let both = spec("{stepWeight: 20, stepWeights: [5, 50]}").resolved(None);
    assert_eq!((both.step_weight, both.max_weight), (20, 50));
    let blue_green = spec("{iterations: 10, stepWeight: 10}").resolved(None);
    assert_eq!(blue_green.strategy, crate::strategy::Strategy::BlueGreen);
}

#[test]
fn a_canary_that_could_never_advance_is_refused() {
    let report = check(&canary("{interval: 1m, threshold: 5}"));
    assert!(
        messages(&report)[0].contains("needs `stepWeight`"),
        "{:?}",
        report.problems
    );
}

#[test]
fn unknown_webhook_types_and_severities_list_the_known_ones() {
    let report = check(&canary(
        "{stepWeight: 10, webhooks: [{name: a, type: pre-rolout, url: 'http://x/'}], alerts: [{name: b, severity: critical, providerRef: {name: slack}}]}",
    ));
    let found = messages(&report);
    assert!(
        found[0].starts_with(
            "spec.analysis.alerts[0].severity: `critical` is not one of: info, warn, error"
        ),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("spec.analysis.webhooks[0].type: `pre-rolout` is not one of:"),
        "{found:?}"
    );
    assert!(
        found[1].ends_with("did you mean `pre-rollout`?"),
        "{found:?}"
    );
}

#[test]
fn mirroring_outside_istio_and_gateway_api_is_refused() {
    let text =
        canary("{iterations: 10, mirror: true}").replace("spec:\n", "spec:\n  provider: linkerd\n");
    let report = check(&text);
    assert_eq!(
        messages(&report),
        [
            "spec.analysis.mirror: traffic mirroring needs istio or gatewayapi, not linkerd; remove `mirror` or change the provider"
        ]
    );
}

fn nginx_canary(analysis: &str) -> String {
    canary(analysis).replace(
        "spec:\n",
        "spec:\n  provider: nginx\n  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}\n",
    )
}

#[test]
fn nginx_ab_testing_by_one_header_and_one_cookie_is_valid() {
    for matches in [
        "[{headers: {x-canary: {exact: insider}}}]",
        "[{headers: {x-canary: {regex: \"^(insider|beta)$\"}}}, {headers: {cookie: {exact: canary}}}]",
    ] {
        let report = check(&nginx_canary(&format!(
            "{{interval: 1m, threshold: 5, iterations: 10, match: {matches}}}"
        )));
        assert!(report.is_valid(), "{matches}: {:?}", report.problems);
    }
}

#[test]
fn nginx_refuses_what_its_canary_annotations_cannot_express() {
    let report = check(&nginx_canary(
        "{iterations: 10, mirror: true, match: [\
         {headers: {x-canary: {exact: insider}}, uri: {prefix: /api}}, \
         {headers: {x-user: {prefix: beta}, cookie: {regex: can.*}}}, \
         {headers: {x-other: {exact: yes}}}]}",
    ));
    assert_eq!(
        messages(&report),
        [
            "spec.analysis.mirror: traffic mirroring needs istio or gatewayapi, not nginx; remove `mirror` or change the provider",
            "spec.analysis.match[0].uri: the nginx provider routes A/B traffic by one header or one cookie only and cannot match on `uri`; remove it, or use a provider that can (istio, gatewayapi)",
            "spec.analysis.match[1].headers.cookie: the nginx provider matches a cookie by its name (canary-by-cookie; requests whose cookie holds `always` go to the canary): use `exact: <cookie name>`",
            "spec.analysis.match[1].headers.x-user: the nginx provider matches a header by exact value or regex, not by prefix; use `regex: \"^<prefix>.*\"`",
            "spec.analysis.match[2].headers.x-other: the nginx provider routes by one header only (canary-by-header); keep one header condition",
        ]
    );
}

#[test]
fn skipper_and_apisix_refuse_ab_testing_and_session_affinity() {
    for (provider, reference) in [
        (
            "skipper",
            "ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}",
        ),
        (
            "apisix",
            "routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo}",
        ),
    ] {
        let text = canary("{iterations: 10, match: [{headers: {x-canary: {exact: insider}}}]}")
            .replace(
                "spec:\n",
                &format!("spec:\n  provider: {provider}\n  {reference}\n"),
            );
        assert_eq!(
            messages(&check(&text)),
            [format!(
                "spec.analysis.match: routing by header, cookie or query (A/B testing) is not supported by {provider}"
            )]
        );
        let text = canary("{stepWeight: 10, sessionAffinity: {cookieName: user}}").replace(
            "spec:\n",
            &format!("spec:\n  provider: {provider}\n  {reference}\n"),
        );
        assert_eq!(
            messages(&check(&text)),
            [format!(
                "spec.analysis.sessionAffinity: session affinity needs istio or gatewayapi, not {provider}"
            )]
        );
    }
}

#[test]
fn each_ingress_provider_is_held_to_the_conditions_its_router_writes() {
    let with = |provider: &str, analysis: &str| {
        check(&canary(analysis).replace("spec:\n", &format!("spec:\n  provider: {provider}\n")))
    };
    let ab = "{iterations: 10, match: [{headers: {x-canary: {exact: insider}}}, {uri: {prefix: /beta}}]}";
    assert_eq!(
        messages(&with("contour", ab)),
        [
            "spec.analysis.match[1].uri: the contour provider routes A/B tests by headers, withoutHeaders and queryParams only; remove `uri`"
        ]
    );
    assert_eq!(
        messages(&with("gloo", ab)),
        [
            "spec.analysis.match[1].uri: the gloo provider routes A/B tests by headers, withoutHeaders, queryParams and method only; remove `uri`"
        ]
    );
    let headers =
        "{iterations: 10, match: [{headers: {x-canary: {exact: insider}}, method: {exact: GET}}]}";
    assert!(messages(&with("gloo", headers)).is_empty());
    assert_eq!(
        messages(&with("traefik:traefik.containo.us", headers)),
        [
            "spec.analysis.match: routing by header, cookie or query (A/B testing) is not supported by traefik:traefik.containo.us"
        ]
    );
    for provider in [
        "traefik",
        "traefik:traefik.io",
        "traefik:traefik.containo.us",
    ] {
        assert!(
            messages(&with(provider, "{stepWeight: 5, maxWeight: 50}")).is_empty(),
            "{provider}"
        );
    }
}

#[test]
fn equal_session_affinity_cookies_are_refused() {
    let report = check(&canary(
        "{stepWeight: 10, sessionAffinity: {cookieName: user, primaryCookieName: user}}",
    ));
    assert_eq!(
        messages(&report),
        [
            "spec.analysis.sessionAffinity.primaryCookieName: must differ from cookieName, or users cannot be told apart"
        ]
    );
}

#[test]
fn bad_durations_are_named() {
    let report = check(&canary("{interval: 1 minute, stepWeight: 10}"));
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].path, "spec.analysis.interval");
    assert!(
        report.problems[0].message.contains("like 500ms, 30s, 1m"),
        "{:?}",
        report.problems
    );
}

#[test]
fn missing_required_fields_are_named() {
    let report = check(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: x}\nspec:\n  service: {name: x}\n",
    );
    let paths: Vec<_> = report.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["spec.service.port", "spec.targetRef"]);
}

#[test]
fn other_kinds_are_skipped_not_rejected() {
    let reports = validate_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo}\n---\n---\napiVersion: v1\nkind: Secret\n").expect("yaml");
    assert!(
        reports.iter().all(|r| r.verdict == Verdict::Skipped),
        "{reports:?}"
    );
    assert_eq!(reports.len(), 3);
}

#[test]
fn an_alert_provider_needs_an_address_or_a_secret() {
    let report = check(
        "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {name: slack}\nspec: {type: slack, channel: general}\n",
    );
    assert_eq!(report.problems[0].path, "spec.address");
}

#[test]
fn a_legacy_canary_is_read_with_a_note() {
    let text = canary("{stepWeight: 10, maxWeight: 50, metrics: [{name: request-success-rate, threshold: 99, interval: 1m}]}")
        .replace("v1beta1", "v1alpha3")
        .replace("analysis:", "canaryAnalysis:");
    let report = check(&text);
    assert!(report.is_valid(), "{:?}", report.problems);
    assert!(
        report.notes.iter().any(|n| n.contains("fledge migrate")),
        "{:?}",
        report.notes
    );
}

#[test]
fn each_problem_is_reported_once() {
    let report = check(&canary(
        "{stepWeight: 10, metrics: [{name: error-rate, templateRef: {name: t}}], webhooks: [{name: a, url: 'ftp://x'}]}",
    ));
    assert_eq!(
        messages(&report),
        [
            "spec.analysis.metrics[0]: has nothing to judge against; add thresholdRange (min and/or max)",
            "spec.analysis.webhooks[0].url: `ftp://x` is not an http(s) URL; write it like http://flagger-loadtester.test/",
        ]
    );
}
