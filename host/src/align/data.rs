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

/// Token budgets of one pair. Longer prompts keep their last tokens and
/// longer responses their first, as TRL's `DPOTrainer` truncates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthLimits {
    pub max_prompt_length: usize,
    pub max_completion_length: usize,
}

impl Default for LengthLimits {
    fn default() -> Self {
        Self {
            max_prompt_length: 512,
            max_completion_length: 1536,
        }
    }
}

/// Tokenizes preference records with the chat template of `model`: the
/// prompt is rendered with the assistant turn opened, and each response is
/// its text followed by `<|im_end|>` when the vocabulary has that token, as
/// the template closes an assistant turn. Prompts and responses are cut to
/// `limits`.
pub fn tokenize_preferences(
    model: &LocalModel,
    records: &[PreferenceRecord],
    limits: LengthLimits,
) -> Result<Vec<TokenizedPair>, AlignError> {
    let end_of_turn = model.tokenizer().token_to_id("<|im_end|>");
    let response_tokens = |messages: &[crate::model::Message]| -> Result<Vec<u32>, AlignError> {
        let text: String = messages.iter().map(|m| m.content.as_str()).collect();
        let mut tokens = model.encode(&text)?;
        tokens.extend(end_of_turn);
        tokens.truncate(limits.max_completion_length);
        Ok(tokens)
    };
    let mut pairs = Vec::with_capacity(records.len());
    let mut truncated = 0;
    for record in records {
        let mut prompt = model.encode_prompt(&record.prompt)?;
        if prompt.len() > limits.max_prompt_length {
            prompt.drain(..prompt.len() - limits.max_prompt_length);
            truncated += 1;
        }
        pairs.push(TokenizedPair {
            prompt,
            chosen: response_tokens(&record.chosen)?,
            rejected: response_tokens(&record.rejected)?,
        });
    }
    if truncated > 0 {
        tracing::warn!(
            truncated,
            max_prompt_length = limits.max_prompt_length,
            "kept the last tokens of prompts longer than the limit"
        );
    }
    Ok(pairs)
}
