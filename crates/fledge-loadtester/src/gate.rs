//! Manual gates and rollbacks, one switch per canary, closed until opened.
//!
//! Keys are Flagger's: `name.namespace` for the gate (`/gate/open`, `/gate/close`,
//! `/gate/check`) and `rollback.name.namespace` for the rollback switch (`/rollback/open`,
//! `/rollback/close`, `/rollback/check`). The store lives in memory, as Flagger's: a restarted
//! loadtester has every gate closed again.

use std::collections::HashMap;
use std::sync::Mutex;

/// Which switch of a canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// The confirm-rollout / confirm-promotion gate.
    Gate,
    /// The rollback switch.
    Rollback,
}

impl Switch {
    /// The store key of `canary` (`name.namespace`) for this switch.
    pub fn key(self, canary: &str) -> String {
        match self {
            Self::Gate => canary.to_owned(),
            Self::Rollback => format!("rollback.{canary}"),
        }
    }
}

/// Gate and rollback switches of every canary that called.
#[derive(Debug, Default)]
pub struct GateStore {
    open: Mutex<HashMap<String, bool>>,
}

impl GateStore {
    /// An empty store: everything closed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the switch.
    pub fn open(&self, key: &str) {
        self.set(key, true);
    }

    /// Closes the switch.
    pub fn close(&self, key: &str) {
        self.set(key, false);
    }

    /// Whether the switch is open; a switch nobody touched is closed.
    pub fn is_open(&self, key: &str) -> bool {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *open.entry(key.to_owned()).or_insert(false)
    }

    fn set(&self, key: &str, value: bool) {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_are_closed_until_opened_and_independent_per_canary_and_kind() {
        let store = GateStore::new();
        let gate = Switch::Gate.key("podinfo.test");
        let rollback = Switch::Rollback.key("podinfo.test");
        assert_eq!(rollback, "rollback.podinfo.test");
        assert!(!store.is_open(&gate));
        store.open(&gate);
        assert!(store.is_open(&gate));
        assert!(!store.is_open(&rollback));
        assert!(!store.is_open(&Switch::Gate.key("other.test")));
        store.close(&gate);
        assert!(!store.is_open(&gate));
    }
}
