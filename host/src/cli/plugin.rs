//! `wow plugin new | build | check`: writing, building and checking plugins.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::model::{self, ChatModel, LocalModel};
use crate::plugin::conformance;
use crate::plugin::scaffold::{self, SdkSource};
use crate::plugin::{CallStats, Capability, Limits, MANIFEST_FILE, Manifest, PluginKind, Sandbox, bundle};

/// Rust target plugins are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Cargo profile that `wow plugin new` defines for plugin builds.
const PLUGIN_PROFILE: &str = "plugin";

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate with a manifest and a working example that builds as is.
    New {
        /// Plugin kind: task, elicitor or scorer.
        kind: PluginKind,
        /// Plugin and crate name: lower-case letters, digits and `-`.
        name: String,
        /// Folder to create the crate in [default: the current folder].
        #[arg(long)]
        path: Option<PathBuf>,
        /// wow-sdk folder to depend on by path [default: the sdk/ folder of
        /// the wow repository around --path, else the wow git repository].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate for wasm32-wasip2 and write its bundle archive.
    Build {
        /// Plugin crate folder [default: the current folder].
        dir: Option<PathBuf>,
        /// Bundle archive to write [default: DIR/dist/NAME-VERSION.tar.gz].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Cargo target folder [default: $CARGO_TARGET_DIR, else DIR/target].
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Check a bundle against its WIT world and run the conformance suite;
    /// exits with an error when a check fails.
    Check {
        /// Bundle folder or archive (.tar.gz, .tgz, .zip).
        bundle: PathBuf,
        /// Dataset for a task's per-question checks.
        #[arg(long)]
        data: Option<PathBuf>,
        /// GGUF model for plugins that declare generate, logprobs or embed
        /// [default: SmolLM2-135M-Instruct from the cache].
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

/// Runs one `wow plugin` command.
pub fn execute(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::New { kind, name, path, sdk } => new_plugin(kind, &name, path, sdk),
        PluginCommand::Build { dir, out, target_dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let bundle = build_bundle(&dir, out, target_dir)?;
            println!("{}", bundle.display());
            Ok(())
        }
        PluginCommand::Check { bundle, data, model } => check(&bundle, data.as_deref(), model.as_deref()),
    }
}

fn new_plugin(kind: PluginKind, name: &str, path: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<()> {
    let parent = path.unwrap_or_else(|| PathBuf::from("."));
    fs::create_dir_all(&parent).with_context(|| format!("failed to create {}", parent.display()))?;
    let sdk = match sdk {
        Some(sdk) => SdkSource::Path(sdk),
        None => SdkSource::detect(&parent),
    };

    let dir = scaffold::create(kind, name, &parent, &sdk)?;
    match &sdk {
        SdkSource::Path(path) => println!("created {} (wow-sdk from {})", dir.display(), path.display()),
        SdkSource::Git(url) => println!("created {} (wow-sdk from {url})", dir.display()),
    }
    println!("build it with: wow plugin build {}", dir.display());
    Ok(())
}

/// Builds the crate in `dir` with cargo and writes its bundle archive.
pub fn build_bundle(dir: &Path, out: Option<PathBuf>, target_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    // Cargo runs in the crate folder, so every path it gets is absolute.
    let dir = &std::path::absolute(dir).with_context(|| format!("invalid crate folder {}", dir.display()))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_text = fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "failed to read {}; is {} a plugin crate?",
            manifest_path.display(),
            dir.display()
        )
    })?;
    let manifest = Manifest::parse(&manifest_text, &manifest_path.display().to_string())?;
    let cargo_toml = read_cargo_toml(dir)?;

    let target_dir = target_dir
        .or_else(|| env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| dir.join("target"));
    let target_dir =
        std::path::absolute(&target_dir).with_context(|| format!("invalid target folder {}", target_dir.display()))?;
    let profile = if has_plugin_profile(&cargo_toml) {
        PLUGIN_PROFILE
    } else {
        "release"
    };
    run_cargo(dir, &target_dir, profile)?;

    let package = package_name(&cargo_toml)?;
    let component_path = target_dir
        .join(WASM_TARGET)
        .join(profile)
        .join(format!("{}.wasm", package.replace('-', "_")));
    let component = fs::read(&component_path).with_context(|| {
        format!(
            "cargo did not produce {}; is the crate a cdylib?",
            component_path.display()
        )
    })?;
    check_loads(&manifest, &manifest_text, &component)?;

    let version = manifest.version.as_deref().unwrap_or("0.0.0");
    let out = out.unwrap_or_else(|| dir.join("dist").join(format!("{}-{version}.tar.gz", manifest.name)));
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    }
    bundle::write_tar_gz(&out, &manifest_text, &manifest.component_file(), &component)
        .with_context(|| format!("failed to write {}", out.display()))?;
    Ok(out)
}

