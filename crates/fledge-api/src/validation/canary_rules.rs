//! The rules a Canary must follow beyond its schema: what would make Flagger misbehave,
//! silently ignore a setting, or send traffic somewhere it should not go.

use std::collections::BTreeSet;

use super::schema_check::closest;
use super::{Findings, JsonPath, Problem};
use crate::canary::{CanaryAnalysis, CanaryMetric, CanaryWebhook, HttpMatchRequest, StringMatch};
use crate::defaults::MIN_ANALYSIS_INTERVAL;
use crate::strategy::Strategy;
use crate::{Canary, CanarySpec};

/// Every provider Fledge routes with, as written in `spec.provider`.
pub const PROVIDERS: [&str; 23] = [
    "kubernetes",
    "istio",
    "linkerd",
    "smi",
    "smi:v1alpha1",
    "smi:v1alpha2",
    "smi:v1alpha3",
    "osm",
    "gatewayapi",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "contour",
    "nginx",
    "traefik",
    "traefik:traefik.io",
    "traefik:traefik.containo.us",
    "gloo",
    "skipper",
    "kuma",
    "apisix",
    "appmesh",
    "appmesh:v1beta2",
    "knative",
];

/// Flagger providers Fledge has no router for yet. A Canary naming one is a valid Flagger
/// manifest (the rules here accept it) that Fledge cannot run: `fledge validate` and the
/// operator refuse it with [`provider_problem`]'s words.
pub const UNROUTED_PROVIDERS: [&str; 4] = ["kuma", "appmesh", "appmesh:v1beta2", "knative"];

/// What keeps Fledge from routing with `provider` (a non-empty `spec.provider`), or `None` when
/// a router handles it. Names are read as Flagger reads them — `smi:<version>:<mesh>`,
/// `gatewayapi:v1...` and `gloo...` by prefix — and exactly as `fledge_router::Provider::parse`
/// reads them (a test of fledge-router holds the two together), except that a provider name
/// Flagger does not know, which Flagger quietly routes with its Istio router, is an error here.
pub fn provider_problem(provider: &str) -> Option<String> {
    const SMI_FORMS: &str = "smi:v1alpha1:<mesh>, smi:v1alpha2:<mesh> or smi:v1alpha3:<mesh>";
    if let Some(rest) = provider.strip_prefix("smi:") {
        let version = rest.split(':').next().unwrap_or_default();
        return (!matches!(version, "v1alpha1" | "v1alpha2" | "v1alpha3")).then(|| {
            format!("unknown SMI version `{version}` in `{provider}`; write {SMI_FORMS}")
        });
    }
    if let Some(rest) = provider.strip_prefix("gatewayapi:") {
        return (!rest.starts_with("v1")).then(|| {
            format!("unknown Gateway API version in `{provider}`; write gatewayapi:v1 or gatewayapi:v1beta1")
        });
    }
    match provider {
        // Flagger matches Gloo by prefix (`gloo`, `gloo:v1`...).
        p if p.starts_with("gloo") => None,
        "smi" => Some(format!(
            "`smi` names no SMI version (Flagger would route it with its Istio router); write {SMI_FORMS}"
        )),
        "gatewayapi" => Some(
            "`gatewayapi` names no Gateway API version (Flagger would route it with its Istio router); \
             write gatewayapi:v1 or gatewayapi:v1beta1"
                .to_owned(),
        ),
        p if UNROUTED_PROVIDERS.contains(&p) => Some(format!(
            "`{p}` is a Flagger provider Fledge does not route yet; nothing would be routed. \
             Keep this Canary on Flagger, or use one of the providers in docs/routers.md"
        )),
        p if PROVIDERS.contains(&p) => None,
        p => {
            let hint = closest(p, PROVIDERS.into_iter()).map_or_else(
                || format!("; use one of: {}", PROVIDERS.join(", ")),
                |known| format!("; did you mean `{known}`?"),
            );
            Some(format!("unknown provider `{p}`{hint}"))
        }
    }
}

