//! Cookie-based session affinity: which cookie pins a user to the canary or the primary, and
//! the `Set-Cookie` values the routes send.
//!
//! Flagger draws a random cookie value when a rollout first routes traffic to the canary and
//! keeps it in the Canary's status. Here the value is taken from the status when the operator
//! recorded one, and otherwise derived from the Canary's uid and the revision under release,
//! so rendering stays a pure function: the same rollout always gets the same cookie, and a new
//! revision a new one. The operator should record [`SessionCookies`] in the status (the
//! `sessionAffinityCookie` fields) so the cookie of a finished rollout can be expired.

use std::fmt::Write as _;

use fledge_api::Canary;
use fledge_api::canary::SessionAffinity;

/// Name of the request header cookies arrive in.
pub const COOKIE_HEADER: &str = "Cookie";
/// Name of the response header that sets a cookie.
pub const SET_COOKIE_HEADER: &str = "Set-Cookie";

/// The cookies of a canary's current rollout, each written `name=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCookies {
    /// Pins a user to the canary.
    pub canary: String,
    /// Pins a user to the primary (only when `primaryCookieName` is set).
    pub primary: Option<String>,
    /// The canary cookie of a finished rollout, expired once the canary weight is back at 0.
    pub previous: Option<String>,
}

/// A cookie to match on and to send, with its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StickyCookie {
    /// `name=value`.
    pub pair: String,
    /// The full `Set-Cookie` value.
    pub set_cookie: String,
}

/// The regex Flagger matches a `Cookie` header carrying `name=value` with: `.*name.*value.*`.
pub(crate) fn cookie_regex(pair: &str) -> String {
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    format!(".*{name}.*{value}.*")
}

/// The sticky cookies a weighted route hands out while the canary receives traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActiveCookies {
    /// Sent by the canary backend.
    pub canary: StickyCookie,
    /// Sent by the primary backend, when a primary cookie name is set.
    pub primary: Option<StickyCookie>,
}

/// The cookies of a canary, or `None` when session affinity is off.
pub fn session_cookies(canary: &Canary) -> Option<SessionCookies> {
    let affinity = canary.analysis()?.session_affinity.as_ref()?;
    let status = canary.status.as_ref();
    let recorded = |value: Option<&String>| value.filter(|v| !v.is_empty()).cloned();
    let canary_name = affinity.cookie_name.clone().unwrap_or_default();
    let canary_cookie = recorded(status.and_then(|s| s.session_affinity_cookie.as_ref()))
        .unwrap_or_else(|| format!("{canary_name}={}", derived_value(canary, &canary_name)));
    let primary = affinity
        .primary_cookie_name
        .as_ref()
        .filter(|name| !name.is_empty())
        .map(|name| {
            recorded(status.and_then(|s| s.primary_session_affinity_cookie.as_ref()))
                .unwrap_or_else(|| format!("{name}={}", derived_value(canary, name)))
        });
    // As Flagger: once the weight is back at 0, the cookie recorded as current belongs to the
    // rollout that just ended.
    let previous = recorded(status.and_then(|s| s.session_affinity_cookie.as_ref()))
        .or_else(|| recorded(status.and_then(|s| s.previous_session_affinity_cookie.as_ref())));
    Some(SessionCookies {
        canary: canary_cookie,
        primary,
        previous,
    })
}

/// The cookies to hand out while the canary serves traffic.
pub(crate) fn active_cookies(
    canary: &Canary,
    affinity: &SessionAffinity,
    cookies: &SessionCookies,
) -> ActiveCookies {
    let max_age = affinity.max_age.filter(|age| *age > 0).map_or(
        i64::from(fledge_api::defaults::COOKIE_MAX_AGE_SECS),
        i64::from,
    );
    // The primary cookie lives one analysis interval, as Flagger sets it.
    let interval = canary.spec.resolved(None).interval.as_secs();
    ActiveCookies {
        canary: StickyCookie {
            set_cookie: build_cookie(affinity, &cookies.canary, max_age),
            pair: cookies.canary.clone(),
        },
        primary: cookies.primary.as_ref().map(|pair| StickyCookie {
            set_cookie: build_cookie(affinity, pair, i64::try_from(interval).unwrap_or(i64::MAX)),
            pair: pair.clone(),
        }),
    }
}

