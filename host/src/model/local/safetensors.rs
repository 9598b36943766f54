//! Loading llama models in the Hugging Face layout: `model.safetensors`,
//! `config.json`, `tokenizer.json` and `tokenizer_config.json` side by side.

use super::ModelParts;
use super::chat_template::ChatTemplate;
use super::linear::Linear;
use super::llama::{Block, Config, Llama};
use crate::model::ModelError;
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::path::Path;
use tokenizers::Tokenizer;

/// The fields of a Hugging Face `LlamaConfig` that the forward pass uses.
#[derive(Debug, Deserialize)]
struct HfConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    rms_norm_eps: f32,
    #[serde(default = "default_rope_theta")]
    rope_theta: f32,
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
}

fn default_rope_theta() -> f32 {
    10_000.0
}

/// The fields of `tokenizer_config.json` that generation uses. Special
/// tokens there are either plain strings or `AddedToken` objects.
#[derive(Debug, Deserialize)]
struct TokenizerConfig {
    chat_template: Option<String>,
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Object { content: String },
}

impl SpecialToken {
    fn content(&self) -> &str {
        match self {
            Self::Text(text) | Self::Object { content: text } => text,
        }
    }
}

/// Loads `path` (a `.safetensors` file) and the JSON files beside it.
/// Weights are converted to f32; there is no quantized copy.
pub fn load(path: &Path, device: &Device) -> Result<ModelParts, ModelError> {
    let load_error = |message: String| ModelError::Load {
        path: path.display().to_string(),
        message,
    };
    let directory = path.parent().unwrap_or(Path::new("."));
    let read_json = |name: &str| {
        let file = directory.join(name);
        std::fs::read_to_string(&file).map_err(|e| load_error(format!("failed to read {}: {e}", file.display())))
    };
    let hf: HfConfig = serde_json::from_str(&read_json("config.json")?)
        .map_err(|e| load_error(format!("invalid config.json: {e}")))?;
    let tokenizer_config: TokenizerConfig = serde_json::from_str(&read_json("tokenizer_config.json")?)
        .map_err(|e| load_error(format!("invalid tokenizer_config.json: {e}")))?;
    let tokenizer =
        Tokenizer::from_file(directory.join("tokenizer.json")).map_err(|e| ModelError::Tokenizer(e.to_string()))?;

    let mut tensors = candle_core::safetensors::load(path, device)?;
    let mut take = |name: &str| -> Result<Tensor, ModelError> {
        let tensor = tensors
            .remove(name)
            .ok_or_else(|| load_error(format!("tensor {name} is missing")))?;
        Ok(tensor.to_dtype(DType::F32)?)
    };
    let config = Config {
        hidden_size: hf.hidden_size,
        intermediate_size: hf.intermediate_size,
        num_layers: hf.num_hidden_layers,
        num_heads: hf.num_attention_heads,
        num_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
        head_dim: hf.head_dim.unwrap_or(hf.hidden_size / hf.num_attention_heads),
        vocab_size: hf.vocab_size,
        rms_norm_eps: hf.rms_norm_eps,
        rope_theta: hf.rope_theta,
        context_length: hf.max_position_embeddings,
        rope_interleaved: false,
    };
    let embedding = take("model.embed_tokens.weight")?;
    let lm_head = if hf.tie_word_embeddings {
        embedding.clone()
    } else {
        take("lm_head.weight")?
    };
    let mut blocks = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let mut layer = |suffix: &str| take(&format!("model.layers.{i}.{suffix}.weight"));
        let qkv = Tensor::cat(
            &[
                layer("self_attn.q_proj")?,
                layer("self_attn.k_proj")?,
                layer("self_attn.v_proj")?,
            ],
            0,
        )?;
        let gate_up = Tensor::cat(&[layer("mlp.gate_proj")?, layer("mlp.up_proj")?], 0)?;
        blocks.push(Block {
            attn_norm: layer("input_layernorm")?,
            qkv: Linear::new(qkv),
            output: Linear::new(layer("self_attn.o_proj")?),
            ffn_norm: layer("post_attention_layernorm")?,
            gate_up: Linear::new(gate_up),
            down: Linear::new(layer("mlp.down_proj")?),
        });
    }
    let norm = take("model.norm.weight")?;
    let llama = Llama::new(config, embedding, blocks, norm, Linear::new(lm_head))?;

    let special = |token: &Option<SpecialToken>| token.as_ref().map(|t| t.content().to_string()).unwrap_or_default();
    let (bos_token, eos_token) = (
        special(&tokenizer_config.bos_token),
        special(&tokenizer_config.eos_token),
    );
    let template_source = tokenizer_config
        .chat_template
        .ok_or_else(|| load_error("tokenizer_config.json has no chat_template".to_string()))?;
    let template = ChatTemplate::new(&template_source, &bos_token, &eos_token)?;
    let stop_ids = tokenizer.token_to_id(&eos_token).into_iter().collect();
    let name = directory.file_name().map(|n| n.to_string_lossy().into_owned());
    Ok(ModelParts::new(llama, tokenizer, template, stop_ids, name))
}
