//! Typed handles for each plugin kind. Every method runs one call in a fresh
//! instance and validates what the guest returns.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::Store;

use super::bindings::types::{Candidate, Grade, ItemError, Judgement, Question};
use super::bindings::{elicitor, scorer, task};
use super::error::{FailureKind, PluginError};
use super::manifest::Manifest;
use super::sandbox::{CallScope, Limits, PluginState, Sandbox, call_error};
use super::spec::ElicitorSpec;
use super::validate;
use crate::model;

/// State shared by every handle of one plugin: its manifest, the sandbox,
/// its limits, its settings and counters, and its count of consecutive
/// failures.
#[derive(Clone)]
struct Calls {
    manifest: Arc<Manifest>,
    sandbox: Arc<Sandbox>,
    limits: Limits,
    scope: CallScope,
    health: Arc<Health>,
}

/// Consecutive failed calls of one plugin; at the limit the plugin is
/// disabled and `disabled` keeps the last failure.
#[derive(Default)]
struct Health {
    consecutive_failures: AtomicU32,
    disabled: Mutex<Option<String>>,
}

impl Calls {
    fn new(manifest: Arc<Manifest>, sandbox: Arc<Sandbox>) -> Self {
        let limits = sandbox.limits_for(&manifest);
        Self {
            manifest,
            sandbox,
            limits,
            scope: CallScope::default(),
            health: Arc::default(),
        }
    }

    fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Runs one call in a fresh store, then `check` on its result, and
    /// keeps count of consecutive failures.
    fn run<R, T>(
        &self,
        call: &'static str,
        item: &str,
        invoke: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
        check: impl FnOnce(R) -> Result<T, FailureKind>,
    ) -> Result<T, PluginError> {
        self.check_enabled()?;
        let result = self
            .sandbox
            .call(self.name(), &self.limits, &self.scope, call, item, invoke)
            .and_then(|value| check(value).map_err(|kind| self.failure(call, item, kind)));
        self.observe(&result);
        result
    }

    fn check_enabled(&self) -> Result<(), PluginError> {
        let disabled = self.health.disabled.lock().map(|d| d.clone()).unwrap_or_default();
        match disabled {
            Some(last) => Err(PluginError::Disabled {
                plugin: self.name().to_string(),
                failures: self.limits.max_consecutive_failures,
                last,
            }),
            None => Ok(()),
        }
    }

    /// Counts a faulty call and disables the plugin at the limit; any other
    /// outcome resets the count.
    fn observe<T>(&self, result: &Result<T, PluginError>) {
        let fault = match result {
            Err(error) => error.failure().is_some_and(FailureKind::is_fault),
            Ok(_) => false,
        };
        if !fault {
            self.health.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }

        let failures = self.health.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let max = self.limits.max_consecutive_failures;
        if max == 0 || failures < max {
            return;
        }
        let Ok(mut disabled) = self.health.disabled.lock() else {
            return;
        };
        if disabled.is_none() {
            let last = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
            tracing::error!(
                plugin = %self.name(),
                "plugin disabled for the rest of this run after {failures} consecutive failed calls; \
                 its remaining items fail without running it. Last failure: {last}"
            );
            *disabled = Some(last);
        }
    }

    fn failure(&self, call: &'static str, item: &str, kind: FailureKind) -> PluginError {
        call_error(self.name(), call, item, kind)
    }
}

/// Turns a guest's error value into a failure, cutting long messages.
fn guest_error(message: String) -> FailureKind {
    FailureKind::Guest(validate::truncate(message, validate::MAX_ERROR_BYTES))
}

/// Task plugin: parses datasets, builds prompts, extracts and grades answers.
#[derive(Clone)]
pub struct TaskPlugin {
    calls: Calls,
    pre: task::TaskPluginPre<PluginState>,
}

impl TaskPlugin {
    pub(super) fn new(manifest: Arc<Manifest>, sandbox: Arc<Sandbox>, bytes: &[u8]) -> Result<Self, PluginError> {
        let instance = sandbox.prepare(&manifest, bytes)?;
        let pre = task::TaskPluginPre::new(instance).map_err(|e| export_error(&manifest, e))?;
        let calls = Calls::new(manifest, sandbox);
        Ok(Self { calls, pre })
    }

    pub fn name(&self) -> &str {
        self.calls.name()
    }

    /// Returns this handle with `settings`, which its calls read through
    /// the `setting` import.
    pub fn with_settings(mut self, settings: std::collections::BTreeMap<String, String>) -> Self {
        self.calls.scope = CallScope::with_settings(settings);
        self
    }

    /// Returns the limits every call of this plugin runs under.
    pub fn limits(&self) -> &Limits {
        &self.calls.limits
    }

    /// Parses a dataset file. Invalid questions and rows with duplicate ids
    /// become item errors.
    pub fn load(&self, dataset: &[u8], file: &str) -> Result<Vec<Result<Question, ItemError>>, PluginError> {
        self.run(
            "load",
            file,
            |store, plugin| plugin.wow_plugin_task().call_load(store, dataset),
            |rows| rows.map(validate::dataset_rows).map_err(guest_error),
        )
    }

    /// Builds the chat prompt of the sample drawn with `seed`.
    pub fn prompt(&self, question: &Question, seed: u64) -> Result<Vec<model::Message>, PluginError> {
        self.run(
            "prompt",
            &question.id,
            |store, plugin| plugin.wow_plugin_task().call_prompt(store, question, seed),
            |messages| {
                validate::prompt(&messages).map_err(FailureKind::InvalidOutput)?;
                Ok(messages.into_iter().map(model::Message::from).collect())
            },
        )
    }

