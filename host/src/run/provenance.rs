//! Provenance of result files: the wow build, the model file, the plugin
//! components, the seeds and the full config that produced a result.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RunError;
use crate::model::{DEFAULT_MODEL_FILE, MODEL_PATH_VAR, default_cache_dir};
use crate::plugin::PluginRegistry;

/// Commit of the wow sources this binary was built from, or "unknown".
pub const GIT_COMMIT: &str = env!("WOW_GIT_COMMIT");

/// Suffix of the file beside a model that caches its SHA-256.
const HASH_CACHE_SUFFIX: &str = "sha256.json";

/// Everything needed to reproduce one result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub wow_version: String,
    pub git_commit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<FileDigest>,
    /// Plugins used, by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginDigest>,
    /// Seeds by role, such as `sampling` or `training`.
    #[serde(default)]
    pub seeds: BTreeMap<String, u64>,
    /// The full settings of the command, as it resolved them.
    pub config: serde_json::Value,
}

/// A file and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDigest {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// A plugin's kind and the SHA-256 of its component bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginDigest {
    pub kind: String,
    pub wit: String,
    pub sha256: String,
}

impl Provenance {
    /// Starts a record of this build with `config` as the settings.
    pub fn new(config: &impl Serialize) -> Self {
        Self {
            wow_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: GIT_COMMIT.to_string(),
            model: None,
            plugins: BTreeMap::new(),
            seeds: BTreeMap::new(),
            config: serde_json::to_value(config).expect("settings serialize to JSON"),
        }
    }

    /// Records the model file and its SHA-256 (cached beside it).
    pub fn with_model(mut self, path: &Path) -> Result<Self, RunError> {
        self.model = Some(model_digest(path)?);
        Ok(self)
    }

    /// Records the component hash of each named plugin in `registry`.
    pub fn with_plugins<'a>(
        mut self,
        registry: &PluginRegistry,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, RunError> {
        for name in names {
            let (manifest, bytes) = registry.component_bytes(name)?;
            let digest = PluginDigest {
                kind: manifest.kind.to_string(),
                wit: manifest.wit.clone(),
                sha256: hex(&Sha256::digest(&bytes)),
            };
            self.plugins.insert(name.to_string(), digest);
        }
        Ok(self)
    }

    pub fn with_seed(mut self, role: &str, seed: u64) -> Self {
        self.seeds.insert(role.to_string(), seed);
        self
    }
}

/// Returns the model file a run used: `configured`, else `$WOW_MODEL`, else
/// the default model in the cache folder. Returns `None` when that file does
/// not exist, because a record never fetches the default model.
pub fn model_file(configured: Option<&Path>) -> Option<PathBuf> {
    let path = match configured {
        Some(path) => path.to_path_buf(),
        None => std::env::var_os(MODEL_PATH_VAR)
            .filter(|value| !value.is_empty())
            .map_or_else(|| default_cache_dir().join(DEFAULT_MODEL_FILE), PathBuf::from),
    };
    path.is_file().then_some(path)
}

/// The cache entry beside a model: its hash, valid while size and
/// modification time are unchanged.
#[derive(Debug, Serialize, Deserialize)]
struct CachedDigest {
    bytes: u64,
    modified_ns: u128,
    sha256: String,
}

/// Returns the model's SHA-256. The hash is computed once and cached in
/// `MODEL.sha256.json`, keyed by the file's size and modification time. A
/// cache that cannot be written only costs a recomputation next time.
pub fn model_digest(path: &Path) -> Result<FileDigest, RunError> {
    let metadata = fs::metadata(path).map_err(|source| RunError::io(path, source))?;
    let modified_ns = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |duration| duration.as_nanos());
    let cache_path = hash_cache_path(path);

    let cached = fs::read_to_string(&cache_path)
        .ok()
        .and_then(|text| serde_json::from_str::<CachedDigest>(&text).ok())
        .filter(|cached| cached.bytes == metadata.len() && cached.modified_ns == modified_ns);
    let sha256 = match cached {
        Some(cached) => cached.sha256,
        None => {
            let sha256 = file_sha256(path)?;
            let entry = CachedDigest {
                bytes: metadata.len(),
                modified_ns,
                sha256: sha256.clone(),
            };
            let text = serde_json::to_string_pretty(&entry).expect("cache entry serializes");
            if let Err(error) = fs::write(&cache_path, text) {
                tracing::warn!(path = %cache_path.display(), "failed to cache the model hash: {error}");
            }
            sha256
        }
    };

    Ok(FileDigest {
        path: path.to_path_buf(),
        bytes: metadata.len(),
        sha256,
    })
}

fn hash_cache_path(model: &Path) -> PathBuf {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(HASH_CACHE_SUFFIX);
    model.with_file_name(name)
}

/// Returns the SHA-256 of a file's bytes as lowercase hex, read in 1 MiB
/// chunks.
pub fn file_sha256(path: &Path) -> Result<String, RunError> {
    let mut file = fs::File::open(path).map_err(|source| RunError::io(path, source))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(|source| RunError::io(path, source))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(
            file_sha256(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn model_hash_is_cached_and_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.gguf");
        fs::write(&model, b"abc").unwrap();

        let first = model_digest(&model).unwrap();
        let cache = dir.path().join("model.gguf.sha256.json");
        assert!(cache.is_file());

        // A cache entry with matching size and time is trusted as is.
        let mut entry: serde_json::Value = serde_json::from_str(&fs::read_to_string(&cache).unwrap()).unwrap();
        entry["sha256"] = "cached".into();
        fs::write(&cache, entry.to_string()).unwrap();
        assert_eq!(model_digest(&model).unwrap().sha256, "cached");

        // A changed size invalidates it.
        fs::write(&model, b"abcd").unwrap();
        let changed = model_digest(&model).unwrap();
        assert_ne!(changed.sha256, "cached");
        assert_ne!(changed.sha256, first.sha256);
        assert_eq!(changed.bytes, 4);
    }
}
