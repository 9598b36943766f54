//! Checks on everything a plugin returns, before the host uses it.
//!
//! A plugin's output is untrusted: numbers may be NaN or out of range,
//! lists may have the wrong length, strings may be huge. Each check returns
//! a message for [`FailureKind::InvalidOutput`](super::FailureKind).

use std::collections::HashSet;

use super::bindings::types::{ItemError, Judgement, Message, Question};

/// Maximum length of a question id, in bytes.
pub const MAX_ID_BYTES: usize = 1024;

/// Maximum length of a question text, reference or message, in bytes.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Maximum length of a task payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;

/// Maximum length of an extracted answer, in bytes.
pub const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Maximum number of messages in one prompt.
pub const MAX_PROMPT_MESSAGES: usize = 256;

/// Maximum length of an error message kept from a plugin, in bytes. Longer ones are cut.
pub const MAX_ERROR_BYTES: usize = 4 << 10;

/// Chat roles a prompt may use.
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// Checks one parsed question.
pub fn question(question: &Question) -> Result<(), String> {
    if question.id.is_empty() {
        return Err("question id is empty".into());
    }
    check_len("question id", &question.id, MAX_ID_BYTES)?;
    check_len("question text", &question.text, MAX_TEXT_BYTES)?;
    if let Some(reference) = &question.reference {
        check_len("reference answer", reference, MAX_TEXT_BYTES)?;
    }
    check_len("question payload", &question.payload, MAX_PAYLOAD_BYTES)
}

/// Turns every row of a loaded dataset into a valid question or an item
/// error: invalid questions and duplicate ids become item errors, and item
/// error texts are cut to [`MAX_ERROR_BYTES`].
pub fn dataset_rows(rows: Vec<Result<Question, ItemError>>) -> Vec<Result<Question, ItemError>> {
    let mut seen = HashSet::new();
    rows.into_iter()
        .enumerate()
        .map(|(row, result)| match result {
            Ok(q) => match question(&q) {
                Err(message) => Err(ItemError {
                    id: row_id(&q.id, row),
                    message: format!("the task plugin returned an invalid question: {message}"),
                }),
                Ok(()) if !seen.insert(q.id.clone()) => Err(ItemError {
                    message: format!("duplicate question id `{}`; ids must be unique within a dataset", q.id),
                    id: q.id,
                }),
                Ok(()) => Ok(q),
            },
            Err(error) => Err(ItemError {
                id: row_id(&error.id, row),
                message: truncate(error.message, MAX_ERROR_BYTES),
            }),
        })
        .collect()
}

/// Returns a printable id for a row: the plugin's id when usable, else the
/// row number.
fn row_id(id: &str, row: usize) -> String {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        format!("row {}", row + 1)
    } else {
        id.to_string()
    }
}

/// Checks a prompt: 1 to [`MAX_PROMPT_MESSAGES`] messages with known roles.
pub fn prompt(messages: &[Message]) -> Result<(), String> {
    if messages.is_empty() {
        return Err("the prompt has no messages".into());
    }
    if messages.len() > MAX_PROMPT_MESSAGES {
        return Err(format!(
            "the prompt has {} messages; at most {MAX_PROMPT_MESSAGES} are allowed",
            messages.len()
        ));
    }
    for message in messages {
        if !ROLES.contains(&message.role.as_str()) {
            return Err(format!(
                "message role {:?} is not one of {}",
                truncate(message.role.clone(), 64),
                ROLES.join(", ")
            ));
        }
        check_len("message content", &message.content, MAX_TEXT_BYTES)?;
    }
    Ok(())
}

/// Checks an extracted answer's size.
pub fn answer(answer: &str) -> Result<(), String> {
    check_len("answer", answer, MAX_ANSWER_BYTES)
}

/// Maximum statements a task may return for one answer.
pub const MAX_STATEMENTS: usize = 256;

/// Checks the statements a task returns for scoring: a bounded count, each
/// within the text size limit.
pub fn statements(statements: &[String]) -> Result<(), String> {
    if statements.len() > MAX_STATEMENTS {
        return Err(format!(
            "{} statements exceed the limit of {MAX_STATEMENTS}",
            statements.len()
        ));
    }
    match statements.iter().find(|statement| statement.len() > MAX_TEXT_BYTES) {
        Some(long) => Err(format!("a statement of {} bytes exceeds {MAX_TEXT_BYTES}", long.len())),
        None => Ok(()),
    }
}

