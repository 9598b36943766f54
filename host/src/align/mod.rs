//! Preference alignment: DPO-family losses, a llama with LoRA adapters over
//! frozen GGUF weights, a trainer and adapter files in the Hugging Face PEFT
//! layout.
//!
//! The training model is a separate f32 forward pass from the inference model
//! in [`crate::model`], because candle's fused kernels used there (RMSNorm,
//! RoPE, softmax) have no backward pass.

pub mod adapter;
pub mod checkpoint;
pub mod data;
pub mod lora;
pub mod loss;
mod merge;
pub mod model;
pub mod optimizer;
pub mod train;

pub use adapter::{ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PeftConfig, load_adapter, save_adapter};
pub use checkpoint::CheckpointDir;
pub use data::{LengthLimits, TokenizedPair, read_preferences, tokenize_preferences};
pub use lora::{LoraConfig, LoraLinear, TargetModule};
pub use loss::{LossConfig, LossOutput, PreferenceLogProbs, PreferenceLoss, SequenceLogProbs};
pub use merge::merge_adapter;
pub use model::{AdapterMode, LoraLlama};
pub use optimizer::{AdamW, AdamWParams, clip_gradient_norm};
pub use train::{
    Evaluation, Scheduler, StepLog, TrainConfig, Trainer, TrainerState, cosine_learning_rate, evaluate_loss,
    reference_logprobs, split_validation,
};

use crate::model::ModelError;

/// Errors of preference training.
#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("loss {0} needs reference log-probabilities, but none were given")]
    MissingReference(&'static str),
    #[error("failed to read {path}: {message}")]
    Read { path: String, message: String },
    #[error("failed to write {path}: {message}")]
    Write { path: String, message: String },
    #[error("invalid adapter {path}: {message}")]
    InvalidAdapter { path: String, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
