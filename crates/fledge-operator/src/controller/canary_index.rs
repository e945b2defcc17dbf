//! Which canaries a change to another object concerns, answered from an index kept up to
//! date from the Canary watch: a lookup by namespace and name instead of a scan of every
//! Canary, so a Deployment's status change costs the same with 10 canaries as with 10,000.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use fledge_api::Canary;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::controller::lazy_caches::{AUTOSCALER_KIND, Touched};
use crate::workload::labels::PRIMARY_SUFFIX;
use crate::workload::service_target::CANARY_SUFFIX;

/// `(namespace, name)` of an object a canary depends on.
type Key = (String, String);

/// The canaries by what they depend on.
#[derive(Debug, Default)]
pub struct CanaryIndex {
    inner: RwLock<Index>,
}

#[derive(Debug, Default)]
struct Index {
    /// Live entries.
    current: Entries,
    /// Entries of a relist under way, swapped in at its end.
    relisting: Option<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// By target name (a workload, its `-primary`; a Service target and its copies).
    by_target: HashMap<Key, HashSet<ObjectRef<Canary>>>,
    /// By apex, primary and canary Service name.
    by_service: HashMap<Key, HashSet<ObjectRef<Canary>>>,
    /// By autoscaler name (`autoscalerRef.name`).
    by_autoscaler: HashMap<Key, HashSet<ObjectRef<Canary>>>,
    /// By namespace.
    by_namespace: HashMap<String, HashSet<ObjectRef<Canary>>>,
    /// What each canary was filed under, to unfile it when it changes or goes.
    filed: HashMap<ObjectRef<Canary>, Filed>,
}

/// The keys one canary is filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filed {
    namespace: String,
    target: String,
    services: [String; 3],
    autoscaler: Option<String>,
}

impl Filed {
    fn of(canary: &Canary) -> Option<Self> {
        let namespace = canary.metadata.namespace.clone()?;
        let names = canary.spec.service_names();
        Some(Self {
            namespace,
            target: canary.spec.target_ref.name.clone(),
            services: [names.apex, names.primary, names.canary],
            autoscaler: canary.spec.autoscaler_ref.as_ref().map(|r| r.name.clone()),
        })
    }
}

impl Entries {
    fn insert(&mut self, canary: &Canary) {
        let key = ObjectRef::from_obj(canary);
        let _ = self.remove(&key);
        let Some(filed) = Filed::of(canary) else {
            return;
        };
        let ns = &filed.namespace;
        file(&mut self.by_target, ns, &filed.target, &key);
        for service in &filed.services {
            file(&mut self.by_service, ns, service, &key);
        }
        if let Some(autoscaler) = &filed.autoscaler {
            file(&mut self.by_autoscaler, ns, autoscaler, &key);
        }
        self.by_namespace
            .entry(ns.clone())
            .or_default()
            .insert(key.clone());
        self.filed.insert(key, filed);
    }

    fn remove(&mut self, key: &ObjectRef<Canary>) -> Option<Filed> {
        let filed = self.filed.remove(key)?;
        let ns = &filed.namespace;
        unfile(&mut self.by_target, ns, &filed.target, key);
        for service in &filed.services {
            unfile(&mut self.by_service, ns, service, key);
        }
        if let Some(autoscaler) = &filed.autoscaler {
            unfile(&mut self.by_autoscaler, ns, autoscaler, key);
        }
        if let Some(set) = self.by_namespace.get_mut(ns) {
            set.remove(key);
            if set.is_empty() {
                self.by_namespace.remove(ns);
            }
        }
        Some(filed)
    }
}

/// A canary the index no longer holds: deleted, or missing from a relist (deleted while
/// the watch was down). What the operator kept for it is forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoneCanary {
    /// The Canary.
    pub canary: ObjectRef<Canary>,
    /// Its namespace.
    pub namespace: String,
    /// Its target's name (`spec.targetRef.name`), which labels its metrics.
    pub target: String,
}

fn file(
    map: &mut HashMap<Key, HashSet<ObjectRef<Canary>>>,
    namespace: &str,
    name: &str,
    canary: &ObjectRef<Canary>,
) {
    map.entry((namespace.to_owned(), name.to_owned()))
        .or_default()
        .insert(canary.clone());
}

