//! `wow align`: LoRA training on preference files, resumable from the output
//! folder.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::args::{AlignArgs, RunAlignFlags};
use super::progress;
use crate::align::{
    self, CheckpointDir, LengthLimits, LoraConfig, LoraLlama, LossConfig, TokenizedPair, TrainConfig, Trainer,
    TrainerState,
};
use crate::model::{self, LocalModel};
use crate::run::{self, PreferenceRecord, RunConfig, RunDir};

/// Pairs drawn from a single preference file, and from each file of a mix,
/// when `--max-pairs` is not given.
const MAX_PAIRS_SINGLE: usize = 4000;
const MAX_PAIRS_PER_MIXED_FILE: usize = 2000;

/// Trains an adapter on `args.preferences` into `args.out` and returns the
/// final trainer state; an unfinished state means `stop` was set.
pub fn align_command(args: &AlignArgs, stop: &AtomicBool) -> anyhow::Result<TrainerState> {
    let model_path = match &args.model {
        Some(path) => path.clone(),
        None => model::default_model_path()?,
    };
    let records = sample_preferences(args)?;
    let pairs = tokenize(&model_path, &records, args)?;
    let (train, validation) = align::split_validation(pairs, args.validation_ratio);

    let device = model::default_device()?;
    let lora = LoraConfig {
        rank: args.lora_rank,
        alpha: args.lora_alpha,
        dropout: args.lora_dropout,
        target_modules: args.target_modules.clone(),
        seed: args.seed,
    };
    let mut policy = LoraLlama::from_gguf(&model_path, lora, &device)?;
    let checkpoints = CheckpointDir::new(&args.out, Some(model_path.display().to_string()));
    let mut trainer = Trainer::resume(
        &mut policy,
        train_config(args),
        &checkpoints,
        train.len(),
        validation.len(),
    )?;
    if trainer.state().finished {
        println!("training in {} is already finished", args.out.display());
        return Ok(trainer.state().clone());
    }
    tracing::info!(
        pairs = train.len(),
        validation_pairs = validation.len(),
        loss = args.loss.name(),
        "training a LoRA adapter"
    );

    let bar = progress::bar("training", 0);
    let state = trainer.fit(&policy, &train, &validation, Some(&checkpoints), &bar, stop)?;
    bar.finish_and_clear();
    print_summary(&state, &args.out);
    Ok(state)
}

/// Reads every preference file and keeps a seeded sample of each.
fn sample_preferences(args: &AlignArgs) -> anyhow::Result<Vec<PreferenceRecord>> {
    let default_cap = if args.preferences.len() > 1 {
        MAX_PAIRS_PER_MIXED_FILE
    } else {
        MAX_PAIRS_SINGLE
    };
    let cap = args.max_pairs.unwrap_or(default_cap);
    let mut records = Vec::new();
    for path in &args.preferences {
        let mut file_records = align::read_preferences(path)?;
        if file_records.is_empty() {
            bail!(
                "{} has no preference pairs; elicit with a wider margin or more questions",
                path.display()
            );
        }
        file_records.shuffle(&mut StdRng::seed_from_u64(args.seed));
        if cap > 0 {
            file_records.truncate(cap);
        }
        tracing::info!(file = %path.display(), pairs = file_records.len(), "preference pairs read");
        records.extend(file_records);
    }
    records.shuffle(&mut StdRng::seed_from_u64(args.seed));
    Ok(records)
}

fn tokenize(model_path: &Path, records: &[PreferenceRecord], args: &AlignArgs) -> anyhow::Result<Vec<TokenizedPair>> {
    let tokenizer_model =
        LocalModel::load(model_path).with_context(|| format!("failed to load {}", model_path.display()))?;
    let limits = LengthLimits {
        max_prompt_length: args.max_prompt_length,
        max_completion_length: args.max_completion_length,
    };
    Ok(align::tokenize_preferences(&tokenizer_model, records, limits)?)
}

fn train_config(args: &AlignArgs) -> TrainConfig {
    TrainConfig {
        loss: args.loss,
        loss_config: LossConfig {
            beta: args.beta,
            ..LossConfig::default()
        },
        learning_rate: args.learning_rate,
        scheduler: args.scheduler,
        weight_decay: args.weight_decay,
        epochs: args.epochs,
        warmup_ratio: args.warmup_ratio,
        batch_size: args.batch_size,
        gradient_accumulation_steps: args.gradient_accumulation_steps,
        max_grad_norm: (args.max_grad_norm > 0.0).then_some(args.max_grad_norm),
        eval_steps: args.eval_steps,
        save_steps: args.save_steps,
        seed: args.seed,
    }
}

