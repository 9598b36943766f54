//! The plugin sandbox on real wasm components: hostile plugins fail only
//! their own item, with an error naming plugin, call and item.

use std::path::Path;

use wow::plugin::{
    Candidate, FailureKind, Judgement, LimitOverrides, Limits, PluginError, PluginKind, PluginRegistry, Question,
    Sandbox, TaskPlugin, bundle,
};
use wow_tests::{registry_with_test_plugins, test_plugin, with_test_plugins};

fn question(id: &str) -> Question {
    Question {
        id: id.into(),
        text: "What is 1 + 1?".into(),
        reference: None,
        payload: "{}".into(),
    }
}

fn candidates() -> Vec<Candidate> {
    ["2", "three", "eleven"]
        .iter()
        .enumerate()
        .map(|(i, text)| Candidate {
            text: text.to_string(),
            answer: Some(text.to_string()),
            mean_nll: 1.0,
            token_count: i as u32 + 1,
        })
        .collect()
}

/// Limits low enough that each hostile call ends within a second or two.
fn tight_limits() -> Limits {
    Limits {
        fuel: 300_000_000,
        timeout_secs: 20.0,
        memory_bytes: 64 * 1024 * 1024,
        max_log_lines: 10,
        max_consecutive_failures: 0,
    }
}

fn elicit(limits: Limits, id: &str) -> Result<Judgement, PluginError> {
    let registry = registry_with_test_plugins(limits);
    let hostile = registry.elicitor("hostile").expect("hostile test plugin is built");
    hostile.elicit(&question(id), &candidates(), &[(0, 1)])
}

fn failure(result: Result<Judgement, PluginError>, id: &str) -> FailureKind {
    let error = result.expect_err("hostile call must fail");
    let message = error.to_string();
    assert!(message.contains("`hostile`"), "error names the plugin: {message}");
    assert!(message.contains("`elicit`"), "error names the call: {message}");
    assert!(message.contains(id), "error names the item: {message}");
    error.failure().cloned().expect("a call failure")
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let kind = failure(elicit(tight_limits(), "loop-1"), "loop-1");
    assert_eq!(kind, FailureKind::OutOfFuel { fuel: 300_000_000 });
}

#[test]
fn endless_loop_hits_deadline() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_secs: 1.0,
        ..tight_limits()
    };
    let started = std::time::Instant::now();
    let kind = failure(elicit(limits, "loop-2"), "loop-2");
    assert_eq!(kind, FailureKind::Timeout { seconds: 1.0 });
    assert!(
        started.elapsed().as_secs_f64() < 10.0,
        "deadline fired late: {:?}",
        started.elapsed()
    );
}

#[test]
fn unbounded_allocation_hits_memory_cap() {
    let kind = failure(elicit(tight_limits(), "alloc-1"), "alloc-1");
    assert_eq!(
        kind,
        FailureKind::MemoryLimit {
            bytes: 64 * 1024 * 1024
        }
    );
}

#[test]
fn panic_reports_plugin_message() {
    let kind = failure(elicit(tight_limits(), "trap-1"), "trap-1");
    let FailureKind::Trap { output, .. } = &kind else {
        panic!("expected a trap, got {kind:?}")
    };
    assert!(output.contains("panicked"), "panic message captured: {output}");
}

#[test]
fn deep_recursion_overflows_stack() {
    // The Rust guest's shadow stack lives in linear memory and overflows
    // into an out-of-bounds access before wasmtime's own stack limit.
    let kind = failure(elicit(tight_limits(), "recurse-1"), "recurse-1");
    let overflowed = match &kind {
        FailureKind::StackOverflow => true,
        FailureKind::Trap { message, .. } => message.contains("stack overflow"),
        _ => false,
    };
    assert!(overflowed, "unexpected failure: {kind:?}");
}

#[test]
fn other_items_carry_on() {
    let registry = registry_with_test_plugins(tight_limits());
    let hostile = registry.elicitor("hostile").unwrap();
    let ids = ["ok-1", "loop-3", "ok-2", "trap-2", "alloc-2", "ok-3"];

    let results: Vec<_> = ids
        .iter()
        .map(|id| hostile.elicit(&question(id), &candidates(), &[(0, 1)]))
        .collect();

    for (id, result) in ids.iter().zip(&results) {
        if id.starts_with("ok") {
            let Ok(Judgement::Scores(scores)) = result else {
                panic!("{id} should succeed: {result:?}")
            };
            assert_eq!(scores.len(), 3, "{id}");
        } else {
            assert!(result.is_err(), "{id} should fail");
        }
    }
}

