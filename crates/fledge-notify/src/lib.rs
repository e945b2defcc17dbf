//! Canary notifications.
