//! `wow align`: LoRA training on a preference file.

use anyhow::{Context as _, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::args::AlignArgs;
use crate::align::{self, LoraConfig, LoraLlama, LossConfig, TrainConfig, Trainer};
use crate::model::{self, LocalModel};

/// Trains an adapter on `args.preferences` and saves it in `args.out`.
pub fn align_command(args: &AlignArgs) -> anyhow::Result<()> {
    let model_path = match &args.model {
        Some(path) => path.clone(),
        None => model::default_model_path()?,
    };

    let mut records = align::read_preferences(&args.preferences)?;
    if records.is_empty() {
        bail!(
            "{} has no preference pairs; elicit with a wider margin or more questions",
            args.preferences.display()
        );
    }
    records.shuffle(&mut StdRng::seed_from_u64(args.seed));
    if args.max_pairs > 0 {
        records.truncate(args.max_pairs);
    }

    let tokenizer_model =
        LocalModel::load(&model_path).with_context(|| format!("failed to load {}", model_path.display()))?;
    let pairs = align::tokenize_preferences(&tokenizer_model, &records, args.max_length)?;
    drop(tokenizer_model);
    if pairs.is_empty() {
        bail!("every pair is longer than --max-length {}; raise it", args.max_length);
    }

    let device = model::default_device()?;
    let lora = LoraConfig {
        seed: args.seed,
        ..LoraConfig::default()
    };
    let policy = LoraLlama::from_gguf(&model_path, lora, &device)?;
    let config = TrainConfig {
        loss: args.loss,
        loss_config: LossConfig {
            beta: args.beta,
            ..LossConfig::default()
        },
        learning_rate: args.learning_rate,
        epochs: args.epochs,
        warmup_ratio: args.warmup_ratio,
        batch_size: args.batch_size,
        gradient_accumulation_steps: args.gradient_accumulation_steps,
        seed: args.seed,
        ..TrainConfig::default()
    };
    tracing::info!(pairs = pairs.len(), loss = args.loss.name(), "training a LoRA adapter");

    let mut trainer = Trainer::new(&policy, config)?;
    let steps = trainer.train(&policy, &pairs)?;

    align::save_adapter(&policy, &args.out, Some(model_path.display().to_string()))?;
    if let Some(last) = steps.last() {
        println!(
            "trained {} steps: loss {:.4}, reward margin {:.4}, accuracy {:.2}; adapter in {}",
            last.step,
            last.loss,
            last.reward_margin,
            last.accuracy,
            args.out.display()
        );
    }
    Ok(())
}
