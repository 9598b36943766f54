//! The COM2 task plugin on a small file in the official CSV layout, with
//! wrong options graded by the plausibility scorer on the real model.

use std::sync::{Arc, Mutex};

use wow::model::{ChatModel, LocalModel};
use wow::plugin::{Limits, Question, TaskPlugin};
use wow_tests::{model_path, registry_with_model, registry_with_test_plugins};

/// Two intersection questions and one one-hop question, which is skipped.
const FILE: &str = "question,context,options,label,type\n\
\"What is a result of being tired and a reason to stay in bed?\",PersonX works all night,\"['PersonX sleeps late', 'PersonX runs a marathon', 'PersonX paints the house']\",0,2i\n\
What is a result of the rain and a reason to carry an umbrella and a cause of wet shoes?,The sky turns grey,\"['it rains', 'it snows', 'the sun shines']\",0,3i\n\
What happens next?,PersonX eats,\"['PersonX is full', 'PersonX is hungry']\",0,1p\n";

fn load(task: &TaskPlugin) -> Vec<Question> {
    let rows = task.load(FILE.as_bytes(), "com2.csv").unwrap();
    rows.into_iter().map(Result::unwrap).collect()
}

#[test]
fn intersection_questions_load_and_grade() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("com2").unwrap();
    let questions = load(&task);
    assert_eq!(questions.len(), 2);

    for question in &questions {
        for seed in [0, 5, 9] {
            let prompt = &task.prompt(question, seed).unwrap()[0].content;
            let gold = question.reference.as_deref().unwrap();
            let line = prompt.lines().find(|l| l.get(3..) == Some(gold)).unwrap();
            let letter = line.chars().next().unwrap();
            let answer = task.extract(question, seed, &format!("Answer: {letter}")).unwrap();
            assert_eq!(answer.as_deref(), Some("0"), "{}: {prompt}", question.id);
        }
        assert!(task.grade(question, "0").unwrap().correct);
        assert_eq!(task.grade(question, "1").unwrap().correctness, 0.0);
    }
    assert_eq!(task.statements(&questions[1], "2").unwrap().len(), 3);
}

#[test]
fn malformed_rows_name_their_line() {
    let registry = registry_with_test_plugins(Limits::default());
    let task = registry.task("com2").unwrap();
    let file = "question,context,options,label,type\nWhat is a and b?,ctx,\"['x', 'y']\",7,2i\n";
    let rows = task.load(file.as_bytes(), "bad.csv").unwrap();
    let error = rows[0].as_ref().unwrap_err();
    assert_eq!(error.id, "line 2");
    assert!(error.message.starts_with("line 2: label"), "{}", error.message);
}

#[test]
fn wrong_options_score_their_conditions() {
    let model: Box<dyn ChatModel> = Box::new(LocalModel::load(&model_path()).unwrap());
    let registry = registry_with_model(Limits::default(), Arc::new(Mutex::new(model)));
    let task = registry.task("com2").unwrap();
    let scorer = registry.scorer("plausibility-lm").unwrap();
    let question = &load(&task)[0];

    let statements = task.statements(question, "1").unwrap();
    assert_eq!(
        statements[0],
        "PersonX works all night PersonX runs a marathon is a result of being tired."
    );
    for statement in &statements {
        let score = scorer.score(question, statement).unwrap();
        assert!(score > 0.0 && score < 1.0, "{statement}: {score}");
    }
}
