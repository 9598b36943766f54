//! DPO-family preference losses over per-sequence log-probabilities.
//!
//! Every loss is built from candle tensor ops, so its gradient reaches the
//! LoRA adapters through the log-probabilities. Each loss is the mean over the
//! pairs of the batch.

use super::AlignError;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// Summed log-probabilities of the response tokens of a batch of sequences
/// and their token counts, both `(batch,)` in the model's dtype.
#[derive(Debug, Clone)]
pub struct SequenceLogProbs {
    pub sum: Tensor,
    pub count: Tensor,
}

impl SequenceLogProbs {
    /// Returns the length-normalised (per-token mean) log-probabilities.
    pub fn mean(&self) -> candle_core::Result<Tensor> {
        self.sum.div(&self.count)
    }

    /// Returns a copy cut from the autograd graph, as cached reference
    /// log-probabilities must be.
    pub fn detach(&self) -> Self {
        Self {
            sum: self.sum.detach(),
            count: self.count.detach(),
        }
    }
}

/// Log-probabilities of the chosen and the rejected response of each pair.
#[derive(Debug, Clone)]
pub struct PreferenceLogProbs {
    pub chosen: SequenceLogProbs,
    pub rejected: SequenceLogProbs,
}

impl PreferenceLogProbs {
    pub fn detach(&self) -> Self {
        Self {
            chosen: self.chosen.detach(),
            rejected: self.rejected.detach(),
        }
    }
}

/// A preference loss. The names are TRL's `loss_type` values where TRL has
/// one (`sigmoid` is DPO, `sppo_hard`, `hinge` is RSO's loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PreferenceLoss {
    /// DPO: `-log σ(β h)` with `h = (πc − rc) − (πr − rr)`.
    #[value(alias = "sigmoid")]
    #[serde(alias = "sigmoid")]
    Dpo,
    /// IPO: `(h − 1/(2β))²`, on summed (not length-normalised) log-probs.
    Ipo,
    /// Hinge loss of RSO: `max(0, 1 − β h)`.
    Hinge,
    /// SPPO with hard labels: `((πc − rc) − 1/(2β))² + ((πr − rr) + 1/(2β))²`.
    SppoHard,
    /// SimPO: `-log σ(β (avg_c − avg_r) − γ)` on length-normalised policy
    /// log-probs, with no reference model.
    Simpo,
    /// ORPO: chosen NLL plus `λ · (−log σ(log-odds_c − log-odds_r))`, with
    /// odds of the length-normalised probabilities and no reference model.
    Orpo,
}

