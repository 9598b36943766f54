//! Preference training of the LoRA adapters: AdamW, a cosine learning rate
//! schedule with linear warm-up, gradient accumulation and clipping, a
//! validation loss after every epoch, and checkpoints to resume from.

use super::AlignError;
use super::checkpoint::{CheckpointDir, ReferenceLogProbs};
use super::data::TokenizedPair;
use super::loss::{LossConfig, PreferenceLogProbs, PreferenceLoss, SequenceLogProbs};
use super::model::{AdapterMode, LoraLlama};
use super::optimizer::{AdamW, AdamWParams, clip_gradient_norm};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// Hyperparameters of a training run. The defaults follow TRL's `DPOConfig`
/// where it has the field, except the 5e-5 learning rate and 1e-5 weight
/// decay chosen for LoRA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub loss: PreferenceLoss,
    pub loss_config: LossConfig,
    /// Peak learning rate of AdamW.
    pub learning_rate: f64,
    /// Learning rate schedule after the warm-up.
    #[serde(default)]
    pub scheduler: Scheduler,
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
    /// Maximum global L2 norm of the gradient; `None` turns clipping off.
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
    /// Also compute the validation loss every this many optimizer steps;
    /// it is always computed after each epoch.
    #[serde(default)]
    pub eval_steps: Option<usize>,
    /// Save a checkpoint every this many optimizer steps, and after each
    /// epoch.
    #[serde(default = "default_save_steps")]
    pub save_steps: usize,
    /// Seed of the pair order, reshuffled every epoch.
    pub seed: u64,
}

fn default_save_steps() -> usize {
    10
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            loss: PreferenceLoss::Dpo,
            loss_config: LossConfig::default(),
            learning_rate: 5e-5,
            scheduler: Scheduler::Cosine,
            weight_decay: 1e-5,
            epochs: 3,
            warmup_ratio: 0.1,
            batch_size: 2,
            gradient_accumulation_steps: 4,
            max_grad_norm: Some(1.0),
            eval_steps: None,
            save_steps: default_save_steps(),
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
        if self.save_steps == 0 || self.eval_steps == Some(0) {
            return invalid("save and evaluation intervals must be at least 1 step".to_string());
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return invalid(format!("warm-up ratio must be in [0, 1], got {}", self.warmup_ratio));
        }
        if !(self.learning_rate > 0.0) {
            return invalid(format!("learning rate must be positive, got {}", self.learning_rate));
        }
        if self.max_grad_norm.is_some_and(|norm| !(norm > 0.0)) {
            return invalid("maximum gradient norm must be positive".to_string());
        }
        Ok(())
    }

    fn steps_per_epoch(&self, pairs: usize) -> usize {
        pairs
            .div_ceil(self.batch_size)
            .div_ceil(self.gradient_accumulation_steps)
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
    /// Global L2 norm of the gradient before clipping.
    #[serde(default)]
    pub grad_norm: f64,
}

/// Loss statistics of the adapters on the validation pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Optimizer steps done when it was computed.
    pub step: usize,
    /// Epoch it was computed in, counted from 1.
    pub epoch: usize,
    pub loss: f64,
    pub reward_margin: f64,
    pub accuracy: f64,
}

/// Progress of a training run, saved with each checkpoint as
/// `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub config: TrainConfig,
    pub train_pairs: usize,
    pub validation_pairs: usize,
    pub total_steps: usize,
    pub global_step: usize,
    /// Epochs finished.
    pub epoch: usize,
    /// Optimizer steps done in the epoch under way.
    pub epoch_step: usize,
    pub log_history: Vec<StepLog>,
    pub evaluations: Vec<Evaluation>,
    /// Validation loss after each finished epoch.
    pub validation_loss: Vec<f64>,
    pub best_validation_loss: Option<f64>,
    /// Epoch (from 1) of the best validation loss.
    pub best_epoch: Option<usize>,
    pub best_step: Option<usize>,
    pub finished: bool,
}

impl TrainerState {
    fn new(config: TrainConfig, train_pairs: usize, validation_pairs: usize) -> Self {
        let total_steps = config.steps_per_epoch(train_pairs) * config.epochs;
        Self {
            config,
            train_pairs,
            validation_pairs,
            total_steps,
            global_step: 0,
            epoch: 0,
            epoch_step: 0,
            log_history: Vec::new(),
            evaluations: Vec::new(),
            validation_loss: Vec::new(),
            best_validation_loss: None,
            best_epoch: None,
            best_step: None,
            finished: false,
        }
    }

