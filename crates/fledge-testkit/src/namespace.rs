//! A namespace that exists for one test.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};

use crate::error::{Error, Result};

/// A uniquely named namespace, deleted when dropped (in the background) or by [`TempNamespace::delete`].
pub struct TempNamespace {
    name: String,
    client: kube::Client,
    deleted: bool,
}

impl std::fmt::Debug for TempNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TempNamespace {
    /// Creates `<prefix>-<random suffix>`.
    ///
    /// # Errors
    /// [`Error::Kube`] when the server refuses the namespace.
    pub async fn create(client: &kube::Client, prefix: &str) -> Result<Self> {
        let api: Api<Namespace> = Api::all(client.clone());
        let mut namespace = Namespace::default();
        namespace.metadata.generate_name = Some(format!("{}-", prefix.trim_end_matches('-')));
        namespace.metadata.labels =
            Some([("fledge.dev/test".to_owned(), "true".to_owned())].into());
        let created = api
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| Error::kube(format!("create namespace {prefix}-*"), e))?;
        let name = created.metadata.name.unwrap_or_default();
        Ok(Self {
            name,
            client: client.clone(),
            deleted: false,
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace now.
    ///
    /// # Errors
    /// [`Error::Kube`] when the server refuses.
    pub async fn delete(mut self) -> Result<()> {
        self.deleted = true;
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.delete(&self.name, &DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| Error::kube(format!("delete namespace {}", self.name), e))
    }
}

impl Drop for TempNamespace {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let name = std::mem::take(&mut self.name);
            runtime.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            });
        }
    }
}
