//! Showing a URL from a spec without the secrets it may carry.
//!
//! Webhook and metrics-server URLs are often credentials: a Slack incoming-webhook path, a
//! `?token=` query, `user:password@` in the authority. Errors, events and log lines show a
//! URL only as [`redact_url`] prints it, and text a server answered (which may echo the
//! request) goes through [`scrub_url_secrets`] first. fledge-notify follows the same idea
//! for notifier addresses (they never print at all).

/// What replaces a secret part.
pub const REDACTED: &str = "<redacted>";

/// Path segments at least this long are masked whatever they hold (random tokens).
const LONG_SEGMENT: usize = 20;
/// Path segments at least this long that hold a digit are masked (ids, keys, UUIDs).
const ID_SEGMENT: usize = 8;

/// The URL with its userinfo, query string and fragment removed and token-like path
/// segments masked: `https://u:p@hooks.slack.com/services/T0/B0/XXXX?x=1` shows as
/// `https://hooks.slack.com/services/<redacted>/<redacted>/<redacted>`.
///
/// Text that is not an absolute URL (no `scheme://`) shows as [`REDACTED`].
pub fn redact_url(url: &str) -> String {
    let Some(parts) = UrlParts::split(url) else {
        return REDACTED.to_owned();
    };
    let mut shown = format!("{}://{}", parts.scheme, parts.host);
    let mut after_services = false;
    for segment in parts.path.split('/').skip(1) {
        shown.push('/');
        if after_services || looks_like_token(segment) {
            shown.push_str(REDACTED);
        } else {
            shown.push_str(segment);
        }
        // Slack's `/services/T…/B…/token`: everything after `services` is the credential.
        after_services |= segment == "services";
    }
    shown
}

/// `text` with every secret part of `url` replaced by [`REDACTED`]: the whole URL, its
/// userinfo, query string, fragment and masked path segments. For answers of a server
/// that may echo the request back.
pub fn scrub_url_secrets(text: &str, url: &str) -> String {
    let mut secrets: Vec<&str> = vec![url.trim()];
    if let Some(parts) = UrlParts::split(url) {
        secrets.extend(parts.userinfo);
        secrets.extend(parts.query);
        secrets.extend(parts.fragment);
        let mut after_services = false;
        for segment in parts.path.split('/') {
            if after_services || looks_like_token(segment) {
                secrets.push(segment);
            }
            after_services |= segment == "services";
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    secrets.retain(|secret| secret.len() >= 4);
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.iter().fold(text.to_owned(), |text, secret| {
        text.replace(secret, REDACTED)
    })
}

/// Whether a path segment looks like a credential rather than a route name.
fn looks_like_token(segment: &str) -> bool {
    let length = segment.chars().count();
    length >= LONG_SEGMENT || length >= ID_SEGMENT && segment.chars().any(|c| c.is_ascii_digit())
}

/// The parts of `scheme://[userinfo@]host[:port][/path][?query][#fragment]`.
struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.trim().split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return None;
        }
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        Some(Self {
            scheme,
            userinfo,
            host,
            path,
            query,
            fragment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_query_and_fragment_never_show() {
        assert_eq!(
            redact_url("https://admin:hunter2@prometheus.example:9090/prom/?token=abc#frag"),
            "https://prometheus.example:9090/prom/"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080",
            "nothing secret: shown as given"
        );
        assert_eq!(
            redact_url("http://flagger-loadtester.test/gate/check"),
            "http://flagger-loadtester.test/gate/check"
        );
    }

    #[test]
    fn token_like_path_segments_are_masked() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXX"),
            "https://hooks.slack.com/services/<redacted>/<redacted>/<redacted>"
        );
        assert_eq!(
            redact_url(
                "https://discord.com/api/webhooks/123456789012345678/abcDEFghiJKLmnoPQRstuVWX"
            ),
            "https://discord.com/api/webhooks/<redacted>/<redacted>"
        );
        assert_eq!(
            redact_url("http://gate.test/v1/approve"),
            "http://gate.test/v1/approve"
        );
    }

    #[test]
    fn text_that_is_not_a_url_is_not_repeated() {
        assert_eq!(redact_url("hooks.slack.com/services/T0/B0/XXXX"), REDACTED);
        assert_eq!(redact_url(""), REDACTED);
    }

    #[test]
    fn echoes_of_the_secrets_are_scrubbed_from_answers() {
        let url = "https://bot:s3cret@hooks.example/services/T0AB/B0CD/tok3nvalue?sig=abcdef";
        let answer = format!("invalid request to {url}; sig=abcdef; user bot:s3cret; tok3nvalue");
        let scrubbed = scrub_url_secrets(&answer, url);
        for secret in ["s3cret", "abcdef", "tok3nvalue", "T0AB"] {
            assert!(!scrubbed.contains(secret), "{secret} in {scrubbed}");
        }
        assert!(
            scrubbed.starts_with("invalid request to <redacted>;"),
            "{scrubbed}"
        );
    }
}
