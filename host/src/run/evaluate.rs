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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// Measures each run and checks that all of them answered the same
/// questions with the same task. `runs` pairs a row name with a run
/// directory; the first row is the original model.
pub fn evaluate_runs(runs: &[(String, PathBuf)]) -> Result<AlignmentTable, RunError> {
    let mut task = None;
    let mut question_ids = None;
    let mut rows = Vec::new();

    for (source, root) in runs {
        let run = RunDir::open(root)?;
        let config = run.read_config()?.ok_or_else(|| RunError::NotARun(root.clone()))?;
        let responses = read_responses(&run)?;

        check_same(&mut task, config.task.clone(), root, "task")?;
        let ids: Vec<String> = responses.keys().cloned().collect();
        check_same(&mut question_ids, ids, root, "questions")?;

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
        let quality = answer_quality(&graded).ok_or_else(|| RunError::NoResponses { path: root.clone() })?;
        rows.push(AlignmentRow {
            source: source.clone(),
            run: root.clone(),
            quality,
        });
    }

    Ok(AlignmentTable {
        task: task.unwrap_or_default(),
        rows,
        provenance: None,
    })
}

fn check_same<T: PartialEq>(slot: &mut Option<T>, value: T, root: &PathBuf, field: &str) -> Result<(), RunError> {
    match slot {
        Some(expected) if *expected != value => Err(RunError::Incomparable {
            path: root.clone(),
            message: format!("differs from the first run in its {field}; evaluate runs sampled on the same questions"),
        }),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// Renders the table: rows ORIGINAL then each preference source, columns
/// p_wrong, Acc and ECE of the task; the best value of each column in bold.
pub fn render_alignment_markdown(table: &AlignmentTable) -> String {
    let best_p_wrong = best(table, |q| q.p_wrong, f64::max);
    let best_accuracy = best(table, |q| Some(q.accuracy), f64::max);
    let best_ece = best(table, |q| Some(q.ece), f64::min);

    let mut out = format!(
        "# Alignment: {}\n\n| source | p_wrong | Acc | ECE |\n|---|---:|---:|---:|\n",
        table.task
    );
    for row in &table.rows {
        let q = &row.quality;
        writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.source,
            cell(q.p_wrong, best_p_wrong),
            cell(Some(q.accuracy), best_accuracy),
            cell(Some(q.ece), best_ece)
        )
        .unwrap();
    }
    out
}

fn best(
    table: &AlignmentTable,
    value: impl Fn(&AnswerQuality) -> Option<f64>,
    pick: fn(f64, f64) -> f64,
) -> Option<f64> {
    table.rows.iter().filter_map(|row| value(&row.quality)).reduce(pick)
}

fn cell(value: Option<f64>, best: Option<f64>) -> String {
    match value {
        None => "n/a".into(),
        Some(v) if Some(v) == best => format!("**{v:.3}**"),
        Some(v) => format!("{v:.3}"),
    }
}
