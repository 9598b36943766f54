//! The `wow` command line: argument parsing and commands.

mod align;
mod args;
mod experiment;
mod grid;
mod kc;
mod plugin;
mod progress;
mod report;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Parser as _;

use crate::model::{self, CacheStats, CachedModel, ChatModel, LazyEmbedder, LazyModel, LocalModel, ModelSpec};
use crate::plugin::{ElicitorSpec, PluginRegistry, PluginSource, Sandbox, SharedModel};
use crate::run::{self, Provenance, RunConfig, RunDir};
pub use args::Args;
use args::{Command, ElicitArgs, EvaluateArgs, ModelCommand, PluginsCommand, RunArgs, RunCommandArgs};

pub use progress::init_logging;

/// Parses the process arguments, runs the command and reports its error.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    match runtime.block_on(execute(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command line.
pub async fn execute(args: Args) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone());

    match args.command {
        Command::Sample(run_args) => blocking(move || sample_command(&run_args, &stop).map(|_| ())).await,
        Command::Run(run_args) => blocking(move || run_command(&run_args, &stop)).await,
        Command::Elicit(elicit_args) => blocking(move || elicit_command(&elicit_args)).await,
        Command::Align(align_args) => blocking(move || align::align_command(&align_args, &stop).map(|_| ())).await,
        Command::Evaluate(evaluate_args) => evaluate_command(&evaluate_args),
        Command::Report(report_args) => blocking(move || report::report_command(&report_args)).await,
        Command::Experiment(experiment_args) => {
            blocking(move || experiment::experiment_command(&experiment_args, &stop)).await
        }
        Command::Grid(grid_args) => blocking(move || grid::grid_command(&grid_args, &stop)).await,
        Command::Model(ModelCommand::Fetch { cache_dir, gemma3 }) => {
            let cache_dir = cache_dir.unwrap_or_else(model::default_cache_dir);
            let fetch = if gemma3 {
                model::fetch_gemma3_model
            } else {
                model::fetch_default_model
            };
            let path = blocking(move || Ok(fetch(&cache_dir)?)).await?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Plugins(PluginsCommand::List { plugins }) => list_plugins(&plugins),
        Command::Plugin(command) => blocking(move || plugin::execute(command)).await,
        Command::Kc(kc_command) => blocking(move || kc::kc_command(&kc_command)).await,
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("worker thread panicked")?
}

/// The first Ctrl-C asks the run to stop after the current question; the
/// second exits at once. Both keep every finished response.
fn watch_ctrl_c(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("interrupt received; stopping after the current question (press Ctrl-C again to exit now)");
            stop.store(true, Ordering::SeqCst);
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

fn resolve_config(run_args: &RunArgs) -> anyhow::Result<RunConfig> {
    let mut config = match &run_args.config {
        Some(path) => RunConfig::from_toml_file(path)?,
        None => RunConfig::default(),
    };
    run_args.apply(&mut config);
    if config.data.as_os_str().is_empty() {
        bail!("no dataset given; pass --data FILE (for example an NLGraph train.json) or set `data` in --config");
    }
    if config.samples == 0 {
        bail!("--samples must be at least 1");
    }
    Ok(config)
}

fn sample_command(run_args: &RunArgs, stop: &AtomicBool) -> anyhow::Result<(RunConfig, RunDir)> {
    let config = resolve_config(run_args)?;
    let run = sample_into(&run_args.out, &config, stop)?;
    Ok((config, run))
}

/// Samples the questions that `config` selects into the run directory `out`.
fn sample_into(out: &Path, config: &RunConfig, stop: &AtomicBool) -> anyhow::Result<RunDir> {
    let run = run::prepare_run_dir(out, config)?;
    let model = load_generator(config, &run)?;
    let mut generators = vec![run::Generator {
        name: None,
        model: model.clone(),
    }];
    for (index, spec) in config.generators.iter().enumerate() {
        generators.push(extra_generator(config, &run, index + 1, spec)?);
    }
    // Task and scorer plugins reach the run's model when they grade.
    let registry = registry_with_model(config, model.clone())?;
    let task = registry
        .task(&config.task)?
        .with_settings(config.task_plugin_settings()?);
    let scorer = config.scorer.as_deref().map(|name| registry.scorer(name)).transpose()?;

    let questions = run::load_questions(&task, config)?;
    run.write_questions(&questions)?;

    let bar = progress::bar("sampling", questions.len());
    let graders = run::Graders {
        task: &task,
        scorer: scorer.as_ref(),
    };
    let (started, before) = (Instant::now(), registry.sandbox().call_stats());
    let summary = run::sample(&run, config, &graders, &generators, &questions, &bar, stop)?;
    bar.finish_and_clear();
    plugin::log_plugin_time(registry.sandbox(), &before, "sampling", started.elapsed());

    tracing::info!(
        questions = summary.questions,
        sampled = summary.sampled,
        failed_items = summary.failed_items,
        failed_questions = summary.failed_questions.len(),
        "sampling done: {}",
        run.path(run::RESPONSES_FILE).display()
    );
    Ok(run)
}

fn run_command(args: &RunCommandArgs, stop: &AtomicBool) -> anyhow::Result<()> {
    let (config, run) = sample_command(&args.run, stop)?;
    if stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    elicit_run(&run, &config)?;
    if args.align.align {
        align::align_and_evaluate(&run, &config, &args.align, stop)?;
    }
    Ok(())
}

fn elicit_command(elicit_args: &ElicitArgs) -> anyhow::Result<()> {
    if let Some(source) = &elicit_args.from {
        let source = RunDir::open(source)?;
        RunDir::create(&elicit_args.out)?.copy_samples_from(&source)?;
    }
    let run = RunDir::open(&elicit_args.out)?;
    let mut config = run.read_config()?.context("run directory has no config.json")?;
    elicit_args.flags.apply(&mut config);
    elicit_run(&run, &config)
}

fn elicit_run(run: &RunDir, config: &RunConfig) -> anyhow::Result<()> {
    let (evaluator, cache) = evaluator_model(config, run);
    let registry = registry_with_model(config, evaluator)?;
    let elicitors = config
        .elicitors
        .iter()
        .map(|text| {
            let spec: ElicitorSpec = text.parse()?;
            anyhow::Ok(registry.elicitor(&spec.plugin)?.configured(&spec))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let questions = run.read_questions()?;
    let responses = run::read_responses(run)?;
    let bar = progress::bar("eliciting", questions.len() * elicitors.len());
    let (started, before) = (Instant::now(), registry.sandbox().call_stats());
    let mut table = run::elicit(
        run,
        &config.task,
        &questions,
        &responses,
        &elicitors,
        Some(&evaluator_name(config)),
        &config.margins,
        &bar,
    )?;
    bar.finish_and_clear();
    plugin::log_plugin_time(registry.sandbox(), &before, "eliciting", started.elapsed());
    log_cache(&cache, "evaluator");

    let provenance = run_provenance(config, &registry)?;
    run::write_preference_provenance(run, &provenance)?;
    table.provenance = Some(provenance);
    run::write_accuracy_table(run, &table, &config.margins)?;

    println!("{}", run::render_markdown(&table, &config.margins));
    tracing::info!(
        "wrote {} and preferences/ in {}",
        run::ACCURACY_MARKDOWN,
        run.root().display()
    );
    Ok(())
}

/// Records the build, model, task and elicitor plugins, seed and settings
/// of a run.
fn run_provenance(config: &RunConfig, registry: &PluginRegistry) -> anyhow::Result<Provenance> {
    let elicitor_plugins: Vec<String> = config
        .elicitors
        .iter()
        .map(|text| text.parse::<ElicitorSpec>().map(|spec| spec.plugin))
        .collect::<Result<_, _>>()?;
    let plugins = std::iter::once(config.task.as_str()).chain(elicitor_plugins.iter().map(String::as_str));
    let mut provenance = Provenance::new(config)
        .with_plugins(registry, plugins)?
        .with_seed("sampling", config.seed);
    if let Some(path) = run::provenance::model_file(config.model.as_deref()) {
        provenance = provenance.with_model(&path)?;
    }
    Ok(provenance)
}

/// Records the compared runs with their full settings, their sampling
/// seeds and the model of the original run.
fn evaluation_provenance(runs: &[(String, std::path::PathBuf)]) -> anyhow::Result<Provenance> {
    let mut configs = serde_json::Map::new();
    let mut seeds = Vec::new();
    for (name, dir) in runs {
        let config = RunDir::open(dir)?
            .read_config()?
            .with_context(|| format!("run {} has no config.json", dir.display()))?;
        seeds.push((format!("sampling:{name}"), config.seed));
        configs.insert(name.clone(), serde_json::json!({ "run": dir, "config": config }));
    }

    let mut provenance = Provenance::new(&configs);
    let original_model = configs
        .get(run::ORIGINAL)
        .and_then(|entry| entry["config"]["model"].as_str().map(std::path::PathBuf::from));
    if let Some(path) = run::provenance::model_file(original_model.as_deref()) {
        provenance = provenance.with_model(&path)?;
    }
    for (role, seed) in seeds {
        provenance = provenance.with_seed(&role, seed);
    }
    Ok(provenance)
}

fn evaluate_command(args: &EvaluateArgs) -> anyhow::Result<()> {
    let mut runs: Vec<(String, std::path::PathBuf)> = args
        .original
        .iter()
        .map(|dir| (run::ORIGINAL.to_string(), dir.clone()))
        .collect();
    runs.extend(args.aligned.iter().cloned());
    write_alignment(&args.out, &runs)
}

/// Writes the alignment table of `runs` (the original model first) into
/// `out` as JSON and Markdown, and prints the Markdown.
fn write_alignment(out: &Path, runs: &[(String, std::path::PathBuf)]) -> anyhow::Result<()> {
    let mut table = run::evaluate_runs(runs)?;
    table.provenance = Some(evaluation_provenance(runs)?);
    let out = RunDir::create(out)?;
    let json = serde_json::to_string_pretty(&table).context("serialize the alignment table")?;
    let markdown = run::render_alignment_markdown(&table);
    out.write_atomic(run::ALIGNMENT_JSON, json.as_bytes())?;
    out.write_atomic(run::ALIGNMENT_MARKDOWN, markdown.as_bytes())?;
    println!("{markdown}");
    Ok(())
}

/// Returns a registry whose plugins reach `model` and, loaded on first
/// use, the embedding model.
fn registry_with_model(config: &RunConfig, model: SharedModel) -> anyhow::Result<PluginRegistry> {
    let sandbox = Sandbox::new(config.limits.clone())?
        .with_model(model)
        .with_embedder(Arc::new(LazyEmbedder::default_model()));
    registry_in(config, sandbox)
}

fn registry_in(config: &RunConfig, sandbox: Sandbox) -> anyhow::Result<PluginRegistry> {
    let sandbox = sandbox.with_plugin_limits(config.plugin_limits.clone());
    let mut registry = PluginRegistry::new(sandbox)?;
    for path in &config.plugins {
        registry.add_path(path)?;
    }
    Ok(registry)
}

fn load_model(path: Option<&Path>, adapter: Option<&Path>) -> anyhow::Result<SharedModel> {
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => model::default_model_path()?,
    };
    tracing::info!(model = %path.display(), "loading model");
    let Some(adapter) = adapter else {
        let model =
            model::load_chat_model(&path).with_context(|| format!("failed to load model {}", path.display()))?;
        return Ok(Arc::new(Mutex::new(model)));
    };

    // Adapters are merged into llama weights only.
    let mut model = LocalModel::load(&path).with_context(|| format!("failed to load model {}", path.display()))?;
    crate::align::merge_adapter(&mut model, &path, adapter)
        .with_context(|| format!("failed to merge adapter {}", adapter.display()))?;
    let model: Box<dyn ChatModel> = Box::new(model);
    Ok(Arc::new(Mutex::new(model)))
}

/// Returns the run's generator: a local model (with the adapter merged), or
/// an endpoint behind a response cache in RUN/cache/generator.
fn load_generator(config: &RunConfig, run: &RunDir) -> anyhow::Result<SharedModel> {
    let spec = ModelSpec::from_path(config.model.as_deref());
    let ModelSpec::Http { .. } = spec else {
        return load_model(config.model.as_deref(), config.adapter.as_deref());
    };
    if config.adapter.is_some() {
        bail!("--adapter needs a local model; an endpoint serves its own weights");
    }
    tracing::info!(model = %spec, "sampling from an OpenAI-compatible endpoint");
    let endpoint = spec.open(&config.http)?;
    let cached: Box<dyn ChatModel> = Box::new(CachedModel::new(endpoint, spec.identity(), run.path("cache/generator")));
    Ok(Arc::new(Mutex::new(cached)))
}

/// Loads extra generator number `index` of a mix run; an endpoint gets a
/// response cache in RUN/cache/generator-INDEX.
fn extra_generator(config: &RunConfig, run: &RunDir, index: usize, text: &str) -> anyhow::Result<run::Generator> {
    let spec = ModelSpec::parse(text);
    tracing::info!(model = %spec, "loading extra generator {index}");
    let model = spec
        .open(&config.http)
        .with_context(|| format!("failed to open generator {text}"))?;
    let model: Box<dyn ChatModel> = match spec {
        ModelSpec::Http { .. } => Box::new(CachedModel::new(
            model,
            spec.identity(),
            run.path(&format!("cache/generator-{index}")),
        )),
        _ => model,
    };
    Ok(run::Generator {
        name: Some(generator_name(&spec)),
        model: Arc::new(Mutex::new(model)),
    })
}

/// Returns the model judge plugins call while eliciting, loaded on first
/// use, behind a response cache in RUN/cache/evaluator, and the cache's
/// counters.
fn evaluator_model(config: &RunConfig, run: &RunDir) -> (SharedModel, Arc<CacheStats>) {
    let spec = evaluator_spec(config);
    let identity = spec.identity();
    let lazy = Box::new(LazyModel::new(spec, config.http.clone()));
    let cached = CachedModel::new(lazy, identity, run.path("cache/evaluator"));
    let stats = cached.stats();
    let model: Box<dyn ChatModel> = Box::new(cached);
    (Arc::new(Mutex::new(model)), stats)
}

/// Returns the evaluator: `--evaluator`, else the run's own model.
fn evaluator_spec(config: &RunConfig) -> ModelSpec {
    match &config.evaluator {
        Some(text) => ModelSpec::parse(text),
        None => ModelSpec::from_path(config.model.as_deref()),
    }
}

/// Returns the short name of the evaluator model recorded in results.
fn evaluator_name(config: &RunConfig) -> String {
    generator_name(&evaluator_spec(config))
}

/// Returns the short name of a model in results: the file name of a local
/// model, or MODEL@URL for an endpoint.
fn generator_name(spec: &ModelSpec) -> String {
    match spec.clone() {
        ModelSpec::Default => model::DEFAULT_MODEL_FILE.to_string(),
        ModelSpec::Local(path) => path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        ),
        ModelSpec::Http { base_url, model } => format!("{model}@{base_url}"),
    }
}

fn log_cache(stats: &CacheStats, role: &str) {
    let hits = stats.hits.load(Ordering::Relaxed);
    let misses = stats.misses.load(Ordering::Relaxed);
    if hits + misses > 0 {
        tracing::info!(
            hits,
            misses,
            "{role} cache: {hits} hits, {misses} requests sent to the model"
        );
    }
}

fn list_plugins(dirs: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let mut registry = PluginRegistry::new(Sandbox::new(Default::default())?)?;
    for path in dirs {
        registry.add_path(path)?;
    }
    for (manifest, source) in registry.list() {
        let origin = match source {
            PluginSource::Builtin => "built-in".to_string(),
            PluginSource::Bundle(dir) => dir.display().to_string(),
        };
        println!(
            "{:<24} {:<9} wit {:<7} {origin}  {}",
            manifest.name, manifest.kind, manifest.wit, manifest.description
        );
    }
    Ok(())
}
