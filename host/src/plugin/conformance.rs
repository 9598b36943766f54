//! The conformance suite of `wow plugin check`: what every plugin of a kind
//! must do for the host to run it, tested on the plugin's component.
//!
//! A check fails on a fault (a trap, an exhausted limit or output the host
//! rejects) and on results that differ between two identical calls. Errors a
//! plugin returns on purpose, such as a task rejecting a malformed dataset,
//! pass unless the check requires a value.

use std::fmt;
use std::sync::Arc;

use super::bundle::Bundle;
use super::error::PluginError;
use super::manifest::PluginKind;
use super::sandbox::Sandbox;
use super::wrappers::{ElicitorPlugin, ScorerPlugin, TaskPlugin};
use super::{Candidate, Judgement, Question};

/// Length of the huge response, answer and candidate texts, in bytes.
const HUGE_TEXT_BYTES: usize = 1 << 20;

/// Questions of the dataset that the per-question checks use.
const QUESTIONS_CHECKED: usize = 5;

/// Seed of the determinism checks.
const SEED: u64 = 7;

/// Outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// Not run, with the reason.
    Skip(String),
}

/// One named check and its outcome.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
}

/// Outcomes of every check on one plugin.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Returns the number of failed checks.
    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|check| matches!(check.outcome, Outcome::Fail(_)))
            .count()
    }

    fn record(&mut self, name: impl Into<String>, outcome: Outcome) {
        self.checks.push(Check {
            name: name.into(),
            outcome,
        });
    }

    fn result(&mut self, name: impl Into<String>, result: Result<(), String>) {
        let outcome = match result {
            Ok(()) => Outcome::Pass,
            Err(message) => Outcome::Fail(message),
        };
        self.record(name, outcome);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            match &check.outcome {
                Outcome::Pass => writeln!(f, "PASS  {}", check.name)?,
                Outcome::Fail(reason) => writeln!(f, "FAIL  {}: {reason}", check.name)?,
                Outcome::Skip(reason) => writeln!(f, "SKIP  {}: {reason}", check.name)?,
            }
        }
        let failed = self.failures();
        write!(f, "{} checks, {failed} failed", self.checks.len())
    }
}

/// Runs the suite for the bundle's kind. `dataset` feeds a task's
/// per-question checks; without it they are skipped.
pub fn check_bundle(sandbox: Arc<Sandbox>, bundle: &Bundle, dataset: Option<&[u8]>) -> Report {
    let mut report = Report::default();
    report.record("manifest and WIT version", Outcome::Pass);
    let manifest = Arc::new(bundle.manifest.clone());

    let loaded = match manifest.kind {
        PluginKind::Task => {
            TaskPlugin::new(manifest, sandbox, &bundle.component).map(|task| check_task(&task, dataset, &mut report))
        }
        PluginKind::Elicitor => ElicitorPlugin::new(manifest, sandbox, &bundle.component)
            .map(|elicitor| check_elicitor(&elicitor, &mut report)),
        PluginKind::Scorer => {
            ScorerPlugin::new(manifest, sandbox, &bundle.component).map(|scorer| check_scorer(&scorer, &mut report))
        }
    };
    if let Err(error) = loaded {
        report.record("imports, capabilities and exports", Outcome::Fail(error.to_string()));
    }
    report
}

/// Loads a bundle's component as the host does: checks its imports, its
/// capabilities and its exports against the world of its kind.
pub fn load(sandbox: Arc<Sandbox>, bundle: &Bundle) -> Result<(), PluginError> {
    let manifest = Arc::new(bundle.manifest.clone());
    match manifest.kind {
        PluginKind::Task => TaskPlugin::new(manifest, sandbox, &bundle.component).map(drop),
        PluginKind::Elicitor => ElicitorPlugin::new(manifest, sandbox, &bundle.component).map(drop),
        PluginKind::Scorer => ScorerPlugin::new(manifest, sandbox, &bundle.component).map(drop),
    }
}

