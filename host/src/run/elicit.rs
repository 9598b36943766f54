//! The elicitation stage: each elicitor orders the wrong-wrong pairs of
//! every question, and the run gets WoW accuracy tables and preference files.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::RunError;
use super::provenance::Provenance;
use super::store::{ResponseRecord, RunDir};
use crate::metrics::{JudgedPair, MarginResult, Verdict, margin_results, select_margin};
use crate::model::Message;
use crate::plugin::{Candidate, ElicitorPlugin, Judgement, Question};

pub const ACCURACY_JSON: &str = "wow_accuracy.json";
pub const ACCURACY_MARKDOWN: &str = "wow_accuracy.md";
/// Folder of the preference files, `METHOD-mMARGIN.jsonl`.
pub const PREFERENCES_DIR: &str = "preferences";

/// WoW accuracy of one elicitation method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodResult {
    pub method: String,
    /// Wrong-wrong pairs with different correctness that were judged.
    pub candidate_pairs: usize,
    pub margins: Vec<MarginResult>,
    /// Questions the elicitor failed on, with the error.
    pub failed_questions: Vec<(String, String)>,
    /// Counters the plugin reported with `tally`, such as unparsable judge
    /// replies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    /// Model the plugin could call through the host, as a short name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator: Option<String>,
}

/// Contents of `wow_accuracy.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyTable {
    pub task: String,
    pub questions: usize,
    pub methods: Vec<MethodResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// One line of a preference file, in TRL's conversational
/// `prompt` / `chosen` / `rejected` layout plus provenance fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferenceRecord {
    pub prompt: Vec<Message>,
    pub chosen: Vec<Message>,
    pub rejected: Vec<Message>,
    pub question_id: String,
    pub chosen_sample: u32,
    pub rejected_sample: u32,
    pub chosen_correctness: f64,
    pub rejected_correctness: f64,
    pub gap: f64,
}

/// Runs every elicitor over the run's responses, writes the judged pairs and
/// the preference files, and returns the accuracy table merged with the
/// earlier methods of the run; [`write_accuracy_table`] saves it.
pub fn elicit(
    run: &RunDir,
    task_name: &str,
    questions: &[Question],
    responses: &BTreeMap<String, Vec<ResponseRecord>>,
    elicitors: &[ElicitorPlugin],
    evaluator: Option<&str>,
    margins: &[u32],
    progress: &ProgressBar,
) -> Result<AccuracyTable, RunError> {
    progress.set_length((questions.len() * elicitors.len()) as u64);
    let mut methods = Vec::new();

    for elicitor in elicitors {
        let (pairs, failed_questions) = judge_all(elicitor, questions, responses, progress);
        write_judged_pairs(run, elicitor.name(), &pairs)?;
        for &margin in margins {
            write_preferences(run, elicitor.name(), margin, &pairs, responses)?;
        }
        methods.push(MethodResult {
            method: elicitor.name().to_string(),
            candidate_pairs: pairs.len(),
            margins: margin_results(&pairs, margins),
            failed_questions,
            counts: elicitor.tallies(),
            evaluator: evaluator.map(str::to_string),
        });
    }

    write_reference_preferences(run, questions, responses, margins)?;

    Ok(merge_with_previous(
        run,
        AccuracyTable {
            task: task_name.to_string(),
            questions: questions.len(),
            methods,
            provenance: None,
        },
        margins,
    ))
}

/// Writes `wow_accuracy.json` and `wow_accuracy.md`.
pub fn write_accuracy_table(run: &RunDir, table: &AccuracyTable, margins: &[u32]) -> Result<(), RunError> {
    let json = serde_json::to_string_pretty(table).expect("table serializes");
    run.write_atomic(ACCURACY_JSON, json.as_bytes())?;
    run.write_atomic(ACCURACY_MARKDOWN, render_markdown(table, margins).as_bytes())
}

