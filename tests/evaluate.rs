//! `wow evaluate` on hand-written run directories: p_wrong, accuracy and
//! ECE per model, generalisation columns for a second task, and runs on
//! different questions rejected.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"));
    command.env("WOW_LOG", "warn");
    command
}

/// Writes a run directory whose responses have the given
/// (question, correctness, correct, confidence) rows.
fn write_run(dir: &Path, rows: &[(&str, Option<f64>, bool, f64)]) {
    write_task_run(dir, "nlgraph-shortest-path", rows);
}

/// Writes a run directory of `task` like [`write_run`].
fn write_task_run(dir: &Path, task: &str, rows: &[(&str, Option<f64>, bool, f64)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), json!({ "task": task }).to_string()).unwrap();
    let mut lines = String::new();
    for (sample, (question, correctness, correct, confidence)) in rows.iter().enumerate() {
        let record = json!({
            "question_id": question, "sample": sample, "prompt": [], "text": "t",
            "mean_nll": -confidence.ln(), "token_count": 3, "answer": "1",
            "correctness": correctness, "correct": correct,
        });
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    std::fs::write(dir.join("responses.jsonl"), lines).unwrap();
}

#[test]
fn evaluate_reports_each_model() {
    let root = tempfile::tempdir().unwrap();
    let (original, aligned, out) = (
        root.path().join("base"),
        root.path().join("dpo"),
        root.path().join("eval"),
    );
    write_run(
        &original,
        &[
            ("q1", Some(1.0), true, 0.95),
            ("q1", Some(0.2), false, 0.95),
            ("q2", None, false, 0.25),
        ],
    );
    write_run(
        &aligned,
        &[
            ("q1", Some(1.0), true, 0.95),
            ("q1", Some(0.8), false, 0.95),
            ("q2", Some(0.4), false, 0.25),
        ],
    );

    let output = cli()
        .args([
            "evaluate",
            "--original",
            original.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--aligned", &format!("oracle-wow={}", aligned.display())])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let table: Value = serde_json::from_str(&std::fs::read_to_string(out.join("alignment.json")).unwrap()).unwrap();
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows[0]["source"], "ORIGINAL");
    assert_eq!(rows[1]["source"], "oracle-wow");
    // Wrong answers: original 0.2 and an unparsed one (0); aligned 0.8 and 0.4.
    let p_wrong = |row: &Value| row["quality"]["p_wrong"].as_f64().unwrap();
    assert!((p_wrong(&rows[0]) - 0.1).abs() < 1e-9);
    assert!((p_wrong(&rows[1]) - 0.6).abs() < 1e-9);
    assert!((rows[0]["quality"]["accuracy"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    // ECE: bin 9 contains 0.95 twice with one right (|0.5 - 0.95|), bin 2 contains 0.25 wrong.
    let ece = 2.0 / 3.0 * 0.45 + 1.0 / 3.0 * 0.25;
    assert!((rows[0]["quality"]["ece"].as_f64().unwrap() - ece).abs() < 1e-9);

    let markdown = std::fs::read_to_string(out.join("alignment.md")).unwrap();
    assert!(markdown.contains("| oracle-wow | **0.600** |"), "{markdown}");
}

#[test]
fn evaluate_rejects_other_questions() {
    let root = tempfile::tempdir().unwrap();
    let (original, aligned) = (root.path().join("base"), root.path().join("dpo"));
    write_run(&original, &[("q1", Some(0.5), false, 0.5)]);
    write_run(&aligned, &[("q9", Some(0.5), false, 0.5)]);

    let output = cli()
        .args([
            "evaluate",
            "--original",
            original.to_str().unwrap(),
            "--out",
            root.path().join("eval").to_str().unwrap(),
        ])
        .args(["--aligned", &format!("dpo={}", aligned.display())])
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("answered other nlgraph-shortest-path questions than the first run"),
        "{stderr}"
    );
}

#[test]
fn evaluate_adds_transfer_task_columns() {
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| root.path().join(name);
    write_run(&dir("path-base"), &[("q1", Some(0.2), false, 0.5)]);
    write_run(&dir("path-dpo"), &[("q1", Some(0.6), false, 0.5)]);
    write_task_run(
        &dir("flow-base"),
        "nlgraph-max-flow",
        &[("f1", Some(0.3), false, 0.5), ("f2", Some(1.0), true, 0.9)],
    );
    write_task_run(
        &dir("flow-dpo"),
        "nlgraph-max-flow",
        &[("f1", Some(0.5), false, 0.5), ("f2", Some(0.1), false, 0.9)],
    );

    let out = dir("eval");
    let output = cli()
        .args(["evaluate", "--out", out.to_str().unwrap()])
        .args(["--original", dir("path-base").to_str().unwrap()])
        .args(["--original", dir("flow-base").to_str().unwrap()])
        .args(["--aligned", &format!("dpo={}", dir("path-dpo").display())])
        .args(["--aligned", &format!("dpo={}", dir("flow-dpo").display())])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let table: Value = serde_json::from_str(&std::fs::read_to_string(out.join("alignment.json")).unwrap()).unwrap();
    assert_eq!(table["task"], "nlgraph-shortest-path");
    assert_eq!(table["rows"].as_array().unwrap().len(), 2);
    let transfer = &table["transfer"][0];
    assert_eq!(transfer["task"], "nlgraph-max-flow");
    let rows = transfer["rows"].as_array().unwrap();
    assert_eq!(rows[1]["source"], "dpo");
    let p_wrong = rows[1]["quality"]["p_wrong"].as_f64().unwrap();
    assert!((p_wrong - 0.3).abs() < 1e-9, "p_wrong {p_wrong}");
    assert!((rows[0]["quality"]["accuracy"].as_f64().unwrap() - 0.5).abs() < 1e-9);

    let markdown = std::fs::read_to_string(out.join("alignment.md")).unwrap();
    assert!(
        markdown.contains("| source | nlgraph-shortest-path p_wrong |"),
        "{markdown}"
    );
    assert!(markdown.contains("nlgraph-max-flow ECE |"), "{markdown}");
    assert_eq!(
        markdown.lines().filter(|line| line.starts_with("| dpo |")).count(),
        1,
        "{markdown}"
    );
}
