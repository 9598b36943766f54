//! The experiment file: a TOML description of a grid of runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ExperimentError;
use crate::align::PreferenceLoss;
use crate::plugin::Limits;

/// Preference sets written by every elicitation pass without an elicitor:
/// `oracle` (wrong over wrong by proxy correctness) and `row` (right over
/// wrong).
pub const REFERENCE_SOURCES: [&str; 2] = ["oracle", "row"];

/// Evaluator name for judging with the generator's own model.
pub const GENERATOR_EVALUATOR: &str = "generator";

/// A whole experiment: every task x generator x evaluator is sampled and
/// elicited, every preference source x loss is trained, and each adapter is
/// compared with its original model on held-out questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    #[serde(rename = "task")]
    pub tasks: Vec<TaskSpec>,
    #[serde(rename = "generator")]
    pub generators: Vec<GeneratorSpec>,
    /// Models the elicitors may query, each `generator` (the sampling
    /// model) or `LABEL=MODEL` with MODEL a model file, `default` or an
    /// OpenAI-compatible endpoint as BASE_URL#MODEL. The first one judges
    /// in the elicitation run; each further one judges the same samples in
    /// a run folder of its own.
    #[serde(default = "default_evaluators")]
    pub evaluators: Vec<String>,
    pub elicitors: Vec<String>,
    /// Shares of pairs kept by score gap, in percent.
    pub margins: Vec<u32>,
    /// Preference files to train on, as `METHOD-mMARGIN`.
    pub preference_sources: Vec<String>,
    pub losses: Vec<PreferenceLoss>,
    pub sampling: SamplingSpec,
    pub training: TrainingSpec,
    /// Plugin folders searched after the built-ins, relative to the file.
    #[serde(default)]
    pub plugins: Vec<PathBuf>,
    #[serde(default)]
    pub limits: Limits,
}

fn default_evaluators() -> Vec<String> {
    vec![GENERATOR_EVALUATOR.to_string()]
}

/// A task plugin and its dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Task plugin name.
    pub plugin: String,
    /// Dataset file, relative to the experiment file.
    pub data: PathBuf,
    /// Cell label; defaults to the plugin name.
    #[serde(default)]
    pub label: Option<String>,
    /// Task plugin settings, as given by `--task-setting KEY=VALUE`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Files whose text the task plugin gets as settings, as given by
    /// `--task-file KEY=PATH`; relative to the experiment file.
    #[serde(default)]
    pub files: BTreeMap<String, PathBuf>,
}

impl TaskSpec {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.plugin)
    }
}

/// A model the elicitors query, parsed from an `evaluators` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluatorSpec {
    /// Name in folder names and preference sources.
    pub label: String,
    /// The `--evaluator` value; `None` for the generator itself.
    pub model: Option<String>,
}

impl std::str::FromStr for EvaluatorSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == GENERATOR_EVALUATOR {
            return Ok(Self {
                label: GENERATOR_EVALUATOR.to_string(),
                model: None,
            });
        }
        let Some((label, model)) = text.split_once('=') else {
            return Err(format!(
                "evaluator {text:?} is neither \"{GENERATOR_EVALUATOR}\" nor LABEL=MODEL"
            ));
        };
        let (label, model) = (label.trim(), model.trim());
        let label_ok = !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !label_ok || model.is_empty() {
            return Err(format!(
                "evaluator {text:?} needs a label of letters, digits, '-', '_' or '.' and a model after '='"
            ));
        }
        Ok(Self {
            label: label.to_string(),
            model: Some(model.to_string()),
        })
    }
}

impl std::fmt::Display for EvaluatorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.model {
            None => f.write_str(&self.label),
            Some(model) => write!(f, "{}={model}", self.label),
        }
    }
}

/// A preference set to train on: `METHOD-mMARGIN`, from the first
/// evaluator's run, or `LABEL/METHOD-mMARGIN`, from evaluator LABEL's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceSource {
    pub evaluator: Option<String>,
    pub method: String,
    pub margin: u32,
}

