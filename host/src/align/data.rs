//! Preference pairs from a run's `preferences/*.jsonl`, as token ids.

use super::AlignError;
use crate::model::LocalModel;
use crate::run::PreferenceRecord;
use std::path::Path;

/// One preference pair as token ids. `chosen` and `rejected` are the
/// assistant responses that follow `prompt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedPair {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

/// Reads a preference file in TRL's conversational layout, one JSON record
/// a line. Blank lines are skipped.
pub fn read_preferences(path: &Path) -> Result<Vec<PreferenceRecord>, AlignError> {
    let read_error = |message: String| AlignError::Read {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| serde_json::from_str(line).map_err(|e| read_error(format!("line {}: {e}", number + 1))))
        .collect()
}

/// Tokenizes preference records with the chat template of `model`: the
/// prompt is rendered with the assistant turn opened, and each response is
/// its text followed by `<|im_end|>` when the vocabulary has that token, as
/// the template closes an assistant turn. Pairs longer than `max_length`
/// tokens (prompt plus the longer response) are skipped with a warning.
pub fn tokenize_preferences(
    model: &LocalModel,
    records: &[PreferenceRecord],
    max_length: usize,
) -> Result<Vec<TokenizedPair>, AlignError> {
    let end_of_turn = model.tokenizer().token_to_id("<|im_end|>");
    let response_tokens = |messages: &[crate::model::Message]| -> Result<Vec<u32>, AlignError> {
        let text: String = messages.iter().map(|m| m.content.as_str()).collect();
        let mut tokens = model.encode(&text)?;
        tokens.extend(end_of_turn);
        Ok(tokens)
    };
    let mut pairs = Vec::with_capacity(records.len());
    let mut skipped = 0;
    for record in records {
        let pair = TokenizedPair {
            prompt: model.encode_prompt(&record.prompt)?,
            chosen: response_tokens(&record.chosen)?,
            rejected: response_tokens(&record.rejected)?,
        };
        if pair.prompt.len() + pair.chosen.len().max(pair.rejected.len()) > max_length {
            skipped += 1;
            continue;
        }
        pairs.push(pair);
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            max_length,
            "skipped preference pairs longer than the maximum length"
        );
    }
    Ok(pairs)
}
