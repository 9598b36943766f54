//! Extraction and grading of hand-made responses.

use nlgraph::task::{self, Kind, Payload};
use wow_sdk::Question;

fn question(optimum: u64, normaliser: u64) -> Question {
    let payload = Payload {
        source: 0,
        target: 2,
        optimum,
        normaliser,
    };
    Question {
        id: "7".into(),
        text: "Q: Give the shortest path from node 0 to node 2.\nA:".into(),
        reference: None,
        payload: serde_json::to_string(&payload).unwrap(),
    }
}

fn correctness(q: &Question, answer: &str) -> f64 {
    task::grade(q, answer).unwrap().correctness
}

#[test]
fn extract_shortest_path_phrases() {
    let extract = |r: &str| task::extract(Kind::ShortestPath, r);
    assert_eq!(extract("Path 0,1,2, so the total weight is 7."), Some("7".into()));
    assert_eq!(
        extract("The path is 0,1,2 with a total weight of 12"),
        Some("12".into())
    );
    assert_eq!(
        extract("total weight is 9; no wait, the total weight of it is 8, 0,1,2"),
        Some("9".into())
    );
    assert_eq!(
        extract("total weight of 9, then the total weight is 8. Path 0,1,2"),
        Some("8".into())
    );
}

#[test]
fn extract_falls_back_to_last_integer() {
    assert_eq!(
        task::extract(Kind::ShortestPath, "0 -> 1 -> 2, weighing 5 in total"),
        Some("5".into())
    );
    assert_eq!(
        task::extract(Kind::MaxFlow, "The maximum flow from node 3 to node 7 is 18."),
        Some("18".into())
    );
}

#[test]
fn extract_max_flow_phrase() {
    let response = "Augment 4, then 3: the maximum flow is 7. Check 2 paths.";
    assert_eq!(task::extract(Kind::MaxFlow, response), Some("7".into()));
}

#[test]
fn extract_negative_and_huge() {
    assert_eq!(
        task::extract(Kind::MaxFlow, "the maximum flow is -5"),
        Some("-5".into())
    );
    let huge = "98765432109876543210987654321";
    let response = format!("the total weight is {huge}");
    assert_eq!(task::extract(Kind::ShortestPath, &response), Some(huge.into()));
}

#[test]
fn extract_unparsable_is_none() {
    assert_eq!(task::extract(Kind::ShortestPath, "I cannot tell."), None);
    assert_eq!(task::extract(Kind::MaxFlow, ""), None);
}

#[test]
fn grade_right_answer() {
    let grade = task::grade(&question(10, 30), "10").unwrap();
    assert!(grade.correct);
    assert_eq!(grade.correctness, 1.0);
}

#[test]
fn grade_near_and_far() {
    let q = question(10, 30);
    assert_eq!(correctness(&q, "15"), 0.75);
    assert_eq!(correctness(&q, "5"), 0.75);
    assert_eq!(correctness(&q, "30"), 0.0);
    assert_eq!(correctness(&q, "1000"), 0.0);
    assert!(!task::grade(&q, "15").unwrap().correct);
}

#[test]
fn grade_negative_fraction_and_huge() {
    let q = question(10, 30);
    assert_eq!(correctness(&q, "-10"), 0.0);
    assert_eq!(correctness(&q, "12.5"), 0.875);
    assert_eq!(correctness(&q, "98765432109876543210987654321"), 0.0);
    assert_eq!(correctness(&q, &"9".repeat(400)), 0.0);
}

#[test]
fn grade_without_span_is_exact_match() {
    let q = question(0, 0);
    assert_eq!(correctness(&q, "0"), 1.0);
    assert_eq!(correctness(&q, "1"), 0.0);
    let q = question(4, 4);
    assert!(task::grade(&q, "4").unwrap().correct);
    assert_eq!(correctness(&q, "5"), 0.0);
}

#[test]
fn grade_rejects_unparsable_answer() {
    let q = question(10, 30);
    for answer in ["", "ten", "1e3", "inf", "NaN", "1.", "--1", "1,000"] {
        assert!(task::grade(&q, answer).is_err(), "{answer:?} should be rejected");
    }
}

#[test]
fn grade_rejects_bad_payload() {
    let mut q = question(10, 30);
    q.payload = "{}".into();
    let error = task::grade(&q, "10").unwrap_err();
    assert!(error.starts_with("question 7: invalid payload"), "{error}");
}

#[test]
fn load_reports_bad_rows() {
    let dataset = br#"{
        "0": {"question": "the nodes are numbered from 0 to 1, and the edges are:\nan edge between node 0 and node 1 with weight 3.\nQ: Give the shortest path from node 0 to node 1.\nA:", "answer": "... with a total weight of 4"},
        "1": {"question": "no graph here", "answer": "... with a total weight of 4"},
        "2": {"answer": "... with a total weight of 4"}
    }"#;
    let rows = task::load(Kind::ShortestPath, dataset).unwrap();
    let messages: Vec<String> = rows.iter().map(|r| r.as_ref().unwrap_err().message.clone()).collect();
    assert_eq!(
        messages[0],
        "problem 0: reference answer 4 disagrees with the computed shortest path 3"
    );
    assert!(
        messages[1].starts_with("problem 1: unparsable graph: missing"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].starts_with("problem 2: invalid row: missing field `question`"),
        "{}",
        messages[2]
    );
}

#[test]
fn load_rejects_invalid_json() {
    let error = task::load(Kind::MaxFlow, b"[1, 2").unwrap_err();
    assert!(error.starts_with("invalid NLGraph file"), "{error}");
}

#[test]
fn load_builds_payload_and_prompt() {
    let dataset = br#"{"5": {"question": "In an undirected graph, the nodes are numbered from 0 to 2, and the edges are:\nan edge between node 0 and node 1 with weight 3,\nan edge between node 1 and node 2 with weight 4,\nan edge between node 0 and node 2 with weight 9.\nQ: Give the shortest path from node 0 to node 2.\nA:", "answer": "The shortest path from node 0 to node 2 is 0,1,2 with a total weight of 7", "difficulty": "easy"}}"#;
    let rows = task::load(Kind::ShortestPath, dataset).unwrap();
    let q = rows[0].as_ref().unwrap();
    let payload: Payload = serde_json::from_str(&q.payload).unwrap();
    assert_eq!(
        payload,
        Payload {
            source: 0,
            target: 2,
            optimum: 7,
            normaliser: 9
        }
    );
    let prompt = task::prompt(Kind::ShortestPath, q);
    assert_eq!(prompt.len(), 1);
    assert_eq!(prompt[0].role, "user");
    assert!(
        prompt[0]
            .content
            .ends_with("from node 0 to node 2.\nEnd your answer with \"the total weight is N\".\nA:")
    );
}
