//! A backtracking constraint solver over the whole knowledge graph: which
//! assignments of distinct entities to the blanks make every constraint a
//! triple of the graph.

use super::graph::{EntityId, KnowledgeGraph, RelationId};

/// One end of a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    Blank(usize),
    Entity(EntityId),
}

/// `(head, relation, tail)` with blanks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constraint {
    pub head: Term,
    pub relation: RelationId,
    pub tail: Term,
}

impl Constraint {
    fn mentions(&self, blank: usize) -> bool {
        self.head == Term::Blank(blank) || self.tail == Term::Blank(blank)
    }
}

/// Returns up to `limit` assignments of distinct entities to blanks
/// `0..blanks` that satisfy every constraint.
pub fn solve(graph: &KnowledgeGraph, blanks: usize, constraints: &[Constraint], limit: usize) -> Vec<Vec<EntityId>> {
    let mut search = Search {
        graph,
        constraints,
        assignment: vec![None; blanks],
        solutions: Vec::new(),
        limit,
    };
    search.extend();
    search.solutions
}

struct Search<'a> {
    graph: &'a KnowledgeGraph,
    constraints: &'a [Constraint],
    assignment: Vec<Option<EntityId>>,
    solutions: Vec<Vec<EntityId>>,
    limit: usize,
}

impl Search<'_> {
    fn extend(&mut self) {
        if self.solutions.len() >= self.limit {
            return;
        }
        let Some(blank) = self.next_blank() else {
            self.solutions
                .push(self.assignment.iter().map(|e| e.unwrap()).collect());
            return;
        };
        for candidate in self.candidates(blank) {
            if self.assignment.contains(&Some(candidate)) {
                continue;
            }
            self.assignment[blank] = Some(candidate);
            if self.consistent(blank) {
                self.extend();
            }
            self.assignment[blank] = None;
        }
    }

    /// The unassigned blank with the fewest candidates, so the search
    /// branches as little as possible.
    fn next_blank(&self) -> Option<usize> {
        (0..self.assignment.len())
            .filter(|&b| self.assignment[b].is_none())
            .min_by_key(|&b| self.candidates(b).len())
    }

    /// Entities that satisfy one constraint linking `blank` to a known
    /// entity or an assigned blank; every entity when there is none.
    fn candidates(&self, blank: usize) -> Vec<EntityId> {
        let mut best: Option<Vec<EntityId>> = None;
        for constraint in self.constraints.iter().filter(|c| c.mentions(blank)) {
            let (other, blank_is_head) = if constraint.head == Term::Blank(blank) {
                (constraint.tail, true)
            } else {
                (constraint.head, false)
            };
            let Some(anchor) = self.resolve(other) else {
                continue;
            };
            let matching: Vec<EntityId> = self
                .graph
                .incident(anchor)
                .iter()
                .filter(|e| e.relation == constraint.relation)
                .filter_map(|e| match blank_is_head {
                    true if e.tail == anchor => Some(e.head),
                    false if e.head == anchor => Some(e.tail),
                    _ => None,
                })
                .collect();
            if best.as_ref().is_none_or(|b| matching.len() < b.len()) {
                best = Some(matching);
            }
        }
        best.unwrap_or_else(|| (0..self.graph.entities.len()).collect())
    }

    fn resolve(&self, term: Term) -> Option<EntityId> {
        match term {
            Term::Entity(entity) => Some(entity),
            Term::Blank(blank) => self.assignment[blank],
        }
    }

    /// Whether every constraint of `blank` whose ends are known holds.
    fn consistent(&self, blank: usize) -> bool {
        self.constraints.iter().filter(|c| c.mentions(blank)).all(|c| {
            match (self.resolve(c.head), self.resolve(c.tail)) {
                (Some(head), Some(tail)) => self.graph.contains(head, c.relation, tail),
                _ => true,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "head\trelation\ttail\n\
                       Paris\tcapital of\tFrance\nMadrid\tcapital of\tSpain\nLima\tcapital of\tPeru\n\
                       France\tshares border with\tSpain\nSpain\tshares border with\tFrance\n\
                       Peru\tshares border with\tChile\nChile\tshares border with\tPeru\n\
                       France\tlocated in\tEurope\nSpain\tlocated in\tEurope\nPeru\tlocated in\tSouth America\n";

    fn graph() -> KnowledgeGraph {
        KnowledgeGraph::parse_tsv(TSV).unwrap()
    }

    fn constraint(graph: &KnowledgeGraph, head: Term, relation: &str, tail: Term) -> Constraint {
        Constraint {
            head,
            relation: graph.relation_id(relation).unwrap(),
            tail,
        }
    }

    #[test]
    fn symmetric_pattern_has_two_solutions() {
        let graph = graph();
        let borders = constraint(&graph, Term::Blank(0), "shares border with", Term::Blank(1));
        let europe = Term::Entity(graph.entity_id("Europe").unwrap());
        let in_europe = constraint(&graph, Term::Blank(0), "located in", europe);
        let solutions = solve(&graph, 2, &[borders, in_europe], 10);
        assert_eq!(solutions.len(), 2, "{solutions:?}");
    }

    #[test]
    fn capital_pins_the_pattern() {
        let graph = graph();
        let id = |name| graph.entity_id(name).unwrap();
        let borders = constraint(&graph, Term::Blank(0), "shares border with", Term::Blank(1));
        let capital = constraint(&graph, Term::Blank(2), "capital of", Term::Blank(0));
        let madrid = constraint(&graph, Term::Entity(id("Madrid")), "capital of", Term::Blank(1));
        let solutions = solve(&graph, 3, &[borders, capital, madrid], 10);
        assert_eq!(solutions, [vec![id("France"), id("Spain"), id("Paris")]]);
    }

    #[test]
    fn blanks_take_distinct_entities() {
        let graph = graph();
        let europe = Term::Entity(graph.entity_id("Europe").unwrap());
        let first = constraint(&graph, Term::Blank(0), "located in", europe);
        let second = constraint(&graph, Term::Blank(1), "located in", europe);
        let solutions = solve(&graph, 2, &[first, second], 10);
        assert_eq!(solutions.len(), 2);
        assert!(solutions.iter().all(|s| s[0] != s[1]));
    }

    #[test]
    fn limit_stops_the_search() {
        let graph = graph();
        let europe = Term::Entity(graph.entity_id("Europe").unwrap());
        let first = constraint(&graph, Term::Blank(0), "located in", europe);
        assert_eq!(solve(&graph, 2, &[first], 3).len(), 3);
    }
}
