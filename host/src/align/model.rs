//! A llama decoder for training: frozen base weights dequantized to f32 (or
//! any float dtype), LoRA adapters on the block projections, and log-probs of
//! response tokens for batches of right-padded sequences.
//!
//! Base weights keep the layout of their file. GGUF files store the Q and K
//! rows permuted for interleaved RoPE, so `config.rope_interleaved` is true for
//! them and the forward pass uses `rope_i`, as the inference model does.

use super::AlignError;
use super::adapter::interleaved_to_half_rows;
use super::lora::{LoraAdapter, LoraConfig, LoraLinear, TargetModule};
use super::loss::SequenceLogProbs;
use crate::model::Config;
use candle_core::quantized::gguf_file::Content;
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::ops::{log_softmax, softmax};
use candle_nn::rotary_emb::{rope_i_slow, rope_slow};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Choice of weights for a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterMode {
    /// Base weights only: the frozen reference model of DPO.
    Off,
    /// Base weights plus adapters, without dropout.
    On,
    /// Base weights plus adapters, with the adapters' dropout.
    Train,
}

#[derive(Debug, Clone)]
struct LoraBlock {
    attn_norm: Tensor,
    q: LoraLinear,
    k: LoraLinear,
    v: LoraLinear,
    o: LoraLinear,
    ffn_norm: Tensor,
    gate: LoraLinear,
    up: LoraLinear,
    down: LoraLinear,
}

impl LoraBlock {
    fn linear(&self, module: TargetModule) -> &LoraLinear {
        match module {
            TargetModule::QProj => &self.q,
            TargetModule::KProj => &self.k,
            TargetModule::VProj => &self.v,
            TargetModule::OProj => &self.o,
            TargetModule::GateProj => &self.gate,
            TargetModule::UpProj => &self.up,
            TargetModule::DownProj => &self.down,
        }
    }

    fn linear_mut(&mut self, module: TargetModule) -> &mut LoraLinear {
        match module {
            TargetModule::QProj => &mut self.q,
            TargetModule::KProj => &mut self.k,
            TargetModule::VProj => &mut self.v,
            TargetModule::OProj => &mut self.o,
            TargetModule::GateProj => &mut self.gate,
            TargetModule::UpProj => &mut self.up,
            TargetModule::DownProj => &mut self.down,
        }
    }
}

/// A llama decoder with LoRA adapters, for computing log-probs with gradients.
#[derive(Debug, Clone)]
pub struct LoraLlama {
    config: Config,
    lora: LoraConfig,
    embedding: Tensor,
    blocks: Vec<LoraBlock>,
    norm: Tensor,
    /// `None` when the head is tied to the embedding table.
    lm_head: Option<Tensor>,
    cos: Tensor,
    sin: Tensor,
}

impl LoraLlama {
    /// Loads a llama GGUF file, dequantizes its weights to f32 on `device` and
    /// attaches fresh adapters (`B = 0`) as `lora` describes.
    pub fn from_gguf(path: &Path, lora: LoraConfig, device: &Device) -> Result<Self, AlignError> {
        let read_error = |message: String| AlignError::Read {
            path: path.display().to_string(),
            message,
        };
        let file = File::open(path).map_err(|e| read_error(e.to_string()))?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| read_error(format!("invalid GGUF: {e}")))?;
        let architecture = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if architecture != "llama" {
            return Err(read_error(format!(
                "unsupported architecture {architecture:?}, expected \"llama\""
            )));
        }
        let config = crate::model::read_gguf_config(&content.metadata).map_err(|e| read_error(e.to_string()))?;
        let mut tensor = |name: &str| -> Result<Tensor, AlignError> {
            let qtensor = content
                .tensor(&mut reader, name, device)
                .map_err(|e| read_error(format!("tensor {name}: {e}")))?;
            Ok(qtensor.dequantize(device)?)
        };

