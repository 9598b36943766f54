//! Llama decoder forward pass over a preallocated KV cache.

use super::linear::Linear;
use candle_core::{D, DType, Device, Result, Tensor};
use candle_nn::ops::{rms_norm, silu, softmax_last_dim};

/// Default of [`Llama::set_quantized_decode`]. With `benches/inference.rs`
/// on a 2-core AMD EPYC (AVX, FMA, no AVX2), the quantized kernels decoded
/// 83 tokens/s at n=10 against 58 for f32, and about the same at n=1.
const QUANTIZED_DECODE: bool = true;

/// Hyperparameters of a llama decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub context_length: usize,
    /// RoPE rotates pairs `(2i, 2i+1)` when true, as llama.cpp's GGUF
    /// conversion permutes Q and K for, and pairs `(i, i + head_dim/2)` when
    /// false, as Hugging Face checkpoints expect.
    pub rope_interleaved: bool,
}

/// Weights of one decoder block. Q, K and V are stacked into one projection,
/// and so are the gate and up projections of the MLP.
#[derive(Debug, Clone)]
pub struct Block {
    pub attn_norm: Tensor,
    pub qkv: Linear,
    pub output: Linear,
    pub ffn_norm: Tensor,
    pub gate_up: Linear,
    pub down: Linear,
}

/// A llama decoder with its embedding table and language-model head.
/// A projection matrix of one transformer block, in Hugging Face's naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

#[derive(Debug, Clone)]
pub struct Llama {
    config: Config,
    /// Token embeddings, `(vocab_size, hidden_size)` f32.
    embedding: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    cos: Tensor,
    sin: Tensor,
    /// Whether decode steps (one new position per sequence) use the quantized
    /// kernels. Prompt processing always uses the f32 gemm, which is much
    /// faster for many rows. The choice never depends on the batch size, so a
    /// sequence gets the same logits whatever batch it is decoded in.
    /// NOTE: the f32 path (safetensors models, merged adapters, or this flag
    /// off) runs gemm with the batch as its row count, so row results may
    /// differ in the last bits between batch sizes. Only the quantized path
    /// is tested for batch independence.
    quantized_decode: bool,
}

