//! Token sampling with temperature and top-p (nucleus) cuts.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Returns the generator of response `index` of a request seeded with
/// `seed`: its 32-byte seed is `seed` then `index`, little-endian, then
/// zeros. `StdRng` is ChaCha12 in rand 0.9; another rand version may draw a
/// different stream from the same seed.
pub fn response_rng(seed: u64, index: u32) -> StdRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..12].copy_from_slice(&index.to_le_bytes());
    StdRng::from_seed(bytes)
}

/// A drawn token and its negative log-likelihood in nats under the
/// unmodified distribution (temperature 1, no top-p cut).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    pub token: u32,
    pub nll: f32,
}

/// Draws a token from `logits`. A temperature of 0 or less picks the
/// highest logit (ties go to the lowest id) and draws nothing from `rng`.
pub fn sample(logits: &[f32], temperature: f32, top_p: f32, rng: &mut StdRng) -> Draw {
    let token = if temperature <= 0.0 {
        argmax(logits)
    } else {
        sample_top_p(logits, temperature, top_p, rng)
    };
    Draw {
        token,
        nll: -log_prob(logits, token),
    }
}

/// Returns the log-probability of `token` under the softmax of `logits`.
pub fn log_prob(logits: &[f32], token: u32) -> f32 {
    logits[token as usize] - log_sum_exp(logits)
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &logit) in logits.iter().enumerate() {
        if logit > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Samples from the smallest set of most likely tokens whose probability
/// (after temperature) reaches `top_p`. `top_p` of 1 or more keeps all.
fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, rng: &mut StdRng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &logit)| (i as u32, ((logit - max) / temperature).exp()))
        .collect();
    let candidates = if top_p < 1.0 { nucleus(weights, top_p) } else { weights };
    let total: f32 = candidates.iter().map(|(_, w)| w).sum();
    let mut target = rng.random::<f32>() * total;
    for &(token, weight) in &candidates {
        if target < weight {
            return token;
        }
        target -= weight;
    }
    candidates.last().map_or(0, |(token, _)| *token)
}

/// Returns the nucleus of `weights` (unnormalized probabilities), most
/// likely first. Sorting the whole vocabulary each step is slow, so this
/// sorts the top `k` and grows `k` until they reach `top_p`.
fn nucleus(mut weights: Vec<(u32, f32)>, top_p: f32) -> Vec<(u32, f32)> {
    // Ties go to the lower id, so the order is total and draws reproducible.
    let descending = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let total: f32 = weights.iter().map(|(_, w)| w).sum();
    let mut k = 64.min(weights.len());
    loop {
        if k < weights.len() {
            weights.select_nth_unstable_by(k - 1, descending);
        }
        weights[..k].sort_unstable_by(descending);
        let mut kept = 0.0;
        if let Some(last) = weights[..k].iter().position(|(_, w)| {
            kept += w / total;
            kept >= top_p
        }) {
            weights.truncate(last + 1);
            return weights;
        }
        if k == weights.len() {
            return weights;
        }
        k = (k * 4).min(weights.len());
    }
}

fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_argmax_and_reports_nll() {
        let logits = [0.0, 2.0, 1.0];
        let draw = sample(&logits, 0.0, 1.0, &mut response_rng(0, 0));
        assert_eq!(draw.token, 1);
        let expected = -(2.0f32.exp() / (1.0 + 2.0f32.exp() + 1.0f32.exp())).ln();
        assert!((draw.nll - expected).abs() < 1e-5);
    }

    #[test]
    fn top_p_keeps_only_nucleus() {
        let logits = [10.0, 0.0, 0.0, 0.0];
        let mut rng = response_rng(7, 0);
        for _ in 0..100 {
            assert_eq!(sample(&logits, 1.0, 0.5, &mut rng).token, 0);
        }
    }

    #[test]
    fn nucleus_grows_past_first_block() {
        let logits = vec![0.0; 1000];
        let mut rng = response_rng(3, 0);
        let draws: Vec<u32> = (0..200).map(|_| sample(&logits, 1.0, 0.5, &mut rng).token).collect();
        // Rounding in the running f32 sum may add a token or two to the 500.
        assert!(
            draws.iter().all(|&t| t < 505),
            "a uniform nucleus at 0.5 holds the lowest ids"
        );
        assert!(
            draws.iter().any(|&t| t >= 64),
            "the nucleus must grow past its first block"
        );
    }

    #[test]
    fn response_rng_depends_on_index() {
        let a = response_rng(1, 0).random::<u64>();
        let b = response_rng(1, 1).random::<u64>();
        assert_ne!(a, b);
        assert_eq!(a, response_rng(1, 0).random::<u64>());
    }
}