/// The builtin metrics every provider answers without a MetricTemplate.
pub const BUILTIN_METRICS: [&str; 2] = ["request-success-rate", "request-duration"];

/// Providers that can mirror traffic to the canary.
const MIRRORING_PROVIDERS: [&str; 4] =
    ["istio", "gatewayapi", "gatewayapi:v1", "gatewayapi:v1beta1"];

/// Providers that can route by header, cookie or query parameter (A/B testing).
const MATCHING_PROVIDERS: [&str; 9] = [
    "istio",
    "appmesh",
    "appmesh:v1beta2",
    "contour",
    "gloo",
    "nginx",
    "gatewayapi",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
];

/// The A/B condition fields of the providers that route by some of them only.
const MATCH_FIELDS: [(&str, &[&str]); 2] = [
    ("contour", &["headers", "withoutHeaders", "queryParams"]),
    (
        "gloo",
        &["headers", "withoutHeaders", "queryParams", "method"],
    ),
];

/// Providers that support cookie-based session affinity.
const AFFINITY_PROVIDERS: [&str; 4] =
    ["istio", "gatewayapi", "gatewayapi:v1", "gatewayapi:v1beta1"];

struct Rules {
    problems: Vec<Problem>,
    notes: Vec<String>,
}

impl Rules {
    fn problem(&mut self, path: &JsonPath, message: impl Into<String>) {
        self.problems.push(Problem::new(path.clone(), message));
    }

    fn percent(&mut self, path: &JsonPath, value: Option<i32>, low: i32) {
        if let Some(v) = value.filter(|v| !(low..=100).contains(v)) {
            self.problem(
                path,
                format!("must be between {low} and 100 (a percentage), got {v}"),
            );
        }
    }
}

