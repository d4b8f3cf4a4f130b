//! Test IdP harness.
