//! The report's content as a list of blocks, built once and rendered both as
//! Markdown and as HTML, so the two always show the same numbers.

use std::collections::BTreeSet;

use super::ReportError;
use super::figures::{self, Figure, Series};
use super::load::{AlignmentResults, RunResults};
use crate::metrics::AnswerQuality;
use crate::run::provenance::GIT_COMMIT;
use crate::run::{ACCURACY_JSON, ALIGNMENT_JSON, AccuracyTable, Provenance};

/// One block of the report.
#[derive(Debug, Clone)]
pub enum Block {
    Heading { level: u8, text: String },
    Paragraph(String),
    Table(Table),
    Figure(Figure),
}

/// A table with a header row; cells marked `best` are shown in bold.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    /// Columns holding numbers, aligned right.
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub best: bool,
}

impl Cell {
    fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            best: false,
        }
    }
}

/// Builds the report's blocks from the loaded folders.
pub fn build(runs: &[RunResults]) -> Result<Vec<Block>, ReportError> {
    let mut blocks = vec![heading(1, "wow report"), Block::Table(inputs_table(runs))];
    accuracy_section(runs, &mut blocks)?;
    alignment_section(runs, &mut blocks)?;
    provenance_section(runs, &mut blocks);
    Ok(blocks)
}

/// Adds the provenance recorded in each input's result files, and the build
/// that rendered the report.
fn provenance_section(runs: &[RunResults], blocks: &mut Vec<Block>) {
    blocks.push(heading(2, "Provenance"));
    blocks.push(Block::Paragraph(format!(
        "Rendered by wow {} at commit {}. provenance.json beside this report has the full records.",
        env!("CARGO_PKG_VERSION"),
        GIT_COMMIT
    )));

    let mut rows = Vec::new();
    for run in runs {
        let recorded = [
            (ACCURACY_JSON, run.accuracy.as_ref().and_then(|t| t.provenance.as_ref())),
            (
                ALIGNMENT_JSON,
                run.alignment.as_ref().and_then(|a| a.table.provenance.as_ref()),
            ),
        ];
        for (file, provenance) in recorded {
            let present = match file {
                ACCURACY_JSON => run.accuracy.is_some(),
                _ => run.alignment.is_some(),
            };
            if !present {
                continue;
            }
            rows.push(provenance_row(&run.name, file, provenance));
        }
    }
    if rows.is_empty() {
        return;
    }
    blocks.push(Block::Table(Table {
        header: ["run", "file", "wow", "commit", "model sha256", "plugins", "seeds"]
            .map(String::from)
            .to_vec(),
        numeric: vec![false; 7],
        rows,
    }));
}

fn provenance_row(run: &str, file: &str, provenance: Option<&Provenance>) -> Vec<Cell> {
    let Some(provenance) = provenance else {
        let mut row = vec![Cell::plain(run), Cell::plain(file), Cell::plain("not recorded")];
        row.extend((0..4).map(|_| Cell::plain("")));
        return row;
    };
    let short = |hash: &str| hash.chars().take(12).collect::<String>();
    let plugins: Vec<String> = provenance
        .plugins
        .iter()
        .map(|(name, digest)| format!("{name} {}", short(&digest.sha256)))
        .collect();
    let seeds: Vec<String> = provenance
        .seeds
        .iter()
        .map(|(role, seed)| format!("{role}={seed}"))
        .collect();
    vec![
        Cell::plain(run),
        Cell::plain(file),
        Cell::plain(&provenance.wow_version),
        Cell::plain(short(&provenance.git_commit)),
        Cell::plain(
            provenance
                .model
                .as_ref()
                .map_or("n/a".into(), |model| short(&model.sha256)),
        ),
        Cell::plain(plugins.join(", ")),
        Cell::plain(seeds.join(", ")),
    ]
}

fn heading(level: u8, text: impl Into<String>) -> Block {
    Block::Heading {
        level,
        text: text.into(),
    }
}

fn inputs_table(runs: &[RunResults]) -> Table {
    let rows = runs
        .iter()
        .map(|run| {
            let mut contents = Vec::new();
            if let Some(table) = &run.accuracy {
                contents.push(format!("WoW accuracy ({}, {} questions)", table.task, table.questions));
            }
            if let Some(alignment) = &run.alignment {
                contents.push(format!(
                    "alignment ({}, {} models)",
                    alignment.table.task,
                    alignment.table.rows.len()
                ));
            }
            if !run.responses.is_empty() {
                contents.push(format!("{} graded responses", run.responses.len()));
            }
            vec![
                Cell::plain(&run.name),
                Cell::plain(run.path.display().to_string()),
                Cell::plain(contents.join("; ")),
            ]
        })
        .collect();
    Table {
        header: vec!["run".into(), "folder".into(), "contents".into()],
        numeric: vec![false; 3],
        rows,
    }
}

