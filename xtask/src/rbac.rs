//! `cargo xtask rbac --check <dir>`: the shipped RBAC against what the operator asked for.
//!
//! Every test cluster and the demo record the requests of the operator's ServiceAccount
//! (from the API server's audit log) into the directory `FLEDGE_RBAC_USAGE_DIR` names, one
//! JSON file per cluster (`fledge_testkit::operator_rbac`). This check reads the shipped
//! ClusterRole `fledge` and Role `fledge-leader-election` (`deploy/kustomize/base`), expands
//! each rule into (apiGroup, resource, verb) grants, matches every recorded request to the
//! grants that allow it, and fails naming
//!
//! - each grant no request used (least privilege: a right nobody uses is removed, or a test
//!   that uses it is added), except the few on [`NOT_REQUESTED`], which the API server checks
//!   without a request of the operator's own;
//! - each request RBAC refused (403), with the test that made it.
//!
//! `cargo xtask test` runs it after the integration tests and the demo, with a fresh
//! directory under `target/`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use fledge_testkit::operator_rbac::{
    OperatorIdentity, OperatorRequest, SHIPPED_FILES, UsageRecord,
};

/// Grants the API server checks on the operator's behalf without a request of its own, so
/// no audit line can show them; each with why, and the test that proves it is needed.
pub const NOT_REQUESTED: &[NotRequested] = &[NotRequested {
    api_group: "flagger.app",
    resource: "canaries/finalizers",
    verb: "update",
    why: "the OwnerReferencesPermissionEnforcement admission plugin (OpenShift; on in the \
          testkit) asks the authorizer for it when the operator creates an object whose \
          ownerReference to its Canary has blockOwnerDeletion",
    proven_by: "cargo test -p fledge-operator --test rbac_on_api_server \
                the_primary_needs_update_on_canary_finalizers_where_owner_references_are_enforced",
}];

/// A grant exempt from the unused check.
pub struct NotRequested {
    /// The API group.
    pub api_group: &'static str,
    /// The resource, `resource/subresource` for a subresource.
    pub resource: &'static str,
    /// The verb.
    pub verb: &'static str,
    /// Why no request shows it.
    pub why: &'static str,
    /// The test that fails without it.
    pub proven_by: &'static str,
}

/// One (apiGroup, resource, verb) of a shipped rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    /// `ClusterRole fledge` or `Role fledge-system/fledge-leader-election`.
    role: String,
    /// The Role's namespace; `None` for the ClusterRole (every namespace).
    namespace: Option<String>,
    api_group: String,
    resource: String,
    verb: String,
    /// The rule's resourceNames (empty: any name).
    names: Vec<String>,
}

impl Grant {
    fn allows(&self, request: &OperatorRequest, verb: &str) -> bool {
        let resource = if request.subresource.is_empty() {
            request.resource.clone()
        } else {
            format!("{}/{}", request.resource, request.subresource)
        };
        (self.api_group == "*" || self.api_group == request.api_group)
            && (self.resource == "*" || self.resource == resource)
            && (self.verb == "*" || self.verb == verb)
            && (self.names.is_empty() || self.names.contains(&request.name))
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == request.namespace)
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.api_group.is_empty() {
            "\"\""
        } else {
            &self.api_group
        };
        write!(f, "({group}, {}, {})", self.resource, self.verb)?;
        if !self.names.is_empty() {
            write!(f, " named {}", self.names.join(","))?;
        }
        write!(f, " of {}", self.role)
    }
}

/// The grants of the shipped ClusterRoles and Roles, in the base's namespace.
fn shipped_grants() -> Result<Vec<Grant>> {
    let identity = OperatorIdentity::shipped()?;
    let mut grants = Vec::new();
    for (origin, object) in identity.shipped_objects()? {
        let kind = object["kind"].as_str().unwrap_or_default();
        if kind != "ClusterRole" && kind != "Role" {
            continue;
        }
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = (kind == "Role").then(|| identity.namespace.clone());
        let role = match &namespace {
            Some(ns) => format!("Role {ns}/{name}"),
            None => format!("ClusterRole {name}"),
        };
        let rules = object["rules"]
            .as_array()
            .with_context(|| format!("{origin}: {role} has no rules"))?;
        for (index, rule) in rules.iter().enumerate() {
            let list = |field: &str| -> Result<Vec<String>> {
                match &rule[field] {
                    serde_json::Value::Null => Ok(Vec::new()),
                    value => serde_json::from_value(value.clone()).with_context(|| {
                        format!("{origin}: {role} rules[{index}].{field}: a list of strings")
                    }),
                }
            };
            let names = list("resourceNames")?;
            for api_group in list("apiGroups")? {
                for resource in list("resources")? {
                    for verb in list("verbs")? {
                        grants.push(Grant {
                            role: role.clone(),
                            namespace: namespace.clone(),
                            api_group: api_group.clone(),
                            resource: resource.clone(),
                            verb,
                            names: names.clone(),
                        });
                    }
                }
            }
        }
    }
    if grants.is_empty() {
        bail!(
            "no ClusterRole or Role rules in {}",
            SHIPPED_FILES.map(|(origin, _)| origin).join(", ")
        );
    }
    Ok(grants)
}

