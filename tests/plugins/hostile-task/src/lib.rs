//! Test task whose outputs break the host's rules. The dataset has one
//! question id per line; the misbehaviour depends on the input:
//!
//! - `load` of a dataset starting with `loop` spins forever;
//! - `prompt` for an id containing `no-prompt` returns no messages, and for
//!   `bad-role` a message with an unknown role;
//! - `extract` of a response containing `oversize` returns an 8 MiB answer;
//! - `grade` of the answer `nan` returns NaN, of `two` a correctness of 2;
//! - anything else behaves: the answer is the response, correctness 0.5.

use std::hint::black_box;

use wow_sdk::{Grade, ItemError, Message, Question, Task, TaskInfo};

/// The `hostile-task` task.
pub struct HostileTask;

impl Task for HostileTask {
    fn describe() -> TaskInfo {
        TaskInfo {
            name: "hostile-task".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn load(dataset: Vec<u8>) -> Result<Vec<Result<Question, ItemError>>, String> {
        if dataset.starts_with(b"loop") {
            let mut counter = 0u64;
            loop {
                counter = black_box(counter.wrapping_add(1));
            }
        }
        let text = String::from_utf8_lossy(&dataset);
        let questions = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|id| {
                Ok(Question {
                    id: id.trim().into(),
                    text: format!("Question {id}"),
                    reference: None,
                    payload: String::new(),
                })
            })
            .collect();
        Ok(questions)
    }

    fn prompt(question: Question, _seed: u64) -> Vec<Message> {
        if question.id.contains("no-prompt") {
            return Vec::new();
        }
        let role = if question.id.contains("bad-role") {
            "root"
        } else {
            "user"
        };
        vec![Message {
            role: role.into(),
            content: question.text,
        }]
    }

    fn extract(_question: Question, _seed: u64, response: String) -> Option<String> {
        if response.contains("oversize") {
            return Some("9".repeat(8 << 20));
        }
        Some(response)
    }

    fn grade(_question: Question, answer: String) -> Result<Grade, String> {
        let correctness = match answer.as_str() {
            "nan" => f64::NAN,
            "two" => 2.0,
            _ => 0.5,
        };
        Ok(Grade {
            correctness,
            correct: false,
        })
    }

    fn statements(_question: Question, _answer: String) -> Vec<String> {
        Vec::new()
    }
}

wow_sdk::export_task!(HostileTask);
