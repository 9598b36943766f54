//! Hyper-parameter search over `wow align`: every combination of learning
//! rate, scheduler, epochs, beta and warm-up trains into its own trial
//! folder, and the best adapter is the one with the lowest validation loss
//! in its `trainer_state.json`.
//!
//! Each finished or failed trial is appended to `trials.jsonl` as it ends,
//! so a restarted grid trains only the trials without a finished record.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// File the trainer writes into a trial folder.
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
pub const TRIALS_FILE: &str = "trials.jsonl";
pub const GRID_MARKDOWN: &str = "grid.md";
pub const BEST_FILE: &str = "best.json";
/// Folder of the trial folders inside the grid folder.
pub const TRIALS_DIR: &str = "trials";

/// Errors of a grid search.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("invalid grid: {0}")]
    Invalid(String),

    #[error("failed to access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error(
        "trial {trial}: {path} not found; the trainer must write it with best_validation_loss, best_epoch and validation_loss"
    )]
    MissingTrainerState { trial: String, path: PathBuf },

    #[error("trial {trial}: {path} is invalid: {message}")]
    InvalidTrainerState {
        trial: String,
        path: PathBuf,
        message: String,
    },

    #[error("trial {trial} failed: {message}")]
    TrialFailed { trial: String, message: String },

    #[error("interrupted; run the same command again to train the remaining trials")]
    Interrupted,

    #[error("every trial failed; see {0}")]
    NoFinishedTrial(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> GridError + '_ {
    move |source| GridError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The values searched, one list per hyper-parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    pub learning_rates: Vec<f64>,
    pub schedulers: Vec<String>,
    pub epochs: Vec<usize>,
    pub betas: Vec<f64>,
    pub warmup_ratios: Vec<f64>,
}

/// The hyper-parameters of one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Folder name under `trials/`, derived from the values so that it is
    /// the same in every run of the grid.
    pub id: String,
    pub learning_rate: f64,
    pub scheduler: String,
    pub epochs: usize,
    pub beta: f64,
    pub warmup_ratio: f64,
}

impl SearchSpace {
    /// Lists every combination, learning rate varying slowest.
    pub fn trials(&self) -> Result<Vec<Trial>, GridError> {
        self.validate()?;
        let mut trials = Vec::new();
        for &learning_rate in &self.learning_rates {
            for scheduler in &self.schedulers {
                for &epochs in &self.epochs {
                    for &beta in &self.betas {
                        for &warmup_ratio in &self.warmup_ratios {
                            trials.push(Trial {
                                id: format!(
                                    "lr{learning_rate:e}-{scheduler}-e{epochs}-beta{beta}-warmup{warmup_ratio}"
                                ),
                                learning_rate,
                                scheduler: scheduler.clone(),
                                epochs,
                                beta,
                                warmup_ratio,
                            });
                        }
                    }
                }
            }
        }
        Ok(trials)
    }

    fn validate(&self) -> Result<(), GridError> {
        let invalid = |message: &str| Err(GridError::Invalid(message.to_string()));
        if self.learning_rates.is_empty()
            || self.schedulers.is_empty()
            || self.epochs.is_empty()
            || self.betas.is_empty()
            || self.warmup_ratios.is_empty()
        {
            return invalid("every hyper-parameter needs at least one value");
        }
        if self.learning_rates.iter().any(|&lr| lr <= 0.0 || !lr.is_finite()) {
            return invalid("learning rates must be positive");
        }
        if self.epochs.contains(&0) {
            return invalid("epochs must be at least 1");
        }
        if self.betas.iter().any(|&beta| beta <= 0.0 || !beta.is_finite()) {
            return invalid("betas must be positive");
        }
        if self.warmup_ratios.iter().any(|ratio| !(0.0..1.0).contains(ratio)) {
            return invalid("warm-up ratios must be in [0, 1)");
        }
        if self.schedulers.iter().any(|s| s.is_empty() || s.contains(['/', '\\'])) {
            return invalid("scheduler names must be non-empty and contain no path separators");
        }
        Ok(())
    }
}

