//! Compiles the plugin crates found under a folder to `wasm32-wasip2`
//! components and writes a Rust file that embeds them with their manifests.
//!
//! Shared by the build scripts of the host (built-in plugins) and of the
//! integration tests (test plugins).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

/// Manifest file that marks a crate folder as a plugin.
const MANIFEST: &str = "wow-plugin.toml";

/// One plugin crate: its package name and folder.
struct PluginCrate {
    package: String,
    dir: PathBuf,
}

/// Builds every plugin crate directly under `plugins_dir` and writes
/// `out_file`, which defines `BUNDLED: &[(&str, &[u8])]` as pairs of
/// manifest text and component bytes.
pub fn embed_plugins(workspace: &Path, plugins_dir: &Path, out_file: &Path) {
    println!("cargo:rerun-if-changed={}", plugins_dir.display());
    println!("cargo:rerun-if-changed={}", workspace.join("sdk").display());
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());

    let crates = find_plugin_crates(plugins_dir);
    let target_dir = plugin_target_dir(workspace);
    compile(workspace, &target_dir, &crates);

    let mut source = String::from("pub static BUNDLED: &[(&str, &[u8])] = &[\n");
    for plugin in &crates {
        let manifest = plugin.dir.join(MANIFEST);
        let file_stem = plugin.package.replace('-', "_");
        let component = target_dir
            .join(WASM_TARGET)
            .join("plugin")
            .join(format!("{file_stem}.wasm"));
        writeln!(
            source,
            "    (include_str!({manifest:?}), include_bytes!({component:?})),"
        )
        .unwrap();
    }
    source.push_str("];\n");
    fs::write(out_file, source).expect("write the embedded plugin list");
}

fn find_plugin_crates(plugins_dir: &Path) -> Vec<PluginCrate> {
    let mut crates = Vec::new();
    let entries = fs::read_dir(plugins_dir).unwrap_or_else(|e| panic!("read {}: {e}", plugins_dir.display()));
    for entry in entries {
        let dir = entry.expect("list plugin folder").path();
        if dir.join(MANIFEST).is_file() {
            let package = package_name(&dir.join("Cargo.toml"));
            crates.push(PluginCrate { package, dir });
        }
    }
    crates.sort_by(|a, b| a.package.cmp(&b.package));
    crates
}

/// Reads `name = "..."` from the `[package]` table of a Cargo manifest.
fn package_name(cargo_toml: &Path) -> String {
    let text = fs::read_to_string(cargo_toml).unwrap_or_else(|e| panic!("read {}: {e}", cargo_toml.display()));
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name") {
            return value
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"')
                .to_string();
        }
    }
    panic!("{} has no package name", cargo_toml.display());
}

/// Plugins get their own target folder: the outer cargo holds the lock on
/// the main one while this script runs.
/// Returns the folder the plugins build in. Its name carries a hash of the
/// workspace path, because cargo names local crates' artifacts without
/// their path: two checkouts sharing `CARGO_TARGET_DIR` would otherwise
/// link each other's `wow-sdk`.
pub fn plugin_target_dir(workspace: &Path) -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let hash = workspace
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    target.join("wasm-plugins").join(format!("{hash:016x}"))
}

fn compile(workspace: &Path, target_dir: &Path, crates: &[PluginCrate]) {
    if crates.is_empty() {
        return;
    }
    check_target_installed();

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--profile", "plugin", "--target", WASM_TARGET, "--target-dir"])
        .arg(target_dir);
    for plugin in crates {
        command.args(["-p", &plugin.package]);
    }
    // The outer build's flags target the host CPU; they must not reach wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }

    let status = command.status().expect("run cargo to build the wasm plugins");
    assert!(
        status.success(),
        "building the wasm plugins failed; the cargo output above names the error"
    );
}

fn check_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let target_lib = sysroot.join("lib/rustlib").join(WASM_TARGET);
    assert!(
        target_lib.is_dir(),
        "the Rust target {WASM_TARGET} is not installed; run `rustup target add {WASM_TARGET}` and build again"
    );
}
