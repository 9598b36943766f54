//! Shared set-up for the integration tests.