    /// Records `evaluation` and returns whether it is the best so far.
    fn record(&mut self, evaluation: Evaluation) -> bool {
        let best = self.best_validation_loss.is_none_or(|best| evaluation.loss < best);
        if best {
            self.best_validation_loss = Some(evaluation.loss);
            self.best_epoch = Some(evaluation.epoch);
            self.best_step = Some(evaluation.step);
        }
        self.evaluations.push(evaluation);
        best
    }
}

/// Learning rate schedule after a linear warm-up, as in `transformers`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scheduler {
    /// Cosine decay to 0 (`get_cosine_schedule_with_warmup`).
    #[default]
    Cosine,
    /// Linear decay to 0 (`get_linear_schedule_with_warmup`).
    Linear,
    /// The peak rate until the end (`get_constant_schedule_with_warmup`).
    Constant,
}

impl Scheduler {
    /// Returns the learning rate of optimizer step `step` (from 0) of
    /// `total`, warming up linearly from 0 over `warmup` steps.
    pub fn learning_rate(self, peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
        if step < warmup {
            return peak * step as f64 / warmup.max(1) as f64;
        }
        match self {
            Self::Cosine => cosine_learning_rate(peak, step, warmup, total),
            Self::Linear => peak * (total.saturating_sub(step)) as f64 / (total.saturating_sub(warmup)).max(1) as f64,
            Self::Constant => peak,
        }
    }
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

/// Splits `pairs` into training and validation pairs: the last
/// `round(ratio * n)` pairs validate, at least one when `ratio > 0` and there
/// are two pairs or more. Shuffle the pairs first.
pub fn split_validation(mut pairs: Vec<TokenizedPair>, ratio: f64) -> (Vec<TokenizedPair>, Vec<TokenizedPair>) {
    let n = pairs.len();
    let mut validation = (ratio * n as f64).round() as usize;
    if ratio > 0.0 && n >= 2 {
        validation = validation.max(1);
    }
    let validation = validation.min(n.saturating_sub(1));
    let held_out = pairs.split_off(n - validation);
    (pairs, held_out)
}

/// Trains the adapters of one model on preference pairs.
pub struct Trainer {
    optimizer: AdamW,
    state: TrainerState,
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
        let params = AdamWParams {
            weight_decay: config.weight_decay,
            ..AdamWParams::default()
        };
        Ok(Self {
            optimizer: AdamW::new(vars, params)?,
            state: TrainerState::new(config, 0, 0),
        })
    }

    /// Creates a trainer that continues the run saved in `checkpoints`, or a
    /// fresh one when it has no checkpoint. Resuming loads the last adapter
    /// into `model` and needs the same configuration and pair counts.
    pub fn resume(
        model: &mut LoraLlama,
        config: TrainConfig,
        checkpoints: &CheckpointDir,
        train_pairs: usize,
        validation_pairs: usize,
    ) -> Result<Self, AlignError> {
        let Some(state) = checkpoints.last_state()? else {
            let mut trainer = Self::new(model, config)?;
            trainer.state = TrainerState::new(trainer.state.config.clone(), train_pairs, validation_pairs);
            return Ok(trainer);
        };
        if state.config != config || state.train_pairs != train_pairs || state.validation_pairs != validation_pairs {
            return Err(AlignError::InvalidConfig(format!(
                "{} holds a checkpoint of a training run with other settings or pairs; \
                 pass another --out or delete the folder to start over",
                checkpoints.root().display()
            )));
        }
        checkpoints.load_last_adapter(model)?;
        let mut trainer = Self::new(model, config)?;
        checkpoints.load_last_optimizer(&mut trainer.optimizer, state.global_step as u64)?;
        tracing::info!(
            step = state.global_step,
            epoch = state.epoch,
            "resuming training from the last checkpoint"
        );
        trainer.state = state;
        Ok(trainer)
    }

    pub fn config(&self) -> &TrainConfig {
        &self.state.config
    }

    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// Runs every epoch over `pairs` without validation or checkpoints and
    /// returns the log of each optimizer step. The reference log-probs are
    /// computed once, before the first step.
    pub fn train(&mut self, model: &LoraLlama, pairs: &[TokenizedPair]) -> Result<Vec<StepLog>, AlignError> {
        self.state = TrainerState::new(self.state.config.clone(), pairs.len(), 0);
        let never = AtomicBool::new(false);
        let state = self.fit(model, pairs, &[], None, &ProgressBar::hidden(), &never)?;
        Ok(state.log_history)
    }

