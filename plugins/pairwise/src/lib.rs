//! Pairwise elicitor: an LLM judge reads the question and two responses and
//! names the better one on a final `Preferred output: N` line.
//!
//! With the consistency check on (`consistency=on`, the default) each pair
//! is judged twice, with the responses swapped the second time. It is kept
//! only when both verdicts pick the same response, which cancels the judge's
//! bias towards one position. Unparsable replies give no preference.
//!
//! Counters reported to the host: `judged` (replies requested), `unparsable`,
//! `inconsistent` (both orders parsed but disagreed) and `kept`.

use wow_sdk::host::{self, Sampling};
use wow_sdk::judge::{self, VerdictError};
use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Message, Preference, Question};

/// The `pairwise` elicitor.
pub struct Pairwise;

/// Settings a run may give, with their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub consistency: bool,
    /// Tokens the judge may write per verdict.
    pub max_tokens: u32,
    /// Characters of each response shown to the judge.
    pub max_chars: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            consistency: true,
            max_tokens: 160,
            max_chars: 1500,
        }
    }
}

impl Settings {
    fn from_host() -> Result<Self, String> {
        let defaults = Settings::default();
        let consistency = match host::setting("consistency").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(format!("invalid setting consistency={other:?}; use on or off")),
        };
        Ok(Self {
            consistency,
            max_tokens: host::setting_or("max-tokens", defaults.max_tokens)?,
            max_chars: host::setting_or("max-chars", defaults.max_chars)?,
        })
    }
}

/// Builds the judge prompt for `first` (Output 1) and `second` (Output 2).
pub fn judge_prompt(question: &str, first: &str, second: &str, max_chars: usize) -> Vec<Message> {
    let instruction = format!(
        "Here is a question and two answers to it. Both answers may be wrong. \
         Decide which answer is closer to the correct answer.\n\n\
         Question:\n{question}\n\n\
         Output 1:\n{}\n\n\
         Output 2:\n{}\n\n\
         Explain your reasoning in one or two sentences. Then end with a final line \
         that is exactly \"Preferred output: 1\" or \"Preferred output: 2\".",
        judge::clip(first, max_chars),
        judge::clip(second, max_chars),
    );
    vec![
        Message::system("You are a careful and fair judge of answers."),
        Message::user(&instruction),
    ]
}

/// Combines the verdicts on (a, b) and, with the check, on (b, a) into the
/// preferred candidate index, or the counter that explains why there is
/// none. Verdicts are 1 or 2, positions in the prompt that was asked.
pub fn combine(
    a: u32,
    b: u32,
    forward: Result<u8, VerdictError>,
    backward: Option<Result<u8, VerdictError>>,
) -> Result<u32, &'static str> {
    let forward_choice = match forward {
        Ok(1) => a,
        Ok(_) => b,
        Err(_) => return Err("unparsable"),
    };
    let Some(backward) = backward else {
        return Ok(forward_choice);
    };
    let backward_choice = match backward {
        Ok(1) => b,
        Ok(_) => a,
        Err(_) => return Err("unparsable"),
    };
    if forward_choice == backward_choice {
        Ok(forward_choice)
    } else {
        Err("inconsistent")
    }
}

fn ask(messages: &[Message], settings: &Settings) -> Result<Result<u8, VerdictError>, String> {
    let sampling = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens: settings.max_tokens,
        n: 1,
        seed: 0,
    };
    let generations = host::generate(messages, sampling)?;
    let reply = generations.first().map(|g| g.text.as_str()).unwrap_or_default();
    host::tally("judged", 1);
    let verdict = judge::preferred_output(reply);
    if let Err(error) = &verdict {
        host::tally(error.counter(), 1);
        wow_sdk::debug!("judge reply without a verdict ({error}): {reply:?}");
    }
    Ok(verdict)
}

fn judge_pair(
    question: &Question,
    candidates: &[Candidate],
    a: u32,
    b: u32,
    settings: &Settings,
) -> Result<Option<Preference>, String> {
    let (first, second) = (&candidates[a as usize].text, &candidates[b as usize].text);
    let forward = ask(
        &judge_prompt(&question.text, first, second, settings.max_chars),
        settings,
    )?;
    let backward = if settings.consistency && forward.is_ok() {
        Some(ask(
            &judge_prompt(&question.text, second, first, settings.max_chars),
            settings,
        )?)
    } else {
        None
    };

    match combine(a, b, forward, backward) {
        Ok(chosen) => {
            host::tally("kept", 1);
            let rejected = if chosen == a { b } else { a };
            Ok(Some(Preference {
                chosen,
                rejected,
                strength: 1.0,
            }))
        }
        Err(counter) => {
            host::tally(counter, 1);
            Ok(None)
        }
    }
}

impl Elicitor for Pairwise {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "pairwise".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    /// Judges each requested pair. Every kept preference has strength 1,
    /// so margins below 100% keep pairs in the order the host lists them.
    fn elicit(question: Question, candidates: Vec<Candidate>, pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        let settings = Settings::from_host()?;
        let mut preferences = Vec::new();
        for (a, b) in pairs {
            if a as usize >= candidates.len() || b as usize >= candidates.len() {
                return Err(format!(
                    "pair ({a}, {b}) is outside the {} candidates",
                    candidates.len()
                ));
            }
            preferences.extend(judge_pair(&question, &candidates, a, b, &settings)?);
        }
        Ok(Judgement::Preferences(preferences))
    }
}

wow_sdk::export_elicitor!(Pairwise);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_shows_both_outputs_in_order() {
        let messages = judge_prompt("2+2?", "five", "three", 100);
        let text = &messages[1].content;
        assert!(text.find("Output 1:\nfive").unwrap() < text.find("Output 2:\nthree").unwrap());
        assert!(text.contains("Preferred output: 1"));
    }

    #[test]
    fn prompt_clips_long_outputs() {
        let long = "x".repeat(50);
        let messages = judge_prompt("q", &long, "y", 10);
        assert!(messages[1].content.contains(&format!("{} [...]", "x".repeat(10))));
    }

    #[test]
    fn consistent_verdicts_keep_the_pair() {
        // Forward prefers Output 2 (= b), backward prefers Output 1 (= b).
        assert_eq!(combine(3, 5, Ok(2), Some(Ok(1))), Ok(5));
        assert_eq!(combine(3, 5, Ok(1), Some(Ok(2))), Ok(3));
    }

    #[test]
    fn position_bias_is_filtered() {
        // The judge always picks Output 1: a different response each time.
        assert_eq!(combine(3, 5, Ok(1), Some(Ok(1))), Err("inconsistent"));
    }

    #[test]
    fn single_order_without_check() {
        assert_eq!(combine(3, 5, Ok(1), None), Ok(3));
        assert_eq!(combine(3, 5, Ok(2), None), Ok(5));
    }

    #[test]
    fn unparsable_reply_gives_no_preference() {
        assert_eq!(combine(3, 5, Err(VerdictError::Missing), None), Err("unparsable"));
        assert_eq!(
            combine(3, 5, Ok(1), Some(Err(VerdictError::OutOfRange(4)))),
            Err("unparsable")
        );
    }
}
