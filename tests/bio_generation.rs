//! The Bio Generation task plugin on the real country prompts and
//! passages, graded by FactScore with the real model as judge.

use std::sync::{Arc, Mutex};

use wow::model::{ChatModel, LocalModel};
use wow::plugin::{Limits, Question, TaskPlugin};
use wow_tests::{data_dir, model_path, registry_with_model, registry_with_test_plugins};

const FILE: &str = "bg/countries_knowledge.jsonl";

fn load(task: &TaskPlugin) -> Vec<Question> {
    let bytes = std::fs::read(data_dir().join(FILE)).unwrap();
    let rows = task.load(&bytes, FILE).unwrap();
    let errors: Vec<String> = rows
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| format!("{}: {}", e.id, e.message))
        .collect();
    assert!(errors.is_empty(), "invalid rows: {errors:?}");
    rows.into_iter().map(Result::unwrap).collect()
}

#[test]
fn country_prompts_load() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("bio-generation").unwrap();
    let questions = load(&task);

    assert_eq!(questions.len(), 239);
    assert_eq!(questions[0].id, "Afghanistan");
    assert_eq!(questions[0].text, "Tell me about the country Afghanistan.");
    assert_eq!(task.prompt(&questions[0], 3).unwrap()[0].content, questions[0].text);
}

#[test]
fn knowledge_file_supplies_passages() {
    let knowledge = std::fs::read_to_string(data_dir().join(FILE)).unwrap();
    let settings = std::collections::BTreeMap::from([("knowledge".to_string(), knowledge)]);
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("bio-generation").unwrap().with_settings(settings);
    let prompts = "{\"topic\": \"Peru\", \"prompt\": \"Tell me a bio of Peru.\"}\n\
                   {\"topic\": \"Atlantis\", \"prompt\": \"Tell me a bio of Atlantis.\"}\n";

    let rows = task.load(prompts.as_bytes(), "prompts.jsonl").unwrap();
    let peru = rows[0].as_ref().unwrap();
    let payload: serde_json::Value = serde_json::from_str(&peru.payload).unwrap();
    let passages = payload["passages"].as_array().unwrap();
    assert!(
        passages.iter().any(|p| p == "The capital of Peru is Lima."),
        "{passages:?}"
    );
    let missing = rows[1].as_ref().unwrap_err();
    assert!(
        missing.message.contains("topic \"Atlantis\" has no passages"),
        "{}",
        missing.message
    );
}

#[test]
fn malformed_rows_name_their_line() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("bio-generation").unwrap();
    let file = "{\"topic\": \"Peru\", \"prompt\": \"Tell me about Peru.\", \"passages\": [\"Lima is its capital.\"]}\n\
                {\"topic\": \"Chile\"}\n";
    let rows = task.load(file.as_bytes(), "rows.jsonl").unwrap();
    assert!(rows[0].is_ok());
    let error = rows[1].as_ref().unwrap_err();
    assert_eq!(error.id, "line 2");
    assert!(error.message.starts_with("line 2: invalid"), "{}", error.message);
}

#[test]
fn abstentions_are_not_graded() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("bio-generation").unwrap();
    let question = &load(&task)[0];
    let answer = task
        .extract(question, 0, "I'm not sure what to say about Afghanistan.")
        .unwrap();
    assert_eq!(answer, None);
}

/// Grades through the real judge. NOTE: SmolLM2-135M as judge gives both
/// the true and the false facts below a FactScore of 0, so this checks the
/// grading path and its contract, not the judge's accuracy.
#[test]
fn factscore_grades_with_real_judge() {
    let model: Box<dyn ChatModel> = Box::new(LocalModel::load(&model_path()).unwrap());
    let registry = registry_with_model(Limits::default(), Arc::new(Mutex::new(model)));
    let task = registry.task("bio-generation").unwrap();
    let questions = load(&task);
    let peru = questions.iter().find(|q| q.id == "Peru").unwrap();

    let true_facts =
        "The capital of Peru is Lima. The currency code of Peru is PEN. People from Peru are called Peruvian.";
    let false_facts =
        "The capital of Peru is Oslo. The currency code of Peru is EUR. People from Peru are called Martians.";
    for response in [true_facts, false_facts] {
        let grade = task.grade(peru, response).unwrap();
        println!("FactScore of {response:?}: {grade:?}");
        assert!((0.0..=1.0).contains(&grade.correctness), "{grade:?}");
        assert_eq!(grade.correct, grade.correctness >= 0.9, "{grade:?}");
    }
}