    /// Extracts the canonical answer of a response, at most
    /// [`validate::MAX_ANSWER_BYTES`] long.
    pub fn extract(&self, question: &Question, seed: u64, response: &str) -> Result<Option<String>, PluginError> {
        self.run(
            "extract",
            &question.id,
            |store, plugin| plugin.wow_plugin_task().call_extract(store, question, seed, response),
            |answer| {
                if let Some(answer) = &answer {
                    validate::answer(answer).map_err(FailureKind::InvalidOutput)?;
                }
                Ok(answer)
            },
        )
    }

    /// Grades a canonical answer; the correctness must be finite and in [0, 1].
    pub fn grade(&self, question: &Question, answer: &str) -> Result<Grade, PluginError> {
        self.run(
            "grade",
            &question.id,
            |store, plugin| plugin.wow_plugin_task().call_grade(store, question, answer),
            |grade| {
                let grade = grade.map_err(guest_error)?;
                validate::unit_interval("correctness", grade.correctness).map_err(FailureKind::InvalidOutput)?;
                Ok(grade)
            },
        )
    }

    /// Returns the statements a wrong answer asserts, for scoring by
    /// plausibility; empty when the task grades wrong answers itself.
    pub fn statements(&self, question: &Question, answer: &str) -> Result<Vec<String>, PluginError> {
        self.run(
            "statements",
            &question.id,
            |store, plugin| plugin.wow_plugin_task().call_statements(store, question, answer),
            |statements| {
                validate::statements(&statements).map_err(FailureKind::InvalidOutput)?;
                Ok(statements)
            },
        )
    }

    fn run<R, T>(
        &self,
        call: &'static str,
        item: &str,
        invoke: impl FnOnce(&mut Store<PluginState>, &task::TaskPlugin) -> wasmtime::Result<R>,
        check: impl FnOnce(R) -> Result<T, FailureKind>,
    ) -> Result<T, PluginError> {
        let instantiate = |store: &mut Store<PluginState>| {
            let plugin = self.pre.instantiate(&mut *store)?;
            invoke(store, &plugin)
        };
        self.calls.run(call, item, instantiate, check)
    }
}

/// Elicitor plugin: orders the responses to one question.
#[derive(Clone)]
pub struct ElicitorPlugin {
    calls: Calls,
    pre: elicitor::ElicitorPluginPre<PluginState>,
    method: String,
}

impl ElicitorPlugin {
    pub(super) fn new(manifest: Arc<Manifest>, sandbox: Arc<Sandbox>, bytes: &[u8]) -> Result<Self, PluginError> {
        let instance = sandbox.prepare(&manifest, bytes)?;
        let pre = elicitor::ElicitorPluginPre::new(instance).map_err(|e| export_error(&manifest, e))?;
        let method = manifest.name.clone();
        let calls = Calls::new(manifest, sandbox);
        Ok(Self { calls, pre, method })
    }

    /// Returns this handle with the settings of `spec`, which its calls read
    /// through the `setting` import, and the method name `spec` gives.
    pub fn configured(mut self, spec: &ElicitorSpec) -> Self {
        self.calls.scope = CallScope::with_settings(spec.settings.clone());
        self.method = spec.method();
        self
    }

    /// Returns the name of the elicitation method in results: the plugin
    /// name, followed by its settings when the run gives any.
    pub fn name(&self) -> &str {
        &self.method
    }

    /// Returns the counters this handle's calls added with `tally`.
    pub fn tallies(&self) -> std::collections::BTreeMap<String, u64> {
        self.calls.scope.tallies()
    }

    /// Returns the limits every call of this plugin runs under.
    pub fn limits(&self) -> &Limits {
        &self.calls.limits
    }

    /// Judges the candidates of one question and checks the judgement's shape.
    pub fn elicit(
        &self,
        question: &Question,
        candidates: &[Candidate],
        pairs: &[(u32, u32)],
    ) -> Result<Judgement, PluginError> {
        let invoke = |store: &mut Store<PluginState>| {
            let plugin = self.pre.instantiate(&mut *store)?;
            plugin
                .wow_plugin_elicitor()
                .call_elicit(store, question, candidates, pairs)
        };
        let check = |judgement: Result<Judgement, String>| {
            let judgement = judgement.map_err(guest_error)?;
            validate::judgement(&judgement, candidates.len()).map_err(FailureKind::InvalidOutput)?;
            Ok(judgement)
        };
        self.calls.run("elicit", &question.id, invoke, check)
    }
}

/// Scorer plugin: proxy correctness for tasks that delegate it.
#[derive(Clone)]
pub struct ScorerPlugin {
    calls: Calls,
    pre: scorer::ScorerPluginPre<PluginState>,
}

impl ScorerPlugin {
    pub(super) fn new(manifest: Arc<Manifest>, sandbox: Arc<Sandbox>, bytes: &[u8]) -> Result<Self, PluginError> {
        let instance = sandbox.prepare(&manifest, bytes)?;
        let pre = scorer::ScorerPluginPre::new(instance).map_err(|e| export_error(&manifest, e))?;
        let calls = Calls::new(manifest, sandbox);
        Ok(Self { calls, pre })
    }

    pub fn name(&self) -> &str {
        self.calls.name()
    }

    /// Scores an answer; the score must be finite and in [0, 1].
    pub fn score(&self, question: &Question, answer: &str) -> Result<f64, PluginError> {
        let invoke = |store: &mut Store<PluginState>| {
            let plugin = self.pre.instantiate(&mut *store)?;
            plugin.wow_plugin_scorer().call_score(store, question, answer)
        };
        let check = |score: Result<f64, String>| {
            let score = score.map_err(guest_error)?;
            validate::unit_interval("score", score).map_err(FailureKind::InvalidOutput)?;
            Ok(score)
        };
        self.calls.run("score", &question.id, invoke, check)
    }
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
