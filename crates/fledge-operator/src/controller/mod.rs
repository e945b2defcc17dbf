//! The kube-runtime Controller over Canaries: it watches Canaries and what they depend on
//! (Deployments, DaemonSets, ConfigMaps, Services, and — in lazily started caches — routing
//! objects and HPAs), keeps those in watch caches, watches the metadata of Secrets and reads
//! only those canaries reference ([`referenced_secrets`]), and ticks each canary
//! ([`tick::reconcile`]) when something it depends on changes and at its analysis interval.

mod actions;
pub mod alerts;
pub mod backoff;
pub mod caches;
pub mod canary_index;
pub mod check_budget;
pub mod drift;
pub mod finalizer;
pub mod invalid;
pub mod lazy_caches;
pub mod metric_checks;
pub mod referenced_secrets;
pub mod target;
pub mod tick;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use fledge_api::{AlertProvider, Canary, MetricTemplate};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::Api;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};

use crate::config::OperatorConfig;
use crate::error::{Error, Result};
use crate::workload::apply::WorkloadApplier;
use crate::workload::autoscaler::AutoscalingVersion;
use crate::workload::config_tracking::ConfigKind;
use caches::{Caches, reflect};
use tick::Pacing;

/// The longest note of a Kubernetes Event (events.k8s.io/v1 refuses more than 1 KB).
const MAX_EVENT_NOTE: usize = 1000;

/// What every tick shares.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// Writes workloads.
    pub applier: WorkloadApplier,
    /// Watch caches of what canaries depend on.
    pub caches: Caches,
    /// `-mesh-provider`: the provider of canaries that name none.
    pub default_provider: String,
    /// `-ingress-class` and `-ingress-annotations-prefix`, for the routers that read them.
    pub router_options: fledge_router::RouterOptions,
    /// `-metrics-server`: the metrics server of canaries that name none.
    pub metrics_server: String,
    /// The served `autoscaling` version.
    pub autoscaling: AutoscalingVersion,
    /// Records Kubernetes Events.
    pub recorder: Recorder,
    /// When each canary ticks next.
    pub pacing: Pacing,
    /// Calls webhooks.
    pub webhooks: webhooks::WebhookCaller,
    /// `-event-webhook`: receives every event.
    pub event_webhook: Option<fledge_api::canary::CanaryWebhook>,
    /// Watch caches of routing objects and autoscalers.
    pub lazy: lazy_caches::LazyCaches,
    /// Prometheus clients by metrics server.
    pub prometheus: metric_checks::PrometheusPool,
    /// Sends the engine's alerts to the canary's AlertProviders or the global notifier.
    pub alerter: fledge_notify::Alerter,
    /// Flagger's metrics and the readiness of `/readyz`.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// `-cluster-name`: the `Cluster` field of every alert (none when empty).
    pub cluster_name: String,
    /// `-no-cross-namespace-refs`: refuse references to other namespaces.
    pub no_cross_namespace_refs: bool,
    /// The validation warnings already recorded (each message names its canary): each is
    /// one Warning event per process, not one per tick.
    pub warned: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The backoff of canaries whose ticks fail, and their recently recorded errors.
    pub backoffs: backoff::Backoffs,
}

impl Context {
    /// The router of `canary`'s provider (its own, else `-mesh-provider`).
    ///
    /// # Errors
    /// [`fledge_router::Error::UnknownProvider`] when no router handles the provider.
    pub fn router(
        &self,
        canary: &fledge_api::Canary,
    ) -> fledge_router::Result<Box<dyn fledge_router::Router>> {
        let provider = canary.spec.effective_provider(Some(&self.default_provider));
        fledge_router::router_for(provider, self.client.clone(), &self.router_options)
    }

