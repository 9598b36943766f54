//! The experiment file: a TOML description of a grid of runs.

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
    /// Models the elicitors may query; `generator` is the sampling model.
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
}

impl TaskSpec {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.plugin)
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
    #[serde(default = "default_max_length")]
    pub max_length: usize,
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

fn default_max_length() -> usize {
    2048
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
            self.evaluators.iter().all(|e| e == GENERATOR_EVALUATOR),
            "evaluators other than \"generator\" are not supported: elicitors query the sampling model",
        );

        let labels: Vec<&str> = self.tasks.iter().map(TaskSpec::label).collect();
        require(
            all_unique(&labels),
            "task labels must be unique (set `label` on repeated plugins)",
        );
        let generators: Vec<&str> = self.generators.iter().map(|g| g.label.as_str()).collect();
        require(all_unique(&generators), "generator labels must be unique");
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

    /// Checks that `METHOD-mMARGIN` names a preference file the experiment
    /// writes.
    fn check_source(&self, source: &str) -> Result<(), String> {
        let parsed = source
            .rsplit_once("-m")
            .and_then(|(method, margin)| Some((method, margin.parse::<u32>().ok()?)));
        let Some((method, margin)) = parsed else {
            return Err(format!("preference source {source:?} is not METHOD-mMARGIN"));
        };
        let elicited = self
            .elicitors
            .iter()
            .any(|e| e.parse::<crate::plugin::ElicitorSpec>().is_ok_and(|spec| spec.method() == method));
        if !elicited && !REFERENCE_SOURCES.contains(&method) {
            return Err(format!(
                "preference source {source:?} names method {method:?}, which is neither an elicitor nor one of {REFERENCE_SOURCES:?}"
            ));
        }
        if !self.margins.contains(&margin) {
            return Err(format!(
                "preference source {source:?} uses margin {margin}, which is not in `margins`"
            ));
        }
        Ok(())
    }
}

fn all_unique(names: &[&str]) -> bool {
    let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
    unique.len() == names.len()
}