/// Checks a Canary's rules; `legacy` is true for `flagger.app/v1alpha3` documents.
pub(super) fn check(canary: &Canary, legacy: bool) -> Findings {
    let mut rules = Rules {
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let spec_path = JsonPath::root().field("spec");
    check_spec(&canary.spec, &spec_path, legacy, &mut rules);
    (rules.problems, rules.notes)
}

fn check_spec(spec: &CanarySpec, path: &JsonPath, legacy: bool, rules: &mut Rules) {
    let target = path.field("targetRef");
    if spec.target_ref.name.trim().is_empty() {
        rules.problem(&target.field("name"), "must name the workload to release");
    }
    if let Some(kind) = spec.target_ref.kind.as_deref()
        && !["Deployment", "DaemonSet", "Service"].contains(&kind)
    {
        rules.problem(
            &target.field("kind"),
            format!("`{kind}` cannot be released; use Deployment, DaemonSet or Service"),
        );
    }
    let service = path.field("service");
    let knative = spec.provider.as_deref() == Some("knative");
    if spec.service.is_unset() && !knative {
        rules.problem(
            &service,
            "required field is missing; add `service` with the `port` the Services expose",
        );
    } else if !((1..=65535).contains(&spec.service.port) || knative && spec.service.port == 0) {
        rules.problem(
            &service.field("port"),
            format!(
                "must be a port between 1 and 65535, got {}",
                spec.service.port
            ),
        );
    }
    if let Some(seconds) = spec.progress_deadline_seconds.filter(|s| *s <= 0) {
        rules.problem(
            &path.field("progressDeadlineSeconds"),
            format!("must be a positive number of seconds, got {seconds}"),
        );
    }

    let provider = spec.provider.as_deref().unwrap_or("");
    // A Flagger provider Fledge does not route yet is a valid Flagger manifest: `fledge
    // validate` and the operator refuse it as something Fledge cannot run, not as a mistake.
    if let Some(problem) = Some(provider)
        .filter(|p| !p.is_empty() && !UNROUTED_PROVIDERS.contains(p))
        .and_then(provider_problem)
    {
        rules.problem(&path.field("provider"), problem);
    }
    check_provider_refs(spec, provider, path, rules);

    if spec.analysis.is_some() && spec.canary_analysis.is_some() {
        rules.problem(
            &path.field("canaryAnalysis"),
            "is the deprecated name of `analysis`; keep only `analysis`",
        );
    }
    let (analysis, analysis_path) = match (&spec.analysis, &spec.canary_analysis) {
        (Some(a), _) => (a, path.field("analysis")),
        (None, Some(a)) => {
            if !legacy {
                rules.notes.push(
                    "spec.canaryAnalysis is deprecated: rename it to spec.analysis".to_owned(),
                );
            }
            (a, path.field("canaryAnalysis"))
        }
        (None, None) => {
            if !spec.skip_analysis {
                rules.problem(
                    &path.field("analysis"),
                    "required field is missing; add an analysis (interval, threshold and stepWeight or iterations), \
                     or set `skipAnalysis: true` to promote without one",
                );
            }
            return;
        }
    };
    // Without a provider in the spec the operator's default applies; judge combinations only
    // when the spec says which provider it is written for.
    let strategy = Strategy::of(
        spec,
        Some(if provider.is_empty() {
            "istio"
        } else {
            provider
        }),
    );
    check_analysis(
        analysis,
        &analysis_path,
        provider,
        strategy,
        spec.skip_analysis,
        rules,
    );
}

fn check_provider_refs(spec: &CanarySpec, provider: &str, path: &JsonPath, rules: &mut Rules) {
    let missing = |r: &Option<crate::canary::LocalObjectReference>| {
        r.as_ref().is_none_or(|r| r.name.is_empty())
    };
    if matches!(provider, "nginx" | "skipper") && missing(&spec.ingress_ref) {
        rules.problem(
            &path.field("ingressRef"),
            format!(
                "the {provider} provider routes through an Ingress; add `ingressRef` naming it"
            ),
        );
    }
    if provider == "apisix" && missing(&spec.route_ref) {
        rules.problem(
            &path.field("routeRef"),
            "the apisix provider routes through an ApisixRoute; add `routeRef` naming it",
        );
    }
    if provider.starts_with("gatewayapi") && spec.service.gateway_refs.is_empty() {
        rules.problem(&path.field("service").field("gatewayRefs"), "the Gateway API provider attaches an HTTPRoute to a Gateway; add `gatewayRefs` naming it");
    }
}

fn check_analysis(
    analysis: &CanaryAnalysis,
    path: &JsonPath,
    provider: &str,
    strategy: Strategy,
    skip_analysis: bool,
    rules: &mut Rules,
) {
    if let Some(interval) = &analysis.interval
        && interval.as_duration() < MIN_ANALYSIS_INTERVAL
    {
        rules.notes.push(format!(
            "{}: {interval} is below the 10s minimum; the analysis runs every 10s",
            path.field("interval")
        ));
    }
    if let Some(t) = analysis.threshold.filter(|t| *t < 1) {
        rules.problem(
            &path.field("threshold"),
            format!("must be at least 1 (failed checks before rollback), got {t}"),
        );
    }
    if let Some(i) = analysis.iterations.filter(|i| *i < 0) {
        rules.problem(
            &path.field("iterations"),
            format!("must be 0 or more, got {i}"),
        );
    }
    rules.percent(&path.field("maxWeight"), analysis.max_weight, 1);
    rules.percent(&path.field("stepWeight"), analysis.step_weight, 1);
    rules.percent(
        &path.field("stepWeightPromotion"),
        analysis.step_weight_promotion,
        1,
    );
    rules.percent(&path.field("mirrorWeight"), analysis.mirror_weight, 1);
    rules.percent(
        &path.field("primaryReadyThreshold"),
        analysis.primary_ready_threshold,
        0,
    );
    rules.percent(
        &path.field("canaryReadyThreshold"),
        analysis.canary_ready_threshold,
        0,
    );
    check_weights(analysis, path, strategy, skip_analysis, rules);
    check_routing_features(analysis, path, provider, strategy, rules);
    check_metrics(&analysis.metrics, &path.field("metrics"), rules);
    check_webhooks(&analysis.webhooks, &path.field("webhooks"), rules);
    let mut alert_names = BTreeSet::new();
    for (index, alert) in analysis.alerts.iter().enumerate() {
        let alert_path = path.field("alerts").index(index);
        if alert.provider_ref.name.is_empty() {
            rules.problem(
                &alert_path.field("providerRef").field("name"),
                "must name an AlertProvider",
            );
        }
        if !alert_names.insert(alert.name.as_str()) {
            rules.problem(
                &alert_path.field("name"),
                format!("`{}` is used twice; alert names must be unique", alert.name),
            );
        }
    }
}

/// Mirroring, header matches and session affinity: only some providers can do them.
fn check_routing_features(
    analysis: &CanaryAnalysis,
    path: &JsonPath,
    provider: &str,
    strategy: Strategy,
    rules: &mut Rules,
) {
    let plain = if provider.is_empty() {
        None
    } else {
        Some(provider)
    };
    if analysis.mirror
        && let Some(p) = plain.filter(|p| !MIRRORING_PROVIDERS.contains(p))
    {
        rules.problem(&path.field("mirror"), format!("traffic mirroring needs istio or gatewayapi, not {p}; remove `mirror` or change the provider"));
    }
    if analysis.mirror_weight.is_some() && !analysis.mirror {
        rules.problem(
            &path.field("mirrorWeight"),
            "has no effect without `mirror: true`; add it or remove mirrorWeight",
        );
    }
    if !analysis.match_.is_empty()
        && let Some(p) = plain.filter(|p| !MATCHING_PROVIDERS.contains(p))
    {
        rules.problem(
            &path.field("match"),
            format!("routing by header, cookie or query (A/B testing) is not supported by {p}"),
        );
    }
    let match_fields = plain.and_then(|p| MATCH_FIELDS.iter().find(|(name, _)| *name == p));
    for (index, condition) in analysis.match_.iter().enumerate() {
        let at = path.field("match").index(index);
        check_match(condition, &at, rules);
        if let Some((p, fields)) = match_fields
            && let Some(field) = match_fields_set(condition)
                .into_iter()
                .find(|field| !fields.contains(field))
        {
            rules.problem(
                &at.field(field),
                format!(
                    "the {p} provider routes A/B tests by {} only; remove `{field}`",
                    match fields.split_last() {
                        Some((last, [])) => (*last).to_owned(),
                        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                        None => String::new(),
                    }
                ),
            );
        }
    }
    if plain == Some("nginx") {
        rules.problems.extend(super::nginx_match_problems(
            &analysis.match_,
            &path.field("match"),
        ));
    }
    if let Some(affinity) = &analysis.session_affinity {
        let affinity_path = path.field("sessionAffinity");
        if let Some(p) = plain.filter(|p| !AFFINITY_PROVIDERS.contains(p)) {
            rules.problem(
                &affinity_path,
                format!("session affinity needs istio or gatewayapi, not {p}"),
            );
        }
        if strategy != Strategy::Canary {
            rules.problem(&affinity_path, "session affinity applies to canary releases (stepWeight), not A/B testing or blue/green");
        }
        if affinity.cookie_name.is_some() && affinity.cookie_name == affinity.primary_cookie_name {
            rules.problem(
                &affinity_path.field("primaryCookieName"),
                "must differ from cookieName, or users cannot be told apart",
            );
        }
        if let Some(age) = affinity.max_age.filter(|a| *a < 0) {
            rules.problem(
                &affinity_path.field("maxAge"),
                format!("must be 0 or more seconds, got {age}"),
            );
        }
    }
}

fn check_weights(
    analysis: &CanaryAnalysis,
    path: &JsonPath,
    strategy: Strategy,
    skip_analysis: bool,
    rules: &mut Rules,
) {
    let steps = &analysis.step_weights;
    for (index, pair) in steps.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            rules.problem(
                &path.field("stepWeights").index(index + 1),
                format!(
                    "stepWeights must be strictly ascending, but {} follows {}",
                    pair[1], pair[0]
                ),
            );
        }
    }
    for (index, weight) in steps.iter().enumerate() {
        if !(1..=100).contains(weight) {
            rules.problem(
                &path.field("stepWeights").index(index),
                format!("must be between 1 and 100 (a percentage), got {weight}"),
            );
        }
    }
    if let (Some(step), Some(max)) = (analysis.step_weight, analysis.max_weight)
        && steps.is_empty()
        && (1..=100).contains(&step)
        && max < step
    {
        rules.problem(
            &path.field("maxWeight"),
            format!("must be at least stepWeight ({step}), got {max}"),
        );
    }
    let iterations = analysis.iterations.unwrap_or(0) > 0;
    if strategy == Strategy::Canary
        && !iterations
        && !skip_analysis
        && analysis.step_weight.is_none()
        && steps.is_empty()
    {
        rules.problem(
            path,
            "a canary release needs `stepWeight` (with `maxWeight`) or `stepWeights`; \
             for blue/green or A/B testing set `iterations` instead",
        );
    }
}

