//! Preference training of the LoRA adapters with AdamW, a cosine learning
//! rate schedule with linear warm-up, and gradient accumulation.

use super::AlignError;
use super::data::TokenizedPair;
use super::loss::{LossConfig, PreferenceLogProbs, PreferenceLoss, SequenceLogProbs};
use super::model::{AdapterMode, LoraLlama};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Hyperparameters of a training run. The defaults follow TRL's `DPOConfig`
/// where it has the field, except the 5e-5 learning rate and 1e-5 weight
/// decay chosen for LoRA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub loss: PreferenceLoss,
    pub loss_config: LossConfig,
    /// Peak learning rate of AdamW.
    pub learning_rate: f64,
    /// Decoupled weight decay of AdamW.
    pub weight_decay: f64,
    pub epochs: usize,
    /// Fraction of the optimizer steps spent warming the learning rate up
    /// linearly from 0.
    pub warmup_ratio: f64,
    /// Pairs per forward pass. Each pass runs `2 * batch_size` sequences.
    pub batch_size: usize,
    /// Forward passes whose gradients are summed into one optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Seed of the pair order, reshuffled every epoch.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            loss: PreferenceLoss::Dpo,
            loss_config: LossConfig::default(),
            learning_rate: 5e-5,
            weight_decay: 1e-5,
            epochs: 3,
            warmup_ratio: 0.1,
            batch_size: 2,
            gradient_accumulation_steps: 4,
            seed: 0,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<(), AlignError> {
        let invalid = |message: String| Err(AlignError::InvalidConfig(message));
        if self.batch_size == 0 || self.gradient_accumulation_steps == 0 || self.epochs == 0 {
            return invalid("batch size, gradient accumulation steps and epochs must be at least 1".to_string());
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return invalid(format!("warm-up ratio must be in [0, 1], got {}", self.warmup_ratio));
        }
        if !(self.learning_rate > 0.0) {
            return invalid(format!("learning rate must be positive, got {}", self.learning_rate));
        }
        Ok(())
    }
}

/// Statistics of one optimizer step, averaged over its pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Optimizer step, counted from 1.
    pub step: usize,
    /// Epoch, counted from 1.
    pub epoch: usize,
    pub loss: f64,
    pub reward_margin: f64,
    pub accuracy: f64,
    pub learning_rate: f64,
}

