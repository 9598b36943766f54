//! The Gemma 3 decoder on quantized GGUF weights, with an external KV cache.

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_transformers::quantized_nn::RmsNorm;
use candle_transformers::utils::repeat_kv;
use std::collections::HashMap;
use std::io::{Read, Seek};

/// Every sixth layer attends globally and the others within the sliding
/// window. The GGUF metadata does not store this pattern, so
/// candle-transformers 0.11's `quantized_gemma3` fixes it at 6 as well.
const GLOBAL_LAYER_PERIOD: usize = 6;
/// RoPE base of the sliding-window layers when the file sets no
/// `gemma3.rope.local_freq_base`, as in candle-transformers 0.11.
const DEFAULT_LOCAL_ROPE_BASE: f32 = 10_000.0;

/// Wraps a weight for matrix products. candle 0.11 has no SIMD kernel for
/// Q5_0 (the format of most projections of Gemma 3 270M Q4_K_M), so Q5_0
/// weights are dequantized to f32 once. That costs about 250 MB and made
/// greedy decoding roughly 3x faster on a shared 2-core AVX-512 machine.
fn matmul(weight: QTensor) -> Result<QMatMul> {
    if weight.dtype() == GgmlDType::Q5_0 {
        return Ok(QMatMul::Tensor(weight.dequantize(&weight.device())?));
    }
    QMatMul::from_qtensor(weight)
}

/// Gemma 3 hyperparameters from the `gemma3.*` GGUF metadata keys.
#[derive(Debug, Clone)]
pub struct Config {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub sliding_window: usize,
    pub rope_base: f32,
    pub local_rope_base: f32,
    pub context_length: usize,
}

impl Config {
    pub fn from_metadata(metadata: &HashMap<String, Value>) -> Result<Self> {
        let get = |key: &str| {
            metadata
                .get(&format!("gemma3.{key}"))
                .ok_or_else(|| candle_core::Error::Msg(format!("GGUF metadata key gemma3.{key} is missing")))
        };
        let get_usize = |key: &str| get(key).and_then(|v| v.to_u32()).map(|v| v as usize);
        Ok(Self {
            hidden_size: get_usize("embedding_length")?,
            num_layers: get_usize("block_count")?,
            num_heads: get_usize("attention.head_count")?,
            num_kv_heads: get_usize("attention.head_count_kv")?,
            head_dim: get_usize("attention.key_length")?,
            rms_norm_eps: f64::from(get("attention.layer_norm_rms_epsilon")?.to_f32()?),
            sliding_window: get_usize("attention.sliding_window")?,
            rope_base: get("rope.freq_base")?.to_f32()?,
            local_rope_base: get("rope.local_freq_base")
                .and_then(|v| v.to_f32())
                .unwrap_or(DEFAULT_LOCAL_ROPE_BASE),
            context_length: get_usize("context_length")?,
        })
    }
}

/// Keys and values of every layer for the positions seen so far. Cloning is
/// cheap (tensors are shared) and the clones grow independently, so one
/// prefilled cache can seed several responses.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    pub fn new(config: &Config) -> Self {
        Self {
            layers: vec![None; config.num_layers],
            len: 0,
        }
    }
}

/// Cosine and sine tables of rotary position embeddings, `(positions, head_dim / 2)`.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(base: f32, head_dim: usize, positions: usize, device: &Device) -> Result<Self> {
        let inverse_frequencies: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
            .collect();
        let inverse_frequencies = Tensor::new(inverse_frequencies.as_slice(), device)?.unsqueeze(0)?;
        let positions = Tensor::arange(0u32, positions as u32, device)?
            .to_dtype(DType::F32)?
            .unsqueeze(1)?;
        let angles = positions.matmul(&inverse_frequencies)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// Rotates `x`, shaped `(batch, heads, seq_len, head_dim)`, as positions
    /// `offset..offset + seq_len` (the NeoX layout of Gemma).
    fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let seq_len = x.dim(2)?;
        let cos = self.cos.narrow(0, offset, seq_len)?;
        let sin = self.sin.narrow(0, offset, seq_len)?;
        candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)
    }
}

