//! Experiments: grids of runs described in a TOML file, and their cells.
//!
//! Each cell is one `wow` command writing into its own folder under the
//! experiment's output folder. A cell is finished when its marker file
//! exists, so an interrupted experiment continues with the missing cells.

mod spec;

use std::path::{Path, PathBuf};

pub use spec::{
    Experiment, GENERATOR_EVALUATOR, GeneratorSpec, REFERENCE_SOURCES, SamplingSpec, TaskSpec, TrainingSpec,
};

/// Marker written into a held-out sampling folder once sampling finished.
pub const SAMPLED_MARKER: &str = "sampled.done";

/// Errors of reading or running an experiment.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("failed to read experiment file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("invalid experiment file {path}: {message}")]
    Invalid { path: PathBuf, message: String },

    #[error(
        "experiment {path} names unknown plugins: {unknown}; available: {available}. Add the bundles with `plugins = [DIR]` or remove those names"
    )]
    UnknownPlugins {
        path: PathBuf,
        unknown: String,
        available: String,
    },

    #[error("dataset {data} of task {task} not found")]
    MissingData { task: String, data: PathBuf },
}

/// Kind of work a cell does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `wow run`: sample the training questions and elicit.
    Elicit,
    /// `wow align` on one preference source with one loss.
    Train,
    /// `wow sample` of the held-out questions, with or without an adapter.
    Heldout,
    /// `wow evaluate` of the held-out runs of one task and generator.
    Evaluate,
}

/// One unit of work: a `wow` command line and the file that marks it done.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Folder of the cell relative to the experiment folder, used as its name.
    pub id: String,
    pub stage: Stage,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub marker: PathBuf,
    /// Preference file a training cell reads; it is skipped when empty.
    pub preferences: Option<PathBuf>,
}

impl Cell {
    pub fn is_finished(&self) -> bool {
        self.marker.is_file()
    }
}

/// The cells of one task x generator, in the order they must run.
#[derive(Debug, Clone)]
pub struct CellGroup {
    pub elicit: Cell,
    pub train: Vec<Cell>,
    pub heldout_original: Option<Cell>,
    /// Held-out sampling with each adapter, paired with its training cell's id.
    pub heldout_aligned: Vec<(String, Cell)>,
    /// Evaluation folder; the command is built once the trained adapters are
    /// known, by [`evaluate_cell`].
    pub evaluation_dir: Option<PathBuf>,
}

/// Lists the cells of every task x generator under `out`.
pub fn plan(experiment: &Experiment, out: &Path) -> Vec<CellGroup> {
    let mut groups = Vec::new();
    for task in &experiment.tasks {
        for generator in &experiment.generators {
            groups.push(plan_group(experiment, task, generator, out));
        }
    }
    groups
}

fn plan_group(experiment: &Experiment, task: &TaskSpec, generator: &GeneratorSpec, out: &Path) -> CellGroup {
    let key = format!("{}/{}", task.label(), generator.label);
    let run_id = format!("runs/{key}");
    let run_dir = out.join(&run_id);
    let elicit = Cell {
        id: run_id.clone(),
        stage: Stage::Elicit,
        args: sampling_args(
            "run",
            experiment,
            task,
            generator,
            &run_dir,
            0,
            experiment.sampling.questions,
        ),
        marker: run_dir.join(crate::run::ACCURACY_JSON),
        dir: run_dir.clone(),
        preferences: None,
    };

    let mut train = Vec::new();
    let mut heldout_aligned = Vec::new();
    let heldout = experiment.sampling.heldout_questions;
    for source in &experiment.preference_sources {
        for loss in &experiment.losses {
            let name = format!("{source}-{}", loss.name());
            let id = format!("adapters/{key}/{name}");
            let dir = out.join(&id);
            let preferences = run_dir.join(format!("{}/{source}.jsonl", crate::run::PREFERENCES_DIR));
            train.push(Cell {
                id: id.clone(),
                stage: Stage::Train,
                args: align_args(experiment, generator, &preferences, *loss, &dir),
                marker: dir.join(crate::align::ADAPTER_WEIGHTS_FILE),
                dir: dir.clone(),
                preferences: Some(preferences),
            });
            if heldout > 0 {
                let heldout_id = format!("heldout/{key}/{name}");
                let heldout_dir = out.join(&heldout_id);
                let mut args = sampling_args(
                    "sample",
                    experiment,
                    task,
                    generator,
                    &heldout_dir,
                    experiment.sampling.questions,
                    heldout,
                );
                args.extend(["--adapter".to_string(), path_arg(&dir)]);
                heldout_aligned.push((
                    id,
                    Cell {
                        id: heldout_id,
                        stage: Stage::Heldout,
                        args,
                        marker: heldout_dir.join(SAMPLED_MARKER),
                        dir: heldout_dir,
                        preferences: None,
                    },
                ));
            }
        }
    }

    let heldout_original = (heldout > 0).then(|| {
        let id = format!("heldout/{key}/original");
        let dir = out.join(&id);
        Cell {
            id,
            stage: Stage::Heldout,
            args: sampling_args(
                "sample",
                experiment,
                task,
                generator,
                &dir,
                experiment.sampling.questions,
                heldout,
            ),
            marker: dir.join(SAMPLED_MARKER),
            dir,
            preferences: None,
        }
    });

    CellGroup {
        elicit,
        train,
        heldout_original,
        heldout_aligned,
        evaluation_dir: (heldout > 0).then(|| out.join(format!("evaluations/{key}"))),
    }
}

