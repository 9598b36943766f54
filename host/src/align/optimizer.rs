//! AdamW with decoupled weight decay and global gradient-norm clipping.
//!
//! candle-nn has an AdamW, but its moment estimates are private, so a killed
//! training could not resume with the optimizer state it had. This one keeps
//! the same update rule (PyTorch's `torch.optim.AdamW`) and exposes its state
//! for checkpoints.

use super::AlignError;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use std::collections::HashMap;

/// Hyperparameters of AdamW; the defaults are PyTorch's, with TRL's
/// `adam_epsilon` of 1e-8.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        Self {
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// AdamW over a fixed list of variables.
pub struct AdamW {
    params: AdamWParams,
    vars: Vec<Var>,
    first_moments: Vec<Tensor>,
    second_moments: Vec<Tensor>,
    /// Updates applied so far; the bias corrections depend on it.
    step: u64,
}

impl AdamW {
    pub fn new(vars: Vec<Var>, params: AdamWParams) -> Result<Self, AlignError> {
        let zeros = |var: &Var| var.as_tensor().zeros_like();
        let first_moments = vars.iter().map(zeros).collect::<candle_core::Result<_>>()?;
        let second_moments = vars.iter().map(zeros).collect::<candle_core::Result<_>>()?;
        Ok(Self {
            params,
            vars,
            first_moments,
            second_moments,
            step: 0,
        })
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Applies one update with learning rate `learning_rate`. A variable
    /// without a gradient in `gradients` is left unchanged.
    pub fn step(&mut self, gradients: &GradStore, learning_rate: f64) -> Result<(), AlignError> {
        self.step += 1;
        let p = self.params;
        let first_correction = 1.0 - p.beta1.powi(self.step as i32);
        let second_correction = 1.0 - p.beta2.powi(self.step as i32);
        for (i, var) in self.vars.iter().enumerate() {
            let Some(gradient) = gradients.get(var.as_tensor()) else {
                continue;
            };
            let m = ((&self.first_moments[i] * p.beta1)? + (gradient * (1.0 - p.beta1))?)?;
            let v = ((&self.second_moments[i] * p.beta2)? + (gradient.sqr()? * (1.0 - p.beta2))?)?;
            let m_hat = (&m / first_correction)?;
            let v_hat = (&v / second_correction)?;
            let decayed = (var.as_tensor() * (1.0 - learning_rate * p.weight_decay))?;
            let update = ((m_hat / (v_hat.sqrt()? + p.eps)?)? * learning_rate)?;
            var.set(&(decayed - update)?)?;
            self.first_moments[i] = m;
            self.second_moments[i] = v;
        }
        Ok(())
    }

    /// Returns the moment estimates by name (`m.I` and `v.I` for variable
    /// `I`) and the update count, for a checkpoint.
    pub fn state(&self) -> (HashMap<String, Tensor>, u64) {
        let mut tensors = HashMap::new();
        for (i, (m, v)) in self.first_moments.iter().zip(&self.second_moments).enumerate() {
            tensors.insert(format!("m.{i}"), m.clone());
            tensors.insert(format!("v.{i}"), v.clone());
        }
        (tensors, self.step)
    }

    /// Restores what [`AdamW::state`] returned, checking every shape.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<(), AlignError> {
        for i in 0..self.vars.len() {
            let expected = self.vars[i].as_tensor();
            let moment = |name: String| -> Result<Tensor, AlignError> {
                let tensor = tensors
                    .get(&name)
                    .ok_or_else(|| AlignError::InvalidInput(format!("optimizer state has no tensor {name}")))?;
                if tensor.dims() != expected.dims() {
                    return Err(AlignError::InvalidInput(format!(
                        "optimizer tensor {name} has shape {:?}, expected {:?}",
                        tensor.dims(),
                        expected.dims()
                    )));
                }
                Ok(tensor.to_dtype(expected.dtype())?.to_device(expected.device())?)
            };
            self.first_moments[i] = moment(format!("m.{i}"))?;
            self.second_moments[i] = moment(format!("v.{i}"))?;
        }
        self.step = step;
        Ok(())
    }
}

/// Scales the gradients of `vars` in place so that their global L2 norm is
/// at most `max_norm`, as `torch.nn.utils.clip_grad_norm_` does, and returns
/// the norm before clipping.
pub fn clip_gradient_norm(gradients: &mut GradStore, vars: &[Var], max_norm: Option<f64>) -> Result<f64, AlignError> {
    let mut squared = 0.0;
    for var in vars {
        if let Some(gradient) = gradients.get(var.as_tensor()) {
            squared += gradient.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let norm = squared.sqrt();
    let Some(max_norm) = max_norm else {
        return Ok(norm);
    };
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for var in vars {
            if let Some(gradient) = gradients.remove(var.as_tensor()) {
                gradients.insert(var.as_tensor(), (gradient * scale)?);
            }
        }
    }
    Ok(norm)
}
