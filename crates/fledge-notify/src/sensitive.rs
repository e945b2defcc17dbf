//! A value read from a Secret (or as sensitive as one) that never prints itself.
//!
//! Webhook addresses are credentials: a Slack or Teams incoming-webhook URL lets anyone who
//! reads it post to the channel. Addresses, tokens and proxy URLs are therefore held in
//! [`Sensitive`], whose `Debug` and `Display` print `<redacted>`.

use std::fmt;

/// A string that must not reach logs, events or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (after trimming whitespace).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// Replaces every occurrence of this value in `text` with `<redacted>`.
    ///
    /// Used on receivers' answers, which sometimes echo the request back.
    pub(crate) fn redact_from(&self, text: &str) -> String {
        if self.is_blank() {
            text.to_owned()
        } else {
            text.replace(self.0.as_str(), REDACTED)
        }
    }
}

/// What a [`Sensitive`] value prints instead of itself.
pub const REDACTED: &str = "<redacted>";

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Sensitive {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Sensitive {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let token = Sensitive::new("xoxb-123-secret");
        assert_eq!(format!("{token}"), "<redacted>");
        assert_eq!(format!("{token:?}"), "<redacted>");
        assert_eq!(token.expose(), "xoxb-123-secret");
    }

    #[test]
    fn redacts_echoes_of_itself() {
        let token = Sensitive::new("s3cr3t");
        assert_eq!(
            token.redact_from("invalid token s3cr3t given"),
            "invalid token <redacted> given"
        );
        assert_eq!(Sensitive::new("  ").redact_from("text"), "text");
    }
}
