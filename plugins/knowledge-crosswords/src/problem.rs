//! Knowledge Crosswords problems in the official JSONL layout.
//!
//! A row lists its constraints as parallel `source`, `relation` and
//! `target` lists whose entries are entity names or blank names such as
//! `blank 1`; `blanks` names the blanks, `options` maps each blank to its
//! candidate entities, `answer_all` holds the right entity per blank in
//! `blanks` order, and the optional `K` holds knowledge triples, as an
//! object of triple lists or as one list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wow_sdk::{ItemError, Question};

/// Blanks per kept problem; rows with another count are skipped.
pub const BLANKS: usize = 3;

/// One `(head, relation, tail)` triple.
pub type Triple = [String; 3];

/// A parsed problem, stored as the question payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub blanks: Vec<String>,
    pub constraints: Vec<Triple>,
    pub knowledge: Vec<Triple>,
    /// Candidate entities per blank, in `blanks` order.
    pub options: Vec<Vec<String>>,
    /// The right entity per blank, in `blanks` order.
    pub answer: Vec<String>,
}

impl Problem {
    /// Wrong candidates of blank `i`, in file order without repeats.
    pub fn wrong_options(&self, i: usize) -> Vec<&str> {
        let mut wrong: Vec<&str> = Vec::new();
        for option in &self.options[i] {
            if *option != self.answer[i] && !wrong.contains(&option.as_str()) {
                wrong.push(option);
            }
        }
        wrong
    }
}

#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    id: Option<Value>,
    source: Vec<String>,
    relation: Vec<String>,
    target: Vec<String>,
    #[serde(rename = "K", default)]
    knowledge: Option<Value>,
    options: BTreeMap<String, Vec<String>>,
    answer_all: Vec<String>,
    blanks: Vec<String>,
}

/// Parses a JSONL file of problems and keeps those with three blanks. A
/// malformed line becomes an item error naming its line number. A question
/// id is the row's `id` when it has one, else its line number.
pub fn load(dataset: &[u8]) -> Result<Vec<Result<Question, ItemError>>, String> {
    let text =
        std::str::from_utf8(dataset).map_err(|e| format!("invalid Knowledge Crosswords file: not UTF-8: {e}"))?;
    let mut questions = Vec::new();
    let mut skipped = 0;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let item_error = |id: String, message: String| ItemError {
            id,
            message: format!("line {number}: {message}"),
        };
        let row: Row = match serde_json::from_str(line) {
            Ok(row) => row,
            Err(e) => {
                let message = format!("invalid Knowledge Crosswords row: {e}");
                questions.push(Err(item_error(format!("line {number}"), message)));
                continue;
            }
        };
        let id = row.id.as_ref().map_or_else(|| number.to_string(), id_text);
        if row.blanks.len() != BLANKS {
            skipped += 1;
            continue;
        }
        questions.push(parse_row(row, &id).map_err(|message| item_error(id, message)));
    }
    if skipped > 0 {
        wow_sdk::info!("skipped {skipped} problems with other than {BLANKS} blanks");
    }
    Ok(questions)
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn parse_row(row: Row, id: &str) -> Result<Question, String> {
    if row.source.len() != row.relation.len() || row.source.len() != row.target.len() {
        return Err(format!(
            "source, relation and target have {}, {} and {} entries; they must be parallel",
            row.source.len(),
            row.relation.len(),
            row.target.len()
        ));
    }
    if row.answer_all.len() != BLANKS {
        return Err(format!(
            "answer_all has {} entries for {BLANKS} blanks",
            row.answer_all.len()
        ));
    }

    let mut options = Vec::with_capacity(BLANKS);
    for (blank, answer) in row.blanks.iter().zip(&row.answer_all) {
        let candidates = row
            .options
            .get(blank)
            .ok_or_else(|| format!("no options for {blank:?}"))?;
        if !candidates.contains(answer) {
            return Err(format!("the answer {answer:?} of {blank:?} is not among its options"));
        }
        if candidates.iter().all(|c| c == answer) {
            return Err(format!("{blank:?} has no wrong option"));
        }
        options.push(candidates.clone());
    }

    let constraints: Vec<Triple> = row
        .source
        .into_iter()
        .zip(row.relation)
        .zip(row.target)
        .map(|((s, r), t)| [s, r, t])
        .collect();
    if let Some(blank) = row
        .blanks
        .iter()
        .find(|blank| !constraints.iter().any(|c| c[0] == **blank || c[2] == **blank))
    {
        return Err(format!("no constraint mentions {blank:?}"));
    }

    let problem = Problem {
        blanks: row.blanks,
        constraints,
        knowledge: row
            .knowledge
            .as_ref()
            .map(parse_knowledge)
            .transpose()?
            .unwrap_or_default(),
        options,
        answer: row.answer_all,
    };
    Ok(Question {
        id: id.to_owned(),
        text: constraint_text(&problem.constraints),
        reference: Some(problem.answer.join(", ")),
        payload: serde_json::to_string(&problem).expect("payload serialises"),
    })
}

/// Reads `K`: an object whose values are triple lists, or one triple list.
fn parse_knowledge(value: &Value) -> Result<Vec<Triple>, String> {
    let lists: Vec<&Value> = match value {
        Value::Object(map) => map.values().collect(),
        Value::Array(_) => vec![value],
        Value::Null => Vec::new(),
        other => return Err(format!("K must be an object or a list of triples, found {other}")),
    };
    let mut triples = Vec::new();
    for list in lists {
        let triple_list: Vec<Triple> =
            serde_json::from_value(list.clone()).map_err(|e| format!("K holds an invalid triple list: {e}"))?;
        triples.extend(triple_list);
    }
    Ok(triples)
}

/// Formats triples as `(head, relation, tail); …`.
pub fn constraint_text(triples: &[Triple]) -> String {
    triples
        .iter()
        .map(|[h, r, t]| format!("({h}, {r}, {t})"))
        .collect::<Vec<_>>()
        .join("; ")
}
