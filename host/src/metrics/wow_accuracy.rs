//! WoW accuracy: how often an elicited order of two wrong answers matches
//! their proxy-correctness order.
//!
//! A pair is two wrong responses to the same question with different proxy
//! correctness. The elicitor's verdict on it is a preference with a gap (the
//! absolute score difference, or a preference's strength), a tie, or no
//! opinion. Ties count as wrong; pairs without an opinion are not kept. A
//! margin of `m` percent keeps the `ceil(m% of n)` kept pairs with the
//! largest gaps.

use serde::{Deserialize, Serialize};

/// The elicited verdict on one pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// `chosen` (a sample index of the pair) is judged less wrong.
    Prefers { chosen: u32, gap: f64 },
    /// Equal scores: counted as a wrong verdict.
    Tie,
    /// The elicitor gave no order for this pair; it is not kept.
    NoOpinion,
}

/// Two wrong responses to one question, with their proxy correctness and
/// the elicited verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgedPair {
    pub question_id: String,
    pub first: u32,
    pub second: u32,
    pub first_correctness: f64,
    pub second_correctness: f64,
    pub verdict: Verdict,
}

impl JudgedPair {
    /// Builds the verdict from per-response scores, higher meaning less wrong.
    pub fn verdict_from_scores(
        first: Option<f64>,
        second: Option<f64>,
        first_sample: u32,
        second_sample: u32,
    ) -> Verdict {
        match (first, second) {
            (Some(a), Some(b)) if a == b => Verdict::Tie,
            (Some(a), Some(b)) => {
                let chosen = if a > b { first_sample } else { second_sample };
                Verdict::Prefers {
                    chosen,
                    gap: (a - b).abs(),
                }
            }
            _ => Verdict::NoOpinion,
        }
    }

    /// Returns the sample index with the higher proxy correctness.
    pub fn less_wrong(&self) -> u32 {
        if self.first_correctness > self.second_correctness {
            self.first
        } else {
            self.second
        }
    }

    /// Returns the other sample index of the pair.
    pub fn other(&self, sample: u32) -> u32 {
        if sample == self.first { self.second } else { self.first }
    }

    fn gap(&self) -> Option<f64> {
        match self.verdict {
            Verdict::Prefers { gap, .. } => Some(gap),
            Verdict::Tie => Some(0.0),
            Verdict::NoOpinion => None,
        }
    }

    /// Returns whether the verdict matches the proxy order; ties do not.
    pub fn is_correct(&self) -> bool {
        matches!(self.verdict, Verdict::Prefers { chosen, .. } if chosen == self.less_wrong())
    }
}

/// WoW accuracy of the pairs kept at one margin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarginResult {
    /// Percent of kept pairs retained, by largest gap.
    pub margin: u32,
    pub pairs: usize,
    pub correct: usize,
    /// `correct / pairs`, or `None` when no pair is kept.
    pub accuracy: Option<f64>,
}

/// Returns the pairs kept at `margin` percent, largest gap first. Pairs
/// without an opinion are never kept; equal gaps keep their input order.
pub fn select_margin(pairs: &[JudgedPair], margin: u32) -> Vec<&JudgedPair> {
    let mut kept: Vec<&JudgedPair> = pairs.iter().filter(|p| p.gap().is_some()).collect();
    kept.sort_by(|a, b| b.gap().unwrap().total_cmp(&a.gap().unwrap()));
    let count = (kept.len() * margin.min(100) as usize).div_ceil(100);
    kept.truncate(count);
    kept
}

/// Computes WoW accuracy at each margin.
pub fn margin_results(pairs: &[JudgedPair], margins: &[u32]) -> Vec<MarginResult> {
    margins
        .iter()
        .map(|&margin| {
            let kept = select_margin(pairs, margin);
            let correct = kept.iter().filter(|p| p.is_correct()).count();
            let accuracy = (!kept.is_empty()).then(|| correct as f64 / kept.len() as f64);
            MarginResult {
                margin,
                pairs: kept.len(),
                correct,
                accuracy,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(first_correctness: f64, second_correctness: f64, verdict: Verdict) -> JudgedPair {
        JudgedPair {
            question_id: "q".into(),
            first: 0,
            second: 1,
            first_correctness,
            second_correctness,
            verdict,
        }
    }

    #[test]
    fn verdict_matching_proxy_is_correct() {
        let p = pair(0.8, 0.2, Verdict::Prefers { chosen: 0, gap: 1.0 });
        assert!(p.is_correct());
        let p = pair(0.8, 0.2, Verdict::Prefers { chosen: 1, gap: 1.0 });
        assert!(!p.is_correct());
    }

    #[test]
    fn ties_count_as_wrong() {
        let results = margin_results(&[pair(0.8, 0.2, Verdict::Tie)], &[100]);
        assert_eq!(results[0].pairs, 1);
        assert_eq!(results[0].correct, 0);
        assert_eq!(results[0].accuracy, Some(0.0));
    }

    #[test]
    fn no_opinion_pairs_are_dropped() {
        let results = margin_results(&[pair(0.8, 0.2, Verdict::NoOpinion)], &[100]);
        assert_eq!(results[0].pairs, 0);
        assert_eq!(results[0].accuracy, None);
    }

    #[test]
    fn margin_keeps_largest_gaps() {
        // Gaps 1..=10; only the two largest (10 and 9) are right.
        let pairs: Vec<JudgedPair> = (1..=10)
            .map(|gap| {
                let chosen = if gap >= 9 { 0 } else { 1 };
                pair(
                    0.9,
                    0.1,
                    Verdict::Prefers {
                        chosen,
                        gap: f64::from(gap),
                    },
                )
            })
            .collect();
        let results = margin_results(&pairs, &[100, 50, 10]);
        assert_eq!((results[0].pairs, results[0].correct), (10, 2));
        assert_eq!((results[1].pairs, results[1].correct), (5, 2));
        assert_eq!((results[2].pairs, results[2].correct), (1, 1));
        assert_eq!(results[2].accuracy, Some(1.0));
    }

    #[test]
    fn margin_rounds_up() {
        let pairs: Vec<JudgedPair> = (0..3)
            .map(|_| pair(0.9, 0.1, Verdict::Prefers { chosen: 0, gap: 1.0 }))
            .collect();
        assert_eq!(select_margin(&pairs, 10).len(), 1);
        assert_eq!(select_margin(&pairs, 50).len(), 2);
    }

    #[test]
    fn scores_give_gap_and_choice() {
        assert_eq!(
            JudgedPair::verdict_from_scores(Some(2.0), Some(5.0), 3, 7),
            Verdict::Prefers { chosen: 7, gap: 3.0 }
        );
        assert_eq!(
            JudgedPair::verdict_from_scores(Some(2.0), Some(2.0), 3, 7),
            Verdict::Tie
        );
        assert_eq!(
            JudgedPair::verdict_from_scores(None, Some(2.0), 3, 7),
            Verdict::NoOpinion
        );
    }
}
