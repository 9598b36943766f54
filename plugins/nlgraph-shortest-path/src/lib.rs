//! NLGraph shortest path: the total weight of a shortest path between two
//! nodes of an undirected weighted graph, graded against the heaviest simple
//! path.
//!
//! The logic lives in the `nlgraph` crate; this crate only exports it.

use nlgraph::Kind;
use wow_sdk::{Grade, ItemError, Message, Question, Task, TaskInfo};

/// The `nlgraph-shortest-path` task.
pub struct ShortestPath;

const KIND: Kind = Kind::ShortestPath;

impl Task for ShortestPath {
    fn describe() -> TaskInfo {
        TaskInfo {
            name: "nlgraph-shortest-path".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn load(dataset: Vec<u8>) -> Result<Vec<Result<Question, ItemError>>, String> {
        nlgraph::task::load(KIND, &dataset)
    }

    fn prompt(question: Question, _seed: u64) -> Vec<Message> {
        nlgraph::task::prompt(KIND, &question)
    }

    fn extract(_question: Question, _seed: u64, response: String) -> Option<String> {
        nlgraph::task::extract(KIND, &response)
    }

    fn grade(question: Question, answer: String) -> Result<Grade, String> {
        nlgraph::task::grade(&question, &answer)
    }

    /// Wrong numeric answers are graded by their distance to the optimum.
    fn statements(_question: Question, _answer: String) -> Vec<String> {
        Vec::new()
    }
}

wow_sdk::export_task!(ShortestPath);