/// Returns `Err` for a fault: anything but success or an error value the
/// plugin returned.
fn no_fault<T>(result: &Result<T, PluginError>) -> Result<(), String> {
    match result {
        Err(error) if !error.failure().is_some_and(|kind| !kind.is_fault()) => Err(error.to_string()),
        _ => Ok(()),
    }
}

fn check_task(task: &TaskPlugin, dataset: Option<&[u8]>, report: &mut Report) {
    report.record("imports, capabilities and exports", Outcome::Pass);
    report.result("load survives malformed datasets", load_malformed(task));

    let Some(dataset) = dataset else {
        let reason = "no dataset given (pass --data FILE)".to_string();
        for name in ["load the dataset", "prompt", "extract", "grade"] {
            report.record(name, Outcome::Skip(reason.clone()));
        }
        return;
    };
    let questions: Vec<Question> = match task.load(dataset, "dataset") {
        Ok(rows) => rows
            .into_iter()
            .filter_map(Result::ok)
            .take(QUESTIONS_CHECKED)
            .collect(),
        Err(error) => {
            report.record("load the dataset", Outcome::Fail(error.to_string()));
            return;
        }
    };
    if questions.is_empty() {
        report.record("load the dataset", Outcome::Fail("no valid question loaded".into()));
        return;
    }
    report.record("load the dataset", Outcome::Pass);
    report.result(
        "prompt is valid and deterministic",
        each(&questions, |q| prompt_check(task, q)),
    );
    report.result(
        "extract handles empty and huge responses deterministically",
        each(&questions, |q| extract_check(task, q)),
    );
    report.result(
        "grades are in [0, 1] and deterministic",
        each(&questions, |q| grade_check(task, q)),
    );
}

fn each(questions: &[Question], check: impl Fn(&Question) -> Result<(), String>) -> Result<(), String> {
    questions
        .iter()
        .try_for_each(|question| check(question).map_err(|message| format!("question {}: {message}", question.id)))
}

/// Malformed datasets: empty, binary noise, invalid UTF-8, one huge line
/// and cut-off JSON.
fn malformed_datasets() -> Vec<(&'static str, Vec<u8>)> {
    let mut noise = Vec::with_capacity(64 << 10);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while noise.len() < 64 << 10 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.extend_from_slice(&state.to_le_bytes());
    }
    vec![
        ("empty", Vec::new()),
        ("random bytes", noise),
        ("invalid UTF-8", vec![0xff, 0xfe, 0xc3, 0x28, b'\n', 0xa0]),
        ("one 1 MiB line", vec![b'7'; HUGE_TEXT_BYTES]),
        ("cut-off JSON", br#"{"0": {"question": "Find the"#.to_vec()),
    ]
}

fn load_malformed(task: &TaskPlugin) -> Result<(), String> {
    for (name, bytes) in malformed_datasets() {
        no_fault(&task.load(&bytes, name)).map_err(|message| format!("{name}: {message}"))?;
    }
    Ok(())
}

fn prompt_check(task: &TaskPlugin, question: &Question) -> Result<(), String> {
    let first = task.prompt(question, SEED).map_err(|e| e.to_string())?;
    let second = task.prompt(question, SEED).map_err(|e| e.to_string())?;
    if first != second {
        return Err(format!("two prompts with seed {SEED} differ"));
    }
    Ok(())
}

fn extract_check(task: &TaskPlugin, question: &Question) -> Result<(), String> {
    let huge = "1 ".repeat(HUGE_TEXT_BYTES / 2);
    for (name, response) in [("empty", ""), ("huge", huge.as_str()), ("short", "The answer is 42.")] {
        let first = task.extract(question, SEED, response);
        no_fault(&first).map_err(|message| format!("{name} response: {message}"))?;
        let second = task.extract(question, SEED, response);
        if first.ok() != second.ok() {
            return Err(format!("two extractions of the {name} response differ"));
        }
    }
    Ok(())
}