/// Writes `preferences/provenance.json`: how the preference sets of this
/// pass were made, and the sets with their pair counts.
pub fn write_preference_provenance(run: &RunDir, provenance: &Provenance) -> Result<(), RunError> {
    let dir = run.path(PREFERENCES_DIR);
    let mut sets = BTreeMap::new();
    let entries = std::fs::read_dir(&dir).map_err(|source| RunError::io(&dir, source))?;
    for entry in entries {
        let path = entry.map_err(|source| RunError::io(&dir, source))?.path();
        if path.extension().is_some_and(|extension| extension == "jsonl") {
            let text = std::fs::read_to_string(&path).map_err(|source| RunError::io(&path, source))?;
            let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            sets.insert(name, text.lines().filter(|line| !line.trim().is_empty()).count());
        }
    }
    let record = serde_json::json!({ "sets": sets, "provenance": provenance });
    let text = serde_json::to_string_pretty(&record).expect("provenance serializes");
    run.write_atomic(&format!("{PREFERENCES_DIR}/provenance.json"), text.as_bytes())
}

/// Keeps the rows of methods elicited earlier in this run directory (same
/// task, question count and margins) that this pass did not run again with
/// the same evaluator.
fn merge_with_previous(run: &RunDir, mut table: AccuracyTable, margins: &[u32]) -> AccuracyTable {
    let Ok(text) = std::fs::read_to_string(run.path(ACCURACY_JSON)) else {
        return table;
    };
    let Ok(previous) = serde_json::from_str::<AccuracyTable>(&text) else {
        return table;
    };
    if previous.task != table.task || previous.questions != table.questions {
        return table;
    }

    let same_margins = |method: &MethodResult| method.margins.iter().map(|m| m.margin).eq(margins.iter().copied());
    let earlier: Vec<MethodResult> = previous
        .methods
        .into_iter()
        .filter(|old| {
            same_margins(old)
                && !table
                    .methods
                    .iter()
                    .any(|new| new.method == old.method && new.evaluator == old.evaluator)
        })
        .collect();
    table.methods.splice(0..0, earlier);
    table
}

fn judge_all(
    elicitor: &ElicitorPlugin,
    questions: &[Question],
    responses: &BTreeMap<String, Vec<ResponseRecord>>,
    progress: &ProgressBar,
) -> (Vec<JudgedPair>, Vec<(String, String)>) {
    let mut pairs = Vec::new();
    let mut failed = Vec::new();
    progress.set_message(elicitor.name().to_string());

    for question in questions {
        let records = responses.get(&question.id).map(Vec::as_slice).unwrap_or_default();
        match judge_question(elicitor, question, records) {
            Ok(judged) => pairs.extend(judged),
            Err(error) => {
                tracing::error!(method = elicitor.name(), question = %question.id, "{error}");
                failed.push((question.id.clone(), error.to_string()));
            }
        }
        progress.inc(1);
    }
    (pairs, failed)
}

/// Judges the wrong-wrong pairs of one question. Responses whose grading
/// failed are left out; questions without a pair skip the plugin call.
fn judge_question(
    elicitor: &ElicitorPlugin,
    question: &Question,
    records: &[ResponseRecord],
) -> Result<Vec<JudgedPair>, crate::plugin::PluginError> {
    let records: Vec<&ResponseRecord> = records.iter().filter(|r| r.error.is_none()).collect();
    let pairs = wrong_pairs(&records);
    if pairs.is_empty() {
        return Ok(Vec::new());
    }

    let candidates: Vec<Candidate> = records
        .iter()
        .map(|r| Candidate {
            text: r.text.clone(),
            answer: r.answer.clone(),
            mean_nll: r.mean_nll,
            token_count: r.token_count,
        })
        .collect();
    let judgement = elicitor.elicit(question, &candidates, &pairs)?;

    let judged = pairs
        .iter()
        .map(|&(a, b)| {
            let (first, second) = (records[a as usize], records[b as usize]);
            JudgedPair {
                question_id: question.id.clone(),
                first: first.sample,
                second: second.sample,
                first_correctness: first.correctness.unwrap_or_default(),
                second_correctness: second.correctness.unwrap_or_default(),
                verdict: verdict(&judgement, a, b, first.sample, second.sample),
            }
        })
        .collect();
    Ok(judged)
}

