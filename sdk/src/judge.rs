//! Helpers for elicitors that ask an LLM judge: reading the verdict lines of
//! a judge's reply and cutting long responses to fit its prompt.
//!
//! Judges are asked to reason briefly and end with fixed lines, such as
//! `Preferred output: 1` or one `Score: n` line per response. The parsers
//! accept the usual decorations small models add (Markdown bold, a trailing
//! period, any letter case) and nothing looser, so an unclear reply counts as
//! no verdict rather than a guess.

/// Reason a judge's reply gives no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictError {
    /// No verdict line was found.
    Missing,
    /// A verdict line contains a value outside the allowed range.
    OutOfRange(i64),
    /// The reply has a different number of score lines than responses.
    WrongCount { expected: usize, found: usize },
}

impl VerdictError {
    /// Returns a short counter name for [`crate::host::tally`].
    pub fn counter(&self) -> &'static str {
        match self {
            VerdictError::Missing => "missing-verdict",
            VerdictError::OutOfRange(_) => "out-of-range",
            VerdictError::WrongCount { .. } => "wrong-count",
        }
    }
}

impl std::fmt::Display for VerdictError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerdictError::Missing => f.write_str("the reply has no verdict line"),
            VerdictError::OutOfRange(value) => write!(f, "the verdict {value} is out of range"),
            VerdictError::WrongCount { expected, found } => {
                write!(f, "expected {expected} score lines, found {found}")
            }
        }
    }
}

/// Reads the last `Preferred output: N` line of a pairwise judge's reply and
/// returns N, which must be 1 or 2. Small judges often write the verdict as
/// prose instead, so without such a line the last `answer is N`,
/// `answer: N` or `output N is better` phrase counts.
pub fn preferred_output(reply: &str) -> Result<u8, VerdictError> {
    let labelled = reply
        .lines()
        .rev()
        .find_map(|line| labelled_integer(line, "preferred output"));
    let value = labelled
        .or_else(|| reply.lines().rev().find_map(prose_choice))
        .ok_or(VerdictError::Missing)?;
    match value {
        1 => Ok(1),
        2 => Ok(2),
        other => Err(VerdictError::OutOfRange(other)),
    }
}

/// Reads the `Score: n` lines of a judge's reply, in order, and returns one
/// score per response. There must be exactly `expected` of them, each an
/// integer from 0 to `max`.
pub fn scores(reply: &str, expected: usize, max: i64) -> Result<Vec<u8>, VerdictError> {
    let values: Vec<i64> = reply
        .lines()
        .filter_map(|line| labelled_integer(line, "score"))
        .collect();
    if values.is_empty() {
        return Err(VerdictError::Missing);
    }
    if values.len() != expected {
        return Err(VerdictError::WrongCount {
            expected,
            found: values.len(),
        });
    }
    if let Some(&bad) = values.iter().find(|&&v| !(0..=max).contains(&v)) {
        return Err(VerdictError::OutOfRange(bad));
    }
    Ok(values.into_iter().map(|v| v as u8).collect())
}

/// Returns the integer after `label:` when `line` is such a verdict line.
/// The label may follow list markers, `Response 2` style prefixes or
/// Markdown emphasis, in any case. The value may carry a `/5` style
/// denominator or a trailing period.
fn labelled_integer(line: &str, label: &str) -> Option<i64> {
    let cleaned: String = line.chars().filter(|c| !matches!(c, '*' | '_' | '`' | '#')).collect();
    let lower = cleaned.to_ascii_lowercase();
    let start = lower.find(label)? + label.len();
    let rest = lower[start..].trim_start();
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix('='))?.trim();

    let (sign, digits_start) = match rest.strip_prefix('-') {
        Some(after) => (-1, after),
        None => (1, rest),
    };
    let digits: String = digits_start.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let after = digits_start[digits.len()..].trim();
    let clean_end = after.is_empty()
        || after.starts_with('/')
        || after.starts_with('.') && !after[1..].starts_with(|c: char| c.is_ascii_digit())
        || after.starts_with(['(', ',', ';', ')']);
    if !clean_end {
        return None;
    }
    digits.parse::<i64>().ok().map(|v| sign * v)
}

