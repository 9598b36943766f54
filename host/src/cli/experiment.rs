//! `wow experiment`: runs every cell of an experiment file that is not
//! finished yet, each as a `wow` child process, then writes the report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;

use super::progress;
use crate::experiment::{self, Cell, CellGroup, Experiment, ExperimentError, SAMPLED_MARKER, Stage};
use crate::plugin::{PluginKind, PluginRegistry, Sandbox};

/// Arguments of `wow experiment`.
#[derive(Debug, Clone, ClapArgs)]
pub struct ExperimentArgs {
    /// Experiment file (TOML), such as experiments/small-cpu.toml.
    pub file: PathBuf,

    /// Folder for the experiment's cells and report; rerun with the same
    /// folder to finish an interrupted experiment.
    #[arg(long, short)]
    pub out: PathBuf,

    /// Check the file and its plugins and list the cells, running nothing.
    #[arg(long)]
    pub check: bool,
}

/// Runs the unfinished cells in order and reports the whole experiment.
pub fn experiment_command(args: &ExperimentArgs, stop: &AtomicBool) -> anyhow::Result<()> {
    let experiment = Experiment::from_file(&args.file)?;
    check_plugins(&experiment, &args.file)?;
    let missing = missing_data(&experiment);
    let groups = experiment::plan(&experiment, &args.out);

    if args.check {
        print_plan(&groups);
        for error in &missing {
            println!("{:<8} {error}", "missing");
        }
        return Ok(());
    }
    if let Some(error) = missing.into_iter().next() {
        return Err(error.into());
    }

    let mut report_inputs = Vec::new();
    let cells = groups
        .iter()
        .map(|group| 1 + group.judges.len() + group.train.len() * 2 + 2)
        .sum::<usize>();
    let bar = progress::bar("cells", cells);
    for group in &groups {
        run_group(group, &args.out, &bar, stop, &mut report_inputs)?;
    }
    bar.finish_and_clear();

    let mut report = vec!["report".to_string()];
    report.extend(report_inputs.iter().map(|dir| dir.display().to_string()));
    report.extend(["--out".to_string(), args.out.join("report").display().to_string()]);
    run_wow(&report).context("failed to write the experiment report")?;
    println!(
        "experiment {} finished: {}",
        experiment.name,
        args.out.join("report/report.md").display()
    );
    Ok(())
}

fn run_group(
    group: &CellGroup,
    out: &Path,
    bar: &indicatif::ProgressBar,
    stop: &AtomicBool,
    report_inputs: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    run_cell(&group.elicit, bar, stop)?;
    report_inputs.push(group.elicit.dir.clone());
    for judge in &group.judges {
        run_cell(judge, bar, stop)?;
        report_inputs.push(judge.dir.clone());
    }

    let mut trained = Vec::new();
    for cell in &group.train {
        if run_cell(cell, bar, stop)? {
            trained.push(cell.id.as_str());
        }
    }

    let (Some(original), Some(evaluation_dir)) = (&group.heldout_original, &group.evaluation_dir) else {
        return Ok(());
    };
    run_cell(original, bar, stop)?;
    let mut aligned = Vec::new();
    for (train_id, cell) in &group.heldout_aligned {
        if trained.contains(&train_id.as_str()) {
            run_cell(cell, bar, stop)?;
            aligned.push(cell);
        } else {
            bar.inc(1);
        }
    }
    let evaluate = experiment::evaluate_cell(evaluation_dir, out, original, &aligned);
    if aligned.is_empty() {
        tracing::warn!(cell = %evaluate.id, "no adapter was trained, so there is nothing to evaluate");
        bar.inc(1);
        return Ok(());
    }
    // The set of adapters may have grown since an earlier evaluation.
    let _ = std::fs::remove_file(&evaluate.marker);
    run_cell(&evaluate, bar, stop)?;
    report_inputs.push(evaluate.dir);
    Ok(())
}

