//! Stable digests: the checksum of a tracked config's data, byte for byte Flagger's, and the
//! hash of a pod template that identifies a revision.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Flagger's checksum of a config's data: the first 8 bytes of the SHA-256 of Go's
/// `json.Marshal` of it, in hex. Matching it exactly means `status.trackedConfigs` written
/// by Flagger stays valid after switching to Fledge, so the switch starts no rollout.
///
/// Go's encoder sorts map keys (as `BTreeMap` does), writes `[]byte` as standard base64 (as
/// `ByteString` does) and, unlike serde_json, escapes `<`, `>`, `&`, U+2028 and U+2029;
/// those characters can only occur inside JSON strings, so replacing them afterwards is exact.
pub fn go_json_checksum<T: Serialize>(data: &T) -> Result<String> {
    let json = serde_json::to_string(data).map_err(|e| Error::json("config data", e))?;
    let go_json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    Ok(hex_prefix(&Sha256::digest(go_json.as_bytes()), 8))
}

/// A short, stable hash of any serializable value (16 hex digits of its JSON's SHA-256).
pub fn json_hash<T: Serialize>(value: &T, what: &str) -> Result<String> {
    let json = serde_json::to_vec(value).map_err(|e| Error::json(what, e))?;
    Ok(hex_prefix(&Sha256::digest(&json), 8))
}

fn hex_prefix(bytes: &[u8], len: usize) -> String {
    use std::fmt::Write as _;
    bytes.iter().take(len).fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    // Each expected value is the checksum of the exact bytes Go's `json.Marshal` writes for
    // the same data (Flagger: `fmt.Sprintf("%x", sha256.Sum256(json.Marshal(data))[:8])`).
    #[test]
    fn config_map_checksums_are_flaggers() {
        let data: BTreeMap<String, String> = [("a".to_owned(), "1".to_owned())].into();
        assert_eq!(
            go_json_checksum(&Some(data)).ok().as_deref(),
            Some(reference_checksum(br#"{"a":"1"}"#).as_str())
        );
        let none: Option<BTreeMap<String, String>> = None;
        assert_eq!(
            go_json_checksum(&none).ok().as_deref(),
            Some(reference_checksum(b"null").as_str())
        );
    }

    #[test]
    fn html_characters_are_escaped_as_go_does() {
        let data: BTreeMap<String, String> = [("k".to_owned(), "<a&b>".to_owned())].into();
        assert_eq!(
            go_json_checksum(&data).ok().as_deref(),
            Some(reference_checksum(br#"{"k":"\u003ca\u0026b\u003e"}"#).as_str())
        );
    }

    #[test]
    fn secret_bytes_are_base64_as_go_writes_them() {
        let data: BTreeMap<String, ByteString> =
            [("password".to_owned(), ByteString(b"s3cr3t".to_vec()))].into();
        assert_eq!(
            go_json_checksum(&data).ok().as_deref(),
            Some(reference_checksum(br#"{"password":"czNjcjN0"}"#).as_str())
        );
    }

    #[test]
    fn hashes_are_short_stable_hex() {
        let first = json_hash(&("podinfo", 1), "test").unwrap_or_default();
        assert_eq!(first.len(), 16);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(json_hash(&("podinfo", 1), "test").ok(), Some(first.clone()));
        assert_ne!(json_hash(&("podinfo", 2), "test").ok(), Some(first));
    }

    fn reference_checksum(go_json: &[u8]) -> String {
        hex_prefix(&Sha256::digest(go_json), 8)
    }
}
