//! Language models: the chat interface the pipeline and plugins use, and the
//! local candle back-end behind it.

mod cache;
mod embed;
mod http;
mod local;
mod spec;

pub use cache::{CacheStats, CachedModel};
pub use http::{HttpModel, HttpSettings};
pub use spec::{LazyModel, ModelSpec};

pub use embed::{
    EMBEDDING_MODEL_DIR, EMBEDDING_MODEL_FILES, EMBEDDING_MODEL_PACKAGE, EMBEDDING_MODEL_VAR, Embedder, LazyEmbedder,
    fetch_embedding_model,
};

pub use local::{
    ChatTemplate, Config, DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE, GEMMA3_ARCHITECTURE, GEMMA3_MODEL_FILE,
    GEMMA3_MODEL_PACKAGE, GEMMA3_MODEL_PATH_VAR, Gemma3Model, LocalModel, MODEL_PATH_VAR, Projection, TokenSample,
    default_cache_dir, default_device, default_model_path, fetch_default_model, fetch_gemma3_model, gemma3_model_path,
    tokenizer_from_gguf,
};
pub(crate) use local::{read_gguf_architecture, read_gguf_config, rope_tables};
use serde::{Deserialize, Serialize};

/// One chat turn: `role` is `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Sampling parameters for one request of `n` responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: u32,
    pub n: u32,
    /// Response `i` of the request is drawn from a generator seeded by
    /// `(seed, i)`, so it does not depend on `n` or on the batch it ran in.
    pub seed: u64,
}

/// One sampled response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    /// Negative log-likelihood of each generated token, in nats, under the
    /// unmodified distribution (temperature 1, no top-p cut).
    pub token_nll: Vec<f32>,
}

impl Generation {
    /// Returns the mean token NLL, or 0 for an empty response.
    pub fn mean_nll(&self) -> f64 {
        if self.token_nll.is_empty() {
            return 0.0;
        }
        self.token_nll.iter().map(|&x| f64::from(x)).sum::<f64>() / self.token_nll.len() as f64
    }
}

/// Errors of a model back-end.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("failed to load model {path}: {message}")]
    Load { path: String, message: String },
    #[error("invalid chat template: {0}")]
    Template(String),
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("prompt has {tokens} tokens but the model's context is {context}")]
    ContextOverflow { tokens: usize, context: usize },
    #[error("failed to fetch a model: {0}")]
    Fetch(String),
    #[error("request to {url} failed: {message}")]
    Http { url: String, message: String },
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error(
        "unsupported model architecture {architecture:?} in {path}, expected one of: {}",
        SUPPORTED_ARCHITECTURES.join(", ")
    )]
    UnsupportedArchitecture { path: String, architecture: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Values of GGUF `general.architecture` that [`load_chat_model`] loads.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", GEMMA3_ARCHITECTURE];

/// Loads the chat model in `path` with the loader its format and
/// architecture need: a `.gguf` file (`llama` or `gemma3`, from
/// `general.architecture`), or a `.safetensors` llama file or folder in the
/// Hugging Face layout.
pub fn load_chat_model(path: &std::path::Path) -> Result<Box<dyn ChatModel>, ModelError> {
    if path.extension().is_none_or(|extension| extension != "gguf") {
        return Ok(Box::new(LocalModel::load(path)?));
    }
    let architecture = read_gguf_architecture(path)?;
    match architecture.as_str() {
        "llama" => Ok(Box::new(LocalModel::load(path)?)),
        GEMMA3_ARCHITECTURE => Ok(Box::new(Gemma3Model::load(path)?)),
        _ => Err(ModelError::UnsupportedArchitecture {
            path: path.display().to_string(),
            architecture,
        }),
    }
}

/// A chat model the pipeline samples from and plugins judge with.
pub trait ChatModel: Send {
    /// Short name recorded in run files.
    fn name(&self) -> &str;

    /// Samples `sampling.n` responses to the chat prompt `messages`.
    fn generate(&mut self, messages: &[Message], sampling: &Sampling) -> Result<Vec<Generation>, ModelError>;

    /// Returns the log-probability of each token of `continuation` after the
    /// chat prompt built from `messages` (with the assistant turn opened).
    fn logprobs(&mut self, messages: &[Message], continuation: &str) -> Result<Vec<f32>, ModelError>;
}