impl PreferenceSource {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (evaluator, set) = match text.split_once('/') {
            Some((label, set)) => (Some(label.to_string()), set),
            None => (None, text),
        };
        let parsed = set
            .rsplit_once("-m")
            .and_then(|(method, margin)| Some((method, margin.parse::<u32>().ok()?)));
        let Some((method, margin)) = parsed else {
            return Err(format!(
                "preference source {text:?} is not METHOD-mMARGIN or EVALUATOR/METHOD-mMARGIN"
            ));
        };
        Ok(Self {
            evaluator,
            method: method.to_string(),
            margin,
        })
    }

    /// Returns the preference file's name in its run's `preferences/` folder.
    pub fn file_name(&self) -> String {
        format!("{}-m{}.jsonl", self.method, self.margin)
    }

    /// Returns the name of the adapters trained on this set, without the loss.
    pub fn adapter_name(&self) -> String {
        match &self.evaluator {
            Some(label) => format!("{label}-{}-m{}", self.method, self.margin),
            None => format!("{}-m{}", self.method, self.margin),
        }
    }
}

/// A model that samples responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    pub label: String,
    /// GGUF file, relative to the experiment file; the default model when
    /// missing.
    #[serde(default)]
    pub model: Option<PathBuf>,
}

/// Sampling settings shared by every cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSpec {
    /// Questions sampled for elicitation and training, from the start of
    /// each dataset.
    pub questions: usize,
    /// Held-out questions after those, for evaluating adapters.
    pub heldout_questions: usize,
    pub samples: u32,
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    #[serde(default = "default_top_p")]
    pub top_p: f32,
    pub max_tokens: u32,
    #[serde(default)]
    pub seed: u64,
}

fn default_temperature() -> f32 {
    1.0
}

fn default_top_p() -> f32 {
    1.0
}

/// Hyper-parameters of `wow align`, shared by every training cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    pub epochs: usize,
    pub learning_rate: f64,
    pub beta: f64,
    #[serde(default = "default_warmup_ratio")]
    pub warmup_ratio: f64,
    #[serde(default = "default_one")]
    pub batch_size: usize,
    #[serde(default = "default_accumulation")]
    pub gradient_accumulation_steps: usize,
    /// Pairs drawn from a preference file; 0 keeps all.
    #[serde(default = "default_max_pairs")]
    pub max_pairs: usize,
    /// Prompt tokens kept per pair; longer prompts keep their end.
    #[serde(default = "default_max_prompt_length")]
    pub max_prompt_length: usize,
    /// Response tokens kept per pair; longer responses keep their start.
    #[serde(default = "default_max_completion_length")]
    pub max_completion_length: usize,
    /// Share of the pairs held out for the validation loss.
    #[serde(default = "default_validation_ratio")]
    pub validation_ratio: f64,
    #[serde(default)]
    pub seed: u64,
}

fn default_warmup_ratio() -> f64 {
    0.1
}

fn default_one() -> usize {
    1
}

fn default_accumulation() -> usize {
    8
}

fn default_max_pairs() -> usize {
    4000
}

fn default_max_prompt_length() -> usize {
    512
}

fn default_max_completion_length() -> usize {
    1536
}

fn default_validation_ratio() -> f64 {
    0.1
}