/// Returns index pairs of wrong, graded responses with different correctness.
fn wrong_pairs(records: &[&ResponseRecord]) -> Vec<(u32, u32)> {
    let wrong: Vec<(usize, f64)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.correct)
        .filter_map(|(i, r)| r.correctness.map(|c| (i, c)))
        .collect();

    let mut pairs = Vec::new();
    for (x, &(i, ci)) in wrong.iter().enumerate() {
        for &(j, cj) in &wrong[x + 1..] {
            if ci != cj {
                pairs.push((i as u32, j as u32));
            }
        }
    }
    pairs
}

/// Maps a judgement to the verdict on candidates `a` and `b`, reported with
/// their sample indices.
fn verdict(judgement: &Judgement, a: u32, b: u32, sample_a: u32, sample_b: u32) -> Verdict {
    match judgement {
        Judgement::Scores(scores) => {
            JudgedPair::verdict_from_scores(scores[a as usize], scores[b as usize], sample_a, sample_b)
        }
        Judgement::Preferences(preferences) => {
            let found = preferences
                .iter()
                .find(|p| (p.chosen, p.rejected) == (a, b) || (p.chosen, p.rejected) == (b, a));
            match found {
                Some(p) => Verdict::Prefers {
                    chosen: if p.chosen == a { sample_a } else { sample_b },
                    gap: p.strength.abs(),
                },
                None => Verdict::NoOpinion,
            }
        }
    }
}

/// Writes the preference sets that need no elicitor: `oracle` orders each
/// wrong-wrong pair by proxy correctness (gap = correctness difference), and
/// `row` pairs each right response with each wrong one of its question,
/// right chosen (gap = 1 - the wrong one's correctness; unparsed counts as 0).
fn write_reference_preferences(
    run: &RunDir,
    questions: &[Question],
    responses: &BTreeMap<String, Vec<ResponseRecord>>,
    margins: &[u32],
) -> Result<(), RunError> {
    let mut oracle = Vec::new();
    let mut right_over_wrong = Vec::new();
    for question in questions {
        let records: Vec<&ResponseRecord> = responses
            .get(&question.id)
            .map(|r| r.iter().filter(|r| r.error.is_none()).collect())
            .unwrap_or_default();

        for (a, b) in wrong_pairs(&records) {
            let (first, second) = (records[a as usize], records[b as usize]);
            oracle.push(proxy_pair(&question.id, first, second));
        }
        for right in records.iter().filter(|r| r.correct) {
            for wrong in records.iter().filter(|r| !r.correct) {
                right_over_wrong.push(proxy_pair(&question.id, right, wrong));
            }
        }
    }

    let mut sets = vec![("oracle", oracle), ("row", right_over_wrong)];
    if mixes_generators(responses) {
        // The full sets mix every generator's responses; the self sets keep
        // pairs of the run's own model only.
        let own = |pair: &JudgedPair| {
            let records = &responses[&pair.question_id];
            [pair.first, pair.second]
                .iter()
                .all(|&sample| records.iter().any(|r| r.sample == sample && r.generator.is_none()))
        };
        let self_sets: Vec<(&str, Vec<JudgedPair>)> = sets
            .iter()
            .map(|(name, pairs)| {
                let kept = pairs.iter().filter(|p| own(p)).cloned().collect();
                (if *name == "oracle" { "oracle-self" } else { "row-self" }, kept)
            })
            .collect();
        sets.extend(self_sets);
    }

    for (method, pairs) in &sets {
        write_judged_pairs(run, method, pairs)?;
        for &margin in margins {
            write_preferences(run, method, margin, pairs, responses)?;
        }
    }
    Ok(())
}

/// Returns whether any response comes from an extra generator.
fn mixes_generators(responses: &BTreeMap<String, Vec<ResponseRecord>>) -> bool {
    responses.values().flatten().any(|r| r.generator.is_some())
}