/// The `Set-Cookie` value that expires a cookie.
pub(crate) fn expired_cookie(pair: &str) -> String {
    format!("{pair}; Max-Age=-1")
}

/// Flagger's `BuildCookie`: the pair, `Max-Age` and the configured attributes.
fn build_cookie(affinity: &SessionAffinity, pair: &str, max_age: i64) -> String {
    let mut cookie = format!("{pair}; Max-Age={max_age}");
    if let Some(domain) = affinity.domain.as_deref().filter(|d| !d.is_empty()) {
        let _ = write!(cookie, "; Domain={domain}");
    }
    if affinity.http_only {
        cookie.push_str("; HttpOnly");
    }
    if affinity.partitioned {
        cookie.push_str("; Partitioned");
    }
    if let Some(path) = affinity.path.as_deref().filter(|p| !p.is_empty()) {
        let _ = write!(cookie, "; Path={path}");
    }
    if let Some(same_site) = affinity.same_site.as_deref().filter(|s| !s.is_empty()) {
        let _ = write!(cookie, "; SameSite={same_site}");
    }
    if affinity.secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// Ten letters derived from the canary's uid, the revision under release and the cookie name
/// (FNV-1a, stable across builds and platforms).
fn derived_value(canary: &Canary, cookie_name: &str) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let uid = canary.metadata.uid.as_deref().unwrap_or_default();
    let revision = canary
        .status
        .as_ref()
        .and_then(|s| s.last_applied_spec.as_deref())
        .unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in [uid, revision, cookie_name].join("\0").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|_| {
            let letter = LETTERS[(hash % 52) as usize];
            hash /= 52;
            char::from(letter)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(status: &str) -> Canary {
        let text = format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test, uid: u-1}}\n\
             spec:\n  targetRef: {{name: podinfo}}\n  service: {{port: 9898}}\n  analysis:\n    interval: 1m\n    \
             sessionAffinity: {{cookieName: flagger-cookie, primaryCookieName: primary-cookie, maxAge: 60, path: /, secure: true}}\n\
             status: {status}"
        );
        fledge_api::yaml::from_str(&text).expect("valid canary")
    }

    #[test]
    fn the_same_rollout_gets_the_same_cookie_and_a_new_revision_a_new_one() {
        let first = session_cookies(&canary("{lastAppliedSpec: abc}")).unwrap();
        let again = session_cookies(&canary("{lastAppliedSpec: abc}")).unwrap();
        let next = session_cookies(&canary("{lastAppliedSpec: def}")).unwrap();
        assert_eq!(first, again);
        assert_ne!(first.canary, next.canary);
        assert!(first.canary.starts_with("flagger-cookie="));
        assert_eq!(first.canary.len(), "flagger-cookie=".len() + 10);
        assert!(
            first
                .primary
                .as_deref()
                .unwrap()
                .starts_with("primary-cookie=")
        );
        assert_eq!(first.previous, None);
    }

    #[test]
    fn cookies_recorded_in_the_status_win() {
        let c = canary(
            "{sessionAffinityCookie: flagger-cookie=abc, previousSessionAffinityCookie: flagger-cookie=old}",
        );
        let cookies = session_cookies(&c).unwrap();
        assert_eq!(cookies.canary, "flagger-cookie=abc");
        assert_eq!(cookies.previous.as_deref(), Some("flagger-cookie=abc"));
    }

    #[test]
    fn builds_set_cookie_values_like_flagger() {
        let c = canary(
            "{sessionAffinityCookie: flagger-cookie=abc, primarySessionAffinityCookie: primary-cookie=xyz}",
        );
        let cookies = session_cookies(&c).unwrap();
        let affinity = c.analysis().unwrap().session_affinity.as_ref().unwrap();
        let active = active_cookies(&c, affinity, &cookies);
        assert_eq!(
            active.canary.set_cookie,
            "flagger-cookie=abc; Max-Age=60; Path=/; Secure"
        );
        assert_eq!(
            active.primary.unwrap().set_cookie,
            "primary-cookie=xyz; Max-Age=60; Path=/; Secure"
        );
        assert_eq!(cookie_regex(&active.canary.pair), ".*flagger-cookie.*abc.*");
        assert_eq!(
            expired_cookie("flagger-cookie=abc"),
            "flagger-cookie=abc; Max-Age=-1"
        );
    }
}
