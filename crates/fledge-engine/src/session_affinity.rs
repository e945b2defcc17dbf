//! Session affinity: while the canary gets traffic, users who reached it keep a cookie that
//! pins them to it; when the canary's share drops to zero the cookie is expired. Flagger picks
//! cookie values at random; here they derive from the canary and its revision, so a plan stays
//! a pure function of its inputs.

use crate::plan::StickyCookies;
use crate::tick::Tick;

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

impl Tick<'_> {
    /// The cookies for a route with `canary_weight` on the canary, recorded in the status.
    pub(crate) fn sticky_cookies(&mut self, canary_weight: u32) -> Option<StickyCookies> {
        let affinity = self.rollout.affinity.as_ref()?;
        if canary_weight > 0 {
            if self.status.session_affinity_cookie.is_none() {
                self.status.session_affinity_cookie = Some(self.cookie(&affinity.cookie_name));
            }
            if let Some(primary) = &affinity.primary_cookie_name
                && self.status.primary_session_affinity_cookie.is_none()
            {
                self.status.primary_session_affinity_cookie = Some(self.cookie(primary));
            }
        } else if let Some(current) = self.status.session_affinity_cookie.take() {
            self.status.previous_session_affinity_cookie = Some(current);
        }
        Some(StickyCookies {
            canary: self.status.session_affinity_cookie.clone(),
            primary: self.status.primary_session_affinity_cookie.clone(),
            previous: self.status.previous_session_affinity_cookie.clone(),
            max_age_seconds: affinity.max_age_seconds,
        })
    }

    /// `name=value` with ten letters derived (FNV-1a) from the canary, the revision and the name.
    fn cookie(&self, name: &str) -> String {
        let revision = self.status.last_applied_spec.as_deref().unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self
            .rollout
            .subject
            .canary
            .bytes()
            .chain(revision.bytes())
            .chain(name.bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut value = String::with_capacity(name.len() + 11);
        value.push_str(name);
        value.push('=');
        for _ in 0..10 {
            value.push(char::from(LETTERS[(hash % LETTERS.len() as u64) as usize]));
            hash = hash.rotate_right(7).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        value
    }
}
