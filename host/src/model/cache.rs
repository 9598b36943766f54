//! A response cache in front of any chat model: a request seen before is
//! served from disk, so rerunning a run costs no model calls.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{ChatModel, Generation, Message, ModelError, Sampling};

/// Hits and misses of a [`CachedModel`].
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// Wraps a chat model with a cache keyed on the model's identity and the
/// whole request (messages and sampling settings, seed included). Each entry
/// is one JSON file under `dir`, written atomically, so a killed run keeps
/// every finished request. Failed requests are not cached.
pub struct CachedModel {
    inner: Box<dyn ChatModel>,
    identity: String,
    dir: PathBuf,
    stats: std::sync::Arc<CacheStats>,
}

impl CachedModel {
    /// `identity` names the model: requests to models with different
    /// identities never share entries.
    pub fn new(inner: Box<dyn ChatModel>, identity: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self {
            inner,
            identity: identity.into(),
            dir: dir.into(),
            stats: Default::default(),
        }
    }

    /// Returns the counters, which stay readable after the model is boxed.
    pub fn stats(&self) -> std::sync::Arc<CacheStats> {
        self.stats.clone()
    }

    fn cached<T: Serialize + DeserializeOwned>(
        &mut self,
        request: serde_json::Value,
        call: impl FnOnce(&mut dyn ChatModel) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let key = serde_json::json!({ "model": self.identity, "request": request });
        let path = self.entry_path(&key);
        if let Some(value) = read_entry(&path) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }

        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let value = call(self.inner.as_mut())?;
        if let Err(error) = write_entry(&path, &value) {
            tracing::warn!(path = %path.display(), "failed to write a cache entry: {error}");
        }
        Ok(value)
    }

    fn entry_path(&self, key: &serde_json::Value) -> PathBuf {
        let digest = Sha256::digest(key.to_string().as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        self.dir.join(&hex[..2]).join(format!("{hex}.json"))
    }
}

impl ChatModel for CachedModel {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn generate(&mut self, messages: &[Message], sampling: &Sampling) -> Result<Vec<Generation>, ModelError> {
        let request = serde_json::json!({ "generate": { "messages": messages, "sampling": sampling } });
        self.cached(request, |model| model.generate(messages, sampling))
    }

    fn logprobs(&mut self, messages: &[Message], continuation: &str) -> Result<Vec<f32>, ModelError> {
        let request = serde_json::json!({ "logprobs": { "messages": messages, "continuation": continuation } });
        self.cached(request, |model| model.logprobs(messages, continuation))
    }
}

/// Returns the cached value, or `None` when the entry is missing or
/// unreadable (an unreadable entry is then overwritten).
fn read_entry<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(path = %path.display(), "ignoring a corrupt cache entry: {error}");
            None
        }
    }
}

fn write_entry<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a folder");
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut file, value)?;
    file.persist(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts calls and returns the call number as the text, so a cache hit
    /// shows as an old number.
    struct Counter(u32);

    impl ChatModel for Counter {
        fn name(&self) -> &str {
            "counter"
        }

        fn generate(&mut self, _messages: &[Message], sampling: &Sampling) -> Result<Vec<Generation>, ModelError> {
            self.0 += 1;
            Ok(vec![
                Generation {
                    text: self.0.to_string(),
                    token_nll: vec![0.5],
                };
                sampling.n as usize
            ])
        }

        fn logprobs(&mut self, _messages: &[Message], _continuation: &str) -> Result<Vec<f32>, ModelError> {
            Err(ModelError::Unsupported("no scoring".into()))
        }
    }

    fn sampling(seed: u64) -> Sampling {
        Sampling {
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 8,
            n: 2,
            seed,
        }
    }

    #[test]
    fn repeated_request_hits_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let messages = [Message::new("user", "hi")];
        let mut model = CachedModel::new(Box::new(Counter(0)), "counter", dir.path());

        let first = model.generate(&messages, &sampling(1)).unwrap();
        let again = model.generate(&messages, &sampling(1)).unwrap();
        let other_seed = model.generate(&messages, &sampling(2)).unwrap();

        assert_eq!(first, again);
        assert_eq!(other_seed[0].text, "2");
        assert_eq!(model.stats().hits.load(Ordering::Relaxed), 1);
        assert_eq!(model.stats().misses.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn cache_survives_a_new_instance() {
        let dir = tempfile::tempdir().unwrap();
        let messages = [Message::new("user", "hi")];
        CachedModel::new(Box::new(Counter(0)), "counter", dir.path())
            .generate(&messages, &sampling(1))
            .unwrap();

        let mut reopened = CachedModel::new(Box::new(Counter(100)), "counter", dir.path());
        assert_eq!(reopened.generate(&messages, &sampling(1)).unwrap()[0].text, "1");

        let mut other_model = CachedModel::new(Box::new(Counter(100)), "other", dir.path());
        assert_eq!(other_model.generate(&messages, &sampling(1)).unwrap()[0].text, "101");
    }

    #[test]
    fn errors_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = CachedModel::new(Box::new(Counter(0)), "counter", dir.path());
        assert!(model.logprobs(&[], "x").is_err());
        assert!(model.logprobs(&[], "x").is_err());
        assert_eq!(model.stats().misses.load(Ordering::Relaxed), 2);
    }
}
