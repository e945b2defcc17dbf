//! Credentials and TLS against a real Prometheus started with a web config.

#![allow(clippy::unwrap_used)] // Tests may unwrap (house rule).

use std::path::PathBuf;

use fledge_metrics::{
    Credentials, Error, MetricProvider, PrometheusProvider, ProviderSettings, QueryOutcome,
};
use fledge_testkit::LocalPrometheus;

/// bcrypt of `s3cret` (`htpasswd -nbBC 6 fledge s3cret`).
const S3CRET_HASH: &str = "$2y$06$Iul4dJde.5lEsZ7kmP5R4uOaKzcf2u4Y0XvkokPFMsV.7Jwn/z2r6";

fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}

fn tls_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_sent_and_rejected_credentials_are_a_clear_error() {
    let prometheus = LocalPrometheus::builder()
        .basic_auth("fledge", S3CRET_HASH)
        .start()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let with = |credentials| {
        PrometheusProvider::new(
            ProviderSettings::new(prometheus.url()).with_credentials(credentials),
        )
        .unwrap()
    };

    let accepted = with(basic("fledge", "s3cret"));
    assert!(accepted.is_online().await.unwrap());
    assert_eq!(
        accepted.query("vector(97)").await.unwrap(),
        QueryOutcome::Value(97.0)
    );

    for credentials in [
        basic("fledge", "wrong"),
        Credentials::None,
        Credentials::Bearer {
            token: "t0k".into(),
        },
    ] {
        let err = with(credentials.clone())
            .query("vector(1)")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Unauthorized { status: 401, .. }),
            "{credentials:?}: {err}"
        );
        assert!(
            err.to_string().contains("rejected the credentials"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_needs_insecure_skip_verify() {
    let prometheus = LocalPrometheus::builder()
        .tls(&tls_fixture("cert.pem"), &tls_fixture("key.pem"))
        .start()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(prometheus.url().starts_with("https://"));

    let mut settings = ProviderSettings::new(prometheus.url());
    let strict = PrometheusProvider::new(settings.clone()).unwrap();
    let err = strict.query("vector(1)").await.unwrap_err();
    match &err {
        Error::Unreachable { detail, .. } => {
            assert!(detail.to_lowercase().contains("certificate"), "{detail}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }

    settings.insecure_skip_verify = true;
    let trusting = PrometheusProvider::new(settings).unwrap();
    assert!(trusting.is_online().await.unwrap());
}
