use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection, ConfigMapVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, ProjectedVolumeSource, SecretEnvSource, SecretKeySelector,
    SecretProjection, SecretVolumeSource, Volume, VolumeProjection,
};
use pretty_assertions::assert_eq;

use super::*;

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                [
                    ("team".to_owned(), "a".to_owned()),
                    ("app".to_owned(), "podinfo".to_owned()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

fn secret(name: &str, type_: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_owned()),
        data: Some([("token".to_owned(), k8s_openapi::ByteString(b"t".to_vec()))].into()),
        ..Secret::default()
    }
}

/// A pod spec using configs in every way Flagger tracks.
fn pod_spec() -> PodSpec {
    let env_config = EnvVar {
        name: "COLOR".into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: "env-config".into(),
                key: "color".into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let env_secret = EnvVar {
        name: "TOKEN".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: "env-secret".into(),
                key: "token".into(),
                optional: Some(true),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let env_from = vec![
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "envfrom-config".into(),
                optional: None,
            }),
            ..EnvFromSource::default()
        },
        EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "envfrom-secret".into(),
                optional: None,
            }),
            ..EnvFromSource::default()
        },
    ];
    PodSpec {
        containers: vec![Container {
            name: "app".into(),
            env: Some(vec![env_config, env_secret]),
            env_from: Some(env_from),
            ..Container::default()
        }],
        init_containers: Some(vec![Container {
            name: "init".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "init-config".into(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            }]),
            ..Container::default()
        }]),
        volumes: Some(volumes()),
        ..PodSpec::default()
    }
}

/// Volumes using a config directly and through a projection.
fn volumes() -> Vec<Volume> {
    vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "vol-config".into(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "secret".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("vol-secret".into()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "projected".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "proj-config".into(),
                            ..ConfigMapProjection::default()
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection {
                            name: "proj-secret".into(),
                            optional: Some(true),
                            ..SecretProjection::default()
                        }),
                        ..VolumeProjection::default()
                    },
                ]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        },
    ]
}

fn all_sources() -> ConfigSources {
    let mut sources = ConfigSources::default();
    for name in [
        "env-config",
        "envfrom-config",
        "init-config",
        "vol-config",
        "proj-config",
    ] {
        sources = sources.with_config_map(config_map(name, &[("k", name)]));
    }
    for name in ["env-secret", "envfrom-secret", "vol-secret", "proj-secret"] {
        sources = sources.with_secret(secret(name, "Opaque"));
    }
    sources
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "flagger.app/v1beta1".into(),
        kind: "Canary".into(),
        name: "podinfo".into(),
        uid: "uid-1".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[test]
fn every_way_of_using_a_config_is_found_once_with_its_optionality() {
    let found = referenced_configs(&pod_spec());
    let summary: Vec<(&str, &str, bool)> = found
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str(), r.required))
        .collect();
    assert_eq!(
        summary,
        [
            ("configmap", "env-config", true),
            ("configmap", "envfrom-config", true),
            ("configmap", "init-config", true),
            ("configmap", "proj-config", true),
            ("configmap", "vol-config", true),
            ("secret", "env-secret", false),
            ("secret", "envfrom-secret", true),
            ("secret", "proj-secret", false),
            ("secret", "vol-secret", true),
        ]
    );
}

#[test]
fn checksums_are_keyed_as_flagger_keys_tracked_configs() {
    let tracked = TrackedConfigs::resolve("test", &referenced_configs(&pod_spec()), &all_sources())
        .unwrap_or_default();
    let checksums = tracked.checksums();
    assert_eq!(checksums.len(), 9);
    assert!(checksums.contains_key("configmap/vol-config"));
    assert!(checksums.contains_key("secret/proj-secret"));
    assert!(checksums.values().all(|c| c.len() == 16));
    assert_ne!(
        checksums["configmap/vol-config"],
        checksums["configmap/env-config"]
    );
}

#[test]
fn a_changed_config_changes_only_its_checksum() {
    let references = referenced_configs(&pod_spec());
    let before = TrackedConfigs::resolve("test", &references, &all_sources()).unwrap_or_default();
    let changed = all_sources().with_config_map(config_map("vol-config", &[("k", "new")]));
    let after = TrackedConfigs::resolve("test", &references, &changed).unwrap_or_default();
    let (before, after) = (before.checksums(), after.checksums());
    let differing: Vec<&String> = before.keys().filter(|k| before[*k] != after[*k]).collect();
    assert_eq!(differing, ["configmap/vol-config"]);
}