fn accuracy_section(runs: &[RunResults], blocks: &mut Vec<Block>) -> Result<(), ReportError> {
    blocks.push(heading(2, "WoW accuracy"));
    let with_tables: Vec<(&RunResults, &AccuracyTable)> = runs
        .iter()
        .filter_map(|run| Some((run, run.accuracy.as_ref()?)))
        .collect();
    if with_tables.is_empty() {
        blocks.push(Block::Paragraph(
            "No folder has a WoW accuracy table (wow_accuracy.json); run `wow elicit --out RUN_DIR` on a sampled run."
                .into(),
        ));
        return Ok(());
    }

    blocks.push(Block::Paragraph(
        "Share of wrong-wrong pairs whose elicited order matches the proxy-correctness order, per task, evaluator \
         model, method and margin (MX keeps the X% of pairs with the largest score gaps); ties count as wrong."
            .into(),
    ));
    blocks.push(Block::Table(accuracy_table(&with_tables)));
    for (evaluator, table) in evaluator_tables(&with_tables) {
        blocks.push(heading(3, format!("Evaluator {evaluator}")));
        blocks.push(Block::Table(table));
    }
    for (index, (run, table)) in with_tables.iter().enumerate() {
        let title = format!("WoW accuracy by margin: {} ({})", table.task, run.name);
        blocks.push(Block::Figure(figures::accuracy_by_margin(
            &format!("wow-accuracy-{}", index + 1),
            &title,
            table,
        )?));
    }
    Ok(())
}

/// Builds one row per (task, evaluator, method) with, for each margin, the
/// accuracy and the number of kept pairs.
fn accuracy_table(runs: &[(&RunResults, &AccuracyTable)]) -> Table {
    let margins: BTreeSet<u32> = runs
        .iter()
        .flat_map(|(_, table)| table.methods.iter().flat_map(|m| m.margins.iter().map(|r| r.margin)))
        .collect();
    let margins: Vec<u32> = margins.into_iter().rev().collect();

    let mut header = vec!["task".to_string(), "evaluator".into(), "method".into()];
    for margin in &margins {
        header.push(format!("M{margin}"));
        header.push(format!("pairs M{margin}"));
    }
    let mut numeric = vec![false; 3];
    numeric.extend(std::iter::repeat_n(true, margins.len() * 2));

    let mut rows = Vec::new();
    for (run, table) in runs {
        for method in &table.methods {
            let mut row = vec![
                Cell::plain(&table.task),
                Cell::plain(method.evaluator.as_deref().unwrap_or(&run.evaluator)),
                Cell::plain(&method.method),
            ];
            for margin in &margins {
                let result = method.margins.iter().find(|r| r.margin == *margin);
                let accuracy = result
                    .and_then(|r| r.accuracy)
                    .map_or("n/a".to_string(), |a| format!("{:.1}%", a * 100.0));
                row.push(Cell::plain(accuracy));
                row.push(Cell::plain(result.map_or("n/a".to_string(), |r| r.pairs.to_string())));
            }
            rows.push(row);
        }
    }
    Table { header, numeric, rows }
}

/// Builds one table per evaluator model, in the layout of published WoW
/// accuracy tables: a row per method and margin, a column per task, each
/// cell the accuracy with the number of kept pairs.
fn evaluator_tables(runs: &[(&RunResults, &AccuracyTable)]) -> Vec<(String, Table)> {
    let mut evaluators = BTreeSet::new();
    let mut tasks = BTreeSet::new();
    for (run, table) in runs {
        tasks.insert(table.task.clone());
        for method in &table.methods {
            evaluators.insert(method.evaluator.clone().unwrap_or_else(|| run.evaluator.clone()));
        }
    }

    let mut tables = Vec::new();
    for evaluator in evaluators {
        let mut header = vec!["method".to_string(), "margin".into()];
        header.extend(tasks.iter().cloned());
        let mut numeric = vec![false; 2];
        numeric.extend(std::iter::repeat_n(true, tasks.len()));

        let mut rows: Vec<Vec<Cell>> = Vec::new();
        let mut row_keys: Vec<(String, u32)> = Vec::new();
        for (run, table) in runs {
            for method in table
                .methods
                .iter()
                .filter(|m| m.evaluator.as_deref().unwrap_or(&run.evaluator) == evaluator)
            {
                for result in &method.margins {
                    let key = (method.method.clone(), result.margin);
                    let index = match row_keys.iter().position(|k| *k == key) {
                        Some(index) => index,
                        None => {
                            row_keys.push(key);
                            let mut row = vec![Cell::plain(&method.method), Cell::plain(format!("M{}", result.margin))];
                            row.extend(tasks.iter().map(|_| Cell::plain("n/a")));
                            rows.push(row);
                            rows.len() - 1
                        }
                    };
                    let column = 2 + tasks.iter().position(|t| *t == table.task).expect("task was collected");
                    let accuracy = result
                        .accuracy
                        .map_or("n/a".to_string(), |a| format!("{:.1}%", a * 100.0));
                    rows[index][column] = Cell::plain(format!("{accuracy} ({})", result.pairs));
                }
            }
        }
        tables.push((evaluator, Table { header, numeric, rows }));
    }
    tables
}

