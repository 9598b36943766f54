//! Test elicitor that tries to open a TCP connection. `std::net` makes the
//! component import `wasi:sockets`, which the host must reject at load.

use std::io::Write;
use std::net::TcpStream;

use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Question};

/// The `hostile-net` elicitor.
pub struct HostileNet;

impl Elicitor for HostileNet {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "hostile-net".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        let mut stream = TcpStream::connect("127.0.0.1:9").map_err(|e| e.to_string())?;
        stream.write_all(question.text.as_bytes()).map_err(|e| e.to_string())?;
        Ok(Judgement::Scores(vec![None; candidates.len()]))
    }
}

wow_sdk::export_elicitor!(HostileNet);