fn print_summary(state: &TrainerState, out: &Path) {
    if !state.finished {
        println!(
            "training stopped after step {} of {}; rerun the same command to resume from {}",
            state.global_step,
            state.total_steps,
            out.display()
        );
        return;
    }
    let Some(last) = state.log_history.last() else {
        return;
    };
    println!(
        "trained {} steps: loss {:.4}, reward margin {:.4}, accuracy {:.2}",
        last.step, last.loss, last.reward_margin, last.accuracy
    );
    for (epoch, loss) in state.validation_loss.iter().enumerate() {
        println!("epoch {}: validation loss {loss:.4}", epoch + 1);
    }
    match (state.best_validation_loss, state.best_epoch) {
        (Some(loss), Some(epoch)) => println!(
            "best adapter (validation loss {loss:.4}, epoch {epoch}) in {}",
            out.display()
        ),
        _ => println!("adapter (no validation pairs) in {}", out.display()),
    }
}

/// Trains on the run's preference sets named in `flags`, samples the
/// held-out questions that follow the training questions with the original
/// and the aligned model (same seeds and sample count), and the questions of
/// each `--transfer` task likewise, and writes `alignment.md` / `.json` into
/// the run directory. Each stage resumes from
/// what an earlier, stopped invocation left.
pub fn align_and_evaluate(
    run: &RunDir,
    config: &RunConfig,
    flags: &RunAlignFlags,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    if config.questions == 0 {
        bail!("--align needs held-out questions after the training questions; pass --questions N with N > 0");
    }
    let label = flags.sources.join("+");
    let adapter_dir = run.root().join("adapters").join(&label);
    let state = align_command(&align_args(run, flags, &adapter_dir)?, stop)?;
    if !state.finished {
        return Ok(());
    }
    release_freed_memory();

    let mut held_out = config.clone();
    held_out.skip = config.skip + config.questions;
    held_out.questions = flags.eval_questions.unwrap_or(config.questions);
    held_out.adapter = None;
    let original_dir = run.root().join("held-out").join("original");
    super::sample_into(&original_dir, &held_out, stop)?;
    held_out.adapter = Some(adapter_dir);
    let aligned_dir = run.root().join("held-out").join(&label);
    super::sample_into(&aligned_dir, &held_out, stop)?;
    if stop.load(Ordering::SeqCst) {
        return Ok(());
    }

    let mut runs = vec![(run::ORIGINAL.to_string(), original_dir), (label.clone(), aligned_dir)];
    for (task, data) in &flags.transfer {
        let mut transfer = held_out.clone();
        transfer.task = task.clone();
        transfer.data = data.clone();
        transfer.skip = 0;
        transfer.adapter = None;
        transfer.task_settings.clear();
        transfer.task_files.clear();
        let original_dir = run.root().join("transfer").join(task).join("original");
        super::sample_into(&original_dir, &transfer, stop)?;
        transfer.adapter = Some(run.root().join("adapters").join(&label));
        let aligned_dir = run.root().join("transfer").join(task).join(&label);
        super::sample_into(&aligned_dir, &transfer, stop)?;
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        runs.push((run::ORIGINAL.to_string(), original_dir));
        runs.push((label.clone(), aligned_dir));
    }
    super::write_alignment(run.root(), &runs)
}

/// Builds the `wow align` arguments for `flags`, leaving every other option
/// at its command-line default.
fn align_args(run: &RunDir, flags: &RunAlignFlags, out: &Path) -> anyhow::Result<AlignArgs> {
    let mut argv: Vec<String> = vec!["align".into(), "--out".into(), out.display().to_string()];
    for source in &flags.sources {
        let path = run.root().join("preferences").join(format!("{source}.jsonl"));
        if !path.exists() {
            bail!(
                "preference set {source} is not in {}; pass --align-source with a file name from that folder",
                path.parent().unwrap_or(run.root()).display()
            );
        }
        argv.extend(["--preferences".into(), path.display().to_string()]);
    }
    argv.extend([
        "--loss".into(),
        clap::ValueEnum::to_possible_value(&flags.loss)
            .expect("every loss has a flag value")
            .get_name()
            .to_string(),
        "--epochs".into(),
        flags.epochs.to_string(),
        "--learning-rate".into(),
        flags.learning_rate.to_string(),
        "--beta".into(),
        flags.beta.to_string(),
        "--gradient-accumulation-steps".into(),
        flags.gradient_accumulation_steps.to_string(),
        "--max-prompt-length".into(),
        flags.max_prompt_length.to_string(),
        "--max-completion-length".into(),
        flags.max_completion_length.to_string(),
    ]);
    if let Some(max_pairs) = flags.max_pairs {
        argv.extend(["--max-pairs".into(), max_pairs.to_string()]);
    }
    let model = run.read_config()?.and_then(|config| config.model);
    if let Some(model) = model {
        argv.extend(["--model".into(), model.display().to_string()]);
    }

    #[derive(clap::Parser)]
    struct AlignOnly {
        #[command(flatten)]
        args: AlignArgs,
    }
    let parsed = <AlignOnly as clap::Parser>::try_parse_from(argv).context("invalid training options")?;
    Ok(parsed.args)
}

/// Returns the heap pages freed after training to the operating system.
/// glibc keeps them mapped otherwise, so the held-out sampling that follows
/// in the same process would run with the training peak still resident.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages back to the kernel; it does
    // not touch live allocations.
    unsafe {
        libc::malloc_trim(0);
    }
}
