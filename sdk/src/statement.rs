//! Statements that tasks hand to scorers, with an optional given part.
//!
//! A task's `statements` may mark the start of a statement as given, such
//! as the scene of a HellaSwag item before one of its endings. A scorer
//! then judges only the rest, conditioned on the given part: a likelihood
//! scorer scores the ending's tokens after the scene's, so every ending of
//! one item is measured against the same context. The mark is the ASCII
//! unit separator (U+001F); [`conditional`] replaces it inside the parts.
//!
//! ```
//! use wow_sdk::statement;
//!
//! let text = statement::conditional("A man is on a roof.", "He removes the tiles.");
//! assert_eq!(statement::split(&text), (Some("A man is on a roof."), "He removes the tiles."));
//! assert_eq!(statement::plain(&text), "A man is on a roof. He removes the tiles.");
//! assert_eq!(statement::split("The sky is blue."), (None, "The sky is blue."));
//! ```

/// Character between the given part of a statement and the judged part.
pub const GIVEN_SEPARATOR: char = '\u{1f}';

/// Returns a statement whose `judged` part a scorer judges after `given`.
/// Separator characters inside either part are replaced by spaces.
pub fn conditional(given: &str, judged: &str) -> String {
    let clean = |text: &str| text.trim().replace(GIVEN_SEPARATOR, " ");
    format!("{}{GIVEN_SEPARATOR}{}", clean(given), clean(judged))
}

/// Splits a statement into its given part, if any, and its judged part.
pub fn split(statement: &str) -> (Option<&str>, &str) {
    match statement.split_once(GIVEN_SEPARATOR) {
        Some((given, judged)) => (Some(given), judged),
        None => (None, statement),
    }
}

/// Returns the statement as one sentence, the given part and the judged
/// part joined by a space, for scorers that read it whole.
pub fn plain(statement: &str) -> String {
    match split(statement) {
        (Some(given), judged) => format!("{given} {judged}"),
        (None, judged) => judged.to_string(),
    }
}
