//! The grid search's trial runner: resume after an interruption, trial
//! records, failures and the choice of the best trial.
//!
//! These tests drive the runner through a stand-in [`TrialTrainer`]. It
//! writes a trainer state whose validation loss depends on the trial's
//! values, so failures and the choice of the best trial can be set up
//! exactly. `tests/align_cli.rs` runs a grid of real `wow align` trials.

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use wow::grid::{
    self, BEST_FILE, GRID_MARKDOWN, GridError, SearchSpace, TRIALS_FILE, Trial, TrialOutcome, TrialRecord, TrialTrainer,
};

/// Writes a trainer state whose best validation loss is lowest at learning
/// rate 1e-4 and beta 0.1, and records which trials it trained.
struct StandInTrainer<'a> {
    trained: RefCell<Vec<String>>,
    /// Raised after this many trials, as Ctrl-C would.
    stop_after: Option<(usize, &'a AtomicBool)>,
    /// Trials that fail without writing a state.
    failing: Vec<String>,
}

impl<'a> StandInTrainer<'a> {
    fn new() -> Self {
        Self {
            trained: RefCell::new(Vec::new()),
            stop_after: None,
            failing: Vec::new(),
        }
    }
}

fn validation_losses(trial: &Trial) -> Vec<f64> {
    let base = (trial.learning_rate.log10() + 4.0).abs() + (trial.beta - 0.1).abs() + 0.5;
    (1..=trial.epochs).map(|epoch| base + 0.1 / epoch as f64).collect()
}

impl TrialTrainer for StandInTrainer<'_> {
    fn train(&self, trial: &Trial, dir: &Path) -> Result<(), GridError> {
        self.trained.borrow_mut().push(trial.id.clone());
        if let Some((count, stop)) = self.stop_after
            && self.trained.borrow().len() >= count
        {
            stop.store(true, Ordering::SeqCst);
        }
        if self.failing.contains(&trial.id) {
            return Err(GridError::TrialFailed {
                trial: trial.id.clone(),
                message: "out of memory".into(),
            });
        }

        let losses = validation_losses(trial);
        let (best_epoch, best) = losses
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(epoch, loss)| (epoch as u32 + 1, *loss))
            .unwrap();
        let state = serde_json::json!({
            "best_validation_loss": best,
            "best_epoch": best_epoch,
            "validation_loss": losses,
            "global_step": 12,
        });
        std::fs::write(dir.join("trainer_state.json"), state.to_string()).unwrap();
        std::fs::write(dir.join("adapter_model.safetensors"), b"stand-in").unwrap();
        Ok(())
    }
}

fn space() -> SearchSpace {
    SearchSpace {
        learning_rates: vec![1e-5, 1e-4, 1e-3],
        schedulers: vec!["cosine".into()],
        epochs: vec![1, 2],
        betas: vec![0.1, 0.5],
        warmup_ratios: vec![0.1],
    }
}