    /// Trains on `train` from the current state to the last epoch, computing
    /// the validation loss on `validation` after each epoch (and every
    /// `eval_steps`). With `checkpoints`, it saves the best adapter and a
    /// checkpoint every `save_steps` and after each epoch. When `stop` is
    /// set, it saves a checkpoint after the current step and returns the
    /// unfinished state.
    pub fn fit(
        &mut self,
        model: &LoraLlama,
        train: &[TokenizedPair],
        validation: &[TokenizedPair],
        checkpoints: Option<&CheckpointDir>,
        bar: &ProgressBar,
        stop: &AtomicBool,
    ) -> Result<TrainerState, AlignError> {
        if train.is_empty() {
            return Err(AlignError::InvalidInput(
                "there are no preference pairs to train on".to_string(),
            ));
        }
        let reference = self.reference(model, train, validation, checkpoints, bar)?;
        let (train_reference, validation_reference) = reference.map(|r| r.split(train.len())).unzip();
        let config = self.state.config.clone();
        let warmup_steps = (config.warmup_ratio * self.state.total_steps as f64).ceil() as usize;
        tracing::info!(
            pairs = train.len(),
            validation_pairs = validation.len(),
            total_steps = self.state.total_steps,
            warmup_steps,
            loss = config.loss.name(),
            "training started"
        );
        bar.set_length(self.state.total_steps as u64);
        bar.set_position(self.state.global_step as u64);

        let group_size = config.batch_size * config.gradient_accumulation_steps;
        while self.state.epoch < config.epochs {
            let epoch = self.state.epoch;
            let mut order: Vec<usize> = (0..train.len()).collect();
            order.shuffle(&mut StdRng::seed_from_u64(config.seed.wrapping_add(epoch as u64)));
            for group in order.chunks(group_size).skip(self.state.epoch_step) {
                let step = self.state.global_step;
                let learning_rate =
                    config
                        .scheduler
                        .learning_rate(config.learning_rate, step, warmup_steps, self.state.total_steps);
                let log =
                    self.optimizer_step(model, train, train_reference.as_ref(), group, learning_rate, epoch + 1)?;
                bar.set_message(format!("loss {:.4} margin {:.3}", log.loss, log.reward_margin));
                bar.inc(1);
                self.state.log_history.push(log);
                self.state.global_step += 1;
                self.state.epoch_step += 1;

                let done = self.state.global_step;
                let due = |every: usize| done % every == 0;
                if config.eval_steps.is_some_and(due) && !validation.is_empty() {
                    self.validate(model, validation, validation_reference.as_ref(), checkpoints)?;
                }
                if let Some(checkpoints) = checkpoints {
                    if due(config.save_steps) || stop.load(Ordering::SeqCst) {
                        checkpoints.save_last(model, &self.optimizer, &self.state)?;
                    }
                }
                if stop.load(Ordering::SeqCst) {
                    tracing::warn!(
                        step = self.state.global_step,
                        "training stopped; rerun the command to resume"
                    );
                    return Ok(self.state.clone());
                }
            }
            self.finish_epoch(model, validation, validation_reference.as_ref(), checkpoints)?;
        }

        self.state.finished = true;
        if let Some(checkpoints) = checkpoints {
            if validation.is_empty() {
                checkpoints.save_best(model, &self.state)?;
            } else {
                checkpoints.save_state(&self.state)?;
            }
            checkpoints.save_last(model, &self.optimizer, &self.state)?;
        }
        tracing::info!(
            steps = self.state.global_step,
            best_validation_loss = self.state.best_validation_loss,
            "training finished"
        );
        Ok(self.state.clone())
    }

    fn finish_epoch(
        &mut self,
        model: &LoraLlama,
        validation: &[TokenizedPair],
        reference: Option<&ReferenceLogProbs>,
        checkpoints: Option<&CheckpointDir>,
    ) -> Result<(), AlignError> {
        self.state.epoch += 1;
        self.state.epoch_step = 0;
        if !validation.is_empty() {
            let evaluation = self.validate(model, validation, reference, checkpoints)?;
            self.state.validation_loss.push(evaluation.loss);
        }
        if let Some(checkpoints) = checkpoints {
            checkpoints.save_last(model, &self.optimizer, &self.state)?;
        }
        Ok(())
    }

