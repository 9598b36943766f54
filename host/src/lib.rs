//! wow: wrong-over-wrong alignment of language models.
//!
//! The host owns inference ([`model`]) and runs tasks, elicitors and scorers
//! as sandboxed WebAssembly components ([`plugin`]). A [`run`] samples
//! responses, grades them through a task plugin, elicits preferences between
//! wrong answers and measures them with [`metrics`]. [`align`] trains LoRA
//! adapters on those preferences with DPO-family losses. [`report`] renders
//! tables and figures over finished runs; [`experiment`] runs grids of runs
//! from a TOML file and [`grid`] searches training hyper-parameters.

pub mod align;
pub mod cli;
pub mod experiment;
pub mod grid;
pub mod kc;
pub mod metrics;
pub mod model;
pub mod plugin;
pub mod report;
pub mod run;
