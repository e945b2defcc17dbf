//! NGINX ingress: the canary Ingress `<ingress>-canary`, a clone of `spec.ingressRef` whose
//! paths lead to `<apex>-canary`, marked `<prefix>/canary: "true"` so that ingress-nginx sends
//! it `<prefix>/canary-weight` percent of the traffic of the user's Ingress — or, in A/B
//! testing, the requests `<prefix>/canary-by-header` (`-value`, `-pattern`) and
//! `<prefix>/canary-by-cookie` select. The user's Ingress keeps routing the rest to the apex
//! Service, which selects the primary. As Flagger's `IngressRouter`.

use std::collections::BTreeMap;

use fledge_api::Canary;
use fledge_api::validation::{JsonPath, nginx_match_problems};
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use crate::capabilities::Capabilities;
use crate::cloned::{ClonedRenderer, SourceRef, cloned_metadata};
use crate::error::{Error, Result};
use crate::ingress::{
    backend_service, canary_ingress_name, for_each_rule_paths, ingress_resource, ingress_source,
    no_apex_backend, routes_to, set_backend_service,
};
use crate::metadata::{CanaryIdentity, generated_metadata};
use crate::object::TrafficObject;
use crate::routes::Routes;

const PROVIDER: &str = "nginx";

/// Renders the NGINX canary Ingress, with the annotation prefix of `-ingress-annotations-prefix`.
#[derive(Clone, Debug)]
pub struct Nginx {
    prefix: String,
}

impl Nginx {
    /// A renderer writing `<prefix>/canary*` annotations (`nginx.ingress.kubernetes.io` by
    /// default, see [`RouterOptions`](crate::RouterOptions)).
    pub fn new(annotations_prefix: impl Into<String>) -> Self {
        Self {
            prefix: annotations_prefix.into(),
        }
    }

    /// `<prefix>/<suffix>`.
    fn key(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.prefix)
    }

    /// Whether Fledge writes the annotation `key` (every `<prefix>/canary*`).
    fn is_canary_annotation(&self, key: &str) -> bool {
        key.contains(&self.key("canary"))
    }

    /// The `<prefix>/canary*` annotations for `routes`, as Flagger's `SetRoutes` leaves them:
    /// `canary: "true"` always; the weight for a canary release; for A/B testing the header
    /// and cookie selectors while the canary gets the traffic (weight "0" beside them), none at
    /// rest.
    fn canary_annotations(&self, canary: &Canary, routes: Routes) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::from([(self.key("canary"), "true".to_owned())]);
        let matches = canary
            .analysis()
            .map(|a| a.match_.as_slice())
            .unwrap_or_default();
        if matches.is_empty() {
            annotations.insert(self.key("canary-weight"), routes.canary.to_string());
            return annotations;
        }
        annotations.insert(self.key("canary-weight"), "0".to_owned());
        if routes.canary == 0 {
            return annotations;
        }
        for condition in matches {
            for (name, value) in &condition.headers {
                if name.eq_ignore_ascii_case("cookie") {
                    if let Some(cookie) = &value.exact {
                        annotations.insert(self.key("canary-by-cookie"), cookie.clone());
                    }
                    continue;
                }
                annotations.insert(self.key("canary-by-header"), name.clone());
                if let Some(exact) = &value.exact {
                    annotations.insert(self.key("canary-by-header-value"), exact.clone());
                }
                if let Some(regex) = &value.regex {
                    annotations.insert(self.key("canary-by-header-pattern"), regex.clone());
                }
            }
        }
        annotations
    }

    fn missing_routes(canary: &Canary, routing: &DynamicObject) -> Error {
        let names = canary.spec.service_names();
        Error::missing_routes("Ingress", routing, names.primary, names.canary)
    }
}

impl Default for Nginx {
    fn default() -> Self {
        Self::new(crate::RouterOptions::DEFAULT_INGRESS_ANNOTATIONS_PREFIX)
    }
}

impl ClonedRenderer for Nginx {
    fn routing_resource(&self) -> ApiResource {
        ingress_resource()
    }

    fn routing_name(&self, canary: &Canary) -> String {
        canary_ingress_name(canary)
    }

    fn source(&self, canary: &Canary) -> Result<SourceRef> {
        ingress_source(canary, PROVIDER)
    }

    fn check(&self, canary: &Canary) -> Result<()> {
        Capabilities {
            provider: PROVIDER,
            matching: true,
        }
        .check(canary)?;
        let matches = canary
            .analysis()
            .map(|a| a.match_.as_slice())
            .unwrap_or_default();
        let path = JsonPath::root()
            .field("spec")
            .field("analysis")
            .field("match");
        match nginx_match_problems(matches, &path).into_iter().next() {
            Some(problem) => Err(Error::spec(problem.path, problem.message)),
            None => Ok(()),
        }
    }

    fn render(
        &self,
        canary: &Canary,
        routes: Routes,
        source: &DynamicObject,
    ) -> Result<TrafficObject> {
        self.check(canary)?;
        let identity = CanaryIdentity::of(canary)?;
        let names = canary.spec.service_names();
        let mut spec = source.data["spec"].clone();
        let mut switched = false;
        for_each_rule_paths(&mut spec, |paths| {
            for path in paths.iter_mut() {
                if backend_service(path) == Some(names.apex.as_str()) {
                    set_backend_service(path, &names.canary);
                    switched = true;
                }
            }
        });
        if !switched {
            return Err(no_apex_backend(PROVIDER, source, &names.apex));
        }
        let (labels, mut annotations) = cloned_metadata(source);
        annotations.retain(|key, _| !self.is_canary_annotation(key));
        annotations.extend(generated_metadata(None).1);
        annotations.extend(self.canary_annotations(canary, routes));
        let mut routing = TrafficObject::new(
            ingress_resource(),
            &identity.namespace,
            &self.routing_name(canary),
            json!({ "spec": spec }),
        );
        routing.object.metadata.labels = Some(labels).filter(|l| !l.is_empty());
        routing.object.metadata.annotations = Some(annotations);
        Ok(routing)
    }

    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        let names = canary.spec.service_names();
        if !routes_to(routing, &names.canary) {
            return Err(Self::missing_routes(canary, routing));
        }
        let annotations = routing.metadata.annotations.clone().unwrap_or_default();
        let ab_testing = canary.analysis().is_some_and(|a| !a.match_.is_empty());
        if ab_testing
            && (annotations.contains_key(&self.key("canary-by-cookie"))
                || annotations.contains_key(&self.key("canary-by-header")))
        {
            return Ok(Routes::weighted(0, 100));
        }
        let weight = match annotations.get(&self.key("canary-weight")) {
            None => 0,
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|w| *w <= 100)
                .ok_or_else(|| Self::missing_routes(canary, routing))?,
        };
        Ok(Routes::weighted(100 - weight, weight))
    }

    fn holds_canary_fields(
        &self,
        canary: &Canary,
        routing: &DynamicObject,
        routes: Routes,
    ) -> bool {
        let held: BTreeMap<String, String> = routing
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(key, _)| self.is_canary_annotation(key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        held == self.canary_annotations(canary, routes)
    }
}
