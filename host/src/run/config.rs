//! Settings of a run, from defaults, an optional TOML file and CLI flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunError;
use crate::model::HttpSettings;
use crate::plugin::{LimitOverrides, Limits};

/// Everything that decides what a run samples and elicits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Task plugin name.
    pub task: String,
    /// Dataset file the task plugin parses.
    pub data: PathBuf,
    /// Generator: a GGUF or safetensors model file, or an OpenAI-compatible
    /// endpoint as `BASE_URL#MODEL`; `None` uses the default model.
    pub model: Option<PathBuf>,
    /// Extra generators that answer every question too, as model files or
    /// endpoints (`BASE_URL#MODEL`): generator `g` (from 1) writes samples
    /// `g * samples ..`, so the run contains a mix of models' responses.
    pub generators: Vec<String>,
    /// LoRA adapter (PEFT layout) merged into the model before sampling.
    pub adapter: Option<PathBuf>,
    /// Questions to skip at the start of the dataset, so that a held-out
    /// split can follow the questions used for training.
    pub skip: usize,
    /// Questions to take from the dataset, in file order; 0 takes all.
    pub questions: usize,
    /// Responses sampled per question.
    pub samples: u32,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: u32,
    pub seed: u64,
    /// Settings the task plugin reads through the `setting` import.
    pub task_settings: BTreeMap<String, String>,
    /// Files whose text the task plugin reads as settings, by setting name,
    /// such as Bio Generation's `knowledge` passages. The host reads them;
    /// the plugin still has no file access.
    pub task_files: BTreeMap<String, PathBuf>,
    /// Scorer plugin that grades wrong answers by the plausibility of the
    /// statements they make, for tasks that return such statements; `None`
    /// keeps the task's own correctness.
    pub scorer: Option<String>,
    /// Elicitors as `NAME` or `NAME:KEY=VALUE,...` with the settings the
    /// plugin reads (see [`ElicitorSpec`](crate::plugin::ElicitorSpec)).
    pub elicitors: Vec<String>,
    /// Model that plugins call through `generate` and `logprobs` while
    /// eliciting: a model file, `default`, or an OpenAI-compatible endpoint
    /// as `BASE_URL#MODEL`; `None` uses the run's model without adapter.
    pub evaluator: Option<String>,
    /// Connection settings for endpoints used as generator or evaluator.
    pub http: HttpSettings,
    /// Shares of pairs kept by score gap, in percent.
    pub margins: Vec<u32>,
    /// Plugin bundles (folders or `.tar.gz` / `.zip` archives) and folders
    /// of bundles, searched after the built-ins.
    pub plugins: Vec<PathBuf>,
    pub limits: Limits,
    /// Limits per plugin name that lower `limits` for that plugin.
    pub plugin_limits: BTreeMap<String, LimitOverrides>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            task: "nlgraph-shortest-path".into(),
            data: PathBuf::new(),
            model: None,
            generators: Vec::new(),
            adapter: None,
            skip: 0,
            questions: 20,
            samples: 10,
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 256,
            seed: 0,
            task_settings: BTreeMap::new(),
            task_files: BTreeMap::new(),
            scorer: None,
            elicitors: vec!["heuristic".into(), "consistency".into(), "logits".into()],
            evaluator: None,
            http: HttpSettings::default(),
            margins: vec![100, 50, 10],
            plugins: Vec::new(),
            limits: Limits::default(),
            plugin_limits: BTreeMap::new(),
        }
    }
}

impl RunConfig {
    /// Returns the task plugin's settings: `task_settings`, plus the text
    /// of each file in `task_files`.
    pub fn task_plugin_settings(&self) -> Result<BTreeMap<String, String>, RunError> {
        let mut settings = self.task_settings.clone();
        for (name, path) in &self.task_files {
            let text = std::fs::read_to_string(path).map_err(|source| RunError::io(path, source))?;
            settings.insert(name.clone(), text);
        }
        Ok(settings)
    }

    /// Reads a TOML config file; missing keys keep their defaults.
    pub fn from_toml_file(path: &Path) -> Result<Self, RunError> {
        let text = std::fs::read_to_string(path).map_err(|source| RunError::io(path, source))?;
        toml::from_str(&text).map_err(|e| RunError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Lists the settings that change sampled responses and differ from
    /// `other`; a run directory may only be resumed when this is empty.
    pub fn sampling_differences(&self, other: &RunConfig) -> Vec<&'static str> {
        let mut differences = Vec::new();
        if self.task != other.task {
            differences.push("task");
        }
        if self.data != other.data {
            differences.push("data");
        }
        if self.model != other.model {
            differences.push("model");
        }
        if self.generators != other.generators {
            differences.push("generators");
        }
        if self.adapter != other.adapter {
            differences.push("adapter");
        }
        if self.skip != other.skip {
            differences.push("skip");
        }
        if self.samples != other.samples {
            differences.push("samples");
        }
        if self.temperature != other.temperature || self.top_p != other.top_p {
            differences.push("temperature/top-p");
        }
        if self.max_tokens != other.max_tokens {
            differences.push("max-tokens");
        }
        if self.seed != other.seed {
            differences.push("seed");
        }
        if self.task_settings != other.task_settings || self.task_files != other.task_files {
            differences.push("task settings");
        }
        if self.scorer != other.scorer {
            differences.push("scorer");
        }
        differences
    }
}
