//! Measures prompt prefill and batched decode speed of the default model.
//!
//! Run with `cargo bench -p wow --bench inference`. Set `WOW_MODEL` to
//! measure another GGUF file.

use std::time::{Duration, Instant};
use wow::model::{LocalModel, Message, Sampling, default_model_path};

/// llama.cpp figures for the same model on a 2-core AMD EPYC (AVX, FMA, no
/// AVX2), from one earlier run of llama-cpp-python 0.3.36. This benchmark
/// does not measure them.
const LLAMA_CPP_PREFILL_300_SECONDS: f64 = 0.77;
const LLAMA_CPP_DECODE_TOKENS_PER_SECOND: f64 = 115.0;

const PREFILL_TOKENS: usize = 300;
const DECODE_TOKENS: u32 = 64;
const REPEATS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = default_model_path()?;
    let started = Instant::now();
    let mut model = LocalModel::load(&path)?;
    println!(
        "model {} loaded in {:.2} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );

    let prompt = long_prompt(&model, PREFILL_TOKENS)?;
    let prefill = best_of(REPEATS, || {
        let started = Instant::now();
        model.sample_tokens(&prompt, &sampling(1, 1)).map(|_| started.elapsed())
    })?;
    let prefill_seconds = prefill.as_secs_f64();
    println!(
        "prefill {PREFILL_TOKENS} tokens: {prefill_seconds:.3} s ({:.0} tokens/s), {:.2}x llama.cpp's {LLAMA_CPP_PREFILL_300_SECONDS} s",
        PREFILL_TOKENS as f64 / prefill_seconds,
        LLAMA_CPP_PREFILL_300_SECONDS / prefill_seconds,
    );

    for quantized in [true, false] {
        model.set_quantized_decode(quantized);
        let kernel = if quantized { "quantized" } else { "f32" };
        for n in [1, 10] {
            let rate = decode_rate(&model, n)?;
            println!(
                "decode n={n:<2} ({kernel} kernels): {rate:.1} tokens/s, {:.2}x llama.cpp's {LLAMA_CPP_DECODE_TOKENS_PER_SECOND} tokens/s",
                rate / LLAMA_CPP_DECODE_TOKENS_PER_SECOND
            );
        }
    }
    Ok(())
}

fn sampling(n: u32, max_tokens: u32) -> Sampling {
    Sampling {
        temperature: 1.0,
        top_p: 1.0,
        max_tokens,
        n,
        seed: 1,
    }
}

/// Builds a chat prompt of exactly `tokens` tokens from repeated prose.
fn long_prompt(model: &LocalModel, tokens: usize) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    let text = "The river bends past the old mill, where children count the boats and the miller weighs the grain. "
        .repeat(40);
    let mut ids = model.encode_prompt(&[Message::new("user", text)])?;
    if ids.len() < tokens {
        return Err(format!("prompt has {} tokens, fewer than {tokens}", ids.len()).into());
    }
    ids.truncate(tokens);
    Ok(ids)
}

/// Returns decoded tokens per second summed over the `n` responses of one
/// request, excluding the prompt prefill.
fn decode_rate(model: &LocalModel, n: u32) -> Result<f64, Box<dyn std::error::Error>> {
    let prompt = model.encode_prompt(&[Message::new("user", "Tell me a long story about a lighthouse keeper.")])?;
    let prefill = best_of(REPEATS, || {
        let started = Instant::now();
        model.sample_tokens(&prompt, &sampling(1, 1)).map(|_| started.elapsed())
    })?;
    let mut best: f64 = 0.0;
    for _ in 0..REPEATS {
        let started = Instant::now();
        let samples = model.sample_tokens(&prompt, &sampling(n, DECODE_TOKENS))?;
        let decode_time = started.elapsed().saturating_sub(prefill).as_secs_f64();
        // The first token of each response comes from the prefill logits.
        let decoded: usize = samples.iter().map(|s| s.tokens.len().saturating_sub(1)).sum();
        best = best.max(decoded as f64 / decode_time);
    }
    Ok(best)
}

fn best_of<E>(repeats: usize, mut run: impl FnMut() -> Result<Duration, E>) -> Result<Duration, E> {
    let mut best = Duration::MAX;
    for _ in 0..repeats {
        best = best.min(run()?);
    }
    Ok(best)
}