/// Builds the `wow evaluate` cell comparing the original held-out run with
/// the held-out runs of the adapters that were trained.
pub fn evaluate_cell(evaluation_dir: &Path, out: &Path, original: &Cell, aligned: &[&Cell]) -> Cell {
    let mut args = vec![
        "evaluate".to_string(),
        "--original".into(),
        path_arg(&original.dir),
        "--out".into(),
        path_arg(evaluation_dir),
    ];
    for cell in aligned {
        let name = cell.dir.file_name().unwrap_or_default().to_string_lossy();
        args.extend(["--aligned".to_string(), format!("{name}={}", cell.dir.display())]);
    }
    let id = evaluation_dir
        .strip_prefix(out)
        .unwrap_or(evaluation_dir)
        .display()
        .to_string();
    Cell {
        id,
        stage: Stage::Evaluate,
        args,
        marker: evaluation_dir.join(crate::run::ALIGNMENT_JSON),
        dir: evaluation_dir.to_path_buf(),
        preferences: None,
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

fn sampling_args(
    command: &str,
    experiment: &Experiment,
    task: &TaskSpec,
    generator: &GeneratorSpec,
    out: &Path,
    skip: usize,
    questions: usize,
) -> Vec<String> {
    let sampling = &experiment.sampling;
    let mut args: Vec<String> = vec![
        command.into(),
        "--out".into(),
        path_arg(out),
        "--task".into(),
        task.plugin.clone(),
        "--data".into(),
        path_arg(&task.data),
        "--skip".into(),
        skip.to_string(),
        "--questions".into(),
        questions.to_string(),
        "--samples".into(),
        sampling.samples.to_string(),
        "--temperature".into(),
        sampling.temperature.to_string(),
        "--top-p".into(),
        sampling.top_p.to_string(),
        "--max-tokens".into(),
        sampling.max_tokens.to_string(),
        "--seed".into(),
        sampling.seed.to_string(),
        "--elicitors".into(),
        experiment.elicitors[0].clone(),
        "--margins".into(),
        experiment
            .margins
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        "--plugin-fuel".into(),
        experiment.limits.fuel.to_string(),
        "--plugin-timeout".into(),
        experiment.limits.timeout_secs.to_string(),
        "--plugin-memory".into(),
        (experiment.limits.memory_bytes / (1024 * 1024)).to_string(),
    ];
    // Specs with several settings contain commas, so each further elicitor
    // gets its own flag.
    for spec in &experiment.elicitors[1..] {
        args.extend(["--elicitor".into(), spec.clone()]);
    }
    if let Some(model) = &generator.model {
        args.extend(["--model".into(), path_arg(model)]);
    }
    for dir in &experiment.plugins {
        args.extend(["--plugins".into(), path_arg(dir)]);
    }
    args
}

fn align_args(
    experiment: &Experiment,
    generator: &GeneratorSpec,
    preferences: &Path,
    loss: crate::align::PreferenceLoss,
    out: &Path,
) -> Vec<String> {
    let training = &experiment.training;
    let mut args: Vec<String> = vec![
        "align".into(),
        "--preferences".into(),
        path_arg(preferences),
        "--out".into(),
        path_arg(out),
        "--loss".into(),
        loss.name().into(),
        "--beta".into(),
        training.beta.to_string(),
        "--learning-rate".into(),
        training.learning_rate.to_string(),
        "--epochs".into(),
        training.epochs.to_string(),
        "--warmup-ratio".into(),
        training.warmup_ratio.to_string(),
        "--batch-size".into(),
        training.batch_size.to_string(),
        "--gradient-accumulation-steps".into(),
        training.gradient_accumulation_steps.to_string(),
        "--max-pairs".into(),
        training.max_pairs.to_string(),
        "--max-length".into(),
        training.max_length.to_string(),
        "--seed".into(),
        training.seed.to_string(),
    ];
    if let Some(model) = &generator.model {
        args.extend(["--model".into(), path_arg(model)]);
    }
    args
}
