//! Building Knowledge Crosswords puzzles from a knowledge graph.
//!
//! A puzzle starts from a random triple, whose two entities become blanks,
//! and a random edge from one of them to a third blank. Every triple among
//! the three blanks is a constraint. Triples that link a blank to a known
//! entity are then added one at a time, each time the one that leaves the
//! fewest solutions, until the solver finds exactly one assignment over
//! the whole graph; puzzles that stay ambiguous are dropped.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use super::graph::{Edge, EntityId, KnowledgeGraph};
use super::solve::{Constraint, Term, solve};
use super::{BLANKS, Puzzle, blank_name};

/// Most constraints in one puzzle.
pub const MAX_CONSTRAINTS: usize = 6;

/// Candidates per blank: the answer and this many distractors at most.
pub const DISTRACTORS: usize = 3;

/// Solutions counted per candidate constraint while choosing the next one.
const COUNT_LIMIT: usize = 200;

/// Counts of a build, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BuildSummary {
    pub attempts: usize,
    pub built: usize,
    /// Attempts dropped because no set of constraints made the answer unique.
    pub ambiguous: usize,
    /// Attempts dropped because a blank had no distractor of its kind, or
    /// the same blanks were drawn before.
    pub unusable: usize,
}

/// Builds up to `count` puzzles, trying at most `20 * count` starting
/// triples drawn with `seed`.
pub fn build_puzzles(graph: &KnowledgeGraph, count: usize, seed: u64) -> (Vec<Puzzle>, BuildSummary) {
    let mut rng = StdRng::seed_from_u64(seed);
    let edges: Vec<Edge> = graph.edges().copied().collect();
    let mut seen = BTreeSet::new();
    let mut puzzles = Vec::new();
    let mut summary = BuildSummary::default();

    while puzzles.len() < count && summary.attempts < count.saturating_mul(20) {
        summary.attempts += 1;
        let Some(blanks) = draw_blanks(graph, &edges, &mut rng) else {
            summary.unusable += 1;
            continue;
        };
        let mut key = blanks.clone();
        key.sort_unstable();
        if !seen.insert(key) {
            summary.unusable += 1;
            continue;
        }
        let Some(constraints) = unique_constraints(graph, &blanks, &mut rng) else {
            summary.ambiguous += 1;
            continue;
        };
        match assemble(graph, &blanks, &constraints, puzzles.len(), &mut rng) {
            Some(puzzle) => puzzles.push(puzzle),
            None => summary.unusable += 1,
        }
    }
    summary.built = puzzles.len();
    (puzzles, summary)
}

/// Draws three linked entities: both ends of a random triple and a
/// neighbour of one of them.
fn draw_blanks(graph: &KnowledgeGraph, edges: &[Edge], rng: &mut StdRng) -> Option<Vec<EntityId>> {
    let first = edges.choose(rng)?;
    let (a, b) = (first.head, first.tail);
    let from = if rng.random_bool(0.5) { a } else { b };
    let neighbours: Vec<EntityId> = graph
        .incident(from)
        .iter()
        .map(|e| if e.head == from { e.tail } else { e.head })
        .filter(|&c| c != a && c != b)
        .collect();
    let c = *neighbours.choose(rng)?;
    let mut blanks = vec![a, b, c];
    blanks.shuffle(rng);
    Some(blanks)
}

/// Returns constraints under which `blanks` is the only solution, or
/// `None` when the candidate constraints run out first.
fn unique_constraints(graph: &KnowledgeGraph, blanks: &[EntityId], rng: &mut StdRng) -> Option<Vec<Constraint>> {
    let term = |entity: EntityId| match blanks.iter().position(|&b| b == entity) {
        Some(i) => Term::Blank(i),
        None => Term::Entity(entity),
    };
    let mut internal = BTreeSet::new();
    let mut anchors = Vec::new();
    for &blank in blanks {
        for edge in graph.incident(blank) {
            let constraint = Constraint {
                head: term(edge.head),
                relation: edge.relation,
                tail: term(edge.tail),
            };
            let both_blanks = blanks.contains(&edge.head) && blanks.contains(&edge.tail);
            if both_blanks {
                internal.insert(*edge);
            } else {
                anchors.push(constraint);
            }
        }
    }
    let mut constraints: Vec<Constraint> = internal
        .into_iter()
        .map(|e| Constraint {
            head: term(e.head),
            relation: e.relation,
            tail: term(e.tail),
        })
        .collect();
    anchors.shuffle(rng);

    loop {
        let solutions = solve(graph, BLANKS, &constraints, 2);
        if solutions.len() == 1 {
            return (solutions[0] == blanks).then_some(constraints);
        }
        if constraints.len() >= MAX_CONSTRAINTS || anchors.is_empty() {
            return None;
        }
        let best = (0..anchors.len()).min_by_key(|&i| {
            let mut trial = constraints.clone();
            trial.push(anchors[i]);
            solve(graph, BLANKS, &trial, COUNT_LIMIT).len()
        })?;
        constraints.push(anchors.swap_remove(best));
    }
}