#[test]
fn future_wit_version_is_rejected() {
    let (manifest, component) = test_plugin("future-wit");
    let mut registry = registry_with_test_plugins(tight_limits());

    let error = registry.add_embedded(manifest, component).unwrap_err();

    assert!(matches!(error, PluginError::WitVersion { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("wow:plugin@0.2.0"), "{message}");
    assert!(message.contains("wow:plugin@0.1.0"), "{message}");
}

#[test]
fn mislabelled_component_fails_to_load() {
    // The manifest claims WIT 0.1.0, but the component imports 0.2.0.
    let (manifest, component) = test_plugin("future-wit");
    let manifest = manifest.replace("0.2.0", "0.1.0");
    let mut registry = registry_with_test_plugins(tight_limits());
    registry.add_embedded(&manifest, component).unwrap();

    let error = registry.elicitor("future-wit").err().expect("link must fail");

    assert!(matches!(error, PluginError::ForbiddenImport { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("`future-wit`"), "{message}");
    assert!(message.contains("@0.2.0"), "{message}");
}

#[test]
fn builtins_are_registered() {
    let registry = registry_with_test_plugins(tight_limits());
    let plugins: Vec<(String, PluginKind)> = registry.list().map(|(m, _)| (m.name.clone(), m.kind)).collect();

    for (name, kind) in [
        ("nlgraph-shortest-path", PluginKind::Task),
        ("nlgraph-max-flow", PluginKind::Task),
        ("heuristic", PluginKind::Elicitor),
        ("consistency", PluginKind::Elicitor),
        ("logits", PluginKind::Elicitor),
    ] {
        assert!(
            plugins.contains(&(name.to_string(), kind)),
            "{name} missing from {plugins:?}"
        );
    }
}

#[test]
fn wrong_kind_is_rejected() {
    let registry = registry_with_test_plugins(tight_limits());
    let error = registry.task("heuristic").err().expect("heuristic is not a task");
    assert!(matches!(error, PluginError::WrongKind { .. }), "{error}");
}

#[test]
fn nan_score_is_invalid_output() {
    let kind = failure(elicit(tight_limits(), "nan-1"), "nan-1");
    let FailureKind::InvalidOutput(message) = &kind else {
        panic!("expected invalid output, got {kind:?}")
    };
    assert!(message.contains("NaN"), "{message}");
}

#[test]
fn oversize_scores_are_invalid_output() {
    let kind = failure(elicit(tight_limits(), "oversize-1"), "oversize-1");
    let FailureKind::InvalidOutput(message) = &kind else {
        panic!("expected invalid output, got {kind:?}")
    };
    assert!(message.contains("1000000 scores for 3 candidates"), "{message}");
}

fn forbidden_import(name: &str) -> String {
    let registry = registry_with_test_plugins(tight_limits());
    let error = registry.elicitor(name).err().expect("the import must be rejected");
    assert!(matches!(error, PluginError::ForbiddenImport { .. }), "{error}");
    error.to_string()
}

#[test]
fn filesystem_import_is_rejected() {
    let message = forbidden_import("hostile-fs");
    assert!(message.contains("`hostile-fs`"), "{message}");
    assert!(message.contains("wasi:filesystem/"), "{message}");
    assert!(message.contains("std::fs"), "{message}");
}

#[test]
fn socket_import_is_rejected() {
    let message = forbidden_import("hostile-net");
    assert!(message.contains("`hostile-net`"), "{message}");
    assert!(message.contains("wasi:sockets/"), "{message}");
}

#[test]
fn undeclared_capability_is_rejected() {
    let (manifest, component) = test_plugin("model-judge");
    let manifest = manifest.replace(
        "capabilities = [\"generate\", \"logprobs\"]",
        "capabilities = [\"logprobs\"]",
    );
    let mut registry = registry_with_test_plugins(tight_limits());
    registry.add_embedded(&manifest, component).unwrap();

    let error = registry
        .elicitor("model-judge")
        .err()
        .expect("generate is not declared");

    let PluginError::Capability { plugin, function, .. } = &error else {
        panic!("expected a capability error, got {error}")
    };
    assert_eq!(plugin, "model-judge");
    assert_eq!(function, "generate");
    assert!(error.to_string().contains("capabilities"), "{error}");
}

#[test]
fn declared_capability_loads() {
    let registry = registry_with_test_plugins(tight_limits());
    registry
        .elicitor("model-judge")
        .expect("model-judge declares what it imports");
}

#[test]
fn repeated_failures_disable_plugin() {
    let limits = Limits {
        max_consecutive_failures: 3,
        ..tight_limits()
    };
    let registry = registry_with_test_plugins(limits);
    let hostile = registry.elicitor("hostile").unwrap();
    let heuristic = registry.elicitor("heuristic").unwrap();

    // A success resets the count, so two failures and a success do not disable it.
    for id in ["trap-a", "nan-b", "ok-c"] {
        let _ = hostile.elicit(&question(id), &candidates(), &[(0, 1)]);
    }
    hostile
        .elicit(&question("ok-d"), &candidates(), &[(0, 1)])
        .expect("two failures then a success keep the plugin enabled");

    for id in ["trap-e", "nan-f", "oversize-g"] {
        assert!(hostile.elicit(&question(id), &candidates(), &[(0, 1)]).is_err());
    }
    let error = hostile
        .elicit(&question("ok-h"), &candidates(), &[(0, 1)])
        .expect_err("the plugin is disabled after three failures in a row");

    assert!(matches!(error, PluginError::Disabled { failures: 3, .. }), "{error}");
    assert!(
        error.to_string().contains("oversize-g"),
        "names the last failure: {error}"
    );
    heuristic
        .elicit(&question("ok-h"), &candidates(), &[(0, 1)])
        .expect("other plugins carry on");
}

#[test]
fn user_limit_lowers_plugin_fuel() {
    let overrides = LimitOverrides {
        fuel: Some(1_000),
        ..Default::default()
    };
    let sandbox = Sandbox::new(tight_limits())
        .unwrap()
        .with_plugin_limits([("hostile".to_string(), overrides)].into());
    let registry = with_test_plugins(sandbox);
    let hostile = registry.elicitor("hostile").unwrap();

    let kind = failure(hostile.elicit(&question("ok-1"), &candidates(), &[(0, 1)]), "ok-1");

    assert_eq!(kind, FailureKind::OutOfFuel { fuel: 1_000 });
    registry
        .elicitor("heuristic")
        .unwrap()
        .elicit(&question("ok-1"), &candidates(), &[(0, 1)])
        .expect("the limit applies to hostile only");
}

#[test]
fn limits_above_host_are_ignored() {
    let (manifest, component) = test_plugin("hostile");
    let manifest = format!("{manifest}\n[limits]\nfuel = 100000000000000\nmemory_bytes = 1024\n");
    let mut registry = registry_with_test_plugins(tight_limits());
    registry.add_embedded(&manifest, component).unwrap();
    let hostile = registry.elicitor("hostile").unwrap();

    assert_eq!(hostile.limits().fuel, tight_limits().fuel, "fuel may not rise");
    assert_eq!(hostile.limits().memory_bytes, 1024, "memory may fall");
}

#[test]
fn archive_bundle_loads() {
    let (manifest, component) = test_plugin("hostile");
    let dir = tempfile::tempdir().unwrap();
    let tar_gz = dir.path().join("hostile.tar.gz");
    bundle::write_tar_gz(&tar_gz, manifest, Path::new("hostile.wasm"), component).unwrap();
    let sandbox = Sandbox::new(tight_limits()).unwrap();
    let mut registry = PluginRegistry::new(sandbox).unwrap();

    let added = registry.add_path(dir.path()).unwrap();

    assert_eq!(added, 1);
    let hostile = registry
        .elicitor("hostile")
        .expect("the archive's plugin is registered");
    let judgement = hostile.elicit(&question("ok-1"), &candidates(), &[(0, 1)]).unwrap();
    assert!(matches!(judgement, Judgement::Scores(ref scores) if scores.len() == 3));
}

fn hostile_task() -> TaskPlugin {
    registry_with_test_plugins(tight_limits())
        .task("hostile-task")
        .expect("hostile-task test plugin is built")
}

fn task_failure<T: std::fmt::Debug>(result: Result<T, PluginError>, call: &str) -> FailureKind {
    let error = result.expect_err("hostile task call must fail");
    let message = error.to_string();
    assert!(message.contains("`hostile-task`"), "error names the plugin: {message}");
    assert!(
        message.contains(&format!("`{call}`")),
        "error names the call: {message}"
    );
    error.failure().cloned().expect("a call failure")
}

#[test]
fn task_oversize_answer_is_rejected() {
    let kind = task_failure(hostile_task().extract(&question("q"), 0, "oversize"), "extract");
    let FailureKind::InvalidOutput(message) = &kind else {
        panic!("expected invalid output, got {kind:?}")
    };
    assert!(message.contains("answer is 8388608 bytes"), "{message}");
}

#[test]
fn task_invalid_correctness_is_rejected() {
    let task = hostile_task();
    for answer in ["nan", "two"] {
        let kind = task_failure(task.grade(&question("q"), answer), "grade");
        assert!(matches!(kind, FailureKind::InvalidOutput(_)), "{answer}: {kind:?}");
    }
    assert_eq!(task.grade(&question("q"), "fine").unwrap().correctness, 0.5);
}

#[test]
fn task_invalid_prompts_are_rejected() {
    let task = hostile_task();
    for id in ["no-prompt", "bad-role"] {
        let kind = task_failure(task.prompt(&question(id), 0), "prompt");
        assert!(matches!(kind, FailureKind::InvalidOutput(_)), "{id}: {kind:?}");
    }
}

#[test]
fn task_endless_load_runs_out_of_fuel() {
    let kind = task_failure(hostile_task().load(b"loop", "hostile.txt"), "load");
    assert_eq!(kind, FailureKind::OutOfFuel { fuel: 300_000_000 });
}