/// Grades every answer the task extracts from a few responses, and the
/// reference answer: each must grade, twice the same.
fn grade_check(task: &TaskPlugin, question: &Question) -> Result<(), String> {
    let mut responses = vec!["0".to_string(), "The answer is 42.".to_string(), "-3".to_string()];
    responses.extend(question.reference.clone());
    for response in responses {
        let Some(answer) = task.extract(question, SEED, &response).map_err(|e| e.to_string())? else {
            continue;
        };
        let first = task.grade(question, &answer).map_err(|e| e.to_string())?;
        let second = task.grade(question, &answer).map_err(|e| e.to_string())?;
        if first != second {
            return Err(format!("two grades of answer {answer:?} differ"));
        }
    }
    Ok(())
}

fn probe_question() -> Question {
    Question {
        id: "conformance".into(),
        text: "What is 17 + 25?".into(),
        reference: Some("42".into()),
        payload: "{}".into(),
    }
}

fn candidate(text: &str, answer: Option<&str>, mean_nll: f64, token_count: u32) -> Candidate {
    Candidate {
        text: text.into(),
        answer: answer.map(Into::into),
        mean_nll,
        token_count,
    }
}

fn check_elicitor(elicitor: &ElicitorPlugin, report: &mut Report) {
    report.record("imports, capabilities and exports", Outcome::Pass);
    let question = probe_question();
    let typical = vec![
        candidate("The answer is 42.", Some("42"), 0.8, 5),
        candidate("It is 41.", Some("41"), 1.2, 4),
        candidate("41", Some("41"), 1.5, 1),
        candidate("I cannot tell.", None, 2.0, 4),
    ];
    let huge = "word ".repeat(HUGE_TEXT_BYTES / 5);
    let pairs = |n: u32| -> Vec<(u32, u32)> { (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b))).collect() };

    report.result("judges typical candidates deterministically", {
        let first = elicitor.elicit(&question, &typical, &pairs(4));
        let second = elicitor.elicit(&question, &typical, &pairs(4));
        deterministic_judgement(first, second)
    });

    let edge_cases = [
        (
            "empty responses",
            vec![candidate("", None, 0.0, 0), candidate("", None, 0.0, 0)],
        ),
        (
            "a huge response",
            vec![candidate(&huge, Some("42"), 1.0, 200_000), typical[1].clone()],
        ),
        ("no candidates", Vec::new()),
    ];
    for (name, candidates) in edge_cases {
        let result = elicitor.elicit(&question, &candidates, &pairs(candidates.len() as u32));
        report.result(format!("handles {name}"), no_fault(&result));
    }
}

fn deterministic_judgement(
    first: Result<Judgement, PluginError>,
    second: Result<Judgement, PluginError>,
) -> Result<(), String> {
    let first = first.map_err(|e| e.to_string())?;
    let second = second.map_err(|e| e.to_string())?;
    if first != second {
        return Err(format!(
            "two judgements with the same input differ: {first:?} and {second:?}"
        ));
    }
    Ok(())
}

fn check_scorer(scorer: &ScorerPlugin, report: &mut Report) {
    report.record("imports, capabilities and exports", Outcome::Pass);
    let question = probe_question();
    let huge = "9".repeat(HUGE_TEXT_BYTES);
    for (name, answer) in [
        ("a typical answer", "41"),
        ("an empty answer", ""),
        ("a huge answer", &huge),
    ] {
        let first = scorer.score(&question, answer);
        let outcome = no_fault(&first).and_then(|()| {
            let second = scorer.score(&question, answer);
            if first.ok() != second.ok() {
                return Err("two scores of the same answer differ".to_string());
            }
            Ok(())
        });
        report.result(format!("scores {name} in [0, 1] deterministically"), outcome);
    }
}
