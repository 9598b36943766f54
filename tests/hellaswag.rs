//! The HellaSwag task plugin on real validation items, and the
//! plausibility scorers that grade its wrong endings, through the sandbox
//! with the real model.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use wow::model::{ChatModel, LocalModel};
use wow::plugin::{Limits, Question, ScorerPlugin, SharedModel, TaskPlugin};
use wow_sdk::statement;
use wow_tests::{data_dir, model_path, registry_with_model, registry_with_test_plugins};

const FILE: &str = "hellaswag/hellaswag_val_first2000.jsonl";

/// Items scored per scorer in the ranking tests; `WOW_HELLASWAG_ITEMS`
/// overrides it (the README records the share on 100 items).
const DEFAULT_RANKED_ITEMS: usize = 6;

fn load(task: &TaskPlugin) -> Vec<Question> {
    let bytes = std::fs::read(data_dir().join(FILE)).unwrap();
    let rows = task.load(&bytes, FILE).expect("the dataset loads");
    let errors: Vec<String> = rows
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| format!("{}: {}", e.id, e.message))
        .collect();
    assert!(errors.is_empty(), "invalid rows: {errors:?}");
    rows.into_iter().map(Result::unwrap).collect()
}

fn payload(question: &Question) -> Value {
    serde_json::from_str(&question.payload).unwrap()
}

fn ending(question: &Question, index: usize) -> String {
    payload(question)["endings"][index].as_str().unwrap().trim().to_string()
}

fn label(question: &Question) -> usize {
    payload(question)["label"].as_u64().unwrap() as usize
}

/// Returns the letter under which the prompt of `seed` shows `ending`.
fn letter_of(task: &TaskPlugin, question: &Question, seed: u64, ending: &str) -> char {
    let prompt = &task.prompt(question, seed).unwrap()[0].content;
    let line = prompt
        .lines()
        .find(|line| line.get(3..) == Some(ending))
        .unwrap_or_else(|| panic!("ending {ending:?} not listed in {prompt}"));
    line.chars().next().unwrap()
}

fn shared_model() -> SharedModel {
    let model: Box<dyn ChatModel> = Box::new(LocalModel::load(&model_path()).unwrap());
    Arc::new(Mutex::new(model))
}

#[test]
fn validation_file_loads() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("hellaswag").unwrap();
    let questions = load(&task);

    assert_eq!(questions.len(), 2000);
    assert_eq!(questions[0].id, "0");
    assert_eq!(
        questions[0].reference.as_deref(),
        Some("A man is sitting on a roof. he starts pulling up roofing on a roof.")
    );
}

#[test]
fn gold_letter_grades_correct_under_every_seed() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("hellaswag").unwrap();
    let questions = load(&task);

    for question in questions.iter().take(25) {
        let gold = label(question);
        for seed in [0, 1, 7, 12345] {
            let letter = letter_of(&task, question, seed, &ending(question, gold));
            let response = format!("The scene goes on.\nAnswer: {letter}");
            let answer = task.extract(question, seed, &response).unwrap();
            assert_eq!(answer, Some(gold.to_string()), "{} seed {seed}", question.id);

            let grade = task.grade(question, &gold.to_string()).unwrap();
            assert!(grade.correct);
            assert_eq!(grade.correctness, 1.0);
        }
    }
}

#[test]
fn shuffle_is_stable_and_seeded() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("hellaswag").unwrap();
    let question = &load(&task)[0];

    let first = task.prompt(question, 3).unwrap();
    assert_eq!(first, task.prompt(question, 3).unwrap());
    let orders: std::collections::BTreeSet<String> = (0..16)
        .map(|seed| task.prompt(question, seed).unwrap()[0].content.clone())
        .collect();
    assert!(orders.len() > 4, "only {} orders in 16 seeds", orders.len());
}

#[test]
fn wrong_endings_grade_zero_and_state_themselves() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("hellaswag").unwrap();
    let question = &load(&task)[0];

    let grade = task.grade(question, "0").unwrap();
    assert!(!grade.correct);
    assert_eq!(grade.correctness, 0.0);
    let statements = task.statements(question, "0").unwrap();
    assert_eq!(
        statements,
        ["A man is sitting on a roof. he\u{1f}is using wrap to wrap a pair of skis."]
    );
    assert!(task.grade(question, "9").is_err());
    assert_eq!(task.extract(question, 0, "A man keeps working.").unwrap(), None);
}

#[test]
fn malformed_rows_name_their_line() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("hellaswag").unwrap();
    let good = r#"{"ind": 1, "activity_label": "x", "ctx": "A cat", "endings": ["a", "b", "c", "d"], "label": 0, "split": "val"}"#;
    let three =
        r#"{"ind": 2, "activity_label": "x", "ctx": "A cat", "endings": ["a", "b", "c"], "label": 0, "split": "val"}"#;
    let file = format!("{good}\n{{broken\n{three}\n");

    let rows = task.load(file.as_bytes(), "rows.jsonl").unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].is_ok());
    let broken = rows[1].as_ref().unwrap_err();
    assert_eq!(broken.id, "line 2");
    assert!(broken.message.starts_with("line 2:"), "{}", broken.message);
    let short = rows[2].as_ref().unwrap_err();
    assert_eq!(short.id, "2");
    assert!(
        short.message.contains("line 3: expected 4 endings"),
        "{}",
        short.message
    );
}