fn alignment_section(runs: &[RunResults], blocks: &mut Vec<Block>) -> Result<(), ReportError> {
    blocks.push(heading(2, "Alignment"));
    let mut figure_index = 0;
    let mut next_id = |kind: &str| {
        figure_index += 1;
        format!("{kind}-{figure_index}")
    };

    for run in runs.iter().filter(|run| run.alignment.is_some()) {
        let alignment = run.alignment.as_ref().expect("filtered on alignment");
        blocks.push(heading(3, format!("{}: {}", alignment.table.task, run.name)));
        blocks.push(Block::Table(alignment_table(alignment)));
        alignment_figures(run, alignment, &mut next_id, blocks)?;
    }

    for run in runs.iter().filter(|run| run.alignment.is_none()) {
        if is_evaluated_elsewhere(run, runs) || has_task_alignment(run, runs) {
            continue;
        }
        blocks.push(heading(3, format!("{}: no alignment results", run.name)));
        blocks.push(Block::Paragraph(format!(
            "{} has no alignment.json. To add one: train with `wow align`, sample held-out questions with and \
             without `--adapter`, compare them with `wow evaluate`, and pass its --out folder to `wow report`.",
            run.name
        )));
        if run.responses.is_empty() {
            continue;
        }
        blocks.push(Block::Paragraph(format!(
            "Before alignment only: the {} graded responses of this run.",
            run.responses.len()
        )));
        let series = [Series {
            name: &run.name,
            responses: &run.responses,
        }];
        let title = format!("Before alignment: {}", run.name);
        blocks.push(Block::Figure(figures::reliability_diagram(
            &next_id("reliability"),
            &format!("Reliability: {}", run.name),
            &series,
        )?));
        blocks.push(Block::Figure(figures::wrong_correctness_histogram(
            &next_id("wrong-correctness"),
            &title,
            &series,
        )?));
    }
    Ok(())
}

/// Returns whether another input has an alignment table for this run's
/// task, as an experiment's evaluation has for its elicitation run.
fn has_task_alignment(run: &RunResults, runs: &[RunResults]) -> bool {
    let Some(task) = run.accuracy.as_ref().map(|table| &table.task) else {
        return false;
    };
    runs.iter()
        .filter_map(|other| other.alignment.as_ref())
        .any(|alignment| &alignment.table.task == task)
}

/// Returns whether another input's alignment table already shows this run.
fn is_evaluated_elsewhere(run: &RunResults, runs: &[RunResults]) -> bool {
    let same = |path: &std::path::Path| {
        let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
        canonical(path).is_some() && canonical(path) == canonical(&run.path)
    };
    runs.iter()
        .filter_map(|other| other.alignment.as_ref())
        .any(|alignment| alignment.table.rows.iter().any(|row| same(&row.run)))
}

fn alignment_figures(
    run: &RunResults,
    alignment: &AlignmentResults,
    next_id: &mut impl FnMut(&str) -> String,
    blocks: &mut Vec<Block>,
) -> Result<(), ReportError> {
    let series: Vec<Series> = alignment
        .table
        .rows
        .iter()
        .zip(&alignment.responses)
        .filter_map(|(row, responses)| {
            Some(Series {
                name: &row.source,
                responses: responses.as_deref()?,
            })
        })
        .collect();
    let missing: Vec<&str> = alignment
        .table
        .rows
        .iter()
        .zip(&alignment.responses)
        .filter(|(_, responses)| responses.is_none())
        .map(|(row, _)| row.source.as_str())
        .collect();
    if !missing.is_empty() {
        blocks.push(Block::Paragraph(format!(
            "The run folders of {} were not found, so the figures leave them out.",
            missing.join(", ")
        )));
    }
    if series.is_empty() {
        return Ok(());
    }

    let task = &alignment.table.task;
    blocks.push(Block::Figure(figures::reliability_diagram(
        &next_id("reliability"),
        &format!("Reliability before and after alignment: {task} ({})", run.name),
        &series,
    )?));
    blocks.push(Block::Figure(figures::wrong_correctness_histogram(
        &next_id("wrong-correctness"),
        &format!("Wrong answers before and after alignment: {task} ({})", run.name),
        &series,
    )?));
    Ok(())
}

