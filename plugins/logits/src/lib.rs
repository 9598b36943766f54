//! Logit elicitor: a response the evaluator model finds more likely is
//! judged less wrong.

use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Question};

/// The `logits` elicitor.
pub struct Logits;

/// Scores each candidate by its mean token log-probability, the negated
/// mean negative log-likelihood. A candidate with no tokens or a
/// non-finite mean gets no score.
pub fn scores(candidates: &[Candidate]) -> Vec<Option<f64>> {
    candidates
        .iter()
        .map(|c| (c.token_count > 0 && c.mean_nll.is_finite()).then_some(-c.mean_nll))
        .collect()
}

impl Elicitor for Logits {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "logits".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(_question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        Ok(Judgement::Scores(scores(&candidates)))
    }
}

wow_sdk::export_elicitor!(Logits);

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(mean_nll: f64, token_count: u32) -> Candidate {
        Candidate {
            text: String::new(),
            answer: None,
            mean_nll,
            token_count,
        }
    }

    #[test]
    fn score_is_negated_mean_nll() {
        let candidates = [candidate(0.25, 4), candidate(2.0, 10)];
        assert_eq!(scores(&candidates), [Some(-0.25), Some(-2.0)]);
    }

    #[test]
    fn empty_or_non_finite_gets_no_score() {
        let candidates = [candidate(0.0, 0), candidate(f64::NAN, 3), candidate(f64::INFINITY, 3)];
        assert_eq!(scores(&candidates), [None, None, None]);
    }
}
