//! NLGraph maximum flow: the maximum flow between two nodes of a directed
//! graph with edge capacities, graded against twice the optimum.
//!
//! The logic lives in the `nlgraph` crate; this crate only exports it.

use nlgraph::Kind;
use wow_sdk::{Grade, ItemError, Message, Question, Task, TaskInfo};

/// The `nlgraph-max-flow` task.
pub struct MaxFlow;

const KIND: Kind = Kind::MaxFlow;

impl Task for MaxFlow {
    fn describe() -> TaskInfo {
        TaskInfo {
            name: "nlgraph-max-flow".into(),
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

wow_sdk::export_task!(MaxFlow);
