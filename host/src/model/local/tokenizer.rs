//! Tokenizers rebuilt from GGUF metadata: GPT-2 byte-level BPE (`gpt2`) and
//! SentencePiece BPE (`llama`).

use crate::model::ModelError;
use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, DecoderWrapper, Tokenizer};

/// GGUF token type of ordinary vocabulary pieces (`tokenizer.ggml.token_type`,
/// llama.cpp's `LLAMA_TOKEN_TYPE_NORMAL`).
const TOKEN_TYPE_NORMAL: i32 = 1;
/// GGUF token type of control tokens such as `<|im_start|>`
/// (llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL`).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of user-defined tokens, matched in raw text like control
/// tokens but decoded as ordinary text.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The character SentencePiece writes for a space.
const SENTENCEPIECE_SPACE: &str = "\u{2581}";

/// Builds the tokenizer described by the `tokenizer.ggml.*` keys, with
/// control tokens added as special tokens, user-defined tokens added as
/// ordinary added tokens, and no BOS or EOS inserted on encoding.
///
/// `tokenizer.ggml.model` selects the model: `gpt2` is a byte-level BPE
/// with the GPT-2 pre-tokenizer regex and the merges from the file, `llama`
/// a SentencePiece BPE whose merges are derived from the vocabulary and
/// scores (see [`sentencepiece_bpe`]).
pub fn tokenizer_from_gguf(metadata: &HashMap<String, Value>) -> Result<Tokenizer, ModelError> {
    let kind = metadata_string(metadata, "tokenizer.ggml.model")?;
    let tokens = string_array(metadata, "tokenizer.ggml.tokens")?;
    let token_types = token_types(metadata, tokens.len())?;

    let mut tokenizer = match kind {
        "gpt2" => byte_level_bpe(metadata, &tokens)?,
        "llama" => sentencepiece_bpe(metadata, &tokens, &token_types)?,
        other => {
            return Err(ModelError::Tokenizer(format!(
                "unsupported GGUF tokenizer model {other:?}, expected \"gpt2\" or \"llama\""
            )));
        }
    };

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

/// Builds a GPT-2 byte-level BPE from the vocabulary and the
/// `tokenizer.ggml.merges` of the file.
fn byte_level_bpe(metadata: &HashMap<String, Value>, tokens: &[&str]) -> Result<Tokenizer, ModelError> {
    let merges = string_array(metadata, "tokenizer.ggml.merges")?
        .iter()
        .map(|merge| {
            let (left, right) = merge
                .split_once(' ')
                .ok_or_else(|| ModelError::Tokenizer(format!("invalid BPE merge {merge:?}")))?;
            Ok((left.to_string(), right.to_string()))
        })
        .collect::<Result<Merges, ModelError>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocabulary(tokens), merges)
        .build()
        .map_err(tokenizer_error)?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

/// Builds a SentencePiece BPE as Hugging Face's `GemmaTokenizer` and
/// SentencePiece converters do. Spaces become `▁` before the model runs, and
/// the text is not pre-tokenized. Characters missing from the vocabulary
/// fall back to their UTF-8 bytes as `<0xNN>` tokens. Decoding turns `▁`
/// back into spaces and fuses the bytes.
///
/// The file has no merge list, so [`sentencepiece_merges`] derives one from
/// `tokenizer.ggml.scores`. `tokenizer.ggml.add_space_prefix` must be false,
/// because no `▁` is prepended to the text.
fn sentencepiece_bpe(
    metadata: &HashMap<String, Value>,
    tokens: &[&str],
    token_types: &[i32],
) -> Result<Tokenizer, ModelError> {
    let adds_space_prefix = metadata
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    if adds_space_prefix {
        // TODO: vocabularies with `add_space_prefix` (llama 2 style) need a `▁` prepended to the text.
        return Err(ModelError::Tokenizer(
            "SentencePiece vocabularies with tokenizer.ggml.add_space_prefix = true are not supported".to_string(),
        ));
    }
    let scores = float_array(metadata, "tokenizer.ggml.scores")?;
    if scores.len() != tokens.len() {
        return Err(ModelError::Tokenizer(format!(
            "GGUF metadata has {} tokens but {} scores",
            tokens.len(),
            scores.len()
        )));
    }
    let unknown_token = metadata
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .and_then(|id| tokens.get(id as usize))
        .unwrap_or(&"<unk>");

    let merges = sentencepiece_merges(tokens, &scores, token_types);
    let bpe = BPE::builder()
        .vocab_and_merges(vocabulary(tokens), merges)
        .unk_token(unknown_token.to_string())
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(tokenizer_error)?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_normalizer(Some(Replace::new(" ", SENTENCEPIECE_SPACE).map_err(tokenizer_error)?));
    let decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SENTENCEPIECE_SPACE, " ").map_err(tokenizer_error)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// Derives BPE merges from a SentencePiece vocabulary the way Hugging Face's
/// SentencePiece converters do. Every split of a normal piece into two
/// pieces of the vocabulary is a merge. Merges are ranked by the score of
/// the merged piece, highest first, then by its id and the id of the left
/// part.
///
/// Only normal pieces get merges: control and user-defined tokens are added
/// tokens, matched whole in the raw text before the model runs, and byte
/// tokens come from byte fallback.
fn sentencepiece_merges(tokens: &[&str], scores: &[f32], token_types: &[i32]) -> Merges {
    let ids: HashMap<&str, usize> = tokens.iter().enumerate().map(|(id, token)| (*token, id)).collect();

    let mut ranked: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if token_types[id] != TOKEN_TYPE_NORMAL {
            continue;
        }
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if let (Some(&left_id), Some(&right_id)) = (ids.get(left), ids.get(right)) {
                ranked.push((scores[id], id, left_id, right_id));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));

    ranked
        .into_iter()
        .map(|(_, _, left, right)| (tokens[left].to_string(), tokens[right].to_string()))
        .collect()
}

