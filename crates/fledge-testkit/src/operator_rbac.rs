//! The operator's identity on a [`LocalCluster`](crate::LocalCluster): the ServiceAccount of
//! `deploy/kustomize/base`, its shipped rights, and the audit log of what it asked for.
//!
//! Every operator a test runs (the controller in the test process or the binary) acts as that
//! ServiceAccount and nothing else, so the shipped ClusterRole and Role are exercised for real:
//!
//! - **Authentication**: the API server's static token file holds a token for the user
//!   `system:serviceaccount:<namespace>:<name>` with the groups a ServiceAccount token carries
//!   (no token controller runs here, so no real ServiceAccount token can be issued; to RBAC a
//!   token-file user of that name is the ServiceAccount).
//! - **Authorization**: [`install_operator_rbac`] applies exactly the shipped files
//!   (embedded at build time, in the base's namespace), and the API server runs with
//!   `--authorization-mode=RBAC` and the `OwnerReferencesPermissionEnforcement` admission
//!   plugin (as OpenShift does), which asks the authorizer about `canaries/finalizers`.
//! - **Audit**: the API server writes one JSON line per request of that user
//!   ([`operator_requests`] reads them back). When a cluster is dropped (and the test did
//!   not panic) with `FLEDGE_RBAC_USAGE_DIR` set, the requests are written there as one JSON
//!   file per cluster; `cargo xtask rbac --check <dir>` compares them with the shipped
//!   rules: a rule no request used, or a request that was forbidden, fails.
//!
//! [`install_operator_rbac`]: crate::LocalCluster::install_operator_rbac
//! [`operator_requests`]: crate::LocalCluster::operator_requests

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The environment variable naming the directory where each dropped cluster records the
/// operator's requests (`cargo xtask test` sets it to a fresh directory under `target/`).
pub const USAGE_DIR_ENV: &str = "FLEDGE_RBAC_USAGE_DIR";

/// The base's kustomization: its `namespace:` is where the namespaced objects go.
const KUSTOMIZATION: &str = include_str!("../../../deploy/kustomize/base/kustomization.yaml");

/// The shipped files that make up the operator's identity and rights, in apply order.
pub const SHIPPED_FILES: [(&str, &str); 4] = [
    (
        "deploy/kustomize/base/namespace.yaml",
        include_str!("../../../deploy/kustomize/base/namespace.yaml"),
    ),
    (
        "deploy/kustomize/base/account.yaml",
        include_str!("../../../deploy/kustomize/base/account.yaml"),
    ),
    (
        "deploy/kustomize/base/rbac.yaml",
        include_str!("../../../deploy/kustomize/base/rbac.yaml"),
    ),
    (
        "deploy/kustomize/base/leader-election-rbac.yaml",
        include_str!("../../../deploy/kustomize/base/leader-election-rbac.yaml"),
    ),
];

/// The audit policy: metadata of every request by the operator's user, nothing else. The
/// `RequestReceived` stage is left out: a finished request's line carries its response code.
fn audit_policy(user: &str) -> String {
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [\"RequestReceived\"]\nrules:\n  - level: Metadata\n    users: [\"{user}\"]\n  - level: None\n"
    )
}

/// Who the operator is: the ServiceAccount of `deploy/kustomize/base/account.yaml` in the
/// base's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// The base's namespace (`fledge-system`).
    pub namespace: String,
    /// The ServiceAccount's name (`fledge`).
    pub service_account: String,
}

impl OperatorIdentity {
    /// Reads the shipped base.
    ///
    /// # Errors
    /// [`Error::Manifest`] when the kustomization has no `namespace:` or account.yaml holds
    /// no ServiceAccount.
    pub fn shipped() -> Result<Self> {
        let manifest_error = |origin: &str, reason: String| Error::Manifest {
            origin: origin.to_owned(),
            reason,
        };
        let kustomization: serde_json::Value =
            fledge_api::yaml::from_str(KUSTOMIZATION).map_err(|e| {
                manifest_error("deploy/kustomize/base/kustomization.yaml", e.to_string())
            })?;
        let namespace = kustomization["namespace"]
            .as_str()
            .ok_or_else(|| {
                manifest_error(
                    "deploy/kustomize/base/kustomization.yaml",
                    "no `namespace:`; the operator's objects need one namespace".to_owned(),
                )
            })?
            .to_owned();
        let (origin, account) = SHIPPED_FILES[1];
        let documents = fledge_api::yaml::documents(account)
            .map_err(|e| manifest_error(origin, e.to_string()))?;
        let service_account = documents
            .iter()
            .find(|d| d["kind"] == "ServiceAccount")
            .and_then(|d| d["metadata"]["name"].as_str())
            .ok_or_else(|| manifest_error(origin, "no ServiceAccount with a name".to_owned()))?
            .to_owned();
        Ok(Self {
            namespace,
            service_account,
        })
    }