/// Settings Flagger resolves on its own, deterministically, where a reader could expect
/// something else: Fledge runs them as Flagger does (`CanarySpec::resolved` and the engine
/// follow Flagger's scheduler) and warns. Each warning says what runs and how to say it
/// plainly.
pub(super) fn flagger_resolutions(canary: &Canary) -> Vec<Problem> {
    let Some(analysis) = canary.spec.analysis() else {
        return Vec::new();
    };
    let path = JsonPath::root().field("spec").field("analysis");
    let mut warnings = Vec::new();
    let steps = &analysis.step_weights;
    let iterations = analysis.iterations.unwrap_or(0);
    if iterations > 0 && (analysis.step_weight.is_some() || !steps.is_empty()) {
        // Flagger's DeploymentStrategy(): iterations mean A/B testing (with match) or
        // blue/green; the weights are never read.
        let strategy = if analysis.match_.is_empty() {
            "blue/green"
        } else {
            "A/B testing"
        };
        warnings.push(Problem::new(
            path.field("iterations"),
            format!(
                "with iterations ({iterations}) Flagger runs {strategy} and ignores stepWeight/stepWeights, \
                 and so does Fledge; remove the weights, or iterations for a canary release"
            ),
        ));
        return warnings;
    }
    let Some(last) = steps.last() else {
        return warnings;
    };
    let last = (*last).min(100);
    if let Some(step) = analysis.step_weight {
        // Flagger's nextStepWeight(): a stepWeight wins over stepWeights for the steps, while
        // maxWeight() still takes the last of stepWeights.
        warnings.push(Problem::new(
            path.field("stepWeight"),
            format!(
                "beside stepWeights Flagger advances by stepWeight ({step}) up to the last of stepWeights ({last}), \
                 ignoring the other steps, and so does Fledge; keep either stepWeight (with maxWeight) or stepWeights"
            ),
        ));
    }
    if let Some(max) = analysis.max_weight {
        // Flagger's maxWeight(): the last of stepWeights, whatever maxWeight says.
        warnings.push(Problem::new(
            path.field("maxWeight"),
            format!(
                "beside stepWeights Flagger ignores maxWeight ({max}) and stops at the last of stepWeights ({last}), \
                 and so does Fledge; remove maxWeight"
            ),
        ));
    }
    warnings
}

