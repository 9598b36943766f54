//! Sandboxed WebAssembly plugins: tasks, elicitors and scorers.
//!
//! Each plugin is a component built for `wasm32-wasip2` against the
//! `wow:plugin` WIT package. Every call runs in a fresh instance with a fuel
//! budget, a wall-clock deadline for guest code and a memory cap, and sees no
//! files, network, clock or environment. A failing call returns a
//! [`PluginError`] that names the plugin, the call and the item; the host and
//! the other items carry on.

mod bindings;
pub mod bundle;
pub mod conformance;
mod error;
mod host_api;
pub mod imports;
mod manifest;
mod registry;
mod sandbox;
pub mod scaffold;
mod spec;
pub mod validate;
mod wrappers;

pub use bindings::types::{Candidate, Grade, ItemError, Judgement, Preference, Question};
pub use error::{FailureKind, PluginError};
pub use manifest::{Capability, LimitOverrides, MANIFEST_FILE, Manifest, PluginKind, WIT_VERSION};
pub use registry::{PluginRegistry, PluginSource};
pub use sandbox::{CallScope, CallStats, Limits, Sandbox, SharedEmbedder, SharedModel};
pub use spec::{ElicitorSpec, SpecError};
pub use wrappers::{ElicitorPlugin, ScorerPlugin, TaskPlugin};
