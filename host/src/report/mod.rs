//! Paper-style reports over run and evaluation folders: WoW accuracy and
//! alignment tables with SVG figures, as Markdown and as one self-contained
//! HTML page.

mod document;
mod figures;
mod load;
mod render;

use std::path::{Path, PathBuf};

pub use document::{Block, Cell, Table};
pub use figures::Figure;
pub use load::{AlignmentResults, RunResults, graded_responses, load_runs};

use crate::run::{Provenance, RunDir, RunError};

pub const REPORT_MARKDOWN: &str = "report.md";
pub const REPORT_HTML: &str = "report.html";
/// Folder of the report's SVG files, beside `report.md`.
pub const FIGURES_DIR: &str = "figures";

/// Errors of building or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{0} has no results (no wow_accuracy.json, alignment.json or responses.jsonl); pass a folder written by `wow run` or `wow evaluate`"
    )]
    NoResults(PathBuf),

    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("{path} is not valid JSON of its kind: {message}")]
    Corrupt { path: PathBuf, message: String },

    #[error("failed to draw figure {figure}: {message}")]
    Figure { figure: String, message: String },

    #[error(transparent)]
    Run(#[from] RunError),
}

pub const REPORT_PROVENANCE: &str = "provenance.json";

/// A rendered report.
#[derive(Debug, Clone)]
pub struct Report {
    pub blocks: Vec<Block>,
    pub markdown: String,
    pub html: String,
    /// This build, with the folders and the provenance each of their result
    /// files records as its config.
    pub provenance: Provenance,
}

impl Report {
    /// Returns the report's figures, in page order.
    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.blocks.iter().filter_map(|block| match block {
            Block::Figure(figure) => Some(figure),
            _ => None,
        })
    }
}

/// Reads the folders and renders their report.
pub fn build_report(dirs: &[PathBuf]) -> Result<Report, ReportError> {
    let runs = load_runs(dirs)?;
    let blocks = document::build(&runs)?;
    Ok(Report {
        markdown: render::markdown(&blocks),
        html: render::html(&blocks),
        blocks,
        provenance: report_provenance(&runs),
    })
}

fn report_provenance(runs: &[RunResults]) -> Provenance {
    let inputs: Vec<serde_json::Value> = runs
        .iter()
        .map(|run| {
            serde_json::json!({
                "run": run.path,
                "wow_accuracy": run.accuracy.as_ref().map(|table| &table.provenance),
                "alignment": run.alignment.as_ref().map(|alignment| &alignment.table.provenance),
            })
        })
        .collect();
    Provenance::new(&serde_json::json!({ "inputs": inputs }))
}

/// Writes `report.md`, `report.html`, `provenance.json` and
/// `figures/ID.svg` into `out`, each
/// file through a rename so that a kill leaves no half-written file.
pub fn write_report(report: &Report, out: &Path) -> Result<(), ReportError> {
    let dir = RunDir::create(out)?;
    for figure in report.figures() {
        dir.write_atomic(&format!("{FIGURES_DIR}/{}.svg", figure.id), figure.svg.as_bytes())?;
    }
    let provenance = serde_json::to_string_pretty(&report.provenance).expect("provenance serializes");
    dir.write_atomic(REPORT_PROVENANCE, provenance.as_bytes())?;
    dir.write_atomic(REPORT_MARKDOWN, report.markdown.as_bytes())?;
    dir.write_atomic(REPORT_HTML, report.html.as_bytes())?;
    Ok(())
}