/// The fields an A/B condition sets, by their JSON names.
fn match_fields_set(condition: &HttpMatchRequest) -> Vec<&'static str> {
    [
        ("uri", condition.uri.is_some()),
        ("scheme", condition.scheme.is_some()),
        ("method", condition.method.is_some()),
        ("authority", condition.authority.is_some()),
        ("headers", !condition.headers.is_empty()),
        ("withoutHeaders", !condition.without_headers.is_empty()),
        ("queryParams", !condition.query_params.is_empty()),
        ("port", condition.port.is_some()),
        ("sourceLabels", !condition.source_labels.is_empty()),
        ("sourceNamespace", condition.source_namespace.is_some()),
        ("gateways", !condition.gateways.is_empty()),
        ("ignoreUriCase", condition.ignore_uri_case),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect()
}

fn check_match(condition: &HttpMatchRequest, path: &JsonPath, rules: &mut Rules) {
    let mut check = |at: JsonPath, m: &StringMatch| {
        let set = [&m.exact, &m.prefix, &m.regex]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if set != 1 {
            rules.problem(&at, "set exactly one of exact, prefix or regex");
        }
    };
    for (name, m) in [
        ("uri", &condition.uri),
        ("scheme", &condition.scheme),
        ("method", &condition.method),
        ("authority", &condition.authority),
    ] {
        if let Some(m) = m {
            check(path.field(name), m);
        }
    }
    for (field, map) in [
        ("headers", &condition.headers),
        ("queryParams", &condition.query_params),
        ("withoutHeaders", &condition.without_headers),
    ] {
        for (key, m) in map {
            check(path.field(field).field(key), m);
        }
    }
}