/// Returns N from `answer ... is N`, `answer: N` or `output N is better` in
/// `line`, using the last `answer` of the line.
fn prose_choice(line: &str) -> Option<i64> {
    let lower: String = line
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !matches!(c, '*' | '_' | '`' | '"'))
        .collect();

    let after_answer = lower.rfind("answer").and_then(|at| {
        let rest: String = lower[at + "answer".len()..].chars().take(40).collect();
        let (_, value) = [" is ", ":", " would be "]
            .iter()
            .filter_map(|link| rest.find(link).map(|found| (found, &rest[found + link.len()..])))
            .min_by_key(|(found, _)| *found)?;
        leading_integer(value.trim_start_matches([' ', '(']))
    });

    let better = lower.rfind(" is better").and_then(|end| {
        let before = lower[..end].trim_end();
        let digits = before.rsplit(' ').next()?;
        before
            .trim_end_matches(digits)
            .trim_end()
            .ends_with("output")
            .then(|| digits.parse().ok())?
    });
    after_answer.or(better)
}

/// Returns the integer that `text` starts with, when the word ends there.
fn leading_integer(text: &str) -> Option<i64> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let next = text[digits.len()..].chars().next();
    if next.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    digits.parse().ok()
}

/// Cuts `text` to at most `max_chars` characters, marking the cut, so that
/// one long response cannot crowd the others out of a judge's prompt.
pub fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((end, _)) => format!("{} [...]", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_output_well_formed() {
        let reply = "Output 2 uses a shorter path.\nPreferred output: 2";
        assert_eq!(preferred_output(reply), Ok(2));
    }

    #[test]
    fn preferred_output_tolerates_decoration() {
        assert_eq!(preferred_output("**Preferred Output:** 1."), Ok(1));
        assert_eq!(preferred_output("preferred output = 2"), Ok(2));
    }

    #[test]
    fn preferred_output_takes_last_line() {
        let reply = "Preferred output: 1\nOn reflection, no.\nPreferred output: 2";
        assert_eq!(preferred_output(reply), Ok(2));
    }

    #[test]
    fn preferred_output_from_prose() {
        assert_eq!(preferred_output("The answer to the question is 1."), Ok(1));
        assert_eq!(preferred_output("Answer: 2"), Ok(2));
        assert_eq!(preferred_output("I think Output 2 is better."), Ok(2));
        assert_eq!(preferred_output("The answer is 3."), Err(VerdictError::OutOfRange(3)));
    }

    #[test]
    fn labelled_line_beats_prose() {
        let reply = "The answer is 1, at first sight.\nPreferred output: 2";
        assert_eq!(preferred_output(reply), Ok(2));
    }

    #[test]
    fn preferred_output_missing_line() {
        assert_eq!(preferred_output("Both are wrong."), Err(VerdictError::Missing));
        assert_eq!(preferred_output("Preferred output: either"), Err(VerdictError::Missing));
        assert_eq!(
            preferred_output("The answer is 12 km away."),
            Err(VerdictError::OutOfRange(12))
        );
        assert_eq!(preferred_output("The answer is unclear."), Err(VerdictError::Missing));
    }

    #[test]
    fn preferred_output_out_of_range() {
        assert_eq!(
            preferred_output("Preferred output: 3"),
            Err(VerdictError::OutOfRange(3))
        );
        assert_eq!(
            preferred_output("Preferred output: 0"),
            Err(VerdictError::OutOfRange(0))
        );
    }

    #[test]
    fn scores_well_formed() {
        let reply = "The first is close.\nScore: 4\nScore: 1/5\n";
        assert_eq!(scores(reply, 2, 5), Ok(vec![4, 1]));
    }

    #[test]
    fn scores_with_response_prefixes() {
        let reply = "Response 1 Score: 3\n- Response 2 score: 0.";
        assert_eq!(scores(reply, 2, 5), Ok(vec![3, 0]));
    }

    #[test]
    fn scores_missing_line() {
        assert_eq!(scores("I cannot grade these.", 1, 5), Err(VerdictError::Missing));
    }

    #[test]
    fn scores_out_of_range() {
        assert_eq!(scores("Score: 7", 1, 5), Err(VerdictError::OutOfRange(7)));
        assert_eq!(scores("Score: -1", 1, 5), Err(VerdictError::OutOfRange(-1)));
    }

    #[test]
    fn scores_wrong_count() {
        assert_eq!(
            scores("Score: 2\nScore: 3\nScore: 4", 2, 5),
            Err(VerdictError::WrongCount { expected: 2, found: 3 })
        );
    }

    #[test]
    fn decimal_scores_are_not_integers() {
        assert_eq!(scores("Score: 2.5", 1, 5), Err(VerdictError::Missing));
    }

    #[test]
    fn clip_marks_the_cut() {
        assert_eq!(clip("abcdef", 3), "abc [...]");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("ééé", 2), "éé [...]");
    }
}
