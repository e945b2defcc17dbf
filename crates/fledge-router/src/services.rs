//! The three ClusterIP Services of every canary: `<svc>` (apex), `<svc>-primary` and
//! `<svc>-canary`, with Flagger's selectors, ports, labels and annotations.
//!
//! The apex Service selects the primary pods: routers move traffic through the mesh objects,
//! and without a mesh (`kubernetes` provider) clients keep reaching the primary while the
//! canary is tested through `<svc>-canary`.

use std::collections::BTreeMap;

use fledge_api::Canary;
use fledge_api::canary::{CanaryService, CustomMetadata};
use k8s_openapi::api::core::v1::{Container, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{ApiResource, DynamicObject};

use crate::apply::{Applier, adopt};
use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, KUBECTL_LAST_APPLIED, generated_metadata};
use crate::object::{TrafficObject, resource};

/// Container names of mesh proxies whose ports port discovery skips.
const SIDECARS: [&str; 2] = ["istio-proxy", "envoy"];

/// The pods behind the Services: the workload's selector label and its value, as the operator
/// read them from the target (`app: podinfo` selects the canary, `app: podinfo-primary` the primary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceTarget {
    /// The selector label (one of the operator's `--selector-labels`, e.g. `app`).
    pub label: String,
    /// Its value on the target's pods (`podinfo`).
    pub value: String,
    /// Extra ports to expose, by name: [`discover_ports`] when `service.portDiscovery` is on.
    pub extra_ports: BTreeMap<String, i32>,
}

impl ServiceTarget {
    /// Pods labelled `label: value`, with no extra ports.
    pub fn new(label: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            value: value.into(),
            extra_ports: BTreeMap::new(),
        }
    }

    /// The selector value of the primary's pods (`podinfo-primary`).
    pub fn primary_value(&self) -> String {
        format!("{}-primary", self.value)
    }
}

/// The three Services of a canary, as rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryServices {
    /// `<svc>`: what clients call; selects the primary pods.
    pub apex: Service,
    /// `<svc>-primary`: selects the primary pods.
    pub primary: Service,
    /// `<svc>-canary`: selects the canary pods.
    pub canary: Service,
}

/// The container ports of the target to expose besides `service.port`, by name, skipping mesh
/// proxies and the port the Services already send to (Flagger's port discovery).
pub fn discover_ports(service: &CanaryService, containers: &[Container]) -> BTreeMap<String, i32> {
    let mut ports = BTreeMap::new();
    for container in containers
        .iter()
        .filter(|c| !SIDECARS.contains(&c.name.as_str()))
    {
        for (index, port) in container.ports.iter().flatten().enumerate() {
            let is_service_port = match &service.target_port {
                None => port.container_port == service.port,
                Some(IntOrString::Int(number)) => port.container_port == *number,
                Some(IntOrString::String(name)) => port.name.as_deref() == Some(name.as_str()),
            };
            if is_service_port {
                continue;
            }
            let name = port
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("tcp-{}-{index}", container.name));
            ports.insert(name, port.container_port);
        }
    }
    ports
}

/// Renders the apex, primary and canary Services of `canary` for the pods of `target`.
///
/// # Errors
/// [`Error::CanaryMetadata`] without a namespace; [`Error::InvalidSpec`] for a port outside 1–65535.
pub fn render_services(canary: &Canary, target: &ServiceTarget) -> Result<CanaryServices> {
    let identity = CanaryIdentity::of(canary)?;
    let service = &canary.spec.service;
    if !(1..=65_535).contains(&service.port) {
        return Err(Error::spec(
            "spec.service.port",
            format!(
                "must be a port number between 1 and 65535, got {}",
                service.port
            ),
        ));
    }
    let names = canary.spec.service_names();
    let primary_pods = target.primary_value();
    Ok(CanaryServices {
        apex: render_service(
            &identity,
            service,
            target,
            &names.apex,
            &primary_pods,
            service.apex.as_ref(),
        ),
        primary: render_service(
            &identity,
            service,
            target,
            &names.primary,
            &primary_pods,
            service.primary.as_ref(),
        ),
        canary: render_service(
            &identity,
            service,
            target,
            &names.canary,
            &target.value,
            service.canary.as_ref(),
        ),
    })
}

