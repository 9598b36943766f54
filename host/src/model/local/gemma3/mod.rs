//! Gemma 3 chat models from GGUF files.
//!
//! The decoder is ours, in [`transformer`], built from candle's quantized
//! matmul, RMS norm and RoPE. candle-transformers 0.11's `quantized_gemma3`
//! applies SiLU in the feed-forward network where Gemma uses GELU, so on a
//! chat prompt its token log-probabilities for Gemma 3 270M Q4_K_M differed
//! from llama.cpp's (llama-cpp-python 0.3.16) by up to 5.7 nats, against
//! 0.4 for this decoder. It also applies no sliding window to single-token
//! steps, and its mask for several tokens after a cached prefix joins an
//! f32 and a u32 tensor.

mod transformer;

use super::chat_template::ChatTemplate;
use super::sampler::{log_prob, response_rng, sample};
use super::tokenizer::{metadata_string, tokenizer_from_gguf};
use super::{Response, TokenSample, check_context, decode, default_device, encode, encode_prompt, gguf};
use crate::model::{ChatModel, Generation, Message, ModelError, Sampling};
use candle_core::quantized::gguf_file::Value;
use candle_core::{Device, IndexOp};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::Tokenizer;
use transformer::{KvCache, Transformer};

/// Value of `general.architecture` in Gemma 3 GGUF files.
pub const GEMMA3_ARCHITECTURE: &str = "gemma3";

/// Token that closes a chat turn in Gemma's chat format.
const END_OF_TURN: &str = "<end_of_turn>";

/// Gemma's chat format, used when the GGUF file has no
/// `tokenizer.chat_template`: turns are `<start_of_turn>ROLE\n…<end_of_turn>\n`
/// with the roles `user` and `model`, and a system message is prepended to
/// the first user turn, followed by a blank line.
const GEMMA3_CHAT_TEMPLATE: &str = r#"{{- bos_token -}}
{%- if messages and messages[0].role == "system" -%}
    {%- set system_prefix = (messages[0].content | trim) ~ "\n\n" -%}
    {%- set turns = messages[1:] -%}
{%- else -%}
    {%- set system_prefix = "" -%}
    {%- set turns = messages -%}
{%- endif -%}
{%- for message in turns -%}
    {%- if message.role == "assistant" -%}
        {%- set role = "model" -%}
    {%- elif message.role == "user" -%}
        {%- set role = "user" -%}
    {%- else -%}
        {{- raise_exception("Gemma 3 chats take user and assistant turns after an optional first system message, not " ~ message.role) -}}
    {%- endif -%}
    {{- "<start_of_turn>" ~ role ~ "\n" ~ (system_prefix if loop.first else "") ~ (message.content | trim) ~ "<end_of_turn>\n" -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- "<start_of_turn>model\n" -}}
{%- endif -%}"#;

/// A Gemma 3 chat model run in-process with candle. Each request builds its
/// own KV cache and drops it when it returns.
pub struct Gemma3Model {
    name: String,
    transformer: Transformer,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// EOS and `<end_of_turn>`. They are not part of the returned text or NLLs.
    stop_ids: Vec<u32>,
    prompt_bos: Option<u32>,
}