/// Writes the puzzle in the official layout: options of the blank's kind,
/// preferring distractors that satisfy more of the blank's constraints,
/// and knowledge triples that relate the options to the constraints.
fn assemble(
    graph: &KnowledgeGraph,
    blanks: &[EntityId],
    constraints: &[Constraint],
    index: usize,
    rng: &mut StdRng,
) -> Option<Puzzle> {
    let name = |term: Term| match term {
        Term::Blank(i) => blank_name(i),
        Term::Entity(entity) => graph.entities[entity].clone(),
    };
    let mut options = Vec::with_capacity(BLANKS);
    for (i, &answer) in blanks.iter().enumerate() {
        let distractors = distractors(graph, blanks, constraints, i, rng);
        if distractors.is_empty() {
            return None;
        }
        let mut candidates = vec![answer];
        candidates.extend(distractors);
        candidates.shuffle(rng);
        options.push(candidates);
    }

    let knowledge = (0..BLANKS)
        .map(|i| knowledge_for(graph, constraints, &options, i))
        .collect();
    Some(Puzzle {
        id: format!("kc-{index}"),
        source: constraints.iter().map(|c| name(c.head)).collect(),
        relation: constraints
            .iter()
            .map(|c| graph.relations[c.relation].clone())
            .collect(),
        target: constraints.iter().map(|c| name(c.tail)).collect(),
        knowledge,
        options: options
            .iter()
            .map(|ids| ids.iter().map(|&e| graph.entities[e].clone()).collect())
            .collect(),
        answer_all: blanks.iter().map(|&e| graph.entities[e].clone()).collect(),
        blanks: (0..BLANKS).map(blank_name).collect(),
    })
}

/// Entities of the kind of blank `i` other than the blanks, those meeting
/// more of its constraints with known entities first, ties in random order.
fn distractors(
    graph: &KnowledgeGraph,
    blanks: &[EntityId],
    constraints: &[Constraint],
    i: usize,
    rng: &mut StdRng,
) -> Vec<EntityId> {
    let mut pool: Vec<EntityId> = graph.same_kind(blanks[i]).filter(|e| !blanks.contains(e)).collect();
    pool.shuffle(rng);
    let satisfied = |entity: EntityId| {
        constraints
            .iter()
            .filter(|c| match (c.head, c.tail) {
                (Term::Blank(b), Term::Entity(t)) if b == i => graph.contains(entity, c.relation, t),
                (Term::Entity(h), Term::Blank(b)) if b == i => graph.contains(h, c.relation, entity),
                _ => false,
            })
            .count()
    };
    pool.sort_by_key(|&entity| std::cmp::Reverse(satisfied(entity)));
    pool.truncate(DISTRACTORS);
    pool
}

/// Triples between an option of blank `i` and a known entity or an option
/// of another blank, over the relations of the constraints on blank `i`.
fn knowledge_for(
    graph: &KnowledgeGraph,
    constraints: &[Constraint],
    options: &[Vec<EntityId>],
    i: usize,
) -> Vec<[String; 3]> {
    let mut triples = BTreeSet::new();
    for constraint in constraints {
        let other = match (constraint.head, constraint.tail) {
            (Term::Blank(b), other) | (other, Term::Blank(b)) if b == i => other,
            _ => continue,
        };
        let others: Vec<EntityId> = match other {
            Term::Entity(entity) => vec![entity],
            Term::Blank(b) => options[b].clone(),
        };
        for &option in &options[i] {
            for &partner in &others {
                let (head, tail) = if constraint.head == Term::Blank(i) {
                    (option, partner)
                } else {
                    (partner, option)
                };
                if graph.contains(head, constraint.relation, tail) {
                    triples.insert([
                        graph.entities[head].clone(),
                        graph.relations[constraint.relation].clone(),
                        graph.entities[tail].clone(),
                    ]);
                }
            }
        }
    }
    triples.into_iter().collect()
}