/// Rows ORIGINAL then each preference source; p_wrong and Acc are best when
/// highest, ECE when lowest.
fn alignment_table(alignment: &AlignmentResults) -> Table {
    let rows_quality: Vec<&AnswerQuality> = alignment.table.rows.iter().map(|row| &row.quality).collect();
    let best_p_wrong = rows_quality.iter().filter_map(|q| q.p_wrong).reduce(f64::max);
    let best_accuracy = rows_quality.iter().map(|q| q.accuracy).reduce(f64::max);
    let best_ece = rows_quality.iter().map(|q| q.ece).reduce(f64::min);

    let number = |value: Option<f64>, best: Option<f64>| match value {
        None => Cell::plain("n/a"),
        Some(v) => Cell {
            text: format!("{v:.3}"),
            best: rows_quality.len() > 1 && Some(v) == best,
        },
    };
    let rows = alignment
        .table
        .rows
        .iter()
        .map(|row| {
            let q = &row.quality;
            vec![
                Cell::plain(&row.source),
                number(q.p_wrong, best_p_wrong),
                number(Some(q.accuracy), best_accuracy),
                number(Some(q.ece), best_ece),
                Cell::plain(q.responses.to_string()),
            ]
        })
        .collect();
    Table {
        header: vec![
            "source".into(),
            "p_wrong".into(),
            "Acc".into(),
            "ECE".into(),
            "responses".into(),
        ],
        numeric: vec![false, true, true, true, true],
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MarginResult;
    use crate::run::MethodResult;

    fn method(name: &str, evaluator: &str, accuracy: f64, pairs: usize) -> MethodResult {
        MethodResult {
            method: name.into(),
            candidate_pairs: pairs,
            margins: vec![
                MarginResult {
                    margin: 100,
                    pairs,
                    correct: (accuracy * pairs as f64) as usize,
                    accuracy: Some(accuracy),
                },
                MarginResult {
                    margin: 50,
                    pairs: pairs / 2,
                    correct: 0,
                    accuracy: None,
                },
            ],
            failed_questions: Vec::new(),
            counts: Default::default(),
            evaluator: Some(evaluator.into()),
        }
    }

    fn run(task: &str, methods: Vec<MethodResult>) -> (RunResults, AccuracyTable) {
        let results = RunResults {
            name: task.into(),
            path: task.into(),
            evaluator: "generator.gguf".into(),
            accuracy: None,
            alignment: None,
            responses: Vec::new(),
        };
        let table = AccuracyTable {
            task: task.into(),
            questions: 1,
            methods,
            provenance: None,
        };
        (results, table)
    }

    #[test]
    fn evaluator_tables_pivot_tasks_into_columns() {
        let path = run(
            "shortest-path",
            vec![
                method("pairwise", "judge-a", 0.5, 10),
                method("score", "judge-b", 0.25, 8),
            ],
        );
        let flow = run("max-flow", vec![method("pairwise", "judge-a", 0.75, 4)]);
        let runs = [(&path.0, &path.1), (&flow.0, &flow.1)];

        let tables = evaluator_tables(&runs);
        let names: Vec<&str> = tables.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["judge-a", "judge-b"]);

        let (_, judge_a) = &tables[0];
        assert_eq!(judge_a.header, ["method", "margin", "max-flow", "shortest-path"]);
        let cells = |row: &Vec<Cell>| row.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
        assert_eq!(cells(&judge_a.rows[0]), ["pairwise", "M100", "75.0% (4)", "50.0% (10)"]);
        assert_eq!(cells(&judge_a.rows[1]), ["pairwise", "M50", "n/a (2)", "n/a (5)"]);

        let (_, judge_b) = &tables[1];
        assert_eq!(judge_b.rows.len(), 2);
        assert_eq!(cells(&judge_b.rows[0]), ["score", "M100", "n/a", "25.0% (8)"]);
    }
}
