//! Self-consistency elicitor: an answer that more of the question's
//! responses agree on is judged less wrong.

use std::collections::BTreeMap;

use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Question};

/// The `consistency` elicitor.
pub struct Consistency;

/// Scores each candidate by the share of all candidates, itself included,
/// whose extracted answer equals its own. A candidate without an answer
/// scores 0, and counts in every share's denominator.
pub fn scores(candidates: &[Candidate]) -> Vec<Option<f64>> {
    let mut votes: BTreeMap<&str, u32> = BTreeMap::new();
    for answer in candidates.iter().filter_map(|c| c.answer.as_deref()) {
        *votes.entry(answer).or_default() += 1;
    }
    let total = candidates.len() as f64;
    candidates
        .iter()
        .map(|c| {
            let agreeing = c.answer.as_deref().map_or(0, |answer| votes[answer]);
            Some(f64::from(agreeing) / total)
        })
        .collect()
}

impl Elicitor for Consistency {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "consistency".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(_question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        Ok(Judgement::Scores(scores(&candidates)))
    }
}

wow_sdk::export_elicitor!(Consistency);

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(answer: Option<&str>) -> Candidate {
        Candidate {
            text: String::new(),
            answer: answer.map(Into::into),
            mean_nll: 1.0,
            token_count: 5,
        }
    }

    #[test]
    fn share_of_agreeing_answers() {
        let candidates = [
            candidate(Some("7")),
            candidate(Some("7")),
            candidate(Some("9")),
            candidate(None),
        ];
        assert_eq!(scores(&candidates), [Some(0.5), Some(0.5), Some(0.25), Some(0.0)]);
    }

    #[test]
    fn lone_answer_scores_one() {
        assert_eq!(scores(&[candidate(Some("3"))]), [Some(1.0)]);
    }

    #[test]
    fn all_unanswered_score_zero() {
        assert_eq!(scores(&[candidate(None), candidate(None)]), [Some(0.0), Some(0.0)]);
    }

    #[test]
    fn no_candidates_no_scores() {
        assert!(scores(&[]).is_empty());
    }
}
