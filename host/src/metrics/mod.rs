//! Measures of elicited preferences and of aligned models.

pub mod alignment;
pub mod wow_accuracy;

pub use alignment::{
    AnswerQuality, ECE_BINS, GradedResponse, ReliabilityBin, answer_quality, expected_calibration_error,
    reliability_bins,
};
pub use wow_accuracy::{JudgedPair, MarginResult, Verdict, margin_results, select_margin};