/// Checks that a proxy correctness or score is finite and in [0, 1].
pub fn unit_interval(what: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        return Ok(());
    }
    Err(format!("{what} {value} is not in [0, 1]"))
}

/// Checks a judgement against the number of candidates it judges.
pub fn judgement(judgement: &Judgement, candidates: usize) -> Result<(), String> {
    match judgement {
        Judgement::Scores(scores) => {
            if scores.len() != candidates {
                return Err(format!("{} scores for {candidates} candidates", scores.len()));
            }
            if let Some(bad) = scores.iter().flatten().find(|s| !s.is_finite()) {
                return Err(format!("score {bad} is not finite"));
            }
        }
        Judgement::Preferences(preferences) => {
            let max_pairs = candidates * candidates.saturating_sub(1);
            if preferences.len() > max_pairs {
                return Err(format!(
                    "{} preferences for {candidates} candidates; at most {max_pairs} pairs exist",
                    preferences.len()
                ));
            }
            for p in preferences {
                let in_range = (p.chosen as usize) < candidates && (p.rejected as usize) < candidates;
                if !in_range || p.chosen == p.rejected || !p.strength.is_finite() {
                    return Err(format!(
                        "invalid preference {} over {} (strength {}) for {candidates} candidates",
                        p.chosen, p.rejected, p.strength
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_len(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() <= max {
        return Ok(());
    }
    Err(format!("{what} is {} bytes; at most {max} are allowed", text.len()))
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the
/// cut.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("... ({cut} more bytes)"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Preference;

    fn question_with(id: &str, text: &str) -> Question {
        Question {
            id: id.into(),
            text: text.into(),
            reference: None,
            payload: String::new(),
        }
    }

    #[test]
    fn scores_must_match_candidates() {
        let scores = Judgement::Scores(vec![Some(1.0), None]);
        assert!(judgement(&scores, 2).is_ok());
        assert!(judgement(&scores, 3).unwrap_err().contains("2 scores for 3"));
    }

    #[test]
    fn nan_score_is_rejected() {
        let scores = Judgement::Scores(vec![Some(f64::NAN)]);
        assert!(judgement(&scores, 1).unwrap_err().contains("NaN"));
        assert!(unit_interval("score", f64::NAN).is_err());
        assert!(unit_interval("score", 1.5).is_err());
        assert!(unit_interval("score", 1.0).is_ok());
    }

    #[test]
    fn preferences_are_bounded() {
        let preference = Preference {
            chosen: 0,
            rejected: 1,
            strength: 1.0,
        };
        assert!(judgement(&Judgement::Preferences(vec![preference]), 2).is_ok());
        let too_many = Judgement::Preferences(vec![preference; 3]);
        assert!(judgement(&too_many, 2).unwrap_err().contains("at most 2"));
        let self_preference = Preference {
            rejected: 0,
            ..preference
        };
        assert!(judgement(&Judgement::Preferences(vec![self_preference]), 2).is_err());
    }

    #[test]
    fn oversize_question_becomes_item_error() {
        let rows = vec![
            Ok(question_with("a", "fine")),
            Ok(question_with("b", &"x".repeat(MAX_TEXT_BYTES + 1))),
            Ok(question_with("", "no id")),
            Ok(question_with("a", "duplicate")),
        ];
        let rows = dataset_rows(rows);
        assert!(rows[0].is_ok());
        let errors: Vec<ItemError> = rows.into_iter().skip(1).map(|r| r.unwrap_err()).collect();
        assert_eq!(errors[0].id, "b");
        assert!(errors[0].message.contains("question text"), "{}", errors[0].message);
        assert_eq!(errors[1].id, "row 3");
        assert!(errors[2].message.contains("duplicate"), "{}", errors[2].message);
    }

    #[test]
    fn prompt_roles_are_checked() {
        let message = |role: &str| Message {
            role: role.into(),
            content: "hi".into(),
        };
        assert!(prompt(&[message("user")]).is_ok());
        assert!(prompt(&[]).is_err());
        assert!(prompt(&[message("root")]).unwrap_err().contains("root"));
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        let text = truncate("héllo".repeat(10), 2);
        assert!(text.starts_with('h'), "{text}");
        assert!(text.contains("more bytes"), "{text}");
    }
}
