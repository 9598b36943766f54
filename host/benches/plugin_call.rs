//! Measures the cost of a sandboxed plugin call against the same function
//! compiled natively: NLGraph shortest-path `load`, `extract` and `grade`
//! through the `nlgraph` crate and through the built-in component.
//!
//! Run with `cargo bench -p wow --bench plugin_call`. Set `WOW_DATA` to use
//! another NLGraph shortest-path file than `../shared/data/...`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wow::plugin::{Limits, PluginRegistry, Question, Sandbox};

/// Questions used for the per-item measurement.
const QUESTIONS: usize = 20;

/// Responses graded per question; each is one item of a run.
const RESPONSES: [&str; 4] = [
    "The shortest path from node 0 to node 4 is 0,2,4 with a total weight of 7.",
    "Let me think. The total weight is 12.",
    "I am not sure, maybe 3 or 5.",
    "There is no path.",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var_os("WOW_DATA").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nlgraph/shortest_path/train.json")
    });
    let dataset = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let registry = PluginRegistry::new(Sandbox::new(Limits::default())?)?;
    let task = registry.task("nlgraph-shortest-path")?;
    let kind = nlgraph::Kind::ShortestPath;

    let native_load = time(|| nlgraph::task::load(kind, &dataset).map(|rows| rows.len()));
    let sandboxed_load = time(|| task.load(&dataset, "train.json").map(|rows| rows.len()));
    println!(
        "load of {} ({} KiB): native {:.1} ms, sandboxed {:.1} ms, ratio {:.1}x",
        path.display(),
        dataset.len() / 1024,
        ms(native_load),
        ms(sandboxed_load),
        ratio(sandboxed_load, native_load)
    );

    let questions: Vec<Question> = task
        .load(&dataset, "train.json")?
        .into_iter()
        .filter_map(Result::ok)
        .take(QUESTIONS)
        .collect();
    let items = (questions.len() * RESPONSES.len()) as u32;

    let native = time(|| {
        for question in &questions {
            let guest_question = to_guest(question);
            for response in RESPONSES {
                if let Some(answer) = nlgraph::task::extract(kind, response) {
                    std::hint::black_box(nlgraph::task::grade(&guest_question, &answer).ok());
                }
            }
        }
    });
    let calls_before: u64 = registry.sandbox().call_stats().values().map(|s| s.calls).sum();
    let sandboxed = time(|| {
        for question in &questions {
            for response in RESPONSES {
                if let Ok(Some(answer)) = task.extract(question, 0, response) {
                    std::hint::black_box(task.grade(question, &answer).ok());
                }
            }
        }
    });
    println!(
        "extract + grade per item ({items} items): native {:.2} us, sandboxed {:.2} us, ratio {:.0}x",
        us(native / items),
        us(sandboxed / items),
        ratio(sandboxed, native)
    );

    // `time` runs the loop three times and keeps the best run.
    let calls: u64 = registry.sandbox().call_stats().values().map(|s| s.calls).sum::<u64>() - calls_before;
    let calls_per_run = (calls / 3).max(1) as u32;
    println!(
        "sandboxed call (fresh instance each): {:.2} us, {calls_per_run} calls per run",
        us(sandboxed / calls_per_run)
    );
    Ok(())
}

/// Converts the host's question record to the guest SDK's.
fn to_guest(question: &Question) -> wow_sdk::Question {
    wow_sdk::Question {
        id: question.id.clone(),
        text: question.text.clone(),
        reference: question.reference.clone(),
        payload: question.payload.clone(),
    }
}

/// Returns the best of three timings of `work`.
fn time<R>(mut work: impl FnMut() -> R) -> Duration {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(work());
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn ratio(slow: Duration, fast: Duration) -> f64 {
    slow.as_secs_f64() / fast.as_secs_f64().max(1e-12)
}
