//! Knowledge Crosswords puzzles built from any knowledge graph in TSV form,
//! written in the official JSONL layout that the `knowledge-crosswords`
//! task plugin reads.

mod build;
mod graph;
mod solve;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use build::{BuildSummary, DISTRACTORS, MAX_CONSTRAINTS, build_puzzles};
pub use graph::{EntityId, KnowledgeGraph};
pub use solve::{Constraint, Term, solve};

/// Blanks per puzzle.
pub const BLANKS: usize = 3;

/// Errors of building or checking puzzles.
#[derive(Debug, thiserror::Error)]
pub enum KcError {
    #[error("failed to access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("invalid triples file {path}: {message}")]
    InvalidTriples { path: PathBuf, message: String },
}

/// One puzzle in the official Knowledge Crosswords layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Puzzle {
    pub id: String,
    pub source: Vec<String>,
    pub relation: Vec<String>,
    pub target: Vec<String>,
    /// Knowledge triples, one list per blank in `blanks` order.
    #[serde(rename = "K", with = "knowledge_by_blank")]
    pub knowledge: Vec<Vec<[String; 3]>>,
    /// Candidates per blank, in `blanks` order.
    #[serde(with = "options_by_blank")]
    pub options: Vec<Vec<String>>,
    pub answer_all: Vec<String>,
    pub blanks: Vec<String>,
}

/// Returns the name of blank `i` as the official files write it: `blank 1`, ….
pub fn blank_name(i: usize) -> String {
    format!("blank {}", i + 1)
}

/// Solves `puzzle` over the whole `graph` and checks that its answer is
/// the only assignment that satisfies every constraint.
pub fn verify(graph: &KnowledgeGraph, puzzle: &Puzzle) -> Result<(), String> {
    let constraints = constraints_of(graph, puzzle)?;
    let solutions = solve(graph, puzzle.blanks.len(), &constraints, 2);
    let named: Vec<Vec<&str>> = solutions
        .iter()
        .map(|s| s.iter().map(|&e| graph.entities[e].as_str()).collect())
        .collect();
    match named.as_slice() {
        [only] if *only == puzzle.answer_all => Ok(()),
        [only] => Err(format!(
            "the only solution {only:?} is not the answer {:?}",
            puzzle.answer_all
        )),
        [] => Err("no assignment satisfies every constraint".into()),
        _ => Err(format!(
            "more than one solution, for example {:?} and {:?}",
            named[0], named[1]
        )),
    }
}

fn constraints_of(graph: &KnowledgeGraph, puzzle: &Puzzle) -> Result<Vec<Constraint>, String> {
    let term = |name: &str| -> Result<Term, String> {
        if let Some(i) = puzzle.blanks.iter().position(|b| b == name) {
            return Ok(Term::Blank(i));
        }
        graph
            .entity_id(name)
            .map(Term::Entity)
            .ok_or_else(|| format!("entity {name:?} is not in the graph"))
    };
    puzzle
        .source
        .iter()
        .zip(&puzzle.relation)
        .zip(&puzzle.target)
        .map(|((head, relation), tail)| {
            Ok(Constraint {
                head: term(head)?,
                relation: graph
                    .relation_id(relation)
                    .ok_or_else(|| format!("relation {relation:?} is not in the graph"))?,
                tail: term(tail)?,
            })
        })
        .collect()
}

/// Serialises per-blank lists as an object keyed `blank 1`, `blank 2`, ….
macro_rules! by_blank {
    ($module:ident, $item:ty) => {
        mod $module {
            use super::*;

            pub fn serialize<S: serde::Serializer>(lists: &[$item], serializer: S) -> Result<S::Ok, S::Error> {
                let map: BTreeMap<String, &$item> = lists
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (blank_name(i), l))
                    .collect();
                map.serialize(serializer)
            }

            pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<$item>, D::Error> {
                let map = BTreeMap::<String, $item>::deserialize(deserializer)?;
                (0..map.len())
                    .map(|i| {
                        map.get(&blank_name(i))
                            .cloned()
                            .ok_or_else(|| serde::de::Error::custom(format!("missing key {:?}", blank_name(i))))
                    })
                    .collect()
            }
        }
    };
}

by_blank!(knowledge_by_blank, Vec<[String; 3]>);
by_blank!(options_by_blank, Vec<String>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puzzles_of_the_sample_graph_verify() {
        let mut tsv = String::from("head\trelation\ttail\n");
        let countries = ["Aland", "Borea", "Cyra", "Dune", "Eryn", "Fenn"];
        for (i, country) in countries.iter().enumerate() {
            tsv.push_str(&format!("City{i}\tcapital of\t{country}\n"));
            tsv.push_str(&format!("{country}\tlocated in\tRegion{}\n", i % 2));
            let neighbour = countries[(i + 1) % countries.len()];
            tsv.push_str(&format!("{country}\tshares border with\t{neighbour}\n"));
            tsv.push_str(&format!("{neighbour}\tshares border with\t{country}\n"));
        }
        let graph = KnowledgeGraph::parse_tsv(&tsv).unwrap();
        let (puzzles, summary) = build_puzzles(&graph, 5, 1);

        assert!(!puzzles.is_empty(), "{summary:?}");
        for puzzle in &puzzles {
            verify(&graph, puzzle).unwrap_or_else(|e| panic!("{}: {e}", puzzle.id));
            let line = serde_json::to_string(puzzle).unwrap();
            assert_eq!(&serde_json::from_str::<Puzzle>(&line).unwrap(), puzzle);
        }
    }
}