fn vocabulary(tokens: &[&str]) -> Vocab {
    tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.to_string(), id as u32))
        .collect()
}

/// Reads `tokenizer.ggml.token_type`. Every token is normal when the key is missing.
fn token_types(metadata: &HashMap<String, Value>, token_count: usize) -> Result<Vec<i32>, ModelError> {
    let Some(value) = metadata.get("tokenizer.ggml.token_type") else {
        return Ok(vec![TOKEN_TYPE_NORMAL; token_count]);
    };
    let types = value
        .to_vec()
        .map_err(tokenizer_error)?
        .iter()
        .map(|v| v.to_i32().map_err(tokenizer_error))
        .collect::<Result<Vec<_>, _>>()?;
    if types.len() != token_count {
        return Err(ModelError::Tokenizer(format!(
            "GGUF metadata has {token_count} tokens but {} token types",
            types.len()
        )));
    }
    Ok(types)
}

/// Reads a string metadata value.
pub fn metadata_string<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<&'a str, ModelError> {
    let value = metadata
        .get(key)
        .ok_or_else(|| ModelError::Tokenizer(format!("GGUF metadata key {key} is missing")))?;
    value.to_string().map(String::as_str).map_err(tokenizer_error)
}

fn string_array<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<Vec<&'a str>, ModelError> {
    metadata_array(metadata, key)?
        .iter()
        .map(|v| v.to_string().map(String::as_str).map_err(tokenizer_error))
        .collect()
}

fn float_array(metadata: &HashMap<String, Value>, key: &str) -> Result<Vec<f32>, ModelError> {
    metadata_array(metadata, key)?
        .iter()
        .map(|v| v.to_f32().map_err(tokenizer_error))
        .collect()
}

fn metadata_array<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<&'a Vec<Value>, ModelError> {
    metadata
        .get(key)
        .ok_or_else(|| ModelError::Tokenizer(format!("GGUF metadata key {key} is missing")))?
        .to_vec()
        .map_err(tokenizer_error)
}

fn tokenizer_error(error: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(error.to_string())
}
