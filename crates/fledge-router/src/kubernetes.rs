//! The `kubernetes` provider: blue/green without a mesh.
//!
//! There are no traffic objects. The apex Service keeps selecting the primary pods, the
//! canary is reached through `<svc>-canary` by load and acceptance tests, and promotion is a
//! rolling update of the primary. Traffic therefore moves only all at once.

use async_trait::async_trait;
use fledge_api::Canary;

use crate::error::{Error, Result};
use crate::router::Router;
use crate::routes::Routes;

/// The router of the `kubernetes` provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubernetesRouter;

#[async_trait]
impl Router for KubernetesRouter {
    async fn reconcile(&self, _canary: &Canary) -> Result<()> {
        Ok(())
    }

    async fn set_routes(&self, _canary: &Canary, routes: Routes) -> Result<()> {
        let routes = routes.validate()?;
        if routes.canary != 0 && routes.canary != 100 {
            return Err(Error::UnsupportedWeight {
                canary: routes.canary,
            });
        }
        Ok(())
    }

    /// As Flagger: once the analysis has run an iteration the canary counts as receiving all
    /// the (test) traffic, before that the primary does.
    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        let iterations = canary.status.as_ref().map_or(0, |s| s.iterations);
        Ok(if iterations > 0 {
            Routes::weighted(0, 100)
        } else {
            Routes::INITIAL
        })
    }

    async fn finalize(&self, _canary: &Canary) -> Result<()> {
        Ok(())
    }
}
