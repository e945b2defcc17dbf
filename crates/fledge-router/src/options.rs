//! Operator-wide settings some routers read: the ingress class and the NGINX annotation prefix
//! (Flagger's `-ingress-class` and `-ingress-annotations-prefix` flags).

/// Settings shared by every canary's router, from the operator's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterOptions {
    /// `-ingress-class`: written as `spec.ingressClassName` of Contour's HTTPProxy, as Flagger
    /// does; `None` writes none.
    pub ingress_class: Option<String>,
    /// `-ingress-annotations-prefix`: the prefix of the NGINX canary annotations
    /// (`<prefix>/canary`, `<prefix>/canary-weight`...).
    pub ingress_annotations_prefix: String,
}

impl RouterOptions {
    /// Flagger's default NGINX annotation prefix.
    pub const DEFAULT_INGRESS_ANNOTATIONS_PREFIX: &'static str = "nginx.ingress.kubernetes.io";
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            ingress_class: None,
            ingress_annotations_prefix: Self::DEFAULT_INGRESS_ANNOTATIONS_PREFIX.to_owned(),
        }
    }
}
