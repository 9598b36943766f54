//! Measures of elicited preferences and of aligned models.

pub mod wow_accuracy;

pub use wow_accuracy::{JudgedPair, MarginResult, Verdict, margin_results, select_margin};
