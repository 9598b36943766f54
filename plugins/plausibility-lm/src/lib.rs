//! Plausibility under the evaluator model: the geometric mean of the token
//! probabilities of a statement, `exp(mean log p)`, which lies in (0, 1]
//! and does not favour short statements the way a summed log-likelihood
//! does. A statement with a given part (see [`wow_sdk::statement`]) is
//! scored on the tokens of its judged part only, after the given part.

use wow_sdk::{Message, Question, Scorer, ScorerInfo, statement};

/// The `plausibility-lm` scorer.
pub struct PlausibilityLm;

/// Longest statement scored, in bytes; longer ones are cut at a character
/// boundary so one pathological answer cannot fill the model's context.
pub const MAX_STATEMENT_BYTES: usize = 2000;

/// Instruction that opens the chat before the statement, so the statement
/// is read as the model's own claim rather than as free text.
pub const INSTRUCTION: &str = "Write one true statement about the world.";

impl Scorer for PlausibilityLm {
    fn describe() -> ScorerInfo {
        ScorerInfo {
            name: "plausibility-lm".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn score(question: Question, answer: String) -> Result<f64, String> {
        let (given, judged) = statement::split(answer.trim());
        let judged = truncate(judged.trim(), MAX_STATEMENT_BYTES);
        if judged.is_empty() {
            return Err(format!("question {}: the statement is empty", question.id));
        }
        let logprobs = match given.map(str::trim).filter(|given| !given.is_empty()) {
            Some(given) => judged_logprobs(truncate(given, MAX_STATEMENT_BYTES), judged)?,
            None => wow_sdk::host::logprobs(&[Message::user(INSTRUCTION)], judged)?,
        };
        plausibility(&logprobs)
            .ok_or_else(|| format!("question {}: the model returned no log-probabilities", question.id))
    }
}

/// Returns the log-probabilities of the tokens of `judged` when it follows
/// `given`: those of the whole statement after as many tokens as `given`
/// has alone. Both texts start at a word, so the tokens of `given` are the
/// same alone and in the whole statement.
fn judged_logprobs(given: &str, judged: &str) -> Result<Vec<f32>, String> {
    let prompt = [Message::user(INSTRUCTION)];
    let given_tokens = wow_sdk::host::logprobs(&prompt, given)?.len();
    let whole = wow_sdk::host::logprobs(&prompt, &format!("{given} {judged}"))?;
    Ok(whole.get(given_tokens..).unwrap_or_default().to_vec())
}

wow_sdk::export_scorer!(PlausibilityLm);

/// Returns `exp(mean log p)` of the tokens, or `None` for no tokens. The
/// result is clamped to [0, 1] against rounding above 1.
pub fn plausibility(logprobs: &[f32]) -> Option<f64> {
    if logprobs.is_empty() {
        return None;
    }
    let mean = logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len() as f64;
    Some(mean.exp().clamp(0.0, 1.0))
}

/// Cuts `text` to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausibility_is_geometric_mean_probability() {
        let half = 0.5f32.ln();
        let quarter = 0.25f32.ln();
        let score = plausibility(&[half, quarter]).unwrap();
        assert!((score - (0.5f64 * 0.25).sqrt()).abs() < 1e-6, "{score}");
        assert_eq!(plausibility(&[0.0]), Some(1.0));
        assert_eq!(plausibility(&[]), None);
    }

    #[test]
    fn likelier_tokens_score_higher() {
        assert!(plausibility(&[-0.5, -1.0]) > plausibility(&[-2.0, -1.0]));
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn native_build_has_no_model() {
        let question = Question {
            id: "q".into(),
            text: String::new(),
            reference: None,
            payload: String::new(),
        };
        assert!(PlausibilityLm::score(question.clone(), "The sky is blue.".into()).is_err());
        let empty = PlausibilityLm::score(question, "  ".into()).unwrap_err();
        assert!(empty.contains("empty"), "{empty}");
    }
}