    /// The user name the API server gives the ServiceAccount
    /// (`system:serviceaccount:fledge-system:fledge`).
    pub fn user(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }

    /// The groups every ServiceAccount token carries.
    pub fn groups(&self) -> [String; 3] {
        [
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".to_owned(),
        ]
    }

    /// The static token file's line for this identity (`token,user,uid,"groups"`).
    pub(crate) fn token_file_line(&self, token: &str) -> String {
        format!(
            "{token},{},{},\"{}\"\n",
            self.user(),
            self.user(),
            self.groups().join(",")
        )
    }

    /// Writes the audit policy for this identity to `path`.
    pub(crate) fn write_audit_policy(&self, path: &Path) -> Result<()> {
        std::fs::write(path, audit_policy(&self.user()))
            .map_err(|e| Error::io("write the audit policy", path, e))
    }

    /// The shipped files with every namespaced object and every ServiceAccount subject put in
    /// the base's namespace, as kustomize's `namespace:` does.
    ///
    /// # Errors
    /// [`Error::Manifest`] when a file is not YAML.
    pub fn shipped_objects(&self) -> Result<Vec<(&'static str, serde_json::Value)>> {
        let mut objects = Vec::new();
        for (origin, text) in SHIPPED_FILES {
            let documents = fledge_api::yaml::documents(text).map_err(|e| Error::Manifest {
                origin: origin.to_owned(),
                reason: e.to_string(),
            })?;
            for mut document in documents.into_iter().filter(|d| !d.is_null()) {
                let cluster_scoped = matches!(
                    document["kind"].as_str(),
                    Some("Namespace" | "ClusterRole" | "ClusterRoleBinding")
                );
                if !cluster_scoped {
                    document["metadata"]["namespace"] = self.namespace.clone().into();
                }
                if let Some(subjects) = document
                    .get_mut("subjects")
                    .and_then(serde_json::Value::as_array_mut)
                {
                    for subject in subjects
                        .iter_mut()
                        .filter(|s| s["kind"] == "ServiceAccount")
                    {
                        subject["namespace"] = self.namespace.clone().into();
                    }
                }
                objects.push((origin, document));
            }
        }
        Ok(objects)
    }
}

/// One request of the operator's user, as the API server's audit log saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorRequest {
    /// The authorization verb: get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// The API group (`""` for the core group).
    pub api_group: String,
    /// The resource (`deployments`); empty for a non-resource URL such as `/version`.
    pub resource: String,
    /// The subresource (`status`, `finalizers`), empty when none.
    pub subresource: String,
    /// The namespace, empty for cluster-wide requests.
    pub namespace: String,
    /// The object's name, empty for lists, watches and creates.
    pub name: String,
    /// The response code. (A watch is audited when it ends; one still open may not show.)
    pub code: u16,
    /// The request URI.
    pub uri: String,
}

impl OperatorRequest {
    /// Whether RBAC (or an admission plugin asking it) refused the request.
    pub fn is_forbidden(&self) -> bool {
        self.code == 403
    }
}

impl std::fmt::Display for OperatorRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resource = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {group} {resource}", self.verb)?;
        if !self.namespace.is_empty() {
            write!(f, " in {}", self.namespace)?;
        }
        if !self.name.is_empty() {
            write!(f, " named {}", self.name)?;
        }
        write!(f, " -> {} ({})", self.code, self.uri)
    }
}

/// The operator's requests in the audit log at `path`, one per request (a request logged at
/// `ResponseStarted` and again at `ResponseComplete` counts once, with its final code), in
/// the order they were made. A missing log means no request yet.
///
/// # Errors
/// [`Error::Io`] when the log cannot be read, [`Error::Manifest`] for a line that is not an
/// audit event.
pub fn read_audit_log(path: &Path) -> Result<Vec<OperatorRequest>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read the audit log", path, e)),
    };
    let mut order: Vec<String> = Vec::new();
    let mut by_id: std::collections::HashMap<String, OperatorRequest> =
        std::collections::HashMap::new();
    // The API server may be writing the last line as it is read: only whole lines count.
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    for line in whole.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::Manifest {
            origin: path.display().to_string(),
            reason: format!("an audit line is not JSON ({e}): {line}"),
        })?;
        let text_of = |pointer: &str| {
            event
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let code = event
            .pointer("/responseStatus/code")
            .and_then(serde_json::Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0);
        let request = OperatorRequest {
            verb: text_of("/verb"),
            api_group: text_of("/objectRef/apiGroup"),
            resource: text_of("/objectRef/resource"),
            subresource: text_of("/objectRef/subresource"),
            namespace: text_of("/objectRef/namespace"),
            name: text_of("/objectRef/name"),
            code,
            uri: text_of("/requestURI"),
        };
        let id = text_of("/auditID");
        if !by_id.contains_key(&id) {
            order.push(id.clone());
        }
        by_id.insert(id, request);
    }
    Ok(order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect())
}