/// Returns the learning rate of optimizer step `step` (from 0) of `total`:
/// linear warm-up over `warmup` steps, then cosine decay to 0. It is the
/// schedule of `transformers.get_cosine_schedule_with_warmup`, so step 0 has
/// learning rate 0 when `warmup > 0`.
pub fn cosine_learning_rate(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    peak * (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
}

/// Summed reference log-probs of each pair, computed once with the adapters
/// off.
#[derive(Debug, Clone)]
struct ReferenceCache {
    chosen: Vec<f64>,
    rejected: Vec<f64>,
}

/// Trains the adapters of one model on preference pairs.
pub struct Trainer {
    config: TrainConfig,
    optimizer: AdamW,
    vars: Vec<Var>,
    step: usize,
}

impl Trainer {
    /// Creates an AdamW optimizer over the adapters of `model`.
    pub fn new(model: &LoraLlama, config: TrainConfig) -> Result<Self, AlignError> {
        config.validate()?;
        let vars = model.trainable_vars();
        if vars.is_empty() {
            return Err(AlignError::InvalidConfig(
                "the model has no adapters to train".to_string(),
            ));
        }
        let params = ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        };
        let optimizer = AdamW::new(vars.clone(), params)?;
        Ok(Self {
            config,
            optimizer,
            vars,
            step: 0,
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Runs every epoch over `pairs` and returns the log of each optimizer
    /// step. The reference log-probs are computed once, before the first step.
    pub fn train(&mut self, model: &LoraLlama, pairs: &[TokenizedPair]) -> Result<Vec<StepLog>, AlignError> {
        if pairs.is_empty() {
            return Err(AlignError::InvalidInput(
                "there are no preference pairs to train on".to_string(),
            ));
        }
        let reference = if self.config.loss.needs_reference() {
            Some(self.reference_cache(model, pairs)?)
        } else {
            None
        };
        let batches_per_epoch = pairs.len().div_ceil(self.config.batch_size);
        let steps_per_epoch = batches_per_epoch.div_ceil(self.config.gradient_accumulation_steps);
        let total_steps = steps_per_epoch * self.config.epochs;
        let warmup_steps = (self.config.warmup_ratio * total_steps as f64).ceil() as usize;
        tracing::info!(
            pairs = pairs.len(),
            total_steps,
            warmup_steps,
            loss = self.config.loss.name(),
            "training started"
        );

        let mut logs = Vec::with_capacity(total_steps);
        for epoch in 0..self.config.epochs {
            let mut order: Vec<usize> = (0..pairs.len()).collect();
            order.shuffle(&mut StdRng::seed_from_u64(self.config.seed.wrapping_add(epoch as u64)));
            let group_size = self.config.batch_size * self.config.gradient_accumulation_steps;
            for group in order.chunks(group_size) {
                let learning_rate =
                    cosine_learning_rate(self.config.learning_rate, self.step, warmup_steps, total_steps);
                let log = self.optimizer_step(model, pairs, reference.as_ref(), group, learning_rate, epoch + 1)?;
                logs.push(log);
            }
        }
        tracing::info!(steps = logs.len(), "training finished");
        Ok(logs)
    }

    /// Runs one optimizer step on the pairs `group`, split into forward passes
    /// of `batch_size` pairs whose gradients are summed.
    fn optimizer_step(
        &mut self,
        model: &LoraLlama,
        pairs: &[TokenizedPair],
        reference: Option<&ReferenceCache>,
        group: &[usize],
        learning_rate: f64,
        epoch: usize,
    ) -> Result<StepLog, AlignError> {
        let mut gradients: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        let (mut loss, mut reward_margin, mut accuracy) = (0.0, 0.0, 0.0);
        for batch in group.chunks(self.config.batch_size) {
            let weight = batch.len() as f64 / group.len() as f64;
            let batch_pairs: Vec<&TokenizedPair> = batch.iter().map(|&i| &pairs[i]).collect();
            let policy = preference_logprobs(model, &batch_pairs, AdapterMode::Train)?;
            let reference = reference.map(|cache| cache.select(batch, model)).transpose()?;
            let output = self
                .config
                .loss
                .compute(&self.config.loss_config, &policy, reference.as_ref())?;
            let grads = (&output.loss * weight)?.backward()?;
            accumulate(&mut gradients, &self.vars, &grads)?;
            loss += weight * output.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            reward_margin += weight * output.reward_margin;
            accuracy += weight * output.accuracy;
        }

        let mut store = GradStore::default();
        for (var, gradient) in self.vars.iter().zip(gradients) {
            if let Some(gradient) = gradient {
                store.insert(var.as_tensor(), gradient);
            }
        }
        // TODO: clip the gradient norm before the step, as TRL does with
        // `max_grad_norm = 1.0` by default.
        self.optimizer.set_learning_rate(learning_rate);
        self.optimizer.step(&store)?;
        self.step += 1;
        let log = StepLog {
            step: self.step,
            epoch,
            loss,
            reward_margin,
            accuracy,
            learning_rate,
        };
        tracing::info!(
            step = log.step,
            epoch,
            loss,
            reward_margin,
            accuracy,
            learning_rate,
            "training step"
        );
        Ok(log)
    }

    fn reference_cache(&self, model: &LoraLlama, pairs: &[TokenizedPair]) -> Result<ReferenceCache, AlignError> {
        let mut cache = ReferenceCache {
            chosen: Vec::with_capacity(pairs.len()),
            rejected: Vec::with_capacity(pairs.len()),
        };
        for batch in pairs.chunks(self.config.batch_size) {
            let batch: Vec<&TokenizedPair> = batch.iter().collect();
            let logprobs = preference_logprobs(model, &batch, AdapterMode::Off)?;
            cache
                .chosen
                .extend(logprobs.chosen.sum.to_dtype(DType::F64)?.to_vec1::<f64>()?);
            cache
                .rejected
                .extend(logprobs.rejected.sum.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        tracing::info!(pairs = pairs.len(), "reference log-probs cached");
        Ok(cache)
    }
}

impl ReferenceCache {
    /// Returns the cached log-probs of the pairs `indices` as tensors. Only
    /// the sums are cached, so the counts are left at 1.
    fn select(&self, indices: &[usize], model: &LoraLlama) -> Result<PreferenceLogProbs, AlignError> {
        let tensor =
            |values: Vec<f64>| Tensor::from_vec(values, indices.len(), model.device())?.to_dtype(model.dtype());
        let sequence = |source: &[f64]| -> Result<SequenceLogProbs, AlignError> {
            let sum = tensor(indices.iter().map(|&i| source[i]).collect())?;
            let count = tensor(vec![1.0; indices.len()])?;
            Ok(SequenceLogProbs { sum, count })
        };
        Ok(PreferenceLogProbs {
            chosen: sequence(&self.chosen)?,
            rejected: sequence(&self.rejected)?,
        })
    }
}

/// Computes the log-probs of the chosen and the rejected response of each
/// pair in one forward pass of `2 * pairs.len()` sequences.
pub fn preference_logprobs(
    model: &LoraLlama,
    pairs: &[&TokenizedPair],
    mode: AdapterMode,
) -> Result<PreferenceLogProbs, AlignError> {
    let chosen = pairs
        .iter()
        .map(|pair| (pair.prompt.as_slice(), pair.chosen.as_slice()));
    let rejected = pairs
        .iter()
        .map(|pair| (pair.prompt.as_slice(), pair.rejected.as_slice()));
    let sequences: Vec<(&[u32], &[u32])> = chosen.chain(rejected).collect();
    let all = model.sequence_logprobs(&sequences, mode)?;
    let n = pairs.len();
    let split = |tensor: &Tensor, start: usize| tensor.narrow(0, start, n);
    Ok(PreferenceLogProbs {
        chosen: SequenceLogProbs {
            sum: split(&all.sum, 0)?,
            count: split(&all.count, 0)?,
        },
        rejected: SequenceLogProbs {
            sum: split(&all.sum, n)?,
            count: split(&all.count, n)?,
        },
    })
}

/// Adds the gradient of each variable in `grads` to `total`.
fn accumulate(total: &mut [Option<Tensor>], vars: &[Var], grads: &GradStore) -> candle_core::Result<()> {
    for (slot, var) in total.iter_mut().zip(vars) {
        let Some(gradient) = grads.get(var.as_tensor()) else {
            continue;
        };
        *slot = Some(match slot.take() {
            Some(sum) => (sum + gradient)?,
            None => gradient.clone(),
        });
    }
    Ok(())
}