/// The part of `trainer_state.json` the grid reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub best_validation_loss: f64,
    pub best_epoch: u32,
    /// Validation loss after each epoch.
    pub validation_loss: Vec<f64>,
}

impl TrainerState {
    /// Reads `DIR/trainer_state.json`; other keys are ignored.
    pub fn read(trial: &str, dir: &Path) -> Result<Self, GridError> {
        let path = dir.join(TRAINER_STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(GridError::MissingTrainerState {
                    trial: trial.to_string(),
                    path,
                });
            }
            Err(source) => return Err(GridError::Io { path, source }),
        };
        let state: TrainerState = serde_json::from_str(&text).map_err(|error| GridError::InvalidTrainerState {
            trial: trial.to_string(),
            path: path.clone(),
            message: error.to_string(),
        })?;
        if !state.best_validation_loss.is_finite() {
            return Err(GridError::InvalidTrainerState {
                trial: trial.to_string(),
                path,
                message: format!("best_validation_loss is {}", state.best_validation_loss),
            });
        }
        Ok(state)
    }
}

/// Trains one trial into its folder; the grid then reads the folder's
/// `trainer_state.json`.
pub trait TrialTrainer {
    fn train(&self, trial: &Trial, dir: &Path) -> Result<(), GridError>;
}

/// One line of `trials.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub trial: Trial,
    pub dir: PathBuf,
    pub outcome: TrialOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TrialOutcome {
    Finished(TrainerState),
    Failed { error: String },
}

/// Outcome of a grid search.
#[derive(Debug, Clone, PartialEq)]
pub struct GridSummary {
    /// The latest record of every trial, in grid order.
    pub records: Vec<TrialRecord>,
    /// Index into `records` of the finished trial with the lowest
    /// validation loss.
    pub best: usize,
    /// Trials trained in this call; the rest were finished earlier.
    pub trained: usize,
}

/// Trains every trial without a finished record in `out/trials.jsonl`,
/// appending each outcome as it ends, then writes `grid.md` and `best.json`.
/// A failed trial is recorded and retried by the next call.
pub fn run_grid(
    trials: &[Trial],
    out: &Path,
    trainer: &dyn TrialTrainer,
    stop: &AtomicBool,
    on_trial: &dyn Fn(&TrialRecord),
) -> Result<GridSummary, GridError> {
    fs::create_dir_all(out.join(TRIALS_DIR)).map_err(io_error(out))?;
    let mut latest = read_records(&out.join(TRIALS_FILE))?;
    let mut trained = 0;

    for trial in trials {
        if matches!(latest.get(&trial.id), Some(record) if matches!(record.outcome, TrialOutcome::Finished(_))) {
            tracing::info!(trial = %trial.id, "already finished");
            continue;
        }
        if stop.load(Ordering::SeqCst) {
            return Err(GridError::Interrupted);
        }

        let dir = out.join(TRIALS_DIR).join(&trial.id);
        let outcome = match run_trial(trial, &dir, trainer) {
            Ok(state) => TrialOutcome::Finished(state),
            // A trainer stopped by the same interrupt has not failed; the
            // next run resumes it.
            Err(_) if stop.load(Ordering::SeqCst) => return Err(GridError::Interrupted),
            Err(error) => {
                tracing::error!(trial = %trial.id, "{error}");
                TrialOutcome::Failed {
                    error: error.to_string(),
                }
            }
        };
        trained += 1;
        let record = TrialRecord {
            trial: trial.clone(),
            dir,
            outcome,
        };
        append_record(&out.join(TRIALS_FILE), &record)?;
        on_trial(&record);
        latest.insert(trial.id.clone(), record);
    }

    let records: Vec<TrialRecord> = trials.iter().filter_map(|trial| latest.remove(&trial.id)).collect();
    let best = best_trial(&records).ok_or_else(|| GridError::NoFinishedTrial(out.join(TRIALS_FILE)))?;
    write_summary(out, &records, best)?;
    Ok(GridSummary { records, best, trained })
}

