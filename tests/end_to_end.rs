//! The `wow` CLI end to end on the real model and real NLGraph problems,
//! including a run killed mid-way and restarted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wow_tests::{model_path, shortest_path_data};

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"));
    command.env("WOW_LOG", "warn").stdin(Stdio::null());
    command
}

fn run_args(command: &str, out: &Path, questions: u32, samples: u32) -> Vec<String> {
    let model = model_path();
    let data = shortest_path_data();
    [
        command,
        "--out",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--questions",
        &questions.to_string(),
        "--samples",
        &samples.to_string(),
        "--max-tokens",
        "48",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

fn read_accuracy_table(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("wow_accuracy.json")).unwrap()).unwrap()
}

/// Returns the method names of a `wow_accuracy.json` table, in row order.
fn method_names(table: &Value) -> Vec<&str> {
    table["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect()
}

fn response_keys(lines: &[Value]) -> Vec<(String, u64)> {
    lines
        .iter()
        .map(|r| {
            (
                r["question_id"].as_str().unwrap().to_string(),
                r["sample"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn run_writes_responses_table_and_preferences() {
    let out = tempfile::tempdir().unwrap();
    let status = cli().args(run_args("run", out.path(), 3, 4)).status().unwrap();
    assert!(status.success());

    let responses = read_lines(&out.path().join("responses.jsonl"));
    assert_eq!(responses.len(), 12);
    for response in &responses {
        for field in [
            "question_id",
            "sample",
            "text",
            "mean_nll",
            "token_count",
            "answer",
            "correctness",
        ] {
            assert!(response.get(field).is_some(), "missing {field} in {response}");
        }
        assert!(response["mean_nll"].as_f64().unwrap() > 0.0, "{response}");
    }
    let unique: BTreeSet<_> = response_keys(&responses).into_iter().collect();
    assert_eq!(unique.len(), 12);

    let table = read_accuracy_table(out.path());
    let methods = method_names(&table);
    assert_eq!(methods, ["heuristic", "consistency", "logits"]);
    for method in table["methods"].as_array().unwrap() {
        let margins: Vec<u64> = method["margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["margin"].as_u64().unwrap())
            .collect();
        assert_eq!(margins, [100, 50, 10]);
    }

    let markdown = std::fs::read_to_string(out.path().join("wow_accuracy.md")).unwrap();
    assert!(markdown.contains("| heuristic |"), "{markdown}");
    for method in methods.into_iter().chain(["oracle", "row"]) {
        for margin in [100, 50, 10] {
            let file = out.path().join(format!("preferences/{method}-m{margin}.jsonl"));
            for preference in read_lines(&file) {
                for field in ["prompt", "chosen", "rejected"] {
                    assert!(
                        preference[field].is_array(),
                        "{field} is not a message list in {preference}"
                    );
                }
                if method == "oracle" {
                    let chosen = preference["chosen_correctness"].as_f64().unwrap();
                    let rejected = preference["rejected_correctness"].as_f64().unwrap();
                    assert!(chosen > rejected, "oracle pair out of proxy order: {preference}");
                }
            }
            assert!(file.is_file(), "{} missing", file.display());
        }
    }
}

#[test]
fn elicit_again_keeps_other_methods() {
    let out = tempfile::tempdir().unwrap();
    assert!(
        cli()
            .args(run_args("run", out.path(), 2, 3))
            .status()
            .unwrap()
            .success()
    );

    let status = cli()
        .args(["elicit", "--out", out.path().to_str().unwrap(), "--elicitors", "logits"])
        .status()
        .unwrap();
    assert!(status.success());

    let table = read_accuracy_table(out.path());
    let methods = method_names(&table);
    assert_eq!(methods, ["heuristic", "consistency", "logits"]);
}

/// Waits until `path` has at least `lines` complete lines.
fn wait_for_lines(path: &Path, lines: usize, timeout: Duration) {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.matches('\n').count() >= lines {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not reach {lines} lines in {timeout:?}", path.display());
}

#[test]
fn killed_run_resumes_without_loss_or_duplicates() {
    let out = tempfile::tempdir().unwrap();
    let responses_path: PathBuf = out.path().join("responses.jsonl");
    let args = run_args("sample", out.path(), 4, 2);

    let mut child = cli().args(&args).spawn().unwrap();
    wait_for_lines(&responses_path, 2, Duration::from_secs(50));
    child.kill().unwrap();
    child.wait().unwrap();

    let before = std::fs::read_to_string(&responses_path).unwrap();
    let finished = before.matches('\n').count();
    assert!(finished < 8, "the run finished before it was killed");

    let status = cli().args(&args).status().unwrap();
    assert!(status.success());

    let after = std::fs::read_to_string(&responses_path).unwrap();
    let complete_prefix = &before[..before.rfind('\n').map_or(0, |i| i + 1)];
    assert!(after.starts_with(complete_prefix), "finished responses were rewritten");

    let keys = response_keys(&read_lines(&responses_path));
    let unique: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(keys.len(), 8, "every response logged once");
    assert_eq!(unique.len(), 8, "no duplicates");
}

#[test]
fn resume_with_other_settings_is_rejected() {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(
        out.path().join("config.json"),
        r#"{"task":"nlgraph-max-flow","samples":7}"#,
    )
    .unwrap();

    let output = cli().args(run_args("sample", out.path(), 1, 2)).output().unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("different settings"), "{stderr}");
    assert!(stderr.contains("samples"), "{stderr}");
}

#[test]
fn missing_dataset_names_the_file() {
    let out = tempfile::tempdir().unwrap();
    let output = cli()
        .args([
            "sample",
            "--out",
            out.path().to_str().unwrap(),
            "--data",
            "/nonexistent/train.json",
        ])
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/train.json"), "{stderr}");
}
