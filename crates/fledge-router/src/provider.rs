//! Which router a canary's `spec.provider` names, parsed the way Flagger reads it.

use crate::error::{Error, Result};

/// A traffic provider this crate routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// No mesh: blue/green by Services alone (`kubernetes`).
    Kubernetes,
    /// Istio VirtualService and DestinationRules (`istio`).
    Istio,
    /// Gateway API HTTPRoute (`gatewayapi:v1`, `gatewayapi:v1beta1`).
    GatewayApi(GatewayApiVersion),
    /// SMI TrafficSplit (`linkerd`, `osm`, `smi:<version>:<mesh>`).
    Smi {
        /// The TrafficSplit API version.
        version: SmiVersion,
        /// The mesh that reads the split (`linkerd`, `osm`, or what follows `smi:<version>:`).
        mesh: String,
    },
    /// NGINX ingress: a canary Ingress cloned from `spec.ingressRef` (`nginx`).
    Nginx,
    /// Skipper: a canary Ingress cloned from `spec.ingressRef` (`skipper`).
    Skipper,
    /// APISIX: a canary ApisixRoute cloned from `spec.routeRef` (`apisix`).
    Apisix,
    /// Contour HTTPProxy (`contour`).
    Contour,
    /// Traefik TraefikService (`traefik`, `traefik:traefik.io`, `traefik:traefik.containo.us`).
    Traefik(TraefikGroup),
    /// Gloo Edge RouteTable and Upstreams (`gloo`, or any name starting with `gloo` as Flagger
    /// reads it).
    Gloo,
}

/// The API group of Traefik's `v1alpha1` resources.
///
/// Flagger writes one group per release: `traefik.containo.us` up to 1.41, `traefik.io` from
/// 1.42. Traefik serves `traefik.io` from 2.10 on (v3 serves nothing else) and reads both groups
/// in 2.10 and 2.11, so an IngressRoute in either group finds a `traefik.io` TraefikService
/// there. Only Traefik 2.3 to 2.9 needs the old group; the provider name says so, as the
/// operator cannot afford a discovery request per tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraefikGroup {
    /// `traefik.io` (`traefik`, `traefik:traefik.io`).
    TraefikIo,
    /// `traefik.containo.us` (`traefik:traefik.containo.us`).
    ContainoUs,
}

impl TraefikGroup {
    /// The API group.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TraefikIo => "traefik.io",
            Self::ContainoUs => "traefik.containo.us",
        }
    }
}

/// The served version of `gateway.networking.k8s.io` HTTPRoutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayApiVersion {
    /// `gateway.networking.k8s.io/v1`.
    V1,
    /// `gateway.networking.k8s.io/v1beta1`.
    V1beta1,
}

impl GatewayApiVersion {
    /// The version segment of the apiVersion.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1beta1 => "v1beta1",
        }
    }
}

/// The served version of `split.smi-spec.io` TrafficSplits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmiVersion {
    /// `split.smi-spec.io/v1alpha1`: weights are quantities.
    V1alpha1,
    /// `split.smi-spec.io/v1alpha2`: weights are integers.
    V1alpha2,
    /// `split.smi-spec.io/v1alpha3`: weights are integers.
    V1alpha3,
}

impl SmiVersion {
    /// The version segment of the apiVersion.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1alpha1 => "v1alpha1",
            Self::V1alpha2 => "v1alpha2",
            Self::V1alpha3 => "v1alpha3",
        }
    }
}

