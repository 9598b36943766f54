//! Knowledge Crosswords: puzzles built from the real country triples,
//! checked by the solver over the whole graph and read by the task plugin
//! through the sandbox.

use std::process::{Command, Stdio};

use wow::kc::{self, KnowledgeGraph, Puzzle};
use wow::plugin::{Limits, Question, TaskPlugin};
use wow_tests::{data_dir, registry_with_test_plugins};

fn graph() -> KnowledgeGraph {
    KnowledgeGraph::read_tsv(&data_dir().join("kg/countries.tsv")).unwrap()
}

fn to_jsonl(puzzles: &[Puzzle]) -> String {
    puzzles
        .iter()
        .map(|p| serde_json::to_string(p).unwrap() + "\n")
        .collect()
}

fn load(task: &TaskPlugin, jsonl: &str) -> Vec<Question> {
    let rows = task.load(jsonl.as_bytes(), "puzzles.jsonl").unwrap();
    let errors: Vec<String> = rows
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| format!("{}: {}", e.id, e.message))
        .collect();
    assert!(errors.is_empty(), "invalid rows: {errors:?}");
    rows.into_iter().map(Result::unwrap).collect()
}

#[test]
fn built_puzzles_have_unique_solutions() {
    let graph = graph();
    let (puzzles, summary) = kc::build_puzzles(&graph, 40, 7);
    println!("{summary:?}");

    assert_eq!(puzzles.len(), 40, "{summary:?}");
    for puzzle in &puzzles {
        kc::verify(&graph, puzzle).unwrap_or_else(|e| panic!("{}: {e}", puzzle.id));
        assert_eq!(puzzle.blanks.len(), 3);
        for (options, answer) in puzzle.options.iter().zip(&puzzle.answer_all) {
            assert!(
                options.contains(answer),
                "{}: {answer} not among {options:?}",
                puzzle.id
            );
            assert!(options.len() >= 2, "{}: no distractor in {options:?}", puzzle.id);
        }
    }
}

#[test]
fn distractors_share_the_answer_kind() {
    let graph = graph();
    let (puzzles, _) = kc::build_puzzles(&graph, 20, 3);
    let kind = |name: &str| graph.kind(graph.entity_id(name).unwrap());
    assert_ne!(
        kind("Paris"),
        kind("France"),
        "cities and countries are different kinds"
    );
    assert_ne!(
        kind("EUR"),
        kind("France"),
        "currencies and countries are different kinds"
    );

    for puzzle in &puzzles {
        for (options, answer) in puzzle.options.iter().zip(&puzzle.answer_all) {
            for option in options {
                assert_eq!(kind(option), kind(answer), "{}: {option} vs {answer}", puzzle.id);
            }
        }
    }
}

#[test]
fn plugin_grades_built_puzzles() {
    let graph = graph();
    let (puzzles, _) = kc::build_puzzles(&graph, 10, 11);
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("knowledge-crosswords").unwrap();
    let questions = load(&task, &to_jsonl(&puzzles));
    assert_eq!(questions.len(), puzzles.len());

    for (question, puzzle) in questions.iter().zip(&puzzles) {
        let prompt = &task.prompt(question, 5).unwrap()[0].content;
        let mut correctness: Vec<f64> = ['A', 'B', 'C', 'D']
            .iter()
            .map(|letter| {
                let answer = task
                    .extract(question, 5, &format!("Answer: {letter}"))
                    .unwrap()
                    .expect("a letter extracts");
                task.grade(question, &answer).unwrap().correctness
            })
            .collect();
        correctness.sort_by(f64::total_cmp);
        assert_eq!(correctness, [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0], "{}: {prompt}", puzzle.id);
        assert_eq!(task.prompt(question, 5).unwrap()[0].content, *prompt);
    }
}

#[test]
fn malformed_rows_name_their_line() {
    let graph = graph();
    let (puzzles, _) = kc::build_puzzles(&graph, 1, 2);
    let mut wrong_answer = puzzles[0].clone();
    wrong_answer.answer_all[0] = "Atlantis".into();
    let file = format!("{}not json\n{}", to_jsonl(&puzzles), to_jsonl(&[wrong_answer]));

    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("knowledge-crosswords").unwrap();
    let rows = task.load(file.as_bytes(), "puzzles.jsonl").unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].is_ok());
    let broken = rows[1].as_ref().unwrap_err();
    assert_eq!(broken.id, "line 2");
    let missing = rows[2].as_ref().unwrap_err();
    assert!(
        missing.message.starts_with("line 3: the answer \"Atlantis\""),
        "{}",
        missing.message
    );
}

#[test]
fn cli_writes_verified_puzzles() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("kc.jsonl");
    let triples = data_dir().join("kg/countries.tsv");
    let status = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"))
        .env("WOW_LOG", "warn")
        .stdin(Stdio::null())
        .args(["kc", "build", "--count", "15", "--seed", "4", "--triples"])
        .arg(&triples)
        .arg("--out")
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());

    let graph = graph();
    let text = std::fs::read_to_string(&file).unwrap();
    let puzzles: Vec<Puzzle> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(puzzles.len(), 15);
    for puzzle in &puzzles {
        kc::verify(&graph, puzzle).unwrap_or_else(|e| panic!("{}: {e}", puzzle.id));
    }
}
