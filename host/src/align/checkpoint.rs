//! The output folder of a training run: the best adapter at the top, the last
//! checkpoint (adapter, optimizer moments, trainer state) under `last/`, and
//! the cached reference log-probs, so that a killed run resumes where its last
//! checkpoint left it.
//!
//! ```text
//! OUT/adapter_model.safetensors   best adapter by validation loss (PEFT layout)
//! OUT/adapter_config.json
//! OUT/trainer_state.json          losses, validation history, best epoch
//! OUT/reference_logprobs.json     reference log-probs of every pair
//! OUT/last/                       adapter + optimizer.safetensors + trainer_state.json
//! ```

use super::AlignError;
use super::adapter::{load_adapter, save_adapter};
use super::model::LoraLlama;
use super::optimizer::AdamW;
use super::train::TrainerState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const REFERENCE_FILE: &str = "reference_logprobs.json";
const LAST_DIR: &str = "last";

/// Summed reference log-probs of each pair, with a fingerprint of the token
/// ids they were computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceLogProbs {
    pub fingerprint: u64,
    pub chosen: Vec<f64>,
    pub rejected: Vec<f64>,
}

/// The output folder of one training run.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
    /// Written into `adapter_config.json` as `base_model_name_or_path`.
    base_model: Option<String>,
}

impl CheckpointDir {
    pub fn new(root: impl Into<PathBuf>, base_model: Option<String>) -> Self {
        Self {
            root: root.into(),
            base_model,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn last(&self) -> PathBuf {
        self.root.join(LAST_DIR)
    }

    /// Saves the adapter, the optimizer and `state` as the last checkpoint.
    /// The files go to a temporary folder first, so a kill while saving
    /// leaves the previous checkpoint intact.
    pub fn save_last(&self, model: &LoraLlama, optimizer: &AdamW, state: &TrainerState) -> Result<(), AlignError> {
        let staging = self.root.join("last.partial");
        remove_dir(&staging)?;
        save_adapter(model, &staging, self.base_model.clone())?;
        let (tensors, _) = optimizer.state();
        let optimizer_path = staging.join(OPTIMIZER_FILE);
        candle_core::safetensors::save(&tensors, &optimizer_path).map_err(|e| write_error(&optimizer_path, e))?;
        write_json(&staging.join(TRAINER_STATE_FILE), state)?;

        let last = self.last();
        remove_dir(&last)?;
        std::fs::rename(&staging, &last).map_err(|e| write_error(&last, e))?;
        tracing::debug!(step = state.global_step, dir = %last.display(), "checkpoint saved");
        Ok(())
    }

    /// Saves the adapter as the best one so far, with `state`.
    pub fn save_best(&self, model: &LoraLlama, state: &TrainerState) -> Result<(), AlignError> {
        save_adapter(model, &self.root, self.base_model.clone())?;
        self.save_state(state)
    }

    /// Writes `state` as the run's trainer state.
    pub fn save_state(&self, state: &TrainerState) -> Result<(), AlignError> {
        write_json(&self.root.join(TRAINER_STATE_FILE), state)
    }

    /// Returns the trainer state of the last checkpoint, or `None` when the
    /// folder has none.
    pub fn last_state(&self) -> Result<Option<TrainerState>, AlignError> {
        read_json(&self.last().join(TRAINER_STATE_FILE))
    }

    /// Loads the last checkpoint's adapter into `model`. Call it before
    /// creating the optimizer, because loading replaces the adapter variables.
    pub fn load_last_adapter(&self, model: &mut LoraLlama) -> Result<(), AlignError> {
        load_adapter(model, &self.last())
    }

    /// Loads the last checkpoint's optimizer moments into `optimizer`.
    pub fn load_last_optimizer(&self, optimizer: &mut AdamW, step: u64) -> Result<(), AlignError> {
        let path = self.last().join(OPTIMIZER_FILE);
        let tensors =
            candle_core::safetensors::load(&path, &candle_core::Device::Cpu).map_err(|e| AlignError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        optimizer.load_state(&tensors, step)
    }

    /// Returns the cached reference log-probs when they were computed from
    /// pairs with the same `fingerprint`.
    pub fn reference(&self, fingerprint: u64) -> Result<Option<ReferenceLogProbs>, AlignError> {
        let cached: Option<ReferenceLogProbs> = read_json(&self.root.join(REFERENCE_FILE))?;
        Ok(cached.filter(|reference| reference.fingerprint == fingerprint))
    }

    pub fn save_reference(&self, reference: &ReferenceLogProbs) -> Result<(), AlignError> {
        write_json(&self.root.join(REFERENCE_FILE), reference)
    }
}

fn write_error(path: &Path, error: impl std::fmt::Display) -> AlignError {
    AlignError::Write {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

fn remove_dir(path: &Path) -> Result<(), AlignError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(write_error(path, e)),
    }
}

/// Writes `value` as pretty JSON through a temporary file and a rename.
fn write_json(path: &Path, value: &impl Serialize) -> Result<(), AlignError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
    }
    let json = serde_json::to_string_pretty(value).expect("training records serialize");
    let temporary = path.with_extension("json.partial");
    std::fs::write(&temporary, json + "\n").map_err(|e| write_error(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| write_error(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, AlignError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AlignError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| AlignError::Read {
        path: path.display().to_string(),
        message: format!("invalid JSON: {e}"),
    })
}
