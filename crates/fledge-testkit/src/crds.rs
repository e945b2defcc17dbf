//! Installing CustomResourceDefinitions: Fledge's own and the mesh resources routers write.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

use crate::error::{Error, Result};
use crate::manifests;

/// How long a CRD may take to become Established.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// The project's own minimal mesh schemas, used when the upstream ones are not at hand.
const FALLBACK_MESH_CRDS: &str = include_str!("../crds/mesh-fallback.yaml");

/// The upstream SMI TrafficSplit CRD.
const SMI_FILE: &str = "smi-trafficsplit.yaml";

/// The upstream mesh CRD files installed from the reference directory, in order.
const REFERENCE_FILES: [&str; 12] = [
    "istio-networking.yaml",
    SMI_FILE,
    "gateway-api-gatewayclasses.yaml",
    "gateway-api-gateways.yaml",
    "gateway-api-httproutes.yaml",
    "gateway-api-referencegrants.yaml",
    "contour-httpproxies.yaml",
    "traefik-io.yaml",
    "traefik-containo-us.yaml",
    "gloo-routetables.yaml",
    "gloo-upstreams.yaml",
    "apisix-route.yaml",
];

/// Where the mesh schemas came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshCrdSource {
    /// The real upstream schemas, from this directory.
    Reference(PathBuf),
    /// The testkit's minimal structural schemas (any spec is accepted).
    Fallback,
}

/// Installs Fledge's CRDs (generated from fledge-api) and waits until they are served.
///
/// # Errors
/// [`Error::Kube`] when the server refuses a CRD, [`Error::NotReady`] when one is not
/// Established in time.
pub async fn install_fledge_crds(client: &kube::Client) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for crd in fledge_api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let value = serde_json::to_value(&crd).map_err(|e| Error::Manifest {
            origin: name.clone(),
            reason: e.to_string(),
        })?;
        manifests::apply_value(client, value, "fledge_api::crd::all()", "default").await?;
        names.push(name);
    }
    wait_established(client, &names).await?;
    Ok(names)
}

/// The directory of upstream mesh CRDs: `$FLEDGE_MESH_CRDS`, else the copies kept in this
/// crate (`crds/upstream/`, see its README for sources and the 1.20 adaptation); `None` only
/// when the variable names a directory that does not exist.
pub fn reference_mesh_crds_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FLEDGE_MESH_CRDS") {
        return Some(PathBuf::from(dir)).filter(|d| d.is_dir());
    }
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/upstream")).filter(|d| d.is_dir())
}

/// Installs the mesh CRDs routers write (Istio VirtualService/DestinationRule, SMI
/// TrafficSplit, Gateway API HTTPRoute and friends, Contour HTTPProxy, Traefik TraefikService
/// and IngressRoute in both API groups, Gloo RouteTable and Upstream, APISIX ApisixRoute): the
/// upstream schemas when
/// [`reference_mesh_crds_dir`] finds them, the minimal fallback otherwise.
///
/// # Errors
/// As [`install_fledge_crds`]; [`Error::Io`] when a reference file cannot be read.
pub async fn install_mesh_crds(client: &kube::Client) -> Result<MeshCrdSource> {
    if let Some(dir) = reference_mesh_crds_dir() {
        install_mesh_crds_from(client, &dir).await?;
        Ok(MeshCrdSource::Reference(dir))
    } else {
        install_fallback_mesh_crds(client).await?;
        Ok(MeshCrdSource::Fallback)
    }
}

/// Installs the testkit's own minimal mesh CRDs (what machines without the upstream schemas
/// get): VirtualService and DestinationRule (v1beta1, v1alpha3, v1), TrafficSplit (v1alpha1–3),
/// HTTPRoute (v1, v1beta1), HTTPProxy, TraefikService and IngressRoute (`traefik.io` and
/// `traefik.containo.us`), RouteTable and Upstream, and ApisixRoute (v2), accepting any spec.
///
/// # Errors
/// As [`install_fledge_crds`].
pub async fn install_fallback_mesh_crds(client: &kube::Client) -> Result<Vec<String>> {
    install_crd_yaml(
        client,
        FALLBACK_MESH_CRDS,
        "fledge-testkit crds/mesh-fallback.yaml",
    )
    .await
}

/// Installs the upstream mesh CRDs from `dir` (the files present there).
///
/// # Errors
/// As [`install_mesh_crds`].
pub async fn install_mesh_crds_from(client: &kube::Client, dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for file in REFERENCE_FILES {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        if file == SMI_FILE {
            // The SMI SDK's CRD serves only v1alpha3; Linkerd's SMI extension serves v1alpha1
            // and v1alpha2 as well, and Flagger's SMI routers write all three.
            text = text.replace("served: false", "served: true");
        }
        names.extend(install_crd_yaml(client, &text, &path.display().to_string()).await?);
    }
    Ok(names)
}

/// Installs the CRDs of a YAML stream and waits until they are Established.
///
/// # Errors
/// As [`install_fledge_crds`].
pub async fn install_crd_yaml(
    client: &kube::Client,
    yaml: &str,
    origin: &str,
) -> Result<Vec<String>> {
    let applied = manifests::apply_yaml(client, yaml, origin, "default").await?;
    let names: Vec<String> = applied
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    wait_established(client, &names).await?;
    Ok(names)
}

/// Waits until every named CRD has condition Established=True and discovery serves it.
///
/// # Errors
/// [`Error::NotReady`] naming the CRDs still pending after the timeout.
pub async fn wait_established(client: &kube::Client, names: &[String]) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let start = Instant::now();
    let mut pending: Vec<&String> = names.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for name in pending {
            let crd = api
                .get_opt(name)
                .await
                .map_err(|e| Error::kube(format!("get crd {name}"), e))?;
            let Some(crd) = crd else {
                still.push(name);
                continue;
            };
            let established = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            // Discovery catches up with Established a moment later; a client that resolves
            // the kind then (kubectl apply, say) would be told the CRD is not installed.
            if !established || !discovered(client, &crd).await {
                still.push(name);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if start.elapsed() > ESTABLISHED_TIMEOUT {
            return Err(Error::NotReady {
                what: format!("CRDs {pending:?}"),
                waited_ms: ESTABLISHED_TIMEOUT.as_millis(),
                detail: " (condition Established is not True, or discovery does not list them yet)"
                    .to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Whether discovery lists the CRD's resource in every served version.
async fn discovered(client: &kube::Client, crd: &CustomResourceDefinition) -> bool {
    let spec = &crd.spec;
    for version in spec.versions.iter().filter(|v| v.served) {
        let group_version = format!("{}/{}", spec.group, version.name);
        let listed = client
            .list_api_group_resources(&group_version)
            .await
            .is_ok_and(|list| list.resources.iter().any(|r| r.name == spec.names.plural));
        if !listed {
            return false;
        }
    }
    true
}
