//! The task-plugin logic shared by the NLGraph tasks: loading, prompting,
//! answer extraction and grading.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wow_sdk::extract;
use wow_sdk::{Grade, ItemError, Message, Question};

use crate::graph::{self, Problem, Wording};
use crate::solve;

/// Search steps allowed per longest-path computation. The hardest problem
/// of the NLGraph shortest-path training file takes about 133 000 (see the
/// `longest_path_worst_case` test), so this leaves a 150-fold margin while
/// a pathological graph fails in seconds rather than eating the host's fuel.
pub const LONGEST_PATH_STEP_BUDGET: u64 = 20_000_000;

/// One NLGraph task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ShortestPath,
    MaxFlow,
}

/// Grading data, stored as the question payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub source: usize,
    pub target: usize,
    /// The right answer.
    pub optimum: u64,
    /// The answer that earns correctness 0: the heaviest simple path
    /// (shortest path) or twice the optimum (max flow).
    pub normaliser: u64,
}

/// One row of an NLGraph benchmark file.
#[derive(Deserialize)]
struct Row {
    question: String,
    answer: String,
}

impl Kind {
    fn wording(self) -> &'static Wording {
        match self {
            Kind::ShortestPath => &graph::SHORTEST_PATH,
            Kind::MaxFlow => &graph::MAX_FLOW,
        }
    }

    /// Name of the optimum in messages.
    fn quantity(self) -> &'static str {
        match self {
            Kind::ShortestPath => "shortest path",
            Kind::MaxFlow => "maximum flow",
        }
    }

    /// Phrases after which a response states its final answer.
    fn answer_phrases(self) -> &'static [&'static str] {
        match self {
            Kind::ShortestPath => &["total weight is", "total weight of"],
            Kind::MaxFlow => &["maximum flow is"],
        }
    }

    fn instruction(self) -> &'static str {
        match self {
            Kind::ShortestPath => "End your answer with \"the total weight is N\".",
            Kind::MaxFlow => "End your answer with \"the maximum flow is N\".",
        }
    }

    /// Solves a parsed problem, returning the optimum and the normaliser.
    fn solve(self, problem: &Problem) -> Result<(u64, u64), String> {
        let Problem { graph, source, target } = problem;
        match self {
            Kind::ShortestPath => {
                let optimum = solve::shortest_path(graph, *source, *target)
                    .ok_or_else(|| format!("node {target} is unreachable from node {source}"))?;
                let longest = solve::longest_simple_path(graph, *source, *target, LONGEST_PATH_STEP_BUDGET)
                    .map_err(|e| e.to_string())?;
                Ok((optimum, longest.weight.unwrap_or(optimum)))
            }
            Kind::MaxFlow => {
                let optimum = solve::max_flow(graph, *source, *target);
                Ok((optimum, optimum.saturating_mul(2)))
            }
        }
    }

    /// Reads the optimum from a reference answer such as "The shortest path
    /// from node 1 to node 2 is 1,4,2 with a total weight of 3" or "The
    /// maximum flow from node 3 to node 7 is 1.".
    fn reference_value(self, answer: &str) -> Option<String> {
        match self {
            Kind::ShortestPath => extract::number_after(answer, "total weight of"),
            Kind::MaxFlow => extract::last_number(answer),
        }
    }
}

/// Parses an NLGraph benchmark file: a JSON object from problem id to
/// `{question, answer, difficulty}`. Questions come in id order, numeric
/// ids by value.
pub fn load(kind: Kind, dataset: &[u8]) -> Result<Vec<Result<Question, ItemError>>, String> {
    let rows: BTreeMap<String, serde_json::Value> = serde_json::from_slice(dataset)
        .map_err(|e| format!("invalid NLGraph file: expected a JSON object of problems: {e}"))?;
    let mut ids: Vec<&String> = rows.keys().collect();
    ids.sort_by_key(|id| {
        (
            id.parse::<u64>().map_or(1, |_| 0),
            id.parse::<u64>().unwrap_or(0),
            id.as_str(),
        )
    });
    let questions = ids
        .into_iter()
        .map(|id| {
            load_row(kind, id, &rows[id]).map_err(|message| ItemError {
                id: id.clone(),
                message: format!("problem {id}: {message}"),
            })
        })
        .collect();
    Ok(questions)
}

fn load_row(kind: Kind, id: &str, value: &serde_json::Value) -> Result<Question, String> {
    let row = Row::deserialize(value).map_err(|e| format!("invalid row: {e}"))?;
    let problem = graph::parse_problem(&row.question, kind.wording()).map_err(|e| format!("unparsable graph: {e}"))?;
    let (optimum, normaliser) = kind.solve(&problem)?;
    // TODO: check that the reference path of a shortest-path answer exists
    // and has the stated weight; only the stated weight is compared now.
    let reference = kind
        .reference_value(&row.answer)
        .ok_or_else(|| format!("no {} value in the reference answer {:?}", kind.quantity(), row.answer))?;
    if reference != optimum.to_string() {
        return Err(format!(
            "reference answer {reference} disagrees with the computed {} {optimum}",
            kind.quantity()
        ));
    }
    let payload = Payload {
        source: problem.source,
        target: problem.target,
        optimum,
        normaliser,
    };
    Ok(Question {
        id: id.to_owned(),
        text: row.question,
        reference: Some(row.answer),
        payload: serde_json::to_string(&payload).expect("payload serialises"),
    })
}

/// Builds the NLGraph zero-shot prompt: the question, which ends in "A:",
/// with a line asking for the final answer in a fixed phrase.
pub fn prompt(kind: Kind, question: &Question) -> Vec<Message> {
    let text = question.text.trim_end();
    let content = match text.strip_suffix("A:") {
        Some(body) => format!("{}\n{}\nA:", body.trim_end(), kind.instruction()),
        None => format!("{text}\n{}", kind.instruction()),
    };
    vec![Message::user(&content)]
}

/// Extracts the final answer: the number after the last answer phrase,
/// else the last integer of the response.
pub fn extract(kind: Kind, response: &str) -> Option<String> {
    extract::number_after_any(response, kind.answer_phrases()).or_else(|| extract::last_integer(response))
}

/// Grades `answer` against the payload's optimum:
/// correctness = clip(1 − |answer − optimum| / (normaliser − optimum), 0, 1),
/// or exact match when the normaliser equals the optimum.
pub fn grade(question: &Question, answer: &str) -> Result<Grade, String> {
    let payload: Payload = serde_json::from_str(&question.payload)
        .map_err(|e| format!("question {}: invalid payload: {e}", question.id))?;
    let value = parse_answer(answer)?;
    let optimum = payload.optimum as f64;
    let correct = value == optimum;
    let correctness = if payload.normaliser == payload.optimum {
        if correct { 1.0 } else { 0.0 }
    } else {
        let span = payload.normaliser.abs_diff(payload.optimum) as f64;
        (1.0 - (value - optimum).abs() / span).clamp(0.0, 1.0)
    };
    Ok(Grade { correctness, correct })
}

/// Parses a decimal answer such as `-12` or `3.5`. Digits beyond `f64`
/// range give an infinite value, which grades as correctness 0.
fn parse_answer(answer: &str) -> Result<f64, String> {
    let trimmed = answer.trim();
    let unsigned = trimmed.strip_prefix('-').unwrap_or(trimmed);
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(integer) || !is_digits(fraction) {
        return Err(format!("answer {answer:?} is not a decimal number"));
    }
    trimmed
        .parse()
        .map_err(|e| format!("answer {answer:?} is not a decimal number: {e}"))
}
