//! Experiments: grids of runs described in a TOML file, and their cells.
//!
//! Each cell is one `wow` command writing into its own folder under the
//! experiment's output folder. A cell is finished when its marker file
//! exists, so an interrupted experiment continues with the missing cells.

mod spec;

use std::path::{Path, PathBuf};

pub use spec::{
    EvaluatorSpec, Experiment, GENERATOR_EVALUATOR, GeneratorSpec, PreferenceSource, REFERENCE_SOURCES, SamplingSpec,
    TaskSpec, TrainingSpec,
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

    #[error("file {data} of task {task} not found; create it or change its path in the experiment file")]
    MissingData { task: String, data: PathBuf },
}

/// Kind of work a cell does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `wow run`, which samples the training questions and elicits, or
    /// `wow elicit --from` of those samples with a further evaluator.
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
    /// Elicitation of the same samples by each further evaluator.
    pub judges: Vec<Cell>,
    pub train: Vec<Cell>,
    pub heldout_original: Option<Cell>,
    /// Held-out sampling with each adapter, paired with its training cell's id.
    pub heldout_aligned: Vec<(String, Cell)>,
    /// Evaluation folder; the command is built once the trained adapters are
    /// known, by [`evaluate_cell`].
    pub evaluation_dir: Option<PathBuf>,
}

/// Lists the cells of every task x generator under `out`.
///
/// The experiment must have passed [`Experiment::validate`].
pub fn plan(experiment: &Experiment, out: &Path) -> Vec<CellGroup> {
    let evaluators = experiment.evaluator_specs().expect("validated evaluators");
    let sources = experiment.sources().expect("validated preference sources");
    let mut groups = Vec::new();
    for task in &experiment.tasks {
        for generator in &experiment.generators {
            let group = GroupPlan {
                experiment,
                task,
                generator,
                evaluators: &evaluators,
                out,
            };
            groups.push(group.cells(&sources));
        }
    }
    groups
}

/// The cells of one task x generator.
struct GroupPlan<'a> {
    experiment: &'a Experiment,
    task: &'a TaskSpec,
    generator: &'a GeneratorSpec,
    evaluators: &'a [EvaluatorSpec],
    out: &'a Path,
}

