//! Typed handles for each plugin kind. Every method runs one call in a fresh
//! instance and validates what the guest returns.

use std::collections::HashSet;
use std::sync::Arc;

use super::bindings::types::{Candidate, Grade, ItemError, Judgement, Question};
use super::bindings::{elicitor, scorer, task};
use super::error::{FailureKind, PluginError};
use super::manifest::Manifest;
use super::sandbox::{Sandbox, call_error};
use crate::model;

/// Task plugin: parses datasets, builds prompts, extracts and grades answers.
#[derive(Clone)]
pub struct TaskPlugin {
    manifest: Arc<Manifest>,
    sandbox: Arc<Sandbox>,
    pre: task::TaskPluginPre<super::sandbox::PluginState>,
}

impl TaskPlugin {
    pub(super) fn new(manifest: Arc<Manifest>, sandbox: Arc<Sandbox>, bytes: &[u8]) -> Result<Self, PluginError> {
        let instance = sandbox.prepare(&manifest.name, bytes)?;
        let pre = task::TaskPluginPre::new(instance).map_err(|e| export_error(&manifest, e))?;
        Ok(Self { manifest, sandbox, pre })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Parses a dataset file. Rows with duplicate ids become item errors.
    pub fn load(&self, dataset: &[u8], file: &str) -> Result<Vec<Result<Question, ItemError>>, PluginError> {
        let rows = self.run("load", file, |store, plugin| {
            plugin.wow_plugin_task().call_load(store, dataset)
        })?;
        let rows = rows.map_err(|message| self.failure("load", file, FailureKind::Guest(message)))?;
        Ok(reject_duplicate_ids(rows))
    }

    /// Builds the chat prompt of the sample drawn with `seed`.
    pub fn prompt(&self, question: &Question, seed: u64) -> Result<Vec<model::Message>, PluginError> {
        let messages = self.run("prompt", &question.id, |store, plugin| {
            plugin.wow_plugin_task().call_prompt(store, question, seed)
        })?;
        if messages.is_empty() {
            let kind = FailureKind::InvalidOutput("the prompt has no messages".into());
            return Err(self.failure("prompt", &question.id, kind));
        }
        Ok(messages.into_iter().map(model::Message::from).collect())
    }

    pub fn extract(&self, question: &Question, seed: u64, response: &str) -> Result<Option<String>, PluginError> {
        self.run("extract", &question.id, |store, plugin| {
            plugin.wow_plugin_task().call_extract(store, question, seed, response)
        })
    }

    /// Grades a canonical answer; the correctness must be finite and in [0, 1].
    pub fn grade(&self, question: &Question, answer: &str) -> Result<Grade, PluginError> {
        let grade = self.run("grade", &question.id, |store, plugin| {
            plugin.wow_plugin_task().call_grade(store, question, answer)
        })?;
        let grade = grade.map_err(|message| self.failure("grade", &question.id, FailureKind::Guest(message)))?;
        if !(grade.correctness.is_finite() && (0.0..=1.0).contains(&grade.correctness)) {
            let kind = FailureKind::InvalidOutput(format!("correctness {} is not in [0, 1]", grade.correctness));
            return Err(self.failure("grade", &question.id, kind));
        }
        Ok(grade)
    }

    /// Returns the statements a wrong answer asserts, for scoring by
    /// plausibility; empty when the task grades wrong answers itself.
    pub fn statements(&self, question: &Question, answer: &str) -> Result<Vec<String>, PluginError> {
        self.run("statements", &question.id, |store, plugin| {
            plugin.wow_plugin_task().call_statements(store, question, answer)
        })
    }

    fn run<R>(
        &self,
        call: &'static str,
        item: &str,
        f: impl FnOnce(&mut wasmtime::Store<super::sandbox::PluginState>, &task::TaskPlugin) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.sandbox.call(&self.manifest.name, call, item, |store| {
            let plugin = self.pre.instantiate(&mut *store)?;
            f(store, &plugin)
        })
    }

    fn failure(&self, call: &'static str, item: &str, kind: FailureKind) -> PluginError {
        call_error(&self.manifest.name, call, item, kind)
    }
}

/// Elicitor plugin: orders the responses to one question.
#[derive(Clone)]
pub struct ElicitorPlugin {
    manifest: Arc<Manifest>,
    sandbox: Arc<Sandbox>,
    pre: elicitor::ElicitorPluginPre<super::sandbox::PluginState>,
}

impl ElicitorPlugin {
    pub(super) fn new(manifest: Arc<Manifest>, sandbox: Arc<Sandbox>, bytes: &[u8]) -> Result<Self, PluginError> {
        let instance = sandbox.prepare(&manifest.name, bytes)?;
        let pre = elicitor::ElicitorPluginPre::new(instance).map_err(|e| export_error(&manifest, e))?;
        Ok(Self { manifest, sandbox, pre })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Judges the candidates of one question and checks the judgement's shape.
    pub fn elicit(
        &self,
        question: &Question,
        candidates: &[Candidate],
        pairs: &[(u32, u32)],
    ) -> Result<Judgement, PluginError> {
        let name = &self.manifest.name;
        let judgement = self.sandbox.call(name, "elicit", &question.id, |store| {
            let plugin = self.pre.instantiate(&mut *store)?;
            plugin
                .wow_plugin_elicitor()
                .call_elicit(store, question, candidates, pairs)
        })?;
        let judgement =
            judgement.map_err(|message| call_error(name, "elicit", &question.id, FailureKind::Guest(message)))?;
        validate_judgement(&judgement, candidates.len())
            .map_err(|message| call_error(name, "elicit", &question.id, FailureKind::InvalidOutput(message)))?;
        Ok(judgement)
    }
}

/// Scorer plugin: proxy correctness for tasks that delegate it.
#[derive(Clone)]
pub struct ScorerPlugin {
    manifest: Arc<Manifest>,
    sandbox: Arc<Sandbox>,
    pre: scorer::ScorerPluginPre<super::sandbox::PluginState>,
}

impl ScorerPlugin {
    pub(super) fn new(manifest: Arc<Manifest>, sandbox: Arc<Sandbox>, bytes: &[u8]) -> Result<Self, PluginError> {
        let instance = sandbox.prepare(&manifest.name, bytes)?;
        let pre = scorer::ScorerPluginPre::new(instance).map_err(|e| export_error(&manifest, e))?;
        Ok(Self { manifest, sandbox, pre })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Scores an answer; the score must be finite and in [0, 1].
    pub fn score(&self, question: &Question, answer: &str) -> Result<f64, PluginError> {
        let name = &self.manifest.name;
        let score = self.sandbox.call(name, "score", &question.id, |store| {
            let plugin = self.pre.instantiate(&mut *store)?;
            plugin.wow_plugin_scorer().call_score(store, question, answer)
        })?;
        let score = score.map_err(|message| call_error(name, "score", &question.id, FailureKind::Guest(message)))?;
        if !(score.is_finite() && (0.0..=1.0).contains(&score)) {
            let kind = FailureKind::InvalidOutput(format!("score {score} is not in [0, 1]"));
            return Err(call_error(name, "score", &question.id, kind));
        }
        Ok(score)
    }
}

fn validate_judgement(judgement: &Judgement, candidates: usize) -> Result<(), String> {
    match judgement {
        Judgement::Scores(scores) => {
            if scores.len() != candidates {
                return Err(format!("{} scores for {candidates} candidates", scores.len()));
            }
            if let Some(bad) = scores.iter().flatten().find(|s| !s.is_finite()) {
                return Err(format!("score {bad} is not finite"));
            }
        }
        Judgement::Preferences(preferences) => {
            for p in preferences {
                let in_range = (p.chosen as usize) < candidates && (p.rejected as usize) < candidates;
                if !in_range || p.chosen == p.rejected || !p.strength.is_finite() {
                    return Err(format!(
                        "invalid preference {} over {} (strength {}) for {candidates} candidates",
                        p.chosen, p.rejected, p.strength
                    ));
                }
            }
        }
    }
    Ok(())
}

fn reject_duplicate_ids(rows: Vec<Result<Question, ItemError>>) -> Vec<Result<Question, ItemError>> {
    let mut seen = HashSet::new();
    rows.into_iter()
        .map(|row| match row {
            Ok(question) if !seen.insert(question.id.clone()) => Err(ItemError {
                message: format!(
                    "duplicate question id `{}`; ids must be unique within a dataset",
                    question.id
                ),
                id: question.id,
            }),
            other => other,
        })
        .collect()
}

fn export_error(manifest: &Manifest, error: wasmtime::Error) -> PluginError {
    PluginError::Load {
        plugin: manifest.name.clone(),
        message: format!(
            "the component does not export wow:plugin/{}@{} as its manifest declares: {error:#}",
            manifest.kind.interface(),
            super::WIT_VERSION
        ),
    }
}
