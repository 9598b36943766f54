//! Test elicitor that reaches the model only through the host imports: it
//! samples one short completion with `generate`, logs it, and scores each
//! candidate by its mean token log-probability from `logprobs`.

use wow_sdk::host::{self, Sampling};
use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Message, Question};

/// The `model-judge` test elicitor.
pub struct ModelJudge;

impl Elicitor for ModelJudge {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "model-judge".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn elicit(question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        let prompt = vec![Message::user(&question.text)];

        let sampling = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 8,
            n: 2,
            seed: 7,
        };
        let generations = host::generate(&prompt, sampling)?;
        if generations.len() != 2 {
            return Err(format!("expected 2 generations, got {}", generations.len()));
        }
        wow_sdk::info!("judge sample for {}: {:?}", question.id, generations[0].text);

        let mut scores = Vec::with_capacity(candidates.len());
        for candidate in &candidates {
            let logprobs = host::logprobs(&prompt, &candidate.text)?;
            let mean = logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len().max(1) as f64;
            scores.push(Some(mean));
        }
        Ok(Judgement::Scores(scores))
    }
}

wow_sdk::export_elicitor!(ModelJudge);
