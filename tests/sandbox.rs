//! The plugin sandbox on real wasm components: hostile plugins fail only
//! their own item, with an error naming plugin, call and item.

use wow::plugin::{Candidate, FailureKind, Judgement, Limits, PluginError, PluginKind, Question};
use wow_tests::{registry_with_test_plugins, test_plugin};

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

    assert!(matches!(error, PluginError::Load { .. }), "{error}");
    assert!(error.to_string().contains("future-wit"), "{error}");
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