impl Gemma3Model {
    /// Loads a Gemma 3 `.gguf` file on [`default_device`].
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::load_on(path, &default_device()?)
    }

    pub fn load_on(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let started = std::time::Instant::now();
        let load_error = |message: String| ModelError::Load {
            path: path.display().to_string(),
            message,
        };
        let (content, mut reader) = gguf::open(path)?;
        let metadata = &content.metadata;

        let architecture = metadata_string(metadata, "general.architecture")?;
        if architecture != GEMMA3_ARCHITECTURE {
            return Err(load_error(format!(
                "unsupported architecture {architecture:?}, expected {GEMMA3_ARCHITECTURE:?}"
            )));
        }
        let tokenizer = tokenizer_from_gguf(metadata)?;
        let template = chat_template(metadata, &tokenizer)?;
        let stop_ids = stop_ids(metadata, &tokenizer);
        let prompt_bos = gguf::prompt_bos(metadata);
        let file_stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let name = metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .or(file_stem)
            .unwrap_or_else(|| GEMMA3_ARCHITECTURE.to_string());

        let transformer = Transformer::from_gguf(&content, &mut reader, device)
            .map_err(|e| load_error(format!("failed to load Gemma 3 weights: {e}")))?;
        tracing::info!(path = %path.display(), %name, seconds = started.elapsed().as_secs_f32(), "model loaded");

        Ok(Self {
            name,
            transformer,
            tokenizer,
            template,
            stop_ids,
            prompt_bos,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn chat_template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Maximum number of tokens, prompt and response, from
    /// `gemma3.context_length`.
    pub fn context_length(&self) -> usize {
        self.transformer.config().context_length
    }

    /// Renders `messages` with the chat template and tokenizes the result,
    /// parsing special tokens such as `<start_of_turn>` in it. Prepends BOS
    /// when the GGUF file sets `tokenizer.ggml.add_bos_token` and the
    /// template did not write it.
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

    /// Samples `sampling.n` continuations of the token prompt `prompt`. The
    /// prompt is prefilled once, and each response decodes on its own copy
    /// of that KV cache, one response after the other.
    pub fn sample_tokens(&self, prompt: &[u32], sampling: &Sampling) -> Result<Vec<TokenSample>, ModelError> {
        let n = sampling.n as usize;
        if n == 0 {
            return Ok(Vec::new());
        }
        let max_tokens = check_context(self.context_length(), prompt.len(), sampling.max_tokens as usize)?;
        let mut prompt_cache = KvCache::new(self.transformer.config());
        let logits = self.next_logits(prompt, &mut prompt_cache)?;
        (0..n as u32)
            .map(|index| self.sample_response(&prompt_cache, &logits, sampling, index, max_tokens))
            .collect()
    }

    /// Decodes response `index` of a request from the KV cache and the
    /// next-token logits after the prompt.
    fn sample_response(
        &self,
        prompt_cache: &KvCache,
        prompt_logits: &[f32],
        sampling: &Sampling,
        index: u32,
        max_tokens: usize,
    ) -> Result<TokenSample, ModelError> {
        let mut response = Response {
            rng: response_rng(sampling.seed, index),
            sample: TokenSample::default(),
            done: max_tokens == 0,
        };
        let mut cache = prompt_cache.clone();
        let mut logits = prompt_logits.to_vec();
        while !response.done {
            let draw = sample(&logits, sampling.temperature, sampling.top_p, &mut response.rng);
            response.push(draw, &self.stop_ids, max_tokens);
            if !response.done {
                logits = self.next_logits(&[draw.token], &mut cache)?;
            }
        }
        Ok(response.sample)
    }

    /// Returns the log-probability of each token of `continuation` after
    /// `prompt`.
    ///
    /// The prompt is prefilled as in [`Self::sample_tokens`] and the
    /// continuation fed one token at a time through the KV cache, as in
    /// generation. One pass over all tokens would be faster, but candle's
    /// quantized matmul rounds differently for one row and for many, which
    /// moved log-probabilities by up to 0.02 nats from the NLLs recorded in
    /// generation. This way they are equal.
    pub fn logprobs_from_ids(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<f32>, ModelError> {
        if continuation.is_empty() {
            return Ok(Vec::new());
        }
        if prompt.is_empty() {
            return Err(ModelError::Tokenizer(
                "the prompt must have at least one token".to_string(),
            ));
        }
        check_context(self.context_length(), prompt.len() + continuation.len(), 0)?;

        let mut cache = KvCache::new(self.transformer.config());
        let mut logits = self.next_logits(prompt, &mut cache)?;
        let mut log_probs = Vec::with_capacity(continuation.len());
        for (offset, &token) in continuation.iter().enumerate() {
            log_probs.push(log_prob(&logits, token));
            if offset + 1 < continuation.len() {
                logits = self.next_logits(&[token], &mut cache)?;
            }
        }
        Ok(log_probs)
    }

    /// Runs `tokens` after the positions in `cache` and returns the logits of
    /// the token that follows them.
    fn next_logits(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, ModelError> {
        let hidden = self.transformer.forward(tokens, cache)?;
        let last = hidden.i(tokens.len() - 1..tokens.len())?;
        Ok(self.transformer.logits(&last)?.squeeze(0)?.to_vec1()?)
    }
}

/// Compiles `tokenizer.chat_template`, or Gemma's chat format when the file
/// has none.
fn chat_template(metadata: &HashMap<String, Value>, tokenizer: &Tokenizer) -> Result<ChatTemplate, ModelError> {
    let source = match metadata_string(metadata, "tokenizer.chat_template") {
        Ok(source) => source,
        Err(_) => {
            tracing::debug!("GGUF metadata has no tokenizer.chat_template, using Gemma's chat format");
            GEMMA3_CHAT_TEMPLATE
        }
    };
    let bos_token = gguf::token_text(metadata, tokenizer, "tokenizer.ggml.bos_token_id").unwrap_or_default();
    let eos_token = gguf::token_text(metadata, tokenizer, "tokenizer.ggml.eos_token_id").unwrap_or_default();
    ChatTemplate::new(source, &bos_token, &eos_token)
}

/// Returns the ids that end a response: EOS, EOT and `<end_of_turn>`, when
/// the file has them.
fn stop_ids(metadata: &HashMap<String, Value>, tokenizer: &Tokenizer) -> Vec<u32> {
    let mut ids: Vec<u32> = ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
        .iter()
        .filter_map(|key| metadata.get(*key)?.to_u32().ok())
        .collect();
    ids.extend(tokenizer.token_to_id(END_OF_TURN));
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl ChatModel for Gemma3Model {
    fn name(&self) -> &str {
        &self.name
    }

    fn generate(&mut self, messages: &[Message], sampling: &Sampling) -> Result<Vec<Generation>, ModelError> {
        let prompt = self.encode_prompt(messages)?;
        self.sample_tokens(&prompt, sampling)?
            .into_iter()
            .map(|sample| {
                Ok(Generation {
                    text: self.decode(&sample.tokens)?,
                    token_nll: sample.token_nll,
                })
            })
            .collect()
    }

    /// Tokenizes `continuation` on its own and appends it to the prompt
    /// tokens, so the result has one entry per token of that tokenization.
    fn logprobs(&mut self, messages: &[Message], continuation: &str) -> Result<Vec<f32>, ModelError> {
        let prompt = self.encode_prompt(messages)?;
        let continuation = self.encode(continuation)?;
        self.logprobs_from_ids(&prompt, &continuation)
    }
}