struct Layer {
    attention_norm: RmsNorm,
    query: QMatMul,
    key: QMatMul,
    value: QMatMul,
    output: QMatMul,
    query_norm: RmsNorm,
    key_norm: RmsNorm,
    post_attention_norm: RmsNorm,
    ffn_norm: RmsNorm,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
    post_ffn_norm: RmsNorm,
    /// Attention span in positions: the sliding window, or `None` for global layers.
    window: Option<usize>,
}

/// The Gemma 3 decoder: token embeddings scaled by `sqrt(hidden_size)`,
/// layers with QK-norm and norms before and after attention and the
/// feed-forward network (GELU, tanh approximation), and a head tied to the
/// embeddings unless the file has `output.weight`.
pub struct Transformer {
    config: Config,
    embedding: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    head: QMatMul,
    global_rope: Rope,
    local_rope: Rope,
}

impl Transformer {
    pub fn from_gguf<R: Read + Seek>(content: &Content, reader: &mut R, device: &Device) -> Result<Self> {
        let config = Config::from_metadata(&content.metadata)?;
        let mut tensor = |name: &str| content.tensor(reader, name, device);
        let norm = |weight: QTensor| RmsNorm::from_qtensor(weight, config.rms_norm_eps);

        let embedding_q = tensor("token_embd.weight")?;
        let embedding = embedding_q.dequantize(device)?;
        let head = match tensor("output.weight") {
            Ok(output) => QMatMul::from_qtensor(output)?,
            Err(_) => QMatMul::from_qtensor(embedding_q)?,
        };
        let output_norm = norm(tensor("output_norm.weight")?)?;

        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let mut weight = |suffix: &str| tensor(&format!("blk.{i}.{suffix}.weight"));
            let is_global = (i + 1) % GLOBAL_LAYER_PERIOD == 0;
            layers.push(Layer {
                attention_norm: norm(weight("attn_norm")?)?,
                query: matmul(weight("attn_q")?)?,
                key: matmul(weight("attn_k")?)?,
                value: matmul(weight("attn_v")?)?,
                output: matmul(weight("attn_output")?)?,
                query_norm: norm(weight("attn_q_norm")?)?,
                key_norm: norm(weight("attn_k_norm")?)?,
                post_attention_norm: norm(weight("post_attention_norm")?)?,
                ffn_norm: norm(weight("ffn_norm")?)?,
                gate: matmul(weight("ffn_gate")?)?,
                up: matmul(weight("ffn_up")?)?,
                down: matmul(weight("ffn_down")?)?,
                post_ffn_norm: norm(weight("post_ffw_norm")?)?,
                window: (!is_global).then_some(config.sliding_window),
            });
        }

        let global_rope = Rope::new(config.rope_base, config.head_dim, config.context_length, device)?;
        let local_rope = Rope::new(config.local_rope_base, config.head_dim, config.context_length, device)?;
        Ok(Self {
            config,
            embedding,
            layers,
            norm: output_norm,
            head,
            global_rope,
            local_rope,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs `tokens` after the positions in `cache`, appends their keys and
    /// values to it, and returns the final-normed hidden states,
    /// `(tokens.len(), hidden_size)`.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let device = self.embedding.device();
        let offset = cache.len;
        let ids = Tensor::new(tokens, device)?;
        let scale = (self.config.hidden_size as f64).sqrt();
        let mut hidden = (self.embedding.index_select(&ids, 0)? * scale)?.unsqueeze(0)?;

        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let residual = &hidden;
            let attention = self.attention(layer, &layer.attention_norm.forward(&hidden)?, layer_cache, offset)?;
            let hidden_mid = (layer.post_attention_norm.forward(&attention)? + residual)?;

            let normed = layer.ffn_norm.forward(&hidden_mid)?;
            let activated = (layer.gate.forward(&normed)?.gelu()? * layer.up.forward(&normed)?)?;
            let feed_forward = layer.post_ffn_norm.forward(&layer.down.forward(&activated)?)?;
            hidden = (feed_forward + hidden_mid)?;
        }

        cache.len += tokens.len();
        self.norm.forward(&hidden.squeeze(0)?)
    }

