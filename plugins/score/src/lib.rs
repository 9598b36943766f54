//! Score elicitor: an LLM judge grades `k` responses of one question at once
//! on an integer 0-5 scale, one `Score: n` line per response in order.
//!
//! A reply with a missing, out-of-range or wrong number of scores gives no
//! score to any response of its batch. The score gap of two responses is the
//! preference strength the host's margins filter on.
//!
//! Counters reported to the host: `judged` (batches asked), `scored`
//! (responses that got a score) and one counter per kind of bad reply.

use std::collections::BTreeSet;

use wow_sdk::host::{self, Sampling};
use wow_sdk::judge::{self, VerdictError};
use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Message, Question};

/// Highest score on the judge's scale.
pub const MAX_SCORE: i64 = 5;

/// Largest batch a run may ask for.
const MAX_K: usize = 32;

/// The `score` elicitor.
pub struct Score;

/// Settings a run may give, with their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Responses graded per judge call.
    pub k: usize,
    /// Tokens the judge may write per reply; raised with `k`.
    pub max_tokens: u32,
    /// Characters of each response shown to the judge.
    pub max_chars: usize,
}

impl Settings {
    fn from_host() -> Result<Self, String> {
        let k: usize = host::setting_or("k", 1)?;
        if k == 0 || k > MAX_K {
            return Err(format!("invalid setting k={k}; use 1 to {MAX_K}"));
        }
        let default_tokens = 96 + 32 * k as u32;
        Ok(Self {
            k,
            max_tokens: host::setting_or("max-tokens", default_tokens)?,
            max_chars: host::setting_or("max-chars", 4000 / k.max(2))?,
        })
    }
}

/// Builds the judge prompt for one batch of responses.
pub fn judge_prompt(question: &str, responses: &[&str], max_chars: usize) -> Vec<Message> {
    let mut listing = String::new();
    for (i, response) in responses.iter().enumerate() {
        listing.push_str(&format!(
            "Response {}:\n{}\n\n",
            i + 1,
            judge::clip(response, max_chars)
        ));
    }
    let format_lines: Vec<String> = (1..=responses.len())
        .map(|i| format!("Response {i} score: n"))
        .collect();
    let instruction = format!(
        "Here is a question and {count} answer{plural} to it. Grade how correct each answer is \
         on an integer scale from 0 (completely wrong) to {MAX_SCORE} (fully correct).\n\n\
         Question:\n{question}\n\n{listing}\
         Explain your grading in a few sentences. Then end with exactly {count} line{plural}, \
         one per answer in order, each of the form \"Score: n\":\n{format}",
        count = responses.len(),
        plural = if responses.len() == 1 { "" } else { "s" },
        format = format_lines.join("\n"),
    );
    vec![
        Message::system("You are a careful and fair judge of answers."),
        Message::user(&instruction),
    ]
}

/// Returns the candidates to grade: those in a requested pair, in index
/// order, or all of them when no pairs are given.
pub fn candidates_to_grade(count: usize, pairs: &[(u32, u32)]) -> Vec<usize> {
    if pairs.is_empty() {
        return (0..count).collect();
    }
    let indices: BTreeSet<usize> = pairs
        .iter()
        .flat_map(|&(a, b)| [a as usize, b as usize])
        .filter(|&i| i < count)
        .collect();
    indices.into_iter().collect()
}

fn grade_batch(
    question: &Question,
    candidates: &[Candidate],
    batch: &[usize],
    settings: &Settings,
) -> Result<Result<Vec<u8>, VerdictError>, String> {
    let responses: Vec<&str> = batch.iter().map(|&i| candidates[i].text.as_str()).collect();
    let sampling = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens: settings.max_tokens,
        n: 1,
        seed: 0,
    };
    let generations = host::generate(&judge_prompt(&question.text, &responses, settings.max_chars), sampling)?;
    let reply = generations.first().map(|g| g.text.as_str()).unwrap_or_default();
    host::tally("judged", 1);

    let scores = judge::scores(reply, batch.len(), MAX_SCORE);
    match &scores {
        Ok(_) => host::tally("scored", batch.len() as u32),
        Err(error) => {
            host::tally(error.counter(), 1);
            wow_sdk::debug!("judge reply without valid scores ({error}): {reply:?}");
        }
    }
    Ok(scores)
}

impl Elicitor for Score {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "score".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(question: Question, candidates: Vec<Candidate>, pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        let settings = Settings::from_host()?;
        let mut scores = vec![None; candidates.len()];
        let graded = candidates_to_grade(candidates.len(), &pairs);
        for batch in graded.chunks(settings.k) {
            if let Ok(values) = grade_batch(&question, &candidates, batch, &settings)? {
                for (&i, value) in batch.iter().zip(values) {
                    scores[i] = Some(f64::from(value));
                }
            }
        }
        Ok(Judgement::Scores(scores))
    }
}

wow_sdk::export_elicitor!(Score);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_numbers_every_response() {
        let messages = judge_prompt("q?", &["a", "b", "c"], 100);
        let text = &messages[1].content;
        for i in 1..=3 {
            assert!(text.contains(&format!("Response {i}:\n")), "response {i} missing");
        }
        assert!(text.contains("exactly 3 lines"));
    }

    #[test]
    fn single_response_prompt_is_singular() {
        let messages = judge_prompt("q?", &["a"], 100);
        assert!(messages[1].content.contains("exactly 1 line,"));
    }

    #[test]
    fn only_paired_candidates_are_graded() {
        assert_eq!(candidates_to_grade(6, &[(4, 1), (1, 2)]), vec![1, 2, 4]);
        assert_eq!(candidates_to_grade(3, &[]), vec![0, 1, 2]);
        assert_eq!(candidates_to_grade(3, &[(0, 9)]), vec![0]);
    }
}