/// Keys and values of every layer for a batch of sequences of equal length,
/// `(batch, num_kv_heads, capacity, head_dim)` each, filled up to `len`.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl KvCache {
    pub fn new(config: &Config, batch: usize, capacity: usize, device: &Device) -> Result<Self> {
        let shape = (batch, config.num_kv_heads, capacity, config.head_dim);
        let layers = (0..config.num_layers)
            .map(|_| {
                Ok((
                    Tensor::zeros(shape, DType::F32, device)?,
                    Tensor::zeros(shape, DType::F32, device)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, len: 0 })
    }

    pub fn capacity(&self) -> usize {
        self.layers.first().map_or(0, |(k, _)| k.dims()[2])
    }

    /// Returns a new cache made of the batch rows `rows` of this one, in that
    /// order. A row may repeat, which is how one prefilled prompt becomes N.
    pub fn select_rows(&self, rows: &[u32]) -> Result<Self> {
        let Some((first, _)) = self.layers.first() else {
            return Ok(self.clone());
        };
        let index = Tensor::new(rows, first.device())?;
        let layers = self
            .layers
            .iter()
            .map(|(k, v)| Ok((k.index_select(&index, 0)?, v.index_select(&index, 0)?)))
            .collect::<Result<_>>()?;
        Ok(Self { layers, len: self.len })
    }
}

impl Llama {
    pub fn new(config: Config, embedding: Tensor, blocks: Vec<Block>, norm: Tensor, lm_head: Linear) -> Result<Self> {
        let (cos, sin) = rope_tables(&config, embedding.device())?;
        Ok(Self {
            config,
            embedding,
            blocks,
            norm,
            lm_head,
            cos,
            sin,
            quantized_decode: QUANTIZED_DECODE,
        })
    }

    pub fn set_quantized_decode(&mut self, quantized: bool) {
        self.quantized_decode = quantized;
    }

    /// Adds `delta`, shaped like the projection's `(out, in)` weight in the
    /// GGUF row order, to the weight of `projection` in block `layer`.
    pub fn add_weight_delta(&mut self, layer: usize, projection: Projection, delta: &Tensor) -> Result<()> {
        let config = &self.config;
        let q_rows = config.num_heads * config.head_dim;
        let kv_rows = config.num_kv_heads * config.head_dim;
        let Some(block) = self.blocks.get_mut(layer) else {
            candle_core::bail!("layer {layer} out of range");
        };
        match projection {
            Projection::Q => block.qkv.add_to_rows(0, delta),
            Projection::K => block.qkv.add_to_rows(q_rows, delta),
            Projection::V => block.qkv.add_to_rows(q_rows + kv_rows, delta),
            Projection::O => block.output.add_to_rows(0, delta),
            Projection::Gate => block.gate_up.add_to_rows(0, delta),
            Projection::Up => block.gate_up.add_to_rows(config.intermediate_size, delta),
            Projection::Down => block.down.add_to_rows(0, delta),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.embedding.device()
    }

    /// Runs `tokens` `(batch, seq)` at positions `cache.len()..` and appends
    /// their keys and values to `cache`. Returns the hidden states after the
    /// final norm, `(batch * seq, hidden_size)`; pass the rows you need to
    /// [`Llama::logits`].
    pub fn forward(&self, tokens: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (batch, seq) = tokens.dims2()?;
        let start = cache.len;
        if start + seq > cache.capacity() {
            candle_core::bail!(
                "KV cache capacity is {} positions but {} are required",
                cache.capacity(),
                start + seq
            );
        }
        let mask = if seq > 1 {
            Some(self.causal_mask(seq, start)?)
        } else {
            None
        };
        let quantized = seq == 1 && self.quantized_decode;
        let mut x = self.embedding.index_select(&tokens.flatten_all()?, 0)?;
        for (block, (k_cache, v_cache)) in self.blocks.iter().zip(&cache.layers) {
            let h = rms_norm(&x, &block.attn_norm, self.config.rms_norm_eps)?;
            let h = self.attention(
                block,
                &h,
                (batch, seq, start),
                (k_cache, v_cache),
                mask.as_ref(),
                quantized,
            )?;
            x = (x + h)?;
            let h = rms_norm(&x, &block.ffn_norm, self.config.rms_norm_eps)?;
            x = (&x + self.mlp(block, &h, quantized)?)?;
        }
        cache.len += seq;
        rms_norm(&x, &self.norm, self.config.rms_norm_eps)
    }

    /// Applies the language-model head to hidden states `(rows, hidden_size)`
    /// of decode steps (`decode` true) or of a processed prompt.
    pub fn logits(&self, hidden: &Tensor, decode: bool) -> Result<Tensor> {
        self.lm_head
            .forward(&hidden.contiguous()?, decode && self.quantized_decode)
    }

    fn attention(
        &self,
        block: &Block,
        x: &Tensor,
        (batch, seq, start): (usize, usize, usize),
        (k_cache, v_cache): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        quantized: bool,
    ) -> Result<Tensor> {
        let c = &self.config;
        let qkv = block.qkv.forward(x, quantized)?;
        let q = split_heads(&qkv, 0, c.num_heads, (batch, seq, c.head_dim))?;
        let k = split_heads(&qkv, c.num_heads, c.num_kv_heads, (batch, seq, c.head_dim))?;
        let v = split_heads(
            &qkv,
            c.num_heads + c.num_kv_heads,
            c.num_kv_heads,
            (batch, seq, c.head_dim),
        )?;
        let q = self.rope(&q, start)?;
        let k = self.rope(&k, start)?;

        k_cache.slice_set(&k, 2, start)?;
        v_cache.slice_set(&v, 2, start)?;
        let len = start + seq;
        let k = k_cache.narrow(2, 0, len)?;
        let v = v_cache.narrow(2, 0, len)?;

        // Grouped-query attention without copying K and V: the query heads
        // that share a KV head are adjacent, so they fold into the row axis.
        let group = c.num_heads / c.num_kv_heads;
        let q = q.reshape((batch, c.num_kv_heads, group * seq, c.head_dim))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (c.head_dim as f64).sqrt()))?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let y = softmax_last_dim(&scores)?.matmul(&v)?;
        let y = y.reshape((batch, c.num_heads, seq, c.head_dim))?.transpose(1, 2)?;
        let y = y.reshape((batch * seq, c.num_heads * c.head_dim))?;
        block.output.forward(&y, quantized)
    }

    fn mlp(&self, block: &Block, x: &Tensor, quantized: bool) -> Result<Tensor> {
        let size = self.config.intermediate_size;
        let gate_up = block.gate_up.forward(x, quantized)?;
        let gate = gate_up.narrow(D::Minus1, 0, size)?;
        let up = gate_up.narrow(D::Minus1, size, size)?;
        block.down.forward(&(silu(&gate)? * up)?, quantized)
    }

    fn rope(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, start, seq)?;
        let sin = self.sin.narrow(0, start, seq)?;
        if self.config.rope_interleaved {
            candle_nn::rotary_emb::rope_i(x, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope(x, &cos, &sin)
        }
    }

    /// Additive causal mask for `seq` new positions after `start` cached ones,
    /// repeated for each query head of a KV group: `(group * seq, start + seq)`.
    fn causal_mask(&self, seq: usize, start: usize) -> Result<Tensor> {
        let group = self.config.num_heads / self.config.num_kv_heads;
        let len = start + seq;
        let mask: Vec<f32> = (0..group * seq)
            .flat_map(|row| {
                let position = start + row % seq;
                (0..len).map(move |key| if key > position { f32::NEG_INFINITY } else { 0.0 })
            })
            .collect();
        Tensor::from_vec(mask, (group * seq, len), self.device())
    }
}

/// Takes `count` heads starting at head `first` from a stacked QKV output
/// `(batch * seq, heads * head_dim)` and returns `(batch, count, seq, head_dim)`.
fn split_heads(
    qkv: &Tensor,
    first: usize,
    count: usize,
    (batch, seq, head_dim): (usize, usize, usize),
) -> Result<Tensor> {
    qkv.narrow(1, first * head_dim, count * head_dim)?
        .reshape((batch, seq, count, head_dim))?
        .transpose(1, 2)?
        .contiguous()
}

/// Cosine and sine tables `(context_length, head_dim / 2)` for RoPE.
pub(crate) fn rope_tables(config: &Config, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim / 2;
    let inverse_frequencies: Vec<f32> = (0..half)
        .map(|i| config.rope_theta.powf(-2.0 * i as f32 / config.head_dim as f32))
        .collect();
    let angles: Vec<f32> = (0..config.context_length)
        .flat_map(|position| inverse_frequencies.iter().map(move |f| position as f32 * f))
        .collect();
    let angles = Tensor::from_vec(angles, (config.context_length, half), device)?;
    Ok((angles.cos()?, angles.sin()?))
}
