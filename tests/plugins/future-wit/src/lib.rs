//! Test elicitor built against `wow:plugin@0.2.0`, a copy of the WIT package
//! with only the version changed (in `wit/`), so a host that speaks 0.1.0
//! can test how it rejects a newer plugin.

wit_bindgen::generate!({
    path: "wit",
    world: "elicitor-plugin",
});

use exports::wow::plugin::elicitor::{ElicitorInfo, Guest};
use wow::plugin::types::{Candidate, Judgement, Question};

struct FutureWit;

impl Guest for FutureWit {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "future-wit".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(_question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        Ok(Judgement::Scores(vec![Some(0.0); candidates.len()]))
    }
}

// Native linkers reject the WIT export names, so export only on wasm32.
#[cfg(target_arch = "wasm32")]
export!(FutureWit);
