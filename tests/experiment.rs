//! Experiment files: the shipped files parse and validate, unknown plugins
//! and bad settings are named, and a rerun skips finished cells.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use wow::experiment::{Experiment, Stage};
use wow_tests::{model_path, shortest_path_data};

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"));
    command.env("WOW_LOG", "warn").stdin(Stdio::null());
    command
}

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments")
}

fn experiment(file: &Path, out: &Path, extra: &[&str]) -> Output {
    cli()
        .arg("experiment")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Writes an experiment file over the shortest-path data with the default
/// model; `body` adds or overrides top-level keys.
fn write_experiment(dir: &Path, body: &str) -> PathBuf {
    let text = format!(
        r#"name = "tiny"
{body}

[[task]]
plugin = "nlgraph-shortest-path"
data = "{data}"

[[generator]]
label = "smollm2"
model = "{model}"

[sampling]
questions = 2
heldout_questions = 0
samples = 2
max_tokens = 16

[training]
epochs = 1
learning_rate = 5e-5
beta = 0.1
"#,
        data = shortest_path_data().display(),
        model = model_path().display(),
    );
    let path = dir.join("experiment.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const TINY_GRID: &str = r#"elicitors = ["heuristic", "logits"]
margins = [100, 50]
preference_sources = []
losses = ["dpo"]"#;

#[test]
fn paper_scale_file_validates() {
    let experiment = Experiment::from_file(&experiments_dir().join("paper-scale.toml")).unwrap();
    let plugins: Vec<&str> = experiment.tasks.iter().map(|t| t.plugin.as_str()).collect();
    assert_eq!(
        plugins,
        [
            "knowledge-crosswords",
            "bio-generation",
            "com2",
            "nlgraph-shortest-path",
            "hellaswag",
            "nlgraph-max-flow"
        ]
    );
    assert_eq!(experiment.sampling.samples, 10);
    assert_eq!(
        experiment.elicitors,
        ["heuristic", "consistency", "logits", "pairwise", "score"]
    );
    assert_eq!(experiment.margins, [100, 50, 10]);
    assert_eq!(experiment.training.epochs, 3);
    assert_eq!(experiment.training.learning_rate, 5e-5);
    assert_eq!(experiment.training.beta, 0.1);
    assert_eq!(experiment.losses.len(), 1);
    assert_eq!(experiment.losses[0].name(), "dpo");

    let groups = wow::experiment::plan(&experiment, Path::new("out"));
    assert_eq!(groups.len(), 6);
    for group in &groups {
        assert_eq!(group.elicit.stage, Stage::Elicit);
        assert_eq!(group.train.len(), 7);
        assert_eq!(group.heldout_aligned.len(), 7);
        assert!(group.heldout_original.is_some());
    }
    assert!(
        experiment
            .tasks
            .iter()
            .all(|task| task.data.starts_with(experiments_dir()))
    );
}

#[test]
fn small_cpu_file_validates() {
    let experiment = Experiment::from_file(&experiments_dir().join("small-cpu.toml")).unwrap();
    assert!(
        experiment.tasks[0].data.is_file(),
        "{}",
        experiment.tasks[0].data.display()
    );
    let groups = wow::experiment::plan(&experiment, Path::new("out"));
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].train.len(), 2);
}

#[test]
fn unknown_plugins_are_named_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(
        dir.path(),
        r#"elicitors = ["heuristic", "no-such-elicitor"]
margins = [100]
preference_sources = []
losses = ["dpo"]"#,
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("plugin = \"nlgraph-shortest-path\"", "plugin = \"no-such-task\"");
    std::fs::write(&file, text).unwrap();

    let output = experiment(&file, &dir.path().join("out"), &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("names unknown plugins"), "{stderr}");
    assert!(stderr.contains("task no-such-task"), "{stderr}");
    assert!(stderr.contains("elicitor no-such-elicitor"), "{stderr}");
    assert!(
        stderr.contains("task nlgraph-shortest-path"),
        "lists the available plugins: {stderr}"
    );
    assert!(!dir.path().join("out/runs").exists(), "no cell ran");
}

#[test]
fn invalid_settings_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(
        dir.path(),
        r#"elicitors = ["heuristic"]
margins = [100, 0]
preference_sources = ["logits-m100", "oracle-m20", "oracle"]
losses = ["dpo"]"#,
    );
    let output = experiment(&file, &dir.path().join("out"), &["--check"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("percentage from 1 to 100"), "{stderr}");
    assert!(stderr.contains("\"logits-m100\" names method \"logits\""), "{stderr}");
    assert!(stderr.contains("\"oracle-m20\" uses margin 20"), "{stderr}");
    assert!(stderr.contains("\"oracle\" is not METHOD-mMARGIN"), "{stderr}");
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn rerun_skips_finished_cells() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(dir.path(), TINY_GRID);
    let out = dir.path().join("out");

    let first = experiment(&file, &out, &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let table = out.join("runs/nlgraph-shortest-path/smollm2/wow_accuracy.json");
    let responses = out.join("runs/nlgraph-shortest-path/smollm2/responses.jsonl");
    assert!(table.is_file());
    let report = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(report.contains("| nlgraph-shortest-path | "), "{report}");

    let (table_time, responses_time) = (modified(&table), modified(&responses));
    let check = experiment(&file, &out, &["--check"]);
    assert!(check.status.success());
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(
        listed.starts_with("finished runs/nlgraph-shortest-path/smollm2"),
        "{listed}"
    );

    let second = experiment(&file, &out, &[]);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(modified(&table), table_time, "the finished cell did not run again");
    assert_eq!(modified(&responses), responses_time);

    // Without its marker the cell runs again; sampling itself resumes, so
    // the responses are kept and only elicitation is redone.
    std::fs::remove_file(&table).unwrap();
    let third = experiment(&file, &out, &[]);
    assert!(third.status.success(), "{}", String::from_utf8_lossy(&third.stderr));
    assert!(table.is_file());
    assert_eq!(modified(&responses), responses_time);
}