/// Trains a trial, unless a trainer state from a finished training that was
/// not recorded yet (the grid was killed in between) is already there.
fn run_trial(trial: &Trial, dir: &Path, trainer: &dyn TrialTrainer) -> Result<TrainerState, GridError> {
    if let Ok(state) = TrainerState::read(&trial.id, dir) {
        tracing::info!(trial = %trial.id, "recording a training that finished before the grid stopped");
        return Ok(state);
    }
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    trainer.train(trial, dir)?;
    TrainerState::read(&trial.id, dir)
}

fn read_records(path: &Path) -> Result<BTreeMap<String, TrialRecord>, GridError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(io_error(path)(source)),
    };
    let mut latest = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // A line cut short by a kill is dropped; its trial runs again.
        match serde_json::from_str::<TrialRecord>(line) {
            Ok(record) => {
                latest.insert(record.trial.id.clone(), record);
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), line = index + 1, "ignoring an unreadable trial record: {error}")
            }
        }
    }
    Ok(latest)
}

fn append_record(path: &Path, record: &TrialRecord) -> Result<(), GridError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))?;
    let line = serde_json::to_string(record).expect("trial record serializes") + "\n";
    file.write_all(line.as_bytes()).map_err(io_error(path))?;
    file.sync_data().map_err(io_error(path))
}

fn best_trial(records: &[TrialRecord]) -> Option<usize> {
    records
        .iter()
        .enumerate()
        .filter_map(|(index, record)| match &record.outcome {
            TrialOutcome::Finished(state) => Some((index, state.best_validation_loss)),
            TrialOutcome::Failed { .. } => None,
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(index, _)| index)
}

fn write_summary(out: &Path, records: &[TrialRecord], best: usize) -> Result<(), GridError> {
    let markdown = render_markdown(records, best);
    let path = out.join(GRID_MARKDOWN);
    fs::write(&path, markdown).map_err(io_error(&path))?;

    let best = &records[best];
    let json = serde_json::to_string_pretty(best).expect("trial record serializes");
    let path = out.join(BEST_FILE);
    fs::write(&path, json).map_err(io_error(&path))
}

/// Renders one row per trial with its validation losses; the best trial's
/// row is in bold.
pub fn render_markdown(records: &[TrialRecord], best: usize) -> String {
    let mut out = String::from(
        "# Grid search\n\n| trial | learning rate | scheduler | epochs | beta | warm-up | best validation loss | best epoch | validation loss per epoch |\n|---|---:|---|---:|---:|---:|---:|---:|---|\n",
    );
    for (index, record) in records.iter().enumerate() {
        let trial = &record.trial;
        let (loss, epoch, curve) = match &record.outcome {
            TrialOutcome::Finished(state) => (
                format!("{:.4}", state.best_validation_loss),
                state.best_epoch.to_string(),
                state
                    .validation_loss
                    .iter()
                    .map(|loss| format!("{loss:.4}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            TrialOutcome::Failed { error } => ("failed".into(), String::new(), error.replace('|', "\\|")),
        };
        let name = if index == best {
            format!("**{}** (best)", trial.id)
        } else {
            trial.id.clone()
        };
        writeln!(
            out,
            "| {name} | {:e} | {} | {} | {} | {} | {loss} | {epoch} | {curve} |",
            trial.learning_rate, trial.scheduler, trial.epochs, trial.beta, trial.warmup_ratio
        )
        .expect("writing to a String succeeds");
    }
    let best = &records[best];
    write!(out, "\nBest adapter: {}\n", best.dir.display()).expect("writing to a String succeeds");
    out
}