/// The authorization verbs a request needed: its own, and `create` for a server-side apply
/// (a PATCH) that created the object (201), which RBAC checks as well.
fn verbs_of(request: &OperatorRequest) -> Vec<&str> {
    let mut verbs = vec![request.verb.as_str()];
    if request.verb == "patch" && request.code == 201 {
        verbs.push("create");
    }
    verbs
}

/// Every usage record in `dir`.
fn read_records(dir: &Path) -> Result<Vec<UsageRecord>> {
    let mut records = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("read {}", dir.display()))?
            .path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let record: UsageRecord = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a usage record", path.display()))?;
        records.push(record);
    }
    Ok(records)
}

/// What the records show about the shipped grants.
struct Report {
    /// Requests allowed per grant (in the order of the shipped rules).
    used: Vec<(Grant, usize)>,
    /// Requests RBAC refused, with their test.
    forbidden: Vec<(String, OperatorRequest)>,
    /// Allowed requests no shipped grant covers (the cluster's default roles, such as
    /// discovery), counted per description.
    elsewhere: BTreeMap<String, usize>,
    /// Clusters and requests read.
    clusters: usize,
    requests: usize,
}

fn report(grants: Vec<Grant>, records: &[UsageRecord]) -> Report {
    let mut used: Vec<(Grant, usize)> = grants.into_iter().map(|g| (g, 0)).collect();
    let mut forbidden = Vec::new();
    let mut elsewhere = BTreeMap::new();
    let mut requests = 0;
    for record in records {
        for request in &record.requests {
            requests += 1;
            if request.is_forbidden() {
                forbidden.push((record.test.clone(), request.clone()));
                continue;
            }
            for verb in verbs_of(request) {
                let mut covered = false;
                for (grant, count) in &mut used {
                    if grant.allows(request, verb) {
                        *count += 1;
                        covered = true;
                    }
                }
                if !covered && !request.resource.is_empty() {
                    let group = if request.api_group.is_empty() {
                        "core"
                    } else {
                        &request.api_group
                    };
                    let resource = if request.subresource.is_empty() {
                        request.resource.clone()
                    } else {
                        format!("{}/{}", request.resource, request.subresource)
                    };
                    *elsewhere
                        .entry(format!("{verb} {group} {resource}"))
                        .or_insert(0) += 1;
                }
            }
        }
    }
    Report {
        used,
        forbidden,
        elsewhere,
        clusters: records.len(),
        requests,
    }
}

fn exempt(grant: &Grant) -> Option<&'static NotRequested> {
    NOT_REQUESTED.iter().find(|n| {
        n.api_group == grant.api_group && n.resource == grant.resource && n.verb == grant.verb
    })
}

/// Checks the records in `dir`; prints requests per grant and fails on an unused grant or
/// a forbidden request.
///
/// # Errors
/// Naming each unused grant and each forbidden request (with its test).
pub fn check(dir: &Path) -> Result<()> {
    let records = read_records(dir)?;
    if records.is_empty() {
        bail!(
            "no usage records in {}: run the tests with {}={} first",
            dir.display(),
            fledge_testkit::operator_rbac::USAGE_DIR_ENV,
            dir.display()
        );
    }
    let report = report(shipped_grants()?, &records);
    println!(
        "{} requests of the operator's ServiceAccount from {} clusters",
        report.requests, report.clusters
    );
    let mut unused = Vec::new();
    for (grant, count) in &report.used {
        let note = match (count, exempt(grant)) {
            (0, Some(n)) => format!("not requested: {} (proven by {})", n.why, n.proven_by),
            (0, None) => {
                unused.push(grant.to_string());
                "UNUSED".to_owned()
            }
            _ => String::new(),
        };
        println!("  {count:>7}  {grant}  {note}");
    }
    for (what, count) in &report.elsewhere {
        println!("  {count:>7}  {what}  (allowed by the cluster's default roles, not shipped)");
    }
    let mut problems = Vec::new();
    if !unused.is_empty() {
        problems.push(format!(
            "{} shipped grant(s) no request used (remove them, or add a test that needs them):\n    {}",
            unused.len(),
            unused.join("\n    ")
        ));
    }
    if !report.forbidden.is_empty() {
        problems.push(format!(
            "{} request(s) the shipped RBAC refused:\n    {}",
            report.forbidden.len(),
            report
                .forbidden
                .iter()
                .map(|(test, request)| format!("{test}: {request}"))
                .collect::<Vec<_>>()
                .join("\n    ")
        ));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n  "));
    }
    println!("every shipped grant was used and no request was refused");
    Ok(())
}

