//! The body Flagger posts to every webhook (`CanaryWebhookPayload` in Flagger's API):
//! `name`, `namespace`, `phase`, `checksum` and the hook's `metadata`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A webhook call's payload. Missing fields read as empty and unknown fields are ignored, as
/// Go's `encoding/json` reads them; `metadata` values must be strings (quote numbers and
/// booleans in the Canary: `returnCmdOutput: "true"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookPayload {
    /// The canary's name.
    pub name: String,
    /// The canary's namespace.
    pub namespace: String,
    /// The canary's phase (`Progressing`, `Promoting`, ...).
    pub phase: String,
    /// The revision under analysis.
    pub checksum: String,
    /// The hook's `metadata`: `type`, `cmd`, `logCmdOutput`, `returnCmdOutput`, ...
    #[serde(deserialize_with = "nullable_metadata")]
    pub metadata: BTreeMap<String, String>,
}

fn nullable_metadata<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(deserializer)?.unwrap_or_default())
}

impl WebhookPayload {
    /// Decodes a request body, naming the field that is wrong.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let payload: Self =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                let path = error.path().to_string();
                if path == "." || path == "?" {
                    error.inner().to_string()
                } else {
                    format!("{path}: {}", error.inner())
                }
            })?;
        deserializer.end().map_err(|error| error.to_string())?;
        Ok(payload)
    }

    /// `name.namespace`, the key Flagger's loadtester uses for gates and tasks.
    pub fn canary(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flagger_payload_decodes_and_unknown_fields_are_ignored() {
        let payload = WebhookPayload::from_json(
            br#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc",
                "metadata":{"type":"cmd","cmd":"hey -z 1m http://podinfo-canary.test:9898/"},
                "extra":1}"#,
        )
        .expect("a valid payload");
        assert_eq!(payload.canary(), "podinfo.test");
        assert_eq!(payload.metadata["type"], "cmd");
        let bare = WebhookPayload::from_json(br#"{"name":"a","metadata":null}"#).expect("valid");
        assert_eq!(bare.canary(), "a.");
        assert!(bare.metadata.is_empty());
    }

    #[test]
    fn bad_json_names_the_field_and_the_reason() {
        let error =
            WebhookPayload::from_json(br#"{"name":"a","metadata":{"returnCmdOutput":true}}"#)
                .expect_err("a boolean in metadata");
        assert!(
            error.starts_with(
                "metadata.returnCmdOutput: invalid type: boolean `true`, expected a string"
            ),
            "{error}"
        );
        let error = WebhookPayload::from_json(b"").expect_err("empty body");
        assert!(error.contains("EOF while parsing"), "{error}");
        let error = WebhookPayload::from_json(b"{} {}").expect_err("trailing data");
        assert!(error.contains("trailing characters"), "{error}");
    }
}