        let embedding = tensor("token_embd.weight")?;
        let lm_head = tensor("output.weight").ok();
        let norm = tensor("output_norm.weight")?;
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let mut weight = |suffix: &str| tensor(&format!("blk.{i}.{suffix}.weight"));
            blocks.push(LoraBlock {
                attn_norm: weight("attn_norm")?,
                q: LoraLinear::new(weight("attn_q")?),
                k: LoraLinear::new(weight("attn_k")?),
                v: LoraLinear::new(weight("attn_v")?),
                o: LoraLinear::new(weight("attn_output")?),
                ffn_norm: weight("ffn_norm")?,
                gate: LoraLinear::new(weight("ffn_gate")?),
                up: LoraLinear::new(weight("ffn_up")?),
                down: LoraLinear::new(weight("ffn_down")?),
            });
        }
        tracing::info!(path = %path.display(), layers = config.num_layers, "training model loaded");
        Self::assemble(config, lora, embedding, blocks, norm, lm_head)
    }

    /// Builds a llama with random base weights, seeded by `seed`, and fresh
    /// adapters. Meant for tests; its logits carry no meaning.
    pub fn random(
        config: Config,
        lora: LoraConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, AlignError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let c = &config;
        let q_size = c.num_heads * c.head_dim;
        let kv_size = c.num_kv_heads * c.head_dim;
        let mut matrix = |rows: usize, columns: usize| {
            random_tensor(
                &mut rng,
                (rows, columns),
                (3.0 / columns as f64).sqrt(),
                0.0,
                dtype,
                device,
            )
        };
        let embedding = matrix(c.vocab_size, c.hidden_size)?;
        let mut blocks = Vec::with_capacity(c.num_layers);
        for _ in 0..c.num_layers {
            blocks.push(LoraBlock {
                attn_norm: Tensor::ones(c.hidden_size, dtype, device)?,
                q: LoraLinear::new(matrix(q_size, c.hidden_size)?),
                k: LoraLinear::new(matrix(kv_size, c.hidden_size)?),
                v: LoraLinear::new(matrix(kv_size, c.hidden_size)?),
                o: LoraLinear::new(matrix(c.hidden_size, q_size)?),
                ffn_norm: Tensor::ones(c.hidden_size, dtype, device)?,
                gate: LoraLinear::new(matrix(c.intermediate_size, c.hidden_size)?),
                up: LoraLinear::new(matrix(c.intermediate_size, c.hidden_size)?),
                down: LoraLinear::new(matrix(c.hidden_size, c.intermediate_size)?),
            });
        }
        let norm = Tensor::ones(c.hidden_size, dtype, device)?;
        Self::assemble(config, lora, embedding, blocks, norm, None)
    }

    fn assemble(
        config: Config,
        lora: LoraConfig,
        embedding: Tensor,
        blocks: Vec<LoraBlock>,
        norm: Tensor,
        lm_head: Option<Tensor>,
    ) -> Result<Self, AlignError> {
        lora.validate()?;
        if config.num_heads % config.num_kv_heads != 0 {
            return Err(AlignError::InvalidConfig(format!(
                "{} heads do not split into {} KV groups",
                config.num_heads, config.num_kv_heads
            )));
        }
        let (cos, sin) = crate::model::rope_tables(&config, embedding.device())?;
        let (cos, sin) = (cos.to_dtype(embedding.dtype())?, sin.to_dtype(embedding.dtype())?);
        let mut model = Self {
            config,
            lora,
            embedding,
            blocks,
            norm,
            lm_head,
            cos,
            sin,
        };
        model.reset_adapters()?;
        Ok(model)
    }

    /// Replaces every adapter by a fresh one: `A` random from `lora.seed`,
    /// `B = 0`.
    pub fn reset_adapters(&mut self) -> Result<(), AlignError> {
        let mut rng = StdRng::seed_from_u64(self.lora.seed);
        let (dtype, device) = (self.dtype(), self.device().clone());
        for block in &mut self.blocks {
            for module in TargetModule::ALL {
                let linear = block.linear_mut(module);
                linear.adapter = None;
                if self.lora.target_modules.contains(&module) {
                    let (out_features, in_features) = linear.weight.dims2()?;
                    linear.adapter = Some(LoraAdapter::new(
                        out_features,
                        in_features,
                        &self.lora,
                        &mut rng,
                        dtype,
                        &device,
                    )?);
                }
            }
        }
        Ok(())
    }

    /// Returns a copy with Q and K rows in Hugging Face `rotate_half` order and
    /// non-interleaved RoPE, which computes the same base logits as an
    /// interleaved model. The copy gets fresh adapters.
    pub fn to_half_rope(&self) -> Result<Self, AlignError> {
        let mut model = self.clone();
        if model.config.rope_interleaved {
            for block in &mut model.blocks {
                block.q.weight = interleaved_to_half_rows(&block.q.weight, model.config.num_heads)?;
                block.k.weight = interleaved_to_half_rows(&block.k.weight, model.config.num_kv_heads)?;
            }
            model.config.rope_interleaved = false;
        }
        model.reset_adapters()?;
        Ok(model)
    }

    /// Replaces the adapter configuration and resets every adapter to it.
    pub fn set_lora_config(&mut self, lora: LoraConfig) -> Result<(), AlignError> {
        lora.validate()?;
        self.lora = lora;
        self.reset_adapters()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn lora_config(&self) -> &LoraConfig {
        &self.lora
    }

    pub fn dtype(&self) -> DType {
        self.embedding.dtype()
    }

    pub fn device(&self) -> &Device {
        self.embedding.device()
    }

    /// Returns every adapter with its layer index and module, layer by layer
    /// in [`TargetModule::ALL`] order.
    pub fn adapters(&self) -> Vec<(usize, TargetModule, &LoraAdapter)> {
        let mut adapters = Vec::new();
        for (layer, block) in self.blocks.iter().enumerate() {
            for module in TargetModule::ALL {
                if let Some(adapter) = &block.linear(module).adapter {
                    adapters.push((layer, module, adapter));
                }
            }
        }
        adapters
    }

    /// Returns the trainable variables: `A` and `B` of every adapter.
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.adapters()
            .into_iter()
            .flat_map(|(_, _, adapter)| [adapter.a.clone(), adapter.b.clone()])
            .collect()
    }

    /// Returns the frozen base weight `(out, in)` of one projection.
    pub fn base_weight(&self, layer: usize, module: TargetModule) -> Option<&Tensor> {
        self.blocks.get(layer).map(|block| &block.linear(module).weight)
    }

    /// Runs `tokens` `(batch, seq)` from position 0 and returns the hidden
    /// states after the final norm, `(batch * seq, hidden_size)`.
    pub fn forward_hidden(&self, tokens: &Tensor, mode: AdapterMode) -> Result<Tensor, AlignError> {
        let (batch, seq) = tokens.dims2()?;
        if seq > self.config.context_length {
            return Err(AlignError::InvalidInput(format!(
                "sequence has {seq} tokens but the context is {}",
                self.config.context_length
            )));
        }
        let mask = self.causal_mask(seq)?;
        let eps = self.config.rms_norm_eps;
        let mut x = self.embedding.index_select(&tokens.flatten_all()?, 0)?;
        for block in &self.blocks {
            let h = rms_norm(&x, &block.attn_norm, eps)?;
            x = (&x + self.attention(block, &h, batch, seq, &mask, mode)?)?;
            let h = rms_norm(&x, &block.ffn_norm, eps)?;
            x = (&x + self.mlp(block, &h, mode)?)?;
        }
        Ok(rms_norm(&x, &self.norm, eps)?)
    }

    /// Applies the language-model head to hidden states `(rows, hidden_size)`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor, AlignError> {
        let head = self.lm_head.as_ref().unwrap_or(&self.embedding);
        Ok(super::lora::frozen_linear(hidden, head)?)
    }

    /// Computes the summed log-probs of each `response` after its `prompt`,
    /// for a batch of `(prompt, response)` token sequences. The sequences are
    /// right-padded to one length; causal attention keeps padding out of the
    /// real positions, and only response positions enter the sums.
    pub fn sequence_logprobs(
        &self,
        sequences: &[(&[u32], &[u32])],
        mode: AdapterMode,
    ) -> Result<SequenceLogProbs, AlignError> {
        let batch = sequences.len();
        let seq = sequences
            .iter()
            .map(|(prompt, response)| prompt.len() + response.len())
            .max()
            .unwrap_or(0);
        if batch == 0 {
            return Err(AlignError::InvalidInput("the batch has no sequences".to_string()));
        }
        let mut tokens = vec![0u32; batch * seq];
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        let mut counts = Vec::with_capacity(batch);
        for (i, (prompt, response)) in sequences.iter().enumerate() {
            if prompt.is_empty() || response.is_empty() {
                return Err(AlignError::InvalidInput(format!(
                    "sequence {i} has an empty prompt or response"
                )));
            }
            let start = i * seq;
            tokens[start..start + prompt.len()].copy_from_slice(prompt);
            tokens[start + prompt.len()..start + prompt.len() + response.len()].copy_from_slice(response);
            // Position p predicts token p + 1, so the response is predicted by
            // the last prompt position up to the second-to-last position.
            for (j, &token) in response.iter().enumerate() {
                rows.push((start + prompt.len() - 1 + j) as u32);
                targets.push(token);
            }
            counts.push(response.len() as f64);
        }

        let device = self.device();
        let dtype = self.dtype();
        let hidden = self.forward_hidden(&Tensor::from_vec(tokens, (batch, seq), device)?, mode)?;
        let predicting = hidden.index_select(&Tensor::new(rows.as_slice(), device)?, 0)?;
        let log_probs = log_softmax(&self.logits(&predicting)?, D::Minus1)?;
        let token_logprobs = log_probs.gather(&Tensor::new(targets.as_slice(), device)?.unsqueeze(1)?, 1)?;
        let membership = membership_matrix(sequences, dtype, device)?;
        let sum = membership.matmul(&token_logprobs)?.squeeze(1)?;
        let count = Tensor::from_vec(counts, batch, device)?.to_dtype(dtype)?;
        Ok(SequenceLogProbs { sum, count })
    }

    fn attention(
        &self,
        block: &LoraBlock,
        x: &Tensor,
        batch: usize,
        seq: usize,
        mask: &Tensor,
        mode: AdapterMode,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (use_adapter, train) = mode_flags(mode);
        let q = split_heads(
            &block.q.forward(x, use_adapter, train)?,
            batch,
            seq,
            c.num_heads,
            c.head_dim,
        )?;
        let k = split_heads(
            &block.k.forward(x, use_adapter, train)?,
            batch,
            seq,
            c.num_kv_heads,
            c.head_dim,
        )?;
        let v = split_heads(
            &block.v.forward(x, use_adapter, train)?,
            batch,
            seq,
            c.num_kv_heads,
            c.head_dim,
        )?;
        let q = self.rope(&q)?;
        let k = self.rope(&k)?;

        // Grouped-query attention without copying K and V: the query heads
        // that share a KV head are adjacent, so they fold into the row axis.
        let group = c.num_heads / c.num_kv_heads;
        let q = q.reshape((batch, c.num_kv_heads, group * seq, c.head_dim))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (c.head_dim as f64).sqrt()))?;
        let weights = softmax(&scores.broadcast_add(mask)?, D::Minus1)?;
        let y = weights.matmul(&v)?;
        let y = y.reshape((batch, c.num_heads, seq, c.head_dim))?.transpose(1, 2)?;
        let y = y.reshape((batch * seq, c.num_heads * c.head_dim))?;
        block.o.forward(&y, use_adapter, train)
    }

    fn mlp(&self, block: &LoraBlock, x: &Tensor, mode: AdapterMode) -> candle_core::Result<Tensor> {
        let (use_adapter, train) = mode_flags(mode);
        let gate = block.gate.forward(x, use_adapter, train)?;
        let up = block.up.forward(x, use_adapter, train)?;
        block.down.forward(&(gate.silu()? * up)?, use_adapter, train)
    }

    /// Applies RoPE with the differentiable (`_slow`) candle kernels, because
    /// the fused ones have no backward pass in candle-nn 0.11.
    fn rope(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, 0, seq)?;
        let sin = self.sin.narrow(0, 0, seq)?;
        if self.config.rope_interleaved {
            rope_i_slow(x, &cos, &sin)
        } else {
            rope_slow(x, &cos, &sin)
        }
    }

    /// Additive causal mask, repeated for each query head of a KV group:
    /// `(group * seq, seq)`.
    fn causal_mask(&self, seq: usize) -> candle_core::Result<Tensor> {
        let group = self.config.num_heads / self.config.num_kv_heads;
        let mask: Vec<f32> = (0..group * seq)
            .flat_map(|row| {
                let position = row % seq;
                (0..seq).map(move |key| if key > position { f32::NEG_INFINITY } else { 0.0 })
            })
            .collect();
        Tensor::from_vec(mask, (group * seq, seq), self.device())?.to_dtype(self.dtype())
    }
}

