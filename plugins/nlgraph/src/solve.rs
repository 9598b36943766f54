//! Exact solvers for the small graphs of the NLGraph benchmark.

use crate::graph::Graph;

/// Returns the weight of a shortest path from `source` to `target` in the
/// undirected graph (Dijkstra), or `None` when `target` is unreachable.
pub fn shortest_path(graph: &Graph, source: usize, target: usize) -> Option<u64> {
    let adjacency = undirected_adjacency(graph);
    let mut distance = vec![None::<u64>; graph.node_count];
    let mut done = vec![false; graph.node_count];
    distance[source] = Some(0);
    // O(n²) Dijkstra: the graphs have at most a few dozen nodes.
    while let Some(node) = closest_open_node(&distance, &done) {
        done[node] = true;
        let base = distance[node]?;
        for &(next, weight) in &adjacency[node] {
            let candidate = base.saturating_add(weight);
            if distance[next].is_none_or(|d| candidate < d) {
                distance[next] = Some(candidate);
            }
        }
    }
    distance[target]
}

fn closest_open_node(distance: &[Option<u64>], done: &[bool]) -> Option<usize> {
    (0..distance.len())
        .filter(|&node| !done[node])
        .filter_map(|node| distance[node].map(|d| (d, node)))
        .min()
        .map(|(_, node)| node)
}

/// Returns the maximum flow from `source` to `target` in the directed graph
/// whose edge weights are capacities (Edmonds–Karp). Parallel edges add up.
pub fn max_flow(graph: &Graph, source: usize, target: usize) -> u64 {
    if source == target {
        return 0;
    }
    let n = graph.node_count;
    let mut residual = vec![vec![0u64; n]; n];
    for edge in &graph.edges {
        residual[edge.from][edge.to] = residual[edge.from][edge.to].saturating_add(edge.weight);
    }
    let mut flow = 0u64;
    while let Some(parent) = augmenting_path(&residual, source, target) {
        let mut bottleneck = u64::MAX;
        let mut node = target;
        while node != source {
            let previous = parent[node];
            bottleneck = bottleneck.min(residual[previous][node]);
            node = previous;
        }
        let mut node = target;
        while node != source {
            let previous = parent[node];
            residual[previous][node] -= bottleneck;
            residual[node][previous] = residual[node][previous].saturating_add(bottleneck);
            node = previous;
        }
        flow = flow.saturating_add(bottleneck);
    }
    flow
}

/// Breadth-first search for a path with spare capacity; returns each
/// reached node's predecessor.
fn augmenting_path(residual: &[Vec<u64>], source: usize, target: usize) -> Option<Vec<usize>> {
    let n = residual.len();
    let mut parent = vec![usize::MAX; n];
    parent[source] = source;
    let mut queue = std::collections::VecDeque::from([source]);
    while let Some(node) = queue.pop_front() {
        for next in 0..n {
            if parent[next] == usize::MAX && residual[node][next] > 0 {
                parent[next] = node;
                if next == target {
                    return Some(parent);
                }
                queue.push_back(next);
            }
        }
    }
    None
}

/// Reason a longest-path search returned no weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LongestPathError {
    /// The search needs a node bitmask, so graphs are limited to 64 nodes.
    TooManyNodes(usize),
    /// The search visited more than the step budget allows.
    BudgetExceeded(u64),
}

impl std::fmt::Display for LongestPathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooManyNodes(n) => write!(f, "the longest-path search supports at most 64 nodes, got {n}"),
            Self::BudgetExceeded(steps) => {
                write!(f, "the longest-path search exceeded {steps} steps")
            }
        }
    }
}

/// Result of a longest-path search: the weight, `None` when `target` is
/// unreachable, and the number of search steps taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongestPath {
    pub weight: Option<u64>,
    pub steps: u64,
}

