//! Loading llama models from GGUF files (llama.cpp's format).

use super::ModelParts;
use super::chat_template::ChatTemplate;
use super::linear::Linear;
use super::llama::{Block, Config, Llama};
use super::tokenizer::{metadata_string, tokenizer_from_gguf};
use crate::model::ModelError;
use candle_core::Device;
use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::{Content, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use tokenizers::Tokenizer;

/// Loads the weights, tokenizer and chat template of a llama GGUF file.
pub fn load(path: &Path, device: &Device) -> Result<ModelParts, ModelError> {
    let load_error = |message: String| ModelError::Load {
        path: path.display().to_string(),
        message,
    };
    let (content, mut reader) = open(path)?;
    let metadata = &content.metadata;

    let architecture = metadata_string(metadata, "general.architecture")?;
    if architecture != "llama" {
        return Err(load_error(format!(
            "unsupported architecture {architecture:?}, expected \"llama\""
        )));
    }
    let config = read_config(metadata).map_err(|e| load_error(e.to_string()))?;
    let mut tensor = |name: &str| {
        content
            .tensor(&mut reader, name, device)
            .map_err(|e| load_error(format!("tensor {name}: {e}")))
    };

    let embedding_q = tensor("token_embd.weight")?;
    let embedding = embedding_q.dequantize(device)?;
    let lm_head = match tensor("output.weight") {
        Ok(output) => Linear::from_qtensor(output)?,
        // Tied embeddings: the head reuses the embedding table.
        Err(_) => Linear::from_qtensor(embedding_q)?,
    };
    let norm = tensor("output_norm.weight")?.dequantize(device)?;
    let mut blocks = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let mut block_tensor = |suffix: &str| tensor(&format!("blk.{i}.{suffix}.weight"));
        let qkv: Vec<QTensor> = vec![
            block_tensor("attn_q")?,
            block_tensor("attn_k")?,
            block_tensor("attn_v")?,
        ];
        let gate_up: Vec<QTensor> = vec![block_tensor("ffn_gate")?, block_tensor("ffn_up")?];
        blocks.push(Block {
            attn_norm: block_tensor("attn_norm")?.dequantize(device)?,
            qkv: Linear::from_qtensors(qkv)?,
            output: Linear::from_qtensor(block_tensor("attn_output")?)?,
            ffn_norm: block_tensor("ffn_norm")?.dequantize(device)?,
            gate_up: Linear::from_qtensors(gate_up)?,
            down: Linear::from_qtensor(block_tensor("ffn_down")?)?,
        });
    }
    let llama = Llama::new(config, embedding, blocks, norm, lm_head)?;

    let tokenizer = tokenizer_from_gguf(metadata)?;
    let bos_token = token_text(metadata, &tokenizer, "tokenizer.ggml.bos_token_id").unwrap_or_default();
    let eos_token = token_text(metadata, &tokenizer, "tokenizer.ggml.eos_token_id").unwrap_or_default();
    let template_source = metadata_string(metadata, "tokenizer.chat_template")
        .map_err(|_| load_error("GGUF metadata has no tokenizer.chat_template".to_string()))?;
    let template = ChatTemplate::new(template_source, &bos_token, &eos_token)?;

    let stop_ids = ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
        .iter()
        .filter_map(|key| metadata.get(*key)?.to_u32().ok())
        .collect();
    let name = metadata.get("general.name").and_then(|v| v.to_string().ok()).cloned();
    let mut parts = ModelParts::new(llama, tokenizer, template, stop_ids, name);
    parts.prompt_bos = prompt_bos(metadata);
    Ok(parts)
}

/// Opens a GGUF file and reads its header: metadata and tensor index. The
/// reader is left open for loading tensors.
pub(crate) fn open(path: &Path) -> Result<(Content, BufReader<File>), ModelError> {
    let load_error = |message: String| ModelError::Load {
        path: path.display().to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| load_error(e.to_string()))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| load_error(format!("invalid GGUF: {e}")))?;
    Ok((content, reader))
}

/// Reads `general.architecture` from the header of a GGUF file.
pub(crate) fn read_architecture(path: &Path) -> Result<String, ModelError> {
    let (content, _) = open(path)?;
    metadata_string(&content.metadata, "general.architecture")
        .map(str::to_string)
        .map_err(|e| ModelError::Load {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

/// Returns the text of the token whose id is stored under `key`, such as
/// `tokenizer.ggml.bos_token_id`.
pub(crate) fn token_text(metadata: &HashMap<String, Value>, tokenizer: &Tokenizer, key: &str) -> Option<String> {
    let id = metadata.get(key)?.to_u32().ok()?;
    tokenizer.id_to_token(id)
}

/// Returns the BOS id to put before each prompt when the file sets
/// `tokenizer.ggml.add_bos_token`.
pub(crate) fn prompt_bos(metadata: &HashMap<String, Value>) -> Option<u32> {
    let add_bos = metadata
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    if !add_bos {
        return None;
    }
    metadata
        .get("tokenizer.ggml.bos_token_id")
        .and_then(|v| v.to_u32().ok())
}

/// Reads the llama hyperparameters from GGUF metadata.
pub(crate) fn read_config(metadata: &HashMap<String, Value>) -> candle_core::Result<Config> {
    let get = |key: &str| {
        metadata
            .get(&format!("llama.{key}"))
            .ok_or_else(|| candle_core::Error::Msg(format!("GGUF metadata key llama.{key} is missing")))
    };
    let get_usize = |key: &str| get(key).and_then(|v| v.to_u32()).map(|v| v as usize);
    let hidden_size = get_usize("embedding_length")?;
    let num_heads = get_usize("attention.head_count")?;
    let vocab_size = match metadata.get("llama.vocab_size") {
        Some(v) => v.to_u32()? as usize,
        None => metadata
            .get("tokenizer.ggml.tokens")
            .map_or(Ok(0), |v| v.to_vec().map(Vec::len))?,
    };
    Ok(Config {
        hidden_size,
        intermediate_size: get_usize("feed_forward_length")?,
        num_layers: get_usize("block_count")?,
        num_heads,
        num_kv_heads: get_usize("attention.head_count_kv").unwrap_or(num_heads),
        head_dim: get_usize("rope.dimension_count").unwrap_or(hidden_size / num_heads),
        vocab_size,
        rms_norm_eps: get("attention.layer_norm_rms_epsilon")?.to_f32()?,
        rope_theta: get("rope.freq_base").and_then(|v| v.to_f32()).unwrap_or(10_000.0),
        context_length: get_usize("context_length")?,
        rope_interleaved: true,
    })
}
