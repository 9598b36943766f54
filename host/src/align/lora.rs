//! LoRA adapters: a frozen linear weight `W` plus a trainable low-rank update,
//! `y = x Wᵀ + (α / r) · x Aᵀ Bᵀ`.

use super::AlignError;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor, Var};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// A linear layer of a llama block that can carry an adapter. The names are
/// the Hugging Face module names that PEFT's `target_modules` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TargetModule {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl TargetModule {
    pub const ALL: [TargetModule; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// Returns the Hugging Face module name, such as `q_proj`.
    pub fn name(self) -> &'static str {
        match self {
            Self::QProj => "q_proj",
            Self::KProj => "k_proj",
            Self::VProj => "v_proj",
            Self::OProj => "o_proj",
            Self::GateProj => "gate_proj",
            Self::UpProj => "up_proj",
            Self::DownProj => "down_proj",
        }
    }

    /// Returns the Hugging Face parent module, `self_attn` or `mlp`.
    pub fn parent(self) -> &'static str {
        match self {
            Self::QProj | Self::KProj | Self::VProj | Self::OProj => "self_attn",
            Self::GateProj | Self::UpProj | Self::DownProj => "mlp",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|module| module.name() == name)
    }
}

/// Shape and initialisation of the adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r` of each update.
    pub rank: usize,
    /// Scaling numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f64,
    /// Dropout probability on the adapter input during training.
    /// NOTE: candle draws the dropout masks from an unseeded generator, so
    /// runs with dropout are not reproducible.
    pub dropout: f64,
    pub target_modules: Vec<TargetModule>,
    /// Seed of the random initialisation of the `A` matrices.
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 16.0,
            dropout: 0.0,
            target_modules: TargetModule::ALL.to_vec(),
            seed: 0,
        }
    }
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    pub fn validate(&self) -> Result<(), AlignError> {
        if self.rank == 0 {
            return Err(AlignError::InvalidConfig("LoRA rank must be at least 1".to_string()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(AlignError::InvalidConfig(format!(
                "LoRA dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// The trainable pair of one adapter: `a` is `(rank, in)`, `b` is `(out, rank)`.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    pub a: Var,
    pub b: Var,
    pub scale: f64,
    pub dropout: f64,
}

impl LoraAdapter {
    /// Creates an adapter with `A` drawn uniformly from `±1/√in` (PEFT's
    /// Kaiming-uniform with `a = √5`) and `B = 0`, so it starts as a no-op.
    pub fn new(
        out_features: usize,
        in_features: usize,
        config: &LoraConfig,
        rng: &mut StdRng,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, AlignError> {
        let bound = 1.0 / (in_features as f64).sqrt();
        let values: Vec<f64> = (0..config.rank * in_features)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Tensor::from_vec(values, (config.rank, in_features), device)?.to_dtype(dtype)?;
        let b = Tensor::zeros((out_features, config.rank), dtype, device)?;
        Ok(Self {
            a: Var::from_tensor(&a)?,
            b: Var::from_tensor(&b)?,
            scale: config.scale(),
            dropout: config.dropout,
        })
    }
}

/// A frozen weight `(out, in)` with an optional adapter.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    pub weight: Tensor,
    pub adapter: Option<LoraAdapter>,
}

impl LoraLinear {
    pub fn new(weight: Tensor) -> Self {
        Self { weight, adapter: None }
    }

    /// Applies the layer to `x` `(rows, in)`. The adapter is skipped when
    /// `use_adapter` is false, and its input goes through dropout when
    /// `train` is true and the dropout probability is non-zero.
    pub fn forward(&self, x: &Tensor, use_adapter: bool, train: bool) -> candle_core::Result<Tensor> {
        let base = frozen_linear(x, &self.weight)?;
        let Some(adapter) = self.adapter.as_ref().filter(|_| use_adapter) else {
            return Ok(base);
        };
        let input = if train && adapter.dropout > 0.0 {
            candle_nn::ops::dropout(x, adapter.dropout as f32)?
        } else {
            x.clone()
        };
        let update = input
            .matmul(&adapter.a.as_tensor().t()?)?
            .matmul(&adapter.b.as_tensor().t()?)?;
        base + (update * adapter.scale)?
    }
}

/// Computes `x Wᵀ` for a frozen weight `W` `(out, in)` and a 2-D `x`
/// `(rows, in)`. Autograd propagates the gradient to `x` only: candle's
/// matmul backward also computes `∂L/∂W`, a full weight-sized product per
/// projection that training would throw away.
pub fn frozen_linear(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.rank() == 2 {
        x.apply_op2(weight, FrozenLinear)
    } else {
        x.matmul(&weight.t()?)
    }
}

/// The custom op behind [`frozen_linear`].
struct FrozenLinear;

impl CustomOp2 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, inputs) = x_layout.shape().dims2()?;
        let (outputs, weight_inputs) = weight_layout.shape().dims2()?;
        if inputs != weight_inputs {
            candle_core::bail!("frozen-linear: input has {inputs} features but the weight expects {weight_inputs}");
        }
        let transposed = weight_layout.transpose(0, 1)?;
        let output = x.matmul(weight, (1, rows, outputs, inputs), x_layout, &transposed)?;
        Ok((output, Shape::from((rows, outputs))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        weight: &Tensor,
        _output: &Tensor,
        output_grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(output_grad.matmul(weight)?), None))
    }
}
