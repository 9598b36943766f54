//! A knowledge graph read from a TSV file of `head`, `relation`, `tail`
//! triples, with indexes for the puzzle builder and the solver.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::KcError;

/// Index of an entity in [`KnowledgeGraph::entities`].
pub type EntityId = usize;
/// Index of a relation in [`KnowledgeGraph::relations`].
pub type RelationId = usize;

/// Entities that must play two roles before the roles count as one kind.
pub const MIN_SHARED_ENTITIES: usize = 3;

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
    /// (relation, head or tail) starts alone, and two roles merge when at
    /// least [`MIN_SHARED_ENTITIES`] entities play both, so countries (head
    /// of `located in`, tail of `capital of`) form one kind and cities
    /// another, even when one name plays both parts. An entity takes the
    /// kind of its most common role.
    fn assign_kinds(&mut self) {
        let entity_roles: Vec<BTreeSet<usize>> = (0..self.entities.len())
            .map(|entity| {
                self.incident[entity]
                    .iter()
                    .map(|e| e.relation * 2 + usize::from(e.tail == entity))
                    .collect()
            })
            .collect();
        let mut role_counts = vec![0usize; self.relations.len() * 2];
        let mut pair_counts: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for roles in &entity_roles {
            for &a in roles {
                role_counts[a] += 1;
                for &b in roles.range(a + 1..) {
                    *pair_counts.entry((a, b)).or_default() += 1;
                }
            }
        }

        let mut parent: Vec<usize> = (0..role_counts.len()).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for (&(a, b), &count) in &pair_counts {
            if count >= MIN_SHARED_ENTITIES {
                let (root_a, root_b) = (find(&mut parent, a), find(&mut parent, b));
                parent[root_a] = root_b;
            }
        }
        self.kinds = entity_roles
            .iter()
            .map(|roles| {
                let main_role = *roles
                    .iter()
                    .max_by_key(|&&r| role_counts[r])
                    .expect("every entity has an edge");
                find(&mut parent, main_role)
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

    /// Four countries with capitals, regions and mutual borders, plus a
    /// name that is once a capital and once a country.
    fn sample_tsv() -> String {
        let mut tsv = String::from("head\trelation\ttail\n");
        let countries = ["France", "Peru", "Chile", "Spain"];
        for (i, country) in countries.iter().enumerate() {
            let neighbour = countries[(i + 1) % countries.len()];
            tsv.push_str(&format!(
                "City{i}\tcapital of\t{country}\n{country}\tlocated in\tRegion{}\n",
                i % 2
            ));
            tsv.push_str(&format!(
                "{country}\tshares border with\t{neighbour}\n{neighbour}\tshares border with\t{country}\n"
            ));
        }
        tsv.push_str("Bridge\tcapital of\tFrance\nBridge\tlocated in\tRegion0\nBridge\tshares border with\tSpain\n");
        tsv
    }

    #[test]
    fn kinds_follow_shared_roles() {
        let graph = KnowledgeGraph::parse_tsv(&sample_tsv()).unwrap();
        let id = |name| graph.entity_id(name).unwrap();
        assert_eq!(graph.kind(id("France")), graph.kind(id("Peru")));
        assert_eq!(graph.kind(id("Chile")), graph.kind(id("Spain")));
        assert_eq!(graph.kind(id("City0")), graph.kind(id("City3")));
        assert_ne!(graph.kind(id("City0")), graph.kind(id("France")));
        assert_ne!(graph.kind(id("Region0")), graph.kind(id("France")));
    }

    #[test]
    fn one_entity_does_not_merge_kinds() {
        let graph = KnowledgeGraph::parse_tsv(&sample_tsv()).unwrap();
        let id = |name| graph.entity_id(name).unwrap();
        assert_eq!(graph.kind(id("Bridge")), graph.kind(id("France")));
        assert_ne!(graph.kind(id("City1")), graph.kind(id("Peru")));
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