/// Returns the weight of the heaviest simple path from `source` to `target`
/// in the undirected graph.
///
/// The problem is NP-hard, so this is a depth-first branch and bound: a
/// branch is cut when `target` is unreachable through unvisited nodes, or
/// when an upper bound on its best extension cannot beat the best path
/// found. `step_budget` caps the
/// number of search nodes so that a pathological graph fails fast.
pub fn longest_simple_path(
    graph: &Graph,
    source: usize,
    target: usize,
    step_budget: u64,
) -> Result<LongestPath, LongestPathError> {
    if graph.node_count > 64 {
        return Err(LongestPathError::TooManyNodes(graph.node_count));
    }
    let mut adjacency = undirected_adjacency(graph);
    for neighbours in &mut adjacency {
        // Heavy edges first, so good paths are found early and prune more.
        neighbours.sort_unstable_by(|a, b| b.1.cmp(&a.1));
    }
    let mut search = Search {
        adjacency,
        target,
        best: None,
        steps: 0,
        step_budget,
    };
    search.visit(source, 1 << source, 0)?;
    Ok(LongestPath {
        weight: search.best,
        steps: search.steps,
    })
}

struct Search {
    adjacency: Vec<Vec<(usize, u64)>>,
    target: usize,
    best: Option<u64>,
    steps: u64,
    step_budget: u64,
}

impl Search {
    fn visit(&mut self, node: usize, visited: u64, weight: u64) -> Result<(), LongestPathError> {
        self.steps += 1;
        if self.steps > self.step_budget {
            return Err(LongestPathError::BudgetExceeded(self.step_budget));
        }
        if node == self.target {
            self.best = Some(self.best.map_or(weight, |best| best.max(weight)));
            return Ok(());
        }
        let Some(bound) = self.upper_bound(node, visited, weight) else {
            return Ok(());
        };
        if self.best.is_some_and(|best| bound <= best) {
            return Ok(());
        }
        for i in 0..self.adjacency[node].len() {
            let (next, edge_weight) = self.adjacency[node][i];
            if visited & (1 << next) == 0 {
                self.visit(next, visited | 1 << next, weight.saturating_add(edge_weight))?;
            }
        }
        Ok(())
    }

    /// Bounds the weight of any extension of the path that ends at `node`,
    /// or returns `None` when no extension reaches the target.
    ///
    /// The extension enters each of its nodes once, through an edge from a
    /// node it may use, so it weighs at most the sum of each reachable
    /// node's heaviest such edge. Splitting each edge's weight between its
    /// two ends gives a second bound: half the heaviest edge at `node` and
    /// at the target, plus half the two heaviest edges at every other node.
    fn upper_bound(&self, node: usize, visited: u64, weight: u64) -> Option<u64> {
        let reached = self.reachable(node, visited);
        if reached & (1 << self.target) == 0 {
            return None;
        }
        let usable = reached | 1 << node;
        let mut entry_bound = 0u64;
        let mut doubled_split_bound = self.heaviest_edges::<1>(node, usable)[0];
        for v in (0..self.adjacency.len()).filter(|&v| reached & (1 << v) != 0) {
            let [first, second] = self.heaviest_edges::<2>(v, usable);
            entry_bound = entry_bound.saturating_add(first);
            let ends = if v == self.target {
                first
            } else {
                first.saturating_add(second)
            };
            doubled_split_bound = doubled_split_bound.saturating_add(ends);
        }
        Some(weight.saturating_add(entry_bound.min(doubled_split_bound / 2)))
    }

    /// Returns the nodes reachable from `node` through unvisited nodes,
    /// never passing through the target, where a simple path must end.
    fn reachable(&self, node: usize, visited: u64) -> u64 {
        let mut reached = 0u64;
        let mut stack = vec![node];
        while let Some(current) = stack.pop() {
            for &(next, _) in &self.adjacency[current] {
                let bit = 1 << next;
                if (visited | reached) & bit == 0 {
                    reached |= bit;
                    if next != self.target {
                        stack.push(next);
                    }
                }
            }
        }
        reached
    }

    /// Returns the `K` heaviest edge weights from `v` to nodes in `usable`,
    /// padded with zeros. Adjacency lists are sorted heaviest first.
    fn heaviest_edges<const K: usize>(&self, v: usize, usable: u64) -> [u64; K] {
        let mut weights = [0; K];
        let usable_edges = self.adjacency[v].iter().filter(|&&(next, _)| usable & (1 << next) != 0);
        for (slot, &(_, weight)) in weights.iter_mut().zip(usable_edges) {
            *slot = weight;
        }
        weights
    }
}

