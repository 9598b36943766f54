//! Test elicitor that tries to read a host file. `std::fs` makes the
//! component import `wasi:filesystem`, which the host must reject at load.

use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Question};

/// The `hostile-fs` elicitor.
pub struct HostileFs;

impl Elicitor for HostileFs {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "hostile-fs".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(_question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        let secret = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
        let score = secret.len() as f64;
        Ok(Judgement::Scores(vec![Some(score); candidates.len()]))
    }
}

wow_sdk::export_elicitor!(HostileFs);