fn check_metrics(metrics: &[CanaryMetric], path: &JsonPath, rules: &mut Rules) {
    let mut names = BTreeSet::new();
    for (index, metric) in metrics.iter().enumerate() {
        let at = path.index(index);
        if metric.name.trim().is_empty() {
            rules.problem(&at.field("name"), "must name the metric");
        } else if !names.insert(metric.name.as_str()) {
            rules.problem(
                &at.field("name"),
                format!(
                    "`{}` is used twice; metric names must be unique",
                    metric.name
                ),
            );
        }
        let builtin = BUILTIN_METRICS.contains(&metric.name.as_str());
        if !builtin && metric.template_ref.is_none() && metric.query.is_none() {
            let hint = closest(&metric.name, BUILTIN_METRICS.into_iter())
                .map_or(String::new(), |b| {
                    format!(" (did you mean the builtin `{b}`?)")
                });
            rules.problem(
                &at,
                format!(
                    "`{}` is not a builtin metric{hint}; add a templateRef to a MetricTemplate",
                    metric.name
                ),
            );
        }
        if metric
            .template_ref
            .as_ref()
            .is_some_and(|r| r.name.is_empty())
        {
            rules.problem(
                &at.field("templateRef").field("name"),
                "must name a MetricTemplate",
            );
        }
        match (&metric.threshold_range, metric.threshold) {
            (None, None) => rules.problem(
                &at,
                "has nothing to judge against; add thresholdRange (min and/or max)",
            ),
            (Some(_), Some(_)) => rules.problem(
                &at.field("threshold"),
                "is the deprecated form of thresholdRange; keep only thresholdRange",
            ),
            (Some(range), None) => match (range.min, range.max) {
                (None, None) => rules.problem(&at.field("thresholdRange"), "set min, max or both"),
                (Some(min), Some(max)) if min > max => {
                    rules.problem(
                        &at.field("thresholdRange"),
                        format!("min ({min}) is above max ({max}); no value could pass"),
                    );
                }
                _ => {}
            },
            (None, Some(_)) => rules.notes.push(format!(
                "{}: threshold is deprecated; `fledge migrate` rewrites it as thresholdRange",
                at.field("threshold")
            )),
        }
    }
}

fn check_webhooks(webhooks: &[CanaryWebhook], path: &JsonPath, rules: &mut Rules) {
    let mut names = BTreeSet::new();
    for (index, hook) in webhooks.iter().enumerate() {
        let at = path.index(index);
        if hook.name.trim().is_empty() {
            rules.problem(&at.field("name"), "must name the webhook");
        } else if !names.insert(hook.name.as_str()) {
            rules.problem(
                &at.field("name"),
                format!(
                    "`{}` is used twice; webhook names must be unique",
                    hook.name
                ),
            );
        }
        let url = hook.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() <= "https://".len()
        {
            rules.problem(
                &at.field("url"),
                format!(
                    "`{url}` is not an http(s) URL; write it like http://flagger-loadtester.test/"
                ),
            );
        }
        if let Some(r) = hook.retries.filter(|r| *r < 0) {
            rules.problem(&at.field("retries"), format!("must be 0 or more, got {r}"));
        }
    }
}
