//! A stage with Istio's schemas, the traffic simulator (podinfo at 20 requests/s, routed by
//! what is in the cluster), a real Prometheus scraping it, and the operator binary running
//! with `-mesh-provider=istio`.

use fledge_testkit::{LocalPrometheus, SimApp, TrafficSim, TrafficSimConfig};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

use super::{Stage, operator_process, virtual_service_weights};

/// The Istio stage; dropping it stops everything.
pub struct IstioStage {
    pub stage: Stage,
    pub sim: TrafficSim,
    pub prometheus: LocalPrometheus,
    pub operator: operator_process::Operator,
}

impl IstioStage {
    /// A [`Stage`] whose Canary has `spec` (lines after `targetRef`) and `provider: istio`.
    pub async fn set_up(spec: &str, app: impl FnOnce(SimApp) -> SimApp) -> Self {
        let stage = Stage::set_up(&format!("  provider: istio\n{spec}")).await;
        Self::around(stage, app).await
    }

    /// Istio's schemas, traffic, Prometheus and the operator around `stage` (with or without
    /// its Canary yet).
    pub async fn around(stage: Stage, app: impl FnOnce(SimApp) -> SimApp) -> Self {
        stage
            .cluster
            .install_mesh_crds()
            .await
            .expect("Istio's CRDs install");
        let sim = TrafficSim::start(
            stage.cluster.client(),
            vec![app(SimApp::new(stage.ns(), "podinfo").with_rate(20.0))],
            TrafficSimConfig::default(),
        )
        .await
        .expect("the traffic simulator starts");
        let prometheus = LocalPrometheus::start(&[sim.metrics_addr()])
            .await
            .expect("a local Prometheus");
        let server = format!("-metrics-server={}", prometheus.url());
        let operator = stage.start_operator(&["-mesh-provider=istio", &server]);
        Self {
            stage,
            sim,
            prometheus,
            operator,
        }
    }

    pub fn ns(&self) -> String {
        self.stage.ns().to_owned()
    }

    fn virtual_services(&self) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "networking.istio.io",
            "v1beta1",
            "VirtualService",
        ));
        Api::namespaced_with(self.stage.cluster.client(), self.stage.ns(), &resource)
    }

    /// (primary, canary) weights of the VirtualService's default route.
    pub async fn weights(&self) -> (i64, i64) {
        let vs = self
            .virtual_services()
            .get("podinfo")
            .await
            .expect("the VirtualService exists");
        virtual_service_weights(&vs.data["spec"])
    }

    /// Waits until the traffic simulator routes podinfo by the VirtualService.
    pub async fn routes_by_virtual_service(&self) {
        let ns = self.ns();
        super::wait_until(
            "the traffic simulator routes by the VirtualService",
            std::time::Duration::from_secs(10),
            || async {
                self.sim.route_source(&ns, "podinfo").as_deref()
                    == Some(format!("VirtualService {ns}/podinfo").as_str())
            },
        )
        .await;
    }

    /// Sets the VirtualService's default route to `primary`/`canary` by hand, as a user's
    /// `kubectl edit` would.
    pub async fn edit_weights(&self, primary: i64, canary: i64) {
        let api = self.virtual_services();
        let vs = api.get("podinfo").await.expect("the VirtualService exists");
        let mut http = vs.data["spec"]["http"].clone();
        if let Some(default_route) = http.as_array_mut().and_then(|routes| routes.last_mut()) {
            for destination in default_route["route"].as_array_mut().into_iter().flatten() {
                let host = destination["destination"]["host"]
                    .as_str()
                    .unwrap_or_default();
                destination["weight"] = json!(if host.ends_with("-canary") {
                    canary
                } else {
                    primary
                });
            }
        }
        api.patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "http": http } })),
        )
        .await
        .expect("the VirtualService is edited");
    }
}
