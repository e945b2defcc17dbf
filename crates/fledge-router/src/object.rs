//! A generated object together with the API resource it is written to.

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

/// One object a router renders: its resource (group, version, kind, plural) and its content.
#[derive(Clone, Debug)]
pub struct TrafficObject {
    /// Where the object is written.
    pub resource: ApiResource,
    /// The object as it will be applied (apiVersion, kind, metadata, spec).
    pub object: DynamicObject,
}

impl TrafficObject {
    /// A new object `name` in `namespace` with the given body (`spec` and friends).
    pub fn new(
        resource: ApiResource,
        namespace: &str,
        name: &str,
        body: serde_json::Value,
    ) -> Self {
        let object = DynamicObject::new(name, &resource)
            .within(namespace)
            .data(body);
        Self { resource, object }
    }

    /// Name of the object.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    /// Kind of the object.
    pub fn kind(&self) -> &str {
        &self.resource.kind
    }
}

/// The API resource of `kind` in `group/version`, with its plural.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}
