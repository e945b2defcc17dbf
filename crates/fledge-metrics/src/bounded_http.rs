//! The limits every HTTP call of a canary's checks keeps (metric queries here, webhooks in
//! the operator): redirects only within one origin, bodies read up to a cap, and errors
//! that never show a URL's secrets.

use std::error::Error as _;

use fledge_api::redaction::redact_url;
use reqwest::redirect::{Attempt, Policy};

/// How many redirects a check follows before it gives up.
pub const MAX_REDIRECTS: usize = 5;

/// A redirect policy that follows at most [`MAX_REDIRECTS`] redirects, each to the same
/// scheme, host and port as the request; a redirect elsewhere fails the call.
///
/// Credentials (basic auth, bearer tokens, custom headers) were meant for the server the
/// spec names; a redirect must not carry the request, or its answer, to another one.
pub fn same_origin_redirects() -> Policy {
    Policy::custom(|attempt: Attempt<'_>| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        if first.origin() != attempt.url().origin() {
            let refused = format!(
                "redirect from {} to {} refused: only redirects to the same scheme, host and port are followed",
                redact_url(first.as_str()),
                redact_url(attempt.url().as_str())
            );
            return attempt.error(refused);
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            let refused = format!(
                "more than {MAX_REDIRECTS} redirects from {}",
                redact_url(first.as_str())
            );
            return attempt.error(refused);
        }
        attempt.follow()
    })
}

/// The start of a response body, read without holding more than the cap in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CappedBody {
    /// At most the cap's bytes.
    pub bytes: Vec<u8>,
    /// Whether the server sent (or announced) more than the cap.
    pub truncated: bool,
}

impl CappedBody {
    /// The bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads `response`'s body chunk by chunk and stops at `cap` bytes: a server that sends
/// 100 MB costs `cap` bytes of memory and the time to read them, not more. A body whose
/// `Content-Length` exceeds the cap is not read at all.
///
/// # Errors
/// The transport error when the body cannot be read (a timeout, a reset).
pub async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<CappedBody, reqwest::Error> {
    let announced = response
        .content_length()
        .and_then(|length| usize::try_from(length).ok());
    if announced.is_some_and(|length| length > cap) {
        return Ok(CappedBody {
            bytes: Vec::new(),
            truncated: true,
        });
    }
    let mut bytes = Vec::with_capacity(announced.unwrap_or(0).min(cap));
    while let Some(chunk) = response.chunk().await? {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(CappedBody {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(CappedBody {
        bytes,
        truncated: false,
    })
}

/// What went wrong with a call to `url`, in words that never show the URL's secrets:
/// reqwest's message without its URL, the innermost cause (`Connection refused`, a refused
/// redirect), and the URL as [`redact_url`] shows it.
pub fn describe_transport_error(error: reqwest::Error, url: &str) -> String {
    format!(
        "{} ({})",
        innermost_cause(&error.without_url()),
        redact_url(url)
    )
}

/// The innermost cause of `error` (`Connection refused`, a refused redirect); reqwest's
/// own message when it has no cause.
pub fn innermost_cause(error: &reqwest::Error) -> String {
    let mut innermost = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        innermost = inner.to_string();
        cause = inner.source();
    }
    innermost
}

/// `bytes` as `4 MiB`, `64 KiB` or `512 B`.
pub fn human_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}
