//! `cargo xtask crd`: writes the CRDs generated from fledge-api to `deploy/crds/`;
//! `--check` fails when the committed files differ from what the code generates.

use anyhow::{Context as _, bail};

/// Runs `crd [--check]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask crd [--check]"),
    };
    let dir = crate::workspace_root().join("deploy/crds");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut drifted = Vec::new();
    for crd in fledge_api::crd::all() {
        let path = dir.join(fledge_api::crd::file_name(&crd));
        let generated = fledge_api::yaml::to_string(&crd)?;
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed == generated {
            continue;
        }
        if check {
            drifted.push(path.display().to_string());
        } else {
            std::fs::write(&path, generated)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !drifted.is_empty() {
        bail!(
            "the committed CRDs differ from the Rust types: {}\nrun `cargo xtask crd` and commit the result",
            drifted.join(", ")
        );
    }
    Ok(())
}