#[test]
fn opted_out_and_service_account_configs_are_not_tracked() {
    let mut disabled = config_map("vol-config", &[]);
    disabled.metadata.annotations =
        Some([(CONFIG_TRACKING_ANNOTATION.to_owned(), "disabled".to_owned())].into());
    let sources = all_sources()
        .with_config_map(disabled)
        .with_secret(secret("vol-secret", "kubernetes.io/dockerconfigjson"));
    let tracked = TrackedConfigs::resolve("test", &referenced_configs(&pod_spec()), &sources)
        .unwrap_or_default();
    let checksums = tracked.checksums();
    assert!(!checksums.contains_key("configmap/vol-config"));
    assert!(!checksums.contains_key("secret/vol-secret"));
    let spec = tracked.rewrite(pod_spec());
    let volumes = spec.volumes.unwrap_or_default();
    assert_eq!(
        volumes[0].config_map.as_ref().map(|c| c.name.as_str()),
        Some("vol-config")
    );
}

#[test]
fn a_missing_required_config_is_an_error_and_a_missing_optional_one_is_skipped() {
    let references = referenced_configs(&pod_spec());
    let mut sources = all_sources();
    sources.secrets.remove("proj-secret");
    let tracked = TrackedConfigs::resolve("test", &references, &sources).unwrap_or_default();
    assert_eq!(tracked.checksums().len(), 8);
    sources.config_maps.remove("init-config");
    let error = TrackedConfigs::resolve("test", &references, &sources)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        error.as_deref(),
        Some(
            "configmap test/init-config is referenced by the target but does not exist; create it or mark the reference optional"
        )
    );
}

#[test]
fn the_primary_spec_points_at_the_copies() {
    let tracked = TrackedConfigs::resolve("test", &referenced_configs(&pod_spec()), &all_sources())
        .unwrap_or_default();
    let rewritten = tracked.rewrite(pod_spec());
    let renamed = referenced_configs(&rewritten);
    assert_eq!(renamed.len(), 9);
    assert!(
        renamed.iter().all(|r| r.name.ends_with("-primary")),
        "{renamed:?}"
    );
    // Everything else is untouched.
    let mut back = rewritten.clone();
    back.volumes = pod_spec().volumes;
    back.containers = pod_spec().containers;
    back.init_containers = pod_spec().init_containers;
    assert_eq!(back, pod_spec());
}

#[test]
fn copies_are_owned_by_the_canary_and_carry_the_data() {
    let sources = all_sources();
    let references = vec![
        ConfigReference {
            kind: ConfigKind::ConfigMap,
            name: "vol-config".into(),
            required: true,
        },
        ConfigReference {
            kind: ConfigKind::Secret,
            name: "vol-secret".into(),
            required: true,
        },
    ];
    let tracked = TrackedConfigs::resolve("test", &references, &sources).unwrap_or_default();
    let copies = tracked.primary_copies("test", &owner(), &sources, &["team".to_owned()]);
    assert_eq!(copies.len(), 2);
    let PrimaryConfig::ConfigMap(config_map) = &copies[0] else {
        panic!("a ConfigMap first: {copies:?}");
    };
    assert_eq!(
        config_map.metadata.name.as_deref(),
        Some("vol-config-primary")
    );
    assert_eq!(config_map.metadata.namespace.as_deref(), Some("test"));
    assert_eq!(config_map.metadata.owner_references, Some(vec![owner()]));
    assert_eq!(
        config_map.metadata.labels,
        Some([("team".to_owned(), "a".to_owned())].into())
    );
    assert_eq!(config_map.data, sources.config_maps["vol-config"].data);
    let PrimaryConfig::Secret(secret) = &copies[1] else {
        panic!("a Secret second: {copies:?}");
    };
    assert_eq!(secret.metadata.name.as_deref(), Some("vol-secret-primary"));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(secret.data, sources.secrets["vol-secret"].data);
}