impl Experiment {
    /// Reads and validates an experiment file; relative paths in it are
    /// resolved against the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut experiment: Experiment = toml::from_str(&text).map_err(|error| ExperimentError::Invalid {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        experiment.validate().map_err(|message| ExperimentError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        experiment.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(experiment)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for task in &mut self.tasks {
            task.data = base.join(&task.data);
            for path in task.files.values_mut() {
                *path = base.join(&*path);
            }
        }
        for entry in &mut self.evaluators {
            let Ok(EvaluatorSpec {
                label,
                model: Some(model),
            }) = entry.parse::<EvaluatorSpec>()
            else {
                continue;
            };
            if model != "default" && !model.contains("://") {
                let model = Some(base.join(model).display().to_string());
                *entry = EvaluatorSpec { label, model }.to_string();
            }
        }
        for generator in &mut self.generators {
            if let Some(model) = &mut generator.model {
                *model = base.join(&*model);
            }
        }
        for dir in &mut self.plugins {
            *dir = base.join(&*dir);
        }
    }

    /// Checks the file's own consistency; plugin names are checked against
    /// the registry when the experiment runs.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut require = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_string());
            }
        };
        require(!self.name.trim().is_empty(), "`name` is empty");
        require(!self.tasks.is_empty(), "no [[task]]");
        require(!self.generators.is_empty(), "no [[generator]]");
        require(!self.elicitors.is_empty(), "`elicitors` is empty");
        require(!self.margins.is_empty(), "`margins` is empty");
        require(
            self.margins.iter().all(|m| (1..=100).contains(m)),
            "every margin must be a percentage from 1 to 100",
        );
        require(!self.losses.is_empty(), "`losses` is empty");
        require(self.sampling.questions > 0, "sampling.questions must be at least 1");
        require(
            self.sampling.samples >= 2,
            "sampling.samples must be at least 2 to form pairs",
        );
        require(self.sampling.max_tokens > 0, "sampling.max_tokens must be at least 1");
        require(self.training.epochs > 0, "training.epochs must be at least 1");
        require(
            self.training.learning_rate > 0.0,
            "training.learning_rate must be positive",
        );
        require(self.training.beta > 0.0, "training.beta must be positive");
        require(
            (0.0..1.0).contains(&self.training.warmup_ratio),
            "training.warmup_ratio must be in [0, 1)",
        );
        require(
            (0.0..1.0).contains(&self.training.validation_ratio),
            "training.validation_ratio must be in [0, 1)",
        );
        require(!self.evaluators.is_empty(), "`evaluators` is empty");
        let evaluators = self.evaluator_specs();
        if let Ok(evaluators) = &evaluators {
            let labels: Vec<&str> = evaluators.iter().map(|e| e.label.as_str()).collect();
            require(all_unique(&labels), "evaluator labels must be unique");
        }

        let labels: Vec<&str> = self.tasks.iter().map(TaskSpec::label).collect();
        require(
            all_unique(&labels),
            "task labels must be unique (set `label` on repeated plugins)",
        );
        let generators: Vec<&str> = self.generators.iter().map(|g| g.label.as_str()).collect();
        require(all_unique(&generators), "generator labels must be unique");
        if let Err(problem) = evaluators {
            problems.push(problem);
        }
        for source in &self.preference_sources {
            if let Err(problem) = self.check_source(source) {
                problems.push(problem);
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Parses the `evaluators` entries, in order.
    pub fn evaluator_specs(&self) -> Result<Vec<EvaluatorSpec>, String> {
        self.evaluators.iter().map(|entry| entry.parse()).collect()
    }

    /// Parses the `preference_sources`, in order.
    pub fn sources(&self) -> Result<Vec<PreferenceSource>, String> {
        self.preference_sources
            .iter()
            .map(|text| PreferenceSource::parse(text))
            .collect()
    }

    /// Checks that a preference source names a preference file the
    /// experiment writes.
    fn check_source(&self, text: &str) -> Result<(), String> {
        let source = PreferenceSource::parse(text)?;
        if let Some(label) = &source.evaluator {
            let known = self
                .evaluator_specs()
                .is_ok_and(|evaluators| evaluators.iter().any(|e| &e.label == label));
            if !known {
                return Err(format!(
                    "preference source {text:?} names evaluator {label:?}, which is not in `evaluators`"
                ));
            }
        }
        let method = source.method.as_str();
        let elicited = self.elicitors.iter().any(|e| {
            e.parse::<crate::plugin::ElicitorSpec>()
                .is_ok_and(|spec| spec.method() == method)
        });
        if !elicited && !REFERENCE_SOURCES.contains(&method) {
            return Err(format!(
                "preference source {text:?} names method {method:?}, which is neither an elicitor nor one of {REFERENCE_SOURCES:?}"
            ));
        }
        if !self.margins.contains(&source.margin) {
            return Err(format!(
                "preference source {text:?} uses margin {}, which is not in `margins`",
                source.margin
            ));
        }
        Ok(())
    }
}

fn all_unique(names: &[&str]) -> bool {
    let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
    unique.len() == names.len()
}
