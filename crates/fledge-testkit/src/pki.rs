//! The certificates, keys and token a local API server needs.
//!
//! A fresh CA signs the serving certificate (for `127.0.0.1` and `localhost`), so clients
//! verify TLS for real instead of skipping verification; the service-account key is an
//! ECDSA P-256 key, which kube-apiserver accepts for signing and verifying tokens.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::error::{Error, Result};

/// The file name of the serving certificate in the directory [`ApiServerPki::generate`]
/// writes to (valid for `127.0.0.1` and `localhost`, so a proxy on loopback may serve it too).
pub const SERVING_CERT_FILE: &str = "apiserver.crt";

/// The file name of the serving certificate's key.
pub const SERVING_KEY_FILE: &str = "apiserver.key";

/// The files written for one API server.
#[derive(Debug, Clone)]
pub struct ApiServerPki {
    /// The CA certificate clients trust (PEM).
    pub ca_cert: PathBuf,
    /// The serving certificate (PEM).
    pub serving_cert: PathBuf,
    /// The serving certificate's key (PEM).
    pub serving_key: PathBuf,
    /// The service-account signing key (PEM, PKCS#8).
    pub service_account_key: PathBuf,
    /// The service-account verification key (PEM public key).
    pub service_account_public_key: PathBuf,
    /// The static token file (`token,user,uid,"groups"`).
    pub token_file: PathBuf,
    /// The admin's bearer token (member of `system:masters`).
    pub admin_token: String,
    /// The bearer token of the operator's ServiceAccount (see [`crate::operator_rbac`]).
    pub operator_token: String,
}

impl ApiServerPki {
    /// Generates everything into `dir`.
    ///
    /// # Errors
    /// [`Error::Certificates`] when generation fails, [`Error::Io`] when a file cannot be written.
    pub fn generate(dir: &Path) -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "fledge-testkit-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate()?;
        let mut serving_params = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])?;
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving_params.use_authority_key_identifier_extension = true;
        let serving_cert = serving_params.signed_by(&serving_key, &issuer)?;

        let service_account_key = KeyPair::generate()?;
        let admin_token = random_token();
        let operator_token = random_token();
        let operator = crate::operator_rbac::OperatorIdentity::shipped()?;

        let pki = Self {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join(SERVING_CERT_FILE),
            serving_key: dir.join(SERVING_KEY_FILE),
            service_account_key: dir.join("sa.key"),
            service_account_public_key: dir.join("sa.pub"),
            token_file: dir.join("tokens.csv"),
            admin_token,
            operator_token,
        };
        write(&pki.ca_cert, &ca_cert.pem())?;
        write(&pki.serving_cert, &serving_cert.pem())?;
        write(&pki.serving_key, &serving_key.serialize_pem())?;
        write(
            &pki.service_account_key,
            &service_account_key.serialize_pem(),
        )?;
        write(
            &pki.service_account_public_key,
            &service_account_key.public_key_pem(),
        )?;
        write(
            &pki.token_file,
            &format!(
                "{},admin,admin,\"system:masters\"\n{}",
                pki.admin_token,
                operator.token_file_line(&pki.operator_token)
            ),
        )?;
        Ok(pki)
    }
}

/// 32 hex digits from the process's hash seeds: unguessable enough for a loopback test server.
fn random_token() -> String {
    let mut token = String::with_capacity(32);
    for i in 0..2 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(i);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let _ = write!(token, "{:016x}", hasher.finish());
    }
    token
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
}