fn unfile(
    map: &mut HashMap<Key, HashSet<ObjectRef<Canary>>>,
    namespace: &str,
    name: &str,
    canary: &ObjectRef<Canary>,
) {
    let key = (namespace.to_owned(), name.to_owned());
    if let Some(set) = map.get_mut(&key) {
        set.remove(canary);
        if set.is_empty() {
            map.remove(&key);
        }
    }
}

impl CanaryIndex {
    /// Files the change a Canary watch event carries. A relist (`Init` … `InitDone`) builds a
    /// fresh index and swaps it in whole, so canaries deleted while the watch was down go.
    /// Returns the canaries that went (deleted, or missing from a relist).
    pub fn apply(&self, event: &watcher::Event<Canary>) -> Vec<GoneCanary> {
        let Ok(mut index) = self.inner.write() else {
            return Vec::new();
        };
        match event {
            watcher::Event::Apply(canary) => index.current.insert(canary),
            watcher::Event::Delete(canary) => {
                let key = ObjectRef::from_obj(canary);
                let filed = index.current.remove(&key);
                return filed
                    .map(|filed| GoneCanary {
                        canary: key,
                        namespace: filed.namespace,
                        target: filed.target,
                    })
                    .into_iter()
                    .collect();
            }
            watcher::Event::Init => index.relisting = Some(Entries::default()),
            watcher::Event::InitApply(canary) => {
                index
                    .relisting
                    .get_or_insert_with(Entries::default)
                    .insert(canary);
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = index.relisting.take() {
                    let old = std::mem::replace(&mut index.current, fresh);
                    return old
                        .filed
                        .into_iter()
                        .filter(|(key, _)| !index.current.filed.contains_key(key))
                        .map(|(canary, filed)| GoneCanary {
                            canary,
                            namespace: filed.namespace,
                            target: filed.target,
                        })
                        .collect();
                }
            }
        }
        Vec::new()
    }

