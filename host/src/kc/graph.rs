//! A knowledge graph read from a TSV file of `head`, `relation`, `tail`
//! triples, with indexes for the puzzle builder and the solver.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::KcError;

/// Index of an entity in [`KnowledgeGraph::entities`].
pub type EntityId = usize;
/// Index of a relation in [`KnowledgeGraph::relations`].
pub type RelationId = usize;

/// One triple, as ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub head: EntityId,
    pub relation: RelationId,
    pub tail: EntityId,
}

/// The triples of a TSV file with lookups by entity and relation.
#[derive(Debug, Default)]
pub struct KnowledgeGraph {
    pub entities: Vec<String>,
    pub relations: Vec<String>,
    entity_ids: BTreeMap<String, EntityId>,
    relation_ids: BTreeMap<String, RelationId>,
    edges: BTreeSet<Edge>,
    /// Edges that touch each entity, as head or tail.
    incident: Vec<Vec<Edge>>,
    /// Kind of each entity: entities share a kind when they play a common
    /// role (head or tail of one relation), directly or through others.
    kinds: Vec<usize>,
    /// Triples skipped because head and tail are the same name.
    pub self_loops: usize,
}

impl KnowledgeGraph {
    /// Reads a TSV file with a `head`, `relation`, `tail` header line.
    pub fn read_tsv(path: &Path) -> Result<Self, KcError> {
        let text = std::fs::read_to_string(path).map_err(|source| KcError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_tsv(&text).map_err(|message| KcError::InvalidTriples {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TSV text; the first line must be the `head relation tail`
    /// header, and blank lines are skipped.
    pub fn parse_tsv(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate();
        let header = lines.next().map(|(_, line)| line.trim_end_matches('\r'));
        if header != Some("head\trelation\ttail") {
            return Err(format!(
                "line 1: expected the header `head<TAB>relation<TAB>tail`, found {header:?}"
            ));
        }

        let mut graph = KnowledgeGraph::default();
        for (i, line) in lines {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
            let [head, relation, tail] = fields[..] else {
                return Err(format!(
                    "line {}: expected 3 tab-separated fields, found {}",
                    i + 1,
                    fields.len()
                ));
            };
            if head.is_empty() || relation.is_empty() || tail.is_empty() {
                return Err(format!("line {}: a field of {line:?} is empty", i + 1));
            }
            // A name is one entity, so a city-state whose capital has its
            // name ("Monaco capital of Monaco") would be a self-loop.
            if head == tail {
                graph.self_loops += 1;
                continue;
            }
            graph.insert(head, relation, tail);
        }
        if graph.edges.is_empty() {
            return Err("the file has no triples".into());
        }
        graph.assign_kinds();
        Ok(graph)
    }

    fn insert(&mut self, head: &str, relation: &str, tail: &str) {
        let head = self.entity_id_or_insert(head);
        let tail = self.entity_id_or_insert(tail);
        let relation = match self.relation_ids.get(relation) {
            Some(&id) => id,
            None => {
                self.relations.push(relation.to_owned());
                self.relation_ids.insert(relation.to_owned(), self.relations.len() - 1);
                self.relations.len() - 1
            }
        };
        let edge = Edge { head, relation, tail };
        if self.edges.insert(edge) {
            self.incident[head].push(edge);
            self.incident[tail].push(edge);
        }
    }

    fn entity_id_or_insert(&mut self, name: &str) -> EntityId {
        if let Some(&id) = self.entity_ids.get(name) {
            return id;
        }
        self.entities.push(name.to_owned());
        self.incident.push(Vec::new());
        self.entity_ids.insert(name.to_owned(), self.entities.len() - 1);
        self.entities.len() - 1
    }

    /// Groups entities into kinds with a union-find over roles: each role
    /// (relation, head or tail) starts alone, and the roles of one entity
    /// are merged, so countries (head of `located in`, tail of `capital
    /// of`) form one kind and cities another.
    fn assign_kinds(&mut self) {
        let mut parent: Vec<usize> = (0..self.relations.len() * 2).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        let roles = |entity: EntityId, edges: &[Edge]| -> Vec<usize> {
            edges
                .iter()
                .map(|e| e.relation * 2 + usize::from(e.tail == entity))
                .collect()
        };
        for entity in 0..self.entities.len() {
            let roles = roles(entity, &self.incident[entity]);
            for pair in roles.windows(2) {
                let (a, b) = (find(&mut parent, pair[0]), find(&mut parent, pair[1]));
                parent[a] = b;
            }
        }
        self.kinds = (0..self.entities.len())
            .map(|entity| {
                let role = roles(entity, &self.incident[entity][..1])[0];
                find(&mut parent, role)
            })
            .collect();
    }

    pub fn entity_id(&self, name: &str) -> Option<EntityId> {
        self.entity_ids.get(name).copied()
    }

    pub fn relation_id(&self, name: &str) -> Option<RelationId> {
        self.relation_ids.get(name).copied()
    }

    pub fn contains(&self, head: EntityId, relation: RelationId, tail: EntityId) -> bool {
        self.edges.contains(&Edge { head, relation, tail })
    }

    /// Edges that touch `entity`, as head or tail.
    pub fn incident(&self, entity: EntityId) -> &[Edge] {
        &self.incident[entity]
    }

    pub fn edges(&self) -> impl Iterator<Item = &Edge> {
        self.edges.iter()
    }

    pub fn kind(&self, entity: EntityId) -> usize {
        self.kinds[entity]
    }

    /// Entities of the same kind as `entity`, itself included.
    pub fn same_kind(&self, entity: EntityId) -> impl Iterator<Item = EntityId> + '_ {
        let kind = self.kinds[entity];
        (0..self.entities.len()).filter(move |&other| self.kinds[other] == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "head\trelation\ttail\nParis\tcapital of\tFrance\nFrance\tlocated in\tEurope\n\
                       Lima\tcapital of\tPeru\nPeru\tlocated in\tSouth America\nPeru\tshares border with\tChile\n\
                       Chile\tshares border with\tPeru\n";

    #[test]
    fn kinds_follow_shared_roles() {
        let graph = KnowledgeGraph::parse_tsv(TSV).unwrap();
        let id = |name| graph.entity_id(name).unwrap();
        assert_eq!(graph.kind(id("France")), graph.kind(id("Peru")));
        assert_eq!(graph.kind(id("Chile")), graph.kind(id("Peru")));
        assert_eq!(graph.kind(id("Paris")), graph.kind(id("Lima")));
        assert_ne!(graph.kind(id("Paris")), graph.kind(id("France")));
        assert_ne!(graph.kind(id("Europe")), graph.kind(id("France")));
    }

    #[test]
    fn self_loops_are_skipped() {
        let graph = KnowledgeGraph::parse_tsv("head\trelation\ttail\nMonaco\tcapital of\tMonaco\nA\tr\tB\n").unwrap();
        assert_eq!(graph.self_loops, 1);
        assert_eq!(graph.entity_id("Monaco"), None);
    }

    #[test]
    fn bad_lines_are_named() {
        let error = KnowledgeGraph::parse_tsv("head\trelation\ttail\nParis\tcapital of\n").unwrap_err();
        assert!(error.starts_with("line 2:"), "{error}");
        let error = KnowledgeGraph::parse_tsv("a\tb\tc\n").unwrap_err();
        assert!(error.contains("header"), "{error}");
    }
}
