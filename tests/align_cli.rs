//! `wow align` and `wow run --align` end to end on the real model: a
//! training killed mid-way resumes from its checkpoint, and a run goes from
//! sampling to the alignment table in one command.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wow_tests::{model_path, shortest_path_data};

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"));
    command.env("WOW_LOG", "info").stdin(Stdio::null());
    command
}

/// Writes `count` preference pairs in TRL's conversational layout, with short
/// arithmetic prompts so that each training step takes a fraction of a
/// second.
fn write_preferences(path: &Path, count: usize) {
    let mut text = String::new();
    for i in 0..count {
        let record = json!({
            "prompt": [{"role": "user", "content": format!("What is {i} plus {i}? Answer with a number.")}],
            "chosen": [{"role": "assistant", "content": format!("{} is the sum.", 2 * i + 1)}],
            "rejected": [{"role": "assistant", "content": format!("The sum is {}.", 10 * i + 7)}],
            "question_id": i.to_string(),
            "chosen_sample": 0,
            "rejected_sample": 1,
            "chosen_correctness": 0.5,
            "rejected_correctness": 0.1,
            "gap": 0.4,
        });
        text.push_str(&record.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn align_args(preferences: &Path, out: &Path) -> Vec<String> {
    let model = model_path();
    [
        "align",
        "--preferences",
        preferences.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "1",
        "--gradient-accumulation-steps",
        "1",
        "--save-steps",
        "1",
        "--validation-ratio",
        "0.2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Returns the step count of the last checkpoint, or 0 while there is none.
fn checkpoint_step(out: &Path) -> u64 {
    std::fs::read_to_string(out.join("last/trainer_state.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|state| state["global_step"].as_u64())
        .unwrap_or(0)
}

#[test]
fn killed_training_resumes_from_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let preferences = dir.path().join("pairs.jsonl");
    let out = dir.path().join("adapter");
    write_preferences(&preferences, 10);
    let args = align_args(&preferences, &out);

    let mut child = cli().args(&args).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while checkpoint_step(&out) < 2 {
        assert!(started.elapsed() < Duration::from_secs(40), "no checkpoint after 40 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = checkpoint_step(&out);
    let killed_state = read_json(&out.join("last/trainer_state.json"));
    assert_eq!(killed_state["finished"], false);

    let output = cli().args(&args).output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "rerun failed: {log}");
    assert!(
        log.contains("resuming training from the last checkpoint") && log.contains(&format!("step={killed_at}")),
        "the rerun did not resume from step {killed_at}: {log}"
    );

    let state = read_json(&out.join("trainer_state.json"));
    assert_eq!(state["finished"], true);
    let total = state["total_steps"].as_u64().unwrap();
    assert_eq!(total, 16, "8 training pairs, one pair a step, 2 epochs");
    assert_eq!(state["global_step"], total);
    let steps: Vec<u64> = state["log_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=total).collect::<Vec<_>>(), "every step logged once");
    let killed_losses = &killed_state["log_history"].as_array().unwrap()[..killed_at as usize];
    let final_losses = &state["log_history"].as_array().unwrap()[..killed_at as usize];
    assert_eq!(killed_losses, final_losses, "steps before the kill were rewritten");
    assert_eq!(state["validation_loss"].as_array().unwrap().len(), 2);
    assert!(out.join("adapter_model.safetensors").is_file());
    assert!(out.join("adapter_config.json").is_file());
}

#[test]
fn run_align_writes_alignment_table() {
    let out = tempfile::tempdir().unwrap();
    let model = model_path();
    let data = shortest_path_data();
    let args = [
        "run",
        "--out",
        out.path().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--questions",
        "2",
        "--samples",
        "4",
        "--max-tokens",
        "64",
        "--align",
        "--align-source",
        "oracle-m100",
        "--eval-questions",
        "1",
        "--epochs",
        "1",
        "--max-pairs",
        "2",
        "--gradient-accumulation-steps",
        "1",
    ];
    let output = cli().env("WOW_LOG", "warn").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "wow run --align failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let table = read_json(&out.path().join("alignment.json"));
    let sources: Vec<&str> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["ORIGINAL", "oracle-m100"]);
    let held_out = read_json(&out.path().join("held-out/original/config.json"));
    assert_eq!(held_out["skip"], 2, "held-out questions follow the training questions");
    assert_eq!(held_out["questions"], 1);
    let aligned = read_json(&out.path().join("held-out/oracle-m100/config.json"));
    assert!(aligned["adapter"].as_str().unwrap().ends_with("adapters/oracle-m100"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ORIGINAL"), "the table was not printed: {stdout}");
}
