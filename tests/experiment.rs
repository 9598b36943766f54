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

#[test]
fn invalid_evaluators_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(
        dir.path(),
        r#"evaluators = ["generator", "judge", "a b=model.gguf", "x=one.gguf", "x=two.gguf"]
elicitors = ["heuristic"]
margins = [100]
preference_sources = ["nobody/heuristic-m100"]
losses = ["dpo"]"#,
    );
    let output = experiment(&file, &dir.path().join("out"), &["--check"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"judge\" is neither \"generator\" nor LABEL=MODEL"),
        "{stderr}"
    );

    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("\"judge\", \"a b=model.gguf\", ", ""),
    )
    .unwrap();
    let output = experiment(&file, &dir.path().join("out"), &["--check"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("evaluator labels must be unique"), "{stderr}");
    assert!(
        stderr.contains("\"nobody/heuristic-m100\" names evaluator \"nobody\""),
        "{stderr}"
    );
}

/// Links the default model under another file name, so that results name
/// the second evaluator differently from the generator.
fn second_evaluator(dir: &Path) -> PathBuf {
    let judge = dir.join("judge.gguf");
    std::os::unix::fs::symlink(model_path(), &judge).unwrap();
    judge
}

#[test]
fn preference_sources_name_their_evaluator() {
    let dir = tempfile::tempdir().unwrap();
    second_evaluator(dir.path());
    let file = write_experiment(
        dir.path(),
        r#"evaluators = ["generator", "judge=judge.gguf"]
elicitors = ["heuristic", "logits"]
margins = [100]
preference_sources = ["judge/logits-m100", "logits-m100"]
losses = ["dpo"]"#,
    );
    let experiment = Experiment::from_file(&file).unwrap();
    let out = Path::new("out");
    let groups = wow::experiment::plan(&experiment, out);
    let group = &groups[0];

    let run = out.join("runs/nlgraph-shortest-path/smollm2");
    let judged = out.join("runs/nlgraph-shortest-path/smollm2-by-judge");
    assert_eq!(group.elicit.dir, run);
    assert!(!group.elicit.args.contains(&"--evaluator".to_string()));
    assert_eq!(group.judges.len(), 1);
    let judge = &group.judges[0];
    assert_eq!(judge.dir, judged);
    let args = judge.args.join(" ");
    let model = dir.path().join("judge.gguf");
    assert!(
        args.starts_with(&format!("elicit --from {} --out {}", run.display(), judged.display())),
        "{args}"
    );
    assert!(args.contains(&format!("--evaluator {}", model.display())), "{args}");

    let trained: Vec<(&str, PathBuf)> = group
        .train
        .iter()
        .map(|cell| (cell.id.as_str(), cell.preferences.clone().unwrap()))
        .collect();
    assert_eq!(
        trained,
        [
            (
                "adapters/nlgraph-shortest-path/smollm2/judge-logits-m100-dpo",
                judged.join("preferences/logits-m100.jsonl")
            ),
            (
                "adapters/nlgraph-shortest-path/smollm2/logits-m100-dpo",
                run.join("preferences/logits-m100.jsonl")
            ),
        ]
    );
}

#[test]
fn further_evaluator_judges_the_same_samples() {
    let dir = tempfile::tempdir().unwrap();
    second_evaluator(dir.path());
    let file = write_experiment(
        dir.path(),
        r#"evaluators = ["generator", "judge=judge.gguf"]
elicitors = ["heuristic", "logits"]
margins = [100]
preference_sources = []
losses = ["dpo"]"#,
    );
    let out = dir.path().join("out");
    let output = experiment(&file, &out, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let run = out.join("runs/nlgraph-shortest-path/smollm2");
    let judged = out.join("runs/nlgraph-shortest-path/smollm2-by-judge");
    let responses = std::fs::read(run.join("responses.jsonl")).unwrap();
    assert_eq!(std::fs::read(judged.join("responses.jsonl")).unwrap(), responses);

    for (folder, evaluator) in [(&run, "SmolLM2-135M-Instruct"), (&judged, "judge.gguf")] {
        let text = std::fs::read_to_string(folder.join("wow_accuracy.json")).unwrap();
        let table: serde_json::Value = serde_json::from_str(&text).unwrap();
        let methods = table["methods"].as_array().unwrap();
        assert_eq!(methods.len(), 2, "{text}");
        for method in methods {
            let name = method["evaluator"].as_str().unwrap();
            assert!(name.contains(evaluator), "{} judged by {name}", folder.display());
        }
    }
    let report = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(report.contains("judge.gguf"), "{report}");
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

/// The whole chain on a tiny grid: elicitation, one DPO training with the
/// experiment's own `wow align` options, held-out sampling with and
/// without the adapter, and the evaluation in the report.
#[test]
fn training_cells_reach_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(
        dir.path(),
        r#"elicitors = ["heuristic"]
margins = [100]
preference_sources = ["heuristic-m100"]
losses = ["dpo"]"#,
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("questions = 2\nheldout_questions = 0\nsamples = 2", "questions = 2\nheldout_questions = 1\nsamples = 3")
        .replace(
            "beta = 0.1\n",
            "beta = 0.1\ngradient_accumulation_steps = 1\nmax_pairs = 2\nmax_prompt_length = 48\nmax_completion_length = 16\nvalidation_ratio = 0.5\n",
        );
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");

    let output = experiment(&file, &out, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let adapter = out.join("adapters/nlgraph-shortest-path/smollm2/heuristic-m100-dpo");
    assert!(adapter.join("adapter_model.safetensors").is_file());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapter.join("trainer_state.json")).unwrap()).unwrap();
    assert_eq!(state["finished"], true, "{state}");
    let aligned = out.join("heldout/nlgraph-shortest-path/smollm2/heuristic-m100-dpo");
    assert!(aligned.join("sampled.done").is_file());

    let evaluation = out.join("evaluations/nlgraph-shortest-path/smollm2/alignment.json");
    let table: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&evaluation).unwrap()).unwrap();
    let sources: Vec<&str> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["ORIGINAL", "heuristic-m100-dpo"]);
    let report = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(report.contains("heuristic-m100-dpo"), "{report}");
    assert!(
        !report.contains("no alignment results"),
        "the evaluation covers the elicitation run's task: {report}"
    );
}
