//! Checks the solvers against every reference answer of the NLGraph
//! benchmark files, and measures the longest-path search on them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nlgraph::graph::{self, SHORTEST_PATH};
use nlgraph::solve;
use nlgraph::task::{self, Kind, LONGEST_PATH_STEP_BUDGET};

fn benchmark_file(task_folder: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/nlgraph")
        .join(task_folder)
        .join("train.json");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn load_errors(kind: Kind, task_folder: &str) -> (usize, Vec<String>) {
    let questions = task::load(kind, &benchmark_file(task_folder)).unwrap();
    let errors = questions
        .iter()
        .filter_map(|q| q.as_ref().err())
        .map(|e| e.message.clone())
        .collect();
    (questions.len(), errors)
}

#[test]
fn shortest_path_agrees_with_every_reference() {
    let (count, errors) = load_errors(Kind::ShortestPath, "shortest_path");
    assert_eq!(count, 316);
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn max_flow_agrees_with_every_reference() {
    let (count, errors) = load_errors(Kind::MaxFlow, "flow");
    assert_eq!(count, 292);
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn questions_keep_numeric_id_order() {
    let questions = task::load(Kind::MaxFlow, &benchmark_file("flow")).unwrap();
    let ids: Vec<String> = questions
        .iter()
        .take(12)
        .map(|q| q.as_ref().unwrap().id.clone())
        .collect();
    let expected: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected);
}

#[test]
fn longest_path_worst_case() {
    let rows: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&benchmark_file("shortest_path")).unwrap();
    let mut worst_steps = (0, String::new());
    let mut worst_time = (Duration::ZERO, String::new());
    let total = Instant::now();
    for (id, row) in &rows {
        let problem = graph::parse_problem(row["question"].as_str().unwrap(), &SHORTEST_PATH).unwrap();
        let start = Instant::now();
        let longest = solve::longest_simple_path(&problem.graph, problem.source, problem.target, u64::MAX).unwrap();
        let elapsed = start.elapsed();
        let shortest = solve::shortest_path(&problem.graph, problem.source, problem.target);
        assert!(longest.weight >= shortest, "problem {id}");
        worst_steps = worst_steps.max((longest.steps, id.clone()));
        worst_time = worst_time.max((elapsed, id.clone()));
    }
    eprintln!(
        "longest path over {} problems: {:?} in all; worst {} steps (problem {}), worst {:?} (problem {})",
        rows.len(),
        total.elapsed(),
        worst_steps.0,
        worst_steps.1,
        worst_time.0,
        worst_time.1,
    );
    assert!(
        worst_steps.0 * 100 < LONGEST_PATH_STEP_BUDGET,
        "budget margin below 100x: {worst_steps:?}"
    );
}
