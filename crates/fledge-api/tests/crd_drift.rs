//! The committed CRDs under `deploy/crds/` are exactly what the Rust types generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    for crd in fledge_api::crd::all() {
        let path = dir.join(fledge_api::crd::file_name(&crd));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = fledge_api::yaml::to_string(&crd).expect("CRDs serialize");
        assert!(
            committed == generated,
            "{} differs from the Rust types: run `cargo xtask crd` and commit the result",
            path.display()
        );
    }
}
