//! Okapi BM25 ranking of a topic's passages against a query.

/// Term-frequency saturation.
const K1: f64 = 1.5;
/// Length normalisation.
const B: f64 = 0.75;

/// Lowercased runs of letters and digits.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Returns the indexes of the `k` passages that score highest against
/// `query`, best first; ties keep passage order.
pub fn top_k(passages: &[String], query: &str, k: usize) -> Vec<usize> {
    let documents: Vec<Vec<String>> = passages.iter().map(|p| tokens(p)).collect();
    let count = documents.len() as f64;
    let mean_length = documents.iter().map(Vec::len).sum::<usize>() as f64 / count.max(1.0);
    let query = tokens(query);

    let score = |document: &[String]| -> f64 {
        query
            .iter()
            .map(|term| {
                let containing = documents.iter().filter(|d| d.contains(term)).count() as f64;
                let idf = ((count - containing + 0.5) / (containing + 0.5) + 1.0).ln();
                let frequency = document.iter().filter(|t| *t == term).count() as f64;
                let length = document.len() as f64 / mean_length.max(1.0);
                idf * frequency * (K1 + 1.0) / (frequency + K1 * (1.0 - B + B * length))
            })
            .sum()
    };
    let mut ranked: Vec<(usize, f64)> = documents.iter().enumerate().map(|(i, d)| (i, score(d))).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(k).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_passage_ranks_first() {
        let passages = [
            "The capital of Peru is Lima.".to_string(),
            "The currency code of Peru is PEN.".to_string(),
            "People from Peru are called Peruvian.".to_string(),
        ];
        assert_eq!(top_k(&passages, "Peru uses the PEN currency", 1), [1]);
        assert_eq!(top_k(&passages, "Lima is the capital", 2)[0], 0);
        assert_eq!(top_k(&passages, "anything", 5).len(), 3);
    }

    #[test]
    fn tokens_are_lowercase_words() {
        assert_eq!(tokens("Côte d'Ivoire, +225!"), ["côte", "d", "ivoire", "225"]);
    }
}