fn undirected_adjacency(graph: &Graph) -> Vec<Vec<(usize, u64)>> {
    let mut adjacency = vec![Vec::new(); graph.node_count];
    for edge in &graph.edges {
        adjacency[edge.from].push((edge.to, edge.weight));
        if edge.from != edge.to {
            adjacency[edge.to].push((edge.from, edge.weight));
        }
    }
    adjacency
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Edge;

    fn graph(node_count: usize, edges: &[(usize, usize, u64)]) -> Graph {
        let edges = edges
            .iter()
            .map(|&(from, to, weight)| Edge { from, to, weight })
            .collect();
        Graph { node_count, edges }
    }

    /// Square 0-1-2-3-0 with a heavy chord 0-2.
    fn square() -> Graph {
        graph(4, &[(0, 1, 1), (1, 2, 1), (2, 3, 5), (3, 0, 5), (0, 2, 9)])
    }

    #[test]
    fn shortest_path_takes_light_route() {
        assert_eq!(shortest_path(&square(), 0, 2), Some(2));
        assert_eq!(shortest_path(&square(), 3, 3), Some(0));
    }

    #[test]
    fn shortest_path_unreachable_is_none() {
        let g = graph(3, &[(0, 1, 1)]);
        assert_eq!(shortest_path(&g, 0, 2), None);
    }

    #[test]
    fn longest_path_on_square() {
        let path = longest_simple_path(&square(), 0, 2, 1_000).unwrap();
        // 0-3-2 (10) beats 0-2 (9) and 0-1-2 (2); 0-1-2-3 cannot end at 2.
        assert_eq!(path.weight, Some(10));
        let path = longest_simple_path(&square(), 1, 3, 1_000).unwrap();
        // 1-0-2-3 weighs 1 + 9 + 5.
        assert_eq!(path.weight, Some(15));
    }

    #[test]
    fn longest_path_matches_brute_force() {
        let g = graph(
            6,
            &[
                (0, 1, 3),
                (1, 2, 4),
                (2, 3, 2),
                (3, 4, 7),
                (4, 5, 1),
                (5, 0, 6),
                (1, 4, 8),
                (0, 3, 2),
                (2, 5, 5),
            ],
        );
        for source in 0..6 {
            for target in 0..6 {
                let fast = longest_simple_path(&g, source, target, 1_000_000).unwrap().weight;
                assert_eq!(fast, brute_longest(&g, source, target), "{source} -> {target}");
            }
        }
    }

    fn brute_longest(g: &Graph, source: usize, target: usize) -> Option<u64> {
        fn walk(
            adj: &[Vec<(usize, u64)>],
            node: usize,
            target: usize,
            seen: &mut Vec<bool>,
            w: u64,
            best: &mut Option<u64>,
        ) {
            if node == target {
                *best = Some(best.map_or(w, |b| b.max(w)));
                return;
            }
            for &(next, weight) in &adj[node] {
                if !seen[next] {
                    seen[next] = true;
                    walk(adj, next, target, seen, w + weight, best);
                    seen[next] = false;
                }
            }
        }
        let adj = undirected_adjacency(g);
        let mut seen = vec![false; g.node_count];
        seen[source] = true;
        let mut best = None;
        walk(&adj, source, target, &mut seen, 0, &mut best);
        best
    }

    #[test]
    fn longest_path_budget_is_enforced() {
        let error = longest_simple_path(&square(), 0, 2, 2).unwrap_err();
        assert_eq!(error, LongestPathError::BudgetExceeded(2));
    }

    #[test]
    fn max_flow_with_bottleneck() {
        // Two routes 0→1→3 (min 3) and 0→2→3 (min 4), plus a cross edge 1→2.
        let g = graph(4, &[(0, 1, 5), (1, 3, 3), (0, 2, 4), (2, 3, 6), (1, 2, 2)]);
        assert_eq!(max_flow(&g, 0, 3), 9);
        assert_eq!(max_flow(&g, 3, 0), 0);
    }

    #[test]
    fn max_flow_adds_parallel_edges() {
        let g = graph(2, &[(0, 1, 2), (0, 1, 3)]);
        assert_eq!(max_flow(&g, 0, 1), 5);
    }
}
