//! Byte-level BPE tokenizer rebuilt from GGUF metadata.

use crate::model::ModelError;
use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// GGUF token type of control tokens such as `<|im_start|>`
/// (`tokenizer.ggml.token_type`, llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL`).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of user-defined tokens, matched in raw text like control
/// tokens but decoded as ordinary text.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Builds the tokenizer described by the `tokenizer.ggml.*` keys: a GPT-2
/// byte-level BPE with the GPT-2 pre-tokenizer regex, control tokens added
/// as special tokens, and no BOS or EOS inserted on encoding.
pub fn tokenizer_from_gguf(metadata: &HashMap<String, Value>) -> Result<Tokenizer, ModelError> {
    let kind = metadata_string(metadata, "tokenizer.ggml.model")?;
    if kind != "gpt2" {
        // TODO: SentencePiece (`llama`) vocabularies are not supported yet.
        return Err(ModelError::Tokenizer(format!(
            "unsupported GGUF tokenizer model {kind:?}, expected \"gpt2\""
        )));
    }
    let tokens = string_array(metadata, "tokenizer.ggml.tokens")?;
    let merges = string_array(metadata, "tokenizer.ggml.merges")?;
    let token_types = match metadata.get("tokenizer.ggml.token_type") {
        Some(value) => value
            .to_vec()
            .map_err(tokenizer_error)?
            .iter()
            .map(|v| v.to_i32().map_err(tokenizer_error))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![1; tokens.len()],
    };

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.to_string(), id as u32))
        .collect();
    let merges = merges
        .iter()
        .map(|merge| {
            let (left, right) = merge
                .split_once(' ')
                .ok_or_else(|| ModelError::Tokenizer(format!("invalid BPE merge {merge:?}")))?;
            Ok((left.to_string(), right.to_string()))
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(tokenizer_error)?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let added_tokens = |wanted: i32| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(&token_types)
            .filter(|(_, kind)| **kind == wanted)
            .map(|(token, _)| AddedToken::from(token.to_string(), wanted == TOKEN_TYPE_CONTROL).normalized(false))
            .collect()
    };
    tokenizer.add_special_tokens(&added_tokens(TOKEN_TYPE_CONTROL));
    tokenizer.add_tokens(&added_tokens(TOKEN_TYPE_USER_DEFINED));
    Ok(tokenizer)
}

/// Reads a string metadata value.
pub fn metadata_string<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<&'a str, ModelError> {
    let value = metadata
        .get(key)
        .ok_or_else(|| ModelError::Tokenizer(format!("GGUF metadata key {key} is missing")))?;
    value.to_string().map(String::as_str).map_err(tokenizer_error)
}

fn string_array<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<Vec<&'a str>, ModelError> {
    let value = metadata
        .get(key)
        .ok_or_else(|| ModelError::Tokenizer(format!("GGUF metadata key {key} is missing")))?;
    value
        .to_vec()
        .map_err(tokenizer_error)?
        .iter()
        .map(|v| v.to_string().map(String::as_str).map_err(tokenizer_error))
        .collect()
}

fn tokenizer_error(error: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(error.to_string())
}