fn trial_lines(out: &Path) -> Vec<TrialRecord> {
    std::fs::read_to_string(out.join(TRIALS_FILE))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn ignore(_: &TrialRecord) {}

#[test]
fn interrupted_grid_trains_only_missing_trials() {
    let out = tempfile::tempdir().unwrap();
    let trials = space().trials().unwrap();
    assert_eq!(trials.len(), 12);

    let stop = AtomicBool::new(false);
    let first = StandInTrainer {
        stop_after: Some((5, &stop)),
        ..StandInTrainer::new()
    };
    let error = grid::run_grid(&trials, out.path(), &first, &stop, &ignore).unwrap_err();
    assert!(matches!(error, GridError::Interrupted), "{error}");
    assert_eq!(first.trained.borrow().len(), 5);
    assert_eq!(trial_lines(out.path()).len(), 5);
    assert!(!out.path().join(GRID_MARKDOWN).exists());

    let second = StandInTrainer::new();
    let summary = grid::run_grid(&trials, out.path(), &second, &AtomicBool::new(false), &ignore).unwrap();
    let first_ids = first.trained.borrow().clone();
    let second_ids = second.trained.borrow().clone();
    assert_eq!(second_ids.len(), 7, "only the missing trials train again");
    assert!(second_ids.iter().all(|id| !first_ids.contains(id)));
    assert_eq!(summary.trained, 7);
    assert_eq!(summary.records.len(), 12);

    let lines = trial_lines(out.path());
    assert_eq!(lines.len(), 12, "each trial is recorded once");
    let mut ids: Vec<&str> = lines.iter().map(|r| r.trial.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12);

    let third = StandInTrainer::new();
    let again = grid::run_grid(&trials, out.path(), &third, &AtomicBool::new(false), &ignore).unwrap();
    assert!(third.trained.borrow().is_empty(), "a finished grid trains nothing");
    assert_eq!(again.best, summary.best);
}

#[test]
fn best_trial_has_lowest_validation_loss() {
    let out = tempfile::tempdir().unwrap();
    let trials = space().trials().unwrap();
    let summary = grid::run_grid(
        &trials,
        out.path(),
        &StandInTrainer::new(),
        &AtomicBool::new(false),
        &ignore,
    )
    .unwrap();

    let best = &summary.records[summary.best];
    assert_eq!(best.trial.learning_rate, 1e-4);
    assert_eq!(best.trial.beta, 0.1);
    assert_eq!(best.trial.epochs, 2, "two epochs reach a lower loss");
    let TrialOutcome::Finished(state) = &best.outcome else {
        panic!("best trial failed")
    };
    assert_eq!(state.best_epoch, 2);
    assert!((state.best_validation_loss - 0.55).abs() < 1e-9);

    let recorded: TrialRecord =
        serde_json::from_str(&std::fs::read_to_string(out.path().join(BEST_FILE)).unwrap()).unwrap();
    assert_eq!(&recorded, best);
    assert!(recorded.dir.join("adapter_model.safetensors").is_file());
    let markdown = std::fs::read_to_string(out.path().join(GRID_MARKDOWN)).unwrap();
    assert!(
        markdown.contains(&format!("**{}** (best)", best.trial.id)),
        "{markdown}"
    );
    assert_eq!(markdown.matches("(best)").count(), 1);
    assert_eq!(markdown.lines().filter(|line| line.starts_with("| lr")).count(), 11);
}

#[test]
fn failed_trial_is_recorded_and_retried() {
    let out = tempfile::tempdir().unwrap();
    let trials = space().trials().unwrap();
    let failing = trials[3].id.clone();
    let first = StandInTrainer {
        failing: vec![failing.clone()],
        ..StandInTrainer::new()
    };
    let summary = grid::run_grid(&trials, out.path(), &first, &AtomicBool::new(false), &ignore).unwrap();
    let failed = &summary.records[3];
    assert!(
        matches!(&failed.outcome, TrialOutcome::Failed { error } if error.contains("out of memory")),
        "{failed:?}"
    );
    let markdown = std::fs::read_to_string(out.path().join(GRID_MARKDOWN)).unwrap();
    assert!(markdown.contains("out of memory"));

    let second = StandInTrainer::new();
    grid::run_grid(&trials, out.path(), &second, &AtomicBool::new(false), &ignore).unwrap();
    assert_eq!(*second.trained.borrow(), vec![failing]);
}

#[test]
fn missing_trainer_state_fails_trial_clearly() {
    struct NoState;
    impl TrialTrainer for NoState {
        fn train(&self, _: &Trial, _: &Path) -> Result<(), GridError> {
            Ok(())
        }
    }

    let out = tempfile::tempdir().unwrap();
    let trials = &space().trials().unwrap()[..1];
    let error = grid::run_grid(trials, out.path(), &NoState, &AtomicBool::new(false), &ignore).unwrap_err();
    assert!(matches!(error, GridError::NoFinishedTrial(_)), "{error}");
    let record = &trial_lines(out.path())[0];
    let TrialOutcome::Failed { error } = &record.outcome else {
        panic!("trial without a trainer state finished")
    };
    assert!(error.contains("trainer_state.json not found"), "{error}");
    assert!(error.contains(&trials[0].id), "{error}");
}

#[test]
fn training_finished_before_kill_is_recorded_without_retraining() {
    let out = tempfile::tempdir().unwrap();
    let trials = &space().trials().unwrap()[..2];
    grid::run_grid(
        trials,
        out.path(),
        &StandInTrainer::new(),
        &AtomicBool::new(false),
        &ignore,
    )
    .unwrap();

    // Simulate a kill after the second training but before its record.
    let text = std::fs::read_to_string(out.path().join(TRIALS_FILE)).unwrap();
    let first_line = text.lines().next().unwrap();
    std::fs::write(
        out.path().join(TRIALS_FILE),
        format!("{first_line}\n{{\"trial\": {{\"id\""),
    )
    .unwrap();

    let again = StandInTrainer::new();
    let summary = grid::run_grid(trials, out.path(), &again, &AtomicBool::new(false), &ignore).unwrap();
    assert!(again.trained.borrow().is_empty(), "{:?}", again.trained.borrow());
    assert!(matches!(summary.records[1].outcome, TrialOutcome::Finished(_)));
}

#[test]
fn invalid_search_space_is_rejected() {
    let cases = [
        SearchSpace {
            learning_rates: vec![],
            ..space()
        },
        SearchSpace {
            learning_rates: vec![-1e-4],
            ..space()
        },
        SearchSpace {
            epochs: vec![0],
            ..space()
        },
        SearchSpace {
            warmup_ratios: vec![1.0],
            ..space()
        },
        SearchSpace {
            schedulers: vec!["../x".into()],
            ..space()
        },
    ];
    for case in cases {
        assert!(matches!(case.trials(), Err(GridError::Invalid(_))), "{case:?}");
    }
}
