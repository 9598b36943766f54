//! `wow align`, `wow grid` and `wow run --align` end to end on the real
//! model: a training killed mid-way resumes from its checkpoint, a killed
//! grid trains only its missing trials, and a run goes from sampling to the
//! alignment table in one command.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wow_tests::{model_path, shortest_path_data, write_preferences};

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"));
    command.env("WOW_LOG", "info").stdin(Stdio::null());
    command
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
        "32",
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
        "--max-prompt-length",
        "64",
        "--max-completion-length",
        "16",
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

fn grid_args(preferences: &Path, out: &Path) -> Vec<String> {
    let model = model_path();
    [
        "grid",
        "--preferences",
        preferences.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--learning-rate",
        "1e-5,1e-3",
        "--epochs",
        "1",
        "--",
        "--model",
        model.to_str().unwrap(),
        "--gradient-accumulation-steps",
        "1",
        "--validation-ratio",
        "0.25",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn trial_records(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("trials.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A grid of real `wow align` trials killed with its running trial after
/// the first trial finished: the rerun trains only the trials without a
/// record and picks the lowest validation loss.
#[test]
fn killed_grid_trains_only_missing_trials() {
    use std::os::unix::process::CommandExt as _;

    let dir = tempfile::tempdir().unwrap();
    let preferences = dir.path().join("pairs.jsonl");
    let out = dir.path().join("grid");
    write_preferences(&preferences, 4);
    let args = grid_args(&preferences, &out);

    let mut child = cli()
        .args(&args)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while trial_records(&out).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "no trial finished after 50 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the grid ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Like a closed terminal: the grid and its `wow align` die together.
    let group = format!("-{}", child.id());
    let killed = Command::new("kill").args(["-KILL", "--", &group]).status().unwrap();
    assert!(killed.success());
    child.wait().unwrap();

    let recorded = trial_records(&out);
    assert_eq!(recorded.len(), 1, "the second trial finished before the kill");
    let first = &recorded[0];
    assert_eq!(first["outcome"]["status"], "finished", "{first}");
    let first_adapter = Path::new(first["dir"].as_str().unwrap()).join("adapter_model.safetensors");
    let first_written = std::fs::metadata(&first_adapter).unwrap().modified().unwrap();

    let output = cli().args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "rerun failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("trained 1 of 2 trials in this call, 0 failed"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::metadata(&first_adapter).unwrap().modified().unwrap(),
        first_written,
        "a finished trial was trained again"
    );

    let records = trial_records(&out);
    assert_eq!(records.len(), 2, "one record per trial");
    let losses: Vec<f64> = records
        .iter()
        .map(|record| record["outcome"]["best_validation_loss"].as_f64().unwrap())
        .collect();
    let lowest = losses.iter().copied().fold(f64::INFINITY, f64::min);
    let best = read_json(&out.join("best.json"));
    assert_eq!(
        best["outcome"]["best_validation_loss"].as_f64().unwrap(),
        lowest,
        "{best}"
    );
    assert!(
        Path::new(best["dir"].as_str().unwrap())
            .join("adapter_model.safetensors")
            .is_file()
    );
}
