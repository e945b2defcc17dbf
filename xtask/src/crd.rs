//! `cargo xtask crd`: writes the CRDs generated from fledge-api to `deploy/crds/`.

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
