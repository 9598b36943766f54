//! Compiles the test plugins under `tests/plugins/` and embeds them.

use std::env;
use std::path::PathBuf;

#[path = "../host/build/wasm_plugins.rs"]
mod wasm_plugins;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_file = PathBuf::from(env::var("OUT_DIR").unwrap()).join("test_plugins.rs");
    wasm_plugins::embed_plugins(&workspace, &manifest_dir.join("plugins"), &out_file);
    // The plugin-authoring test builds its scaffold in the same folder, where
    // wow-sdk for wasm32-wasip2 is already compiled.
    println!(
        "cargo:rustc-env=WOW_WASM_TARGET_DIR={}",
        wasm_plugins::plugin_target_dir(&workspace).display()
    );
}
