//! Heuristic elicitor: a longer response is judged less wrong, on the
//! assumption that the model reasons more before a better answer.

use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Question};

/// The `heuristic` elicitor.
pub struct Heuristic;

/// Returns each candidate's token count as its score.
pub fn scores(candidates: &[Candidate]) -> Vec<Option<f64>> {
    candidates.iter().map(|c| Some(f64::from(c.token_count))).collect()
}

impl Elicitor for Heuristic {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "heuristic".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(_question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        Ok(Judgement::Scores(scores(&candidates)))
    }
}

wow_sdk::export_elicitor!(Heuristic);

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(token_count: u32) -> Candidate {
        Candidate {
            text: String::new(),
            answer: None,
            mean_nll: 1.0,
            token_count,
        }
    }

    #[test]
    fn score_is_token_count() {
        let candidates = [candidate(3), candidate(0), candidate(120)];
        assert_eq!(scores(&candidates), [Some(3.0), Some(0.0), Some(120.0)]);
    }

    #[test]
    fn no_candidates_no_scores() {
        assert!(scores(&[]).is_empty());
    }
}
