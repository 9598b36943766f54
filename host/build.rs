//! Compiles the built-in plugins under `plugins/` and embeds them in the
//! host, and records the git commit the host is built from.

use std::env;
use std::path::PathBuf;

#[path = "build/git_commit.rs"]
mod git_commit;
#[path = "build/wasm_plugins.rs"]
mod wasm_plugins;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_file = PathBuf::from(env::var("OUT_DIR").unwrap()).join("builtin_plugins.rs");
    wasm_plugins::embed_plugins(&workspace, &workspace.join("plugins"), &out_file);
    git_commit::embed_git_commit(&workspace);
}
