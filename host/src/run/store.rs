//! The run directory: its config, questions and the append-only response log.
//!
//! `responses.jsonl` gets one line per response, written in whole-question
//! batches and flushed before the next question starts. A run killed mid-write
//! leaves at most one partial last line, which [`ResponseLog::open`] cuts off,
//! so restarting loses no finished response and duplicates none.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{RunConfig, RunError};
use crate::model::Message;
use crate::plugin::Question;

pub const CONFIG_FILE: &str = "config.json";
pub const QUESTIONS_FILE: &str = "questions.jsonl";
pub const RESPONSES_FILE: &str = "responses.jsonl";

/// One sampled response with its extracted answer and grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRecord {
    pub question_id: String,
    pub sample: u32,
    /// Chat prompt the response answers.
    pub prompt: Vec<Message>,
    pub text: String,
    /// Mean token negative log-likelihood, in nats.
    pub mean_nll: f64,
    pub token_count: u32,
    pub answer: Option<String>,
    /// Proxy correctness in [0, 1]; `None` when no answer was extracted or
    /// grading failed.
    pub correctness: Option<f64>,
    pub correct: bool,
    /// Plugin failure while extracting or grading this response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Extra generator that wrote this response, in runs that mix several
    /// models; `None` for the run's own model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

/// A question as stored in `questions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionRecord {
    pub id: String,
    pub text: String,
    pub reference: Option<String>,
    pub payload: String,
}

impl From<&Question> for QuestionRecord {
    fn from(q: &Question) -> Self {
        Self {
            id: q.id.clone(),
            text: q.text.clone(),
            reference: q.reference.clone(),
            payload: q.payload.clone(),
        }
    }
}

impl From<QuestionRecord> for Question {
    fn from(q: QuestionRecord) -> Self {
        Question {
            id: q.id,
            text: q.text,
            reference: q.reference,
            payload: q.payload,
        }
    }
}

/// A run directory on disk.
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Opens `root`, creating it when missing.
    pub fn create(root: &Path) -> Result<Self, RunError> {
        fs::create_dir_all(root).map_err(|source| RunError::io(root, source))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing run directory.
    pub fn open(root: &Path) -> Result<Self, RunError> {
        if !root.join(CONFIG_FILE).is_file() {
            return Err(RunError::NotARun(root.to_path_buf()));
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn read_config(&self) -> Result<Option<RunConfig>, RunError> {
        let path = self.path(CONFIG_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(|source| RunError::io(&path, source))?;
        let config = serde_json::from_str(&text).map_err(|e| RunError::Corrupt {
            path,
            message: e.to_string(),
        })?;
        Ok(Some(config))
    }

    pub fn write_config(&self, config: &RunConfig) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(config).expect("config serializes");
        self.write_atomic(CONFIG_FILE, text.as_bytes())
    }

    pub fn write_questions(&self, questions: &[Question]) -> Result<(), RunError> {
        let mut text = String::new();
        for question in questions {
            text.push_str(&serde_json::to_string(&QuestionRecord::from(question)).expect("question serializes"));
            text.push('\n');
        }
        self.write_atomic(QUESTIONS_FILE, text.as_bytes())
    }

    pub fn read_questions(&self) -> Result<Vec<Question>, RunError> {
        read_jsonl::<QuestionRecord>(&self.path(QUESTIONS_FILE))
            .map(|records| records.into_iter().map(Question::from).collect())
    }

    /// Copies the config, questions and responses of `source` into this
    /// folder, replacing its own; judgements, preferences and caches stay.
    pub fn copy_samples_from(&self, source: &RunDir) -> Result<(), RunError> {
        for file in [CONFIG_FILE, QUESTIONS_FILE, RESPONSES_FILE] {
            let path = source.path(file);
            let bytes = fs::read(&path).map_err(|source| RunError::io(&path, source))?;
            self.write_atomic(file, &bytes)?;
        }
        Ok(())
    }

    /// Writes a file through a temporary sibling and a rename, so a kill
    /// never leaves it half-written.
    pub fn write_atomic(&self, file: &str, bytes: &[u8]) -> Result<(), RunError> {
        let path = self.path(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| RunError::io(parent, source))?;
        }
        let temporary = path.with_extension("tmp");
        fs::write(&temporary, bytes).map_err(|source| RunError::io(&temporary, source))?;
        fs::rename(&temporary, &path).map_err(|source| RunError::io(&path, source))
    }
}

/// The append-only `responses.jsonl` of a run.
pub struct ResponseLog {
    path: PathBuf,
    file: File,
    done: HashSet<(String, u32)>,
}

impl ResponseLog {
    /// Opens the log, cutting off a partial last line left by a kill.
    pub fn open(run: &RunDir) -> Result<Self, RunError> {
        let path = run.path(RESPONSES_FILE);
        truncate_partial_line(&path)?;

        let records = read_jsonl::<ResponseRecord>(&path)?;
        let done = records.iter().map(|r| (r.question_id.clone(), r.sample)).collect();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| RunError::io(&path, source))?;
        Ok(Self { path, file, done })
    }

    /// Returns whether response `sample` of `question_id` is already logged.
    pub fn contains(&self, question_id: &str, sample: u32) -> bool {
        self.done.contains(&(question_id.to_string(), sample))
    }

    /// Appends records not yet logged and syncs them to disk.
    pub fn append(&mut self, records: &[ResponseRecord]) -> Result<(), RunError> {
        let mut text = String::new();
        for record in records {
            if self.done.insert((record.question_id.clone(), record.sample)) {
                text.push_str(&serde_json::to_string(record).expect("response serializes"));
                text.push('\n');
            }
        }
        self.file
            .write_all(text.as_bytes())
            .map_err(|source| RunError::io(&self.path, source))?;
        self.file.sync_data().map_err(|source| RunError::io(&self.path, source))
    }
}

/// Reads all responses of a run, grouped by question id and ordered by
/// sample index.
pub fn read_responses(run: &RunDir) -> Result<BTreeMap<String, Vec<ResponseRecord>>, RunError> {
    let mut by_question: BTreeMap<String, Vec<ResponseRecord>> = BTreeMap::new();
    for record in read_jsonl::<ResponseRecord>(&run.path(RESPONSES_FILE))? {
        by_question.entry(record.question_id.clone()).or_default().push(record);
    }
    for records in by_question.values_mut() {
        records.sort_by_key(|r| r.sample);
        records.dedup_by_key(|r| r.sample);
    }
    Ok(by_question)
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, RunError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RunError::io(path, source)),
    };

    let mut records = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| RunError::io(path, source))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| RunError::Corrupt {
            path: path.to_path_buf(),
            message: format!("line {}: {e}", index + 1),
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Cuts the file back to its last newline, dropping a partial line.
fn truncate_partial_line(path: &Path) -> Result<(), RunError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(RunError::io(path, source)),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }

    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    tracing::warn!(path = %path.display(), dropped_bytes = bytes.len() - keep, "dropping a partial last line left by an interrupted run");
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| RunError::io(path, source))?;
    file.set_len(keep as u64).map_err(|source| RunError::io(path, source))
}
