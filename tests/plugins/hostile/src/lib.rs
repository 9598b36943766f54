//! Hostile test elicitor for the host's sandbox tests. What it does depends
//! on the question id:
//!
//! - contains `loop`: spins forever;
//! - contains `alloc`: allocates without bound;
//! - contains `trap`: panics, which traps the instance;
//! - contains `recurse`: recurses without bound until the stack overflows;
//! - contains `nan`: returns a NaN score;
//! - contains `oversize`: returns a million scores, whatever the number of
//!   candidates;
//! - anything else: scores each candidate by its token count.
//!
//! The checks run in that order, so `loop-alloc` loops.

use std::hint::black_box;

use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Question};

/// The `hostile` elicitor.
pub struct Hostile;

/// Misbehaviour chosen by a question id.
#[derive(Debug, PartialEq, Eq)]
pub enum Behaviour {
    Loop,
    Alloc,
    Trap,
    Recurse,
    Nan,
    Oversize,
    Score,
}

/// Chooses the behaviour for a question id.
pub fn behaviour(id: &str) -> Behaviour {
    if id.contains("loop") {
        Behaviour::Loop
    } else if id.contains("alloc") {
        Behaviour::Alloc
    } else if id.contains("trap") {
        Behaviour::Trap
    } else if id.contains("recurse") {
        Behaviour::Recurse
    } else if id.contains("nan") {
        Behaviour::Nan
    } else if id.contains("oversize") {
        Behaviour::Oversize
    } else {
        Behaviour::Score
    }
}

fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn allocate_forever() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really committed.
        blocks.push(vec![1; 1 << 20]);
        black_box(&mut blocks);
    }
}

/// Recurses with a frame that the optimiser cannot fold into a loop.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    recurse(black_box(depth + 1)).wrapping_add(frame[depth as usize % 16])
}

impl Elicitor for Hostile {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "hostile".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        match behaviour(&question.id) {
            Behaviour::Loop => spin(),
            Behaviour::Alloc => allocate_forever(),
            Behaviour::Trap => panic!("hostile plugin: trap requested by question {}", question.id),
            Behaviour::Recurse => Err(format!("recursion returned {}", recurse(0))),
            Behaviour::Nan => Ok(Judgement::Scores(vec![Some(f64::NAN); candidates.len()])),
            Behaviour::Oversize => Ok(Judgement::Scores(vec![Some(1.0); 1_000_000])),
            Behaviour::Score => Ok(Judgement::Scores(
                candidates.iter().map(|c| Some(f64::from(c.token_count))).collect(),
            )),
        }
    }
}

wow_sdk::export_elicitor!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_follows_id() {
        assert_eq!(behaviour("q-loop-1"), Behaviour::Loop);
        assert_eq!(behaviour("alloc"), Behaviour::Alloc);
        assert_eq!(behaviour("trap7"), Behaviour::Trap);
        assert_eq!(behaviour("recurse"), Behaviour::Recurse);
        assert_eq!(behaviour("nan-1"), Behaviour::Nan);
        assert_eq!(behaviour("oversize-1"), Behaviour::Oversize);
        assert_eq!(behaviour("loop-alloc"), Behaviour::Loop);
        assert_eq!(behaviour("42"), Behaviour::Score);
    }

    #[test]
    fn ordinary_id_scores_token_count() {
        let question = Question {
            id: "1".into(),
            text: String::new(),
            reference: None,
            payload: String::new(),
        };
        let candidate = Candidate {
            text: String::new(),
            answer: None,
            mean_nll: 0.5,
            token_count: 9,
        };
        let judgement = Hostile::elicit(question, vec![candidate], vec![]).unwrap();
        assert!(matches!(judgement, Judgement::Scores(s) if s == [Some(9.0)]));
    }
}