    /// Computes the validation loss, records it, and saves the adapter as the
    /// best one when the loss is the lowest so far.
    fn validate(
        &mut self,
        model: &LoraLlama,
        validation: &[TokenizedPair],
        reference: Option<&ReferenceLogProbs>,
        checkpoints: Option<&CheckpointDir>,
    ) -> Result<Evaluation, AlignError> {
        let config = &self.state.config;
        let (loss, reward_margin, accuracy) = evaluate_loss(model, config, validation, reference)?;
        let evaluation = Evaluation {
            step: self.state.global_step,
            epoch: self.state.epoch.max(1),
            loss,
            reward_margin,
            accuracy,
        };
        tracing::info!(
            step = evaluation.step,
            epoch = evaluation.epoch,
            loss,
            reward_margin,
            accuracy,
            "validation"
        );
        if self.state.record(evaluation.clone()) {
            if let Some(checkpoints) = checkpoints {
                checkpoints.save_best(model, &self.state)?;
            }
        }
        Ok(evaluation)
    }

    /// Runs one optimizer step on all of `pairs`, in forward passes of
    /// `batch_size` pairs; `reference` holds the reference log-probs of
    /// `pairs` in the same order.
    pub fn train_step(
        &mut self,
        model: &LoraLlama,
        pairs: &[TokenizedPair],
        reference: Option<&ReferenceLogProbs>,
    ) -> Result<StepLog, AlignError> {
        let group: Vec<usize> = (0..pairs.len()).collect();
        let learning_rate = self.state.config.learning_rate;
        let log = self.optimizer_step(model, pairs, reference, &group, learning_rate, self.state.epoch + 1)?;
        self.state.global_step += 1;
        Ok(log)
    }

    /// Runs one optimizer step on the pairs `group`, split into forward passes
    /// of `batch_size` pairs whose gradients are summed.
    fn optimizer_step(
        &mut self,
        model: &LoraLlama,
        pairs: &[TokenizedPair],
        reference: Option<&ReferenceLogProbs>,
        group: &[usize],
        learning_rate: f64,
        epoch: usize,
    ) -> Result<StepLog, AlignError> {
        let config = &self.state.config;
        let vars = self.optimizer.vars().to_vec();
        let mut gradients: Vec<Option<Tensor>> = vec![None; vars.len()];
        let (mut loss, mut reward_margin, mut accuracy) = (0.0, 0.0, 0.0);
        for batch in group.chunks(config.batch_size) {
            let weight = batch.len() as f64 / group.len() as f64;
            let batch_pairs: Vec<&TokenizedPair> = batch.iter().map(|&i| &pairs[i]).collect();
            let policy = preference_logprobs(model, &batch_pairs, AdapterMode::Train)?;
            let reference = reference.map(|cache| select(cache, batch, model)).transpose()?;
            let output = config.loss.compute(&config.loss_config, &policy, reference.as_ref())?;
            let grads = (&output.loss * weight)?.backward()?;
            accumulate(&mut gradients, &vars, &grads)?;
            loss += weight * output.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            reward_margin += weight * output.reward_margin;
            accuracy += weight * output.accuracy;
        }

        let mut store = GradStore::default();
        for (var, gradient) in vars.iter().zip(gradients) {
            if let Some(gradient) = gradient {
                store.insert(var.as_tensor(), gradient);
            }
        }
        let grad_norm = clip_gradient_norm(&mut store, &vars, config.max_grad_norm)?;
        self.optimizer.step(&store, learning_rate)?;
        let log = StepLog {
            step: self.state.global_step + 1,
            epoch,
            loss,
            reward_margin,
            accuracy,
            learning_rate,
            grad_norm,
        };
        tracing::info!(
            step = log.step,
            epoch,
            loss,
            reward_margin,
            accuracy,
            learning_rate,
            grad_norm,
            "training step"
        );
        Ok(log)
    }

    /// Returns the reference log-probs of `train` followed by `validation`,
    /// from the checkpoint folder when it has them for the same pairs.
    fn reference(
        &self,
        model: &LoraLlama,
        train: &[TokenizedPair],
        validation: &[TokenizedPair],
        checkpoints: Option<&CheckpointDir>,
        bar: &ProgressBar,
    ) -> Result<Option<ReferenceLogProbs>, AlignError> {
        if !self.state.config.loss.needs_reference() {
            return Ok(None);
        }
        let pairs: Vec<&TokenizedPair> = train.iter().chain(validation).collect();
        let fingerprint = fingerprint(&pairs);
        if let Some(cached) = checkpoints.map(|c| c.reference(fingerprint)).transpose()?.flatten() {
            tracing::info!(pairs = pairs.len(), "reference log-probs loaded from the output folder");
            return Ok(Some(cached));
        }

        bar.set_length(pairs.len() as u64);
        bar.set_message("reference log-probs");
        let reference = reference_logprobs_with(model, &pairs, self.state.config.batch_size, bar)?;
        bar.set_position(0);
        if let Some(checkpoints) = checkpoints {
            checkpoints.save_reference(&reference)?;
        }
        tracing::info!(pairs = pairs.len(), "reference log-probs cached");
        Ok(Some(reference))
    }
}