impl Provider {
    /// Reads a provider name as Flagger does: `linkerd` is SMI v1alpha1, `osm` SMI v1alpha2,
    /// `smi:v1alpha3:<mesh>` names the version and the mesh, `gatewayapi:v1...` the Gateway API
    /// version, `gloo...` is Gloo; `traefik:<group>` names the group of the TraefikService
    /// (see [`TraefikGroup`]).
    ///
    /// # Errors
    /// [`Error::UnknownProvider`] for providers this crate does not route.
    pub fn parse(name: &str) -> Result<Self> {
        let smi = |version, mesh: &str| Self::Smi {
            version,
            mesh: mesh.to_owned(),
        };
        let provider = match name {
            "kubernetes" => Self::Kubernetes,
            "istio" => Self::Istio,
            "linkerd" => smi(SmiVersion::V1alpha1, "linkerd"),
            "osm" => smi(SmiVersion::V1alpha2, "osm"),
            "contour" => Self::Contour,
            "traefik" | "traefik:traefik.io" => Self::Traefik(TraefikGroup::TraefikIo),
            "traefik:traefik.containo.us" => Self::Traefik(TraefikGroup::ContainoUs),
            "nginx" => Self::Nginx,
            "skipper" => Self::Skipper,
            "apisix" => Self::Apisix,
            // Flagger matches Gloo by prefix.
            _ if name.starts_with("gloo") => Self::Gloo,
            _ => {
                if let Some(rest) = name.strip_prefix("gatewayapi:") {
                    // Flagger matches by prefix, so `gatewayapi:v1beta1` must be tested first.
                    if rest.starts_with("v1beta1") {
                        Self::GatewayApi(GatewayApiVersion::V1beta1)
                    } else if rest.starts_with("v1") {
                        Self::GatewayApi(GatewayApiVersion::V1)
                    } else {
                        return Err(Error::UnknownProvider {
                            provider: name.to_owned(),
                        });
                    }
                } else if let Some(rest) = name.strip_prefix("smi:") {
                    let (version, mesh) = rest.split_once(':').unwrap_or((rest, ""));
                    let version = match version {
                        "v1alpha1" => SmiVersion::V1alpha1,
                        "v1alpha2" => SmiVersion::V1alpha2,
                        "v1alpha3" => SmiVersion::V1alpha3,
                        _ => {
                            return Err(Error::UnknownProvider {
                                provider: name.to_owned(),
                            });
                        }
                    };
                    smi(version, mesh)
                } else {
                    return Err(Error::UnknownProvider {
                        provider: name.to_owned(),
                    });
                }
            }
        };
        Ok(provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flaggers_provider_names() {
        assert_eq!(Provider::parse("istio").unwrap(), Provider::Istio);
        assert_eq!(Provider::parse("kubernetes").unwrap(), Provider::Kubernetes);
        assert_eq!(
            Provider::parse("linkerd").unwrap(),
            Provider::Smi {
                version: SmiVersion::V1alpha1,
                mesh: "linkerd".into()
            }
        );
        assert_eq!(
            Provider::parse("osm").unwrap(),
            Provider::Smi {
                version: SmiVersion::V1alpha2,
                mesh: "osm".into()
            }
        );
        assert_eq!(
            Provider::parse("smi:v1alpha3:istio").unwrap(),
            Provider::Smi {
                version: SmiVersion::V1alpha3,
                mesh: "istio".into()
            }
        );
        assert_eq!(
            Provider::parse("gatewayapi:v1").unwrap(),
            Provider::GatewayApi(GatewayApiVersion::V1)
        );
        assert_eq!(
            Provider::parse("gatewayapi:v1beta1").unwrap(),
            Provider::GatewayApi(GatewayApiVersion::V1beta1)
        );
        assert_eq!(Provider::parse("nginx").unwrap(), Provider::Nginx);
        assert_eq!(Provider::parse("skipper").unwrap(), Provider::Skipper);
        assert_eq!(Provider::parse("apisix").unwrap(), Provider::Apisix);
        assert_eq!(Provider::parse("contour").unwrap(), Provider::Contour);
        assert_eq!(Provider::parse("gloo").unwrap(), Provider::Gloo);
        assert_eq!(Provider::parse("gloo:v1").unwrap(), Provider::Gloo);
    }

    #[test]
    fn traefik_writes_the_group_flagger_writes_unless_the_name_asks_for_the_old_one() {
        assert_eq!(
            Provider::parse("traefik").unwrap(),
            Provider::Traefik(TraefikGroup::TraefikIo)
        );
        assert_eq!(
            Provider::parse("traefik:traefik.io").unwrap(),
            Provider::Traefik(TraefikGroup::TraefikIo)
        );
        assert_eq!(
            Provider::parse("traefik:traefik.containo.us").unwrap(),
            Provider::Traefik(TraefikGroup::ContainoUs)
        );
        assert!(Provider::parse("traefik:v2").is_err());
    }

    #[test]
    fn refuses_providers_it_does_not_route() {
        let err = Provider::parse("nginx-ingress").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.provider: unknown or unsupported provider \"nginx-ingress\""),
            "{err}"
        );
        assert!(Provider::parse("smi:v2").is_err());
        assert!(Provider::parse("gatewayapi:v2").is_err());
    }
}