/// Runs a cell unless it is finished; returns whether its output exists. A
/// training cell whose preference file has no pairs is skipped.
fn run_cell(cell: &Cell, bar: &indicatif::ProgressBar, stop: &AtomicBool) -> anyhow::Result<bool> {
    bar.set_message(cell.id.clone());
    if cell.is_finished() {
        tracing::info!(cell = %cell.id, "already finished");
        bar.inc(1);
        return Ok(true);
    }
    if stop.load(Ordering::SeqCst) {
        bail!(
            "interrupted before cell {}; run the same command again to continue",
            cell.id
        );
    }
    if let Some(preferences) = &cell.preferences
        && preference_pairs(preferences)? == 0
    {
        tracing::warn!(cell = %cell.id, preferences = %preferences.display(), "skipping training: the preference file has no pairs");
        bar.inc(1);
        return Ok(false);
    }

    tracing::info!(cell = %cell.id, "running wow {}", cell.args.join(" "));
    run_wow(&cell.args).with_context(|| {
        format!(
            "cell {} failed; its partial output is in {}; run the same command again to continue",
            cell.id,
            cell.dir.display()
        )
    })?;
    if cell.stage == Stage::Heldout {
        std::fs::write(cell.dir.join(SAMPLED_MARKER), b"")
            .with_context(|| format!("failed to mark {} finished", cell.dir.display()))?;
    }
    bar.inc(1);
    Ok(true)
}

fn preference_pairs(path: &Path) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "preference file {} not found; the elicitation cell did not write it",
            path.display()
        )
    })?;
    Ok(text.lines().filter(|line| !line.trim().is_empty()).count())
}

/// Runs this same `wow` binary as a child process with `args`.
pub(super) fn run_wow(args: &[String]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("failed to locate the wow binary")?;
    let status = Command::new(&exe)
        .args(args)
        .status()
        .with_context(|| format!("failed to start {}", exe.display()))?;
    if !status.success() {
        bail!("wow {} exited with {status}", args.first().map_or("", String::as_str));
    }
    Ok(())
}

/// Checks that every task and elicitor plugin the file names exists, before
/// any cell runs.
fn check_plugins(experiment: &Experiment, file: &Path) -> anyhow::Result<()> {
    let mut registry = PluginRegistry::new(Sandbox::new(experiment.limits.clone())?)?;
    for dir in &experiment.plugins {
        registry.add_dir(dir)?;
    }
    let available: Vec<(String, PluginKind)> = registry
        .list()
        .map(|(manifest, _)| (manifest.name.clone(), manifest.kind))
        .collect();

    // An elicitor entry may carry settings after the plugin name.
    let elicitor_plugins: Vec<String> = experiment
        .elicitors
        .iter()
        .map(|text| text.parse::<crate::plugin::ElicitorSpec>().map(|spec| spec.plugin))
        .collect::<Result<_, _>>()?;
    let wanted = experiment
        .tasks
        .iter()
        .map(|task| (task.plugin.as_str(), PluginKind::Task))
        .chain(
            elicitor_plugins
                .iter()
                .map(|name| (name.as_str(), PluginKind::Elicitor)),
        );
    let unknown: Vec<String> = wanted
        .filter(|(name, kind)| {
            !available
                .iter()
                .any(|(have, have_kind)| have == name && have_kind == kind)
        })
        .map(|(name, kind)| format!("{kind} {name}"))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let available = available
        .iter()
        .map(|(name, kind)| format!("{kind} {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ExperimentError::UnknownPlugins {
        path: file.to_path_buf(),
        unknown: unknown.join(", "),
        available,
    }
    .into())
}

/// Lists the datasets and task files of the experiment that do not exist.
fn missing_data(experiment: &Experiment) -> Vec<ExperimentError> {
    let mut missing = Vec::new();
    for task in &experiment.tasks {
        for path in std::iter::once(&task.data).chain(task.files.values()) {
            if !path.is_file() {
                missing.push(ExperimentError::MissingData {
                    task: task.label().to_string(),
                    data: path.clone(),
                });
            }
        }
    }
    missing
}

fn print_plan(groups: &[CellGroup]) {
    let cells = groups.iter().flat_map(|group| {
        std::iter::once(&group.elicit)
            .chain(&group.judges)
            .chain(&group.train)
            .chain(&group.heldout_original)
            .chain(group.heldout_aligned.iter().map(|(_, cell)| cell))
    });
    for cell in cells {
        let state = if cell.is_finished() { "finished" } else { "to run" };
        println!("{state:<8} {:<60} wow {}", cell.id, cell.args.join(" "));
    }
    for dir in groups.iter().filter_map(|group| group.evaluation_dir.as_ref()) {
        println!("{:<8} {}", "evaluate", dir.display());
    }
}
