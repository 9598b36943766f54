//! Times one DPO optimisation step of wow's LoRA trainer against TRL's
//! `DPOTrainer` with PEFT LoRA on PyTorch CPU, on the same model, pairs and
//! lengths, and prints the ratio and the peak memory of both.
//!
//! Run with `cargo bench -p wow --bench dpo_step`. Environment:
//! - `WOW_NLGRAPH`: NLGraph shortest-path `train.json` whose first 16
//!   questions become the prompts (required);
//! - `WOW_TRL_PYTHON`: a Python with `torch transformers trl peft gguf
//!   datasets accelerate` installed; without it only wow is measured;
//! - `WOW_MODEL`: another llama GGUF file;
//! - `WOW_BENCH_STEPS`: optimizer steps per side (default 6; the first is
//!   not counted).
//!
//! Both sides run 2 pairs a step (wow in two accumulated passes of one pair,
//! TRL in one batch), LoRA rank 16 on all seven projections, and use
//! reference log-probabilities computed before the first step. wow runs
//! in this process first, then TRL in a child process, so each peak memory
//! figure is that of its own process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::Device;
use serde_json::Value;
use wow::align::{LengthLimits, LoraConfig, LoraLlama, TrainConfig, Trainer, reference_logprobs, tokenize_preferences};
use wow::model::{LocalModel, Message, default_model_path};
use wow::run::PreferenceRecord;

const CHOSEN: &str = "The shortest path goes through node 3 and node 5, so the total weight is 12. ";
const REJECTED: &str = "The path visits every node once, so the total weight is 40 in total here. ";
const PAIRS_PER_STEP: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model_path = default_model_path()?;
    let data = PathBuf::from(std::env::var("WOW_NLGRAPH").map_err(|_| {
        "set WOW_NLGRAPH to an NLGraph shortest-path train.json (for example ../shared/data/nlgraph/shortest_path/train.json)"
    })?);
    let steps: usize = std::env::var("WOW_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);

    let wow_seconds = time_wow_steps(&model_path, &data, steps)?;
    let wow_peak = peak_rss_mib()?;
    let wow_median = median_after_first(&wow_seconds);
    println!("wow: step times {:?} s", rounded(&wow_seconds));
    println!("wow: median step {wow_median:.2} s (batch {PAIRS_PER_STEP} pairs), peak RSS {wow_peak:.0} MiB");

    let Ok(python) = std::env::var("WOW_TRL_PYTHON") else {
        println!(
            "TRL not measured: set WOW_TRL_PYTHON to a Python with torch, transformers, trl, peft, gguf, datasets"
        );
        return Ok(());
    };
    let trl = time_trl_steps(&python, &model_path, &data, steps)?;
    let trl_median = trl["median_step_seconds"]
        .as_f64()
        .ok_or("TRL printed no median_step_seconds")?;
    let trl_peak = trl["peak_rss_mib"].as_f64().ok_or("TRL printed no peak_rss_mib")?;
    println!("TRL: step times {} s", trl["step_seconds"]);
    println!("TRL: median step {trl_median:.2} s, peak RSS {trl_peak:.0} MiB");
    println!(
        "wow / TRL: step time {:.2}x, peak memory {:.2}x",
        wow_median / trl_median,
        wow_peak / trl_peak
    );
    Ok(())
}

/// Trains `steps` optimizer steps of `PAIRS_PER_STEP` pairs and returns the
/// time of each, read from the trainer's step log timestamps.
fn time_wow_steps(model_path: &Path, data: &Path, steps: usize) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let records = preference_records(data)?;
    let tokenizer = LocalModel::load(model_path)?;
    let pairs = tokenize_preferences(&tokenizer, &records, LengthLimits::default())?;
    drop(tokenizer);
    let lengths: Vec<usize> = pairs.iter().map(|p| p.prompt.len() + p.chosen.len()).collect();
    println!("pairs: {} (prompt + chosen tokens: {lengths:?})", pairs.len());

    let model = LoraLlama::from_gguf(model_path, LoraConfig::default(), &Device::Cpu)?;
    // Two passes of one pair each: a single pass over both pairs keeps the
    // activations of four ~750-token sequences and does not fit in 24 GB.
    let config = TrainConfig {
        epochs: 1,
        batch_size: 1,
        gradient_accumulation_steps: PAIRS_PER_STEP,
        ..TrainConfig::default()
    };
    let pairs = &pairs[..(steps * PAIRS_PER_STEP).min(pairs.len())];
    let started = Instant::now();
    let reference = reference_logprobs(&model, pairs, 1)?;
    println!(
        "wow: reference log-probs of {} pairs in {:.1} s (not part of a step)",
        pairs.len(),
        started.elapsed().as_secs_f64()
    );

    let mut trainer = Trainer::new(&model, config)?;
    let mut seconds = Vec::new();
    for (i, step_pairs) in pairs.chunks(PAIRS_PER_STEP).enumerate() {
        let first = i * PAIRS_PER_STEP;
        let step_reference = reference.slice(first..first + step_pairs.len());
        let started = Instant::now();
        trainer.train_step(&model, step_pairs, Some(&step_reference))?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    Ok(seconds)
}

fn preference_records(data: &Path) -> Result<Vec<PreferenceRecord>, Box<dyn std::error::Error>> {
    let problems: serde_json::Map<String, Value> = serde_json::from_str(&std::fs::read_to_string(data)?)?;
    let mut ids: Vec<&String> = problems.keys().collect();
    ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
    let records = ids
        .into_iter()
        .take(16)
        .map(|id| {
            let question = problems[id]["question"].as_str().unwrap_or_default();
            PreferenceRecord {
                prompt: vec![Message::new("user", question)],
                chosen: vec![Message::new("assistant", CHOSEN.repeat(6))],
                rejected: vec![Message::new("assistant", REJECTED.repeat(6))],
                question_id: id.clone(),
                chosen_sample: 0,
                rejected_sample: 1,
                chosen_correctness: 1.0,
                rejected_correctness: 0.0,
                gap: 1.0,
            }
        })
        .collect();
    Ok(records)
}

fn time_trl_steps(python: &str, model: &Path, data: &Path, steps: usize) -> Result<Value, Box<dyn std::error::Error>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/trl_dpo_step.py");
    let output = Command::new(python)
        .arg(&script)
        .arg(model)
        .arg(data)
        .arg(steps.to_string())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "the TRL benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        )
        .into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    let last = stdout.lines().last().ok_or("the TRL benchmark printed nothing")?;
    Ok(serde_json::from_str(last)?)
}

/// Returns the peak resident set size of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> Result<f64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .ok_or("/proc/self/status has no VmHWM line")?;
    let kib: f64 = line.split_whitespace().nth(1).ok_or("empty VmHWM line")?.parse()?;
    Ok(kib / 1024.0)
}

fn median_after_first(seconds: &[f64]) -> f64 {
    let mut later: Vec<f64> = seconds.iter().skip(1).copied().collect();
    if later.is_empty() {
        later = seconds.to_vec();
    }
    later.sort_by(f64::total_cmp);
    later[later.len() / 2]
}

fn rounded(seconds: &[f64]) -> Vec<f64> {
    seconds.iter().map(|s| (s * 100.0).round() / 100.0).collect()
}