/// Computes the summed reference log-probs (adapters off) of each pair, in
/// forward passes of `batch_size` pairs.
pub fn reference_logprobs(
    model: &LoraLlama,
    pairs: &[TokenizedPair],
    batch_size: usize,
) -> Result<ReferenceLogProbs, AlignError> {
    let pairs: Vec<&TokenizedPair> = pairs.iter().collect();
    reference_logprobs_with(model, &pairs, batch_size, &ProgressBar::hidden())
}

fn reference_logprobs_with(
    model: &LoraLlama,
    pairs: &[&TokenizedPair],
    batch_size: usize,
    bar: &ProgressBar,
) -> Result<ReferenceLogProbs, AlignError> {
    let mut reference = ReferenceLogProbs {
        fingerprint: fingerprint(pairs),
        chosen: Vec::with_capacity(pairs.len()),
        rejected: Vec::with_capacity(pairs.len()),
    };
    for batch in pairs.chunks(batch_size.max(1)) {
        let logprobs = preference_logprobs(model, batch, AdapterMode::Off)?;
        reference
            .chosen
            .extend(logprobs.chosen.sum.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        reference
            .rejected
            .extend(logprobs.rejected.sum.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        bar.inc(batch.len() as u64);
    }
    Ok(reference)
}

impl ReferenceLogProbs {
    /// Returns the log-probs of the pairs in `range`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            fingerprint: self.fingerprint,
            chosen: self.chosen[range.clone()].to_vec(),
            rejected: self.rejected[range].to_vec(),
        }
    }

    /// Splits the log-probs after the first `at` pairs.
    fn split(self, at: usize) -> (Self, Self) {
        let (mut chosen, mut rejected) = (self.chosen, self.rejected);
        let tail = Self {
            fingerprint: self.fingerprint,
            chosen: chosen.split_off(at),
            rejected: rejected.split_off(at),
        };
        let head = Self {
            fingerprint: self.fingerprint,
            chosen,
            rejected,
        };
        (head, tail)
    }
}

/// Computes the mean loss, reward margin and accuracy of the adapters on
/// `pairs`, without gradients.
pub fn evaluate_loss(
    model: &LoraLlama,
    config: &TrainConfig,
    pairs: &[TokenizedPair],
    reference: Option<&ReferenceLogProbs>,
) -> Result<(f64, f64, f64), AlignError> {
    let indices: Vec<usize> = (0..pairs.len()).collect();
    let (mut loss, mut reward_margin, mut accuracy) = (0.0, 0.0, 0.0);
    for batch in indices.chunks(config.batch_size) {
        let weight = batch.len() as f64 / pairs.len() as f64;
        let batch_pairs: Vec<&TokenizedPair> = batch.iter().map(|&i| &pairs[i]).collect();
        let policy = preference_logprobs(model, &batch_pairs, AdapterMode::On)?.detach();
        let reference = reference.map(|cache| select(cache, batch, model)).transpose()?;
        let output = config.loss.compute(&config.loss_config, &policy, reference.as_ref())?;
        loss += weight * output.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        reward_margin += weight * output.reward_margin;
        accuracy += weight * output.accuracy;
    }
    Ok((loss, reward_margin, accuracy))
}

/// Returns the cached log-probs of the pairs `indices` as tensors. Only the
/// sums are cached, so the counts are left at 1.
fn select(cache: &ReferenceLogProbs, indices: &[usize], model: &LoraLlama) -> Result<PreferenceLogProbs, AlignError> {
    let tensor = |values: Vec<f64>| Tensor::from_vec(values, indices.len(), model.device())?.to_dtype(model.dtype());
    let sequence = |source: &[f64]| -> Result<SequenceLogProbs, AlignError> {
        let sum = tensor(indices.iter().map(|&i| source[i]).collect())?;
        let count = tensor(vec![1.0; indices.len()])?;
        Ok(SequenceLogProbs { sum, count })
    };
    Ok(PreferenceLogProbs {
        chosen: sequence(&cache.chosen)?,
        rejected: sequence(&cache.rejected)?,
    })
}

/// FNV-1a over the token ids of every pair, to tell whether cached
/// reference log-probs belong to the same pairs.
fn fingerprint(pairs: &[&TokenizedPair]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |value: u32| {
        for byte in value.to_le_bytes() {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for pair in pairs {
        for part in [&pair.prompt, &pair.chosen, &pair.rejected] {
            feed(part.len() as u32);
            part.iter().copied().for_each(&mut feed);
        }
    }
    hash
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
