//! Adapter files in the Hugging Face PEFT layout: `adapter_model.safetensors`
//! with tensors named like
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`
//! (`A` is `(r, in)`, `B` is `(out, r)`, f32) and `adapter_config.json`.
//!
//! PEFT adapters refer to Hugging Face weights, whose Q and K rows are in
//! `rotate_half` order. GGUF files permute those rows for interleaved RoPE, so
//! the `B` matrices of `q_proj` and `k_proj` are un-permuted on save and
//! permuted on load when the model uses interleaved RoPE.

use super::AlignError;
use super::lora::{LoraConfig, TargetModule};
use super::model::LoraLlama;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";

/// The fields of PEFT's `adapter_config.json` that describe a LoRA adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    pub task_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
}

impl PeftConfig {
    pub fn from_lora(lora: &LoraConfig, base_model: Option<String>) -> Self {
        Self {
            peft_type: "LORA".to_string(),
            task_type: "CAUSAL_LM".to_string(),
            r: lora.rank,
            lora_alpha: lora.alpha,
            lora_dropout: lora.dropout,
            target_modules: lora.target_modules.iter().map(|m| m.name().to_string()).collect(),
            bias: "none".to_string(),
            fan_in_fan_out: false,
            use_rslora: false,
            inference_mode: true,
            base_model_name_or_path: base_model,
        }
    }

    /// Converts to a [`LoraConfig`], rejecting PEFT options this trainer does
    /// not implement.
    pub fn to_lora(&self, seed: u64) -> Result<LoraConfig, String> {
        if self.peft_type != "LORA" {
            return Err(format!("peft_type is {:?}, expected \"LORA\"", self.peft_type));
        }
        if self.bias != "none" || self.fan_in_fan_out || self.use_rslora {
            return Err("bias other than \"none\", fan_in_fan_out and use_rslora are not supported".to_string());
        }
        let target_modules = self
            .target_modules
            .iter()
            .map(|name| TargetModule::from_name(name).ok_or_else(|| format!("unsupported target module {name:?}")))
            .collect::<Result<_, _>>()?;
        Ok(LoraConfig {
            rank: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules,
            seed,
        })
    }
}

/// Returns the PEFT tensor name of `A` (`matrix` "A") or `B` of one adapter.
pub fn tensor_name(layer: usize, module: TargetModule, matrix: char) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{}.lora_{matrix}.weight",
        module.parent(),
        module.name()
    )
}

/// Writes the model's adapters to `dir` (created if missing) in the PEFT
/// layout. `base_model` fills `base_model_name_or_path`.
pub fn save_adapter(model: &LoraLlama, dir: &Path, base_model: Option<String>) -> Result<(), AlignError> {
    let write_error = |path: &Path, message: String| AlignError::Write {
        path: path.display().to_string(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e.to_string()))?;
    let mut tensors = HashMap::new();
    for (layer, module, adapter) in model.adapters() {
        let a = adapter.a.as_tensor().to_dtype(DType::F32)?.contiguous()?;
        let b = to_peft_rows(model, module, adapter.b.as_tensor())?
            .to_dtype(DType::F32)?
            .contiguous()?;
        tensors.insert(tensor_name(layer, module, 'A'), a);
        tensors.insert(tensor_name(layer, module, 'B'), b);
    }
    let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &weights_path).map_err(|e| write_error(&weights_path, e.to_string()))?;

    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    let config = PeftConfig::from_lora(model.lora_config(), base_model);
    let json = serde_json::to_string_pretty(&config).expect("adapter config serializes");
    std::fs::write(&config_path, json + "\n").map_err(|e| write_error(&config_path, e.to_string()))?;
    tracing::info!(dir = %dir.display(), adapters = model.adapters().len(), "adapter saved");
    Ok(())
}

/// Replaces the model's adapters by those stored in `dir`, taking rank,
/// alpha, dropout and target modules from its `adapter_config.json`.
pub fn load_adapter(model: &mut LoraLlama, dir: &Path) -> Result<(), AlignError> {
    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    let invalid = |path: &Path, message: String| AlignError::InvalidAdapter {
        path: path.display().to_string(),
        message,
    };
    let json = std::fs::read_to_string(&config_path).map_err(|e| AlignError::Read {
        path: config_path.display().to_string(),
        message: e.to_string(),
    })?;
    let config: PeftConfig = serde_json::from_str(&json).map_err(|e| invalid(&config_path, e.to_string()))?;
    let lora = config
        .to_lora(model.lora_config().seed)
        .map_err(|message| invalid(&config_path, message))?;
    model.set_lora_config(lora)?;

    let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
    let tensors = candle_core::safetensors::load(&weights_path, model.device())
        .map_err(|e| invalid(&weights_path, e.to_string()))?;
    let dtype = model.dtype();
    for (layer, module, adapter) in model.adapters() {
        let tensor = |matrix: char| {
            let name = tensor_name(layer, module, matrix);
            tensors
                .get(&name)
                .ok_or_else(|| invalid(&weights_path, format!("tensor {name} is missing")))
        };
        let a = tensor('A')?.to_dtype(dtype)?;
        let b = from_peft_rows(model, module, &tensor('B')?.to_dtype(dtype)?)?;
        check_shape(
            &a,
            adapter.a.as_tensor(),
            &weights_path,
            &tensor_name(layer, module, 'A'),
        )?;
        check_shape(
            &b,
            adapter.b.as_tensor(),
            &weights_path,
            &tensor_name(layer, module, 'B'),
        )?;
        adapter.a.set(&a)?;
        adapter.b.set(&b)?;
    }
    tracing::info!(dir = %dir.display(), adapters = model.adapters().len(), "adapter loaded");
    Ok(())
}

fn check_shape(loaded: &Tensor, expected: &Tensor, path: &Path, name: &str) -> Result<(), AlignError> {
    if loaded.dims() == expected.dims() {
        return Ok(());
    }
    Err(AlignError::InvalidAdapter {
        path: path.display().to_string(),
        message: format!(
            "tensor {name} has shape {:?}, expected {:?}",
            loaded.dims(),
            expected.dims()
        ),
    })
}

/// Returns the number of heads whose rows `module` permutes under
/// interleaved RoPE, or `None` when its rows are in the same order in both
/// layouts.
fn permuted_heads(model: &LoraLlama, module: TargetModule) -> Option<usize> {
    let config = model.config();
    if !config.rope_interleaved {
        return None;
    }
    match module {
        TargetModule::QProj => Some(config.num_heads),
        TargetModule::KProj => Some(config.num_kv_heads),
        _ => None,
    }
}

fn to_peft_rows(model: &LoraLlama, module: TargetModule, b: &Tensor) -> candle_core::Result<Tensor> {
    match permuted_heads(model, module) {
        Some(heads) => interleaved_to_half_rows(b, heads),
        None => Ok(b.clone()),
    }
}

fn from_peft_rows(model: &LoraLlama, module: TargetModule, b: &Tensor) -> candle_core::Result<Tensor> {
    match permuted_heads(model, module) {
        Some(heads) => half_to_interleaved_rows(b, heads),
        None => Ok(b.clone()),
    }
}

/// Reorders the rows of `(heads * head_dim, columns)` from Hugging Face
/// `rotate_half` order to llama.cpp's interleaved order: within each head,
/// row `j * head_dim / 2 + i` moves to row `2 i + j`. This is the permutation
/// of llama.cpp's `convert_hf_to_gguf.py` (`LlamaModel.permute`).
pub fn half_to_interleaved_rows(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (rows, columns) = x.dims2()?;
    let half = rows / heads / 2;
    x.reshape((heads, 2, half, columns))?
        .transpose(1, 2)?
        .reshape((rows, columns))
}

/// Inverts [`half_to_interleaved_rows`].
pub fn interleaved_to_half_rows(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (rows, columns) = x.dims2()?;
    let half = rows / heads / 2;
    x.reshape((heads, half, 2, columns))?
        .transpose(1, 2)?
        .reshape((rows, columns))
}
