//! Reading the results a report draws on from run and evaluation folders.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::ReportError;
use crate::metrics::GradedResponse;
use crate::run::{ACCURACY_JSON, ALIGNMENT_JSON, AccuracyTable, AlignmentTable, RESPONSES_FILE, RunDir};

/// Results found in one folder given to `wow report`.
#[derive(Debug, Clone)]
pub struct RunResults {
    /// Folder name, used as the run's label.
    pub name: String,
    pub path: PathBuf,
    /// Model file that generated and judged the responses.
    pub evaluator: String,
    pub accuracy: Option<AccuracyTable>,
    pub alignment: Option<AlignmentResults>,
    /// The folder's own graded responses; empty for an evaluation folder.
    pub responses: Vec<GradedResponse>,
}

/// An `alignment.json` with the graded responses of each of its rows.
#[derive(Debug, Clone)]
pub struct AlignmentResults {
    pub table: AlignmentTable,
    /// Responses per row, in row order; `None` where the row's run folder
    /// can no longer be read.
    pub responses: Vec<Option<Vec<GradedResponse>>>,
}

/// Reads every folder; a folder without any result is an error.
pub fn load_runs(dirs: &[PathBuf]) -> Result<Vec<RunResults>, ReportError> {
    dirs.iter().map(|dir| load_run(dir)).collect()
}

fn load_run(dir: &Path) -> Result<RunResults, ReportError> {
    let accuracy: Option<AccuracyTable> = read_json(&dir.join(ACCURACY_JSON))?;
    let alignment = match read_json::<AlignmentTable>(&dir.join(ALIGNMENT_JSON))? {
        Some(table) => Some(alignment_results(dir, table)),
        None => None,
    };
    let responses = if dir.join(RESPONSES_FILE).is_file() {
        graded_responses(dir)?
    } else {
        Vec::new()
    };
    if accuracy.is_none() && alignment.is_none() && responses.is_empty() {
        return Err(ReportError::NoResults(dir.to_path_buf()));
    }

    Ok(RunResults {
        name: folder_name(dir),
        path: dir.to_path_buf(),
        evaluator: evaluator(dir),
        accuracy,
        alignment,
        responses,
    })
}

fn alignment_results(dir: &Path, table: AlignmentTable) -> AlignmentResults {
    let responses = table
        .rows
        .iter()
        .map(|row| {
            let run = resolve_row_run(dir, &row.run)?;
            match graded_responses(&run) {
                Ok(responses) => Some(responses),
                Err(error) => {
                    tracing::warn!(source = %row.source, run = %run.display(), "leaving the row out of the figures: {error}");
                    None
                }
            }
        })
        .collect();
    AlignmentResults { table, responses }
}

/// Finds a row's run folder: as recorded (relative to the directory `wow
/// evaluate` ran in), else relative to the evaluation folder's parent.
fn resolve_row_run(evaluation_dir: &Path, recorded: &Path) -> Option<PathBuf> {
    let candidates = [
        Some(recorded.to_path_buf()),
        evaluation_dir.parent().map(|parent| parent.join(recorded)),
        recorded
            .file_name()
            .and_then(|name| Some(evaluation_dir.parent()?.join(name))),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|path| path.join(RESPONSES_FILE).is_file());
    if found.is_none() {
        tracing::warn!(run = %recorded.display(), "run folder of an alignment row not found; its figures are left out");
    }
    found
}

/// Reads a run's responses as the metrics see them, leaving out responses
/// whose grading failed (as `wow evaluate` does).
pub fn graded_responses(dir: &Path) -> Result<Vec<GradedResponse>, ReportError> {
    let run = RunDir::create(dir)?;
    let responses = crate::run::read_responses(&run)?;
    Ok(responses
        .values()
        .flatten()
        .filter(|r| r.error.is_none())
        .map(|r| GradedResponse {
            correctness: r.correctness,
            correct: r.correct,
            mean_nll: r.mean_nll,
        })
        .collect())
}

fn evaluator(dir: &Path) -> String {
    let config = RunDir::open(dir).ok().and_then(|run| run.read_config().ok().flatten());
    match config.and_then(|config| config.model) {
        Some(model) => model.file_name().map_or_else(
            || model.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        ),
        None => crate::model::DEFAULT_MODEL_FILE.to_string(),
    }
}

fn folder_name(dir: &Path) -> String {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .file_name()
        .map_or_else(|| dir.display().to_string(), |name| name.to_string_lossy().into_owned())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ReportError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReportError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| ReportError::Corrupt {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
}