impl GroupPlan<'_> {
    fn key(&self) -> String {
        format!("{}/{}", self.task.label(), self.generator.label)
    }

    /// Run folder id of an evaluator: the elicitation run itself for the
    /// first one, a sibling folder for the others.
    fn run_id(&self, evaluator: &EvaluatorSpec) -> String {
        if evaluator == &self.evaluators[0] {
            format!("runs/{}", self.key())
        } else {
            format!("runs/{}-by-{}", self.key(), evaluator.label)
        }
    }

    /// `wow run` of the training questions, judged by the first evaluator.
    fn elicit_cell(&self) -> Cell {
        let evaluator = &self.evaluators[0];
        let dir = self.out.join(self.run_id(evaluator));
        let mut args = vec!["run".to_string(), "--out".into(), path_arg(&dir)];
        args.extend(sampling_flags(
            self.experiment,
            self.task,
            self.generator,
            0,
            self.experiment.sampling.questions,
        ));
        self.elicitation(evaluator, dir, args)
    }

    /// `wow elicit --from` of the elicitation run's samples by a further
    /// evaluator.
    fn judge_cell(&self, samples: &Path, evaluator: &EvaluatorSpec) -> Cell {
        let dir = self.out.join(self.run_id(evaluator));
        let args = vec![
            "elicit".to_string(),
            "--from".into(),
            path_arg(samples),
            "--out".into(),
            path_arg(&dir),
        ];
        self.elicitation(evaluator, dir, args)
    }

    /// Completes an elicitation command with the elicitor, evaluator and
    /// sandbox flags.
    fn elicitation(&self, evaluator: &EvaluatorSpec, dir: PathBuf, mut args: Vec<String>) -> Cell {
        args.extend(elicitation_flags(self.experiment, evaluator));
        args.extend(plugin_flags(self.experiment));
        Cell {
            id: self.run_id(evaluator),
            stage: Stage::Elicit,
            args,
            marker: dir.join(crate::run::ACCURACY_JSON),
            dir,
            preferences: None,
        }
    }

    fn heldout_cell(&self, name: &str, adapter: Option<&Path>) -> Cell {
        let id = format!("heldout/{}/{name}", self.key());
        let dir = self.out.join(&id);
        let sampling = &self.experiment.sampling;
        let mut args = vec!["sample".to_string(), "--out".into(), path_arg(&dir)];
        args.extend(sampling_flags(
            self.experiment,
            self.task,
            self.generator,
            sampling.questions,
            sampling.heldout_questions,
        ));
        args.extend(plugin_flags(self.experiment));
        if let Some(adapter) = adapter {
            args.extend(["--adapter".to_string(), path_arg(adapter)]);
        }
        Cell {
            id,
            stage: Stage::Heldout,
            args,
            marker: dir.join(SAMPLED_MARKER),
            dir,
            preferences: None,
        }
    }

    fn cells(&self, sources: &[PreferenceSource]) -> CellGroup {
        let elicit = self.elicit_cell();
        let judges: Vec<Cell> = self.evaluators[1..]
            .iter()
            .map(|evaluator| self.judge_cell(&elicit.dir, evaluator))
            .collect();

        let mut train = Vec::new();
        let mut heldout_aligned = Vec::new();
        let heldout = self.experiment.sampling.heldout_questions;
        for source in sources {
            let run_dir = match &source.evaluator {
                Some(label) => {
                    let evaluator = self
                        .evaluators
                        .iter()
                        .find(|e| &e.label == label)
                        .expect("validated evaluator");
                    self.out.join(self.run_id(evaluator))
                }
                None => elicit.dir.clone(),
            };
            let preferences = run_dir.join(crate::run::PREFERENCES_DIR).join(source.file_name());
            for loss in &self.experiment.losses {
                let name = format!("{}-{}", source.adapter_name(), loss.name());
                let id = format!("adapters/{}/{name}", self.key());
                let dir = self.out.join(&id);
                train.push(Cell {
                    id: id.clone(),
                    stage: Stage::Train,
                    args: align_args(self.experiment, self.generator, &preferences, *loss, &dir),
                    marker: dir.join(crate::align::ADAPTER_WEIGHTS_FILE),
                    dir: dir.clone(),
                    preferences: Some(preferences.clone()),
                });
                if heldout > 0 {
                    heldout_aligned.push((id, self.heldout_cell(&name, Some(&dir))));
                }
            }
        }

        CellGroup {
            heldout_original: (heldout > 0).then(|| self.heldout_cell("original", None)),
            evaluation_dir: (heldout > 0).then(|| self.out.join(format!("evaluations/{}", self.key()))),
            elicit,
            judges,
            train,
            heldout_aligned,
        }
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

/// Flags choosing the task, its data and the sampling of `questions`
/// questions after the first `skip`.
fn sampling_flags(
    experiment: &Experiment,
    task: &TaskSpec,
    generator: &GeneratorSpec,
    skip: usize,
    questions: usize,
) -> Vec<String> {
    let sampling = &experiment.sampling;
    let mut args: Vec<String> = vec![
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
    ];
    for (key, value) in &task.settings {
        args.extend(["--task-setting".into(), format!("{key}={value}")]);
    }
    for (key, path) in &task.files {
        args.extend(["--task-file".into(), format!("{key}={}", path.display())]);
    }
    if let Some(model) = &generator.model {
        args.extend(["--model".into(), path_arg(model)]);
    }
    args
}

/// Flags choosing the elicitors, their evaluator and the margins.
fn elicitation_flags(experiment: &Experiment, evaluator: &EvaluatorSpec) -> Vec<String> {
    let margins: Vec<String> = experiment.margins.iter().map(u32::to_string).collect();
    let mut args: Vec<String> = vec![
        "--elicitors".into(),
        experiment.elicitors[0].clone(),
        "--margins".into(),
        margins.join(","),
    ];
    // Specs with several settings contain commas, so each further elicitor
    // gets its own flag.
    for spec in &experiment.elicitors[1..] {
        args.extend(["--elicitor".into(), spec.clone()]);
    }
    if let Some(model) = &evaluator.model {
        args.extend(["--evaluator".into(), model.clone()]);
    }
    args
}

/// Flags for the sandbox limits and the plugin folders.
fn plugin_flags(experiment: &Experiment) -> Vec<String> {
    let limits = &experiment.limits;
    let mut args: Vec<String> = vec![
        "--plugin-fuel".into(),
        limits.fuel.to_string(),
        "--plugin-timeout".into(),
        limits.timeout_secs.to_string(),
        "--plugin-memory".into(),
        (limits.memory_bytes / (1024 * 1024)).to_string(),
    ];
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
        "--max-prompt-length".into(),
        training.max_prompt_length.to_string(),
        "--max-completion-length".into(),
        training.max_completion_length.to_string(),
        "--validation-ratio".into(),
        training.validation_ratio.to_string(),
        "--seed".into(),
        training.seed.to_string(),
    ];
    if let Some(model) = &generator.model {
        args.extend(["--model".into(), path_arg(model)]);
    }
    args
}
