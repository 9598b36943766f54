//! Measures of a model's answers on a held-out split: p_wrong (how wrong
//! its wrong answers are), accuracy, and expected calibration error.

use serde::{Deserialize, Serialize};

/// Number of equal-width confidence bins of the ECE.
pub const ECE_BINS: usize = 10;

/// One graded response, as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradedResponse {
    /// Proxy correctness in [0, 1]; `None` when no answer could be parsed,
    /// which counts as correctness 0.
    pub correctness: Option<f64>,
    pub correct: bool,
    /// Mean token negative log-likelihood, in nats.
    pub mean_nll: f64,
}

impl GradedResponse {
    /// Returns the model's confidence in the response: exp(-mean NLL).
    pub fn confidence(&self) -> f64 {
        (-self.mean_nll).exp().clamp(0.0, 1.0)
    }
}

/// p_wrong, accuracy and ECE of one set of responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerQuality {
    /// Mean correctness of the wrong responses; higher is less wrong.
    /// `None` when every response is right.
    pub p_wrong: Option<f64>,
    /// Share of responses that are right.
    pub accuracy: f64,
    /// Expected calibration error over [`ECE_BINS`] equal-width bins.
    pub ece: f64,
    pub responses: usize,
}

/// Computes p_wrong, accuracy and ECE; `None` for an empty set.
pub fn answer_quality(responses: &[GradedResponse]) -> Option<AnswerQuality> {
    if responses.is_empty() {
        return None;
    }

    let wrong: Vec<f64> = responses
        .iter()
        .filter(|r| !r.correct)
        .map(|r| r.correctness.unwrap_or(0.0))
        .collect();
    let p_wrong = (!wrong.is_empty()).then(|| wrong.iter().sum::<f64>() / wrong.len() as f64);
    let accuracy = responses.iter().filter(|r| r.correct).count() as f64 / responses.len() as f64;

    Some(AnswerQuality {
        p_wrong,
        accuracy,
        ece: expected_calibration_error(responses),
        responses: responses.len(),
    })
}

/// One equal-width confidence bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge of the bin; the bin spans [lower, lower + 1/ECE_BINS).
    pub lower: f64,
    pub count: usize,
    /// Mean confidence of the responses in the bin; 0 when it is empty.
    pub mean_confidence: f64,
    /// Share of right responses in the bin; 0 when it is empty.
    pub accuracy: f64,
}

/// Sorts responses into [`ECE_BINS`] equal-width confidence bins. Bin `i`
/// contains confidences in [i/10, (i+1)/10), and the last bin also contains
/// 1.0.
pub fn reliability_bins(responses: &[GradedResponse]) -> [ReliabilityBin; ECE_BINS] {
    let mut count = [0usize; ECE_BINS];
    let mut confidence_sum = [0.0f64; ECE_BINS];
    let mut correct_sum = [0.0f64; ECE_BINS];

    for response in responses {
        let confidence = response.confidence();
        let bin = ((confidence * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        count[bin] += 1;
        confidence_sum[bin] += confidence;
        correct_sum[bin] += f64::from(u8::from(response.correct));
    }

    std::array::from_fn(|bin| {
        let n = count[bin].max(1) as f64;
        ReliabilityBin {
            lower: bin as f64 / ECE_BINS as f64,
            count: count[bin],
            mean_confidence: confidence_sum[bin] / n,
            accuracy: correct_sum[bin] / n,
        }
    })
}

/// Returns the ECE: the size-weighted mean over the [`reliability_bins`] of
/// |accuracy in the bin - mean confidence in the bin|.
pub fn expected_calibration_error(responses: &[GradedResponse]) -> f64 {
    let total = responses.len() as f64;
    reliability_bins(responses)
        .iter()
        .filter(|bin| bin.count > 0)
        .map(|bin| (bin.count as f64 / total) * (bin.accuracy - bin.mean_confidence).abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a response whose confidence exp(-nll) equals `confidence`.
    fn response(confidence: f64, correct: bool, correctness: Option<f64>) -> GradedResponse {
        GradedResponse {
            correctness,
            correct,
            mean_nll: -confidence.ln(),
        }
    }

    #[test]
    fn ece_of_hand_computed_bins() {
        // Bin 9: confidences 0.95, 0.95, one right -> |0.5 - 0.95| = 0.45, weight 2/4.
        // Bin 2: confidences 0.25, 0.25, both wrong -> |0 - 0.25| = 0.25, weight 2/4.
        let responses = [
            response(0.95, true, Some(1.0)),
            response(0.95, false, Some(0.5)),
            response(0.25, false, Some(0.2)),
            response(0.25, false, None),
        ];
        let ece = expected_calibration_error(&responses);
        assert!((ece - (0.5 * 0.45 + 0.5 * 0.25)).abs() < 1e-12, "{ece}");
    }

    #[test]
    fn ece_is_zero_when_calibrated() {
        // Confidence 0.5 in one bin with half the answers right.
        let responses = [response(0.5, true, Some(1.0)), response(0.5, false, Some(0.0))];
        assert!(expected_calibration_error(&responses).abs() < 1e-12);
    }

    #[test]
    fn confidence_one_lands_in_last_bin() {
        let responses = [response(1.0, true, Some(1.0))];
        assert!(expected_calibration_error(&responses).abs() < 1e-12);
    }

    #[test]
    fn p_wrong_averages_wrong_answers() {
        let responses = [
            response(0.9, true, Some(1.0)),
            response(0.9, false, Some(0.6)),
            response(0.9, false, Some(0.2)),
            response(0.9, false, None),
        ];
        let quality = answer_quality(&responses).unwrap();
        // Wrong answers: 0.6, 0.2 and the unparsed one as 0.
        assert!((quality.p_wrong.unwrap() - 0.8 / 3.0).abs() < 1e-12);
        assert_eq!(quality.accuracy, 0.25);
        assert_eq!(quality.responses, 4);
    }

    #[test]
    fn all_right_has_no_p_wrong() {
        let quality = answer_quality(&[response(0.9, true, Some(1.0))]).unwrap();
        assert_eq!(quality.p_wrong, None);
        assert_eq!(quality.accuracy, 1.0);
    }

    #[test]
    fn empty_set_has_no_quality() {
        assert_eq!(answer_quality(&[]), None);
    }
}
