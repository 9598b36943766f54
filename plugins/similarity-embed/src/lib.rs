//! Similarity to the reference answer: the cosine similarity of the
//! sentence embeddings (all-MiniLM-L6-v2, through the host's `embed`) of
//! an answer and of the question's reference. Negative similarities, which
//! mean unrelated texts for this model, clip to 0. A statement with a given
//! part is embedded whole, as one sentence.

use wow_sdk::{Question, Scorer, ScorerInfo, statement};

/// The `similarity-embed` scorer.
pub struct SimilarityEmbed;

impl Scorer for SimilarityEmbed {
    fn describe() -> ScorerInfo {
        ScorerInfo {
            name: "similarity-embed".into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn score(question: Question, answer: String) -> Result<f64, String> {
        let reference = question.reference.as_deref().ok_or_else(|| {
            format!(
                "question {} has no reference answer to compare with; use a scorer such as plausibility-lm",
                question.id
            )
        })?;
        let embeddings = wow_sdk::host::embed(&[reference.to_owned(), statement::plain(&answer)])?;
        let [reference, answer] = embeddings.as_slice() else {
            return Err(format!("the host returned {} embeddings for 2 texts", embeddings.len()));
        };
        similarity(reference, answer)
    }
}

wow_sdk::export_scorer!(SimilarityEmbed);

/// Returns the cosine similarity of two unit-length embeddings, clipped to
/// [0, 1].
pub fn similarity(a: &[f32], b: &[f32]) -> Result<f64, String> {
    if a.len() != b.len() || a.is_empty() {
        return Err(format!("embeddings of {} and {} dimensions", a.len(), b.len()));
    }
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
    if !dot.is_finite() {
        return Err("the embeddings are not finite".into());
    }
    Ok(dot.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_is_clipped_dot_product() {
        let x = [0.6, 0.8];
        assert!((similarity(&x, &x).unwrap() - 1.0).abs() < 1e-6);
        assert!((similarity(&x, &[0.8, 0.6]).unwrap() - 0.96).abs() < 1e-6);
        assert_eq!(similarity(&x, &[-0.6, -0.8]).unwrap(), 0.0);
    }

    #[test]
    fn mismatched_embeddings_are_errors() {
        assert!(similarity(&[1.0], &[1.0, 0.0]).is_err());
        assert!(similarity(&[], &[]).is_err());
        assert!(similarity(&[f32::NAN], &[1.0]).is_err());
    }

    #[test]
    fn missing_reference_is_an_error() {
        let question = Question {
            id: "q".into(),
            text: String::new(),
            reference: None,
            payload: String::new(),
        };
        let error = SimilarityEmbed::score(question, "x".into()).unwrap_err();
        assert!(error.contains("no reference"), "{error}");
    }
}