fn render_service(
    identity: &CanaryIdentity,
    service: &CanaryService,
    target: &ServiceTarget,
    name: &str,
    pods: &str,
    custom: Option<&CustomMetadata>,
) -> Service {
    let (mut labels, annotations) = generated_metadata(custom);
    labels.insert(target.label.clone(), name.to_owned());
    let mut ports = vec![ServicePort {
        name: Some(
            service
                .port_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "http".to_owned()),
        ),
        protocol: Some("TCP".to_owned()),
        port: service.port,
        target_port: Some(
            service
                .target_port
                .clone()
                .filter(|p| *p != IntOrString::Int(0) && *p != IntOrString::String(String::new()))
                .unwrap_or(IntOrString::Int(service.port)),
        ),
        app_protocol: service.app_protocol.clone().filter(|p| !p.is_empty()),
        ..ServicePort::default()
    }];
    ports.extend(
        target
            .extra_ports
            .iter()
            .map(|(port_name, number)| ServicePort {
                name: Some(port_name.clone()),
                protocol: Some("TCP".to_owned()),
                port: *number,
                target_port: Some(IntOrString::Int(*number)),
                ..ServicePort::default()
            }),
    );
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(identity.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            cluster_ip: service.headless.then(|| "None".to_owned()),
            selector: Some(BTreeMap::from([(target.label.clone(), pods.to_owned())])),
            ports: Some(ports),
            traffic_distribution: service
                .traffic_distribution
                .clone()
                .filter(|t| !t.is_empty()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The API resource of core/v1 Services.
fn service_resource() -> ApiResource {
    resource("", "v1", "Service", "services")
}

fn as_traffic_object(service: &Service) -> Result<TrafficObject> {
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(service).map_err(|source| Error::Encode {
        kind: "Service".to_owned(),
        name: name.clone(),
        source,
    })?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".to_owned(), "v1".into());
        map.insert("kind".to_owned(), "Service".into());
    }
    let object: DynamicObject = serde_json::from_value(value).map_err(|source| Error::Encode {
        kind: "Service".to_owned(),
        name,
        source,
    })?;
    Ok(TrafficObject {
        resource: service_resource(),
        object,
    })
}

/// Trims a Service Fledge adopted to what Flagger takes over: the selector and the ports.
/// Its type (a LoadBalancer stays one), cluster IP, labels and annotations remain the user's.
fn keep_only_routing_fields(object: &mut DynamicObject) {
    object.metadata.labels = None;
    object.metadata.annotations = None;
    if let Some(spec) = object
        .data
        .get_mut("spec")
        .and_then(serde_json::Value::as_object_mut)
    {
        spec.retain(|key, _| key == "selector" || key == "ports");
    }
}

/// Keeps the three Services of each canary in shape on the API server.
#[derive(Clone, Debug)]
pub struct ServiceRouter {
    applier: Applier,
}

impl ServiceRouter {
    /// A service router writing through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            applier: Applier::new(client),
        }
    }

    /// Creates or updates the primary and canary Services, then the apex Service.
    ///
    /// A Service that existed before without the Canary as owner (an apex Service the user
    /// deployed with the app) is adopted: Fledge takes over its selector and ports and leaves
    /// its labels, annotations and owners alone.
    pub async fn reconcile(&self, canary: &Canary, target: &ServiceTarget) -> Result<()> {
        self.reconcile_generated(canary, target).await?;
        self.reconcile_apex(canary, target).await
    }

    /// Creates or updates the `-primary` and `-canary` Services only. No traffic moves: the
    /// apex Service, which clients address, is left as it is.
    pub async fn reconcile_generated(&self, canary: &Canary, target: &ServiceTarget) -> Result<()> {
        let services = render_services(canary, target)?;
        self.apply_services(canary, &[&services.primary, &services.canary])
            .await
    }

    /// Creates, updates or adopts the apex Service, pointing it at the primary's pods. Call it
    /// once the primary is ready: from then on the apex's clients reach the primary.
    pub async fn reconcile_apex(&self, canary: &Canary, target: &ServiceTarget) -> Result<()> {
        let services = render_services(canary, target)?;
        self.apply_services(canary, &[&services.apex]).await
    }

    async fn apply_services(&self, canary: &Canary, services: &[&Service]) -> Result<()> {
        let identity = CanaryIdentity::of(canary)?;
        for service in services {
            let desired = as_traffic_object(service)?;
            let existing = self
                .applier
                .get(&desired.resource, &identity.namespace, desired.name())
                .await?;
            let mut object = adopt(&identity, &desired, existing.as_ref(), false);
            if existing
                .as_ref()
                .is_some_and(|e| !identity.controls(&e.metadata))
            {
                keep_only_routing_fields(&mut object);
            }
            self.applier
                .apply_object(&desired.resource, &identity.namespace, &object)
                .await?;
            tracing::debug!(service = %desired.name(), namespace = %identity.namespace, "service applied");
        }
        Ok(())
    }

    /// Reverts an adopted apex Service (revertOnDeletion): its selector returns to what
    /// `kubectl apply` last set, or else to the target's own pods. Services Fledge created are
    /// left to be garbage-collected with the Canary.
    pub async fn finalize(&self, canary: &Canary, target: &ServiceTarget) -> Result<()> {
        let identity = CanaryIdentity::of(canary)?;
        let apex = canary.spec.service_names().apex;
        let svc_resource = service_resource();
        let Some(existing) = self
            .applier
            .get(&svc_resource, &identity.namespace, &apex)
            .await?
        else {
            return Ok(());
        };
        if identity.controls(&existing.metadata) {
            return Ok(());
        }
        let selector = existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(KUBECTL_LAST_APPLIED))
            .and_then(|text| serde_json::from_str::<Service>(text).ok())
            .and_then(|svc| svc.spec.and_then(|s| s.selector))
            .unwrap_or_else(|| BTreeMap::from([(target.label.clone(), target.value.clone())]));
        let services = render_services(canary, target)?;
        let mut apex_service = services.apex;
        if let Some(spec) = apex_service.spec.as_mut() {
            spec.selector = Some(selector);
        }
        let mut desired = as_traffic_object(&apex_service)?;
        keep_only_routing_fields(&mut desired.object);
        self.applier
            .apply_object(&svc_resource, &identity.namespace, &desired.object)
            .await?;
        Ok(())
    }
}
