//! Test-only infrastructure for Fledge: a real local control plane and simulators.
//!
//! An operator is only proven against a real API server. This crate starts one per test:
//!
//! - [`LocalCluster`]: etcd + kube-apiserver on free loopback ports in a temporary
//!   directory, with token auth, a kubeconfig file and a ready [`kube::Client`]; helpers to
//!   install Fledge's CRDs and the mesh CRDs ([`crds`]) and to make a namespace per test
//!   ([`TempNamespace`]). The operator under test acts as the ServiceAccount of
//!   `deploy/kustomize/base` with exactly the shipped RBAC, and every request it makes is
//!   audited ([`operator_rbac`]).
//! - [`LocalPrometheus`]: a real Prometheus scraping given targets every second; its
//!   [builder](LocalPrometheus::builder) adds basic auth and TLS for tests of a client's
//!   credentials (fledge-metrics' tests and `cargo xtask bench metrics` run on it too).
//! - [`ClusterSim`]: stands in for kubelet and the workload controllers, writing the status
//!   Kubernetes would write for Deployments, DaemonSets and HPAs.
//! - [`TrafficSim`]: stands in for the mesh data plane, splitting simulated requests by the
//!   routes currently in the cluster and serving the metrics each provider's queries read.
//!
//! Binaries come from `KUBEBUILDER_ASSETS`, `FLEDGE_KUBE_APISERVER`/`FLEDGE_ETCD`/
//! `FLEDGE_PROMETHEUS`, the cache `cargo xtask control-plane` fills, or `PATH`
//! (see [`binaries`]). Every process is killed when its owner is dropped, also on panic.

pub mod binaries;
mod cluster;
pub mod cluster_sim;
pub mod crds;
mod error;
pub mod fault_proxy;
pub mod graphite;
pub mod manifests;
mod namespace;
pub mod operator_rbac;
pub mod pki;
pub mod process;
mod prometheus;
pub mod stale;
pub mod traffic_sim;

pub use binaries::Tool;
pub use cluster::{ClusterBinaries, LocalCluster, client_from_kubeconfig};
pub use cluster_sim::{ClusterSim, ClusterSimConfig};
pub use crds::MeshCrdSource;
pub use error::{Error, Result};
pub use fault_proxy::{Fault, FaultProxy, FaultRule};
pub use graphite::{LocalGraphite, LocalGraphiteBuilder};
pub use namespace::TempNamespace;
pub use operator_rbac::{OperatorIdentity, OperatorRequest};
pub use prometheus::{LocalPrometheus, LocalPrometheusBuilder, Sample};
pub use traffic_sim::{AppCounts, SimApp, TrafficSim, TrafficSimConfig};

impl LocalCluster {
    /// Installs Fledge's CRDs (canaries, metrictemplates, alertproviders).
    ///
    /// # Errors
    /// See [`crds::install_fledge_crds`].
    pub async fn install_fledge_crds(&self) -> Result<Vec<String>> {
        crds::install_fledge_crds(&self.client()).await
    }

    /// Installs the mesh CRDs routers write (upstream schemas where available).
    ///
    /// # Errors
    /// See [`crds::install_mesh_crds`].
    pub async fn install_mesh_crds(&self) -> Result<MeshCrdSource> {
        crds::install_mesh_crds(&self.client()).await
    }

    /// Creates a namespace for one test, named `<prefix>-<random>`.
    ///
    /// # Errors
    /// [`Error::Kube`] when the server refuses it.
    pub async fn temp_namespace(&self, prefix: &str) -> Result<TempNamespace> {
        TempNamespace::create(&self.client(), prefix).await
    }

    /// Applies a YAML stream server-side (namespaced objects default to `namespace`).
    ///
    /// # Errors
    /// See [`manifests::apply_yaml`].
    pub async fn apply_yaml(
        &self,
        yaml: &str,
        namespace: &str,
    ) -> Result<Vec<kube::api::DynamicObject>> {
        manifests::apply_yaml(&self.client(), yaml, "inline YAML", namespace).await
    }
}
