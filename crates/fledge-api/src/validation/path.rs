//! JSON paths as users read them: `spec.analysis.metrics[0].thresholdRange.min`.

use std::fmt;

/// A path into a manifest, built while walking it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonPath(String);

impl JsonPath {
    /// The document root.
    pub fn root() -> Self {
        Self::default()
    }

    /// The path of a field of this object.
    pub fn field(&self, name: &str) -> Self {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '/');
        match (self.0.is_empty(), plain) {
            (true, true) => Self(name.to_owned()),
            (false, true) => Self(format!("{}.{name}", self.0)),
            (_, false) => Self(format!("{}[{name:?}]", self.0)),
        }
    }

    /// The path of an element of this array.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// The path as text (`$` for the root).
    pub fn as_str(&self) -> &str {
        if self.0.is_empty() { "$" } else { &self.0 }
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<JsonPath> for String {
    fn from(path: JsonPath) -> Self {
        path.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_kubectl_explain_path() {
        let p = JsonPath::root()
            .field("spec")
            .field("analysis")
            .field("metrics")
            .index(0)
            .field("name");
        assert_eq!(p.as_str(), "spec.analysis.metrics[0].name");
        assert_eq!(
            JsonPath::root().field("spec").field("a.b").as_str(),
            "spec[\"a.b\"]"
        );
        assert_eq!(JsonPath::root().as_str(), "$");
    }
}
