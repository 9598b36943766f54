//! NLGraph benchmark logic shared by the `nlgraph-shortest-path` and
//! `nlgraph-max-flow` task plugins: graph parsing from question text,
//! exact solvers, and the task's load, prompt, extract and grade steps.
//!
//! NLGraph (Wang et al., "Can Language Models Solve Graph Problems in
//! Natural Language?", NeurIPS 2023) states each problem in English:
//! "an edge between node 0 and node 1 with weight 4" (shortest path,
//! undirected) or "an edge from node 0 to node 10 with capacity 1" (max
//! flow, directed).

pub mod graph;
pub mod solve;
pub mod task;

pub use task::{Kind, Payload};