/// Returns the pair ordered by proxy correctness, an unparsed answer
/// counting as 0.
fn proxy_pair(question_id: &str, first: &ResponseRecord, second: &ResponseRecord) -> JudgedPair {
    let first_correctness = if first.correct {
        1.0
    } else {
        first.correctness.unwrap_or(0.0)
    };
    let second_correctness = if second.correct {
        1.0
    } else {
        second.correctness.unwrap_or(0.0)
    };
    let chosen = if first_correctness >= second_correctness {
        first.sample
    } else {
        second.sample
    };
    JudgedPair {
        question_id: question_id.to_string(),
        first: first.sample,
        second: second.sample,
        first_correctness,
        second_correctness,
        verdict: Verdict::Prefers {
            chosen,
            gap: (first_correctness - second_correctness).abs(),
        },
    }
}

fn write_judged_pairs(run: &RunDir, method: &str, pairs: &[JudgedPair]) -> Result<(), RunError> {
    let mut text = String::new();
    for pair in pairs {
        text.push_str(&serde_json::to_string(pair).expect("pair serializes"));
        text.push('\n');
    }
    run.write_atomic(&format!("judgements/{method}.jsonl"), text.as_bytes())
}

/// Writes `preferences/{method}-m{margin}.jsonl` with the elicited order of
/// the kept pairs (ties have no order and are left out).
fn write_preferences(
    run: &RunDir,
    method: &str,
    margin: u32,
    pairs: &[JudgedPair],
    responses: &BTreeMap<String, Vec<ResponseRecord>>,
) -> Result<(), RunError> {
    let mut text = String::new();
    for pair in select_margin(pairs, margin) {
        let Verdict::Prefers { chosen, gap } = pair.verdict else {
            continue;
        };
        let records = &responses[&pair.question_id];
        let find = |sample: u32| {
            records
                .iter()
                .find(|r| r.sample == sample)
                .expect("judged sample is in the log")
        };
        let (chosen, rejected) = (find(chosen), find(pair.other(chosen)));

        let record = PreferenceRecord {
            prompt: chosen.prompt.clone(),
            chosen: vec![Message::new("assistant", chosen.text.clone())],
            rejected: vec![Message::new("assistant", rejected.text.clone())],
            question_id: pair.question_id.clone(),
            chosen_sample: chosen.sample,
            rejected_sample: rejected.sample,
            chosen_correctness: chosen.correctness.unwrap_or_default(),
            rejected_correctness: rejected.correctness.unwrap_or_default(),
            gap,
        };
        text.push_str(&serde_json::to_string(&record).expect("preference serializes"));
        text.push('\n');
    }
    run.write_atomic(&format!("preferences/{method}-m{margin}.jsonl"), text.as_bytes())
}

/// Renders the table: one row per method, accuracy and pair count per margin.
pub fn render_markdown(table: &AccuracyTable, margins: &[u32]) -> String {
    let mut out = format!(
        "# WoW accuracy: {} ({} questions)\n\n| method |",
        table.task, table.questions
    );
    for margin in margins {
        write!(out, " M{margin} | pairs M{margin} |").unwrap();
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(margins.len() * 2));
    out.push('\n');

    for method in &table.methods {
        write!(out, "| {} |", method.method).unwrap();
        for result in &method.margins {
            let accuracy = result
                .accuracy
                .map_or("n/a".to_string(), |a| format!("{:.1}%", a * 100.0));
            write!(out, " {accuracy} | {} |", result.pairs).unwrap();
        }
        out.push('\n');
    }

    let counted: Vec<&MethodResult> = table.methods.iter().filter(|m| !m.counts.is_empty()).collect();
    if !counted.is_empty() {
        out.push_str("\nPlugin counters:\n\n");
        for method in counted {
            let counts: Vec<String> = method.counts.iter().map(|(name, n)| format!("{name} {n}")).collect();
            writeln!(out, "- {}: {}", method.method, counts.join(", ")).unwrap();
        }
    }

    let failures: Vec<String> = table
        .methods
        .iter()
        .flat_map(|m| {
            m.failed_questions
                .iter()
                .map(move |(q, e)| format!("- {}: question {q}: {e}", m.method))
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("\nFailed items:\n\n");
        out.push_str(&failures.join("\n"));
        out.push('\n');
    }
    out
}
