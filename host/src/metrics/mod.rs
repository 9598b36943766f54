//! Measures of elicited preferences and of aligned models.

pub mod alignment;
pub mod wow_accuracy;

pub use alignment::{AnswerQuality, ECE_BINS, GradedResponse, answer_quality, expected_calibration_error};
pub use wow_accuracy::{JudgedPair, MarginResult, Verdict, margin_results, select_margin};
