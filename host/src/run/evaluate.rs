//! Evaluation of aligned models against the original: p_wrong, accuracy and
//! ECE of run directories sampled on the same held-out questions.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::RunError;
use super::provenance::Provenance;
use super::store::{RunDir, read_responses};
use crate::metrics::{AnswerQuality, GradedResponse, answer_quality};

pub const ALIGNMENT_JSON: &str = "alignment.json";
pub const ALIGNMENT_MARKDOWN: &str = "alignment.md";

/// Row name of the model without an adapter.
pub const ORIGINAL: &str = "ORIGINAL";

/// One row of the alignment table: a model and its answer quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignmentRow {
    pub source: String,
    pub run: PathBuf,
    pub quality: AnswerQuality,
}

/// Contents of `alignment.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignmentTable {
    pub task: String,
    pub rows: Vec<AlignmentRow>,
    /// Other tasks the same models were sampled on, showing how an adapter trained
    /// on `task` generalises; rows are matched by source name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer: Vec<TaskRows>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// The rows of one further task of an alignment table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRows {
    pub task: String,
    pub rows: Vec<AlignmentRow>,
}

/// Measures each run. `runs` pairs a row name with a run directory, the
/// original model first. Runs are grouped by task in order of appearance:
/// the first task fills the table's rows, later tasks its transfer columns.
/// Within a task, every run must have answered the same questions.
pub fn evaluate_runs(runs: &[(String, PathBuf)]) -> Result<AlignmentTable, RunError> {
    let mut groups: Vec<(TaskRows, Vec<String>)> = Vec::new();

    for (source, root) in runs {
        let run = RunDir::open(root)?;
        let config = run.read_config()?.ok_or_else(|| RunError::NotARun(root.clone()))?;
        let responses = read_responses(&run)?;
        let ids: Vec<String> = responses.keys().cloned().collect();

        let index = match groups.iter().position(|(group, _)| group.task == config.task) {
            Some(index) => index,
            None => {
                let group = TaskRows {
                    task: config.task.clone(),
                    rows: Vec::new(),
                };
                groups.push((group, ids.clone()));
                groups.len() - 1
            }
        };
        let (group, question_ids) = &mut groups[index];
        if *question_ids != ids {
            return Err(RunError::Incomparable {
                path: root.clone(),
                message: format!(
                    "answered other {} questions than the first run of that task; evaluate runs sampled on the same questions",
                    config.task
                ),
            });
        }

        let quality = run_quality(&responses).ok_or_else(|| RunError::NoResponses { path: root.clone() })?;
        group.rows.push(AlignmentRow {
            source: source.clone(),
            run: root.clone(),
            quality,
        });
    }

    let mut tasks = groups.into_iter().map(|(group, _)| group);
    let first = tasks.next().unwrap_or(TaskRows {
        task: String::new(),
        rows: Vec::new(),
    });
    Ok(AlignmentTable {
        task: first.task,
        rows: first.rows,
        transfer: tasks.collect(),
        provenance: None,
    })
}

fn run_quality(responses: &std::collections::BTreeMap<String, Vec<super::ResponseRecord>>) -> Option<AnswerQuality> {
    let graded: Vec<GradedResponse> = responses
        .values()
        .flatten()
        .filter(|r| r.error.is_none())
        .map(|r| GradedResponse {
            correctness: r.correctness,
            correct: r.correct,
            mean_nll: r.mean_nll,
        })
        .collect();
    answer_quality(&graded)
}

/// Renders the table: rows ORIGINAL then each preference source, columns
/// p_wrong, Acc and ECE per task (the training task first); the best value
/// of each column in bold.
pub fn render_alignment_markdown(table: &AlignmentTable) -> String {
    let primary = TaskRows {
        task: table.task.clone(),
        rows: table.rows.clone(),
    };
    let tasks: Vec<&TaskRows> = std::iter::once(&primary).chain(&table.transfer).collect();
    let title: Vec<&str> = tasks.iter().map(|t| t.task.as_str()).collect();

    let mut out = format!("# Alignment: {}\n\n| source |", title.join(", "));
    for task in &tasks {
        if tasks.len() == 1 {
            out.push_str(" p_wrong | Acc | ECE |");
        } else {
            write!(out, " {0} p_wrong | {0} Acc | {0} ECE |", task.task).unwrap();
        }
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(3 * tasks.len()));
    out.push('\n');

    let mut sources: Vec<&str> = Vec::new();
    for row in tasks.iter().flat_map(|t| &t.rows) {
        if !sources.contains(&row.source.as_str()) {
            sources.push(&row.source);
        }
    }
    for source in sources {
        write!(out, "| {source} |").unwrap();
        for task in &tasks {
            out.push_str(&task_cells(task, source));
        }
        out.push('\n');
    }
    out
}

/// Renders the three cells of `source` in one task, `n/a` when it has no row.
fn task_cells(task: &TaskRows, source: &str) -> String {
    let best_p_wrong = best(&task.rows, |q| q.p_wrong, f64::max);
    let best_accuracy = best(&task.rows, |q| Some(q.accuracy), f64::max);
    let best_ece = best(&task.rows, |q| Some(q.ece), f64::min);
    match task.rows.iter().find(|row| row.source == source) {
        None => " n/a | n/a | n/a |".to_string(),
        Some(row) => {
            let q = &row.quality;
            format!(
                " {} | {} | {} |",
                cell(q.p_wrong, best_p_wrong),
                cell(Some(q.accuracy), best_accuracy),
                cell(Some(q.ece), best_ece)
            )
        }
    }
}

fn best(
    rows: &[AlignmentRow],
    value: impl Fn(&AnswerQuality) -> Option<f64>,
    pick: fn(f64, f64) -> f64,
) -> Option<f64> {
    rows.iter().filter_map(|row| value(&row.quality)).reduce(pick)
}

fn cell(value: Option<f64>, best: Option<f64>) -> String {
    match value {
        None => "n/a".into(),
        Some(v) if Some(v) == best => format!("**{v:.3}**"),
        Some(v) => format!("{v:.3}"),
    }
}
