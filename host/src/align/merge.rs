//! Merging a trained adapter into a [`LocalModel`] for sampling.

use std::path::Path;

use super::{AlignError, LoraConfig, LoraLlama, TargetModule, load_adapter};
use crate::model::{LocalModel, Projection};

/// Adds the adapter in `adapter_dir` (PEFT layout) to the weights of
/// `model`, which must have been loaded from the GGUF file `model_path`.
/// Each merged projection then decodes on the f32 path.
pub fn merge_adapter(model: &mut LocalModel, model_path: &Path, adapter_dir: &Path) -> Result<(), AlignError> {
    let device = crate::model::default_device()?;
    let mut lora = LoraLlama::from_gguf(model_path, LoraConfig::default(), &device)?;
    load_adapter(&mut lora, adapter_dir)?;

    for (layer, module, adapter) in lora.adapters() {
        let delta = (adapter.b.as_tensor().matmul(adapter.a.as_tensor())? * adapter.scale)?;
        model.add_weight_delta(layer, projection(module), &delta)?;
    }
    tracing::info!(adapter = %adapter_dir.display(), "merged LoRA adapter into the model");
    Ok(())
}

fn projection(module: TargetModule) -> Projection {
    match module {
        TargetModule::QProj => Projection::Q,
        TargetModule::KProj => Projection::K,
        TargetModule::VProj => Projection::V,
        TargetModule::OProj => Projection::O,
        TargetModule::GateProj => Projection::Gate,
        TargetModule::UpProj => Projection::Up,
        TargetModule::DownProj => Projection::Down,
    }
}