/// One cluster's record in the usage directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The test that ran the cluster (the test thread's name), or the program's name.
    pub test: String,
    /// The operator's requests.
    pub requests: Vec<OperatorRequest>,
}

/// Writes `requests` for `test` into `dir` as `<file_stem>.json`.
///
/// # Errors
/// [`Error::Io`] when the directory or file cannot be written.
pub fn write_usage(
    dir: &Path,
    file_stem: &str,
    test: &str,
    requests: Vec<OperatorRequest>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create the usage directory", dir, e))?;
    let record = UsageRecord {
        test: test.to_owned(),
        requests,
    };
    let path = dir.join(format!("{file_stem}.json"));
    let json = serde_json::to_string(&record).map_err(|e| Error::Manifest {
        origin: path.display().to_string(),
        reason: e.to_string(),
    })?;
    std::fs::write(&path, json).map_err(|e| Error::io("write the usage record", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_identity_is_the_base_service_account() {
        let identity = OperatorIdentity::shipped().expect("the base reads");
        assert_eq!(
            identity.user(),
            "system:serviceaccount:fledge-system:fledge"
        );
        assert_eq!(
            identity.token_file_line("t0k"),
            "t0k,system:serviceaccount:fledge-system:fledge,system:serviceaccount:fledge-system:fledge,\"system:serviceaccounts,system:serviceaccounts:fledge-system,system:authenticated\"\n"
        );
    }

    #[test]
    fn shipped_objects_are_put_in_the_base_namespace() {
        let identity = OperatorIdentity {
            namespace: "elsewhere".to_owned(),
            service_account: "fledge".to_owned(),
        };
        let objects = identity.shipped_objects().expect("the files read");
        let binding = objects
            .iter()
            .find(|(_, o)| o["kind"] == "ClusterRoleBinding")
            .expect("a ClusterRoleBinding");
        assert_eq!(binding.1["subjects"][0]["namespace"], "elsewhere");
        let role = objects
            .iter()
            .find(|(_, o)| o["kind"] == "Role")
            .expect("a Role");
        assert_eq!(role.1["metadata"]["namespace"], "elsewhere");
        let cluster_role = objects
            .iter()
            .find(|(_, o)| o["kind"] == "ClusterRole")
            .expect("a ClusterRole");
        assert!(cluster_role.1["metadata"].get("namespace").is_none());
        assert!(cluster_role.1.get("subjects").is_none(), "nothing added");
    }

    #[test]
    fn an_audit_log_gives_one_request_per_audit_id_with_its_last_code() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("audit.log");
        let lines = [
            r#"{"auditID":"a","stage":"ResponseStarted","verb":"watch","requestURI":"/apis/apps/v1/deployments?watch=1","objectRef":{"resource":"deployments","apiGroup":"apps"},"responseStatus":{"code":200}}"#,
            r#"{"auditID":"b","stage":"ResponseComplete","verb":"get","requestURI":"/apis/coordination.k8s.io/v1/namespaces/x/leases/l","objectRef":{"resource":"leases","apiGroup":"coordination.k8s.io","namespace":"x","name":"l"},"responseStatus":{"code":403}}"#,
            r#"{"auditID":"a","stage":"ResponseComplete","verb":"watch","requestURI":"/apis/apps/v1/deployments?watch=1","objectRef":{"resource":"deployments","apiGroup":"apps"},"responseStatus":{"code":200}}"#,
            r#"{"auditID":"c","stage":"ResponseComplete","verb":"get","requestURI":"/version","responseStatus":{"code":200}}"#,
            r#"{"auditID":"d","stage":"ResponseCompl"#,
        ];
        std::fs::write(&path, lines.join("\n")).expect("the log is written");
        let requests = read_audit_log(&path).expect("the log reads");
        assert_eq!(requests.len(), 3, "{requests:#?}");
        assert_eq!(requests[0].verb, "watch");
        assert_eq!(requests[0].api_group, "apps");
        assert!(requests[1].is_forbidden());
        assert_eq!(
            requests[1].to_string(),
            "get coordination.k8s.io leases in x named l -> 403 (/apis/coordination.k8s.io/v1/namespaces/x/leases/l)"
        );
        assert_eq!(requests[2].resource, "");
        assert!(
            read_audit_log(&dir.path().join("none"))
                .expect("no log")
                .is_empty()
        );
    }
}
