//! The one place YAML is read and written, so the YAML crate can be swapped in one file.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A YAML document that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

impl YamlError {
    /// An error with a message of its own.
    pub fn from_message(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Reads one YAML document into a typed value.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(text).map_err(|e| YamlError(e.to_string()))
}

/// Reads every document of a multi-document YAML stream as JSON values; empty documents are kept
/// as `Null` so document indexes match what the user sees.
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>, YamlError> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize_yaml(document)
            .map_err(|e| YamlError(format!("document {index}: {e}")))?;
        out.push(value);
    }
    Ok(out)
}

/// Writes a value as a YAML document.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_yaml::to_string(value).map_err(|e| YamlError(e.to_string()))
}

trait DeserializeYaml: Sized {
    fn deserialize_yaml(document: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error>;
}

impl DeserializeYaml for serde_json::Value {
    fn deserialize_yaml(document: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error> {
        serde::Deserialize::deserialize(document)
    }
}
