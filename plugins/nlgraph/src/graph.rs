//! Graphs as the NLGraph benchmark files describe them, parsed from the
//! question text.

/// One edge: `weight` is the weight (shortest path) or the capacity (max
/// flow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub weight: u64,
}

/// A graph with nodes `0..node_count`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    pub node_count: usize,
    pub edges: Vec<Edge>,
}

/// A graph question: the graph and the two nodes of its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub graph: Graph,
    pub source: usize,
    pub target: usize,
}

/// The sentence shapes of one NLGraph task.
pub struct Wording {
    /// Pieces of an edge sentence, each followed by a number:
    /// `an edge between node ` A ` and node ` B ` with weight ` W.
    pub edge: [&'static str; 3],
    /// Pieces of the query, each followed by a number.
    pub query: [&'static str; 2],
}

/// Wording of the undirected, weighted shortest-path questions.
pub const SHORTEST_PATH: Wording = Wording {
    edge: ["an edge between node ", " and node ", " with weight "],
    query: ["shortest path from node ", " to node "],
};

/// Wording of the directed max-flow questions.
pub const MAX_FLOW: Wording = Wording {
    edge: ["an edge from node ", " to node ", " with capacity "],
    query: ["maximum flow from node ", " to node "],
};

const NODE_RANGE: [&str; 1] = ["the nodes are numbered from 0 to "];

/// Parses a question: the node range, every edge sentence and the query.
///
/// Every sentence starting with the edge wording's first piece must parse,
/// and every node must lie in the stated range.
pub fn parse_problem(text: &str, wording: &Wording) -> Result<Problem, String> {
    let [last_node] = find_numbers(text, &NODE_RANGE).ok_or("missing \"the nodes are numbered from 0 to N\"")?;
    let node_count = usize::try_from(last_node).map_err(|_| "node count overflows")? + 1;
    let edges = parse_edges(text, wording, node_count)?;
    let [source, target] = find_numbers(text, &wording.query)
        .ok_or_else(|| format!("missing the query \"{}S{}T\"", wording.query[0], wording.query[1]))?;
    let source = node_index(source, node_count)?;
    let target = node_index(target, node_count)?;
    let graph = Graph { node_count, edges };
    Ok(Problem { graph, source, target })
}

fn parse_edges(text: &str, wording: &Wording, node_count: usize) -> Result<Vec<Edge>, String> {
    let mut edges = Vec::new();
    for (start, _) in text.match_indices(wording.edge[0]) {
        let [from, to, weight] = read_numbers(&text[start..], &wording.edge).ok_or_else(|| {
            format!(
                "edge {} is malformed: {:?}",
                edges.len() + 1,
                first_line(&text[start..])
            )
        })?;
        let from = node_index(from, node_count)?;
        let to = node_index(to, node_count)?;
        edges.push(Edge { from, to, weight });
    }
    if edges.is_empty() {
        return Err(format!("no edge sentence \"{}...\" found", wording.edge[0]));
    }
    Ok(edges)
}

fn node_index(node: u64, node_count: usize) -> Result<usize, String> {
    match usize::try_from(node) {
        Ok(index) if index < node_count => Ok(index),
        _ => Err(format!(
            "node {node} is outside the stated range 0..={}",
            node_count - 1
        )),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Reads the first occurrence of `pieces` in `text`, each piece followed
/// by a number.
fn find_numbers<const N: usize>(text: &str, pieces: &[&str; N]) -> Option<[u64; N]> {
    text.match_indices(pieces[0])
        .find_map(|(start, _)| read_numbers(&text[start..], pieces))
}

/// Reads `pieces` at the start of `text`, each followed by a number.
fn read_numbers<const N: usize>(text: &str, pieces: &[&str; N]) -> Option<[u64; N]> {
    let mut rest = text;
    let mut numbers = [0; N];
    for (piece, number) in pieces.iter().zip(numbers.iter_mut()) {
        rest = rest.strip_prefix(piece)?;
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        *number = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
    }
    Some(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUESTION: &str = "In an undirected graph, the nodes are numbered from 0 to 2, and the edges are:\n\
        an edge between node 0 and node 1 with weight 4,\n\
        an edge between node 1 and node 2 with weight 1.\n\
        Q: Give the shortest path from node 0 to node 2.\nA:";

    #[test]
    fn parses_shortest_path_question() {
        let problem = parse_problem(QUESTION, &SHORTEST_PATH).unwrap();
        assert_eq!(problem.graph.node_count, 3);
        assert_eq!(
            problem.graph.edges[1],
            Edge {
                from: 1,
                to: 2,
                weight: 1
            }
        );
        assert_eq!((problem.source, problem.target), (0, 2));
    }

    #[test]
    fn rejects_malformed_edge() {
        let text = QUESTION.replace("with weight 1", "with weight one");
        let error = parse_problem(&text, &SHORTEST_PATH).unwrap_err();
        assert!(error.starts_with("edge 2 is malformed"), "{error}");
    }

    #[test]
    fn rejects_node_out_of_range() {
        let text = QUESTION.replace("node 1 and node 2", "node 1 and node 7");
        let error = parse_problem(&text, &SHORTEST_PATH).unwrap_err();
        assert_eq!(error, "node 7 is outside the stated range 0..=2");
    }

    #[test]
    fn rejects_missing_query() {
        let text = QUESTION.replace("Give the shortest path", "Give the longest path");
        assert!(parse_problem(&text, &SHORTEST_PATH).is_err());
    }

    #[test]
    fn rejects_wrong_wording() {
        assert!(parse_problem(QUESTION, &MAX_FLOW).is_err());
    }
}