fn mode_flags(mode: AdapterMode) -> (bool, bool) {
    match mode {
        AdapterMode::Off => (false, false),
        AdapterMode::On => (true, false),
        AdapterMode::Train => (true, true),
    }
}

/// Computes RMSNorm from differentiable ops; candle-nn's fused `rms_norm` has
/// no backward pass.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    candle_nn::ops::rms_norm_slow(x, weight, eps)
}

/// Returns `(batch, rows)` with a 1 where a response-token row belongs to the
/// sequence, so that a matmul sums token log-probs per sequence.
fn membership_matrix(sequences: &[(&[u32], &[u32])], dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    let rows: usize = sequences.iter().map(|(_, response)| response.len()).sum();
    let mut values = vec![0.0f64; sequences.len() * rows];
    let mut column = 0;
    for (i, (_, response)) in sequences.iter().enumerate() {
        for _ in 0..response.len() {
            values[i * rows + column] = 1.0;
            column += 1;
        }
    }
    Tensor::from_vec(values, (sequences.len(), rows), device)?.to_dtype(dtype)
}

/// Reshapes a projection output `(batch * seq, heads * head_dim)` into
/// `(batch, heads, seq, head_dim)`.
fn split_heads(x: &Tensor, batch: usize, seq: usize, heads: usize, head_dim: usize) -> candle_core::Result<Tensor> {
    x.reshape((batch, seq, heads, head_dim))?.transpose(1, 2)?.contiguous()
}

fn random_tensor(
    rng: &mut StdRng,
    shape: (usize, usize),
    bound: f64,
    offset: f64,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let values: Vec<f64> = (0..shape.0 * shape.1)
        .map(|_| offset + rng.random_range(-bound..bound))
        .collect();
    Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
}