    /// How many canaries the index holds.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .map_or(0, |index| index.current.filed.len())
    }

    /// Whether the index holds no canary.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The canaries whose target (or its primary) is the workload `namespace/name`.
    pub fn of_workload(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Canary>> {
        let target = name.strip_suffix(PRIMARY_SUFFIX).unwrap_or(name);
        self.lookup(|e| &e.by_target, namespace, target)
    }

    /// The canaries a change to the Service `namespace/name` concerns: those targeting it
    /// (or whose target's `-primary`/`-canary` copy it is) and those whose apex, primary or
    /// canary Service it is.
    pub fn of_service(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Canary>> {
        let target = name
            .strip_suffix(PRIMARY_SUFFIX)
            .or_else(|| name.strip_suffix(CANARY_SUFFIX))
            .unwrap_or(name);
        let mut found = self.lookup(|e| &e.by_target, namespace, target);
        for canary in self.lookup(|e| &e.by_service, namespace, name) {
            if !found.contains(&canary) {
                found.push(canary);
            }
        }
        found
    }

    /// The canaries whose apex Service is named like the routing object `namespace/name`.
    pub fn of_routing_object(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Canary>> {
        self.lookup(|e| &e.by_service, namespace, name)
    }

    /// The canaries whose autoscaler (or its `-primary` copy) is `namespace/name`.
    pub fn of_autoscaler(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Canary>> {
        let autoscaler = name.strip_suffix(PRIMARY_SUFFIX).unwrap_or(name);
        self.lookup(|e| &e.by_autoscaler, namespace, autoscaler)
    }

    /// The canaries a change in a lazy cache concerns: for an HPA, those scaled by it (or
    /// whose primary HPA it is); for a routing object, those whose apex it is named after.
    pub fn of_touched(&self, touched: &Touched) -> Vec<ObjectRef<Canary>> {
        if touched.kind == AUTOSCALER_KIND {
            self.of_autoscaler(&touched.namespace, &touched.name)
        } else {
            self.of_routing_object(&touched.namespace, &touched.name)
        }
    }

    /// The canaries in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<ObjectRef<Canary>> {
        self.inner
            .read()
            .ok()
            .and_then(|index| {
                index
                    .current
                    .by_namespace
                    .get(namespace)
                    .map(|set| set.iter().cloned().collect())
            })
            .unwrap_or_default()
    }

    fn lookup(
        &self,
        map: impl Fn(&Entries) -> &HashMap<Key, HashSet<ObjectRef<Canary>>>,
        namespace: &str,
        name: &str,
    ) -> Vec<ObjectRef<Canary>> {
        let Ok(index) = self.inner.read() else {
            return Vec::new();
        };
        map(&index.current)
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(namespace: &str, name: &str, target: &str, extra: &str) -> Canary {
        fledge_api::yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: {name}, namespace: {namespace} }}\nspec:\n  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: {target} }}\n  service: {{ port: 9898{extra} }}\n  analysis: {{ interval: 1m, threshold: 5, iterations: 5 }}\n"
        ))
        .expect("a Canary")
    }

    fn names(found: &[ObjectRef<Canary>]) -> Vec<String> {
        found.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn a_workload_and_its_primary_lead_to_the_canaries_targeting_it() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(canary(
            "test", "podinfo", "podinfo", "",
        )));
        index.apply(&watcher::Event::Apply(canary(
            "test", "other", "backend", "",
        )));
        index.apply(&watcher::Event::Apply(canary(
            "prod", "podinfo", "podinfo", "",
        )));
        assert_eq!(names(&index.of_workload("test", "podinfo")), ["podinfo"]);
        assert_eq!(
            names(&index.of_workload("test", "podinfo-primary")),
            ["podinfo"]
        );
        assert!(index.of_workload("test", "frontend").is_empty());
        assert_eq!(index.of_workload("prod", "podinfo").len(), 1);
        assert_eq!(index.in_namespace("test").len(), 2);
    }

    #[test]
    fn a_changed_target_or_a_deleted_canary_is_unfiled() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(canary(
            "test", "podinfo", "podinfo", "",
        )));
        index.apply(&watcher::Event::Apply(canary(
            "test",
            "podinfo",
            "podinfo-v2",
            "",
        )));
        assert!(index.of_workload("test", "podinfo").is_empty());
        assert_eq!(index.of_workload("test", "podinfo-v2").len(), 1);
        let gone = index.apply(&watcher::Event::Delete(canary(
            "test",
            "podinfo",
            "podinfo-v2",
            "",
        )));
        assert_eq!(
            gone,
            [GoneCanary {
                canary: ObjectRef::new("podinfo").within("test"),
                namespace: "test".to_owned(),
                target: "podinfo-v2".to_owned(),
            }]
        );
        assert!(index.is_empty());
        assert!(index.of_workload("test", "podinfo-v2").is_empty());
        assert!(index.in_namespace("test").is_empty());
    }

    #[test]
    fn services_lead_to_the_canaries_that_route_through_them() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(canary(
            "test",
            "podinfo",
            "podinfo",
            ", name: frontend",
        )));
        for service in ["frontend", "frontend-primary", "frontend-canary", "podinfo"] {
            assert_eq!(
                names(&index.of_service("test", service)),
                ["podinfo"],
                "{service}"
            );
        }
        assert_eq!(
            names(&index.of_routing_object("test", "frontend")),
            ["podinfo"]
        );
        assert!(index.of_service("test", "backend").is_empty());
    }

    #[test]
    fn an_autoscaler_and_its_primary_lead_to_the_canary_scaled_by_it() {
        let index = CanaryIndex::default();
        let mut scaled = canary("test", "podinfo", "podinfo", "");
        scaled.spec.autoscaler_ref = fledge_api::yaml::from_str(
            "{ apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: podinfo-hpa }",
        )
        .expect("a reference");
        index.apply(&watcher::Event::Apply(scaled));
        for hpa in ["podinfo-hpa", "podinfo-hpa-primary"] {
            assert_eq!(names(&index.of_autoscaler("test", hpa)), ["podinfo"]);
        }
        assert!(index.of_autoscaler("test", "podinfo").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_whole() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(canary("test", "gone", "gone", "")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(canary(
            "test", "podinfo", "podinfo", "",
        )));
        assert_eq!(
            index.of_workload("test", "gone").len(),
            1,
            "the old index serves until the relist is complete"
        );
        let gone = index.apply(&watcher::Event::InitDone);
        assert_eq!(
            gone.iter()
                .map(|g| g.canary.name.as_str())
                .collect::<Vec<_>>(),
            ["gone"],
            "a canary deleted while the watch was down is forgotten"
        );
        assert!(index.of_workload("test", "gone").is_empty());
        assert_eq!(index.of_workload("test", "podinfo").len(), 1);
    }
}