/// Runs the command: `cargo xtask rbac --check <dir>`.
pub fn run(args: &[String]) -> Result<()> {
    match args {
        [flag, dir] if flag == "--check" => check(Path::new(dir)),
        _ => bail!("usage: cargo xtask rbac --check <usage dir>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        verb: &str,
        group: &str,
        resource: &str,
        ns: &str,
        name: &str,
        code: u16,
    ) -> OperatorRequest {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        OperatorRequest {
            verb: verb.to_owned(),
            api_group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
            code,
            uri: String::new(),
        }
    }

    fn count(report: &Report, group: &str, resource: &str, verb: &str) -> usize {
        report
            .used
            .iter()
            .filter(|(g, _)| g.api_group == group && g.resource == resource && g.verb == verb)
            .map(|(_, n)| n)
            .sum()
    }

    #[test]
    fn the_shipped_rules_expand_into_grants_with_the_roles_namespace() {
        let grants = shipped_grants().expect("the shipped rules read");
        let lease_update = grants
            .iter()
            .find(|g| g.resource == "leases" && g.verb == "update")
            .expect("the Role lets the operator renew its Lease");
        assert_eq!(lease_update.namespace.as_deref(), Some("fledge-system"));
        assert_eq!(lease_update.names, ["fledge-leader-election"]);
        assert!(grants.iter().any(|g| g.role == "ClusterRole fledge"
            && g.resource == "canaries/status"
            && g.verb == "patch"));
    }

    #[test]
    fn requests_count_for_the_grants_that_allow_them() {
        let records = [UsageRecord {
            test: "t".to_owned(),
            requests: vec![
                // A server-side apply that created the primary: patch and create.
                request(
                    "patch",
                    "apps",
                    "deployments",
                    "test",
                    "podinfo-primary",
                    201,
                ),
                request(
                    "patch",
                    "flagger.app",
                    "canaries/status",
                    "test",
                    "podinfo",
                    200,
                ),
                // The Lease in the Role's namespace counts, one elsewhere is refused.
                request(
                    "get",
                    "coordination.k8s.io",
                    "leases",
                    "fledge-system",
                    "fledge-leader-election",
                    200,
                ),
                request(
                    "get",
                    "coordination.k8s.io",
                    "leases",
                    "test",
                    "flagger-leader-election",
                    403,
                ),
                request("get", "", "", "", "", 200),
            ],
        }];
        let report = report(shipped_grants().expect("the rules"), &records);
        assert_eq!(count(&report, "apps", "deployments", "patch"), 1);
        assert_eq!(count(&report, "apps", "deployments", "create"), 1);
        assert_eq!(count(&report, "flagger.app", "canaries/status", "patch"), 1);
        assert_eq!(count(&report, "flagger.app", "canaries", "patch"), 0);
        assert_eq!(count(&report, "coordination.k8s.io", "leases", "get"), 1);
        assert_eq!(report.forbidden.len(), 1);
        assert_eq!(report.forbidden[0].0, "t");
        assert!(report.elsewhere.is_empty(), "{:?}", report.elsewhere);
        assert_eq!((report.clusters, report.requests), (1, 5));
    }

    #[test]
    fn the_check_names_unused_grants_and_forbidden_requests() {
        let dir = tempfile_dir();
        let requests = vec![request("list", "flagger.app", "canaries", "", "", 200)];
        fledge_testkit::operator_rbac::write_usage(&dir, "one", "a_test", requests.clone())
            .expect("a record");
        let mut refused = requests;
        refused.push(request(
            "delete",
            "apps",
            "deployments",
            "test",
            "podinfo",
            403,
        ));
        fledge_testkit::operator_rbac::write_usage(&dir, "two", "b_test", refused)
            .expect("a record");
        let error = check(&dir).expect_err("most grants are unused").to_string();
        assert!(
            error.contains("(flagger.app, canaries, watch) of ClusterRole fledge"),
            "{error}"
        );
        assert!(!error.contains("canaries, list"), "{error}");
        assert!(!error.contains("canaries/finalizers"), "exempt: {error}");
        assert!(
            error.contains("b_test: delete apps deployments in test named podinfo -> 403"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-rbac-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    }
}
