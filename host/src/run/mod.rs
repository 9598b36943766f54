//! A WoW run: sample responses, extract and grade them, elicit preferences
//! and measure WoW accuracy. State lives in a run directory, so a killed run
//! continues where it stopped.

mod config;
mod elicit;
mod evaluate;
pub mod provenance;
mod sample;
mod store;

use std::path::{Path, PathBuf};

pub use config::RunConfig;
pub use elicit::{
    ACCURACY_JSON, ACCURACY_MARKDOWN, AccuracyTable, MethodResult, PREFERENCES_DIR, PreferenceRecord, elicit,
    render_markdown, write_accuracy_table, write_preference_provenance,
};
pub use evaluate::{
    ALIGNMENT_JSON, ALIGNMENT_MARKDOWN, AlignmentRow, AlignmentTable, ORIGINAL, TaskRows, evaluate_runs,
    render_alignment_markdown,
};
pub use provenance::Provenance;
pub use sample::{Generator, Graders, SampleSummary, load_questions, sample};
pub use store::{QUESTIONS_FILE, RESPONSES_FILE, ResponseLog, ResponseRecord, RunDir, read_responses};

use crate::plugin::PluginError;

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("invalid config {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("{path} is corrupt: {message}; move it away to start that stage again")]
    Corrupt { path: PathBuf, message: String },

    #[error("run {path} {message}")]
    Incomparable { path: PathBuf, message: String },

    #[error("run {path} has no graded responses; sample it first")]
    NoResponses { path: PathBuf },

    #[error("{0} is not a run directory (no config.json); run `wow sample` or `wow run` first")]
    NotARun(PathBuf),

    #[error(
        "run directory {dir} was created with different settings ({fields}); pass the same settings or choose another --out"
    )]
    ConfigMismatch { dir: PathBuf, fields: String },

    #[error("dataset {file} has no valid questions")]
    NoQuestions { file: String },

    #[error("interrupted; run the same command again to continue")]
    Interrupted,

    #[error(transparent)]
    Plugin(#[from] PluginError),
}

impl RunError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        RunError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Opens or creates the run directory for `config`. An existing directory
/// must have been created with the same sampling settings.
pub fn prepare_run_dir(root: &Path, config: &RunConfig) -> Result<RunDir, RunError> {
    let run = RunDir::create(root)?;
    if let Some(previous) = run.read_config()? {
        let differences = previous.sampling_differences(config);
        if !differences.is_empty() {
            return Err(RunError::ConfigMismatch {
                dir: root.to_path_buf(),
                fields: differences.join(", "),
            });
        }
    }
    run.write_config(config)?;
    Ok(run)
}