/// Scores the statements of all four endings of the first items and
/// returns the share where the gold ending scores highest.
fn gold_top_share(task: &TaskPlugin, scorer: &ScorerPlugin, questions: &[Question]) -> f64 {
    let items = std::env::var("WOW_HELLASWAG_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RANKED_ITEMS);
    let mut top = 0;
    for question in questions.iter().take(items) {
        let scores: Vec<f64> = (0..4)
            .map(|index| {
                let statement = &task.statements(question, &index.to_string()).unwrap()[0];
                let score = scorer.score(question, statement).unwrap();
                assert!((0.0..=1.0).contains(&score), "{score}");
                score
            })
            .collect();
        let gold = label(question);
        if scores.iter().all(|&s| s <= scores[gold]) {
            top += 1;
        }
    }
    let share = top as f64 / items as f64;
    println!(
        "{}: gold ending scores highest on {top}/{items} items ({share:.2})",
        scorer.name()
    );
    share
}

/// Prints the share of items whose gold ending the plausibility scorer
/// ranks first. SmolLM2-135M reaches about chance level (25%) this way, so
/// the assertion is on the scorer's validity, not on that share.
#[test]
fn plausibility_ranks_gold_endings() {
    let registry = registry_with_model(Limits::default(), shared_model());
    let task = registry.task("hellaswag").unwrap();
    let scorer = registry.scorer("plausibility-lm").unwrap();
    let questions = load(&task);

    let share = gold_top_share(&task, &scorer, &questions);
    assert!((0.0..=1.0).contains(&share));
}

/// A real sentence is more plausible than the same words in reverse order,
/// both whole and as an ending given its scene.
#[test]
fn plausibility_prefers_real_sentences() {
    let registry = registry_with_model(Limits::default(), shared_model());
    let task = registry.task("hellaswag").unwrap();
    let scorer = registry.scorer("plausibility-lm").unwrap();
    let questions = load(&task);

    let items = 8;
    let (mut whole, mut given) = (0, 0);
    for question in questions.iter().take(items) {
        let sentence = question.reference.as_deref().unwrap();
        if scorer.score(question, sentence).unwrap() > scorer.score(question, &reversed(sentence)).unwrap() {
            whole += 1;
        }

        let gold = ending(question, label(question));
        let real = statement::conditional(&question.text, &gold);
        let scrambled = statement::conditional(&question.text, &reversed(&gold));
        if scorer.score(question, &real).unwrap() > scorer.score(question, &scrambled).unwrap() {
            given += 1;
        }
    }
    assert!(whole >= 7, "real sentence preferred on {whole}/{items} items");
    assert!(given >= 7, "real ending preferred on {given}/{items} items");
}

fn reversed(sentence: &str) -> String {
    sentence.split_whitespace().rev().collect::<Vec<_>>().join(" ")
}

#[test]
fn similarity_prefers_gold_endings() {
    let registry = registry_with_model(Limits::default(), shared_model());
    let task = registry.task("hellaswag").unwrap();
    let scorer = registry.scorer("similarity-embed").unwrap();
    let questions = load(&task);

    let share = gold_top_share(&task, &scorer, &questions);
    assert!(share > 0.5, "gold ending on top for {share:.2} of items");
}

#[test]
fn similarity_tracks_meaning() {
    let registry = registry_with_model(Limits::default(), shared_model());
    let scorer = registry.scorer("similarity-embed").unwrap();
    let question = Question {
        id: "roof".into(),
        text: "What is the man doing?".into(),
        reference: Some("A man is repairing the roof of his house.".into()),
        payload: "{}".into(),
    };

    let same = scorer
        .score(&question, "A man is repairing the roof of his house.")
        .unwrap();
    let close = scorer
        .score(&question, "Someone fixes the shingles on top of a home.")
        .unwrap();
    let far = scorer
        .score(&question, "Stock prices fell sharply on Tuesday.")
        .unwrap();
    assert!((same - 1.0).abs() < 1e-4, "{same}");
    assert!(close > far + 0.2, "close {close} vs far {far}");
}

#[test]
fn run_grades_wrong_endings_by_plausibility() {
    let out = tempfile::tempdir().unwrap();
    let data = data_dir().join(FILE);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_wow-test-cli"))
        .env("WOW_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .args(["sample", "--task", "hellaswag", "--scorer", "plausibility-lm"])
        .args([
            "--questions",
            "3",
            "--samples",
            "4",
            "--max-tokens",
            "24",
            "--temperature",
            "1.5",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--model")
        .arg(model_path())
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());

    let responses = std::fs::read_to_string(out.path().join("responses.jsonl")).unwrap();
    let records: Vec<Value> = responses.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 12);
    let graded: Vec<&Value> = records.iter().filter(|r| r["answer"].is_string()).collect();
    assert!(!graded.is_empty(), "no response named an ending: {responses}");
    for record in graded {
        let correctness = record["correctness"]
            .as_f64()
            .expect("graded answers have a correctness");
        if record["correct"].as_bool().unwrap() {
            assert_eq!(correctness, 1.0);
        } else {
            assert!(
                correctness > 0.0 && correctness < 1.0,
                "wrong ending graded {correctness}"
            );
        }
    }
}
