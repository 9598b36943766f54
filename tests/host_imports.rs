//! Plugins reach the real model only through the host imports, and time
//! spent in those imports does not count against the guest's deadline.

use std::sync::{Arc, Mutex};

use wow::model::{ChatModel, LocalModel, Message};
use wow::plugin::{Candidate, FailureKind, Judgement, Limits, Question, SharedModel};
use wow_tests::{model_path, registry_with_model, registry_with_test_plugins};

fn question() -> Question {
    Question {
        id: "q-1".into(),
        text: "What is 2+2?".into(),
        reference: None,
        payload: "{}".into(),
    }
}

fn candidates() -> Vec<Candidate> {
    ["The answer is 4.", "Purple elephants sing."]
        .iter()
        .map(|text| Candidate {
            text: text.to_string(),
            answer: None,
            mean_nll: 1.0,
            token_count: 4,
        })
        .collect()
}

fn shared_model() -> SharedModel {
    let model: Box<dyn ChatModel> = Box::new(LocalModel::load(&model_path()).unwrap());
    Arc::new(Mutex::new(model))
}

#[test]
fn judge_scores_match_model_logprobs() {
    let model = shared_model();
    let registry = registry_with_model(Limits::default(), model.clone());
    let judge = registry.elicitor("model-judge").unwrap();

    let Judgement::Scores(scores) = judge.elicit(&question(), &candidates(), &[(0, 1)]).unwrap() else {
        panic!("model-judge returns scores");
    };

    let prompt = [Message::new("user", "What is 2+2?")];
    for (candidate, score) in candidates().iter().zip(&scores) {
        let logprobs = model.lock().unwrap().logprobs(&prompt, &candidate.text).unwrap();
        let mean = logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len() as f64;
        let score = score.expect("every candidate is scored");
        assert!((score - mean).abs() < 1e-9, "{score} vs {mean}");
    }
    assert!(scores[0] > scores[1], "a sensible answer is likelier: {scores:?}");
}

#[test]
fn host_time_is_not_guest_time() {
    // Loading and running the model takes far longer than 50 ms, but that
    // time is spent in host imports.
    let limits = Limits {
        timeout_secs: 0.05,
        ..Limits::default()
    };
    let registry = registry_with_model(limits, shared_model());
    let judge = registry.elicitor("model-judge").unwrap();

    let started = std::time::Instant::now();
    let result = judge.elicit(&question(), &candidates(), &[(0, 1)]);

    assert!(
        started.elapsed().as_secs_f64() > 0.05,
        "the call was too fast to test the deadline"
    );
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn missing_model_is_a_guest_error() {
    let registry = registry_with_test_plugins(Limits::default());
    let judge = registry.elicitor("model-judge").unwrap();

    let error = judge.elicit(&question(), &candidates(), &[(0, 1)]).unwrap_err();

    let Some(FailureKind::Guest(message)) = error.failure() else {
        panic!("expected a guest error: {error}")
    };
    assert!(message.contains("no model"), "{message}");
}
