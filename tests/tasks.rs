//! The NLGraph task plugins through the sandbox, on every real problem.

use wow::plugin::{Limits, Question, TaskPlugin};
use wow_tests::{data_dir, registry_with_test_plugins};

fn load(task: &TaskPlugin, file: &str) -> Vec<Question> {
    let path = data_dir().join(file);
    let bytes = std::fs::read(&path).unwrap();
    let rows = task.load(&bytes, file).expect("the dataset loads");

    let errors: Vec<String> = rows
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| format!("{}: {}", e.id, e.message))
        .collect();
    assert!(errors.is_empty(), "rows disagree with the solver: {errors:?}");
    rows.into_iter().map(Result::unwrap).collect()
}

/// Every reference answer, extracted and graded by the plugin, is correct.
fn check_references(task_name: &str, file: &str, expected: usize) {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task(task_name).unwrap();
    let questions = load(&task, file);
    assert_eq!(questions.len(), expected);

    for question in &questions {
        let reference = question.reference.as_deref().unwrap();
        let answer = task
            .extract(question, 0, reference)
            .unwrap()
            .expect("reference answer parses");
        let grade = task.grade(question, &answer).unwrap();
        assert!(grade.correct, "{}: {reference}", question.id);
        assert_eq!(grade.correctness, 1.0, "{}", question.id);
    }
}

#[test]
fn shortest_path_references_agree() {
    check_references("nlgraph-shortest-path", "nlgraph/shortest_path/train.json", 316);
}

#[test]
fn max_flow_references_agree() {
    check_references("nlgraph-max-flow", "nlgraph/flow/train.json", 292);
}

#[test]
fn wrong_answers_grade_below_one() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("nlgraph-shortest-path").unwrap();
    let question = &load(&task, "nlgraph/shortest_path/train.json")[0];

    // Problem 0: the shortest path from node 1 to node 2 weighs 3.
    let near = task
        .extract(question, 0, "The path is 1,0,2 with a total weight is 4.")
        .unwrap()
        .unwrap();
    let far = task.extract(question, 0, "I think the answer is 9").unwrap().unwrap();
    let near_grade = task.grade(question, &near).unwrap();
    let far_grade = task.grade(question, &far).unwrap();

    assert_eq!((near.as_str(), far.as_str()), ("4", "9"));
    assert!(!near_grade.correct);
    assert!(!far_grade.correct);
    assert!(
        near_grade.correctness > far_grade.correctness,
        "{near_grade:?} vs {far_grade:?}"
    );
    assert_eq!(task.extract(question, 0, "no idea").unwrap(), None);
}

#[test]
fn malformed_dataset_is_an_error() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("nlgraph-shortest-path").unwrap();

    let error = task.load(b"{ not json", "broken.json").unwrap_err().to_string();
    assert!(error.contains("broken.json"), "{error}");

    let rows = task
        .load(
            br#"{"7": {"question": "no graph here", "answer": "5", "difficulty": "easy"}}"#,
            "row.json",
        )
        .unwrap();
    let item = rows[0].as_ref().unwrap_err();
    assert_eq!(item.id, "7");
}
