//! Guest SDK for wow plugins.
//!
//! A wow plugin is a WebAssembly component that the `wow` host runs in a
//! sandbox. It implements one of three interfaces of the `wow:plugin@0.1.0`
//! WIT package:
//!
//! - a [`Task`] parses a dataset, builds prompts, extracts answers and
//!   grades them;
//! - an [`Elicitor`] ranks the sampled responses to one question from less
//!   wrong to more wrong;
//! - a [`Scorer`] returns a proxy correctness for tasks that delegate it.
//!
//! A plugin crate is a `cdylib` that depends on this crate as `wow-sdk`
//! (the export macros name it `wow_sdk`), implements one trait and calls
//! the matching export macro once. Build it with
//! `cargo build --release --target wasm32-wasip2`: the `.wasm` file is
//! already a component.
//!
//! The sandbox gives a plugin no files, network, clock, environment or
//! randomness. Use [`BTreeMap`](std::collections::BTreeMap) rather than
//! `HashMap` (whose default hasher requests random bytes from WASI), never read
//! `std::time`, and derive any randomness from a seed with [`SplitMix64`].
//! The model is reachable only through [`host`].
//!
//! # A task
//!
//! ```no_run
//! use wow_sdk::{Grade, ItemError, Message, Question, Task, TaskInfo};
//!
//! struct Arithmetic;
//!
//! impl Task for Arithmetic {
//!     fn describe() -> TaskInfo {
//!         TaskInfo { name: "arithmetic".into(), description: "Sums.".into() }
//!     }
//!
//!     // One question a line: `id<TAB>question<TAB>answer`.
//!     fn load(dataset: Vec<u8>) -> Result<Vec<Result<Question, ItemError>>, String> {
//!         let text = String::from_utf8(dataset).map_err(|e| format!("dataset is not UTF-8: {e}"))?;
//!         let rows = text.lines().map(|line| {
//!             let fields: Vec<&str> = line.split('\t').collect();
//!             match fields[..] {
//!                 [id, question, answer] => Ok(Question {
//!                     id: id.into(),
//!                     text: question.into(),
//!                     reference: Some(answer.into()),
//!                     payload: answer.into(),
//!                 }),
//!                 _ => Err(ItemError { id: fields[0].into(), message: "expected 3 fields".into() }),
//!             }
//!         });
//!         Ok(rows.collect())
//!     }
//!
//!     fn prompt(question: Question, _seed: u64) -> Vec<Message> {
//!         vec![Message::user(&question.text)]
//!     }
//!
//!     fn extract(_question: Question, _seed: u64, response: String) -> Option<String> {
//!         wow_sdk::extract::last_integer(&response)
//!     }
//!
//!     fn grade(question: Question, answer: String) -> Result<Grade, String> {
//!         let correct = answer == question.payload;
//!         Ok(Grade { correctness: if correct { 1.0 } else { 0.0 }, correct })
//!     }
//!
//!     // Wrong sums keep correctness 0; a task graded by plausibility
//!     // returns the statements a wrong answer makes.
//!     fn statements(_question: Question, _answer: String) -> Vec<String> {
//!         Vec::new()
//!     }
//! }
//!
//! wow_sdk::export_task!(Arithmetic);
//! ```
//!
//! # An elicitor
//!
//! ```no_run
//! use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Question};
//!
//! struct Longest;
//!
//! impl Elicitor for Longest {
//!     fn describe() -> ElicitorInfo {
//!         ElicitorInfo { name: "longest".into(), description: "Longer is less wrong.".into() }
//!     }
//!
//!     fn elicit(
//!         question: Question,
//!         candidates: Vec<Candidate>,
//!         _pairs: Vec<(u32, u32)>,
//!     ) -> Result<Judgement, String> {
//!         wow_sdk::debug!("scoring {} candidates of {}", candidates.len(), question.id);
//!         let scores = candidates.iter().map(|c| Some(f64::from(c.token_count))).collect();
//!         Ok(Judgement::Scores(scores))
//!     }
//! }
//!
//! wow_sdk::export_elicitor!(Longest);
//! ```
//!
//! # A scorer
//!
//! ```no_run
//! use wow_sdk::{Message, Question, Scorer, ScorerInfo};
//!
//! struct Plausibility;
//!
//! impl Scorer for Plausibility {
//!     fn describe() -> ScorerInfo {
//!         ScorerInfo { name: "plausibility".into(), description: "Asks the model.".into() }
//!     }
//!
//!     // Mean probability of " yes" as the model's verdict on the answer.
//!     fn score(question: Question, answer: String) -> Result<f64, String> {
//!         let prompt = format!("{}\nProposed answer: {answer}\nIs it right?", question.text);
//!         let logprobs = wow_sdk::host::logprobs(&[Message::user(&prompt)], " yes")?;
//!         let mean = logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len().max(1) as f64;
//!         Ok(mean.exp())
//!     }
//! }
//!
//! wow_sdk::export_scorer!(Plausibility);
//! ```

#[doc(hidden)]
pub mod bindings;
pub mod choice;
pub mod extract;
pub mod host;
pub mod judge;
mod log;
mod shuffle;
pub mod statement;
mod types;

pub use shuffle::{SplitMix64, shuffle};
pub use types::{Candidate, Grade, ItemError, Judgement, Message, Preference, Question};

/// A benchmark: parses its dataset, prompts the model and grades answers.
///
/// Export an implementation with [`export_task!`].
pub use bindings::task_world::exports::wow::plugin::task::Guest as Task;
/// Name and description of a task, returned by [`Task::describe`].
pub use bindings::task_world::exports::wow::plugin::task::TaskInfo;

/// Name and description of an elicitor, returned by [`Elicitor::describe`].
pub use bindings::elicitor_world::exports::wow::plugin::elicitor::ElicitorInfo;
/// Ranks the responses to one question from less wrong to more wrong.
///
/// Export an implementation with [`export_elicitor!`].
pub use bindings::elicitor_world::exports::wow::plugin::elicitor::Guest as Elicitor;

/// Returns a proxy correctness for tasks that delegate it.
///
/// Export an implementation with [`export_scorer!`].
pub use bindings::scorer_world::exports::wow::plugin::scorer::Guest as Scorer;
/// Name and description of a scorer, returned by [`Scorer::describe`].
pub use bindings::scorer_world::exports::wow::plugin::scorer::ScorerInfo;

/// Exports a [`Task`] implementation as the plugin's `task` interface.
///
/// Call it once, at the crate root of a `cdylib`:
/// `wow_sdk::export_task!(MyTask);`. It expands to nothing outside
/// `wasm32`, so a plugin crate still links natively for unit tests (native
/// linkers reject the WIT export names).
#[macro_export]
macro_rules! export_task {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::task_world::export_world!($ty);
    };
}

/// Exports an [`Elicitor`] implementation as the plugin's `elicitor`
/// interface: `wow_sdk::export_elicitor!(MyElicitor);`. Like
/// [`export_task!`], it expands to nothing outside `wasm32`.
#[macro_export]
macro_rules! export_elicitor {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::elicitor_world::export_world!($ty);
    };
}

/// Exports a [`Scorer`] implementation as the plugin's `scorer` interface:
/// `wow_sdk::export_scorer!(MyScorer);`. Like [`export_task!`], it expands
/// to nothing outside `wasm32`.
#[macro_export]
macro_rules! export_scorer {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::scorer_world::export_world!($ty);
    };
}
