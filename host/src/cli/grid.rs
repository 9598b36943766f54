//! `wow grid`: hyper-parameter search over `wow align`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use clap::Args as ClapArgs;

use super::experiment::run_wow;
use super::progress;
use crate::align::{PreferenceLoss, Scheduler};
use crate::grid::{self, GridError, SearchSpace, Trial, TrialOutcome, TrialTrainer};

/// Learning-rate schedule of `wow align` by default.
const DEFAULT_SCHEDULER: &str = "cosine";

/// Arguments of `wow grid`.
#[derive(Debug, Clone, ClapArgs)]
pub struct GridArgs {
    /// Preference file to train on.
    #[arg(long)]
    pub preferences: PathBuf,

    /// Grid folder: trials/, trials.jsonl, grid.md and best.json. Rerun
    /// with the same folder to finish an interrupted grid.
    #[arg(long, short)]
    pub out: PathBuf,

    /// Peak learning rates, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "5e-5")]
    pub learning_rate: Vec<f64>,

    /// Learning-rate schedules, comma-separated: `cosine`, `linear` or
    /// `constant`, each after the warm-up.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_SCHEDULER)]
    pub scheduler: Vec<String>,

    /// Epoch counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "3")]
    pub epochs: Vec<usize>,

    /// Loss temperatures beta, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1")]
    pub beta: Vec<f64>,

    /// Warm-up ratios, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1")]
    pub warmup_ratio: Vec<f64>,

    /// Options passed unchanged to every `wow align`, after `--`, such as
    /// `-- --model FILE --max-pairs 200 --loss ipo`.
    #[arg(last = true)]
    pub align_args: Vec<String>,
}

/// Trains a trial by running `wow align` into the trial folder.
struct AlignProcess {
    preferences: PathBuf,
    extra: Vec<String>,
}

impl TrialTrainer for AlignProcess {
    fn train(&self, trial: &Trial, dir: &Path) -> Result<(), GridError> {
        let mut args: Vec<String> = vec![
            "align".into(),
            "--preferences".into(),
            self.preferences.display().to_string(),
            "--out".into(),
            dir.display().to_string(),
            "--learning-rate".into(),
            trial.learning_rate.to_string(),
            "--epochs".into(),
            trial.epochs.to_string(),
            "--beta".into(),
            trial.beta.to_string(),
            "--warmup-ratio".into(),
            trial.warmup_ratio.to_string(),
        ];
        args.extend(["--scheduler".into(), trial.scheduler.clone()]);
        args.extend(self.extra.iter().cloned());
        run_wow(&args).map_err(|error| GridError::TrialFailed {
            trial: trial.id.clone(),
            message: format!("{error:#}"),
        })
    }
}

/// Runs the missing trials and prints the best one.
pub fn grid_command(args: &GridArgs, stop: &AtomicBool) -> anyhow::Result<()> {
    if let Some(loss) = args.align_args.iter().position(|arg| arg == "--loss") {
        let name = args.align_args.get(loss + 1).map_or("", String::as_str);
        <PreferenceLoss as clap::ValueEnum>::from_str(name, true)
            .map_err(|_| anyhow::anyhow!("unknown loss {name:?} after --"))?;
    }
    for name in &args.scheduler {
        <Scheduler as clap::ValueEnum>::from_str(name, true)
            .map_err(|_| anyhow::anyhow!("unknown scheduler {name:?}; use cosine, linear or constant"))?;
    }
    let space = SearchSpace {
        learning_rates: args.learning_rate.clone(),
        schedulers: args.scheduler.clone(),
        epochs: args.epochs.clone(),
        betas: args.beta.clone(),
        warmup_ratios: args.warmup_ratio.clone(),
    };
    let trials = space.trials()?;
    let trainer = AlignProcess {
        preferences: args.preferences.clone(),
        extra: args.align_args.clone(),
    };

    let bar = progress::bar("trials", trials.len());
    let on_trial = |record: &grid::TrialRecord| {
        bar.inc(1);
        bar.set_message(record.trial.id.clone());
    };
    let summary = grid::run_grid(&trials, &args.out, &trainer, stop, &on_trial)?;
    bar.finish_and_clear();

    let failed = summary
        .records
        .iter()
        .filter(|r| matches!(r.outcome, TrialOutcome::Failed { .. }))
        .count();
    let best = &summary.records[summary.best];
    println!("{}", grid::render_markdown(&summary.records, summary.best));
    println!(
        "trained {} of {} trials in this call, {failed} failed; best {} in {}",
        summary.trained,
        summary.records.len(),
        best.trial.id,
        best.dir.display()
    );
    Ok(())
}