    /// Returns the logits of hidden states `(rows, hidden_size)`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.head.forward(hidden)
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
        offset: usize,
    ) -> Result<Tensor> {
        let (batch, seq_len, _) = x.dims3()?;
        let head_dim = self.config.head_dim;
        let heads = |projection: &QMatMul, count: usize| -> Result<Tensor> {
            projection
                .forward(x)?
                .reshape((batch, seq_len, count, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let rope = if layer.window.is_some() {
            &self.local_rope
        } else {
            &self.global_rope
        };
        let query = rope.apply(
            &layer.query_norm.forward(&heads(&layer.query, self.config.num_heads)?)?,
            offset,
        )?;
        let key = rope.apply(
            &layer.key_norm.forward(&heads(&layer.key, self.config.num_kv_heads)?)?,
            offset,
        )?;
        let value = heads(&layer.value, self.config.num_kv_heads)?;

        let (key, value) = match cache.take() {
            Some((cached_key, cached_value)) => (
                Tensor::cat(&[&cached_key, &key], 2)?,
                Tensor::cat(&[&cached_value, &value], 2)?,
            ),
            None => (key, value),
        };
        *cache = Some((key.clone(), value.clone()));

        let repeats = self.config.num_heads / self.config.num_kv_heads;
        let key = repeat_kv(key, repeats)?.contiguous()?;
        let value = repeat_kv(value, repeats)?.contiguous()?;
        let mut scores = (query.matmul(&key.t()?)? / (head_dim as f64).sqrt())?;
        if let Some(mask) = attention_mask(seq_len, offset, layer.window, x.device())? {
            scores = scores.broadcast_add(&mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let attended =
            weights
                .matmul(&value)?
                .transpose(1, 2)?
                .reshape((batch, seq_len, self.config.num_heads * head_dim))?;
        layer.output.forward(&attended)
    }
}

/// Returns the additive mask, `(seq_len, offset + seq_len)`, of queries at
/// positions `offset..offset + seq_len`. A query attends to keys at or before
/// its position and, in a sliding-window layer, fewer than `window` positions
/// back. Returns `None` when the mask would hide no key.
fn attention_mask(seq_len: usize, offset: usize, window: Option<usize>, device: &Device) -> Result<Option<Tensor>> {
    let total = offset + seq_len;
    let window = window.unwrap_or(usize::MAX);
    if seq_len == 1 && total <= window {
        return Ok(None);
    }
    let mask: Vec<f32> = (0..seq_len)
        .flat_map(|row| {
            let query = offset + row;
            (0..total).map(move |key| {
                if key > query || query - key >= window {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Some(Tensor::from_vec(mask, (seq_len, total), device)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_rows(seq_len: usize, offset: usize, window: Option<usize>) -> Option<Vec<Vec<bool>>> {
        let mask = attention_mask(seq_len, offset, window, &Device::Cpu).unwrap()?;
        let rows: Vec<Vec<f32>> = mask.to_vec2().unwrap();
        Some(
            rows.iter()
                .map(|row| row.iter().map(|v| v.is_finite()).collect())
                .collect(),
        )
    }

    #[test]
    fn mask_is_causal() {
        let rows = mask_rows(3, 1, None).unwrap();
        assert_eq!(rows[0], [true, true, false, false]);
        assert_eq!(rows[2], [true, true, true, true]);
    }

    #[test]
    fn mask_limits_sliding_window() {
        let rows = mask_rows(1, 4, Some(3)).unwrap();
        assert_eq!(rows[0], [false, false, true, true, true]);
        assert!(
            mask_rows(1, 2, Some(3)).is_none(),
            "a single query within the window needs no mask"
        );
    }
}