fn read_cargo_toml(dir: &Path) -> anyhow::Result<toml::Table> {
    let path = dir.join("Cargo.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))
}

fn package_name(cargo_toml: &toml::Table) -> anyhow::Result<String> {
    cargo_toml
        .get("package")
        .and_then(|package| package.get("name"))
        .and_then(|name| name.as_str())
        .map(str::to_string)
        .context("Cargo.toml has no [package] name")
}

fn has_plugin_profile(cargo_toml: &toml::Table) -> bool {
    cargo_toml
        .get("profile")
        .and_then(|profiles| profiles.get(PLUGIN_PROFILE))
        .is_some()
}

fn run_cargo(dir: &Path, target_dir: &Path, profile: &str) -> anyhow::Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .arg("build")
        .args(["--profile", profile, "--target", WASM_TARGET])
        .args(["--manifest-path", "Cargo.toml"])
        .arg("--target-dir")
        .arg(target_dir);
    // Flags meant for a host build must not reach the wasm build.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        command.env_remove(var);
    }

    tracing::info!(crate_dir = %dir.display(), profile, "building the plugin for {WASM_TARGET}");
    let status = command.status().context("failed to run cargo; is it on PATH?")?;
    if !status.success() {
        bail!(
            "cargo build failed for {} ({status}); the output above names the error. \
             If the target is missing, run `rustup target add {WASM_TARGET}`",
            dir.display()
        );
    }
    Ok(())
}

/// Loads the built component as the host will, so that a forbidden import
/// or an undeclared capability fails the build rather than the first run.
fn check_loads(manifest: &Manifest, manifest_text: &str, component: &[u8]) -> anyhow::Result<()> {
    let bundle = bundle::Bundle {
        manifest: manifest.clone(),
        manifest_text: manifest_text.to_string(),
        component: component.to_vec(),
    };
    let sandbox = Arc::new(Sandbox::new(Limits::default())?);
    conformance::load(sandbox, &bundle)?;
    Ok(())
}

fn check(path: &Path, data: Option<&Path>, model_path: Option<&Path>) -> anyhow::Result<()> {
    let bundle = if path.is_dir() {
        bundle::read_dir(path)?
    } else {
        bundle::read_archive(path)?
    };
    let dataset = data
        .map(|file| fs::read(file).with_context(|| format!("failed to read {}", file.display())))
        .transpose()?;

    let limits = Limits {
        max_consecutive_failures: 0,
        ..Limits::default()
    };
    let mut sandbox = Sandbox::new(limits)?;
    if needs_model(&bundle.manifest) {
        sandbox = sandbox.with_model(load_model(model_path)?);
    }

    let manifest = &bundle.manifest;
    println!(
        "checking {} {} {} (wit {})",
        manifest.kind,
        manifest.name,
        manifest.version.as_deref().unwrap_or("(no version)"),
        manifest.wit
    );
    let report = conformance::check_bundle(Arc::new(sandbox), &bundle, dataset.as_deref());
    println!("{report}");
    if report.failures() > 0 {
        bail!("{} of {} checks failed", report.failures(), report.checks.len());
    }
    Ok(())
}

fn needs_model(manifest: &Manifest) -> bool {
    [Capability::Generate, Capability::Logprobs, Capability::Embed]
        .into_iter()
        .any(|capability| manifest.capabilities.contains(&capability))
}

fn load_model(path: Option<&Path>) -> anyhow::Result<crate::plugin::SharedModel> {
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => model::default_model_path()?,
    };
    let model = LocalModel::load(&path).with_context(|| format!("failed to load model {}", path.display()))?;
    let model: Box<dyn ChatModel> = Box::new(model);
    Ok(Arc::new(Mutex::new(model)))
}

/// Logs how much of a stage's wall-clock time plugin calls took, counting
/// the calls made since `before` was taken. The time of a call includes
/// instantiation and any host imports it makes, such as `generate`.
pub fn log_plugin_time(sandbox: &Sandbox, before: &BTreeMap<String, CallStats>, stage: &str, elapsed: Duration) {
    let mut stats = sandbox.call_stats();
    for (name, earlier) in before {
        if let Some(entry) = stats.get_mut(name) {
            entry.calls -= earlier.calls;
            entry.time = entry.time.saturating_sub(earlier.time);
        }
    }
    stats.retain(|_, s| s.calls > 0);
    let calls: u64 = stats.values().map(|s| s.calls).sum();
    let plugin_time: Duration = stats.values().map(|s| s.time).sum();
    let share = 100.0 * plugin_time.as_secs_f64() / elapsed.as_secs_f64().max(1e-9);
    let per_plugin: Vec<String> = stats
        .iter()
        .map(|(name, s)| format!("{name} {} calls {:.3} s", s.calls, s.time.as_secs_f64()))
        .collect();
    tracing::info!(
        calls,
        "{stage}: plugin calls took {:.3} s of {:.3} s ({share:.1}%): {}",
        plugin_time.as_secs_f64(),
        elapsed.as_secs_f64(),
        per_plugin.join(", ")
    );
}