    /// The HorizontalPodAutoscaler `namespace/name` (of the served `autoscaling` version),
    /// from its watch cache once that holds its list, else read from the API server.
    ///
    /// # Errors
    /// [`Error::Kube`] when the API server is asked and the read fails.
    pub async fn autoscaler(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<kube::api::DynamicObject>> {
        let resource = self.autoscaling.resource();
        match self.lazy.get(&resource, namespace, name) {
            lazy_caches::Cached::Found(hpa) => Ok(Some(Arc::unwrap_or_clone(hpa))),
            lazy_caches::Cached::Absent => Ok(None),
            lazy_caches::Cached::Unknown => Api::<kube::api::DynamicObject>::namespaced_with(
                self.client.clone(),
                namespace,
                &resource,
            )
            .get_opt(name)
            .await
            .map_err(|e| Error::kube("get", "HorizontalPodAutoscaler", namespace, name, e)),
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("caches", &self.caches)
            .field("default_provider", &self.default_provider)
            .field("autoscaling", &self.autoscaling)
            .finish_non_exhaustive()
    }
}

/// Runs the controller until `shutdown` resolves, with metrics of its own.
///
/// # Errors
/// [`Error::Kube`] / [`Error::AutoscalingNotServed`] when API discovery fails at start.
pub async fn run(
    config: &OperatorConfig,
    client: kube::Client,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let telemetry =
        crate::telemetry::Telemetry::new(env!("CARGO_PKG_VERSION"), &config.mesh_provider);
    run_with(config, client, Arc::new(telemetry), shutdown).await
}

/// Runs the controller until `shutdown` resolves, recording into `telemetry` (which
/// `/metrics` and `/readyz` serve).
///
/// # Errors
/// [`Error::Kube`] / [`Error::AutoscalingNotServed`] when API discovery fails at start.
pub async fn run_with(
    config: &OperatorConfig,
    client: kube::Client,
    telemetry: Arc<crate::telemetry::Telemetry>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let namespace = config.watched_namespace();
    let canaries: Api<Canary> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (deployments, deployment_events) = reflect::<Deployment>(&client, namespace);
    let (daemon_sets, daemon_set_events) = reflect::<DaemonSet>(&client, namespace);
    let (config_maps, config_map_events) = reflect::<ConfigMap>(&client, namespace);
    let secrets = Arc::new(referenced_secrets::ReferencedSecrets::new(
        client.clone(),
        namespace.map(str::to_owned),
    ));
    let secret_events = referenced_secrets::watch_metadata(&client, namespace);
    let (services, service_events) = reflect::<Service>(&client, namespace);
    let (metric_templates, template_events) = reflect::<MetricTemplate>(&client, namespace);
    let (alert_providers, provider_events) = reflect::<AlertProvider>(&client, namespace);
    let caches = Caches {
        deployments,
        daemon_sets,
        config_maps,
        secrets: secrets.clone(),
        services,
        metric_templates,
        alert_providers,
        namespace: namespace.map(str::to_owned),
        synced: Arc::default(),
    };
    let (touched, touched_events) = lazy_caches::touch_channel(lazy_caches::TOUCH_CAPACITY);
    let ctx = Arc::new(context(config, &client, caches.clone(), telemetry.clone(), touched).await?);

    // The Canary watch feeds the controller's store and the index that maps a change of a
    // dependency to its canaries without scanning them all.
    let index = Arc::new(canary_index::CanaryIndex::default());
    let (store, writer) = reflector::store();
    let canary_events = watcher(canaries, watcher::Config::default())
        .default_backoff()
        .inspect_ok({
            let (index, ctx) = (index.clone(), ctx.clone());
            move |event| {
                for gone in index.apply(event) {
                    forget(&ctx, &gone);
                }
            }
        })
        .inspect_err(|error| warn_watch_failed("Canary", error))
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(canary_events, store.clone());
    // Templates and providers are read when a check or an alert needs them; a change to one
    // does not tick a canary, so their streams only fill the caches (and let go of the
    // credentials no template or provider names any more).
    let sweeping = caches.clone();
    tokio::spawn(
        futures::stream::select(template_events.map(|_| ()), provider_events.map(|_| ())).for_each(
            move |()| {
                sweeping.sweep_credentials();
                std::future::ready(())
            },
        ),
    );
    telemetry.count_canaries(store.clone());
    tokio::spawn(announce_synced(caches.clone(), telemetry));
    let (for_deployments, for_daemon_sets, for_services, for_touched) =
        (index.clone(), index.clone(), index.clone(), index.clone());
    // A routing object or HPA changed in a lazy cache ticks its canaries (their kinds are
    // known only at run time, so they come as one stream of references).
    let touched_canaries = touched_events
        .flat_map(move |touched| futures::stream::iter(for_touched.of_touched(&touched)));
    let for_config_maps = (store, caches, index);
    // A referenced Secret that changed ticks the canaries whose target uses it.
    let secret_changes = referenced_secrets::changed_canaries(secrets, secret_events);
    controller
        .watches_stream(deployment_events, move |d: Deployment| {
            named(&d.metadata, |ns, name| {
                for_deployments.of_workload(ns, name)
            })
        })
        .watches_stream(daemon_set_events, move |d: DaemonSet| {
            named(&d.metadata, |ns, name| {
                for_daemon_sets.of_workload(ns, name)
            })
        })
        .watches_stream(config_map_events, move |c: ConfigMap| {
            let (store, caches, index) = &for_config_maps;
            named(&c.metadata, |ns, name| {
                caches.canaries_of_config(store, index, ConfigKind::ConfigMap, ns, name)
            })
        })
        .watches_stream(service_events, move |s: Service| {
            named(&s.metadata, |ns, name| for_services.of_service(ns, name))
        })
        .reconcile_on(touched_canaries)
        .reconcile_on(secret_changes)
        .graceful_shutdown_on(shutdown)
        .run(tick_unless_backing_off, error_policy, ctx)
        .for_each(|result| async move {
            // Failed ticks are logged by `error_policy`, failed watches where they are
            // watched (at warn, with their kind).
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile failed");
            }
        })
        .await;
    Ok(())
}

/// The canaries `map` finds for the object of `meta` (none for an object without namespace
/// or name).
fn named(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    map: impl FnOnce(&str, &str) -> Vec<ObjectRef<Canary>>,
) -> Vec<ObjectRef<Canary>> {
    match (meta.namespace.as_deref(), meta.name.as_deref()) {
        (Some(namespace), Some(name)) => map(namespace, name),
        _ => Vec::new(),
    }
}

/// What every tick shares, for an operator configured by `config`.
async fn context(
    config: &OperatorConfig,
    client: &kube::Client,
    caches: Caches,
    telemetry: Arc<crate::telemetry::Telemetry>,
    touched: lazy_caches::TouchSender,
) -> Result<Context> {
    let reporter = Reporter {
        controller: "fledge-operator".to_owned(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    let alerter = alerts::alerter(config, &caches, client)?;
    let lazy = lazy_caches::LazyCaches::new(client.clone(), caches.namespace.clone(), touched);
    Ok(Context {
        client: client.clone(),
        applier: WorkloadApplier::new(client.clone(), config.workload_settings()),
        caches,
        default_provider: config.mesh_provider.clone(),
        router_options: config.router_options(),
        metrics_server: config.metrics_server.clone(),
        autoscaling: AutoscalingVersion::detect(client).await?,
        recorder: Recorder::new(client.clone(), reporter),
        pacing: Pacing::default(),
        webhooks: webhooks::WebhookCaller::new()
            .map_err(|reason| Error::ClientConfig { reason })?,
        event_webhook: config
            .event_webhook
            .clone()
            .filter(|url| !url.is_empty())
            .map(|url| fledge_api::canary::CanaryWebhook {
                type_: Some(fledge_api::canary::HookType::Event),
                name: "event-webhook".to_owned(),
                url,
                mute_alert: false,
                timeout: None,
                metadata: std::collections::BTreeMap::new(),
                retries: None,
                disable_tls: false,
            }),
        alerter,
        prometheus: metric_checks::PrometheusPool::default(),
        lazy,
        telemetry,
        cluster_name: config.cluster_name.trim().to_owned(),
        no_cross_namespace_refs: config.no_cross_namespace_refs,
        warned: std::sync::Mutex::default(),
        backoffs: backoff::Backoffs::default(),
    })
}

/// Logs a failed watch of `kind` (the watcher retries with its own backoff; until then the
/// cache of `kind` may be stale).
pub(crate) fn warn_watch_failed(kind: &str, error: &watcher::Error) {
    tracing::warn!(%kind, %error, "watch of {kind} failed; retrying: {error}");
}

/// One tick of `canary`, unless it is backing off after a fault of the API server (then it
/// waits for its retry, however many watch events come); a successful tick ends its backoff.
async fn tick_unless_backing_off(canary: Arc<Canary>, ctx: Arc<Context>) -> Result<Requeue> {
    if let Some(wait) = ctx.backoffs.holding(&canary, std::time::Instant::now()) {
        return Ok(Requeue::requeue(wait));
    }
    let key = ObjectRef::from_obj(canary.as_ref());
    let ticked = tick::reconcile(canary, ctx.clone()).await;
    if ticked.is_ok() {
        ctx.backoffs.succeeded(&key);
    }
    ticked
}

/// Logs `Watch caches synced` once every cache of dependencies holds its initial list, and
/// from then on `/readyz` answers 200.
async fn announce_synced(caches: Caches, telemetry: Arc<crate::telemetry::Telemetry>) {
    if caches.wait_until_synced().await {
        telemetry.set_readiness(crate::telemetry::Readiness::Synced);
        tracing::info!("Watch caches synced");
    }
}

/// Forgets what the operator kept for a canary that is gone: its pacing, its metric
/// series, its references to Secrets.
fn forget(ctx: &Context, gone: &canary_index::GoneCanary) {
    tracing::debug!(name = %gone.canary.name, namespace = %gone.namespace, "forgetting a deleted canary");
    ctx.pacing.forget(&gone.canary);
    ctx.telemetry.forget_canary(&gone.namespace, &gone.target);
    ctx.caches.secrets.forget_canary(&gone.canary);
    ctx.backoffs.forget(&gone.canary);
}

/// A failed tick is logged with the canary's name, recorded as a Warning event on the
/// Canary (each distinct error at most every 5 minutes), and retried after the canary's
/// backoff (see [`backoff`]).
#[allow(
    clippy::needless_pass_by_value,
    reason = "the signature kube-runtime's Controller::run calls"
)]
fn error_policy(canary: Arc<Canary>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let name = canary.metadata.name.clone().unwrap_or_default();
    let namespace = canary.metadata.namespace.clone().unwrap_or_default();
    let message = error.to_string();
    let retry = ctx.backoffs.failed(
        &canary,
        &message,
        error.retry_after(),
        error.is_api_fault(),
        std::time::Instant::now(),
    );
    tracing::error!(
        %name,
        %namespace,
        error = %message,
        failures = retry.failures,
        retry_in_ms = retry.after.as_millis() as u64,
        "{name}.{namespace} tick failed: {message}"
    );
    if canary.metadata.deletion_timestamp.is_some() {
        ctx.pacing.forget(&ObjectRef::from_obj(canary.as_ref()));
    }
    if retry.record_event {
        // error_policy is synchronous; the event is written beside the controller.
        tokio::spawn(record_failed_tick(canary, message, ctx));
    }
    Requeue::requeue(retry.after)
}

/// Records a failed tick as a Warning event on its Canary, as Flagger records a failed
/// reconcile (reason `Synced`, the error as the message).
async fn record_failed_tick(canary: Arc<Canary>, message: String, ctx: Arc<Context>) {
    let mut note = message;
    if note.len() > MAX_EVENT_NOTE {
        let mut end = MAX_EVENT_NOTE;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    // The recorder folds events of one action into one series (keeping the first note):
    // an action per error keeps each distinct error an Event of its own.
    let action = std::hash::BuildHasher::hash_one(
        &std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(),
        &note,
    );
    let event = KubeEvent {
        type_: EventType::Warning,
        reason: "Synced".to_owned(),
        action: format!("TickFailed-{action:016x}"),
        note: Some(note),
        secondary: None,
    };
    let reference = kube::Resource::object_ref(canary.as_ref(), &());
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, "cannot record the failed tick as an event");
    }
}