impl PreferenceLoss {
    pub fn name(self) -> &'static str {
        match self {
            Self::Dpo => "dpo",
            Self::Ipo => "ipo",
            Self::Hinge => "hinge",
            Self::SppoHard => "sppo_hard",
            Self::Simpo => "simpo",
            Self::Orpo => "orpo",
        }
    }

    /// Returns true when the loss compares the policy with a frozen reference model.
    pub fn needs_reference(self) -> bool {
        !matches!(self, Self::Simpo | Self::Orpo)
    }

    /// Computes the loss of a batch of pairs. `reference` is required when
    /// [`PreferenceLoss::needs_reference`] is true and ignored otherwise.
    pub fn compute(
        self,
        config: &LossConfig,
        policy: &PreferenceLogProbs,
        reference: Option<&PreferenceLogProbs>,
    ) -> Result<LossOutput, AlignError> {
        let beta = config.beta;
        if !(beta > 0.0) {
            return Err(AlignError::InvalidConfig(format!("beta must be positive, got {beta}")));
        }
        if !self.needs_reference() {
            return self.reference_free(config, policy);
        }
        let reference = reference.ok_or(AlignError::MissingReference(self.name()))?;
        let chosen_ratio = (&policy.chosen.sum - &reference.chosen.sum)?;
        let rejected_ratio = (&policy.rejected.sum - &reference.rejected.sum)?;
        let h = (&chosen_ratio - &rejected_ratio)?;
        let losses = match self {
            Self::Dpo => log_sigmoid(&(&h * beta)?)?.neg()?,
            Self::Ipo => (&h - 1.0 / (2.0 * beta))?.sqr()?,
            Self::Hinge => (1.0 - (&h * beta)?)?.relu()?,
            Self::SppoHard => ((&chosen_ratio - 0.5 / beta)?.sqr()? + (&rejected_ratio + 0.5 / beta)?.sqr()?)?,
            Self::Simpo | Self::Orpo => unreachable!("reference-free losses return above"),
        };
        let chosen_rewards = (&chosen_ratio * beta)?;
        let rejected_rewards = (&rejected_ratio * beta)?;
        LossOutput::new(losses.mean_all()?, &chosen_rewards, &rejected_rewards)
    }

    fn reference_free(self, config: &LossConfig, policy: &PreferenceLogProbs) -> Result<LossOutput, AlignError> {
        let beta = config.beta;
        let chosen_mean = policy.chosen.mean()?;
        let rejected_mean = policy.rejected.mean()?;
        let loss = match self {
            Self::Simpo => {
                let logits = (((&chosen_mean - &rejected_mean)? * beta)? - config.simpo_gamma)?;
                log_sigmoid(&logits)?.neg()?.mean_all()?
            }
            Self::Orpo => {
                // Token-level mean NLL of the chosen responses, as TRL's
                // cross-entropy over all chosen tokens of the batch.
                let nll = (policy.chosen.sum.sum_all()? / policy.chosen.count.sum_all()?)?.neg()?;
                let log_odds = (log_odds(&chosen_mean)? - log_odds(&rejected_mean)?)?;
                let odds_ratio_loss = log_sigmoid(&log_odds)?.neg()?.mean_all()?;
                (nll + (odds_ratio_loss * config.orpo_lambda)?)?
            }
            _ => unreachable!("only SimPO and ORPO are reference-free"),
        };
        let chosen_rewards = (&chosen_mean * beta)?;
        let rejected_rewards = (&rejected_mean * beta)?;
        LossOutput::new(loss, &chosen_rewards, &rejected_rewards)
    }
}

/// Hyperparameters of the losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// Inverse temperature β of the implicit reward; TRL's default 0.1.
    pub beta: f64,
    /// Target reward margin γ of SimPO. The default 0.5 is TRL's
    /// `CPOConfig.simpo_gamma`, which enters the loss as `β Δ − γ` too.
    pub simpo_gamma: f64,
    /// Weight λ of ORPO's odds-ratio term; TRL's `ORPOConfig.beta` default 0.1.
    pub orpo_lambda: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            beta: 0.1,
            simpo_gamma: 0.5,
            orpo_lambda: 0.1,
        }
    }
}

/// A batch loss and the statistics logged with it.
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// Scalar loss, attached to the autograd graph.
    pub loss: Tensor,
    /// Mean of chosen reward minus rejected reward over the batch. Rewards
    /// are `β (π − r)` for losses with a reference, else `β` times the
    /// length-normalised policy log-probability.
    pub reward_margin: f64,
    /// Fraction of pairs whose chosen reward exceeds the rejected reward.
    pub accuracy: f64,
}

impl LossOutput {
    fn new(loss: Tensor, chosen_rewards: &Tensor, rejected_rewards: &Tensor) -> Result<Self, AlignError> {
        let margins = (chosen_rewards - rejected_rewards)?.detach();
        let reward_margin = margins.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let accuracy = margins.gt(0.0)?.to_dtype(DType::F64)?.mean_all()?.to_scalar::<f64>()?;
        Ok(Self {
            loss,
            reward_margin,
            accuracy,
        })
    }
}

/// Computes `log σ(x) = min(x, 0) − log(1 + exp(−|x|))`, which is finite for
/// any finite `x`.
pub fn log_sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    let tail = ((x.abs()?.neg()?.exp()? + 1.0)?).log()?;
    x.minimum(0.0)? - tail
}

/// Computes `log(p / (1 − p))` from `log p`, for `log p < 0`.
fn log_odds(log_p: &Tensor) -> candle_core::Result<Tensor> {
    let log_complement = (1.0 - log_p.exp()?)?.log()?;
    log_p - log_complement
}
