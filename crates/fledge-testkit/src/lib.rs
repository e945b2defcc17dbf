//! Test-only infrastructure for Fledge: a real local control plane and simulators.
